/**
 * CIFAR-10-C (Hendrycks & Dietterich, "Benchmarking Neural Network Robustness to Common
 * Corruptions and Perturbations", ICLR 2019), regenerated with the parameters of
 * hendrycks/robustness ImageNet-C/create_c/make_cifar_c.py, five severities each. Not here:
 * snow and spatter (they need OpenCV's Canny, distance transform and histogram equalisation,
 * or ImageMagick's motion blur of a layer) and frost (it blends photographs shipped with the
 * code).
 */
import { defocusBlur, gaussianBlur, glassBlur, motionBlur, zoomBlur } from './blur';
import { elasticTransform } from './geometric';
import { jpegCompression } from './jpeg';
import type { CorruptionDefinition, KernelFactory, SuiteDefinition } from './kernel';
import { gaussianNoise, impulseNoise, shotNoise, speckleNoise } from './noise';
import { brightness, contrast, fog, pixelate, saturate } from './photometric';

const CODE = 'hendrycks/robustness ImageNet-C/create_c/make_cifar_c.py';

function five<P>(name: string, random: boolean, source: string, params: readonly P[], make: (p: P) => KernelFactory): CorruptionDefinition {
  return { name, random, source: `${CODE}, ${name}: ${source}`, levels: params.map(make) };
}

/** 32 x 32 images: the elastic transform's parameters are fractions of IMSIZE = 32. */
const IMSIZE = 32;

/**
 * zoom_blur's factors, np.arange(1, stop, 0.01) as numpy computes it: length
 * ceil((stop - 1) / 0.01) in floating point (7, 12, 16, 21 and 26 factors: up to 1.06, 1.11,
 * 1.15, 1.20, 1.25), values 1 + i delta with delta = (1 + 0.01) - 1 = 0.010000000000000009.
 * The last digit matters: 26 x 1.2500000000000002 rounds to a 33-pixel zoom, 26 x 1.25 to 32.
 */
function zoomFactors(stop: number): number[] {
  const delta = 1 + 0.01 - 1;
  return Array.from({ length: Math.ceil((stop - 1) / 0.01) }, (_, i) => 1 + i * delta);
}

export const CIFAR10_C: SuiteDefinition = {
  dims: { channels: 3, height: 32, width: 32 },
  reference: `Hendrycks & Dietterich 2019, CIFAR-10-C (ICLR 2019); ${CODE}`,
  corruptions: [
    five('gaussian_noise', true, 'x + N(0, c^2), c = .04, .06, .08, .09, .10', [0.04, 0.06, 0.08, 0.09, 0.1], gaussianNoise),
    five('shot_noise', true, 'Poisson(x c) / c, c = 500, 250, 100, 75, 50', [500, 250, 100, 75, 50], shotNoise),
    five('impulse_noise', true, "scikit-image random_noise mode 's&p', amount .01, .02, .03, .05, .07", [0.01, 0.02, 0.03, 0.05, 0.07], impulseNoise),
    five('speckle_noise', true, 'x + x N(0, c^2), c = .06, .1, .12, .16, .2', [0.06, 0.1, 0.12, 0.16, 0.2], speckleNoise),
    five('gaussian_blur', false, 'gaussian(sigma = .4, .6, .7, .8, 1), multichannel', [0.4, 0.6, 0.7, 0.8, 1], gaussianBlur),
    five(
      'defocus_blur',
      false,
      'disk(radius, alias_blur) = (.3, .4), (.4, .5), (.5, .6), (1, .2), (1.5, .1), cv2.filter2D',
      [
        [0.3, 0.4],
        [0.4, 0.5],
        [0.5, 0.6],
        [1, 0.2],
        [1.5, 0.1],
      ],
      ([r, a]) => defocusBlur(r!, a!),
    ),
    five(
      'glass_blur',
      true,
      '(sigma, max_delta, iterations) = (.05, 1, 1), (.25, 1, 1), (.4, 1, 1), (.25, 1, 2), (.4, 1, 2); every pixel of rows and ' +
        'columns 31..2 takes the value at (h + U{-1, 0}, w + U{-1, 0}) (the tuple swap of numpy views copies one way)',
      [
        [0.05, 1],
        [0.25, 1],
        [0.4, 1],
        [0.25, 2],
        [0.4, 2],
      ],
      ([sigma, iterations]) => glassBlur({ sigma: sigma!, maxDelta: 1, iterations: iterations!, axes: 'both', move: 'copy', halfOfPixels: false }),
    ),
    five(
      'motion_blur',
      true,
      'ImageMagick MotionBlurImage (radius, sigma) = (6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5), angle U(-45, 45) degrees (own kernel)',
      [
        [6, 1],
        [6, 1.5],
        [6, 2],
        [8, 2],
        [9, 2.5],
      ],
      ([radius, sigma]) => motionBlur(radius!, sigma!, -45, 45),
    ),
    five(
      'zoom_blur',
      false,
      'mean of x and clipped_zoom(x, z) for z in np.arange(1, 1.06 / 1.11 / 1.16 / 1.21 / 1.26, 0.01)',
      [1.06, 1.11, 1.16, 1.21, 1.26],
      (stop) => zoomBlur(zoomFactors(stop)),
    ),
    five('contrast', false, '(x - channel mean) c + channel mean, c = .75, .5, .4, .3, .15', [0.75, 0.5, 0.4, 0.3, 0.15], contrast),
    five('brightness', false, 'HSV value + c, c = .05, .1, .15, .2, .3', [0.05, 0.1, 0.15, 0.2, 0.3], brightness),
    five(
      'saturate',
      false,
      'HSV saturation s c0 + c1, (c0, c1) = (.3, 0), (.1, 0), (1.5, 0), (2, .1), (2.5, .2)',
      [
        [0.3, 0],
        [0.1, 0],
        [1.5, 0],
        [2, 0.1],
        [2.5, 0.2],
      ],
      ([factor, shift]) => saturate(factor!, shift!),
    ),
    five('pixelate', false, 'PIL BOX resize to int(32 c) and back, c = .95, .9, .85, .75, .65', [0.95, 0.9, 0.85, 0.75, 0.65], pixelate),
    five(
      'fog',
      true,
      'x + c0 plasma_fractal(mapsize 32, wibbledecay c1), times max / (max + c0), (c0, c1) = (.2, 3), (.5, 3), (.75, 2.5), (1, 2), (1.5, 1.75)',
      [
        [0.2, 3],
        [0.5, 3],
        [0.75, 2.5],
        [1, 2],
        [1.5, 1.75],
      ],
      ([strength, decay]) => fog(strength!, decay!, 32),
    ),
    five(
      'elastic_transform',
      true,
      '(alpha, sigma, affine) = IMSIZE (0, 0, .08), (.05, .2, .07), (.08, .06, .06), (.1, .04, .05), (.1, .03, .03), IMSIZE = 32',
      [
        [0, 0, 0.08],
        [0.05, 0.2, 0.07],
        [0.08, 0.06, 0.06],
        [0.1, 0.04, 0.05],
        [0.1, 0.03, 0.03],
      ],
      ([alpha, sigma, affine]) => elasticTransform({ alpha: IMSIZE * alpha!, sigma: IMSIZE * sigma!, affine: IMSIZE * affine! }),
    ),
    five('jpeg_compression', false, 'PIL JPEG quality 80, 65, 58, 50, 40 (here jpeg-js, 4:4:4: see jpeg.ts)', [80, 65, 58, 50, 40], jpegCompression),
  ],
};
