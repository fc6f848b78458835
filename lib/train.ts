/**
 * Training and evaluation loops for SDE-BNNs: shuffled minibatches, a learning-rate schedule,
 * KL warm-up, per-epoch metrics, a JSON-lines log, callbacks (from which a caller draws its own
 * progress display; train() prints nothing), and checkpoints that resume to identical numbers.
 * Each step is one native call.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DataParallel, resolveDistributedTrainOptions, type DistributedTrainOptions } from './data-parallel';
import type { ProcessGroup } from './distributed';
import { expectDataset, MinibatchIterator, type Dataset, type MinibatchState } from './data/dataset';
import { DataFormatError } from './errors';
import { metadataJson, readModelFile } from './model-file';
import { predictDataset } from './predict';
import { classificationMetrics, regressionMetrics, type ClassificationMetrics, type RegressionMetrics } from './metrics';
import { SdeBnn, type BnnTrainStepResult as TrainStepResult } from './bnn';
import {
  describe,
  expectBoolean,
  expectFunction,
  expectInteger,
  expectKnownKeys,
  expectNonNegative,
  expectObject,
  expectOneOf,
  expectOptionalObject,
  expectPositive,
  expectPositiveInteger,
  expectString,
  optional,
} from './validate';

type StepResult = TrainStepResult;

/** Options of train(): the schedule (epochs, batch, learning rate, KL warm-up), evaluation, logging, checkpoints and callbacks. */
export interface TrainOptions {
  epochs?: number;
  batchSize?: number;
  /** Peak learning rate. Default: the model's config.optimizer.lr. */
  lr?: number;
  /** 'cosine' decays to lrMin over the run; 'constant' keeps it. Default 'cosine'. */
  lrSchedule?: 'constant' | 'cosine';
  lrMin?: number;
  /** Linear learning-rate warm-up steps. Default 0. */
  warmupSteps?: number;
  /** KL weight beta in loss = NLL + beta KL / nTrain (1: the true ELBO). Default: the model's config.beta. */
  beta?: number;
  /** Linear warm-up of beta from 0 over this many steps. Default 0. */
  betaWarmupSteps?: number;
  seed?: number;
  /** Stop after this much training time (seconds, evaluation not counted); the epoch in progress ends early. */
  timeLimit?: number;
  /** Evaluate on the test set after every epoch (default true); otherwise once, at the end. */
  evalEachEpoch?: boolean;
  /** Monte Carlo weight paths for evaluation. Default 4. */
  evalSamples?: number;
  evalBatchSize?: number;
  /** Evaluate with the exponential moving average of the parameters (when the model keeps one). */
  evalEma?: boolean;
  /** JSON-lines log of steps and epochs. */
  logFile?: string;
  /** Written atomically after every `checkpointEvery` epochs and the last; resumed from with `resume`. */
  checkpointFile?: string;
  /** Default 1. Larger for runs of many short epochs, where each write would cost more than the epoch. */
  checkpointEvery?: number;
  resume?: boolean;
  /** Called after every step: the step's losses, its place in the epoch and the run, for progress displays. */
  onStep?: (step: StepLog) => void;
  /** Called after every epoch (and its evaluation and checkpoint). */
  onEpoch?: (epoch: EpochLog) => void;
  /** Transforms each training batch's inputs ([size, ...inputShape]) before the step, e.g. CIFAR crops and flips. */
  augment?: (inputs: Float32Array, shape: number[]) => Float32Array;
  /**
   * Data-parallel training (every rank calls train with the same model config and options):
   * batchSize is the global batch, split evenly between the ranks; rank 0's state and position
   * start every rank; gradients are averaged in each step; rank 0 alone writes the checkpoint and
   * the log; at each checkpoint all ranks prove they hold identical
   * parameters. onStep sees each rank's own shard, onEpoch the means over the ranks.
   */
  distributed?: DistributedTrainOptions;
}

/** One training step as onStep receives it and log.jsonl records it: the native step's loss terms plus the schedule's position. */
export interface StepLog extends StepResult {
  type: 'step';
  /** The epoch, from 0 (EpochLog.epoch counts from 1: the epochs done). */
  epoch: number;
  /** Steps done in the run, this one included. */
  step: number;
  /** This step's batch in the epoch, from 0, of batchesPerEpoch (global batches: the same on every rank). */
  batch: number;
  batchesPerEpoch: number;
  lr: number;
  beta: number;
  seconds: number;
}

