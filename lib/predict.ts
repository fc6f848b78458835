/**
 * Prediction over a whole dataset, streamed through the model in batches: per-example
 * summaries (the uncertainty decomposition of uncertainty.ts, or the regression mean and std)
 * as each batch finishes, progress after every batch, and the per-path probabilities
 * [S, N, K] only when asked for (keepSamples), so memory stays O(N K) otherwise.
 */
import type { SdeBnn } from './bnn';
import type { Dataset } from './data/dataset';
import { numel } from './tensor';
import { decomposeUncertainty, type UncertaintySummary } from './uncertainty';
import {
  describe,
  expectBoolean,
  expectFunction,
  expectInteger,
  expectKnownKeys,
  expectObject,
  expectOptionalObject,
  expectPositiveInteger,
  optional,
} from './validate';

/**
 * Images per native call by default (also train's evaluation batch, so its streams are unchanged).
 * Measured on the 10,000 MNIST test images (the default conv model, S = 2, 2 threads, medians of
 * three interleaved runs on a shared machine): chunks of 100, 250 and 500 took 23.1, 23.0 and
 * 23.8 s, chunks of 1,000 32.2 s and one call on all 10,000 36.1 s (1.5x).
 */
export const DEFAULT_PREDICT_BATCH_SIZE = 500;

/**
 * What predictDataset (and evaluateUncertainty) call: a model's config and predict, as an SdeBnn
 * or a DeepEnsemble (lib/ensemble.ts) has them.
 */
export type Predictor = Pick<SdeBnn, 'config' | 'predict'>;

/** predictDataset's progress, after each batch. */
export interface PredictProgress {
  /** Examples done, of `total`. */
  done: number;
  total: number;
  seconds: number;
}

/** Options of predictDataset. */
export interface PredictDatasetOptions {
  /** Monte Carlo weight paths (default 4). */
  samples?: number;
  /** Examples per native call (default DEFAULT_PREDICT_BATCH_SIZE). */
  batchSize?: number;
  /** The batch starting at example i draws its paths from the private Brownian stream seed + i (default 0). */
  seed?: number;
  ema?: boolean;
  /** The zero-noise view (BnnPredictOptions.deterministic); samples must be 1. */
  deterministic?: boolean;
  /** Also keep every path's probabilities (classification) or outputs (regression), [S, N, K] (default false). */
  keepSamples?: boolean;
  /** Called after every batch. */
  onProgress?: (progress: PredictProgress) => void;
  /**
   * Predict only batches rank, rank + count, ... (data-parallel evaluation: summed over the ranks,
   * the results are the single-process ones); the other examples' rows stay zero.
   */
  shard?: { rank: number; count: number };
}

/** predictDataset's result for a classifier: mean probabilities and per-example uncertainty. */
export interface DatasetClassification extends UncertaintySummary {
  kind: 'categorical';
  count: number;
  classes: number;
  samples: number;
  /** Mean class probabilities, [N, K] row-major. */
  probs: Float64Array;
  /** With keepSamples: [S, N, K]. */
  sampleProbs?: Float32Array;
  seconds: number;
}

/** predictDataset's result for a regressor: predictive mean and std per example and output. */
export interface DatasetRegression {
  kind: 'regression';
  count: number;
  outputs: number;
  samples: number;
  /** Mean and std over the paths (std divides by S - 1, as predict), [N, outputs]. */
  mean: Float64Array;
  std: Float64Array;
  noiseScale: number;
  /** With keepSamples: [S, N, outputs]. */
  sampleOutputs?: Float32Array;
  seconds: number;
}

/** predictDataset's result, by the model's likelihood. */
export type DatasetPrediction = DatasetClassification | DatasetRegression;

function inputsOf(model: Predictor, data: unknown): { inputs: Float32Array; n: number } {
  const per = numel(model.config.inputShape);
  const inputs = data instanceof Float32Array ? data : (data as Partial<Dataset> | null)?.inputs;
  if (!(inputs instanceof Float32Array)) {
    throw new TypeError(`Expected a Dataset or a Float32Array of inputs for data but received ${describe(data)}`);
  }
  if (inputs.length === 0 || inputs.length % per !== 0) {
    throw new RangeError(
      `Expected data to hold a positive multiple of ${per} values (inputShape [${model.config.inputShape.join(', ')}]) but received ${describe(inputs)}`,
    );
  }
  return { inputs, n: inputs.length / per };
}

