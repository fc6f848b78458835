// Blurs by their impulse responses and invariants: Gaussian and defocus kernels, glass blur's
// moves (MNIST-C swaps, CIFAR-10-C's one-way copies) and vertical-only blur, zoom blur on ramps,
// and the ImageMagick-style one-sided motion kernel.
import { describe, expect, it } from 'vitest';
import { sdebnn } from './helpers';
import { fromFormula, mnistDigits, moments } from './shift-images';

const { corrupt, Random } = sdebnn;
const blur = require('../dist/shift/blur.js') as typeof import('../dist/shift/blur');

/** scipy's normalised Gaussian kernel exp(-k^2 / (2 sigma^2)), |k| <= floor(4 sigma + 0.5). */
function scipyKernel(sigma: number): number[] {
  const r = Math.floor(4 * sigma + 0.5);
  const k = Array.from({ length: 2 * r + 1 }, (_, i) => Math.exp(-((i - r) ** 2) / (2 * sigma * sigma)));
  const s = k.reduce((a, b) => a + b, 0);
  return k.map((v) => v / s);
}

/** A 32 x 32 colour image, 1 at (row y, column x) in every channel, 0 elsewhere. */
function impulse(y: number, x: number, c = 3, n = 32) {
  return fromFormula(1, c, n, n, (_ch, yy, xx) => (yy === y && xx === x ? 1 : 0));
}

/** Runs a kernel factory on one image. */
function run(factory: import('../dist/shift/kernel').KernelFactory, images: Float32Array, c: number, h: number, w: number, seed = 0): Float32Array {
  const kernel = factory({ channels: c, height: h, width: w });
  const out = new Float32Array(images.length);
  if ('batch' in kernel) kernel.batch(images, out, 1);
  else kernel(images, out, new Random(seed));
  return out;
}