/** One epoch's summary: mean training loss, time, and the test metrics when evaluated. */
export interface EpochLog {
  type: 'epoch';
  epoch: number;
  steps: number;
  loss: number;
  nll: number;
  kl: number;
  accuracy?: number;
  nfe: number;
  seconds: number;
  test?: ClassificationMetrics | RegressionMetrics;
}

/** What train() resolves with: steps taken, time, every epoch's log, and the last test metrics. */
export interface TrainResult {
  epochs: EpochLog[];
  steps: number;
  /** Wall time of the whole run, evaluation included. */
  seconds: number;
  /** Time spent in training steps. */
  trainSeconds: number;
  test?: ClassificationMetrics | RegressionMetrics;
  stoppedEarly: boolean;
}

/** The options that shape the run itself: every rank of a data-parallel run must share them (with the model and the data's shape). */
const SCHEDULE_KEYS = [
  'epochs',
  'batchSize',
  'lr',
  'lrSchedule',
  'lrMin',
  'warmupSteps',
  'beta',
  'betaWarmupSteps',
  'seed',
  'timeLimit',
  'evalEachEpoch',
  'evalSamples',
  'evalBatchSize',
  'evalEma',
  'checkpointEvery',
] as const;

const TRAIN_KEYS = [...SCHEDULE_KEYS, 'logFile', 'checkpointFile', 'resume', 'onStep', 'onEpoch', 'augment', 'distributed'] as const;

// lr and beta default to the model's own config, so that a model configured with them trains with them.
function trainOptions(options: unknown, config: { optimizer: { lr: number }; beta: number }) {
  const o = expectOptionalObject(options, 'options');
  expectKnownKeys(o, 'options', TRAIN_KEYS);
  return {
    epochs: optional(o.epochs, 1, (v) => expectPositiveInteger(v, 'options.epochs')),
    batchSize: optional(o.batchSize, 128, (v) => expectPositiveInteger(v, 'options.batchSize')),
    lr: optional(o.lr, config.optimizer.lr, (v) => expectPositive(v, 'options.lr')),
    lrSchedule: optional(o.lrSchedule, 'cosine' as const, (v) => expectOneOf(v, 'options.lrSchedule', ['constant', 'cosine'] as const)),
    lrMin: optional(o.lrMin, 0, (v) => expectNonNegative(v, 'options.lrMin')),
    warmupSteps: optional(o.warmupSteps, 0, (v) => expectInteger(v, 'options.warmupSteps', 0)),
    beta: optional(o.beta, config.beta, (v) => expectNonNegative(v, 'options.beta')),
    betaWarmupSteps: optional(o.betaWarmupSteps, 0, (v) => expectInteger(v, 'options.betaWarmupSteps', 0)),
    seed: optional(o.seed, 0, (v) => expectInteger(v, 'options.seed', 0, 2 ** 32 - 1)),
    timeLimit: optional(o.timeLimit, Infinity, (v) => expectPositive(v, 'options.timeLimit')),
    evalEachEpoch: optional(o.evalEachEpoch, true, (v) => expectBoolean(v, 'options.evalEachEpoch')),
    evalSamples: optional(o.evalSamples, 4, (v) => expectPositiveInteger(v, 'options.evalSamples')),
    evalBatchSize: optional(o.evalBatchSize, 500, (v) => expectPositiveInteger(v, 'options.evalBatchSize')),
    evalEma: optional(o.evalEma, false, (v) => expectBoolean(v, 'options.evalEma')),
    logFile: optional(o.logFile, undefined as string | undefined, (v) => expectString(v, 'options.logFile')),
    checkpointFile: optional(o.checkpointFile, undefined as string | undefined, (v) => expectString(v, 'options.checkpointFile')),
    checkpointEvery: optional(o.checkpointEvery, 1, (v) => expectPositiveInteger(v, 'options.checkpointEvery')),
    resume: optional(o.resume, false, (v) => expectBoolean(v, 'options.resume')),
    onStep: o.onStep === undefined ? undefined : expectFunction<(s: StepLog) => void>(o.onStep, 'options.onStep'),
    onEpoch: o.onEpoch === undefined ? undefined : expectFunction<(e: EpochLog) => void>(o.onEpoch, 'options.onEpoch'),
    augment: o.augment === undefined ? undefined : expectFunction<(x: Float32Array, shape: number[]) => Float32Array>(o.augment, 'options.augment'),
    distributed: o.distributed === undefined ? undefined : resolveDistributedTrainOptions(o.distributed, 'options.distributed'),
  };
}

/**
 * The learning rate at `step`: linear warm-up over warmupSteps, then constant or a cosine decay to
 * lrMin as `progress` (the fraction of the run done, by steps or by the time limit) goes to 1.
 */
