/**
 * Evaluation metrics for Bayesian predictions.
 *
 * Classification: from predictive probabilities [N, K] (rows summing to 1, e.g. softmax
 * outputs averaged over Monte Carlo samples) and integer labels: accuracy, negative
 * log-likelihood, Brier score, expected calibration error (ECE: equal-width and equal-mass
 * bins, and the maximum, MCE) and predictive entropy. Scores that rank examples (OOD
 * detection, selective prediction) are in score-metrics.ts, the uncertainty decomposition of
 * per-path probabilities in uncertainty.ts.
 * Regression: from S Monte Carlo samples of the prediction, the predictive mean and
 * standard deviation, the Gaussian negative log-likelihood and the RMSE.
 *
 * Sums run in float64 whatever the input precision. Natural logarithms throughout.
 */
import { isRowMajor } from './checkpoint';
import { numel, type FloatArray } from './tensor';
import { describe, expectInteger, expectKnownKeys, expectNonNegative, expectOptionalObject, expectPositive, optional } from './validate';

/** Probabilities below this are clamped before the log in `nll` (and `entropy` skips exact zeros). */
export const PROBABILITY_FLOOR = 1e-12;
/** Row sums of probabilities may differ from 1 by this much (float32 softmax rounding). */
export const ROW_SUM_TOLERANCE = 1e-3;

/** A row-major float array with its shape, e.g. probabilities [N, K] or samples [S, N, K]. */
export interface MatrixLike {
  data: FloatArray;
  shape: readonly number[];
}

/** Integer class labels, one per row. */
export type Labels = ArrayLike<number>;

function expectFloatData(value: unknown, field: string): { data: FloatArray; shape: number[] } {
  if (typeof value !== 'object' || value === null) {
    throw new TypeError(`Expected {data: Float32Array | Float64Array, shape} for ${field} but received ${describe(value)}`);
  }
  const { data, shape, strides } = value as { data?: unknown; shape?: unknown; strides?: unknown };
  if (!(data instanceof Float32Array) && !(data instanceof Float64Array)) {
    throw new TypeError(`Expected Float32Array or Float64Array for ${field}.data but received ${describe(data)}`);
  }
  if (!Array.isArray(shape)) throw new TypeError(`Expected an array of sizes for ${field}.shape but received ${describe(shape)}`);
  shape.forEach((s, i) => expectInteger(s, `${field}.shape[${i}]`, 0));
  if (strides !== undefined && !isRowMajor(shape as number[], strides)) {
    throw new RangeError(`Expected a contiguous (row-major) tensor for ${field} but received strides ${describe(strides)}`);
  }
  const size = numel(shape as number[]);
  if (size !== data.length) {
    throw new RangeError(`Expected ${field}.data to hold ${size} elements for shape [${shape.join(', ')}] but received ${data.length}`);
  }
  return { data, shape: shape as number[] };
}

/**
 * Checks predictive probabilities [N, K]: finite, in [0, 1], rows summing to 1 (within ROW_SUM_TOLERANCE).
 * @returns the data with its row count n and class count k
 */
export function checkProbabilities(probs: MatrixLike, field = 'probs'): { data: FloatArray; n: number; k: number } {
  const { data, shape } = expectFloatData(probs, field);
  if (shape.length !== 2) throw new RangeError(`Expected shape [N, K] for ${field}.shape but received [${shape.join(', ')}]`);
  const [n, k] = shape as [number, number];
  if (k < 1) throw new RangeError(`Expected at least one class (K >= 1) for ${field}.shape but received [${n}, ${k}]`);
  for (let i = 0; i < n; i++) {
    let sum = 0;
    for (let j = 0; j < k; j++) {
      const p = data[i * k + j]!;
      if (!(p >= -1e-7 && p <= 1 + 1e-7)) {
        throw new RangeError(`Expected probabilities in [0, 1] for ${field} but element [${i}, ${j}] is ${p}; pass softmax outputs, not logits`);
      }
      sum += p;
    }
    if (Math.abs(sum - 1) > ROW_SUM_TOLERANCE) {
      throw new RangeError(`Expected rows summing to 1 for ${field} but row ${i} sums to ${sum}; pass softmax outputs, not logits`);
    }
  }
  return { data, n, k };
}

