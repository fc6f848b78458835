/**
 * Photometric corruptions: brightness and saturation in HSV (scikit-image's rgb2hsv and
 * hsv2rgb), contrast, pixelation (PIL's BOX resize down and up) and fog (a plasma fractal).
 */
import type { ImageKernel, KernelFactory } from './kernel';
import { PlasmaFractal } from './plasma';
import { BoxResize } from './resample';

/** An edit of one HSV pixel's saturation and value (each in [0, 1]). */
interface HsvEdit {
  saturation(s: number): number;
  value(v: number): number;
}

/**
 * Converts each RGB pixel to HSV, applies `edit`, and converts back, with scikit-image's
 * rgb2hsv and hsv2rgb (the hue's sextant from the largest channel, blue over green over red
 * on ties). The hue never changes, so it stays the sextant and fraction rgb2hsv found.
 */
function hsvKernel(edit: HsvEdit): KernelFactory {
  return ({ channels, height, width }): ImageKernel => {
    if (channels !== 3) throw new RangeError(`Expected 3 channels (RGB) for an HSV corruption but received ${channels}`);
    const size = height * width;
    return (src, dst) => {
      for (let i = 0; i < size; i++) {
        const r = src[i]!;
        const g = src[size + i]!;
        const b = src[2 * size + i]!;
        const max = Math.max(r, g, b);
        const delta = max - Math.min(r, g, b);
        let hue6 = 0; // hue * 6, in [0, 6)
        if (delta > 0) {
          if (b === max) hue6 = 4 + (r - g) / delta;
          else if (g === max) hue6 = 2 + (b - r) / delta;
          else hue6 = (g - b) / delta;
          hue6 = 6 * ((((hue6 / 6) % 1) + 1) % 1);
        }
        const s = edit.saturation(delta > 0 ? delta / max : 0);
        const v = edit.value(max);
        const sextant = Math.floor(hue6);
        const f = hue6 - sextant;
        const p = v * (1 - s);
        const q = v * (1 - f * s);
        const t = v * (1 - (1 - f) * s);
        let rr = v;
        let gg = t;
        let bb = p;
        if (sextant === 1) [rr, gg, bb] = [q, v, p];
        else if (sextant === 2) [rr, gg, bb] = [p, v, t];
        else if (sextant === 3) [rr, gg, bb] = [p, q, v];
        else if (sextant === 4) [rr, gg, bb] = [t, p, v];
        else if (sextant === 5) [rr, gg, bb] = [v, p, q];
        dst[i] = rr;
        dst[size + i] = gg;
        dst[2 * size + i] = bb;
      }
    };
  };
}

const clip01 = (x: number) => Math.min(1, Math.max(0, x));
const same = (x: number) => x;

/**
 * brightness: V = clip(V + amount, 0, 1) in HSV. A grey image (MNIST-C goes through
 * gray2rgb, HSV and rgb2gray, whose weights sum to 1) becomes exactly clip(x + amount, 0, 1).
 */
export function brightness(amount: number): KernelFactory {
  const colour = hsvKernel({ saturation: same, value: (v) => clip01(v + amount) });
  return (dims) => {
    if (dims.channels !== 1) return colour(dims);
    return (src, dst) => {
      for (let i = 0; i < src.length; i++) dst[i] = src[i]! + amount;
    };
  };
}

/** saturate: S = clip(S * factor + shift, 0, 1) in HSV (colour images only). */
export function saturate(factor: number, shift: number): KernelFactory {
  return hsvKernel({ saturation: (s) => clip01(s * factor + shift), value: same });
}

/** contrast: (x - mean) * factor + mean, each channel about its own mean (np.mean over axes 0 and 1 of H x W x C). */
export function contrast(factor: number): KernelFactory {
  return ({ channels, height, width }) => {
    const size = height * width;
    return (src, dst) => {
      for (let c = 0; c < channels; c++) {
        const o = c * size;
        let sum = 0;
        for (let i = 0; i < size; i++) sum += src[o + i]!;
        const mean = sum / size;
        for (let i = 0; i < size; i++) dst[o + i] = (src[o + i]! - mean) * factor + mean;
      }
    };
  };
}

/**
 * pixelate: PIL's resize to int(side * factor) with the BOX filter, then back to the full size
 * with BOX (which, enlarging, copies each small pixel onto the block of outputs whose centres
 * fall in it). Each axis separately, as PIL resamples.
 */
export function pixelate(factor: number): KernelFactory {
  return ({ channels, height, width }): ImageKernel => {
    const sh = Math.trunc(height * factor);
    const sw = Math.trunc(width * factor);
    const downX = new BoxResize(width, sw);
    const downY = new BoxResize(height, sh);
    const upX = new BoxResize(sw, width);
    const upY = new BoxResize(sh, height);
    const a = new Float64Array(height * sw);
    const b = new Float64Array(sh * sw);
    const c = new Float64Array(sh * width);
    const size = height * width;
    return (src, dst) => {
      for (let ch = 0; ch < channels; ch++) {
        const o = ch * size;
        downX.run(src, o, width, 1, a, 0, sw, 1, height); // rows: width -> sw
        downY.run(a, 0, 1, sw, b, 0, 1, sw, sw); // columns: height -> sh
        upX.run(b, 0, sw, 1, c, 0, width, 1, sh); // rows: sw -> width
        upY.run(c, 0, 1, width, dst, o, 1, width, width); // columns: sh -> height
      }
    };
  };
}

/**
 * fog: x + strength * plasma_fractal(mapSize, decay)[:H, :W] (the same fog on every channel),
 * then * max(x) / (max(x) + strength), max over the whole clean image.
 */
export function fog(strength: number, decay: number, mapSize: number): KernelFactory {
  return ({ channels, height, width }): ImageKernel => {
    if (height > mapSize || width > mapSize) throw new RangeError(`Expected images at most ${mapSize} x ${mapSize} for fog but received ${height} x ${width}`);
    const plasma = new PlasmaFractal(mapSize);
    const size = height * width;
    const layer = new Float64Array(size);
    return (src, dst, rng) => {
      let max = -Infinity;
      for (let i = 0; i < src.length; i++) if (src[i]! > max) max = src[i]!;
      plasma.generate(rng, decay, height, width, layer);
      const gain = max / (max + strength);
      for (let c = 0; c < channels; c++) {
        for (let i = 0; i < size; i++) dst[c * size + i] = (src[c * size + i]! + strength * layer[i]!) * gain;
      }
    };
  };
}
