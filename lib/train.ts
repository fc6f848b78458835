/**
 * Training and evaluation loops for SDE-BNNs: shuffled minibatches, a learning-rate schedule,
 * KL warm-up, per-epoch metrics, a JSON-lines log, a progress bar on a terminal, callbacks, and
 * checkpoints that resume to identical numbers. Each step is one native call.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MinibatchIterator, type Dataset, type MinibatchState } from './data/dataset';
import { readModelFile } from './model-file';
import { predictDataset } from './predict';
import { classificationMetrics, regressionMetrics, type ClassificationMetrics, type RegressionMetrics } from './metrics';
import type { SdeBnn, BnnTrainStepResult as TrainStepResult } from './bnn';
import {
  expectBoolean, expectFunction, expectInteger, expectKnownKeys, expectNonNegative, expectOneOf,
  expectOptionalObject, expectPositive, expectPositiveInteger, expectString, optional,
} from './validate';

type StepResult = TrainStepResult;

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
  /** Progress bar on stderr. Default: when stderr is a terminal. */
  progress?: boolean;
  onStep?: (step: StepLog) => void;
  onEpoch?: (epoch: EpochLog) => void;
  /** Transforms each training batch's inputs ([size, ...inputShape]) before the step, e.g. CIFAR crops and flips. */
  augment?: (inputs: Float32Array, shape: number[]) => Float32Array;
}

export interface StepLog extends StepResult {
  type: 'step';
  epoch: number;
  step: number;
  lr: number;
  beta: number;
  seconds: number;
}

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

const TRAIN_KEYS = [
  'epochs', 'batchSize', 'lr', 'lrSchedule', 'lrMin', 'warmupSteps', 'beta', 'betaWarmupSteps', 'seed', 'timeLimit',
  'evalEachEpoch', 'evalSamples', 'evalBatchSize', 'evalEma', 'logFile', 'checkpointFile', 'checkpointEvery', 'resume', 'progress', 'onStep', 'onEpoch',
  'augment',
] as const;

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
    progress: optional(o.progress, Boolean(process.stderr.isTTY), (v) => expectBoolean(v, 'options.progress')),
    onStep: o.onStep === undefined ? undefined : expectFunction<(s: StepLog) => void>(o.onStep, 'options.onStep'),
    onEpoch: o.onEpoch === undefined ? undefined : expectFunction<(e: EpochLog) => void>(o.onEpoch, 'options.onEpoch'),
    augment: o.augment === undefined ? undefined : expectFunction<(x: Float32Array, shape: number[]) => Float32Array>(o.augment, 'options.augment'),
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
  model.save(file, {
    metadata: {
      epoch: String(position.epoch),
      step: String(position.step),
      ...(position.iterator ? { iterator: JSON.stringify(position.iterator) } : {}),
    },
  });
}

/** Reads a checkpoint written by saveTrainingCheckpoint (or SdeBnn.save: position 0): config, state and position. */
export function readTrainingCheckpoint(file: string) {
  const { config, state, metadata } = readModelFile(file);
  return {
    state,
    config,
    epoch: Number(metadata.epoch ?? 0),
    step: Number(metadata.step ?? 0),
    iterator: metadata.iterator ? (JSON.parse(metadata.iterator) as MinibatchState) : undefined,
  };
}

