/**
 * `sdebnn eval` and `sdebnn report`: the uncertainty evaluation of a classifier (lib/evaluate.ts)
 * printed as a table, written as JSON and as the HTML report, or for a regressor its metrics and
 * predictive band.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { setNumThreads } from '../backend';
import { SdeBnn } from '../bnn';
import type { Dataset } from '../data/dataset';
import { fashionMnistAvailable, FASHION_MNIST_DIR, loadOodImages, type OodImages } from '../data/ood';
import { toyGrid } from '../data/toy';
import { DeepEnsemble, loadModel } from '../ensemble';
import { evaluateUncertainty, type Evaluation, type EvaluationProgress, type ShiftSuiteLike } from '../evaluate';
import { predictDataset } from '../predict';
import { readTrainingLog, writeReport, type RegressionBand, type ReportInput } from '../report/page';
import { formatEvaluation } from '../report/table';
import { DATA_SOURCES, PRESET_NAMES, PRESETS } from '../presets';
import { corruptions, SHIFT_SUITES, type ShiftSuite } from '../shift';
import { evaluate } from '../train';
import { common, formatHelp, integer, list, oneOf, option, parseFlags, presetOrDataset, text, toggle, UsageError, type Values } from './args';
import { dataOf, loadData } from './data';
import { interactive, StatusLine } from './progress';

/** What eval and report evaluate: a single model of any config.model, or a deep ensemble. */
export type Model = SdeBnn | DeepEnsemble;

/** One line on the model: its kind, input, parameters, and sigma or members where they apply. */
export function describeModel(model: Model): string {
  const c = model.config;
  const what = model instanceof DeepEnsemble ? `ensemble of ${model.size} ${c.model}` : c.model;
  return `model: ${what} (${c.kind}), input [${c.inputShape.join(', ')}], ${model.numParameters} parameters${c.sigma !== null ? `, sigma ${c.sigma}` : ''}`;
}

interface EvalOptions {
  /** The checkpoint evaluated: named in the report; its folder's log.jsonl gives the training curves. */
  checkpoint: string;
  /** Undefined: 4, or one path per member of an ensemble. */
  samples?: number;
  seed: number;
  batchSize?: number;
  bins: number;
  /** OOD sets (see loadOodImages), or ['auto']: Fashion-MNIST where installed and uniform noise for MNIST-shaped models, noise otherwise. */
  ood: string[];
  /** A shift suite, 'none', or 'auto' (mnist-c for [1, 28, 28] inputs, cifar10-c for [3, 32, 32]). */
  shift: ShiftSuite | 'none' | 'auto';
  shiftLimit?: number;
  deterministic: boolean;
  json?: string;
  report?: string;
  /** A regressor's training data, drawn with its predictive band in the report. */
  train?: Dataset;
  progress: boolean;
}

/** The OOD sets of --ood for `model` (`notes` gets a line where the default had to leave one out). */
export function resolveOod(model: Pick<Model, 'config'>, names: string[], seed: number, count: number, notes: string[]): OodImages[] {
  const inputShape = model.config.inputShape;
  const mnistShaped = inputShape.join(',') === '1,28,28';
  let list = names;
  if (names.length === 1 && names[0] === 'auto') {
    list = ['noise'];
    if (mnistShaped) {
      if (fashionMnistAvailable()) list = ['fashion-mnist', 'noise'];
      else notes.push(`Fashion-MNIST is not installed in ${FASHION_MNIST_DIR} (apt-get install dataset-fashion-mnist as root); OOD uses noise only`);
    }
  }
  return list.filter((n) => n !== 'none').map((n) => loadOodImages(n, { inputShape, seed, ...(n === 'noise' || n === 'constant' ? { limit: count } : {}) }));
}

/** The corruption suite (lib/shift) of --shift: a name, 'none', or 'auto' (the suite whose images fit the model, if any). */
export function resolveShift(model: Pick<Model, 'config'>, name: ShiftSuite | 'none' | 'auto'): ShiftSuiteLike | undefined {
  if (name === 'none') return undefined;
  const shape = model.config.inputShape.join(',');
  const fits = (suite: ShiftSuite) => corruptions(suite)[0]!.imageShape.join(',') === shape;
  if (name === 'auto') {
    const suite = SHIFT_SUITES.find(fits);
    return suite ? { name: suite, corruptions: corruptions(suite) } : undefined;
  }
  if (!fits(name)) {
    throw new RangeError(
      `The ${name} corruptions take images [${corruptions(name)[0]!.imageShape.join(', ')}] but the model takes [${model.config.inputShape.join(', ')}]`,
    );
  }
  return { name, corruptions: corruptions(name) };
}

