import { describe, expect, it } from 'vitest';
import { sdebnn } from './helpers';

const H = (p: number[]) => -p.reduce((a, q) => a + (q > 0 ? q * Math.log(q) : 0), 0);

describe('uncertainty decomposition against hand computations', () => {
  // S = 2 paths, N = 2 examples, K = 2 classes:
  //   example 0: paths [1, 0] and [0, 1] disagree completely: mean [0.5, 0.5], total ln 2,
  //              expected entropy 0, MI ln 2, votes 1 and 1 -> variation ratio 1 - 1/2 = 0.5
  //   example 1: both paths [0.5, 0.5]: total ln 2 = expected, MI 0, votes both class 0 (first on ties) -> 0
  const twoPaths = { data: Float32Array.from([1, 0, 0.5, 0.5, 0, 1, 0.5, 0.5]), shape: [2, 2, 2] };

  it('separates disagreement between paths (epistemic) from noise within them (aleatoric)', () => {
    const d = sdebnn.decomposeUncertainty(twoPaths);
    expect(Array.from(d.probs.data)).toEqual([0.5, 0.5, 0.5, 0.5]);
    expect(d.totalEntropy[0]).toBeCloseTo(Math.LN2, 12);
    expect(d.expectedEntropy[0]).toBe(0);
    expect(d.mutualInformation[0]).toBeCloseTo(Math.LN2, 12);
    expect(d.variationRatio[0]).toBe(0.5);
    expect(d.totalEntropy[1]).toBeCloseTo(Math.LN2, 12);
    expect(d.expectedEntropy[1]).toBeCloseTo(Math.LN2, 12);
    expect(d.mutualInformation[1]).toBe(0);
    expect(d.variationRatio[1]).toBe(0);
    expect(Array.from(d.maxProbability)).toEqual([0.5, 0.5]);
    expect(Array.from(d.predicted)).toEqual([0, 0]);
  });

  it('three paths [0.9, 0.1], [0.6, 0.4], [0.3, 0.7]: mean [0.6, 0.4], MI = 0.136692, variation ratio 1/3', () => {
    // total H(0.6, 0.4) = 0.673012; expected (H(0.9,0.1) + H(0.6,0.4) + H(0.3,0.7)) / 3 = (0.325083 + 0.673012 + 0.610864) / 3 = 0.536320
    const s = { data: Float64Array.from([0.9, 0.1, 0.6, 0.4, 0.3, 0.7]), shape: [3, 1, 2] };
    const total = H([0.6, 0.4]);
    const expected = (H([0.9, 0.1]) + H([0.6, 0.4]) + H([0.3, 0.7])) / 3;
    expect(sdebnn.totalEntropy(s)[0]).toBeCloseTo(total, 12);
    expect(sdebnn.expectedEntropy(s)[0]).toBeCloseTo(expected, 12);
    expect(sdebnn.mutualInformation(s)[0]).toBeCloseTo(total - expected, 12);
    expect(sdebnn.mutualInformation(s)[0]).toBeCloseTo(0.136692, 6);
    expect(sdebnn.maxProbability(s)[0]).toBeCloseTo(0.6, 12);
    expect(sdebnn.variationRatio(s)[0]).toBeCloseTo(1 / 3, 12);
    // One path: no epistemic part at all.
    const one = sdebnn.decomposeUncertainty({ data: Float64Array.from([0.7, 0.3]), shape: [1, 1, 2] });
    expect(one.mutualInformation[0]).toBe(0);
    expect(one.totalEntropy[0]).toBeCloseTo(H([0.7, 0.3]), 12);
  });

  it('checks shapes and probabilities', () => {
    expect(() => sdebnn.decomposeUncertainty({ data: new Float32Array(4), shape: [2, 2] })).toThrow(
      /Expected shape \[S, N, K\] for samples\.shape but received \[2, 2\]/,
    );
    expect(() => sdebnn.decomposeUncertainty({ data: Float32Array.from([2, -1]), shape: [1, 1, 2] })).toThrow(/not logits/);
    expect(() => sdebnn.decomposeUncertainty({ data: new Float32Array(0), shape: [0, 1, 2] })).toThrow(/S >= 1/);
  });
});