function expectShard(value: unknown): { rank: number; count: number } {
  const s = expectObject(value, 'options.shard');
  expectKnownKeys(s, 'options.shard', ['rank', 'count']);
  const count = expectPositiveInteger(s.count, 'options.shard.count');
  return { rank: expectInteger(s.rank, 'options.shard.rank', 0, count - 1), count };
}

/**
 * Predicts every example of `data` (a Dataset, or a Float32Array of N x inputShape raw inputs)
 * in batches of `batchSize`, calling onProgress after each.
 */
export async function predictDataset(model: Predictor, data: Dataset | Float32Array, options: PredictDatasetOptions = {}): Promise<DatasetPrediction> {
  const o = expectOptionalObject(options, 'options');
  expectKnownKeys(o, 'options', ['samples', 'batchSize', 'seed', 'ema', 'deterministic', 'keepSamples', 'onProgress', 'shard']);
  const deterministic = optional(o.deterministic, false, (v) => expectBoolean(v, 'options.deterministic'));
  const samples = optional(o.samples, deterministic ? 1 : 4, (v) => expectPositiveInteger(v, 'options.samples'));
  const batchSize = optional(o.batchSize, DEFAULT_PREDICT_BATCH_SIZE, (v) => expectPositiveInteger(v, 'options.batchSize'));
  const seed = optional(o.seed, 0, (v) => expectInteger(v, 'options.seed', 0, 2 ** 32 - 1));
  const ema = optional(o.ema, false, (v) => expectBoolean(v, 'options.ema'));
  const keepSamples = optional(o.keepSamples, false, (v) => expectBoolean(v, 'options.keepSamples'));
  const shard = o.shard === undefined ? { rank: 0, count: 1 } : expectShard(o.shard);
  const onProgress = o.onProgress === undefined ? undefined : expectFunction<(p: PredictProgress) => void>(o.onProgress, 'options.onProgress');
  const { inputs, n } = inputsOf(model, data);
  const per = numel(model.config.inputShape);
  const categorical = model.config.likelihood === 'categorical';
  const k = categorical ? model.config.classes : model.config.outputs;
  const started = Date.now();

  const mean = new Float64Array(n * k);
  const kept = keepSamples ? new Float32Array(samples * n * k) : undefined;
  const summary: UncertaintySummary | undefined = categorical
    ? {
        predicted: new Int32Array(n),
        maxProbability: new Float64Array(n),
        totalEntropy: new Float64Array(n),
        expectedEntropy: new Float64Array(n),
        mutualInformation: new Float64Array(n),
        variationRatio: new Float64Array(n),
      }
    : undefined;
  const std = categorical ? undefined : new Float64Array(n * k);
  let noiseScale = 0;

  for (let start = 0; start < n; start += batchSize) {
    if ((start / batchSize) % shard.count !== shard.rank) continue;
    const size = Math.min(batchSize, n - start);
    // A private Brownian stream per batch: prediction neither depends on nor disturbs training.
    const out = await model.predict(inputs.subarray(start * per, (start + size) * per), {
      samples,
      ema,
      deterministic,
      seed: seed + start,
      returnSamples: categorical,
    });
    let paths: Float32Array | Float64Array;
    if (out.kind === 'categorical') {
      paths = out.samples!;
      const d = decomposeUncertainty({ data: paths, shape: [samples, size, k] });
      mean.set(d.probs.data, start * k);
      for (const key of Object.keys(summary!) as (keyof UncertaintySummary)[]) summary![key].set(d[key], start);
    } else {
      paths = out.samples;
      mean.set(out.mean, start * k);
      std!.set(out.std, start * k);
      noiseScale = out.noiseScale;
    }
    if (kept) for (let s = 0; s < samples; s++) kept.set(paths.subarray(s * size * k, (s + 1) * size * k), (s * n + start) * k);
    onProgress?.({ done: start + size, total: n, seconds: (Date.now() - started) / 1000 });
  }
  const seconds = (Date.now() - started) / 1000;
  if (categorical) {
    return { kind: 'categorical', count: n, classes: k, samples, probs: mean, ...summary!, ...(kept ? { sampleProbs: kept } : {}), seconds };
  }
  return { kind: 'regression', count: n, outputs: k, samples, mean, std: std!, noiseScale, ...(kept ? { sampleOutputs: kept } : {}), seconds };
}
