/**
 * The uncertainty decomposition of Monte Carlo class probabilities p_s [S, N, K] (one softmax
 * per weight path s; e.g. `predict(x, { samples: S, returnSamples: true }).samples`):
 *
 *   total (predictive) entropy  H[mean_s p_s]
 *   expected entropy            mean_s H[p_s]                    aleatoric
 *   mutual information          H[mean_s p_s] - mean_s H[p_s]    epistemic (BALD, Houlsby et al. 2011)
 *   max probability             max_k mean_s p_s[k]
 *   variation ratio             1 - (paths voting for the modal class) / S   (Freeman 1965; Gal 2016)
 *
 * Natural logarithms (nats); terms with p = 0 contribute 0. Sums in float64.
 */
import { checkProbabilities, type MatrixLike } from './metrics';
import { describe, expectInteger } from './validate';

export interface UncertaintySummary {
  /** Class with the largest mean probability (the first on ties), [N]. */
  predicted: Int32Array;
  maxProbability: Float64Array;
  totalEntropy: Float64Array;
  expectedEntropy: Float64Array;
  mutualInformation: Float64Array;
  variationRatio: Float64Array;
}

export interface UncertaintyDecomposition extends UncertaintySummary {
  /** mean_s p_s, [N, K]. */
  probs: { data: Float64Array; shape: [number, number] };
}

/** Checks per-path probabilities [S, N, K] (each path's rows in [0, 1] summing to 1). */
export function checkSampleProbabilities(samples: MatrixLike, field = 'samples'): { data: MatrixLike['data']; s: number; n: number; k: number } {
  if (typeof samples !== 'object' || samples === null || !Array.isArray(samples.shape)) {
    throw new TypeError(`Expected {data, shape: [S, N, K]} for ${field} but received ${describe(samples)}`);
  }
  if (samples.shape.length !== 3) throw new RangeError(`Expected shape [S, N, K] for ${field}.shape but received [${samples.shape.join(', ')}]`);
  const [s, n, k] = samples.shape.map((v, i) => expectInteger(v, `${field}.shape[${i}]`, 0)) as [number, number, number];
  if (s < 1) throw new RangeError(`Expected at least one path (S >= 1) for ${field}.shape but received [${s}, ${n}, ${k}]`);
  // One [S * N, K] check covers every path's rows.
  const { data } = checkProbabilities({ data: samples.data, shape: [s * n, k] }, field);
  return { data, s, n, k };
}

function entropyOf(data: ArrayLike<number>, offset: number, k: number): number {
  let h = 0;
  for (let j = 0; j < k; j++) {
    const p = data[offset + j]!;
    if (p > 0) h -= p * Math.log(p);
  }
  return h;
}

/** Every quantity of the decomposition in one pass over [S, N, K]. */
export function decomposeUncertainty(samples: MatrixLike): UncertaintyDecomposition {
  const { data, s, n, k } = checkSampleProbabilities(samples);
  const probs = new Float64Array(n * k);
  const expectedEntropy = new Float64Array(n);
  const votes = new Int32Array(n * k);
  for (let t = 0; t < s; t++) {
    const base = t * n * k;
    for (let i = 0; i < n; i++) {
      const row = base + i * k;
      let best = 0;
      for (let j = 0; j < k; j++) {
        const p = data[row + j]!;
        probs[i * k + j]! += p;
        if (p > data[row + best]!) best = j;
      }
      votes[i * k + best]!++;
      expectedEntropy[i]! += entropyOf(data, row, k);
    }
  }
  const summary: UncertaintySummary = {
    predicted: new Int32Array(n),
    maxProbability: new Float64Array(n),
    totalEntropy: new Float64Array(n),
    expectedEntropy,
    mutualInformation: new Float64Array(n),
    variationRatio: new Float64Array(n),
  };
  for (let i = 0; i < n; i++) {
    let best = 0;
    let modal = 0;
    for (let j = 0; j < k; j++) {
      probs[i * k + j]! /= s;
      if (probs[i * k + j]! > probs[i * k + best]!) best = j;
      modal = Math.max(modal, votes[i * k + j]!);
    }
    expectedEntropy[i]! /= s;
    const total = entropyOf(probs, i * k, k);
    summary.predicted[i] = best;
    summary.maxProbability[i] = probs[i * k + best]!;
    summary.totalEntropy[i] = total;
    // Jensen: total >= expected; clamp the rounding of a near-zero difference.
    summary.mutualInformation[i] = Math.max(0, total - expectedEntropy[i]!);
    summary.variationRatio[i] = 1 - modal / s;
  }
  return { ...summary, probs: { data: probs, shape: [n, k] } };
}

/** Total predictive entropy H[mean_s p_s] per example, [N] (nats). */
export function totalEntropy(samples: MatrixLike): Float64Array {
  return decomposeUncertainty(samples).totalEntropy;
}

/** Expected entropy mean_s H[p_s] per example (aleatoric), [N] (nats). */
export function expectedEntropy(samples: MatrixLike): Float64Array {
  return decomposeUncertainty(samples).expectedEntropy;
}

/** Mutual information between the label and the weight path (epistemic, BALD), [N] (nats). */
export function mutualInformation(samples: MatrixLike): Float64Array {
  return decomposeUncertainty(samples).mutualInformation;
}

/** The largest mean class probability per example, [N]. */
export function maxProbability(samples: MatrixLike): Float64Array {
  return decomposeUncertainty(samples).maxProbability;
}

/** 1 - (paths whose argmax is the modal class) / S per example, [N]; 0 when all paths agree. */
export function variationRatio(samples: MatrixLike): Float64Array {
  return decomposeUncertainty(samples).variationRatio;
}
