/**
 * MNIST-C's corruptions that draw over the digit: stripe (inverted bands), dotted line, zigzag
 * and spatter (mud blots), as google-research/mnist-c corruptions.py draws them on 28 x 28
 * greyscale images. Constants are the published code's, in its row/column pixel units.
 */
import type { Random } from '../random';
import { SeparableFilter } from './filters';
import type { ImageKernel, KernelFactory } from './kernel';

/** stripe: inverts columns [0, 7) and [21, width) (x[:, :7] and x[:, 21:]). */
export function stripe(): KernelFactory {
  return ({ channels, height, width }): ImageKernel =>
    (src, dst) => {
      for (let i = 0; i < channels * height; i++) {
        for (let x = 0; x < width; x++) {
          const k = i * width + x;
          dst[k] = x < 7 || x >= 21 ? 1 - src[k]! : src[k]!;
        }
      }
    };
}

/** Python's slice bound: a negative index counts from the end, clamped to [0, n]. */
function sliceBound(i: number, n: number): number {
  return Math.min(n, Math.max(0, i < 0 ? n + i : i));
}

/**
 * Adds line_from_points(c0, r0, c1, r1) to the h x w plane `acc`: along the line through
 * (c0, r0) and (c1, r1), intensity log(1 - d / 2.3) + 1 clipped to [0, 1], d the vertical
 * distance |row - line(column)| (clipped below 2.3), zero in columns [0, floor(c0)) and
 * [ceil(c1), w) (Python slices: negative bounds count from the end). Nothing when c1 == c0.
 * Then clips acc to [0, 1] when `clip` (zigzag clips after each segment).
 */
function addLine(acc: Float64Array, h: number, w: number, c0: number, r0: number, c1: number, r1: number, clip: boolean): void {
  if (c1 !== c0) {
    const slope = (r1 - r0) / (c1 - c0);
    const left = sliceBound(Math.floor(c0), w);
    const right = sliceBound(Math.ceil(c1), w);
    for (let col = left; col < right; col++) {
      const row0 = slope * (col - c0) + r0;
      for (let row = 0; row < h; row++) {
        const d = Math.min(Math.abs(row - row0), 2.3 - 1e-10);
        const v = Math.log(1 - d / 2.3) + 1;
        if (v > 0) acc[row * w + col]! += Math.min(v, 1);
      }
    }
  }
  if (clip) for (let i = 0; i < h * w; i++) acc[i] = Math.min(1, Math.max(0, acc[i]!));
}

/** Runs `draw` on a float64 copy of each channel plane and writes the result. */
function drawn(draw: (acc: Float64Array, h: number, w: number, rng: Random) => void): KernelFactory {
  return ({ channels, height, width }): ImageKernel => {
    const size = height * width;
    const acc = new Float64Array(size);
    return (src, dst, rng) => {
      for (let c = 0; c < channels; c++) {
        for (let i = 0; i < size; i++) acc[i] = src[c * size + i]!;
        draw(acc, height, width, rng);
        for (let i = 0; i < size; i++) dst[c * size + i] = acc[i]!;
      }
    };
  };
}

/**
 * dotted_line: a line from (column 0, row r0) to (column 27, row r1), r0, r1 uniform in
 * [0, 27) (np.random.randint(0, 27)), with every other 2-column block blanked from column 0
 * ([0, 2), [4, 6), .., [28, 30)); the line itself stops before column 27.
 */
export function dottedLine(): KernelFactory {
  return drawn((acc, h, w, rng) => {
    const r0 = rng.integerBelow(27);
    const r1 = rng.integerBelow(27);
    const line = new Float64Array(h * w);
    addLine(line, h, w, 0, r0, 27, r1, false);
    for (let row = 0; row < h; row++) {
      for (let col = 0; col < w; col++) {
        const on = (col >> 1) % 2 === 1; // blocks [2, 4), [6, 8), .. keep the line
        acc[row * w + col]! += on ? line[row * w + col]! : 0;
      }
    }
  });
}

/**
 * zigzag: a zigzag of amplitude b = 2 and half-period a = 2 from column 2 to column 25, its
 * axis from row r0 (uniform in [0, 27)) to row r1 = r0 + U{-5, .., 4}: the published code's
 * end points ((2i + 1) a, (-1)^i b) along the axis, plus its final point
 * (d, r_last / (2 (d - 4 floor(d / 4)))), rotated onto the axis; each segment added with
 * addLine and clipped.
 */
export function zigzag(): KernelFactory {
  const a = 2;
  const b = 2;
  const cStart = 2;
  const cEnd = 25;
  return drawn((acc, h, w, rng) => {
    const r0 = rng.integerBelow(27);
    const r1 = r0 + rng.integerBelow(10) - 5;
    const theta = Math.atan((r1 - r0) / (cEnd - cStart));
    const d = (cEnd - cStart) / Math.cos(theta);
    const cs = [0];
    const rs = [0];
    const count = Math.floor((d - a) / (2 * a)) + 1;
    let rLast = 0;
    for (let i = 0; i < count; i++) {
      cs.push((2 * i + 1) * a);
      rLast = (i % 2 === 0 ? 1 : -1) * b;
      rs.push(rLast);
    }
    const maxC = 2 * a * Math.floor(d / (2 * a));
    if (d !== maxC) {
      cs.push(d);
      rs.push(rLast / (2 * (d - maxC)));
    }
    const cos = Math.cos(theta);
    const sin = Math.sin(theta);
    const pc = cs.map((c, i) => cos * c - sin * rs[i]! + cStart);
    const pr = cs.map((c, i) => sin * c + cos * rs[i]! + r0);
    for (let i = 1; i < pc.length; i++) addLine(acc, h, w, pc[i - 1]!, pr[i - 1]!, pc[i]!, pr[i]!, true);
  });
}

/**
 * spatter (MNIST-C's severity 4: c = (0.65, 0.3, 1, 0.65, 1.5, 1), mud): a liquid layer
 * N(0.65, 0.3^2) per pixel, Gaussian-blurred (sigma 1, borders 'nearest'); its mask
 * (layer > 0.65) blurred with sigma 1.5 and zeroed below 0.8 gives m; then
 * x (1 - m) + m 63 / 255.
 */
export function spatter(): KernelFactory {
  return ({ channels, height, width }): ImageKernel => {
    const size = height * width;
    const liquid = new Float64Array(size);
    const mask = new Float64Array(size);
    const blurLiquid = SeparableFilter.gaussian(height, width, 1, 1, 'nearest');
    const blurMask = SeparableFilter.gaussian(height, width, 1.5, 1.5, 'nearest');
    return (src, dst, rng) => {
      for (let i = 0; i < size; i++) liquid[i] = rng.normal(0.65, 0.3);
      blurLiquid.apply(liquid, 0, liquid, 0);
      for (let i = 0; i < size; i++) mask[i] = liquid[i]! > 0.65 ? 1 : 0;
      blurMask.apply(mask, 0, mask, 0);
      for (let i = 0; i < size; i++) if (mask[i]! < 0.8) mask[i] = 0;
      for (let c = 0; c < channels; c++) {
        for (let i = 0; i < size; i++) {
          const m = mask[i]!;
          dst[c * size + i] = src[c * size + i]! * (1 - m) + (m * 63) / 255;
        }
      }
    };
  };
}
