// MNIST-C's drawn corruptions by their geometry (stripe, dotted line, zigzag, spatter) and the
// Canny edge detector on a synthetic square.
import { describe, expect, it } from 'vitest';
import { sdebnn } from './helpers';
import { fromFormula, mnistDigits, square } from './shift-images';

const { corrupt } = sdebnn;

const black = (n: number) => fromFormula(n, 1, 28, 28, () => 0);

/** The lit rows of column x of image k (value > 0). */
function litRows(a: Float32Array, k: number, x: number): number[] {
  return Array.from({ length: 28 }, (_, y) => y).filter((y) => a[k * 784 + y * 28 + x]! > 0);
}

describe('MNIST-C drawn corruptions and edges', () => {
  it('stripe inverts exactly columns 0-6 and 21-27', () => {
    const { images, shape } = mnistDigits(3);
    const out = corrupt('mnist-c', 'stripe', images, shape);
    out.forEach((v, i) => {
      const x = i % 28;
      expect(v).toBeCloseTo(x < 7 || x >= 21 ? 1 - images[i]! : images[i]!, 7);
    });
  });

  it('dotted line: a straight line through rows r0 and r1 drawn in the 2-column blocks 2-3, 6-7, .., 26 only', () => {
    const { images, shape } = black(30);
    const out = corrupt('mnist-c', 'dotted_line', images, shape, { seed: 1 });
    for (let k = 0; k < 30; k++) {
      const peaks: [number, number][] = [];
      for (let x = 0; x < 28; x++) {
        const rows = litRows(out, k, x);
        const drawn = (x >> 1) % 2 === 1 && x < 27;
        if (!drawn) {
          expect(rows, `image ${k} column ${x}`).toEqual([]);
          continue;
        }
        // |row - line| < 2.3 lights at most 5 contiguous rows, and the nearest row (within 0.5) reaches log(1 - 0.5 / 2.3) + 1.
        expect(rows.length).toBeGreaterThan(0);
        expect(rows.length).toBeLessThanOrEqual(5);
        expect(rows[rows.length - 1]! - rows[0]!).toBe(rows.length - 1);
        const column = rows.map((y) => out[k * 784 + y * 28 + x]!);
        expect(Math.max(...column)).toBeGreaterThanOrEqual(Math.log(1 - 0.5 / 2.3) + 1 - 1e-6);
        peaks.push([x, rows[column.indexOf(Math.max(...column))]!]);
      }
      // The peaks lie within half a row of one straight line from column 0 to 27 with ends in rows 0-26.
      const [x0, y0] = peaks[0]!;
      const [x1, y1] = peaks[peaks.length - 1]!;
      const slope = (y1 - y0) / (x1 - x0);
      for (const [x, y] of peaks) expect(Math.abs(y - (y0 + slope * (x - x0)))).toBeLessThanOrEqual(1.01);
      expect(Math.abs(slope)).toBeLessThanOrEqual(27 / 27 + 0.1);
    }
  });

  it('zigzag: a continuous band from column 2 to about 25 that swings about 2 rows either side of its axis', () => {
    const { images, shape } = black(30);
    const out = corrupt('mnist-c', 'zigzag', images, shape, { seed: 2 });
    let inside = 0;
    for (let k = 0; k < 30; k++) {
      // Axes from rows near 0 or 26 leave the image (the published code draws them anyway); test the others.
      if (Array.from({ length: 28 }, (_, x) => litRows(out, k, x)).some((rows) => rows.includes(0) || rows.includes(27))) continue;
      inside++;
      const lit = Array.from({ length: 28 }, (_, x) => x).filter((x) => litRows(out, k, x).length > 0);
      expect(lit[0]).toBeGreaterThanOrEqual(1);
      expect(lit[0]).toBeLessThanOrEqual(3);
      expect(lit[lit.length - 1]).toBeGreaterThanOrEqual(23);
      expect(lit[lit.length - 1]).toBeLessThanOrEqual(27);
      // Centre row of each lit column, detrended by the axis from the first to the last column.
      const centre = lit.map((x) => {
        const rows = litRows(out, k, x);
        return (rows[0]! + rows[rows.length - 1]!) / 2;
      });
      for (let i = 1; i < lit.length; i++) expect(lit[i]! - lit[i - 1]!).toBe(1); // no gaps
      const a = lit[0]!;
      const b = lit[lit.length - 1]!;
      const axis = (x: number) => centre[0]! + ((centre[centre.length - 1]! - centre[0]!) * (x - a)) / (b - a);
      const swing = lit.map((x, i) => centre[i]! - axis(x));
      const range = Math.max(...swing) - Math.min(...swing);
      expect(range, `image ${k}`).toBeGreaterThan(2.5);
      expect(range).toBeLessThan(7);
    }
    expect(inside).toBeGreaterThan(20);
  });

  it('spatter: mud blots blend to 63/255 with masks in [0.8, 1]; everywhere else the image is untouched', () => {
    for (const value of [0, 1]) {
      const { images, shape } = fromFormula(40, 1, 28, 28, () => value);
      const out = corrupt('mnist-c', 'spatter', images, shape, { seed: 3 });
      let blotted = 0;
      let outOfRange = 0;
      out.forEach((v) => {
        if (v === value) return;
        blotted++;
        const m = (v - value) / (63 / 255 - value); // x (1 - m) + m 63/255
        if (m < 0.8 - 1e-6 || m > 1 + 1e-6) outOfRange++;
      });
      expect(outOfRange).toBe(0);
      expect(blotted / out.length).toBeGreaterThan(0.02);
      expect(blotted / out.length).toBeLessThan(0.5);
    }
  });

  it('canny edges are binary and trace the border of a square: within one pixel of it, all the way round', () => {
    const { images, shape } = square(28, 28, 8, 20, 6, 22, 0.8);
    const out = corrupt('mnist-c', 'canny_edges', images, shape);
    expect(out.every((v) => v === 0 || v === 1)).toBe(true);
    // The intensity steps between rows 7|8 and 19|20 and columns 5|6 and 21|22.
    const distance = (y: number, x: number) => {
      const dy = Math.max(7.5 - y, y - 19.5, 0);
      const dx = Math.max(5.5 - x, x - 21.5, 0);
      const inside = Math.min(y - 7.5, 19.5 - y, x - 5.5, 21.5 - x);
      return dy > 0 || dx > 0 ? Math.hypot(dy, dx) : inside;
    };
    let edges = 0;
    for (let y = 0; y < 28; y++) {
      for (let x = 0; x < 28; x++) {
        if (out[y * 28 + x] !== 1) continue;
        edges++;
        expect(distance(y, x), `edge at (${y}, ${x})`).toBeLessThanOrEqual(1);
      }
    }
    // Every side is traced: each border row or column within the square's span has an edge pixel next to it.
    for (let x = 8; x < 20; x++) {
      expect(
        [6, 7, 8, 9].some((y) => out[y * 28 + x] === 1),
        `top at column ${x}`,
      ).toBe(true);
      expect(
        [18, 19, 20, 21].some((y) => out[y * 28 + x] === 1),
        `bottom at column ${x}`,
      ).toBe(true);
    }
    for (let y = 10; y < 18; y++) {
      expect(
        [4, 5, 6, 7].some((x) => out[y * 28 + x] === 1),
        `left at row ${y}`,
      ).toBe(true);
      expect(
        [20, 21, 22, 23].some((x) => out[y * 28 + x] === 1),
        `right at row ${y}`,
      ).toBe(true);
    }
    expect(edges).toBeLessThan(2 * (12 + 16) + 8); // one line, not a band
    const flat = fromFormula(1, 1, 28, 28, () => 0.4);
    expect(corrupt('mnist-c', 'canny_edges', flat.images, flat.shape).every((v) => v === 0)).toBe(true);
  });
});
