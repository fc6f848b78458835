/**
 * Resampling of image planes as the published corruption code does it: bilinear sampling at
 * arbitrary points (scikit-image's warp, OpenCV's warpAffine, scipy's map_coordinates with
 * order 1), scipy.ndimage.zoom with order 1, and PIL's BOX resize.
 */
import { borderIndex, type Border, type Plane } from './filters';

/** The pixel at (r, c), or 0 where borderIndex gave -1 (a 'constant' border). */
function pixel(src: Plane, offset: number, w: number, r: number, c: number): number {
  return r < 0 || c < 0 ? 0 : src[offset + r * w + c]!;
}

/**
 * Bilinear interpolation of the h x w plane at src[offset ..] at (row y, column x). Neighbours
 * beyond the edge read through `border` ('constant' reads zeros, as scikit-image's warp with
 * mode 'constant' and cval 0 does).
 */
export function bilinear(src: Plane, offset: number, h: number, w: number, y: number, x: number, border: Border): number {
  const r0 = Math.floor(y);
  const c0 = Math.floor(x);
  const fy = y - r0;
  const fx = x - c0;
  let ra = r0;
  let rb = r0 + 1;
  let ca = c0;
  let cb = c0 + 1;
  if (r0 < 0 || rb >= h || c0 < 0 || cb >= w) {
    ra = borderIndex(ra, h, border);
    rb = borderIndex(rb, h, border);
    ca = borderIndex(ca, w, border);
    cb = borderIndex(cb, w, border);
    const top = (1 - fx) * pixel(src, offset, w, ra, ca) + fx * pixel(src, offset, w, ra, cb);
    const bottom = (1 - fx) * pixel(src, offset, w, rb, ca) + fx * pixel(src, offset, w, rb, cb);
    return (1 - fy) * top + fy * bottom;
  }
  const top = offset + ra * w;
  const bottom = offset + rb * w;
  return (1 - fy) * ((1 - fx) * src[top + ca]! + fx * src[top + cb]!) + fy * ((1 - fx) * src[bottom + ca]! + fx * src[bottom + cb]!);
}

/**
 * An affine inverse map in scikit-image's (column x, row y) convention: the output pixel at
 * (x, y) reads the input at (a x + b y + c, d x + e y + f).
 */
export interface InverseMap {
  a: number;
  b: number;
  c: number;
  d: number;
  e: number;
  f: number;
}

/** Writes the warped h x w plane: dst(y, x) = bilinear(src, input point of (x, y)). */
export function warpPlane(src: Plane, srcOffset: number, dst: Plane, dstOffset: number, h: number, w: number, m: InverseMap, border: Border): void {
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      dst[dstOffset + y * w + x] = bilinear(src, srcOffset, h, w, m.d * x + m.e * y + m.f, m.a * x + m.b * y + m.c, border);
    }
  }
}

/** Per-output-index source position (lower neighbour and weight of the upper one) along one axis. */
export interface LinearTable {
  lower: Int32Array;
  frac: Float64Array;
}

/**
 * scipy.ndimage.zoom(order=1) of a length-n axis to `outSize`, evaluated at outputs
 * start .. start + count - 1: with scipy's default grid_mode=False the output's end points map
 * to the input's, input = output (n - 1) / (outSize - 1). Positions are offset by `inStart`.
 */
export function zoomTable(n: number, outSize: number, start: number, count: number, inStart: number): LinearTable {
  const lower = new Int32Array(count);
  const frac = new Float64Array(count);
  const scale = outSize > 1 ? (n - 1) / (outSize - 1) : 0;
  for (let i = 0; i < count; i++) {
    const p = (start + i) * scale;
    let l = Math.floor(p);
    if (l >= n - 1) l = Math.max(0, n - 2);
    lower[i] = inStart + l;
    frac[i] = n > 1 ? p - l : 0;
  }
  return { lower, frac };
}

/** Python 3's round(): half to even, as scipy's zoom uses for its output shape. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * The taps of PIL's resize with the BOX filter along one axis, n inputs to `outSize` outputs
 * (PIL's precompute_coeffs): output i is centred at (i + 0.5) n / outSize and averages the
 * inputs whose centres lie in the box of half-width max(n / outSize, 1) / 2 around it.
 */
export class BoxResize {
  private readonly start: Int32Array;
  private readonly count: Int32Array;
  private readonly weights: Float64Array;
  private readonly width: number;

  constructor(
    readonly n: number,
    readonly outSize: number,
  ) {
    const scale = n / outSize;
    const filterScale = Math.max(scale, 1);
    const support = 0.5 * filterScale;
    this.width = Math.ceil(support) * 2 + 1;
    this.start = new Int32Array(outSize);
    this.count = new Int32Array(outSize);
    this.weights = new Float64Array(outSize * this.width);
    for (let i = 0; i < outSize; i++) {
      const center = (i + 0.5) * scale;
      const xmin = Math.max(0, Math.trunc(center - support + 0.5));
      const xmax = Math.min(n, Math.trunc(center + support + 0.5)) - xmin;
      let total = 0;
      for (let k = 0; k < xmax; k++) {
        const t = (k + xmin - center + 0.5) / filterScale;
        const v = t > -0.5 && t <= 0.5 ? 1 : 0; // PIL's box_filter
        this.weights[i * this.width + k] = v;
        total += v;
      }
      if (total !== 0) for (let k = 0; k < xmax; k++) this.weights[i * this.width + k]! /= total;
      this.start[i] = xmin;
      this.count[i] = xmax;
    }
  }

  /** Resamples `lines` lines: line l reads src from srcOffset + l * srcLineStride with elements srcStep apart, and writes likewise. */
  run(
    src: Plane,
    srcOffset: number,
    srcLineStride: number,
    srcStep: number,
    dst: Plane,
    dstOffset: number,
    dstLineStride: number,
    dstStep: number,
    lines: number,
  ): void {
    const { start, count, weights, width, outSize } = this;
    for (let l = 0; l < lines; l++) {
      const s = srcOffset + l * srcLineStride;
      const d = dstOffset + l * dstLineStride;
      for (let i = 0; i < outSize; i++) {
        let acc = 0;
        const first = start[i]!;
        for (let k = 0; k < count[i]!; k++) acc += weights[i * width + k]! * src[s + (first + k) * srcStep]!;
        dst[d + i * dstStep] = acc;
      }
    }
  }
}
