/**
 * Metrics of a score that ranks examples: out-of-distribution detection (AUROC, AUPR-in,
 * AUPR-out, FPR at 95% TPR, the ROC curve) and selective prediction (the accuracy-coverage
 * curve and AURC).
 *
 * OOD convention: in-distribution examples are the positives. A score is oriented by
 * `higherMeans`: 'in' for confidence-like scores (max probability), 'out' for uncertainty
 * scores (entropy, mutual information), which are negated internally. Ties are resolved
 * exactly, never by input order: AUROC is the Mann-Whitney statistic (a tied pair counts
 * 1/2), and every threshold takes a whole group of tied scores at once.
 */
import type { FloatArray } from './tensor';
import { describe, expectKnownKeys, expectObject, expectOneOf, expectOptionalObject, expectInRange, optional } from './validate';

/** One score per example. */
export type ScoreArray = FloatArray | readonly number[];

/** Options of oodDetection and rocCurve. */
export interface OodScoreOptions {
  /** Which set a higher score points to: 'in' (e.g. max probability) or 'out' (entropy, mutual information). */
  higherMeans: 'in' | 'out';
}

function expectScores(value: unknown, field: string): Float64Array {
  if (!(value instanceof Float32Array) && !(value instanceof Float64Array) && !Array.isArray(value)) {
    throw new TypeError(`Expected a Float32Array, Float64Array or number[] for ${field} but received ${describe(value)}`);
  }
  const out = Float64Array.from(value as ArrayLike<number>);
  if (out.length === 0) throw new RangeError(`Expected at least one score for ${field} but received ${describe(value)}`);
  for (let i = 0; i < out.length; i++) {
    if (Number.isNaN(out[i]!)) throw new RangeError(`Expected scores that are not NaN for ${field} but element ${i} is NaN`);
  }
  return out;
}

/** Both score sets as "higher = in-distribution". */
function orient(inScores: unknown, outScores: unknown, options: unknown): { pos: Float64Array; neg: Float64Array } {
  const o = expectObject(options, 'options');
  expectKnownKeys(o, 'options', ['higherMeans']);
  const higher = expectOneOf(o.higherMeans, 'options.higherMeans', ['in', 'out'] as const);
  const pos = expectScores(inScores, 'inScores');
  const neg = expectScores(outScores, 'outScores');
  if (higher === 'out') {
    for (let i = 0; i < pos.length; i++) pos[i] = -pos[i]!;
    for (let i = 0; i < neg.length; i++) neg[i] = -neg[i]!;
  }
  return { pos, neg };
}

/**
 * Cumulative counts at each distinct threshold, highest first: at threshold t the examples with
 * score >= t are "predicted positive". tp[j], fp[j] count positives and negatives at or above
 * the j-th distinct score.
 */
function thresholdCounts(pos: Float64Array, neg: Float64Array): { thresholds: number[]; tp: number[]; fp: number[] } {
  const all = [...Array.from(pos, (s) => [s, 1] as const), ...Array.from(neg, (s) => [s, 0] as const)];
  all.sort((a, b) => b[0] - a[0]);
  const thresholds: number[] = [];
  const tp: number[] = [];
  const fp: number[] = [];
  let t = 0;
  let f = 0;
  for (let i = 0; i < all.length; i++) {
    if (all[i]![1] === 1) t++;
    else f++;
    if (i + 1 === all.length || all[i + 1]![0] !== all[i]![0]) {
      thresholds.push(all[i]![0]);
      tp.push(t);
      fp.push(f);
    }
  }
  return { thresholds, tp, fp };
}

/** AUROC as the Mann-Whitney statistic from mid-ranks: P(s_in > s_out) + P(s_in = s_out) / 2. */
function mannWhitney(pos: Float64Array, neg: Float64Array): number {
  const all = [...Array.from(pos, (s) => [s, 1] as const), ...Array.from(neg, (s) => [s, 0] as const)];
  all.sort((a, b) => a[0] - b[0]);
  let rankSum = 0;
  for (let i = 0; i < all.length;) {
    let j = i;
    while (j < all.length && all[j]![0] === all[i]![0]) j++;
    const midRank = (i + 1 + j) / 2; // ranks i+1 .. j share their mean
    for (let m = i; m < j; m++) if (all[m]![1] === 1) rankSum += midRank;
    i = j;
  }
  const u = rankSum - (pos.length * (pos.length + 1)) / 2;
  return u / (pos.length * neg.length);
}

/** Average precision (the step-wise area under precision-recall: sum over thresholds of dRecall * precision). */
function averagePrecision(pos: Float64Array, neg: Float64Array): number {
  const { tp, fp } = thresholdCounts(pos, neg);
  let ap = 0;
  let previousRecall = 0;
  for (let j = 0; j < tp.length; j++) {
    const recall = tp[j]! / pos.length;
    ap += (recall - previousRecall) * (tp[j]! / (tp[j]! + fp[j]!));
    previousRecall = recall;
  }
  return ap;
}

/** The ROC curve of in- against out-of-distribution scores (rocCurve). */
export interface RocCurve {
  /** From (0, 0) to (1, 1), one point per distinct threshold (highest first). */
  fpr: number[];
  tpr: number[];
  /** The oriented score of each point after the first ("higher = in"; negated when higherMeans is 'out'). */
  thresholds: number[];
}

