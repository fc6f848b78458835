/**
 * Pixel noise: Gaussian, shot (Poisson), impulse (salt and pepper) and speckle, each pixel
 * and channel independently, as in hendrycks/robustness make_cifar_c.py and
 * google-research/mnist-c corruptions.py.
 */
import type { Random } from '../random';
import type { KernelFactory } from './kernel';

/** x + N(0, std^2) (gaussian_noise). */
export function gaussianNoise(std: number): KernelFactory {
  return () => (src, dst, rng) => {
    for (let i = 0; i < src.length; i++) dst[i] = src[i]! + std * rng.normal();
  };
}

/** Poisson(x * rate) / rate (shot_noise): unbiased, with variance x / rate before clipping. */
export function shotNoise(rate: number): KernelFactory {
  return () => (src, dst, rng) => {
    for (let i = 0; i < src.length; i++) {
      const lambda = src[i]! * rate;
      dst[i] = lambda > 0 ? poisson(rng, lambda) / rate : 0;
    }
  };
}

/**
 * scikit-image's random_noise(mode='s&p', amount, salt_vs_pepper=0.5) (impulse_noise): each
 * value is replaced with probability `amount`, by 1 or 0 with equal odds.
 */
export function impulseNoise(amount: number): KernelFactory {
  const half = amount / 2;
  return () => (src, dst, rng) => {
    for (let i = 0; i < src.length; i++) {
      const u = rng.uniform();
      dst[i] = u < half ? 1 : u < amount ? 0 : src[i]!;
    }
  };
}

/** x + x N(0, std^2) (speckle_noise). */
export function speckleNoise(std: number): KernelFactory {
  return () => (src, dst, rng) => {
    for (let i = 0; i < src.length; i++) dst[i] = src[i]! * (1 + std * rng.normal());
  };
}

/**
 * A Poisson(lambda) variate, lambda > 0. Below 10: inversion by sequential search from
 * P(0) = exp(-lambda) (one uniform). From 10 on: Hörmann's transformed rejection with squeeze
 * (PTRS; W. Hörmann, "The transformed rejection method for generating Poisson random
 * variables", Insurance: Mathematics and Economics 12, 1993), the method numpy uses there.
 */
export function poisson(rng: Random, lambda: number): number {
  if (lambda < 10) {
    const u = rng.uniform();
    let k = 0;
    let p = Math.exp(-lambda);
    let cdf = p;
    while (u > cdf && p > 0) {
      k++;
      p *= lambda / k;
      cdf += p;
    }
    return k;
  }
  const slam = Math.sqrt(lambda);
  const logLambda = Math.log(lambda);
  const b = 0.931 + 2.53 * slam;
  const a = -0.059 + 0.02483 * b;
  const invAlpha = 1.1239 + 1.1328 / (b - 3.4);
  const vr = 0.9277 - 3.6224 / (b - 2);
  for (;;) {
    const u = rng.uniform() - 0.5;
    const v = rng.uniform();
    const us = 0.5 - Math.abs(u);
    const k = Math.floor(((2 * a) / us + b) * u + lambda + 0.43);
    if (us >= 0.07 && v <= vr) return k;
    if (k < 0 || (us < 0.013 && v > us)) continue;
    if (Math.log(v) + Math.log(invAlpha) - Math.log(a / (us * us) + b) <= -lambda + k * logLambda - logFactorial(k)) return k;
  }
}

/** ln(k!) for a non-negative integer k: a table to 30, then Stirling's series to the 1/k^7 term (error < 1e-15). */
function logFactorial(k: number): number {
  if (k < LOG_FACTORIALS.length) return LOG_FACTORIALS[k]!;
  const x = k + 1;
  const x2 = 1 / (x * x);
  const series = (1 / 12 - x2 * (1 / 360 - x2 * (1 / 1260 - x2 / 1680))) / x;
  return (x - 0.5) * Math.log(x) - x + 0.5 * Math.log(2 * Math.PI) + series;
}

const LOG_FACTORIALS = (() => {
  const table = new Float64Array(31);
  for (let k = 1; k < table.length; k++) table[k] = table[k - 1]! + Math.log(k);
  return table;
})();