export function learningRate(step: number, progress: number, o: { lr: number; lrSchedule: 'constant' | 'cosine'; lrMin: number; warmupSteps: number }): number {
  if (step < o.warmupSteps) return (o.lr * (step + 1)) / o.warmupSteps;
  if (o.lrSchedule === 'constant') return o.lr;
  const p = Math.min(1, Math.max(0, progress));
  return o.lrMin + 0.5 * (o.lr - o.lrMin) * (1 + Math.cos(Math.PI * p));
}

/** Writes a model (SdeBnn.save) with its training position, atomically. */
export function saveTrainingCheckpoint(file: string, model: SdeBnn, position: { epoch: number; step: number; iterator?: MinibatchState }): void {
  expectModel(model);
  const p = expectObject(position, 'position');
  expectKnownKeys(p, 'position', ['epoch', 'step', 'iterator']);
  const epoch = expectInteger(p.epoch, 'position.epoch', 0, Number.MAX_SAFE_INTEGER);
  const step = expectInteger(p.step, 'position.step', 0, Number.MAX_SAFE_INTEGER);
  const iterator = p.iterator === undefined ? undefined : expectObject(p.iterator, 'position.iterator');
  model.save(file, {
    metadata: { epoch: String(epoch), step: String(step), ...(iterator ? { iterator: JSON.stringify(iterator) } : {}) },
  });
}

/** A training checkpoint's metadata `key` as a non-negative integer (0 when absent), or a DataFormatError naming the file and key. */
function metadataCount(file: string, meta: Record<string, string>, key: string): number {
  const text = meta[key] ?? '0';
  if (!/^\d{1,15}$/.test(text)) {
    throw new DataFormatError(
      `Checkpoint ${file}: metadata ${key} is ${JSON.stringify(text.slice(0, 40))}, expected a non-negative integer`,
      'ERR_DATA_FORMAT',
    );
  }
  return Number(text);
}

/** Reads a checkpoint written by saveTrainingCheckpoint (or SdeBnn.save: position 0): config, state and position. */
export function readTrainingCheckpoint(file: string) {
  const { config, state, metadata } = readModelFile(file);
  return {
    state,
    config,
    epoch: metadataCount(file, metadata, 'epoch'),
    step: metadataCount(file, metadata, 'step'),
    iterator: metadataJson(file, metadata, 'iterator') as MinibatchState | undefined,
  };
}

function expectModel(model: unknown): SdeBnn {
  if (!(model instanceof SdeBnn)) throw new TypeError(`Expected an SdeBnn for model but received ${describe(model)}`);
  return model;
}

/** Checks a dataset and that it fits the model: the input shape, and labels (categorical) or targets of config.outputs values. */
function expectDatasetFor(model: SdeBnn, value: unknown, field: string): Dataset {
  const dataset = expectDataset(value, field);
  const c = model.config;
  if (dataset.inputShape.length !== c.inputShape.length || dataset.inputShape.some((s, i) => s !== c.inputShape[i])) {
    throw new RangeError(
      `Expected ${field}.inputShape [${c.inputShape.join(', ')}] (the model's config.inputShape) but received [${dataset.inputShape.join(', ')}]`,
    );
  }
  if (c.likelihood === 'categorical') {
    if (dataset.classes === undefined)
      throw new TypeError(`Expected class labels (Uint8Array) for ${field}.targets of a classifier but received regression targets`);
    if (dataset.classes > c.classes) {
      throw new RangeError(`Expected at most ${c.classes} classes (the model's config.classes) in ${field} but received ${dataset.classes}`);
    }
  } else if (dataset.classes !== undefined || dataset.targetShape.length !== 1 || dataset.targetShape[0] !== c.outputs) {
    throw new RangeError(
      `Expected regression targets of shape [${c.outputs}] (the model's config.outputs) for ${field}.targets but received ${dataset.classes !== undefined ? 'class labels' : `shape [${dataset.targetShape.join(', ')}]`}`,
    );
  }
  if (dataset.length === 0) throw new RangeError(`Expected at least one example in ${field} but received none`);
  return dataset;
}

/**
 * Evaluates on a dataset with S Monte Carlo weight paths (predictDataset, in batches with the
 * private Brownian streams seed + first index): classificationMetrics (15 bins) or regression
 * metrics. With `distributed`, the ranks split the batches and every rank gets the same metrics.
 */
