// Geometric corruptions by what the geometry says: rotations turn the centre of mass and the
// principal axis by the published angle about the image centre, shears and scales change the
// second moments as their matrices do, translations move digits by whole pixels, and the elastic
// transform keeps planes planar (affine part) and moves pixels by at most a few pixels.
import { describe, expect, it } from 'vitest';
import { sdebnn } from './helpers';
import { fromFormula, mnistDigits, moments } from './shift-images';

const { corrupt, Random } = sdebnn;
const geometric = require('../dist/shift/geometric.js') as typeof import('../dist/shift/geometric');

/** A Gaussian blob on 28 x 28 centred at (cx, cy) with standard deviations sx, sy along x and y. */
function blob(cx: number, cy: number, sx: number, sy: number) {
  return fromFormula(1, 1, 28, 28, (_c, y, x) => Math.exp(-((x - cx) ** 2) / (2 * sx * sx) - (y - cy) ** 2 / (2 * sy * sy)));
}

/** Angle of the principal axis (radians, x right, y down) from second central moments. */
function axisAngle(m: { sxx: number; syy: number; sxy: number }): number {
  return 0.5 * Math.atan2(2 * m.sxy, m.sxx - m.syy);
}

describe('geometric corruptions', () => {
  it('rotate turns the centre of mass about (13.5, 13.5) and the principal axis by the same 0.4 rad, both signs across seeds', () => {
    const { images, shape } = blob(17, 13.5, 3, 1.2); // right of the centre, elongated along x
    const before = moments(images, 28, 28);
    const radius = Math.hypot(before.cx - 13.5, before.cy - 13.5);
    const signs = new Set<number>();
    for (let seed = 0; seed < 12; seed++) {
      const m = moments(corrupt('mnist-c', 'rotate', images, shape, { seed }), 28, 28);
      const turned = Math.atan2(m.cy - 13.5, m.cx - 13.5); // was 0
      expect(Math.abs(Math.abs(turned) - 0.4)).toBeLessThan(0.01);
      expect(Math.hypot(m.cx - 13.5, m.cy - 13.5) / radius).toBeCloseTo(1, 2);
      expect(axisAngle(m)).toBeCloseTo(turned, 2);
      signs.add(Math.sign(turned));
    }
    expect(signs).toEqual(new Set([1, -1]));
  });

  it('shear by +-0.4 maps the covariance s^2 I to s^2 A A^T with A = [[1, tan c], [0, sec c]] about the centre', () => {
    const s = 2.5;
    const { images, shape } = blob(13.5, 13.5, s, s);
    const signs = new Set<number>();
    for (let seed = 0; seed < 12; seed++) {
      const m = moments(corrupt('mnist-c', 'shear', images, shape, { seed }), 28, 28);
      const c = Math.sign(m.sxy) * 0.4;
      signs.add(Math.sign(c));
      expect(m.cx).toBeCloseTo(13.5, 2);
      expect(m.cy).toBeCloseTo(13.5, 2);
      expect(m.sxx / (s * s * (1 + Math.tan(c) ** 2))).toBeCloseTo(1, 1);
      expect(m.syy / ((s * s) / Math.cos(c) ** 2)).toBeCloseTo(1, 1);
      expect(m.sxy / ((s * s * Math.tan(c)) / Math.cos(c))).toBeCloseTo(1, 1);
    }
    expect(signs).toEqual(new Set([1, -1]));
  });

  it('scale (inverse map 1 / 0.7) shrinks a centred blob to 0.7 of its size and 0.49 of its mass', () => {
    const { images, shape } = blob(13.5, 13.5, 4, 3);
    const before = moments(images, 28, 28);
    const after = moments(corrupt('mnist-c', 'scale', images, shape), 28, 28);
    expect(after.cx).toBeCloseTo(13.5, 4);
    expect(after.cy).toBeCloseTo(13.5, 4);
    // Bilinear interpolation adds about 1/6 pixel^2 of variance: 0.7 to within 0.01.
    expect(Math.abs(Math.sqrt(after.sxx / before.sxx) - 0.7)).toBeLessThan(0.01);
    expect(Math.abs(Math.sqrt(after.syy / before.syy) - 0.7)).toBeLessThan(0.01);
    expect(after.mass / before.mass).toBeCloseTo(0.49, 2);
  });

  it('translate moves real digits by exactly (+-3, +-3) pixels, all four ways across seeds', () => {
    const { images } = mnistDigits(8);
    const moves = new Set<string>();
    const shifted = (digit: Float32Array, dx: number, dy: number) =>
      Float32Array.from({ length: 784 }, (_, i) => {
        const sy = Math.floor(i / 28) - dy;
        const sx = (i % 28) - dx;
        return sy >= 0 && sy < 28 && sx >= 0 && sx < 28 ? digit[sy * 28 + sx]! : 0;
      });
    for (let seed = 0; seed < 24; seed++) {
      const digit = images.slice((seed % 8) * 784, ((seed % 8) + 1) * 784);
      const out = corrupt('mnist-c', 'translate', digit, [1, 1, 28, 28], { seed });
      const matches = [
        [3, 3],
        [3, -3],
        [-3, 3],
        [-3, -3],
      ].filter(([dx, dy]) => shifted(digit, dx!, dy!).every((v, i) => v === out[i]));
      expect(matches.length, `seed ${seed}`).toBe(1);
      moves.add(matches[0]!.join(','));
    }
    expect(moves.size).toBe(4);
  });

  it('affineFromPoints solves three point pairs exactly', () => {
    const p = [26, 26, 26, 6, 6, 6];
    const q = [27.1, 25.2, 24.9, 7.3, 5.5, 6.6];
    const m = geometric.affineFromPoints(p, q);
    for (let i = 0; i < 3; i++) {
      expect(m.a * p[2 * i]! + m.b * p[2 * i + 1]! + m.c).toBeCloseTo(q[2 * i]!, 10);
      expect(m.d * p[2 * i]! + m.e * p[2 * i + 1]! + m.f).toBeCloseTo(q[2 * i + 1]!, 10);
    }
  });

  it('elastic transform: zero parameters are the identity; an affine-only severity keeps a plane a plane; fields move pixels by little', () => {
    const plane = fromFormula(1, 3, 32, 32, (c, y, x) => 0.2 + 0.015 * x + 0.006 * y + 0.05 * c);
    const identity = geometric.elasticTransform({ alpha: 0, sigma: 0, affine: 0 })({ channels: 3, height: 32, width: 32 });
    const same = new Float32Array(3072);
    if ('batch' in identity) throw new Error('elastic is per image');
    identity(plane.images, same, new Random(1));
    expect(same).toEqual(plane.images);
    // Severity 1 (alpha 0, affine 2.56): bilinear samples of a plane under an affine map are a
    // plane again, away from the mirrored border.
    for (let seed = 0; seed < 4; seed++) {
      const out = corrupt('cifar10-c', 'elastic_transform', plane.images, plane.shape, { severity: 1, seed });
      for (let y = 8; y < 24; y++) {
        for (let x = 9; x < 23; x++) {
          expect(Math.abs(out[y * 32 + x + 1]! - 2 * out[y * 32 + x]! + out[y * 32 + x - 1]!)).toBeLessThan(1e-5);
          expect(Math.abs(out[(y + 1) * 32 + x]! - 2 * out[y * 32 + x]! + out[(y - 1) * 32 + x]!)).toBeLessThan(1e-5);
        }
      }
    }
    // Severities 2-5 add a smooth field of at most alpha pixels: on a ramp in x alone the change
    // at a pixel is the slope times the moves, a few pixels at most.
    const ramp = fromFormula(1, 3, 32, 32, (_c, _y, x) => 0.1 + 0.025 * x);
    for (let severity = 2; severity <= 5; severity++) {
      const out = corrupt('cifar10-c', 'elastic_transform', ramp.images, ramp.shape, { severity, seed: 3 });
      for (let y = 8; y < 24; y++) for (let x = 8; x < 24; x++) expect(Math.abs(out[y * 32 + x]! - ramp.images[y * 32 + x]!) / 0.025).toBeLessThan(6);
    }
  });
});