/** Each stage's time on stderr when it ends, and on a terminal its progress in place meanwhile. */
export function progressReporter(enabled: boolean): (p: EvaluationProgress) => void {
  const line = new StatusLine(enabled);
  let stageStart = Date.now(); // stages run back to back: each starts when the previous one ends
  return (p) => {
    line.update(`${p.stage}: ${p.done}/${p.total}`);
    if (p.done === p.total) {
      line.clear();
      process.stderr.write(`${p.stage}: ${p.total} images in ${((Date.now() - stageStart) / 1000).toFixed(1)} s\n`);
      stageStart = Date.now();
    }
  };
}

/** The predictive band of a 1D regressor on a grid around its data, with S = 64 paths. */
async function regressionBand(model: SdeBnn, train: Dataset, seed: number): Promise<RegressionBand> {
  let lo = Infinity;
  let hi = -Infinity;
  for (const x of train.inputs) {
    lo = Math.min(lo, x);
    hi = Math.max(hi, x);
  }
  const pad = 0.25 * (hi - lo || 1);
  const grid = toyGrid({ min: lo - pad, max: hi + pad, count: 161 });
  const out = await predictDataset(model, grid, { samples: 64, seed });
  if (out.kind !== 'regression') throw new Error('expected a regression prediction');
  return {
    x: Array.from(grid),
    mean: Array.from(out.mean),
    std: Array.from(out.std, (s) => Math.sqrt(s * s + out.noiseScale * out.noiseScale)),
    data: Array.from(train.inputs, (x, i): [number, number] => [x, train.targets[i]!]),
  };
}

/** Runs the evaluation, prints it, and writes the JSON and the report as asked. */
async function evaluateCheckpoint(model: Model, test: Dataset, o: EvalOptions): Promise<void> {
  const notes = [`checkpoint ${path.resolve(o.checkpoint)}`, describeModel(model)];
  const samples = o.samples ?? (model instanceof DeepEnsemble ? model.size : 4);
  const log = path.join(path.dirname(o.checkpoint), 'log.jsonl');
  const report: ReportInput = { title: `SDE-BNN evaluation: ${path.basename(path.dirname(path.resolve(o.checkpoint)))}`, notes };
  if (fs.existsSync(log)) report.training = readTrainingLog(log);
  let result: object; // what --json writes
  if (model.config.likelihood === 'categorical') {
    const ood = resolveOod(model, o.ood, o.seed, test.length, notes);
    const shift = resolveShift(model, o.shift);
    const evaluation = await evaluateUncertainty(model, test, {
      samples,
      seed: o.seed,
      bins: o.bins,
      deterministic: o.deterministic,
      ...(o.batchSize ? { batchSize: o.batchSize } : {}),
      ...(shift ? { shift } : {}),
      ...(o.shiftLimit ? { shiftLimit: o.shiftLimit } : {}),
      ood,
      onProgress: progressReporter(o.progress),
    });
    for (const n of notes.slice(2)) console.log(`note: ${n}`);
    console.log(formatEvaluation(evaluation));
    report.evaluation = evaluation;
    result = evaluation;
  } else {
    if (!(model instanceof SdeBnn)) throw new RangeError('Expected a classifier ensemble'); // DeepEnsemble refuses regressors
    const metrics = await evaluate(model, test, { samples, seed: o.seed });
    result = { kind: 'regression', examples: test.length, samples, nll: metrics.nll, ...('rmse' in metrics ? { rmse: metrics.rmse } : {}) };
    console.log(JSON.stringify(result));
    if (o.train && model.config.inputShape.length === 1 && model.config.inputShape[0] === 1 && model.config.outputs === 1) {
      report.regression = await regressionBand(model, o.train, o.seed);
    }
  }
  if (o.json) {
    fs.mkdirSync(path.dirname(path.resolve(o.json)), { recursive: true });
    fs.writeFileSync(o.json, `${JSON.stringify(result)}\n`);
    console.log(`evaluation ${o.json}`);
  }
  if (o.report) {
    writeReport(o.report, report);
    console.log(`report ${o.report}`);
  }
}