export async function evaluate(
  model: SdeBnn,
  dataset: Dataset,
  options: { samples?: number; batchSize?: number; ema?: boolean; seed?: number; distributed?: { group: ProcessGroup } } = {},
): Promise<ClassificationMetrics | RegressionMetrics> {
  expectModel(model);
  expectDatasetFor(model, dataset, 'dataset');
  const o = expectOptionalObject(options, 'options');
  expectKnownKeys(o, 'options', ['samples', 'batchSize', 'ema', 'seed', 'distributed']);
  const { distributed, ...predictOptions } = o;
  // Data-parallel: rank r predicts batches r, r + worldSize, ...; a sum over the ranks gathers them
  // (the others' rows are zeros), so every rank gets the single-process metrics.
  const group = distributed === undefined ? undefined : resolveDistributedTrainOptions(distributed, 'options.distributed').group;
  const shard = group ? { shard: { rank: group.rank, count: group.worldSize } } : {};
  // Regression metrics take the paths themselves, [S, N] or [S, N, outputs].
  const out = await predictDataset(model, dataset, { ...predictOptions, ...shard, keepSamples: model.config.likelihood !== 'categorical' });
  if (out.kind === 'categorical') {
    if (group) await group.allReduce({ data: out.probs, shape: [out.count, out.classes] });
    return classificationMetrics({ data: out.probs, shape: [out.count, out.classes] }, dataset.targets);
  }
  const paths = out.sampleOutputs!;
  let noiseStd = out.noiseScale;
  if (group) {
    await group.allReduce({ data: paths, shape: [paths.length] });
    const scale = new Float64Array([noiseStd]); // 0 on a rank that predicted no batch
    await group.allReduce({ data: scale, shape: [1] }, { op: 'max' });
    noiseStd = scale[0]!;
  }
  const shape = out.outputs === 1 ? [out.samples, out.count] : [out.samples, out.count, out.outputs];
  return regressionMetrics({ data: paths, shape }, dataset.targets as Float32Array, { noiseStd });
}

/** What every rank of a data-parallel run must share: the model, the data's shape, the schedule. */
function runFingerprint(model: SdeBnn, data: { train: Dataset; test?: Dataset }, o: ReturnType<typeof trainOptions>): object {
  const options: Record<string, unknown> = Object.fromEntries(SCHEDULE_KEYS.map((key) => [key, o[key]]));
  return {
    config: { ...model.config, device: undefined }, // one GPU per rank
    data: { train: [data.train.length, ...data.train.inputShape], test: data.test?.length ?? 0 },
    options: { ...options, augment: Boolean(o.augment), weightPaths: o.distributed?.weightPaths },
  };
}

/**
 * Trains `model` on `train` (and evaluates on `test` after each epoch). Resumes from
 * `checkpointFile` when `resume` is set and the file exists.
 */
