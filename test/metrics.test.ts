import { describe, expect, it } from 'vitest';
import { sdebnn } from './helpers';

const { Random } = sdebnn;

function probs(rows: number[][], Array: Float32ArrayConstructor | Float64ArrayConstructor = Float64Array) {
  return { data: Array.from(rows.flat()), shape: [rows.length, rows[0]!.length] };
}

describe('classification metrics against hand computations', () => {
  // N = 4, K = 3 (float64, so 0.6 is exactly the bin edge 9/15):
  //   row  probabilities       label  argmax  correct  confidence  p[label]
  //   0    [0.7,  0.2,  0.1 ]  0      0       yes      0.7         0.7
  //   1    [0.1,  0.6,  0.3 ]  2      1       no       0.6         0.3
  //   2    [0.25, 0.25, 0.5 ]  2      2       yes      0.5         0.5
  //   3    [0.05, 0.9,  0.05]  1      1       yes      0.9         0.9
  const p = probs([
    [0.7, 0.2, 0.1],
    [0.1, 0.6, 0.3],
    [0.25, 0.25, 0.5],
    [0.05, 0.9, 0.05],
  ]);
  const y = [0, 2, 2, 1];

  it('accuracy: 3 of 4 correct = 0.75', () => {
    expect(sdebnn.accuracy(p, y)).toBe(0.75);
  });

  it('NLL: -(ln 0.7 + ln 0.3 + ln 0.5 + ln 0.9) / 4 = (0.356675 + 1.203973 + 0.693147 + 0.105361) / 4 = 0.5897889', () => {
    expect(sdebnn.nll(p, y)).toBeCloseTo(0.58978886112061, 12);
  });

  it('Brier: row sums of (p - onehot)^2 are 0.14, 0.86, 0.375, 0.015; mean 1.39 / 4 = 0.3475', () => {
    // row 0: 0.3^2 + 0.2^2 + 0.1^2 = 0.09 + 0.04 + 0.01 = 0.14
    // row 1: 0.1^2 + 0.6^2 + 0.7^2 = 0.01 + 0.36 + 0.49 = 0.86
    // row 2: 0.25^2 + 0.25^2 + 0.5^2 = 0.0625 + 0.0625 + 0.25 = 0.375
    // row 3: 0.05^2 + 0.1^2 + 0.05^2 = 0.0025 + 0.01 + 0.0025 = 0.015
    expect(sdebnn.brierScore(p, y)).toBeCloseTo(0.3475, 12);
  });

  it('ECE (15 bins): four singleton bins, (0.3 + 0.6 + 0.5 + 0.1) / 4 = 0.375', () => {
    // Bins are (b/15, (b+1)/15]. Confidence 0.7 -> bin 10 (0.667, 0.733], |1 - 0.7| = 0.3
    //   0.6 -> bin 8 (0.533, 0.6] (upper edge included), |0 - 0.6| = 0.6
    //   0.5 -> bin 7 (0.467, 0.533], |1 - 0.5| = 0.5;   0.9 -> bin 13 (0.867, 0.933], |1 - 0.9| = 0.1
    // ECE = sum over bins of |bin| / N * |acc - conf| = (0.3 + 0.6 + 0.5 + 0.1) / 4 = 0.375
    expect(sdebnn.expectedCalibrationError(p, y)).toBeCloseTo(0.375, 12);
    const bins = sdebnn.calibrationBins(p, y);
    expect(bins.count).toEqual([0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 1, 0, 0, 1, 0]);
    expect(bins.accuracy[8]).toBe(0);
    expect(bins.confidence[8]).toBe(0.6);
    expect(bins.accuracy[0]).toBeNaN(); // empty
    expect(bins.upper[14]).toBe(1);
  });

  it('ECE with shared bins and an argmax tie (the first class wins)', () => {
    // N = 5, K = 2:
    //   [0.95, 0.05] y=0: correct, conf 0.95 -> bin 14     [0.96, 0.04] y=1: wrong, conf 0.96 -> bin 14
    //   [0.55, 0.45] y=0: correct, conf 0.55 -> bin 8      [0.4,  0.6 ] y=1: correct, conf 0.6  -> bin 8 (edge)
    //   [0.5,  0.5 ] y=1: argmax 0 (tie), wrong, conf 0.5 -> bin 7
    // bin 14: 2/5 * |0.5 - 0.955| = 0.182;  bin 8: 2/5 * |1 - 0.575| = 0.17;  bin 7: 1/5 * |0 - 0.5| = 0.1
    // ECE = 0.452; accuracy = 3/5 = 0.6
    const q = probs([
      [0.95, 0.05],
      [0.96, 0.04],
      [0.55, 0.45],
      [0.4, 0.6],
      [0.5, 0.5],
    ]);
    const labels = Uint8Array.from([0, 1, 0, 1, 1]);
    expect(sdebnn.expectedCalibrationError(q, labels)).toBeCloseTo(0.452, 12);
    expect(sdebnn.accuracy(q, labels)).toBe(0.6);
    // With 2 bins, (0, 0.5] and (0.5, 1]: bin 0 holds conf 0.5 (acc 0), bin 1 the rest (acc 3/4, mean conf 3.06/4 = 0.765):
    // ECE = 1/5 * 0.5 + 4/5 * |0.75 - 0.765| = 0.1 + 0.012 = 0.112
    expect(sdebnn.expectedCalibrationError(q, labels, { bins: 2 })).toBeCloseTo(0.112, 12);
  });

  it('puts confidence 1/15 in the first bin and 1 in the last', () => {
    const uniform15 = probs([new Array(15).fill(1 / 15), [1, ...new Array(14).fill(0)]]);
    const bins = sdebnn.calibrationBins(uniform15, [0, 0]);
    expect(bins.count[0]).toBe(1);
    expect(bins.count[14]).toBe(1);
    // bin 0: acc 1 (argmax 0 = label), conf 1/15; bin 14: acc 1, conf 1. ECE = 1/2 * (14/15) = 0.4667
    expect(bins.ece).toBeCloseTo(7 / 15, 12);
  });

  it('entropy: ln 2 for [0.5, 0.5], 0 for [1, 0], 0.801819 for [0.7, 0.2, 0.1]', () => {
    const h = sdebnn.predictiveEntropy(
      probs([
        [0.5, 0.5],
        [1, 0],
      ]),
    );
    expect(h[0]).toBeCloseTo(Math.LN2, 12);
    expect(h[1]).toBe(0);
    // -(0.7 ln 0.7 + 0.2 ln 0.2 + 0.1 ln 0.1) = 0.249672 + 0.321888 + 0.230259 = 0.801819
    expect(sdebnn.predictiveEntropy(probs([[0.7, 0.2, 0.1]]))[0]).toBeCloseTo(0.8018185525433372, 12);
  });

  it('clamps p[label] at 1e-12 in the NLL: -ln 1e-12 = 27.631021', () => {
    expect(sdebnn.nll(probs([[1, 0]]), [1])).toBeCloseTo(27.631021115928547, 9);
  });

  it('gives the same numbers from float32 (to 1e-6) and all at once', () => {
    const p32 = { data: Float32Array.from(p.data), shape: p.shape };
    const m = sdebnn.classificationMetrics(p32, Int32Array.from(y));
    expect(m.count).toBe(4);
    expect(m.accuracy).toBe(0.75);
    expect(m.nll).toBeCloseTo(0.58978886112061, 6);
    expect(m.brier).toBeCloseTo(0.3475, 6);
    // float32(0.6) = 0.600000024 lies just above 9/15 and moves to bin 9; still a singleton bin, so ECE is unchanged.
    expect(m.ece).toBeCloseTo(0.375, 6);
    expect(m.entropy).toBeCloseTo(
      [
        [0.7, 0.2, 0.1],
        [0.1, 0.6, 0.3],
        [0.25, 0.25, 0.5],
        [0.05, 0.9, 0.05],
      ].reduce((a, r) => a - r.reduce((b, q) => b + q * Math.log(q), 0), 0) / 4,
      6,
    );
  });

  it('adaptive (equal-mass) ECE: sorted confidences 0.5 (right), 0.6 (wrong), 0.7 (right), 0.9 (right)', () => {
    // 2 bins of 2: {0.5, 0.6} acc 1/2, conf 0.55 -> 2/4 * 0.05 = 0.025; {0.7, 0.9} acc 1, conf 0.8 -> 2/4 * 0.2 = 0.1; sum 0.125
    expect(sdebnn.adaptiveCalibrationError(p, y, { bins: 2 })).toBeCloseTo(0.125, 12);
    // 3 bins of 2, 1, 1 (larger first): 0.025 + 1/4 * |1 - 0.7| + 1/4 * |1 - 0.9| = 0.025 + 0.075 + 0.025 = 0.125
    expect(sdebnn.adaptiveCalibrationError(p, y, { bins: 3 })).toBeCloseTo(0.125, 12);
    // 15 bins of at most one row: every row alone, as the equal-width ECE: (0.5 + 0.6 + 0.3 + 0.1) / 4 = 0.375
    expect(sdebnn.adaptiveCalibrationError(p, y)).toBeCloseTo(0.375, 12);
    expect(sdebnn.adaptiveCalibrationError(p, y, { bins: 1 })).toBeCloseTo(Math.abs(0.75 - 2.7 / 4), 12); // |3/4 - mean conf 0.675| = 0.075
  });

  it('MCE: the largest bin gap, 0.6 with 15 bins; with 2 bins 0.5 (the bin (0, 0.5] holds 0.5, right)', () => {
    expect(sdebnn.maxCalibrationError(p, y)).toBeCloseTo(0.6, 12);
    // (0.5, 1] holds 0.6, 0.7, 0.9: acc 2/3, conf 2.2/3 -> gap 0.0667 < 0.5
    expect(sdebnn.maxCalibrationError(p, y, { bins: 2 })).toBeCloseTo(0.5, 12);
    // and ECE with those 2 bins: 1/4 * 0.5 + 3/4 * (2.2/3 - 2/3) = 0.125 + 0.05 = 0.175
    expect(sdebnn.expectedCalibrationError(p, y, { bins: 2 })).toBeCloseTo(0.175, 12);
    const m = sdebnn.classificationMetrics(p, y, { bins: 2 });
    expect(m.eceBins).toBe(2);
    expect(m.mce).toBeCloseTo(0.5, 12);
    expect(m.adaptiveEce).toBeCloseTo(0.125, 12);
    expect(sdebnn.classificationMetrics(p, y).eceBins).toBe(15);
  });

  it('averages Monte Carlo probabilities [S, N, K] into [N, K]', () => {
    // Two samples of one example: [0.2, 0.8] and [0.6, 0.4] average to [0.4, 0.6].
    const mean = sdebnn.meanProbabilities({ data: Float32Array.from([0.2, 0.8, 0.6, 0.4]), shape: [2, 1, 2] });
    expect(mean.shape).toEqual([1, 2]);
    expect(mean.data[0]).toBeCloseTo(0.4, 6);
    expect(mean.data[1]).toBeCloseTo(0.6, 6);
  });

  it('a perfectly calibrated random predictor has ECE near 0', () => {
    // Labels drawn from the predicted distribution: ECE only reflects sampling noise.
    // N = 20000, 15 bins; each bin's |acc - conf| has SE about sqrt(0.25 / n_b), weighted sum < 0.02.
    const r = new Random(1);
    const n = 20000;
    const data = new Float64Array(n * 2);
    const labels = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      const q = r.uniform();
      data[2 * i] = q;
      data[2 * i + 1] = 1 - q;
      labels[i] = r.uniform() < q ? 0 : 1;
    }
    expect(sdebnn.expectedCalibrationError({ data, shape: [n, 2] }, labels)).toBeLessThan(0.02);
  });
});