class ProgressBar {
  private last = 0;
  constructor(private readonly enabled: boolean) {}
  update(text: string, fraction: number): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (now - this.last < 100 && fraction < 1) return;
    this.last = now;
    const width = 24;
    const filled = Math.round(Math.max(0, Math.min(1, fraction)) * width);
    process.stderr.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${text}\x1b[K`);
  }
  done(): void {
    if (this.enabled) process.stderr.write('\n');
  }
}

/** Evaluates on a dataset with S Monte Carlo weight paths (predictDataset): classificationMetrics (15 bins) or regression metrics. */
export async function evaluate(
  model: SdeBnn,
  dataset: Dataset,
  options: { samples?: number; batchSize?: number; ema?: boolean; seed?: number } = {},
): Promise<ClassificationMetrics | RegressionMetrics> {
  const o = expectOptionalObject(options, 'options');
  expectKnownKeys(o, 'options', ['samples', 'batchSize', 'ema', 'seed']);
  // Regression metrics take the paths themselves, [S, N] or [S, N, outputs].
  const out = await predictDataset(model, dataset, { ...o, keepSamples: model.config.likelihood !== 'categorical' });
  if (out.kind === 'categorical') {
    return classificationMetrics({ data: out.probs, shape: [out.count, out.classes] }, dataset.targets as Uint8Array);
  }
  const shape = out.outputs === 1 ? [out.samples, out.count] : [out.samples, out.count, out.outputs];
  return regressionMetrics({ data: out.sampleOutputs!, shape }, dataset.targets as Float32Array, { noiseStd: out.noiseScale });
}

/**
 * Trains `model` on `train` (and evaluates on `test` after each epoch). Resumes from
 * `checkpointFile` when `resume` is set and the file exists.
 */
export async function train(model: SdeBnn, data: { train: Dataset; test?: Dataset }, options: TrainOptions = {}): Promise<TrainResult> {
  const o = trainOptions(options, model.config);
  const iterator = new MinibatchIterator(data.train, { batchSize: o.batchSize, shuffle: true, seed: o.seed, dropLast: true });
  const totalSteps = o.epochs * iterator.batchesPerEpoch;
  let startEpoch = 0;
  let step = 0;
  if (o.resume && o.checkpointFile && fs.existsSync(o.checkpointFile)) {
    const saved = readTrainingCheckpoint(o.checkpointFile);
    model.setState(saved.state);
    startEpoch = saved.epoch;
    step = saved.step;
    if (saved.iterator) iterator.setState(saved.iterator);
  }
  if (o.logFile) fs.mkdirSync(path.dirname(path.resolve(o.logFile)), { recursive: true });
  const log = (entry: object) => {
    if (o.logFile) fs.appendFileSync(o.logFile, `${JSON.stringify(entry)}\n`);
  };
  const bar = new ProgressBar(o.progress);
  const started = Date.now();
  let trainSeconds = 0; // stepping time only: the time limit does not count evaluation
  const epochs: EpochLog[] = [];
  let stoppedEarly = false;
  for (let epoch = startEpoch; epoch < o.epochs && !stoppedEarly; epoch++) {
    const epochStart = Date.now();
    const sums = { loss: 0, nll: 0, kl: 0, accuracy: 0, nfe: 0, steps: 0 };
    for (const batch of iterator.epoch()) {
      const lr = learningRate(step, Math.max(step / totalSteps, trainSeconds / o.timeLimit), o);
      const beta = o.betaWarmupSteps > 0 ? (o.beta * Math.min(1, (step + 1) / o.betaWarmupSteps)) : o.beta;
      const stepStart = Date.now();
      const inputs = o.augment ? o.augment(batch.inputs, batch.shape) : batch.inputs;
      const result = await model.trainStep(inputs, batch.targets, { lr, beta });
      trainSeconds += (Date.now() - stepStart) / 1000;
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
      const entry: StepLog = { type: 'step', epoch, step, lr, beta, seconds, ...result };
      o.onStep?.(entry);
      if (step % 10 === 0) log(entry);
      bar.update(
        `epoch ${epoch + 1}/${o.epochs} step ${batch.index + 1}/${iterator.batchesPerEpoch} loss ${(sums.loss / sums.steps).toFixed(4)}` +
          (result.accuracy !== null ? ` acc ${(sums.accuracy / sums.steps).toFixed(3)}` : '') + ` kl ${result.kl.toExponential(2)} ${seconds.toFixed(0)}s`,
        (batch.index + 1) / iterator.batchesPerEpoch,
      );
      if (trainSeconds > o.timeLimit) {
        stoppedEarly = true;
        break;
      }
    }
    bar.done();
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
    if (data.test && (o.evalEachEpoch || last)) epochLog.test = await evaluate(model, data.test, { samples: o.evalSamples, batchSize: o.evalBatchSize, ema: o.evalEma });
    epochs.push(epochLog);
    log(epochLog);
    // Saved before the callback, so an interruption there loses nothing. A run stopped mid-epoch
    // resumes inside that epoch, where the iterator left off.
    if (o.checkpointFile && (last || (epoch + 1) % o.checkpointEvery === 0)) saveTrainingCheckpoint(o.checkpointFile, model, { epoch: stoppedEarly ? epoch : epoch + 1, step, iterator: iterator.getState() });
    o.onEpoch?.(epochLog);
  }
  return { epochs, steps: step, seconds: (Date.now() - started) / 1000, trainSeconds, test: epochs.at(-1)?.test, stoppedEarly };
}
