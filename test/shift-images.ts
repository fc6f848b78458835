// Small images for the corruption tests: real MNIST digits, and synthetic greyscale and colour
// images built from formulas (so reference fixtures can rebuild them exactly).
import { sdebnn } from './helpers';

export const shift = require('../dist/shift/index.js') as typeof import('../dist/shift/index');

export type Shape = [number, number, number, number];

/** The first n MNIST test digits in [0, 1], as [n, 1, 28, 28]. */
export function mnistDigits(n: number): { images: Float32Array; shape: Shape } {
  const m = sdebnn.loadMnist({ split: 'test', normalize: false, limit: n });
  return { images: m.images, shape: [n, 1, 28, 28] };
}

/** n copies of one h x w plane per channel given by f(channel, y, x), as [n, c, h, w]. */
export function fromFormula(
  n: number,
  c: number,
  h: number,
  w: number,
  f: (ch: number, y: number, x: number, k: number) => number,
): { images: Float32Array; shape: Shape } {
  const images = new Float32Array(n * c * h * w);
  for (let k = 0; k < n; k++)
    for (let ch = 0; ch < c; ch++) for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) images[((k * c + ch) * h + y) * w + x] = f(ch, y, x, k);
  return { images, shape: [n, c, h, w] };
}

/**
 * Colour test images (3 x 32 x 32): a smooth colour gradient, a bright disc and a dark bar,
 * different per image k, all values in [0.05, 0.95].
 */
export function colourImages(n: number): { images: Float32Array; shape: Shape } {
  return fromFormula(n, 3, 32, 32, (ch, y, x, k) => {
    const cx = 12 + 3 * (k % 4);
    const cy = 14 + 2 * (k % 3);
    const disc = (x - cx) ** 2 + (y - cy) ** 2 < 36 ? 1 : 0;
    const bar = x >= 22 && x < 26 && y > 4 && y < 28 ? 1 : 0;
    const base = 0.3 + 0.4 * Math.sin(0.2 * (x + 2 * ch) + 0.15 * y + k) ** 2;
    return Math.min(0.95, Math.max(0.05, base * (1 - disc) * (1 - bar) + disc * [0.9, 0.8, 0.2][ch]! + bar * 0.1));
  });
}

/** An h x w plane (one image, one channel) with the values of `inner` inside [top, bottom) x [left, right), 0 elsewhere. */
export function square(h: number, w: number, top: number, bottom: number, left: number, right: number, inner = 1): { images: Float32Array; shape: Shape } {
  return fromFormula(1, 1, h, w, (_c, y, x) => (y >= top && y < bottom && x >= left && x < right ? inner : 0));
}

/** Mean of an array. */
export function mean(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]!;
  return s / a.length;
}

/** Energy of the differences between horizontal and vertical neighbours, per plane of h x w. */
export function highFrequencyEnergy(a: ArrayLike<number>, h: number, w: number): number {
  let e = 0;
  for (let p = 0; p < a.length / (h * w); p++) {
    const o = p * h * w;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        if (x + 1 < w) e += (a[o + y * w + x + 1]! - a[o + y * w + x]!) ** 2;
        if (y + 1 < h) e += (a[o + (y + 1) * w + x]! - a[o + y * w + x]!) ** 2;
      }
    }
  }
  return e;
}

/** Mean absolute difference. */
export function meanAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i]! - b[i]!);
  return s / a.length;
}

/** Intensity moments of one h x w plane: mass, centre of mass (x, y) and central second moments. */
export function moments(
  a: ArrayLike<number>,
  h: number,
  w: number,
  offset = 0,
): { mass: number; cx: number; cy: number; sxx: number; syy: number; sxy: number } {
  let mass = 0;
  let sx = 0;
  let sy = 0;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const v = a[offset + y * w + x]!;
      mass += v;
      sx += v * x;
      sy += v * y;
    }
  }
  const cx = sx / mass;
  const cy = sy / mass;
  let sxx = 0;
  let syy = 0;
  let sxy = 0;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const v = a[offset + y * w + x]!;
      sxx += v * (x - cx) ** 2;
      syy += v * (y - cy) ** 2;
      sxy += v * (x - cx) * (y - cy);
    }
  }
  return { mass, cx, cy, sxx: sxx / mass, syy: syy / mass, sxy: sxy / mass };
}