function checkLabels(labels: Labels, n: number, k: number, field = 'labels'): Labels {
  if (typeof labels !== 'object' || labels === null || typeof labels.length !== 'number') {
    throw new TypeError(`Expected an array or typed array of class indices for ${field} but received ${describe(labels)}`);
  }
  if (labels.length !== n) throw new RangeError(`Expected ${n} labels (one per row of probs) for ${field} but received ${describe(labels)}`);
  for (let i = 0; i < n; i++) {
    const y = labels[i];
    if (!Number.isInteger(y) || y! < 0 || y! >= k) {
      throw new RangeError(`Expected class indices in [0, ${k - 1}] for ${field} but ${field}[${i}] is ${describe(y)}`);
    }
  }
  return labels;
}

function argmax(data: FloatArray, offset: number, k: number): number {
  let best = 0;
  let bestP = data[offset]!;
  for (let j = 1; j < k; j++) {
    const p = data[offset + j]!;
    if (p > bestP) {
      bestP = p;
      best = j;
    }
  }
  return best;
}

function mean(sum: number, n: number): number {
  return n === 0 ? NaN : sum / n;
}

/** Fraction of rows whose most probable class (the first, on ties) is the label. NaN for N = 0. */
export function accuracy(probs: MatrixLike, labels: Labels): number {
  const { data, n, k } = checkProbabilities(probs);
  checkLabels(labels, n, k);
  let correct = 0;
  for (let i = 0; i < n; i++) if (argmax(data, i * k, k) === labels[i]) correct++;
  return mean(correct, n);
}

/** Mean negative log-likelihood -log p[i, y_i], with p clamped below at PROBABILITY_FLOOR (1e-12). */
export function nll(probs: MatrixLike, labels: Labels): number {
  const { data, n, k } = checkProbabilities(probs);
  checkLabels(labels, n, k);
  let sum = 0;
  for (let i = 0; i < n; i++) sum -= Math.log(Math.max(data[i * k + labels[i]!]!, PROBABILITY_FLOOR));
  return mean(sum, n);
}

/** Mean over rows of sum_k (p_k - onehot_k)^2 (the multi-class Brier score, in [0, 2]). */
export function brierScore(probs: MatrixLike, labels: Labels): number {
  const { data, n, k } = checkProbabilities(probs);
  checkLabels(labels, n, k);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < k; j++) {
      const d = data[i * k + j]! - (labels[i] === j ? 1 : 0);
      sum += d * d;
    }
  }
  return mean(sum, n);
}

/** Per-bin confidence, accuracy and count of calibrationBins. */
export interface CalibrationBins {
  /** Bin b covers confidences in (lower[b], upper[b]]; the first bin also holds 0. */
  lower: number[];
  upper: number[];
  count: number[];
  /** Fraction correct in each bin (NaN for an empty bin). */
  accuracy: number[];
  /** Mean confidence in each bin (NaN for an empty bin). */
  confidence: number[];
  /** sum_b count_b / N * |accuracy_b - confidence_b| */
  ece: number;
}

/** The bin of a confidence c in equal-width bins (0, 1/B], (1/B, 2/B], ...; 0 goes to the first bin. */
function binOf(c: number, bins: number): number {
  let b = Math.ceil(c * bins) - 1;
  if (b < 0) b = 0;
  if (b > bins - 1) b = bins - 1;
  // Guard the edges against rounding in c * bins: bin b is (b/B, (b+1)/B].
  if (b > 0 && c <= b / bins) b--;
  else if (b < bins - 1 && c > (b + 1) / bins) b++;
  return b;
}

