/**
 * The uncertainty evaluation of a classifier: clean calibration and selective prediction,
 * the same network's deterministic (zero-noise) view, accuracy/NLL/ECE/entropy under every
 * corruption and severity of a shift suite, and OOD detection by entropy, mutual information
 * and max probability. The result is plain JSON (arrays, not typed arrays): the CLI prints it
 * as a table, writes it with --json, and the HTML report draws it.
 *
 * Inputs are raw pixel intensities in [0, 1] (the loaders' default); the model normalises them.
 */
import type { Dataset } from './data/dataset';
import type { OodImages } from './data/ood';
import { calibrationBins, classificationMetrics, type ClassificationMetrics } from './metrics';
import { predictDataset, type DatasetClassification, type Predictor } from './predict';
import { oodDetection, rocCurve, selectivePrediction, type OodDetection } from './score-metrics';
import { numel } from './tensor';
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

/** One corruption of a shift suite (lib/shift's Corruption has this shape). */
export interface CorruptionLike {
  readonly name: string;
  readonly severities: number;
  readonly source: string;
  /** A corrupted copy of images [N, C, H, W] in [0, 1] at a severity (1 .. severities), the same for the same seed. */
  apply(images: Float32Array, shape: readonly [number, number, number, number], severity: number, seed: number): Float32Array;
}

/** A named list of corruptions (lib/shift's suites have this shape). */
export interface ShiftSuiteLike {
  /** e.g. 'mnist-c'. */
  name: string;
  corruptions: readonly CorruptionLike[];
}

/** The uncertainty scores OOD detection is measured with. */
export const OOD_SCORES = ['entropy', 'mutualInformation', 'maxProbability'] as const;
/** One of OOD_SCORES. */
export type OodScoreName = (typeof OOD_SCORES)[number];

/** evaluateUncertainty's progress, per batch of each stage. */
export interface EvaluationProgress {
  /** 'clean', 'deterministic', 'shift <corruption> <severity>' or 'ood <name>'. */
  stage: string;
  done: number;
  total: number;
}

/** Options of evaluateUncertainty. */
export interface EvaluationOptions {
  /** Monte Carlo weight paths (default 4). */
  samples?: number;
  batchSize?: number;
  /** Brownian streams of prediction and the corruptions' seed (default 0). */
  seed?: number;
  /** Equal-width (and equal-mass) calibration bins (default 15). */
  bins?: number;
  /** Also the clean metrics of the deterministic view (default true). */
  deterministic?: boolean;
  shift?: ShiftSuiteLike;
  /** Test images per corruption and severity (default: all). */
  shiftLimit?: number;
  /** OOD sets, raw [0, 1] images of the model's input shape (see loadOodImages). */
  ood?: readonly OodImages[];
  /** Called after each batch of each stage. */
  onProgress?: (progress: EvaluationProgress) => void;
}

/** Counts on bin edges. */
export interface Histogram {
  /** Bin edges: bins + 1 values from min to max. */
  edges: number[];
  counts: number[];
}

/** Means over a set of the per-example uncertainty measures. */
export interface UncertaintyMeans {
  entropy: number;
  expectedEntropy: number;
  mutualInformation: number;
  maxProbability: number;
  variationRatio: number;
}

/** The test set's metrics, calibration, selective prediction and uncertainty histograms. */
export interface CleanEvaluation {
  metrics: ClassificationMetrics;
  means: UncertaintyMeans;
  /** Equal-width reliability bins (calibrationBins) with `bins` bins. */
  reliability: { lower: number[]; upper: number[]; count: number[]; accuracy: (number | null)[]; confidence: (number | null)[] };
  /** Accuracy against coverage (max probability as the confidence), at 1%, 2%, ... 100%. */
  selective: { coverage: number[]; accuracy: number[]; aurc: number; optimalAurc: number };
  histograms: { entropy: Histogram; mutualInformation: Histogram };
  seconds: number;
  imagesPerSecond: number;
}

/** Metrics on the test set under one corruption at one severity. */
export interface ShiftEvaluation {
  corruption: string;
  severity: number;
  source: string;
  count: number;
  accuracy: number;
  nll: number;
  ece: number;
  brier: number;
  entropy: number;
  mutualInformation: number;
}

/** How well each uncertainty score tells one OOD set from the test set. */
export interface OodEvaluation {
  name: string;
  count: number;
  scores: Record<OodScoreName, OodDetection & { roc: { fpr: number[]; tpr: number[] } }>;
  histograms: { entropy: Histogram; mutualInformation: Histogram };
  means: UncertaintyMeans;
}

/** evaluateUncertainty's result: clean, shifted and OOD evaluations of one model. */
export interface Evaluation {
  samples: number;
  bins: number;
  classes: number;
  inputShape: number[];
  clean: CleanEvaluation;
  deterministic?: ClassificationMetrics;
  shift?: { suite: string; limit: number; results: ShiftEvaluation[] };
  ood: OodEvaluation[];
  seconds: number;
}

