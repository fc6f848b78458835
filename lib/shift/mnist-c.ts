/**
 * MNIST-C (Mu & Gilmer, "MNIST-C: A Robustness Benchmark for Computer Vision", ICML 2019
 * workshop, arXiv:1906.02337), regenerated: the 15 corruptions of CORRUPTIONS in
 * google-research/mnist-c corruptions.py, each at the one severity its function defaults to
 * (the released dataset's), with that code's parameters. The code takes 0-255 images and
 * divides by 255; these kernels take [0, 1].
 */
import { glassBlur, motionBlur } from './blur';
import { cannyEdges } from './canny';
import { rotate, scale, shear, translate } from './geometric';
import type { CorruptionDefinition, KernelFactory, SuiteDefinition } from './kernel';
import { impulseNoise, shotNoise } from './noise';
import { dottedLine, spatter, stripe, zigzag } from './overlays';
import { brightness, fog } from './photometric';

const CODE = 'google-research/mnist-c corruptions.py';

function one(name: string, random: boolean, source: string, level: KernelFactory): CorruptionDefinition {
  return { name, random, source: `${CODE}, ${name}: ${source}`, levels: [level] };
}

export const MNIST_C: SuiteDefinition = {
  dims: { channels: 1, height: 28, width: 28 },
  reference: `Mu & Gilmer 2019, MNIST-C (arXiv:1906.02337); ${CODE}`,
  corruptions: [
    one('shot_noise', true, 'severity 5 (c = 3): Poisson(x * 3) / 3', shotNoise(3)),
    one('impulse_noise', true, "severity 4 (c = 0.17): scikit-image random_noise mode 's&p', amount 0.17", impulseNoise(0.17)),
    one(
      'glass_blur',
      true,
      'severity 1 (c = (0.7, 1, 2)): gaussian sigma 0.7 (multichannel=True on 28 x 28: vertical only), 2 passes swapping ' +
        'each pixel of rows and columns 27..2 with probability 1/2 with (h + U{-1, 0}, w + U{-1, 0}), gaussian again',
      glassBlur({ sigma: 0.7, maxDelta: 1, iterations: 2, axes: 'vertical', move: 'swap', halfOfPixels: true }),
    ),
    one(
      'motion_blur',
      true,
      'severity 1 (c = (10, 3)): ImageMagick MotionBlurImage radius 10, sigma 3, angle U(-45, 45) degrees (own kernel, see blur.ts)',
      motionBlur(10, 3, -45, 45),
    ),
    one('shear', true, 'severity 2 (c = 0.4): AffineTransform(shear=+-0.4) about (13.5, 13.5), random sign', shear(0.4)),
    one('scale', false, 'severity 3 (c = 1 / 0.7): inverse map AffineTransform(scale=1/0.7) about (13.5, 13.5)', scale(1 / 0.7)),
    one('rotate', true, 'severity 2 (c = 0.4): AffineTransform(rotation=+-0.4 rad) about (13.5, 13.5), random sign', rotate(0.4)),
    one('brightness', false, 'severity 5 (c = 0.5): HSV value + 0.5, clipped (for grey images clip(x + 0.5))', brightness(0.5)),
    one('translate', true, 'severity 3 (c = 3): inverse map translation (+-3, +-3), random signs', translate(3)),
    one('stripe', false, 'x[:, :7] and x[:, 21:] inverted (1 - x)', stripe()),
    one('fog', true, 'severity 5 (c = (3.0, 1.4)): x + 3.0 plasma_fractal(mapsize 256, wibbledecay 1.4)[:28, :28], times max / (max + 3.0)', fog(3, 1.4, 256)),
    one(
      'spatter',
      true,
      'severity 4 (c = (0.65, 0.3, 1, 0.65, 1.5, 1)): mud, layer N(0.65, 0.3) blurred sigma 1, > 0.65, blurred sigma 1.5, < 0.8 zeroed, colour 63/255',
      spatter(),
    ),
    one('dotted_line', true, 'line_from_points(0, r0, 27, r1), r0, r1 = randint(0, 27), every other 2-column block blanked', dottedLine()),
    one('zigzag', true, 'a = b = 2, columns 2 to 25, r0 = randint(0, 27), r1 = r0 + randint(-5, 5)', zigzag()),
    one('canny_edges', false, 'skimage feature.canny defaults: sigma 1, thresholds 0.1 and 0.2 (own implementation, see canny.ts)', cannyEdges()),
  ],
};