describe('classification metrics: validation', () => {
  it('says what is wrong with shapes, probabilities and labels', () => {
    const p = { data: Float64Array.from([0.5, 0.5, 0.2, 0.8]), shape: [2, 2] };
    expect(() => sdebnn.accuracy({ data: p.data, shape: [4] }, [0, 1])).toThrow(new RangeError('Expected shape [N, K] for probs.shape but received [4]'));
    expect(() => sdebnn.accuracy({ data: p.data, shape: [3, 2] }, [0, 1])).toThrow(/probs\.data to hold 6 elements for shape \[3, 2\] but received 4/);
    expect(() => sdebnn.accuracy({ data: [0.5, 0.5] as never, shape: [1, 2] }, [0])).toThrow(TypeError);
    expect(() => sdebnn.accuracy(p, [0])).toThrow(new RangeError('Expected 2 labels (one per row of probs) for labels but received array of length 1'));
    expect(() => sdebnn.accuracy(p, [0, 2])).toThrow(new RangeError('Expected class indices in [0, 1] for labels but labels[1] is 2'));
    expect(() => sdebnn.nll({ data: Float64Array.from([2.0, -1.0]), shape: [1, 2] }, [0])).toThrow(/element \[0, 0\] is 2; pass softmax outputs, not logits/);
    expect(() => sdebnn.nll({ data: Float64Array.from([0.5, 0.4]), shape: [1, 2] }, [0])).toThrow(/row 0 sums to 0\.9/);
    expect(() => sdebnn.nll({ data: Float64Array.from([NaN, 0.4]), shape: [1, 2] }, [0])).toThrow(/element \[0, 0\] is NaN/);
    expect(() => sdebnn.expectedCalibrationError(p, [0, 1], { bins: 0 })).toThrow(/options\.bins/);
    expect(sdebnn.accuracy({ data: new Float32Array(0), shape: [0, 10] }, [])).toBeNaN();
  });
});

