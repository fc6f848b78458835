// The corruptions against the published code itself. test/fixtures/shift-reference.json holds the
// outputs of google-research/mnist-c corruptions.py and hendrycks/robustness make_cifar_c.py, run
// once on Debian 12's python3-skimage 0.19.3, scipy 1.10.1, Pillow 9.4.0, OpenCV 4.6.0 and
// ImageMagick 6.9.11 (its "about" field says how), rounded to 8 bits: on the MNIST test digits and
// on colourImages(1), with random signs and angles fixed. Ours must agree to that rounding (half
// a level), or to one level where the reference itself went through 8 bits (PIL, ImageMagick).
import { describe, expect, it } from 'vitest';
import { sdebnn } from './helpers';
import { colourImages, mnistDigits } from './shift-images';

const { corrupt, Random } = sdebnn;
const blur = require('../dist/shift/blur.js') as typeof import('../dist/shift/blur');
const reference = require('./fixtures/shift-reference.json') as {
  mnist: Record<string, string | string[] | number[][]>;
  cifar: Record<string, string[] | string>;
};

const decode = (b64: string) => Uint8Array.from(Buffer.from(b64, 'base64'));

/** The largest |ours * 255 - reference| over the reference's values (ours may hold more channels after them). */
function maxLevelError(ours: ArrayLike<number>, ref: Uint8Array): number {
  let worst = 0;
  for (let i = 0; i < ref.length; i++) worst = Math.max(worst, Math.abs(ours[i]! * 255 - ref[i]!));
  return worst;
}

const HALF = 0.5 + 1e-3; // rounding to 8 bits, plus float32
const ONE = 1 + 1e-3; // the reference went through 8-bit images

const digits = mnistDigits(12);
const digit = (k: number) => digits.images.slice(k * 784, (k + 1) * 784);
const one = (name: string, k: number, seed = 0) => corrupt('mnist-c', name, digit(k), [1, 1, 28, 28], { seed });

describe('corruptions against the published code', () => {
  it('MNIST-C canny_edges: the same edge pixels as scikit-image feature.canny on 12 digits', () => {
    (reference.mnist.canny as number[][]).forEach((edges, k) => {
      const out = one('canny_edges', k);
      const ours = Array.from(out.keys()).filter((i) => out[i] === 1);
      expect(out.every((v) => v === 0 || v === 1)).toBe(true);
      expect(ours, `digit ${k}`).toEqual(edges);
    });
  });

  it('MNIST-C scale, rotate, shear, translate and brightness: scikit-image warp to 8-bit rounding', () => {
    (reference.mnist.scale as string[]).forEach((ref, k) => expect(maxLevelError(one('scale', k), decode(ref))).toBeLessThan(HALF));
    expect(maxLevelError(one('brightness', 1), decode(reference.mnist.brightness as string))).toBeLessThan(HALF);
    // Random signs: the output is the reference for one of them, and seeds reach every one.
    for (const [name, variants] of [
      ['rotate', ['rotate+', 'rotate-']],
      ['shear', ['shear+', 'shear-']],
      ['translate', ['translate+1+1', 'translate+1-1', 'translate-1+1', 'translate-1-1']],
    ] as const) {
      const hits = new Set<string>();
      for (let seed = 0; seed < 24; seed++) {
        const out = one(name, 0, seed);
        const match = variants.filter((v) => maxLevelError(out, decode(reference.mnist[v] as string)) < HALF);
        expect(match.length, `${name} seed ${seed}`).toBe(1);
        hits.add(match[0]!);
      }
      expect(hits.size).toBe(variants.length);
    }
  });

  it("MNIST-C motion_blur matches ImageMagick's MotionBlurImage (radius 10, sigma 3) at fixed angles to one level", () => {
    for (const angle of [30, -20]) {
      const kernel = blur.motionBlur(10, 3, angle, angle)({ channels: 1, height: 28, width: 28 });
      const out = new Float32Array(784);
      if ('batch' in kernel) throw new Error('motion blur is per image');
      kernel(digit(0), out, new Random(0));
      expect(maxLevelError(out, decode(reference.mnist[`motion${angle > 0 ? '+' : ''}${angle}`] as string)), `angle ${angle}`).toBeLessThan(ONE);
    }
  });

  it("MNIST-C glass_blur's Gaussian is scikit-image's gaussian(sigma 0.7, multichannel=True) on 28 x 28: vertical only", () => {
    const kernel = blur.glassBlur({ sigma: 0.7, maxDelta: 1, iterations: 0, axes: 'vertical', move: 'swap', halfOfPixels: true })({
      channels: 1,
      height: 28,
      width: 28,
    });
    const out = new Float32Array(784);
    if ('batch' in kernel) throw new Error('glass blur is per image');
    kernel(digit(0), out, new Random(0)); // no passes: the blur twice
    expect(maxLevelError(out, decode(reference.mnist.glassblur2x as string))).toBeLessThan(HALF);
  });

  it('CIFAR-10-C Gaussian, defocus and zoom blur, saturate, brightness and contrast: to 8-bit rounding at every severity given', () => {
    const { images, shape } = colourImages(1);
    for (const name of ['gaussian_blur', 'defocus_blur', 'zoom_blur', 'saturate', 'brightness', 'contrast']) {
      const refs = reference.cifar[name] as string[];
      const severities = refs.length === 5 ? [1, 2, 3, 4, 5] : refs.length === 2 ? [1, 5] : [5];
      refs.forEach((ref, i) => {
        const out = corrupt('cifar10-c', name, images, shape, { severity: severities[i] });
        expect(maxLevelError(out, decode(ref)), `${name} severity ${severities[i]}`).toBeLessThan(HALF);
      });
    }
  });

  it("CIFAR-10-C pixelate matches PIL's BOX resizes and motion blur ImageMagick's, to one level", () => {
    const { images, shape } = colourImages(1);
    const quantised = images.map((v) => Math.round(v * 255) / 255); // PIL takes 8-bit images
    (reference.cifar.pixelate as string[]).forEach((ref, i) => {
      expect(maxLevelError(corrupt('cifar10-c', 'pixelate', quantised, shape, { severity: i + 1 }), decode(ref)), `severity ${i + 1}`).toBeLessThan(ONE);
    });
    const kernel = blur.motionBlur(9, 2.5, 10, 10)({ channels: 3, height: 32, width: 32 }); // severity 5 at 10 degrees
    const out = new Float32Array(3072);
    if ('batch' in kernel) throw new Error('motion blur is per image');
    kernel(quantised, out, new Random(0));
    expect(maxLevelError(out, decode(reference.cifar['motion_blur5+10'] as string))).toBeLessThan(ONE);
  });
});
