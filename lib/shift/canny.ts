/**
 * The Canny edge detector of scikit-image's feature.canny with its defaults (sigma 1, low
 * threshold 0.1 and high 0.2 of a float image's range 1, no mask), which MNIST-C's
 * canny_edges applies to the digit scaled to [0, 1]:
 * 1. Gaussian smoothing with zeros beyond the edge, divided by the same smoothing of a mask of
 *    ones (smooth_with_function_and_mask), so the border is not darkened;
 * 2. Sobel gradients (scipy.ndimage.sobel, border 'reflect'): isobel down the rows, jsobel
 *    along them, magnitude hypot(isobel, jsobel);
 * 3. non-maximum suppression away from the one-pixel frame, comparing the magnitude with the
 *    two neighbours along the gradient, interpolated between the nearest axis and diagonal
 *    pixel (four octant rules, later ones overriding earlier ones where they overlap, as
 *    scikit-image assigns them);
 * 4. hysteresis: local maxima >= low that are 8-connected to a local maximum >= high.
 */
import { AxisFilter, SeparableFilter } from './filters';
import type { ImageKernel, KernelFactory } from './kernel';

export interface CannyOptions {
  sigma: number;
  low: number;
  high: number;
}

/** Edge map (1 on edges, 0 elsewhere) of one h x w plane. */
export class Canny {
  private readonly smooth: SeparableFilter;
  private readonly normaliser: Float64Array;
  private readonly derivDown: AxisFilter;
  private readonly derivAcross: AxisFilter;
  private readonly smoothDown: AxisFilter;
  private readonly smoothAcross: AxisFilter;
  private readonly smoothed: Float64Array;
  private readonly tmp: Float64Array;
  private readonly gi: Float64Array;
  private readonly gj: Float64Array;
  private readonly magnitude: Float64Array;
  private readonly maxima: Uint8Array;
  private readonly stack: Int32Array;

  constructor(
    readonly h: number,
    readonly w: number,
    readonly options: CannyOptions,
  ) {
    const size = h * w;
    this.smooth = SeparableFilter.gaussian(h, w, options.sigma, options.sigma, 'constant');
    const ones = new Float64Array(size).fill(1);
    this.normaliser = new Float64Array(size);
    this.smooth.apply(ones, 0, this.normaliser, 0);
    for (let i = 0; i < size; i++) this.normaliser[i]! += Number.EPSILON; // bleed_over + eps
    this.derivDown = new AxisFilter([-1, 0, 1], h, 'reflect');
    this.derivAcross = new AxisFilter([-1, 0, 1], w, 'reflect');
    this.smoothDown = new AxisFilter([1, 2, 1], h, 'reflect');
    this.smoothAcross = new AxisFilter([1, 2, 1], w, 'reflect');
    this.smoothed = new Float64Array(size);
    this.tmp = new Float64Array(size);
    this.gi = new Float64Array(size);
    this.gj = new Float64Array(size);
    this.magnitude = new Float64Array(size);
    this.maxima = new Uint8Array(size);
    this.stack = new Int32Array(size);
  }

  /** Writes the edge map of the plane at src[srcOffset ..] to dst[dstOffset ..]. */
  edges(src: Float32Array, srcOffset: number, dst: Float32Array, dstOffset: number): void {
    const { h, w, smoothed, tmp, gi, gj, magnitude, maxima, stack } = this;
    const size = h * w;
    this.smooth.apply(src, srcOffset, smoothed, 0);
    for (let i = 0; i < size; i++) smoothed[i]! /= this.normaliser[i]!;
    // ndi.sobel(axis=0): derivative down the columns, [1, 2, 1] smoothing along the rows; axis=1 the other way.
    this.derivDown.down(smoothed, 0, tmp, 0, w);
    this.smoothAcross.across(tmp, 0, gi, 0, h);
    this.derivAcross.across(smoothed, 0, tmp, 0, h);
    this.smoothDown.down(tmp, 0, gj, 0, w);
    for (let i = 0; i < size; i++) magnitude[i] = Math.sqrt(gi[i]! * gi[i]! + gj[i]! * gj[i]!);

    maxima.fill(0);
    for (let r = 1; r < h - 1; r++) {
      for (let c = 1; c < w - 1; c++) {
        const p = r * w + c;
        const m = magnitude[p]!;
        if (!(m > 0)) continue; // scikit-image's eroded mask also requires magnitude > 0
        const isob = gi[p]!;
        const jsob = gj[p]!;
        const ai = Math.abs(isob);
        const aj = Math.abs(jsob);
        const same = (isob >= 0 && jsob >= 0) || (isob <= 0 && jsob <= 0);
        const opposite = (isob <= 0 && jsob >= 0) || (isob >= 0 && jsob <= 0);
        // Octants in scikit-image's order; a later one that also holds overrides the result.
        let result = -1;
        if (same && ai >= aj) {
          const wgt = aj / ai;
          result = Number(magnitude[p + w + 1]! * wgt + magnitude[p + w]! * (1 - wgt) <= m && magnitude[p - w - 1]! * wgt + magnitude[p - w]! * (1 - wgt) <= m);
        }
        if (same && ai <= aj) {
          const wgt = ai / aj;
          result = Number(magnitude[p + w + 1]! * wgt + magnitude[p + 1]! * (1 - wgt) <= m && magnitude[p - w - 1]! * wgt + magnitude[p - 1]! * (1 - wgt) <= m);
        }
        if (opposite && ai <= aj) {
          const wgt = ai / aj;
          result = Number(magnitude[p - w + 1]! * wgt + magnitude[p + 1]! * (1 - wgt) <= m && magnitude[p + w - 1]! * wgt + magnitude[p - 1]! * (1 - wgt) <= m);
        }
        if (opposite && ai >= aj) {
          const wgt = aj / ai;
          result = Number(magnitude[p - w + 1]! * wgt + magnitude[p - w]! * (1 - wgt) <= m && magnitude[p + w - 1]! * wgt + magnitude[p + w]! * (1 - wgt) <= m);
        }
        if (result === 1) maxima[p] = 1; // 1: a local maximum
      }
    }

    // Hysteresis: flood the 8-connected low components from their high pixels (2 marks an edge).
    const { low, high } = this.options;
    let top = 0;
    for (let p = 0; p < size; p++) {
      if (maxima[p] === 1 && magnitude[p]! >= high) {
        maxima[p] = 2;
        stack[top++] = p;
      }
    }
    while (top > 0) {
      const p = stack[--top]!;
      const r = (p / w) | 0;
      const c = p - r * w;
      for (let dr = -1; dr <= 1; dr++) {
        const rr = r + dr;
        if (rr < 0 || rr >= h) continue;
        for (let dc = -1; dc <= 1; dc++) {
          const cc = c + dc;
          if (cc < 0 || cc >= w) continue;
          const q = rr * w + cc;
          if (maxima[q] === 1 && magnitude[q]! >= low) {
            maxima[q] = 2;
            stack[top++] = q;
          }
        }
      }
    }
    for (let p = 0; p < size; p++) dst[dstOffset + p] = maxima[p] === 2 ? 1 : 0;
  }
}

/** canny_edges: the Canny edge map of each channel (1 on edges, 0 elsewhere). */
export function cannyEdges(options: CannyOptions = { sigma: 1, low: 0.1, high: 0.2 }): KernelFactory {
  return ({ channels, height, width }): ImageKernel => {
    const canny = new Canny(height, width, options);
    const size = height * width;
    return (src, dst) => {
      for (let c = 0; c < channels; c++) canny.edges(src, c * size, dst, c * size);
    };
  };
}
