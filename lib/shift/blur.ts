/**
 * Blurs: Gaussian, glass (blur, local pixel shuffling, blur), defocus (an anti-aliased disk),
 * zoom (the mean of centred zooms) and motion (ImageMagick's one-sided Gaussian line kernel),
 * each as the published code computes it, channel by channel.
 */
import { SeparableFilter, borderIndex } from './filters';
import type { ImageKernel, KernelFactory } from './kernel';
import { roundHalfEven, zoomTable } from './resample';

/** scikit-image's gaussian(x, sigma, multichannel=True): each channel blurred, borders 'nearest', truncate 4 (gaussian_blur). */
export function gaussianBlur(sigma: number): KernelFactory {
  return ({ channels, height, width }) => {
    const blur = SeparableFilter.gaussian(height, width, sigma, sigma, 'nearest');
    const size = height * width;
    return (src, dst) => {
      for (let ch = 0; ch < channels; ch++) blur.apply(src, ch * size, dst, ch * size);
    };
  };
}

export interface GlassBlurParams {
  /** The Gaussian's sigma, before and after the shuffling. */
  sigma: number;
  /** Offsets are drawn from [-maxDelta, maxDelta - 1] (numpy's randint excludes its upper bound). */
  maxDelta: number;
  iterations: number;
  /**
   * The axes the Gaussian blurs. MNIST-C calls scikit-image's gaussian with multichannel=True on
   * a 28 x 28 array, which takes the last axis for channels: only the vertical axis is blurred.
   */
  axes: 'both' | 'vertical';
  /**
   * What a move does. 'swap' exchanges the two pixels (MNIST-C: scalar elements). 'copy' writes
   * the neighbour over the pixel and leaves the neighbour: CIFAR-10-C's tuple swap of numpy views
   * x[h, w], x[h', w'] = x[h', w'], x[h, w] on an H x W x 3 array does exactly that.
   */
  move: 'swap' | 'copy';
  /** MNIST-C moves each pixel only with probability 1/2 (np.random.choice([True, False])); CIFAR-10-C always. */
  halfOfPixels: boolean;
}

/**
 * glass_blur: Gaussian blur; then, `iterations` times, for rows h and columns w from
 * size - maxDelta down to maxDelta + 1, move the pixel to/from (h + dy, w + dx); then the blur
 * again, clipped.
 */
export function glassBlur(p: GlassBlurParams): KernelFactory {
  return ({ channels, height, width }) => {
    const blur = SeparableFilter.gaussian(height, width, p.sigma, p.axes === 'both' ? p.sigma : 0, 'nearest');
    const size = height * width;
    const work = new Float64Array(channels * size);
    const span = 2 * p.maxDelta;
    return (src, dst, rng) => {
      for (let ch = 0; ch < channels; ch++) blur.apply(src, ch * size, work, ch * size);
      for (let it = 0; it < p.iterations; it++) {
        for (let h = height - p.maxDelta; h > p.maxDelta; h--) {
          for (let w = width - p.maxDelta; w > p.maxDelta; w--) {
            if (p.halfOfPixels && rng.nextUint32() < 2147483648) continue;
            const dx = rng.integerBelow(span) - p.maxDelta;
            const dy = rng.integerBelow(span) - p.maxDelta;
            const a = h * width + w;
            const b = (h + dy) * width + (w + dx);
            for (let ch = 0; ch < channels; ch++) {
              const t = work[ch * size + a]!;
              work[ch * size + a] = work[ch * size + b]!;
              if (p.move === 'swap') work[ch * size + b] = t;
            }
          }
        }
      }
      for (let ch = 0; ch < channels; ch++) blur.apply(work, ch * size, dst, ch * size);
    };
  };
}

/**
 * The defocus kernel of disk() in make_cifar_c.py: the 17 x 17 indicator of x^2 + y^2 <= r^2,
 * normalised, then OpenCV's 3 x 3 GaussianBlur with sigma `aliasBlur` (weights
 * exp(-x^2 / (2 sigma^2)), normalised). Returns the kernel's nonzero core as a (2k+1)^2 array.
 */
export function diskKernel(radius: number, aliasBlur: number): { kernel: Float64Array; half: number } {
  const L = 8; // np.arange(-8, 8 + 1) for radius <= 8
  const side = 2 * L + 1;
  const disk = new Float64Array(side * side);
  let total = 0;
  for (let y = -L; y <= L; y++) {
    for (let x = -L; x <= L; x++) {
      if (x * x + y * y <= radius * radius) {
        disk[(y + L) * side + x + L] = 1;
        total++;
      }
    }
  }
  for (let i = 0; i < disk.length; i++) disk[i]! /= total;
  const edge = Math.exp(-1 / (2 * aliasBlur * aliasBlur));
  const gs = edge + 1 + edge;
  const g = [edge / gs, 1 / gs, edge / gs];
  const smoothed = new SeparableFilter(side, side, g, g, 'mirror');
  const full = new Float64Array(side * side);
  smoothed.apply(disk, 0, full, 0);
  const half = Math.floor(radius) + 1; // the disk's extent plus the 3 x 3 blur
  const k = 2 * half + 1;
  const kernel = new Float64Array(k * k);
  for (let y = 0; y < k; y++) for (let x = 0; x < k; x++) kernel[y * k + x] = full[(y - half + L) * side + x - half + L]!;
  return { kernel, half };
}