/** The calibration metrics' common part: the bin option, and each row's top-label confidence and correctness. */
function topLabel(probs: MatrixLike, labels: Labels, options: unknown): { bins: number; n: number; confidence: Float64Array; correct: Uint8Array } {
  const opts = expectOptionalObject(options, 'options');
  expectKnownKeys(opts, 'options', ['bins']);
  const bins = optional(opts.bins, 15, (v) => expectInteger(v, 'options.bins', 1));
  const { data, n, k } = checkProbabilities(probs);
  checkLabels(labels, n, k);
  const confidence = new Float64Array(n);
  const correct = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const pred = argmax(data, i * k, k);
    confidence[i] = data[i * k + pred]!;
    correct[i] = pred === labels[i] ? 1 : 0;
  }
  return { bins, n, confidence, correct };
}

/** Reliability diagram data and ECE; confidence is the largest probability of a row. */
export function calibrationBins(probs: MatrixLike, labels: Labels, options?: { bins?: number }): CalibrationBins {
  const { bins, n, confidence, correct: hit } = topLabel(probs, labels, options);
  const count = new Array<number>(bins).fill(0);
  const correct = new Array<number>(bins).fill(0);
  const confSum = new Array<number>(bins).fill(0);
  for (let i = 0; i < n; i++) {
    const b = binOf(confidence[i]!, bins);
    count[b]!++;
    confSum[b]! += confidence[i]!;
    correct[b]! += hit[i]!;
  }
  const acc = count.map((c, b) => (c === 0 ? NaN : correct[b]! / c));
  const conf = count.map((c, b) => (c === 0 ? NaN : confSum[b]! / c));
  let ece = 0;
  for (let b = 0; b < bins; b++) if (count[b]! > 0) ece += (count[b]! / n) * Math.abs(acc[b]! - conf[b]!);
  return {
    lower: count.map((_, b) => b / bins),
    upper: count.map((_, b) => (b + 1) / bins),
    count,
    accuracy: acc,
    confidence: conf,
    ece: n === 0 ? NaN : ece,
  };
}

/** Expected calibration error with `bins` equal-width confidence bins (default 15). */
export function expectedCalibrationError(probs: MatrixLike, labels: Labels, options?: { bins?: number }): number {
  return calibrationBins(probs, labels, options).ece;
}

/** Maximum calibration error: the largest |accuracy - confidence| over the non-empty equal-width bins (default 15). */
export function maxCalibrationError(probs: MatrixLike, labels: Labels, options?: { bins?: number }): number {
  const b = calibrationBins(probs, labels, options);
  let mce = NaN;
  for (let i = 0; i < b.count.length; i++) {
    if (b.count[i]! > 0) mce = Number.isNaN(mce) ? Math.abs(b.accuracy[i]! - b.confidence[i]!) : Math.max(mce, Math.abs(b.accuracy[i]! - b.confidence[i]!));
  }
  return mce;
}

/**
 * Adaptive (equal-mass) ECE (Nixon et al. 2019): the rows sorted by confidence (ties by row
 * order) and cut into `bins` (default 15) consecutive groups whose sizes differ by at most one,
 * the larger ones first (numpy's array_split), then sum_b n_b / N * |accuracy_b - confidence_b|.
 */
export function adaptiveCalibrationError(probs: MatrixLike, labels: Labels, options?: { bins?: number }): number {
  const { bins, n, confidence: conf, correct } = topLabel(probs, labels, options);
  if (n === 0) return NaN;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => conf[a]! - conf[b]! || a - b);
  const base = Math.floor(n / bins);
  const extra = n % bins;
  let ece = 0;
  let at = 0;
  for (let b = 0; b < bins; b++) {
    const size = base + (b < extra ? 1 : 0);
    if (size === 0) break;
    let hits = 0;
    let confSum = 0;
    for (let j = at; j < at + size; j++) {
      hits += correct[order[j]!]!;
      confSum += conf[order[j]!]!;
    }
    ece += Math.abs(hits - confSum) / n; // size / n * |hits / size - confSum / size|
    at += size;
  }
  return ece;
}