describe('blur corruptions', () => {
  it('Gaussian blur: the impulse response is the outer product of scipy kernels with the published sigmas', () => {
    [0.4, 0.6, 0.7, 0.8, 1].forEach((sigma, s) => {
      const out = corrupt('cifar10-c', 'gaussian_blur', impulse(16, 16).images, [1, 3, 32, 32], { severity: s + 1 });
      const k = scipyKernel(sigma);
      const r = (k.length - 1) / 2;
      let total = 0;
      for (let y = 0; y < 32; y++) {
        for (let x = 0; x < 32; x++) {
          const inside = Math.abs(y - 16) <= r && Math.abs(x - 16) <= r;
          const expected = inside ? k[y - 16 + r]! * k[x - 16 + r]! : 0;
          expect(out[2 * 1024 + y * 32 + x]).toBeCloseTo(expected, 7);
          total += out[y * 32 + x]!;
        }
      }
      expect(total).toBeCloseTo(1, 6); // the mean is kept
    });
  });

  it('defocus blur: the impulse response is the anti-aliased disk (one pixel, a plus, a 3 x 3 square)', () => {
    const response = (severity: number) => corrupt('cifar10-c', 'defocus_blur', impulse(10, 20).images, [1, 3, 32, 32], { severity });
    // Severity 1: radius 0.3 is one pixel; OpenCV's 3 x 3 Gaussian with sigma 0.4 spreads it.
    const g = Math.exp(-1 / (2 * 0.4 * 0.4));
    const centre = 1 / (1 + 2 * g) ** 2;
    const s1 = response(1);
    expect(s1[10 * 32 + 20]).toBeCloseTo(centre, 6);
    expect(s1[10 * 32 + 21]).toBeCloseTo(centre * g, 6);
    expect(s1[11 * 32 + 21]).toBeCloseTo(centre * g * g, 6);
    // Severity 4: radius 1 is a plus of five pixels; sigma 0.2 barely blurs it.
    const s4 = response(4);
    for (const [dy, dx] of [
      [0, 0],
      [0, 1],
      [1, 0],
      [0, -1],
      [-1, 0],
    ])
      expect(s4[(10 + dy!) * 32 + 20 + dx!]).toBeCloseTo(0.2, 4);
    expect(s4[11 * 32 + 21]).toBeLessThan(1e-4);
    // Severity 5: radius 1.5 holds the 3 x 3 square (1 + 1 <= 2.25); sigma 0.1 leaves it.
    const s5 = response(5);
    for (let dy = -2; dy <= 2; dy++) {
      for (let dx = -2; dx <= 2; dx++) expect(s5[(10 + dy) * 32 + 20 + dx]).toBeCloseTo(Math.abs(dy) <= 1 && Math.abs(dx) <= 1 ? 1 / 9 : 0, 7);
    }
    for (let s = 1; s <= 5; s++) expect(response(s).reduce((a, b) => a + b, 0) / 3).toBeCloseTo(1, 5);
  });

  it('glass blur: MNIST-C blurs vertically only and swaps pixels (the total is kept); CIFAR-10-C copies from up/left neighbours', () => {
    // The blur alone (no passes): a point spreads down its column only, as scikit-image's
    // gaussian(multichannel=True) does on a 28 x 28 array.
    const point = fromFormula(1, 1, 28, 28, (_c, y, x) => (y === 14 && x === 14 ? 1 : 0));
    const vertical = run(
      blur.glassBlur({ sigma: 0.7, maxDelta: 1, iterations: 0, axes: 'vertical', move: 'swap', halfOfPixels: true }),
      point.images,
      1,
      28,
      28,
    );
    for (let y = 0; y < 28; y++) for (let x = 0; x < 28; x++) if (x !== 14) expect(vertical[y * 28 + x]).toBe(0);
    const k = scipyKernel(0.7);
    const twice = k.map((_, i) => k.reduce((s, kj, j) => s + kj * (k[i - j + 3] ?? 0), 0)); // kernel * kernel, centre 3
    expect(vertical[14 * 28 + 14]).toBeCloseTo(twice[3]!, 7);
    // Swaps only permute: without the blur the values are the input's, rearranged.
    const digits = mnistDigits(4);
    const swapped = run(
      blur.glassBlur({ sigma: 0, maxDelta: 1, iterations: 2, axes: 'vertical', move: 'swap', halfOfPixels: true }),
      digits.images.subarray(0, 784),
      1,
      28,
      28,
      3,
    );
    expect(Array.from(swapped).sort()).toEqual(Array.from(digits.images.subarray(0, 784)).sort());
    // The suite: blur, swaps, blur keep each digit's total intensity, to 0.1% (strokes that come
    // within the blur's 3 pixels of the frame meet its 'nearest' border).
    const out = corrupt('mnist-c', 'glass_blur', digits.images, digits.shape, { seed: 2 });
    for (let k2 = 0; k2 < 4; k2++) {
      expect(Math.abs(moments(out, 28, 28, k2 * 784).mass / moments(digits.images, 28, 28, k2 * 784).mass - 1)).toBeLessThan(1e-3);
    }

    // CIFAR-10-C severity 1 (sigma 0.05: a one-tap blur, no blurring): each pixel of rows and
    // columns 2..31 holds the value from (h + dy, w + dx), dy, dx in {-1, 0}; rows and columns 0, 1 stay.
    const distinct = fromFormula(1, 3, 32, 32, (c, y, x) => (c * 1024 + y * 32 + x + 1) / 4096);
    const copied = corrupt('cifar10-c', 'glass_blur', distinct.images, [1, 3, 32, 32], { severity: 1, seed: 4 });
    let moved = 0;
    for (let y = 0; y < 32; y++) {
      for (let x = 0; x < 32; x++) {
        const v = copied[y * 32 + x]!;
        if (y < 2 || x < 2) {
          expect(v).toBe(distinct.images[y * 32 + x]);
          continue;
        }
        const sources = [
          [0, 0],
          [-1, 0],
          [0, -1],
          [-1, -1],
        ].map(([dy, dx]) => distinct.images[(y + dy!) * 32 + x + dx!]);
        expect(sources).toContain(v);
        for (let c = 1; c < 3; c++) expect(copied[c * 1024 + y * 32 + x]! - v).toBeCloseTo(c * 0.25, 6); // the pixel moves whole
        if (v !== distinct.images[y * 32 + x]) moved++;
      }
    }
    expect(moved / (30 * 30)).toBeGreaterThan(0.7); // 3 of 4 offsets move
    expect(moved / (30 * 30)).toBeLessThan(0.8);
  });

  it('zoom blur keeps a constant image and maps a ramp to a ramp (linear zooms, averaged)', () => {
    const constant = fromFormula(1, 3, 32, 32, () => 0.37);
    const ramp = fromFormula(1, 3, 32, 32, (c, y, x) => 0.1 + 0.02 * x + 0.005 * y + 0.01 * c);
    for (let severity = 1; severity <= 5; severity++) {
      const flat = corrupt('cifar10-c', 'zoom_blur', constant.images, constant.shape, { severity });
      expect(flat.every((v) => Math.abs(v - 0.37) < 1e-6)).toBe(true);
      const out = corrupt('cifar10-c', 'zoom_blur', ramp.images, ramp.shape, { severity });
      for (let y = 0; y < 32; y++)
        for (let x = 1; x < 31; x++) expect(Math.abs(out[y * 32 + x + 1]! - 2 * out[y * 32 + x]! + out[y * 32 + x - 1]!)).toBeLessThan(1e-5);
      // Zooming in about the centre flattens the ramp: the slope shrinks as the factors grow.
      const slope = out[16 * 32 + 20]! - out[16 * 32 + 19]!;
      expect(slope).toBeLessThan(0.02);
      expect(slope).toBeGreaterThan(0.02 / 1.25);
    }
  });

  it('motion blur: a one-sided Gaussian line, exp(-i^2 / (2 sigma^2)) for i = 0..2 radius, at the drawn angle', () => {
    const sigma = 3;
    const weights = Array.from({ length: 21 }, (_, i) => Math.exp(-(i * i) / (2 * sigma * sigma)));
    const total = weights.reduce((a, b) => a + b, 0);
    const point = fromFormula(1, 1, 28, 28, (_c, y, x) => (y === 14 && x === 24 ? 1 : 0));
    // Angle 0: output pixel (y, x) gathers input (y, x + i): the point smears i pixels to its left.
    const flat = run(blur.motionBlur(10, sigma, 0, 0), point.images, 1, 28, 28);
    for (let i = 0; i <= 20; i++) expect(flat[14 * 28 + 24 - i]).toBeCloseTo(weights[i]! / total, 7);
    expect(flat.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 6);
    // Angle 45: offsets (ceil(i cos - 0.5), ceil(i sin - 0.5)), a diagonal up and to the left.
    const diagonal = run(blur.motionBlur(10, sigma, 45, 45), point.images, 1, 28, 28);
    for (let i = 0; i <= 14; i++) {
      const d = Math.ceil(i * Math.SQRT1_2 - 0.5);
      expect(diagonal[(14 - d) * 28 + 24 - d]).toBeGreaterThanOrEqual(weights[i]! / total - 1e-7);
    }
    // The suite: the angle is drawn from [-45, 45) degrees, so the smear runs leftwards within 45 degrees of the row.
    for (let seed = 0; seed < 20; seed++) {
      const out = corrupt('mnist-c', 'motion_blur', point.images, point.shape, { seed });
      let sum = 0;
      for (let y = 0; y < 28; y++) {
        for (let x = 0; x < 28; x++) {
          const v = out[y * 28 + x]!;
          sum += v;
          if (v > 0) {
            expect(x).toBeLessThanOrEqual(24);
            expect(Math.abs(y - 14)).toBeLessThanOrEqual(24 - x + 1);
          }
        }
      }
      expect(sum).toBeCloseTo(1, 5);
      expect(out[14 * 28 + 24]).toBeCloseTo(weights[0]! / total, 6);
    }
    // Beyond the edge the edge repeats: a constant image stays constant.
    const constant = fromFormula(1, 1, 28, 28, () => 0.6);
    expect(corrupt('mnist-c', 'motion_blur', constant.images, constant.shape).every((v) => Math.abs(v - 0.6) < 1e-6)).toBe(true);
  });
});