describe('OOD detection against hand computations (in-distribution positive)', () => {
  // in [0.9, 0.8, 0.8, 0.3], out [0.8, 0.5, 0.1], higher = in.
  // Mann-Whitney over 12 pairs: 0.9 beats 3; each 0.8 beats 2 and ties 1 (2.5 each); 0.3 beats 1: 9 / 12 = 0.75.
  // Thresholds (score >= t): 0.9 tp 1 fp 0 | 0.8 tp 3 fp 1 | 0.5 tp 3 fp 2 | 0.3 tp 4 fp 2 | 0.1 tp 4 fp 3
  const inScores = [0.9, 0.8, 0.8, 0.3];
  const outScores = Float64Array.from([0.8, 0.5, 0.1]); // float64: 0.8 ties exactly with the in-distribution 0.8

  it('AUROC 0.75, AUPR-in 19/24, AUPR-out 13/18, FPR95 2/3', () => {
    const r = sdebnn.oodDetection(inScores, outScores, { higherMeans: 'in' });
    expect(r.auroc).toBeCloseTo(0.75, 12);
    // AP-in: recall steps 1/4 at precision 1, 2/4 at 3/4, 1/4 at 4/6: 0.25 + 0.375 + 1/6 = 19/24
    expect(r.auprIn).toBeCloseTo(19 / 24, 12);
    // AP-out (out positive, scores reversed): -0.1 tp 1 fp 0 | -0.3 tp 1 fp 1 | -0.5 tp 2 fp 1 | -0.8 tp 3 fp 3 | -0.9 tp 3 fp 4:
    // 1/3 * 1 + 1/3 * 2/3 + 1/3 * 3/6 = 13/18
    expect(r.auprOut).toBeCloseTo(13 / 18, 12);
    // TPR >= 0.95 needs tp = 4: first reached at t = 0.3, where fp = 2 of 3.
    expect(r.fprAtTpr).toBeCloseTo(2 / 3, 12);
    expect(r.tprLevel).toBe(0.95);
    expect([r.countIn, r.countOut]).toEqual([4, 3]);
    expect(sdebnn.oodDetection(inScores, outScores, { higherMeans: 'in', tprLevel: 0.75 }).fprAtTpr).toBeCloseTo(1 / 3, 12);
  });

  it('an uncertainty score (higher = out) negated gives the same numbers', () => {
    const r = sdebnn.oodDetection(
      inScores.map((s) => -s),
      Array.from(outScores, (s) => -s),
      { higherMeans: 'out' },
    );
    expect(r.auroc).toBeCloseTo(0.75, 12);
    expect(r.auprIn).toBeCloseTo(19 / 24, 12);
    expect(r.fprAtTpr).toBeCloseTo(2 / 3, 12);
  });

  it('the ROC curve steps through every distinct threshold and its trapezoid area is the AUROC', () => {
    const roc = sdebnn.rocCurve(inScores, outScores, { higherMeans: 'in' });
    expect(roc.fpr).toEqual([0, 0, 1 / 3, 2 / 3, 2 / 3, 1]);
    expect(roc.tpr).toEqual([0, 0.25, 0.75, 0.75, 1, 1]);
    let area = 0;
    for (let i = 1; i < roc.fpr.length; i++) area += ((roc.fpr[i]! - roc.fpr[i - 1]!) * (roc.tpr[i]! + roc.tpr[i - 1]!)) / 2;
    expect(area).toBeCloseTo(0.75, 12);
  });

  it('separable sets give 1, identical sets 0.5, reversed 0', () => {
    expect(sdebnn.oodDetection([2, 3], [0, 1], { higherMeans: 'in' }).auroc).toBe(1);
    expect(sdebnn.oodDetection([2, 3], [0, 1], { higherMeans: 'in' }).fprAtTpr).toBe(0);
    expect(sdebnn.oodDetection([1, 1], [1, 1, 1], { higherMeans: 'in' }).auroc).toBe(0.5);
    expect(sdebnn.oodDetection([0, 1], [2, 3], { higherMeans: 'in' }).auroc).toBe(0);
  });

  it('validates its arguments', () => {
    expect(() => sdebnn.oodDetection([1], [0], {} as never)).toThrow(/Expected one of 'in', 'out' for options\.higherMeans but received undefined/);
    expect(() => sdebnn.oodDetection([], [0], { higherMeans: 'in' })).toThrow(/at least one score for inScores/);
    expect(() => sdebnn.oodDetection([NaN], [0], { higherMeans: 'in' })).toThrow(/inScores but element 0 is NaN/);
    expect(() => sdebnn.oodDetection([1], [0], { higherMeans: 'in', tprLevel: 2 })).toThrow(/options\.tprLevel/);
  });
});

describe('selective prediction against hand computations', () => {
  // confidence [0.9, 0.8, 0.8, 0.6, 0.5], correct [1, 1, 0, 0, 1]. Kept in order 0.9 | {0.8, 0.8} (one right: each kept
  // adds 1/2 in expectation) | 0.6 | 0.5. Accuracy at k = 1..5: 1, (1 + 1/2)/2 = 0.75, 2/3, 2/4, 3/5.
  // AURC = mean risk = (0 + 0.25 + 1/3 + 0.5 + 0.4) / 5 = 89/300; oracle (3 right first): (1/4 + 2/5) / 5 = 0.13
  it('accuracy-coverage curve with tied confidences, AURC 89/300', () => {
    const r = sdebnn.selectivePrediction([0.9, 0.8, 0.8, 0.6, 0.5], [1, true, 0, false, 1]);
    expect(Array.from(r.coverage)).toEqual([0.2, 0.4, 0.6, 0.8, 1]);
    const expected = [1, 0.75, 2 / 3, 0.5, 0.6];
    r.accuracy.forEach((a, i) => expect(a).toBeCloseTo(expected[i]!, 12));
    expect(r.aurc).toBeCloseTo(89 / 300, 12);
    expect(r.optimalAurc).toBeCloseTo(0.13, 12);
    // The tie does not depend on input order.
    const swapped = sdebnn.selectivePrediction([0.9, 0.8, 0.8, 0.6, 0.5], [1, 0, 1, 0, 1]);
    expect(swapped.aurc).toBeCloseTo(89 / 300, 12);
  });

  it('validates its arguments', () => {
    expect(() => sdebnn.selectivePrediction([0.5, 0.4], [1])).toThrow(/Expected 2 entries \(one per confidence\) for correct/);
    expect(() => sdebnn.selectivePrediction([0.5], [2])).toThrow(/Expected 0, 1, true or false for correct\[0\] but received 2/);
  });
});