/** Entropy -sum_k p_k log p_k of each row (nats), terms with p_k = 0 contributing 0. */
export function predictiveEntropy(probs: MatrixLike): Float64Array {
  const { data, n, k } = checkProbabilities(probs);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let h = 0;
    for (let j = 0; j < k; j++) {
      const p = data[i * k + j]!;
      if (p > 0) h -= p * Math.log(p);
    }
    out[i] = h;
  }
  return out;
}

/** classificationMetrics's summary of predicted probabilities against labels. */
export interface ClassificationMetrics {
  count: number;
  accuracy: number;
  nll: number;
  brier: number;
  /** Top-label ECE with `eceBins` equal-width bins. */
  ece: number;
  /** The number of bins of ece, adaptiveEce and mce: report it with them. */
  eceBins: number;
  /** Equal-mass ECE with eceBins bins. */
  adaptiveEce: number;
  /** Maximum calibration error over the non-empty equal-width bins. */
  mce: number;
  /** Mean predictive entropy (nats). */
  entropy: number;
}

/** All classification metrics at once; `bins` (default 15) for the calibration errors. */
export function classificationMetrics(probs: MatrixLike, labels: Labels, options?: { bins?: number }): ClassificationMetrics {
  const { n } = checkProbabilities(probs);
  const h = predictiveEntropy(probs);
  const bins = calibrationBins(probs, labels, options);
  return {
    count: n,
    accuracy: accuracy(probs, labels),
    nll: nll(probs, labels),
    brier: brierScore(probs, labels),
    ece: bins.ece,
    eceBins: bins.count.length,
    adaptiveEce: adaptiveCalibrationError(probs, labels, options),
    mce: maxCalibrationError(probs, labels, options),
    entropy: mean(
      h.reduce((a, b) => a + b, 0),
      n,
    ),
  };
}

/** The Monte Carlo predictive distribution: the mean over S of probabilities [S, N, K], as [N, K]. */
export function meanProbabilities(samples: MatrixLike): { data: Float64Array; shape: [number, number] } {
  const { data, shape } = expectFloatData(samples, 'samples');
  if (shape.length !== 3) throw new RangeError(`Expected shape [S, N, K] for samples.shape but received [${shape.join(', ')}]`);
  const [s, n, k] = shape as [number, number, number];
  if (s < 1) throw new RangeError(`Expected at least one sample (S >= 1) for samples.shape but received [${shape.join(', ')}]`);
  const out = new Float64Array(n * k);
  for (let t = 0; t < s; t++) for (let i = 0; i < n * k; i++) out[i]! += data[t * n * k + i]!;
  for (let i = 0; i < n * k; i++) out[i]! /= s;
  return { data: out, shape: [n, k] };
}

// ---------------------------------------------------------------------------------------
// Regression

/** Mean and standard deviation over the samples of a regression (predictiveMoments). */
export interface PredictiveMoments {
  /** Mean over samples, shape `shape`. */
  mean: Float64Array;
  /** Standard deviation over samples (dividing by S: the spread of the sampled functions). */
  std: Float64Array;
  /** [N] or [N, D]: the sample shape without S. */
  shape: number[];
}

/** Mean and standard deviation over the first axis of samples [S, N] or [S, N, D] (two passes). */
export function predictiveMoments(samples: MatrixLike): PredictiveMoments {
  const { data, shape } = expectFloatData(samples, 'samples');
  if (shape.length < 2) throw new RangeError(`Expected shape [S, N] or [S, N, D] for samples.shape but received [${shape.join(', ')}]`);
  const s = shape[0]!;
  if (s < 1) throw new RangeError(`Expected at least one sample (S >= 1) for samples.shape but received [${shape.join(', ')}]`);
  const m = data.length / s;
  const mu = new Float64Array(m);
  const sd = new Float64Array(m);
  for (let t = 0; t < s; t++) for (let i = 0; i < m; i++) mu[i]! += data[t * m + i]!;
  for (let i = 0; i < m; i++) mu[i]! /= s;
  for (let t = 0; t < s; t++) {
    for (let i = 0; i < m; i++) {
      const d = data[t * m + i]! - mu[i]!;
      sd[i]! += d * d;
    }
  }
  for (let i = 0; i < m; i++) sd[i] = Math.sqrt(sd[i]! / s);
  return { mean: mu, std: sd, shape: shape.slice(1) };
}

