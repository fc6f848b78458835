/**
 * Linear filters on image planes (one channel, H x W, row-major), as the published corruption
 * code calls them through scipy.ndimage, scikit-image and OpenCV: Gaussian kernels with scipy's
 * truncation, one-axis correlations with each library's border rule, and small 2-D kernels.
 * Every filter precomputes its taps for an axis length once, so that per-image work is tight
 * loops over typed arrays.
 */

/** A plane of pixel values: the caller's Float32Array images or Float64Array work buffers. */
export type Plane = Float32Array | Float64Array;

/**
 * How a filter reads beyond the edge of a length-n axis:
 * - 'constant': zeros (scipy mode='constant', cval 0; scikit-image's warp);
 * - 'nearest': the edge value repeated (scipy mode='nearest', scikit-image's gaussian default;
 *   ImageMagick's default "edge" virtual pixels);
 * - 'reflect': half-sample symmetric, d c b a | a b c d (scipy mode='reflect');
 * - 'mirror': whole-sample symmetric, d c b | a b c d (scipy mode='mirror', OpenCV's default
 *   BORDER_REFLECT_101).
 */
export type Border = 'constant' | 'nearest' | 'reflect' | 'mirror';

/** The in-range index that position i of a length-n axis reads under `border`; -1 for a zero ('constant' outside). */
export function borderIndex(i: number, n: number, border: Border): number {
  if (i >= 0 && i < n) return i;
  switch (border) {
    case 'constant':
      return -1;
    case 'nearest':
      return i < 0 ? 0 : n - 1;
    case 'reflect': {
      const period = 2 * n;
      const j = ((i % period) + period) % period;
      return j < n ? j : period - 1 - j;
    }
    case 'mirror': {
      if (n === 1) return 0;
      const period = 2 * n - 2;
      const j = ((i % period) + period) % period;
      return j < n ? j : period - j;
    }
  }
}

/**
 * scipy.ndimage's Gaussian kernel (gaussian_filter1d): radius floor(truncate * sigma + 0.5),
 * weights exp(-x^2 / (2 sigma^2)) normalised to sum 1. Both scikit-image's `gaussian` and
 * scipy's `gaussian_filter` use truncate 4 unless told otherwise.
 */
export function gaussianWeights(sigma: number, truncate = 4): Float64Array {
  const radius = Math.floor(truncate * sigma + 0.5);
  const weights = new Float64Array(2 * radius + 1);
  let sum = 0;
  for (let k = -radius; k <= radius; k++) {
    const v = Math.exp((-0.5 * k * k) / (sigma * sigma));
    weights[k + radius] = v;
    sum += v;
  }
  for (let k = 0; k < weights.length; k++) weights[k]! /= sum;
  return weights;
}

/**
 * A correlation along one axis of length n, out[i] = sum_k w[k] in[i + k - r] (r the kernel's
 * half-width), with the border rule folded into per-position taps near the edges.
 */
export class AxisFilter {
  readonly n: number;
  readonly width: number;
  private readonly r: number;
  private readonly kernel: Float64Array;
  /** taps[i * width + k]: the index read by tap k of output i (0 where the weight is a zero border). */
  private readonly taps: Int32Array;
  private readonly weights: Float64Array;

  constructor(kernel: ArrayLike<number>, n: number, border: Border) {
    const width = kernel.length;
    if (width % 2 !== 1) throw new RangeError(`Expected an odd kernel length for kernel but received ${width}`);
    const r = (width - 1) / 2;
    this.n = n;
    this.width = width;
    this.r = r;
    this.kernel = Float64Array.from(kernel);
    this.taps = new Int32Array(n * width);
    this.weights = new Float64Array(n * width);
    for (let i = 0; i < n; i++) {
      for (let k = 0; k < width; k++) {
        const j = borderIndex(i + k - r, n, border);
        this.taps[i * width + k] = j < 0 ? 0 : j;
        this.weights[i * width + k] = j < 0 ? 0 : kernel[k]!;
      }
    }
  }

  /** Filters each of the h rows of an h x n plane along the row (axis 1). dst must not be src. */
  across(src: Plane, srcOffset: number, dst: Plane, dstOffset: number, h: number): void {
    const { n, width, r, kernel, taps, weights } = this;
    const inner0 = Math.min(r, n);
    const inner1 = Math.max(inner0, n - r);
    for (let y = 0; y < h; y++) {
      const s = srcOffset + y * n;
      const d = dstOffset + y * n;
      for (let i = 0; i < n; i++) {
        let acc = 0;
        if (i >= inner0 && i < inner1) {
          const first = s + i - r;
          for (let k = 0; k < width; k++) acc += kernel[k]! * src[first + k]!;
        } else {
          const t = i * width;
          for (let k = 0; k < width; k++) acc += weights[t + k]! * src[s + taps[t + k]!]!;
        }
        dst[d + i] = acc;
      }
    }
  }

  /** Filters the w columns of an n x w plane down the columns (axis 0), row by row. dst must not be src. */
  down(src: Plane, srcOffset: number, dst: Plane, dstOffset: number, w: number): void {
    const { n, width, taps, weights } = this;
    for (let y = 0; y < n; y++) {
      const d = dstOffset + y * w;
      for (let x = 0; x < w; x++) dst[d + x] = 0;
      for (let k = 0; k < width; k++) {
        const wt = weights[y * width + k]!;
        if (wt === 0) continue;
        const s = srcOffset + taps[y * width + k]! * w;
        for (let x = 0; x < w; x++) dst[d + x]! += wt * src[s + x]!;
      }
    }
  }
}

/**
 * A separable filter on h x w planes: first along the rows' direction (axis 0, down the
 * columns), then along each row (axis 1), the order scipy.ndimage applies its axes in. A null
 * kernel leaves that axis alone (scipy skips axes whose sigma is 0).
 */
export class SeparableFilter {
  private readonly down: AxisFilter | null;
  private readonly across: AxisFilter | null;
  private readonly a: Float64Array;
  private readonly b: Float64Array;

  constructor(
    readonly h: number,
    readonly w: number,
    kernelDown: ArrayLike<number> | null,
    kernelAcross: ArrayLike<number> | null,
    border: Border,
  ) {
    this.down = kernelDown ? new AxisFilter(kernelDown, h, border) : null;
    this.across = kernelAcross ? new AxisFilter(kernelAcross, w, border) : null;
    this.a = new Float64Array(h * w);
    this.b = new Float64Array(h * w);
  }

  /** A Gaussian blur with scipy's kernel; sigmaDown or sigmaAcross 0 leaves that axis alone. */
  static gaussian(h: number, w: number, sigmaDown: number, sigmaAcross: number, border: Border, truncate = 4): SeparableFilter {
    const kernel = (sigma: number) => (sigma > 1e-15 ? gaussianWeights(sigma, truncate) : null);
    return new SeparableFilter(h, w, kernel(sigmaDown), kernel(sigmaAcross), border);
  }

  /** Filters the h x w plane at src[srcOffset ..] into dst[dstOffset ..] (dst may be src). */
  apply(src: Plane, srcOffset: number, dst: Plane, dstOffset: number): void {
    const { h, w, down, across } = this;
    const size = h * w;
    const { a, b } = this;
    for (let i = 0; i < size; i++) a[i] = src[srcOffset + i]!;
    // a -> b down the columns, b -> a along the rows; a skipped axis copies instead.
    if (down) down.down(a, 0, b, 0, w);
    else b.set(a);
    if (across) across.across(b, 0, a, 0, h);
    else a.set(b);
    for (let i = 0; i < size; i++) dst[dstOffset + i] = a[i]!;
  }
}
