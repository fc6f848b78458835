// Noise corruptions against their distributions: the Poisson sampler's moments and mass
// function, shot noise's exact clipped moments, impulse noise's fraction, Gaussian and speckle
// noise's standard deviations.
import { describe, expect, it } from 'vitest';
import { sdebnn } from './helpers';
import { fromFormula, mean } from './shift-images';

const { corrupt, Random } = sdebnn;
const { poisson } = require('../dist/shift/noise.js') as typeof import('../dist/shift/noise');

function poissonPmf(lambda: number, k: number): number {
  let logp = -lambda + k * Math.log(lambda);
  for (let i = 2; i <= k; i++) logp -= Math.log(i);
  return Math.exp(logp);
}

/** Mean and variance of clip(Poisson(lambda) / rate, 0, 1), summed from the mass function. */
function clippedShotMoments(lambda: number, rate: number): { mean: number; variance: number } {
  let m1 = 0;
  let m2 = 0;
  for (let k = 0; k < 2000; k++) {
    const p = poissonPmf(lambda, k);
    const v = Math.min(1, k / rate);
    m1 += p * v;
    m2 += p * v * v;
  }
  return { mean: m1, variance: m2 - m1 * m1 };
}

function variance(a: ArrayLike<number>): number {
  const m = mean(a);
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i]! - m) ** 2;
  return s / (a.length - 1);
}

describe('noise corruptions', () => {
  it('Poisson sampler: mean and variance lambda (5 standard errors) by inversion below 10 and PTRS above', () => {
    const rng = new Random(123);
    const n = 100000;
    for (const lambda of [0.3, 3, 9.99, 10, 37.5, 450]) {
      const x = new Float64Array(n);
      for (let i = 0; i < n; i++) x[i] = poisson(rng, lambda);
      expect(x.every((v) => Number.isInteger(v) && v >= 0)).toBe(true);
      // se(mean) = sqrt(lambda / n); se(variance) ~ sqrt((2 lambda^2 + lambda) / n)
      expect(Math.abs(mean(x) - lambda)).toBeLessThan(5 * Math.sqrt(lambda / n));
      expect(Math.abs(variance(x) - lambda)).toBeLessThan(5 * Math.sqrt((2 * lambda * lambda + lambda) / n));
    }
  });

  it('Poisson sampler: frequencies match the mass function (chi-square below its 0.999 quantile)', () => {
    const rng = new Random(7);
    const n = 200000;
    for (const { lambda, lo, hi, limit } of [
      { lambda: 3, lo: 0, hi: 10, limit: 31.3 }, // 11 cells + tail: 11 degrees of freedom
      { lambda: 50, lo: 35, hi: 65, limit: 62.5 }, // 31 cells + two tails: 32 degrees of freedom
    ]) {
      const counts = new Float64Array(hi - lo + 3);
      for (let i = 0; i < n; i++) {
        const k = poisson(rng, lambda);
        counts[k < lo ? 0 : k > hi ? hi - lo + 2 : k - lo + 1]!++;
      }
      const expected = new Float64Array(counts.length);
      let inside = 0;
      for (let k = lo; k <= hi; k++) inside += expected[k - lo + 1] = n * poissonPmf(lambda, k);
      let below = 0;
      for (let k = 0; k < lo; k++) below += n * poissonPmf(lambda, k);
      expected[0] = below;
      expected[hi - lo + 2] = n - inside - below;
      let chi2 = 0;
      for (let i = 0; i < counts.length; i++) if (expected[i]! > 0) chi2 += (counts[i]! - expected[i]!) ** 2 / expected[i]!;
      expect(chi2, `lambda ${lambda}`).toBeLessThan(limit);
    }
  });

  it('shot noise is Poisson(x c) / c: the exact clipped mean and variance (MNIST-C c = 3, CIFAR-10-C c = 500 .. 50)', () => {
    for (const x of [0.1, 0.5, 0.9]) {
      const { images, shape } = fromFormula(40, 1, 28, 28, () => x);
      const out = corrupt('mnist-c', 'shot_noise', images, shape, { seed: 3 });
      const exact = clippedShotMoments(3 * x, 3);
      const n = out.length;
      expect(Math.abs(mean(out) - exact.mean), `x = ${x}`).toBeLessThan(5 * Math.sqrt(exact.variance / n));
      expect(Math.abs(variance(out) - exact.variance) / exact.variance).toBeLessThan(0.03);
    }
    // Far from 1 the clip never bites: unbiased with variance x / c.
    const { images, shape } = fromFormula(40, 3, 32, 32, () => 0.4);
    [500, 250, 100, 75, 50].forEach((rate, s) => {
      const out = corrupt('cifar10-c', 'shot_noise', images, shape, { severity: s + 1 });
      expect(Math.abs(mean(out) - 0.4)).toBeLessThan(5 * Math.sqrt(0.4 / rate / out.length));
      expect(Math.abs(variance(out) / (0.4 / rate) - 1)).toBeLessThan(0.03);
    });
    // Zero stays zero: Poisson(0) = 0.
    const black = fromFormula(2, 1, 28, 28, () => 0);
    expect(corrupt('mnist-c', 'shot_noise', black.images, black.shape).every((v) => v === 0)).toBe(true);
  });

  it('impulse noise sets the published fraction to 0 or 1, half each, and leaves the rest', () => {
    const cases: [string, number, number][] = [
      ['mnist-c', 1, 0.17],
      ...[0.01, 0.02, 0.03, 0.05, 0.07].map((a, s): [string, number, number] => ['cifar10-c', s + 1, a]),
    ];
    for (const [suite, severity, amount] of cases) {
      const { images, shape } = suite === 'mnist-c' ? fromFormula(100, 1, 28, 28, () => 0.5) : fromFormula(30, 3, 32, 32, () => 0.5);
      const out = corrupt(suite as 'mnist-c', 'impulse_noise', images, shape, { severity });
      const n = out.length;
      const salt = out.filter((v) => v === 1).length / n;
      const pepper = out.filter((v) => v === 0).length / n;
      expect(out.filter((v) => v !== 0 && v !== 1 && v !== 0.5).length).toBe(0);
      const se = Math.sqrt((amount * (1 - amount)) / n);
      expect(Math.abs(salt + pepper - amount), `${suite} ${severity}`).toBeLessThan(5 * se);
      expect(Math.abs(salt - pepper)).toBeLessThan(5 * Math.sqrt(amount / n));
    }
  });

  it('Gaussian noise adds N(0, c^2) and speckle noise x N(0, c^2) with the published c', () => {
    const { images, shape } = fromFormula(20, 3, 32, 32, (_c, y) => 0.3 + 0.4 * (y / 31));
    [0.04, 0.06, 0.08, 0.09, 0.1].forEach((c, s) => {
      const out = corrupt('cifar10-c', 'gaussian_noise', images, shape, { severity: s + 1 });
      const d = out.map((v, i) => v - images[i]!);
      expect(Math.abs(mean(d))).toBeLessThan(5 * (c / Math.sqrt(d.length)));
      expect(Math.abs(Math.sqrt(variance(d)) / c - 1)).toBeLessThan(0.02);
    });
    [0.06, 0.1, 0.12, 0.16, 0.2].forEach((c, s) => {
      const out = corrupt('cifar10-c', 'speckle_noise', images, shape, { severity: s + 1 });
      const z = out.map((v, i) => (v - images[i]!) / images[i]!);
      expect(Math.abs(mean(z))).toBeLessThan(5 * (c / Math.sqrt(z.length)));
      expect(Math.abs(Math.sqrt(variance(z)) / c - 1)).toBeLessThan(0.02);
    });
  });
});