function expectVector(value: unknown, field: string, length?: number): FloatArray {
  if (!(value instanceof Float32Array) && !(value instanceof Float64Array)) {
    throw new TypeError(`Expected Float32Array or Float64Array for ${field} but received ${describe(value)}`);
  }
  if (length !== undefined && value.length !== length) {
    throw new RangeError(`Expected ${length} elements (one per prediction) for ${field} but received ${describe(value)}`);
  }
  for (let i = 0; i < value.length; i++) {
    if (!Number.isFinite(value[i])) throw new RangeError(`Expected finite values for ${field} but element ${i} is ${value[i]}`);
  }
  return value;
}

/** Options of gaussianNll and regressionMetrics. */
export interface GaussianNllOptions {
  /** Observation noise std added in quadrature to the predictive std (default 0). */
  noiseStd?: number;
  /** Lower bound on the variance, so a zero spread gives a large finite NLL (default 1e-12). */
  minVariance?: number;
}

/**
 * Mean over elements of the Gaussian negative log-likelihood of `targets` under
 * N(mean, std^2 + noiseStd^2): 0.5 log(2 pi v) + (y - mean)^2 / (2 v).
 */
export function gaussianNll(mean: FloatArray, std: FloatArray, targets: FloatArray, options?: GaussianNllOptions): number {
  const opts = expectOptionalObject(options, 'options');
  expectKnownKeys(opts, 'options', ['noiseStd', 'minVariance']);
  const noise = optional(opts.noiseStd, 0, (v) => expectNonNegative(v, 'options.noiseStd'));
  const minVariance = optional(opts.minVariance, 1e-12, (v) => expectPositive(v, 'options.minVariance'));
  const mu = expectVector(mean, 'mean');
  const sd = expectVector(std, 'std', mu.length);
  const y = expectVector(targets, 'targets', mu.length);
  let sum = 0;
  for (let i = 0; i < mu.length; i++) {
    // v = max(sd^2 + noise^2, minVariance) in units of s^2, so that huge stds do not overflow.
    const s = Math.max(Math.abs(sd[i]!), noise, Math.sqrt(minVariance));
    const v = Math.max((sd[i]! / s) ** 2 + (noise / s) ** 2, (Math.sqrt(minVariance) / s) ** 2);
    const d = (y[i]! - mu[i]!) / s;
    sum += 0.5 * Math.log(2 * Math.PI * v) + Math.log(s) + (d * d) / (2 * v);
  }
  return mu.length === 0 ? NaN : sum / mu.length;
}

/** Root mean squared error between predictions (e.g. the predictive mean) and targets. */
export function rmse(predictions: FloatArray, targets: FloatArray): number {
  const p = expectVector(predictions, 'predictions');
  const y = expectVector(targets, 'targets', p.length);
  let sum = 0;
  for (let i = 0; i < p.length; i++) sum += (p[i]! - y[i]!) ** 2;
  return p.length === 0 ? NaN : Math.sqrt(sum / p.length);
}

/** regressionMetrics's summary: the predictive moments with their NLL and RMSE against the targets. */
export interface RegressionMetrics extends PredictiveMoments {
  nll: number;
  rmse: number;
}

/** Predictive moments of samples [S, N] or [S, N, D], then Gaussian NLL and RMSE against targets (N or N*D values). */
export function regressionMetrics(samples: MatrixLike, targets: FloatArray, options?: GaussianNllOptions): RegressionMetrics {
  const moments = predictiveMoments(samples);
  expectVector(targets, 'targets', moments.mean.length);
  return { ...moments, nll: gaussianNll(moments.mean, moments.std, targets, options), rmse: rmse(moments.mean, targets) };
}