/** Counts of `values` in `bins` equal bins on [min, max] (values outside go to the end bins). */
export function histogram(values: ArrayLike<number>, min: number, max: number, bins: number): Histogram {
  const counts = new Array<number>(bins).fill(0);
  const width = (max - min) / bins;
  for (let i = 0; i < values.length; i++) {
    const b = Math.floor((values[i]! - min) / width);
    counts[Math.min(bins - 1, Math.max(0, b))]!++;
  }
  return { edges: Array.from({ length: bins + 1 }, (_, b) => min + b * width), counts };
}

/** At most `points` points of a curve, evenly spaced by index, the ends kept. */
function thin(xs: ArrayLike<number>, ys: ArrayLike<number>, points: number): { x: number[]; y: number[] } {
  if (xs.length <= points) return { x: Array.from(xs), y: Array.from(ys) };
  const x: number[] = [];
  const y: number[] = [];
  for (let i = 0; i < points; i++) {
    const at = Math.round((i * (xs.length - 1)) / (points - 1));
    x.push(xs[at]!);
    y.push(ys[at]!);
  }
  return { x, y };
}

function meanOf(values: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < values.length; i++) s += values[i]!;
  return values.length === 0 ? NaN : s / values.length;
}

function means(p: DatasetClassification): UncertaintyMeans {
  return {
    entropy: meanOf(p.totalEntropy),
    expectedEntropy: meanOf(p.expectedEntropy),
    mutualInformation: meanOf(p.mutualInformation),
    maxProbability: meanOf(p.maxProbability),
    variationRatio: meanOf(p.variationRatio),
  };
}

const HISTOGRAM_BINS = 30;
const CURVE_POINTS = 200;

/**
 * Entropy and MI histograms of every set on shared edges: entropy on [0, ln K]; MI, usually a
 * small fraction of ln K, on [0, its largest value over all sets].
 */
function uncertaintyHistograms(sets: DatasetClassification[]): { entropy: Histogram; mutualInformation: Histogram }[] {
  let miTop = 0;
  for (const p of sets) for (const v of p.mutualInformation) miTop = Math.max(miTop, v);
  const entropyTop = Math.log(sets[0]!.classes);
  return sets.map((p) => ({
    entropy: histogram(p.totalEntropy, 0, entropyTop, HISTOGRAM_BINS),
    mutualInformation: histogram(p.mutualInformation, 0, miTop > 0 ? miTop : entropyTop, HISTOGRAM_BINS),
  }));
}

function scoreOf(p: DatasetClassification, score: OodScoreName): Float64Array {
  return score === 'entropy' ? p.totalEntropy : score === 'mutualInformation' ? p.mutualInformation : p.maxProbability;
}

function cleanEvaluation(
  p: DatasetClassification,
  labels: Uint8Array,
  bins: number,
  metrics: ClassificationMetrics,
  histograms: CleanEvaluation['histograms'],
): CleanEvaluation {
  const rel = calibrationBins({ data: p.probs, shape: [p.count, p.classes] }, labels, { bins });
  const sel = selectivePrediction(
    p.maxProbability,
    Array.from(p.predicted, (c, i) => (c === labels[i] ? 1 : 0)),
  );
  const at = Array.from({ length: 100 }, (_, i) => Math.max(0, Math.round(((i + 1) / 100) * p.count) - 1)); // coverage 1% ... 100%
  return {
    metrics,
    means: means(p),
    reliability: {
      lower: rel.lower,
      upper: rel.upper,
      count: rel.count,
      accuracy: rel.accuracy.map((v) => (Number.isNaN(v) ? null : v)),
      confidence: rel.confidence.map((v) => (Number.isNaN(v) ? null : v)),
    },
    selective: { coverage: at.map((k) => sel.coverage[k]!), accuracy: at.map((k) => sel.accuracy[k]!), aurc: sel.aurc, optimalAurc: sel.optimalAurc },
    histograms,
    seconds: p.seconds,
    imagesPerSecond: p.count / p.seconds,
  };
}

/** Each OOD score's detection metrics and (thinned) ROC curve, the test set as positive. */
function oodScores(clean: DatasetClassification, ood: DatasetClassification): OodEvaluation['scores'] {
  const scores = {} as OodEvaluation['scores'];
  for (const score of OOD_SCORES) {
    const higherMeans = score === 'maxProbability' ? 'in' : 'out';
    const roc = rocCurve(scoreOf(clean, score), scoreOf(ood, score), { higherMeans });
    const thinned = thin(roc.fpr, roc.tpr, CURVE_POINTS);
    scores[score] = { ...oodDetection(scoreOf(clean, score), scoreOf(ood, score), { higherMeans }), roc: { fpr: thinned.x, tpr: thinned.y } };
  }
  return scores;
}

function expectSuite(value: unknown): ShiftSuiteLike {
  const s = expectObject(value, 'options.shift');
  if (typeof s.name !== 'string' || !Array.isArray(s.corruptions)) {
    throw new TypeError(`Expected {name, corruptions} for options.shift but received ${describe(value)}`);
  }
  return s as unknown as ShiftSuiteLike;
}

