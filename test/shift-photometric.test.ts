// Photometric corruptions by their formulas: brightness and saturation in HSV, contrast about
// each channel's mean, pixelation into blocks, fog from a plasma fractal (whose shortcut must not
// move the map's extremes or its distribution), and JPEG through jpeg-js in mosaics.
import { describe, expect, it } from 'vitest';
import { sdebnn } from './helpers';
import { colourImages, fromFormula, mean, mnistDigits } from './shift-images';

const { corrupt, Random } = sdebnn;
const { PlasmaFractal } = require('../dist/shift/plasma.js') as typeof import('../dist/shift/plasma');

/** Hue (sextant units, [0, 6)), saturation and value of an RGB pixel. */
function hsv(r: number, g: number, b: number): [number, number, number] {
  const v = Math.max(r, g, b);
  const d = v - Math.min(r, g, b);
  if (d === 0) return [0, 0, v];
  const h = v === b ? 4 + (r - g) / d : v === g ? 2 + (b - r) / d : (g - b) / d;
  return [(h + 6) % 6, d / v, v];
}

/** Random colour images with values in [lo, hi]. */
function randomColours(n: number, lo: number, hi: number, seed: number) {
  const rng = new Random(seed);
  return { images: rng.fillUniform(new Float32Array(n * 3072), lo, hi), shape: [n, 3, 32, 32] as [number, number, number, number] };
}

/** The plain diamond-square of the published code (no shortcut), normalised: the reference for PlasmaFractal. */
function plainPlasma(n: number, decay: number, rng: import('../dist/random').Random): Float64Array {
  const m = new Float64Array(n * n);
  const at = (r: number, c: number) => m[((r + n) % n) * n + ((c + n) % n)]!;
  let wibble = 100;
  for (let step = n; step >= 2; step >>= 1) {
    const h = step / 2;
    const noise = () => wibble * rng.uniform(-wibble, wibble);
    for (let r = 0; r < n; r += step)
      for (let c = 0; c < n; c += step) m[(r + h) * n + c + h] = (at(r, c) + at(r + step, c) + at(r, c + step) + at(r + step, c + step)) / 4 + noise();
    for (let r = 0; r < n; r += step)
      for (let c = 0; c < n; c += step) m[r * n + c + h] = (at(r, c) + at(r, c + step) + at(r + h, c + h) + at(r - h, c + h)) / 4 + noise();
    for (let r = 0; r < n; r += step)
      for (let c = 0; c < n; c += step) m[(r + h) * n + c] = (at(r, c) + at(r + step, c) + at(r + h, c + h) + at(r + h, c - h)) / 4 + noise();
    wibble /= decay;
  }
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of m) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
  return m.map((v) => (v - lo) / (hi - lo));
}

