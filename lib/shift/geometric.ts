/**
 * Geometric corruptions: MNIST-C's affine warps about the image centre (shear, rotate, scale,
 * translate) and CIFAR-10-C's elastic transform, with bilinear sampling as the published code
 * samples (scikit-image's warp; OpenCV's warpAffine and scipy's map_coordinates).
 */
import type { Random } from '../random';
import { SeparableFilter } from './filters';
import type { ImageDims, ImageKernel, KernelFactory } from './kernel';
import { bilinear, warpPlane, type InverseMap } from './resample';

/**
 * The inverse map of scikit-image's AffineTransform(scale, rotation, shear) as the 2018-era
 * library builds it ([[sx cos r, -sy sin(r + shear)], [sx sin r, sy cos(r + shear)]]), with the
 * translation that keeps the image centre ((w - 1) / 2, (h - 1) / 2) fixed, as MNIST-C computes
 * it (a3 = 13.5 (1 - a1 - a2), b3 = 13.5 (1 - b1 - b2) for 28 x 28).
 */
export function centredAffine(dims: ImageDims, scale: number, rotation: number, shear: number): InverseMap {
  const a = scale * Math.cos(rotation);
  const b = -scale * Math.sin(rotation + shear);
  const d = scale * Math.sin(rotation);
  const e = scale * Math.cos(rotation + shear);
  const cx = (dims.width - 1) / 2;
  const cy = (dims.height - 1) / 2;
  return { a, b, c: cx - a * cx - b * cy, d, e, f: cy - d * cx - e * cy };
}

/** A warp by a per-image inverse map, scikit-image's warp(x, inverse_map) with order 1, mode 'constant', cval 0. */
function affineWarp(map: (dims: ImageDims, rng: Random) => InverseMap): KernelFactory {
  return (dims): ImageKernel => {
    const { channels, height, width } = dims;
    const size = height * width;
    return (src, dst, rng) => {
      const m = map(dims, rng);
      for (let c = 0; c < channels; c++) warpPlane(src, c * size, dst, c * size, height, width, m, 'constant');
    };
  };
}

/** +1 or -1 with equal odds: np.random.choice([-1, 1]). */
function randomSign(rng: Random): number {
  return rng.nextUint32() < 2147483648 ? -1 : 1;
}

/** shear: shear angle +-amount (radians, sign random per image) about the centre. */
export function shear(amount: number): KernelFactory {
  return affineWarp((dims, rng) => centredAffine(dims, 1, 0, randomSign(rng) * amount));
}

/** rotate: the inverse map rotates by +-angle radians (sign random per image) about the centre. */
export function rotate(angle: number): KernelFactory {
  return affineWarp((dims, rng) => centredAffine(dims, 1, randomSign(rng) * angle, 0));
}

/** scale: the inverse map scales by `inverseScale` about the centre (1 / 0.7 shrinks the image to 70%). */
export function scale(inverseScale: number): KernelFactory {
  return affineWarp((dims) => centredAffine(dims, inverseScale, 0, 0));
}

/**
 * translate: the inverse map adds (+-shift, +-shift) (each sign random per image) to (x, y),
 * so the content moves by (-+shift, -+shift) pixels.
 */
export function translate(shift: number): KernelFactory {
  return affineWarp((_dims, rng) => {
    const dx = randomSign(rng) * shift;
    const dy = randomSign(rng) * shift;
    return { a: 1, b: 0, c: dx, d: 0, e: 1, f: dy };
  });
}

/**
 * The affine map that sends the points p to the points q (three (x, y) pairs each), as
 * OpenCV's getAffineTransform solves it.
 */
export function affineFromPoints(p: readonly number[], q: readonly number[]): InverseMap {
  const [x1, y1, x2, y2, x3, y3] = p as [number, number, number, number, number, number];
  const det = x1 * (y2 - y3) - y1 * (x2 - x3) + (x2 * y3 - x3 * y2);
  // Cramer's rule on [x_i y_i 1] [u v w]^T = t_i for each target coordinate.
  const solve = (t1: number, t2: number, t3: number): [number, number, number] => [
    (t1 * (y2 - y3) - y1 * (t2 - t3) + (t2 * y3 - t3 * y2)) / det,
    (x1 * (t2 - t3) - t1 * (x2 - x3) + (x2 * t3 - x3 * t2)) / det,
    (x1 * (y2 * t3 - y3 * t2) - y1 * (x2 * t3 - x3 * t2) + t1 * (x2 * y3 - x3 * y2)) / det,
  ];
  const [a, b, c] = solve(q[0]!, q[2]!, q[4]!);
  const [d, e, f] = solve(q[1]!, q[3]!, q[5]!);
  return { a, b, c, d, e, f };
}

export interface ElasticParams {
  /** c[0]: the displacement field's scale, pixels. */
  alpha: number;
  /** c[1]: the sigma smoothing the uniform noise behind the field (truncate 3, mode 'reflect'). */
  sigma: number;
  /** c[2]: the corners of the affine's reference triangle move by U(-affine, affine) each. */
  affine: number;
}

/**
 * elastic_transform of make_cifar_c.py: a random affine (the triangle (cs+s, cs+s), (cs+s, cs-s),
 * (cs-s, cs-s) with cs = n // 2 and s = n // 3, each coordinate moved by U(-affine, affine),
 * applied with cv2.warpAffine, border BORDER_REFLECT_101), then a smooth displacement field:
 * dx, dy = gaussian(U(-1, 1), sigma, mode='reflect', truncate=3) * alpha, sampled with
 * map_coordinates(order=1, mode='reflect') at (y + dy, x + dx), the same field for every channel.
 */
export function elasticTransform(p: ElasticParams): KernelFactory {
  return ({ channels, height, width }): ImageKernel => {
    const size = height * width;
    const smooth = SeparableFilter.gaussian(height, width, p.sigma, p.sigma, 'reflect', 3);
    const warped = new Float64Array(channels * size);
    const dx = new Float64Array(size);
    const dy = new Float64Array(size);
    const cy = Math.floor(height / 2);
    const cx = Math.floor(width / 2);
    const s = Math.floor(Math.min(height, width) / 3);
    const from = [cx + s, cy + s, cx + s, cy - s, cx - s, cy - s];
    return (src, dst, rng) => {
      const to = from.map((v) => v + rng.uniform(-p.affine, p.affine));
      // warpAffine samples the source at M^-1 (x, y): the map from the moved points back.
      const inverse = affineFromPoints(to, from);
      for (let c = 0; c < channels; c++) warpPlane(src, c * size, warped, c * size, height, width, inverse, 'mirror');
      if (p.alpha === 0) {
        dst.set(warped);
        return;
      }
      for (const field of [dx, dy]) {
        for (let i = 0; i < size; i++) field[i] = rng.uniform(-1, 1);
        smooth.apply(field, 0, field, 0);
        for (let i = 0; i < size; i++) field[i]! *= p.alpha;
      }
      for (let c = 0; c < channels; c++) {
        for (let y = 0; y < height; y++) {
          for (let x = 0; x < width; x++) {
            const i = y * width + x;
            dst[c * size + i] = bilinear(warped, c * size, height, width, y + dy[i]!, x + dx[i]!, 'reflect');
          }
        }
      }
    };
  };
}
