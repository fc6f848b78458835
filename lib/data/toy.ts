/**
 * The 1D toy regression of the SDE-BNN paper (Xu et al. 2022, Fig. 1-2): two clusters of
 * inputs, x uniform in [0, 2] and in [6, 8] (20 points each), targets y = cos(x) + noise.
 * A good posterior is confident on the clusters and widens between and beyond them.
 */
import { createDataset, type Dataset } from './dataset';
import type { SdeBnnConfig } from '../bnn-config';
import { Random } from '../random';
import { expectInteger, expectKnownKeys, expectNonNegative, expectNumber, expectOptionalObject, optional } from '../validate';

/** Options of toyRegression. */
export interface ToyRegressionOptions {
  /** Seed of the generator drawing x and the noise (default 0). */
  seed?: number;
  /** Standard deviation of the Gaussian noise on y (default 0.1). */
  noiseStd?: number;
  /** Points per cluster (default 20). */
  pointsPerCluster?: number;
}

/** The 1D toy regression set: the points, and them as a Dataset. */
export interface ToyRegression {
  /** Inputs, first the [0, 2] cluster then the [6, 8] cluster. */
  x: Float32Array;
  /** Noisy targets cos(x) + noise. */
  y: Float32Array;
  /** The same as a dataset: inputShape [1], targetShape [1]. */
  dataset: Dataset<Float32Array>;
}

/** The x ranges of the toy set's two clusters of points; between and beyond them there is no data. */
export const TOY_CLUSTERS: readonly (readonly [number, number])[] = [
  [0, 2],
  [6, 8],
];

/** Draws the toy data: per cluster, all x first, then one normal per point for the noise. */
export function toyRegression(options?: ToyRegressionOptions): ToyRegression {
  const opts = expectOptionalObject(options, 'options');
  expectKnownKeys(opts, 'options', ['seed', 'noiseStd', 'pointsPerCluster']);
  const seed = optional(opts.seed, 0, (v) => expectInteger(v, 'options.seed', 0, Number.MAX_SAFE_INTEGER));
  const noiseStd = optional(opts.noiseStd, 0.1, (v) => expectNonNegative(v, 'options.noiseStd'));
  const per = optional(opts.pointsPerCluster, 20, (v) => expectInteger(v, 'options.pointsPerCluster', 1));
  const rng = new Random(seed);
  const n = per * TOY_CLUSTERS.length;
  const x = new Float32Array(n);
  const y = new Float32Array(n);
  TOY_CLUSTERS.forEach(([low, high], c) => {
    for (let i = 0; i < per; i++) x[c * per + i] = rng.uniform(low, high);
  });
  for (let i = 0; i < n; i++) y[i] = Math.cos(x[i]!) + noiseStd * rng.normal();
  return { x, y, dataset: createDataset({ inputs: x, inputShape: [1], targets: y, targetShape: [1] }) };
}

/** Options of toyGrid. */
export interface GridOptions {
  /** Default -2. */
  min?: number;
  /** Default 10. */
  max?: number;
  /** Number of points, both ends included (default 241, a step of 0.05 on the default range). */
  count?: number;
}

/** Evenly spaced inputs for plotting predictions, ends included, as [count] (or a [count, 1] batch). */
export function toyGrid(options?: GridOptions): Float32Array {
  const opts = expectOptionalObject(options, 'options');
  expectKnownKeys(opts, 'options', ['min', 'max', 'count']);
  const min = optional(opts.min, -2, (v) => expectNumber(v, 'options.min'));
  const max = optional(opts.max, 10, (v) => expectNumber(v, 'options.max'));
  const count = optional(opts.count, 241, (v) => expectInteger(v, 'options.count', 1));
  if (!(max >= min)) throw new RangeError(`Expected options.max >= options.min but received min ${min}, max ${max}`);
  const grid = new Float32Array(count);
  if (count === 1) grid[0] = min;
  else for (let i = 0; i < count; i++) grid[i] = min + ((max - min) * i) / (count - 1);
  return grid;
}

/**
 * The SDE-BNN for the toy (`sdebnn train --dataset toy` and the tests): trained for 10,000 full-batch
 * steps it is confident on the clusters and 2.3-4.3x less so between them (median 3.6x over seeds
 * 0-5; see test/train.test.ts). Why each setting:
 * - inputs (x - 4) / 0.5: the gap centred at 0, the clusters at |u| in [4, 8], where tanh units
 *   saturate; units whose kinks lie in the gap carry weight noise that shows only there;
 * - sigma 0.3: path noise large enough to matter (0.05 leaves almost none) but small enough that
 *   the hypernetwork can hold it down on the data (0.7 and above underfit);
 * - a [64, 64] softplus hypernetwork and 40 steps: room and resolution for that contraction;
 * - beta 1e-4: a strongly tempered KL; at 1e-3 the ratio falls to 2.2-2.9 (more noise left on the data).
 */
export function toyModelConfig(): SdeBnnConfig {
  return {
    kind: 'mlp',
    inputShape: [1],
    likelihood: 'gaussian',
    nTrain: 40,
    inputNormalization: { shift: 4, scale: 0.5 },
    activation: 'tanh',
    timeInput: true,
    sigma: 0.3,
    hypernet: { hidden: [64, 64], activation: 'softplus' },
    estimator: 'stl',
    solver: { steps: 40 },
    beta: 1e-4,
  };
}