/**
 * The report of a training run from its evaluation.json (written by a previous eval) when
 * `reuse` and it exists, else a fresh evaluation (saved to evaluation.json).
 */
async function reportRun(
  model: Model,
  test: Dataset,
  runDir: string,
  o: Omit<EvalOptions, 'checkpoint' | 'json' | 'report'> & { out: string; reuse: boolean },
): Promise<void> {
  const checkpoint = path.join(runDir, 'model.safetensors');
  const saved = path.join(runDir, 'evaluation.json');
  if (o.reuse && model.config.likelihood === 'categorical' && fs.existsSync(saved)) {
    const evaluation = JSON.parse(fs.readFileSync(saved, 'utf8')) as Evaluation;
    const log = path.join(runDir, 'log.jsonl');
    writeReport(o.out, {
      title: `SDE-BNN evaluation: ${path.basename(path.resolve(runDir))}`,
      notes: [`checkpoint ${path.resolve(checkpoint)}`, `evaluation read from ${path.resolve(saved)}`],
      evaluation,
      ...(fs.existsSync(log) ? { training: readTrainingLog(log) } : {}),
    });
    console.log(`report ${o.out}`);
    return;
  }
  await evaluateCheckpoint(model, test, { ...o, checkpoint, json: saved, report: o.out });
}

const FLAGS = {
  dataset: option('NAME', oneOf(DATA_SOURCES), `the test set: ${DATA_SOURCES.join(', ')}`, {
    default: "the model's, from its input shape",
    group: 'Evaluation',
  }),
  preset: option('NAME', oneOf(PRESET_NAMES), 'the preset the model was trained with: its test set and its evaluation samples (instead of --dataset)'),
  'data-dir': option('DIR', text, 'MNIST IDX files or CIFAR-10 binary batches'),
  'test-limit': option('N', integer(1), 'use the first N test examples'),
  samples: option('S', integer(1), 'Monte Carlo weight paths (an ensemble: a multiple of its K members)', {
    default: "4, or the preset's with --preset; an ensemble: one per member",
  }),
  seed: common.seed('Brownian streams and corruptions'),
  ood: option(
    'LIST',
    list(text, 'names'),
    'comma-separated OOD sets: fashion-mnist, noise, constant, an IDX image file, a folder of IDX (t10k-images-idx3-ubyte) or CIFAR-10 binary files; or none',
    {
      default: `auto: fashion-mnist where installed (Debian's dataset-fashion-mnist, ${FASHION_MNIST_DIR}) and noise for MNIST models, noise otherwise`,
    },
  ),
  shift: option('SUITE', oneOf([...SHIFT_SUITES, 'none', 'auto'] as const), `corruptions of the test set: ${SHIFT_SUITES.join(', ')} or none`, {
    default: 'auto: mnist-c for MNIST models, cifar10-c for CIFAR-10',
  }),
  'shift-limit': option('N', integer(1), 'test images per corruption and severity', { default: 'all' }),
  bins: option('B', integer(1), 'calibration bins', { default: '15' }),
  'batch-size': option('N', integer(1), 'images per native call'),
  'no-deterministic': toggle('leave out the zero-noise view'),
  device: common.device,
  threads: common.threads,
  quiet: common.quiet,
};

const EVAL_FLAGS = {
  checkpoint: option('FILE', text, 'the model (required)'),
  json: option('FILE', text, 'write the evaluation as JSON'),
  report: option('FILE.html', text, 'write the HTML report'),
  ...FLAGS,
};
const REPORT_FLAGS = { out: option('FILE.html', text, 'the report', { default: 'RUN_DIR/report.html' }), ...FLAGS };

export const evalUsage = 'Usage: sdebnn eval --checkpoint FILE [options] [--json FILE] [--report FILE.html]';
export const reportUsage = 'Usage: sdebnn report RUN_DIR [--out FILE.html] [options]';
const evalHelp = () =>
  formatHelp(`${evalUsage}\nPrints clean metrics, per-corruption accuracy, NLL, ECE and mean entropy, and OOD AUROC and FPR95.`, EVAL_FLAGS);