/**
 * Evaluates a classifier on `test` (raw [0, 1] images with labels), under the corruptions of
 * `options.shift`, and against each OOD set of `options.ood`.
 */
export async function evaluateUncertainty(model: Predictor, test: Dataset, options: EvaluationOptions = {}): Promise<Evaluation> {
  const o = expectOptionalObject(options, 'options');
  expectKnownKeys(o, 'options', ['samples', 'batchSize', 'seed', 'bins', 'deterministic', 'shift', 'shiftLimit', 'ood', 'onProgress']);
  if (model.config.likelihood !== 'categorical')
    throw new RangeError(`Expected a classifier (likelihood 'categorical') but the model's likelihood is '${model.config.likelihood}'`);
  const samples = optional(o.samples, 4, (v) => expectPositiveInteger(v, 'options.samples'));
  const batchSize = o.batchSize === undefined ? undefined : expectPositiveInteger(o.batchSize, 'options.batchSize');
  const seed = optional(o.seed, 0, (v) => expectInteger(v, 'options.seed', 0, 2 ** 31 - 1));
  const bins = optional(o.bins, 15, (v) => expectPositiveInteger(v, 'options.bins'));
  const withDeterministic = optional(o.deterministic, true, (v) => expectBoolean(v, 'options.deterministic'));
  const shift = o.shift === undefined ? undefined : expectSuite(o.shift);
  const shiftLimit = optional(o.shiftLimit, test.length, (v) => expectPositiveInteger(v, 'options.shiftLimit'));
  if (o.ood !== undefined && !Array.isArray(o.ood)) throw new TypeError(`Expected an array of OOD image sets for options.ood but received ${describe(o.ood)}`);
  const oodSets = (o.ood ?? []) as readonly OodImages[];
  const onProgress = o.onProgress === undefined ? undefined : expectFunction<(p: EvaluationProgress) => void>(o.onProgress, 'options.onProgress');
  const labels = test.targets as Uint8Array;
  const shape = [test.length, ...test.inputShape] as [number, number, number, number];
  if (shape.length !== 4) throw new RangeError(`Expected image inputs [C, H, W] for test.inputShape but received [${test.inputShape.join(', ')}]`);
  const started = Date.now();

  const run = (stage: string, inputs: Float32Array, extra: { deterministic?: boolean } = {}) =>
    predictDataset(model, inputs, {
      samples: extra.deterministic ? 1 : samples,
      seed,
      ...(batchSize ? { batchSize } : {}),
      ...extra,
      onProgress: (p) => onProgress?.({ stage, done: p.done, total: p.total }),
    }) as Promise<DatasetClassification>;
  const metricsOf = (p: DatasetClassification, y: Uint8Array) => classificationMetrics({ data: p.probs, shape: [p.count, p.classes] }, y, { bins });

  const clean = await run('clean', test.inputs);
  const deterministic = withDeterministic ? metricsOf(await run('deterministic', test.inputs, { deterministic: true }), labels) : undefined;

  let shiftResult: Evaluation['shift'];
  if (shift) {
    const count = Math.min(shiftLimit, test.length);
    const part = test.inputs.subarray(0, count * numel(test.inputShape));
    const partShape: [number, number, number, number] = [count, shape[1], shape[2], shape[3]];
    const y = labels.subarray(0, count);
    const results: ShiftEvaluation[] = [];
    for (const c of shift.corruptions) {
      for (let severity = 1; severity <= c.severities; severity++) {
        const p = await run(`shift ${c.name} ${severity}`, c.apply(part, partShape, severity, seed));
        const m = metricsOf(p, y);
        results.push({
          corruption: c.name,
          severity,
          source: c.source,
          count,
          accuracy: m.accuracy,
          nll: m.nll,
          ece: m.ece,
          brier: m.brier,
          entropy: m.entropy,
          mutualInformation: meanOf(p.mutualInformation),
        });
      }
    }
    shiftResult = { suite: shift.name, limit: count, results };
  }

  const oodPredictions: DatasetClassification[] = [];
  for (const set of oodSets) {
    if (set.shape.slice(1).some((s, i) => s !== test.inputShape[i])) {
      throw new RangeError(`Expected OOD set '${set.name}' of shape [N, ${test.inputShape.join(', ')}] but received [${set.shape.join(', ')}]`);
    }
    oodPredictions.push(await run(`ood ${set.name}`, set.images));
  }

  const histograms = uncertaintyHistograms([clean, ...oodPredictions]);
  return {
    samples,
    bins,
    classes: clean.classes,
    inputShape: [...test.inputShape],
    clean: cleanEvaluation(clean, labels, bins, metricsOf(clean, labels), histograms[0]!),
    ...(deterministic ? { deterministic } : {}),
    ...(shiftResult ? { shift: shiftResult } : {}),
    ood: oodPredictions.map((p, i) => ({
      name: oodSets[i]!.name,
      count: p.count,
      scores: oodScores(clean, p),
      histograms: histograms[i + 1]!,
      means: means(p),
    })),
    seconds: (Date.now() - started) / 1000,
  };
}