/** defocus_blur: cv2.filter2D of each channel with diskKernel(radius, aliasBlur), border BORDER_REFLECT_101. */
export function defocusBlur(radius: number, aliasBlur: number): KernelFactory {
  const { kernel, half } = diskKernel(radius, aliasBlur);
  const k = 2 * half + 1;
  return ({ channels, height, width }) => {
    // Row and column indices under the mirror border, for every output position and tap.
    const rows = new Int32Array(height * k);
    const cols = new Int32Array(width * k);
    for (let y = 0; y < height; y++) for (let t = 0; t < k; t++) rows[y * k + t] = borderIndex(y + t - half, height, 'mirror') * width;
    for (let x = 0; x < width; x++) for (let t = 0; t < k; t++) cols[x * k + t] = borderIndex(x + t - half, width, 'mirror');
    const size = height * width;
    return (src, dst) => {
      for (let ch = 0; ch < channels; ch++) {
        const o = ch * size;
        for (let y = 0; y < height; y++) {
          for (let x = 0; x < width; x++) {
            let acc = 0;
            for (let ty = 0; ty < k; ty++) {
              const row = o + rows[y * k + ty]!;
              for (let tx = 0; tx < k; tx++) acc += kernel[ty * k + tx]! * src[row + cols[x * k + tx]!]!;
            }
            dst[o + y * width + x] = acc;
          }
        }
      }
    };
  };
}

/**
 * zoom_blur: (x + sum over factors z of clipped_zoom(x, z)) / (number of factors + 1).
 * clipped_zoom crops the centred ceil(n / z) square (top (n - ch) // 2), zooms it with
 * scipy.ndimage.zoom(order=1) to round(ch z) (Python's round: half to even) and keeps the
 * centred n x n (trim (size - n) // 2). Square images only, as in the published code.
 */
export function zoomBlur(factors: readonly number[]): KernelFactory {
  return ({ channels, height, width }) => {
    if (height !== width) throw new RangeError(`Expected square images for zoom_blur but received ${height} x ${width}`);
    const n = height;
    const tables = factors.map((z) => {
      const ch = Math.ceil(n / z);
      const top = Math.floor((n - ch) / 2);
      const out = roundHalfEven(ch * z);
      const trim = Math.floor((out - n) / 2);
      return zoomTable(ch, out, trim, n, top);
    });
    const size = n * n;
    const acc = new Float64Array(size);
    return (src, dst) => {
      for (let c = 0; c < channels; c++) {
        const o = c * size;
        for (let i = 0; i < size; i++) acc[i] = src[o + i]!;
        for (const { lower, frac } of tables) {
          for (let y = 0; y < n; y++) {
            const r0 = lower[y]!;
            const fy = frac[y]!;
            const top = o + r0 * n;
            const bottom = top + n;
            for (let x = 0; x < n; x++) {
              const c0 = lower[x]!;
              const fx = frac[x]!;
              acc[y * n + x]! +=
                (1 - fy) * ((1 - fx) * src[top + c0]! + fx * src[top + c0 + 1]!) + fy * ((1 - fx) * src[bottom + c0]! + fx * src[bottom + c0 + 1]!);
            }
          }
        }
        const norm = 1 / (factors.length + 1);
        for (let i = 0; i < size; i++) dst[o + i] = acc[i]! * norm;
      }
    };
  };
}

/**
 * ImageMagick's MotionBlurImage(radius, sigma, angle), which the published code calls through
 * Wand: 2 ceil(radius) + 1 taps, weights exp(-i^2 / (2 sigma^2)) for i = 0, 1, .. normalised
 * to sum 1, tap i at the offset (ceil(i cos(angle) - 0.5), ceil(i sin(angle) - 0.5)) (x right,
 * y down): a one-sided line. Pixels beyond the edge repeat the edge (ImageMagick's default
 * virtual pixels). The angle is drawn uniformly from [minAngle, maxAngle) degrees per image.
 */
export function motionBlur(radius: number, sigma: number, minAngle: number, maxAngle: number): KernelFactory {
  const taps = 2 * Math.ceil(radius) + 1;
  const weights = new Float64Array(taps);
  let total = 0;
  for (let i = 0; i < taps; i++) total += weights[i] = Math.exp((-i * i) / (2 * sigma * sigma));
  for (let i = 0; i < taps; i++) weights[i]! /= total;
  return ({ channels, height, width }): ImageKernel => {
    const dx = new Int32Array(taps);
    const dy = new Int32Array(taps);
    const size = height * width;
    return (src, dst, rng) => {
      const angle = (rng.uniform(minAngle, maxAngle) * Math.PI) / 180;
      const cos = Math.cos(angle);
      const sin = Math.sin(angle);
      for (let i = 0; i < taps; i++) {
        dx[i] = Math.ceil(i * cos - 0.5);
        dy[i] = Math.ceil(i * sin - 0.5);
      }
      for (let c = 0; c < channels; c++) {
        const o = c * size;
        for (let y = 0; y < height; y++) {
          for (let x = 0; x < width; x++) {
            let acc = 0;
            for (let i = 0; i < taps; i++) {
              let yy = y + dy[i]!;
              let xx = x + dx[i]!;
              yy = yy < 0 ? 0 : yy >= height ? height - 1 : yy;
              xx = xx < 0 ? 0 : xx >= width ? width - 1 : xx;
              acc += weights[i]! * src[o + yy * width + xx]!;
            }
            dst[o + y * width + x] = acc;
          }
        }
      }
    };
  };
}