describe('regression metrics against hand computations', () => {
  // S = 4 samples of N = 2 predictions: point 0 draws 1, 2, 3, 4; point 1 draws 0, 0, 0, 0.
  //   point 0: mean 2.5, variance (2.25 + 0.25 + 0.25 + 2.25) / 4 = 1.25, std sqrt(1.25) = 1.118034
  //   point 1: mean 0, std 0
  // targets [3, 0.5]: RMSE = sqrt((0.5^2 + 0.5^2) / 2) = 0.5
  // Gaussian NLL with noiseStd 0.5 (v = std^2 + 0.25):
  //   point 0: v = 1.5,  0.5 ln(2 pi 1.5)  + 0.25 / 3   = 0.5 * 2.2433422 + 0.0833333 = 1.2050044
  //   point 1: v = 0.25, 0.5 ln(2 pi 0.25) + 0.25 / 0.5 = 0.5 * 0.4515827 + 0.5       = 0.7257914
  //   mean 0.9653979
  const samples = { data: Float32Array.from([1, 0, 2, 0, 3, 0, 4, 0]), shape: [4, 2] };
  const targets = Float32Array.from([3, 0.5]);

  it('predictive mean and std over samples', () => {
    const m = sdebnn.predictiveMoments(samples);
    expect(m.shape).toEqual([2]);
    expect(Array.from(m.mean)).toEqual([2.5, 0]);
    expect(m.std[0]).toBeCloseTo(Math.sqrt(1.25), 12);
    expect(m.std[1]).toBe(0);
  });

  it('RMSE 0.5 and Gaussian NLL 0.9653979', () => {
    const r = sdebnn.regressionMetrics(samples, targets, { noiseStd: 0.5 });
    expect(r.rmse).toBeCloseTo(0.5, 12);
    expect(r.nll).toBeCloseTo(0.9653978866184079, 12);
    expect(sdebnn.rmse(Float64Array.from([2.5, 0]), targets)).toBeCloseTo(0.5, 12);
    // Without observation noise point 1 has zero variance: clamped at 1e-12, a large finite NLL.
    const sharp = sdebnn.regressionMetrics(samples, targets);
    expect(Number.isFinite(sharp.nll)).toBe(true);
    expect(sharp.nll).toBeGreaterThan(1e10);
  });

  it('recovers a known Gaussian: NLL of N(0, 1) data under mean 0, std 1 is 0.5 ln(2 pi) + 0.5 = 1.418939 (within 0.02)', () => {
    const r = new Random(4);
    const n = 20000;
    const y = r.fillNormal(new Float64Array(n));
    // SE of the mean of 0.5 y^2 is 0.5 * sqrt(2 / n) = 0.005.
    expect(sdebnn.gaussianNll(new Float64Array(n), new Float64Array(n).fill(1), y)).toBeCloseTo(0.5 * Math.log(2 * Math.PI) + 0.5, 1);
    expect(Math.abs(sdebnn.gaussianNll(new Float64Array(n), new Float64Array(n).fill(1), y) - 1.4189385332)).toBeLessThan(0.02);
  });

  it('validates shapes and values', () => {
    expect(() => sdebnn.predictiveMoments({ data: new Float32Array(3), shape: [3] })).toThrow(/\[S, N\] or \[S, N, D\]/);
    expect(() => sdebnn.regressionMetrics(samples, Float32Array.from([1, 2, 3]))).toThrow(
      new RangeError('Expected 2 elements (one per prediction) for targets but received Float32Array of length 3'),
    );
    expect(() => sdebnn.rmse(Float32Array.from([1]), Float32Array.from([NaN]))).toThrow(/targets but element 0 is NaN/);
    expect(() => sdebnn.gaussianNll(new Float64Array(1), new Float64Array(1), new Float64Array(1), { noiseStd: -1 })).toThrow(/options\.noiseStd/);
  });
});