/** The ROC curve with in-distribution as positive; its trapezoidal area equals oodDetection's AUROC. */
export function rocCurve(inScores: ScoreArray, outScores: ScoreArray, options: OodScoreOptions): RocCurve {
  const { pos, neg } = orient(inScores, outScores, options);
  const { thresholds, tp, fp } = thresholdCounts(pos, neg);
  return { fpr: [0, ...fp.map((f) => f / neg.length)], tpr: [0, ...tp.map((t) => t / pos.length)], thresholds };
}

/** How well a score separates in- from out-of-distribution examples (oodDetection). */
export interface OodDetection {
  /** Area under the ROC curve (Mann-Whitney, ties count 1/2): 1 perfect, 0.5 chance. */
  auroc: number;
  /** Average precision with in-distribution as positive. */
  auprIn: number;
  /** Average precision with OOD as positive (the score reversed). */
  auprOut: number;
  /**
   * False-positive rate (OOD accepted as in) at the highest threshold whose true-positive rate
   * (in-distribution accepted) reaches `tprLevel` (default 0.95): FPR95.
   */
  fprAtTpr: number;
  tprLevel: number;
  countIn: number;
  countOut: number;
}

/** False-positive rate at the first threshold (highest first) where TPR >= level. */
function fprAt(pos: Float64Array, neg: Float64Array, level: number): number {
  const { tp, fp } = thresholdCounts(pos, neg);
  // Integer comparison avoids rounding in tp / n >= level (e.g. 19 / 20 against 0.95).
  for (let j = 0; j < tp.length; j++) if (tp[j]! >= level * pos.length - 1e-9 * pos.length) return fp[j]! / neg.length;
  return 1;
}

/** OOD detection metrics of one score for an in-distribution and an OOD set. */
export function oodDetection(inScores: ScoreArray, outScores: ScoreArray, options: OodScoreOptions & { tprLevel?: number }): OodDetection {
  const o = expectObject(options, 'options');
  const tprLevel = optional(o.tprLevel, 0.95, (v) => expectInRange(v, 'options.tprLevel', 0, 1));
  const { pos, neg } = orient(inScores, outScores, { higherMeans: o.higherMeans });
  const reversedPos = neg.map((s) => -s);
  const reversedNeg = pos.map((s) => -s);
  return {
    auroc: mannWhitney(pos, neg),
    auprIn: averagePrecision(pos, neg),
    auprOut: averagePrecision(reversedPos, reversedNeg),
    fprAtTpr: fprAt(pos, neg, tprLevel),
    tprLevel,
    countIn: pos.length,
    countOut: neg.length,
  };
}

/** Accuracy against coverage when only the most confident examples are kept (selectivePrediction). */
export interface SelectivePrediction {
  /** k / N for k = 1 ... N: the most confident k examples are kept. */
  coverage: Float64Array;
  /** Accuracy of the kept examples; within a group of tied confidences, its expectation over the order. */
  accuracy: Float64Array;
  /** Area under the risk-coverage curve (Geifman & El-Yaniv 2018): mean over k of 1 - accuracy[k]. */
  aurc: number;
  /** The same for an oracle that keeps every correct example first: the floor of AURC for this accuracy. */
  optimalAurc: number;
}

/**
 * The accuracy-coverage curve of a confidence score (higher = keep first; e.g. max probability,
 * or minus the entropy) and AURC. `correct[i]` is 1 (or true) where example i was classified
 * correctly. Tied confidences are kept together at a random order, so their expected accuracy
 * is used: k of a tied group of n with c correct adds k c / n correct examples.
 */
export function selectivePrediction(confidence: ScoreArray, correct: ArrayLike<number | boolean>, options?: Record<string, never>): SelectivePrediction {
  expectKnownKeys(expectOptionalObject(options, 'options'), 'options', []);
  const conf = expectScores(confidence, 'confidence');
  if (typeof correct !== 'object' || correct === null || correct.length !== conf.length) {
    throw new RangeError(`Expected ${conf.length} entries (one per confidence) for correct but received ${describe(correct)}`);
  }
  const n = conf.length;
  const hit = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const c = correct[i];
    if (c !== 0 && c !== 1 && c !== true && c !== false) throw new RangeError(`Expected 0, 1, true or false for correct[${i}] but received ${describe(c)}`);
    hit[i] = c === 1 || c === true ? 1 : 0;
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => conf[b]! - conf[a]!);
  const coverage = new Float64Array(n);
  const accuracy = new Float64Array(n);
  let risk = 0;
  let correctBefore = 0;
  for (let i = 0; i < n;) {
    let j = i;
    let groupCorrect = 0;
    while (j < n && conf[order[j]!] === conf[order[i]!]) groupCorrect += hit[order[j++]!]!;
    const size = j - i;
    for (let m = 1; m <= size; m++) {
      const k = i + m;
      coverage[k - 1] = k / n;
      accuracy[k - 1] = (correctBefore + (m * groupCorrect) / size) / k;
      risk += 1 - accuracy[k - 1]!;
    }
    correctBefore += groupCorrect;
    i = j;
  }
  let optimal = 0;
  for (let k = 1; k <= n; k++) optimal += Math.max(0, k - correctBefore) / k;
  return { coverage, accuracy, aurc: risk / n, optimalAurc: optimal / n };
}