export async function train(model: SdeBnn, data: { train: Dataset; test?: Dataset }, options: TrainOptions = {}): Promise<TrainResult> {
  expectModel(model);
  const d = expectObject(data, 'data');
  expectKnownKeys(d, 'data', ['train', 'test']);
  const trainSet = expectDatasetFor(model, d.train, 'data.train');
  const testSet = d.test === undefined ? undefined : expectDatasetFor(model, d.test, 'data.test');
  const o = trainOptions(options, model.config);
  // Full batches only (dropLast): a batch larger than the data would train on nothing.
  if (o.batchSize > trainSet.length) {
    throw new RangeError(`Expected options.batchSize at most the ${trainSet.length} examples of data.train but received ${o.batchSize}`);
  }
  const dist = o.distributed;
  if (dist && o.batchSize % dist.group.worldSize !== 0) {
    throw new RangeError(
      `Expected options.batchSize (the global batch) to be a multiple of the world size ${dist.group.worldSize} but received ${o.batchSize}`,
    );
  }
  const shard = dist ? { shard: { rank: dist.group.rank, count: dist.group.worldSize } } : {};
  const iterator = new MinibatchIterator(trainSet, { batchSize: o.batchSize, shuffle: true, seed: o.seed, dropLast: true, ...shard });
  const totalSteps = o.epochs * iterator.batchesPerEpoch;
  let startEpoch = 0;
  let step = 0;
  const lead = !dist || dist.group.rank === 0; // writes the checkpoint and the log
  if (lead && o.resume && o.checkpointFile && fs.existsSync(o.checkpointFile)) {
    const saved = readTrainingCheckpoint(o.checkpointFile);
    if (saved.epoch >= o.epochs) {
      throw new RangeError(`Expected options.epochs above the ${saved.epoch} epochs checkpoint ${o.checkpointFile} has done (resume) but received ${o.epochs}`);
    }
    model.setState(saved.state);
    startEpoch = saved.epoch;
    step = saved.step;
    if (saved.iterator) iterator.setState(saved.iterator);
  }
  // Data-parallel: every rank continues from rank 0's state and position (lib/data-parallel.ts).
  let parallel: DataParallel | undefined;
  if (dist) {
    const joined = await DataParallel.start(model, dist, { epoch: startEpoch, step, iterator: iterator.getState() }, runFingerprint(model, data, o));
    ({ parallel } = joined);
    ({ epoch: startEpoch, step } = joined.position);
    iterator.setState(joined.position.iterator);
  }
  if (o.logFile && lead) fs.mkdirSync(path.dirname(path.resolve(o.logFile)), { recursive: true });
  const log = (entry: object) => {
    if (o.logFile && lead) fs.appendFileSync(o.logFile, `${JSON.stringify(entry)}\n`);
  };
  const started = Date.now();
  let trainSeconds = 0; // stepping time only: the time limit does not count evaluation
  const epochs: EpochLog[] = [];
  let stoppedEarly = false;
  for (let epoch = startEpoch; epoch < o.epochs && !stoppedEarly; epoch++) {
    const epochStart = Date.now();
    const sums = { loss: 0, nll: 0, kl: 0, accuracy: 0, nfe: 0, steps: 0 };
    for (const batch of iterator.epoch()) {
      const lr = learningRate(step, Math.max(step / totalSteps, trainSeconds / o.timeLimit), o);
      const beta = o.betaWarmupSteps > 0 ? o.beta * Math.min(1, (step + 1) / o.betaWarmupSteps) : o.beta;
      const stepStart = Date.now();
      const inputs = o.augment ? o.augment(batch.inputs, batch.shape) : batch.inputs;
      const trainStep = () => model.trainStep(inputs, batch.targets, { lr, beta });
      const result = await (parallel ? parallel.step(trainStep) : trainStep()); // averages the gradients over the ranks
      trainSeconds += (Date.now() - stepStart) / 1000;
      if (parallel && Number.isFinite(o.timeLimit)) trainSeconds = await parallel.agreedSeconds(trainSeconds);
      if (!Number.isFinite(result.loss)) {
        throw new RangeError(`Training diverged at step ${step} (loss ${result.loss}); lower lr, raise batchSize or lower the diffusion sigma`);
      }
      step++;
      sums.loss += result.loss;
      sums.nll += result.nll;
      sums.kl += result.kl;
      sums.accuracy += result.accuracy ?? 0;
      sums.nfe += result.nfe;
      sums.steps++;
      const seconds = (Date.now() - started) / 1000;
      const entry: StepLog = { type: 'step', epoch, step, batch: batch.index, batchesPerEpoch: iterator.batchesPerEpoch, lr, beta, seconds, ...result };
      o.onStep?.(entry);
      if (step % 10 === 0) log(entry);
      if (trainSeconds > o.timeLimit) {
        stoppedEarly = true;
        break;
      }
    }
    if (parallel) await parallel.average(sums);
    const n = Math.max(1, sums.steps);
    const epochLog: EpochLog = {
      type: 'epoch',
      epoch: epoch + 1,
      steps: sums.steps,
      loss: sums.loss / n,
      nll: sums.nll / n,
      kl: sums.kl / n,
      ...(model.config.likelihood === 'categorical' ? { accuracy: sums.accuracy / n } : {}),
      nfe: sums.nfe / n,
      seconds: (Date.now() - epochStart) / 1000,
    };
    const last = stoppedEarly || epoch + 1 === o.epochs;
    if (testSet && (o.evalEachEpoch || last)) {
      epochLog.test = await evaluate(model, testSet, {
        samples: o.evalSamples,
        batchSize: o.evalBatchSize,
        ema: o.evalEma,
        ...(dist ? { distributed: dist } : {}),
      });
    }
    epochs.push(epochLog);
    log(epochLog);
    // Saved before the callback, so an interruption there loses nothing. A run stopped mid-epoch
    // resumes inside that epoch, where the iterator left off.
    if (last || (epoch + 1) % o.checkpointEvery === 0) {
      await parallel?.verifyIdentical(step);
      if (o.checkpointFile && lead)
        saveTrainingCheckpoint(o.checkpointFile, model, { epoch: stoppedEarly ? epoch : epoch + 1, step, iterator: iterator.getState() });
    }
    o.onEpoch?.(epochLog);
  }
  return { epochs, steps: step, seconds: (Date.now() - started) / 1000, trainSeconds, test: epochs.at(-1)?.test, stoppedEarly };
}