const reportHelp = () =>
  formatHelp(
    `${reportUsage}
Writes RUN_DIR/report.html, one self-contained HTML file (inline SVG): from RUN_DIR/evaluation.json when there is one
and no evaluation option is given, else from a fresh evaluation of RUN_DIR/model.safetensors (saved to evaluation.json).`,
    REPORT_FLAGS,
  );

/** The evaluation's options from the flags; without --samples, the preset's (an ensemble's default is one path per member). */
function evalOptions(f: Values<typeof FLAGS>, model: Model, train: Dataset) {
  const samples = f.samples ?? (f.preset !== undefined && !(model instanceof DeepEnsemble) ? PRESETS[f.preset].training.samples : undefined);
  return {
    ...(samples !== undefined ? { samples } : {}),
    seed: f.seed ?? 0,
    bins: f.bins ?? 15,
    ood: f.ood ?? ['auto'],
    shift: f.shift ?? 'auto',
    deterministic: !f['no-deterministic'],
    progress: interactive(Boolean(f.quiet)),
    train,
    ...(f['shift-limit'] !== undefined ? { shiftLimit: f['shift-limit'] } : {}),
    ...(f['batch-size'] !== undefined ? { batchSize: f['batch-size'] } : {}),
  } satisfies Omit<EvalOptions, 'checkpoint'>;
}

/** Loads the model and its data (the test set, and the training set for a regressor's band), then runs `work`. */
async function withModel(
  f: Values<typeof FLAGS>,
  file: string,
  seed: number,
  work: (model: Model, data: { train: Dataset; test: Dataset }) => Promise<void>,
): Promise<void> {
  if (f.threads !== undefined) setNumThreads(f.threads);
  presetOrDataset(f.preset, f.dataset);
  const model = loadModel(file, f.device !== undefined ? { device: f.device } : {});
  try {
    const preset = f.preset !== undefined ? PRESETS[f.preset] : undefined;
    const expected = preset?.model.inputShape?.join(', ');
    if (expected !== undefined && expected !== model.config.inputShape.join(', ')) {
      throw new UsageError(`Expected a model of input [${expected}] for --preset ${f.preset} but ${file} takes [${model.config.inputShape.join(', ')}]`);
    }
    const data = loadData(f.dataset ?? preset?.data ?? dataOf(model), { seed, dir: f['data-dir'], trainLimit: 1, testLimit: f['test-limit'] });
    await work(model, data);
  } finally {
    model.dispose();
  }
}

export async function evalCommand(argv: string[]): Promise<number> {
  const parsed = parseFlags('eval', argv, EVAL_FLAGS);
  if (parsed.help) {
    console.log(evalHelp());
    return 0;
  }
  const { checkpoint, json, report, ...f } = parsed.values;
  if (checkpoint === undefined) throw new UsageError(`Expected --checkpoint FILE for 'sdebnn eval' but received none`);
  await withModel(f, checkpoint, f.seed ?? 0, (model, data) =>
    evaluateCheckpoint(model, data.test, {
      checkpoint,
      ...evalOptions(f, model, data.train),
      ...(json !== undefined ? { json } : {}),
      ...(report !== undefined ? { report } : {}),
    }),
  );
  return 0;
}

export async function reportCommand(argv: string[]): Promise<number> {
  const parsed = parseFlags('report', argv, REPORT_FLAGS, 1);
  if (parsed.help) {
    console.log(reportHelp());
    return 0;
  }
  const [runDir] = parsed.positionals;
  if (runDir === undefined) throw new UsageError(`Expected RUN_DIR (the --out of a training run) for 'sdebnn report' but received none`);
  const { out, ...f } = parsed.values;
  const summaryFile = path.join(runDir, 'summary.json');
  const summary = fs.existsSync(summaryFile) ? (JSON.parse(fs.readFileSync(summaryFile, 'utf8')) as { seed?: number }) : {};
  const evaluationFlags = Object.keys(f).some((k) => k !== 'quiet' && k !== 'threads');
  await withModel(f, path.join(runDir, 'model.safetensors'), f.seed ?? summary.seed ?? 0, (model, data) =>
    reportRun(model, data.test, runDir, { ...evalOptions(f, model, data.train), out: out ?? path.join(runDir, 'report.html'), reuse: !evaluationFlags }),
  );
  return 0;
}