describe('photometric corruptions', () => {
  it('brightness: MNIST-C is clip(x + 0.5); CIFAR-10-C raises the HSV value by c and keeps hue and saturation', () => {
    const digits = mnistDigits(3);
    const out = corrupt('mnist-c', 'brightness', digits.images, digits.shape);
    out.forEach((v, i) => expect(v).toBeCloseTo(Math.min(1, digits.images[i]! + 0.5), 6));
    const { images, shape } = randomColours(2, 0.05, 0.65, 1);
    [0.05, 0.1, 0.15, 0.2, 0.3].forEach((c, s) => {
      const o = corrupt('cifar10-c', 'brightness', images, shape, { severity: s + 1 });
      for (let p = 0; p < 2048; p++) {
        const i = Math.floor(p / 1024) * 3072 + (p % 1024);
        const [h0, s0, v0] = hsv(images[i]!, images[i + 1024]!, images[i + 2048]!);
        const [h1, s1, v1] = hsv(o[i]!, o[i + 1024]!, o[i + 2048]!);
        expect(v1 - v0).toBeCloseTo(c, 5);
        expect(s1).toBeCloseTo(s0, 4);
        expect(h1).toBeCloseTo(h0, 4);
      }
      expect(mean(o) - mean(images)).toBeGreaterThan(c * 0.5); // every channel rises with the value
    });
  });

  it('saturate: saturation becomes clip(S c0 + c1) with the published pairs; hue and value stay', () => {
    const { images, shape } = randomColours(1, 0.05, 0.95, 2);
    [
      [0.3, 0],
      [0.1, 0],
      [1.5, 0],
      [2, 0.1],
      [2.5, 0.2],
    ].forEach(([c0, c1], s) => {
      const o = corrupt('cifar10-c', 'saturate', images, shape, { severity: s + 1 });
      for (let i = 0; i < 1024; i++) {
        const [h0, s0, v0] = hsv(images[i]!, images[i + 1024]!, images[i + 2048]!);
        const [h1, s1, v1] = hsv(o[i]!, o[i + 1024]!, o[i + 2048]!);
        expect(s1).toBeCloseTo(Math.min(1, s0 * c0! + c1!), 4);
        expect(v1).toBeCloseTo(v0, 5);
        if (s1 > 1e-3) expect(h1).toBeCloseTo(h0, 3);
      }
    });
  });

  it('contrast scales deviations from each channel mean by the published factor and keeps the means', () => {
    const { images, shape } = colourImages(2);
    [0.75, 0.5, 0.4, 0.3, 0.15].forEach((c, s) => {
      const o = corrupt('cifar10-c', 'contrast', images, shape, { severity: s + 1 });
      for (let plane = 0; plane < 6; plane++) {
        const x = images.subarray(plane * 1024, (plane + 1) * 1024);
        const y = o.subarray(plane * 1024, (plane + 1) * 1024);
        const mx = mean(x);
        expect(mean(y)).toBeCloseTo(mx, 5);
        for (let i = 0; i < 1024; i += 37) expect(y[i]! - mx).toBeCloseTo(c * (x[i]! - mx), 5);
      }
    });
  });

  it('pixelate is piecewise constant on int(32 c) x int(32 c) blocks and keeps constant images', () => {
    const { images, shape } = randomColours(1, 0, 1, 3);
    [0.95, 0.9, 0.85, 0.75, 0.65].forEach((c, s) => {
      const o = corrupt('cifar10-c', 'pixelate', images, shape, { severity: s + 1 });
      const blocks = Math.trunc(32 * c);
      // Columns (rows) change value exactly blocks - 1 times along a row (column): each block is one value.
      let columnChanges = 0;
      let rowChanges = 0;
      for (let x = 1; x < 32; x++) if (Array.from({ length: 32 }, (_, y) => o[y * 32 + x] !== o[y * 32 + x - 1]).some(Boolean)) columnChanges++;
      for (let y = 1; y < 32; y++) if (Array.from({ length: 32 }, (_, x) => o[y * 32 + x] !== o[(y - 1) * 32 + x]).some(Boolean)) rowChanges++;
      expect([columnChanges, rowChanges]).toEqual([blocks - 1, blocks - 1]);
      for (let x = 1; x < 32; x++) {
        const changes = Array.from({ length: 32 }, (_, y) => o[y * 32 + x] !== o[y * 32 + x - 1]);
        expect(changes.every((v) => v === changes[0])).toBe(true); // block edges run through every row
      }
    });
    const flat = fromFormula(1, 3, 32, 32, (c) => 0.2 + 0.3 * c);
    for (let s = 1; s <= 5; s++) {
      const o = corrupt('cifar10-c', 'pixelate', flat.images, flat.shape, { severity: s });
      o.forEach((v, i) => expect(v).toBeCloseTo(flat.images[i]!, 6));
    }
  });

  it("plasma fractal: the finest level's shortcut leaves the whole map's extremes where the full map has them", () => {
    const rng = new Random(5);
    for (const [size, crop, decay] of [
      [256, 28, 1.4],
      [32, 32, 1.75],
      [64, 28, 2],
    ] as const) {
      const plasma = new PlasmaFractal(size);
      const out = new Float64Array(crop * crop);
      for (let k = 0; k < 60; k++) {
        plasma.generate(rng, decay, crop, crop, out);
        expect(out.every((v) => v >= 0 && v <= 1)).toBe(true);
        const before = plasma.lastExtremes();
        expect(plasma.completeMap(rng), `${size}: map ${k}`).toEqual(before);
        if (crop === size) expect([Math.min(...out), Math.max(...out)]).toEqual([0, 1]);
      }
    }
  });

  it('plasma fractal: the crop has the distribution of the plain diamond-square (mean, spread, roughness over 600 64 x 64 maps)', () => {
    const stats = (maps: Float64Array[], n: number) => {
      const means = maps.map((m) => mean(m));
      const spreads = maps.map((m) => Math.sqrt(mean(m.map((v) => (v - mean(m)) ** 2))));
      const rough = maps.map((m) =>
        mean(Array.from({ length: 27 * 28 }, (_, i) => Math.abs(m[Math.floor(i / 27) * n + (i % 27) + 1]! - m[Math.floor(i / 27) * n + (i % 27)]!))),
      );
      const meanAndSe = (a: number[]) => {
        const mu = mean(a);
        return [mu, Math.sqrt(mean(a.map((v) => (v - mu) ** 2)) / a.length)];
      };
      return [meanAndSe(means), meanAndSe(spreads), meanAndSe(rough)];
    };
    const rngA = new Random(11);
    const rngB = new Random(12);
    // 64 x 64 with a 28 x 28 crop: 16 of the 64 finest-level tiles are the crop's, the others are
    // evaluated only where they can hold an extreme.
    const plasma = new PlasmaFractal(64);
    const ours: Float64Array[] = [];
    const plain: Float64Array[] = [];
    for (let k = 0; k < 600; k++) {
      const out = new Float64Array(28 * 28);
      plasma.generate(rngA, 1.4, 28, 28, out);
      ours.push(out);
      const full = plainPlasma(64, 1.4, rngB);
      plain.push(Float64Array.from({ length: 784 }, (_, i) => full[Math.floor(i / 28) * 64 + (i % 28)]!));
    }
    const a = stats(ours, 28);
    const b = stats(plain, 28);
    for (let j = 0; j < 3; j++) expect(Math.abs(a[j]![0]! - b[j]![0]!), `statistic ${j}`).toBeLessThan(4 * Math.hypot(a[j]![1]!, b[j]![1]!));
  });

  it('fog: (x + s fog) max / (max + s), the fog spanning exactly [0, 1] over a CIFAR image (its map is the image)', () => {
    const { images, shape } = colourImages(3);
    [
      [0.2, 3],
      [0.5, 3],
      [0.75, 2.5],
      [1, 2],
      [1.5, 1.75],
    ].forEach(([strength], s) => {
      const o = corrupt('cifar10-c', 'fog', images, shape, { severity: s + 1, seed: 4 });
      for (let k = 0; k < 3; k++) {
        const x = images.subarray(k * 3072, (k + 1) * 3072);
        const y = o.subarray(k * 3072, (k + 1) * 3072);
        const max = Math.max(...x);
        const layer = Array.from(y, (v, i) => ((v * (max + strength!)) / max - x[i]!) / strength!);
        expect(Math.min(...layer)).toBeCloseTo(0, 5);
        expect(Math.max(...layer)).toBeCloseTo(1, 5);
        for (let i = 0; i < 1024; i += 7) {
          expect(layer[i + 1024]).toBeCloseTo(layer[i]!, 5); // the same fog on every channel
          expect(layer[i + 2048]).toBeCloseTo(layer[i]!, 5);
        }
      }
    });
    const digits = mnistDigits(4);
    const foggy = corrupt('mnist-c', 'fog', digits.images, digits.shape);
    for (let k = 0; k < 4; k++) {
      const x = digits.images.subarray(k * 784, (k + 1) * 784);
      const max = Math.max(...x);
      foggy.subarray(k * 784, (k + 1) * 784).forEach((v, i) => {
        expect(v).toBeGreaterThanOrEqual((x[i]! * max) / (max + 3) - 1e-6);
        expect(v).toBeLessThanOrEqual(((x[i]! + 3) * max) / (max + 3) + 1e-6);
      });
    }
  });

  it('JPEG: one mosaic compresses each image as it would alone, to 8-bit values', () => {
    const { images, shape } = colourImages(2);
    const quantised = images.map((v) => Math.round(v * 255) / 255);
    for (const severity of [5]) {
      const together = corrupt('cifar10-c', 'jpeg_compression', quantised, shape, { severity });
      for (let k = 0; k < 2; k++) {
        const alone = corrupt('cifar10-c', 'jpeg_compression', quantised.subarray(k * 3072, (k + 1) * 3072), [1, 3, 32, 32], { severity });
        expect(together.subarray(k * 3072, (k + 1) * 3072)).toEqual(alone);
      }
      expect(together.every((v) => Math.abs(v * 255 - Math.round(v * 255)) < 1e-4)).toBe(true);
    }
  });
});
