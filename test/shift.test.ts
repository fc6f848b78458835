// The corruption suites' public API: names, sources, argument checks, shapes and ranges,
// determinism per seed, chunking with offsets, and severities that grow in effect.
import { describe, expect, it } from 'vitest';
import { sdebnn } from './helpers';
import { colourImages, highFrequencyEnergy, meanAbsDiff, mnistDigits } from './shift-images';

const { corrupt, corruptions } = sdebnn;

const MNIST_C_NAMES = [
  'shot_noise',
  'impulse_noise',
  'glass_blur',
  'motion_blur',
  'shear',
  'scale',
  'rotate',
  'brightness',
  'translate',
  'stripe',
  'fog',
  'spatter',
  'dotted_line',
  'zigzag',
  'canny_edges',
];
const CIFAR10_C_NAMES = [
  'gaussian_noise',
  'shot_noise',
  'impulse_noise',
  'speckle_noise',
  'gaussian_blur',
  'defocus_blur',
  'glass_blur',
  'motion_blur',
  'zoom_blur',
  'contrast',
  'brightness',
  'saturate',
  'pixelate',
  'fog',
  'elastic_transform',
  'jpeg_compression',
];

const mnist = mnistDigits(6);
const colour = colourImages(4);
const suites = [
  { suite: 'mnist-c' as const, data: mnist },
  { suite: 'cifar10-c' as const, data: colour },
];

describe('corruption suites', () => {
  it('list the published corruptions with their sources, severities and image shapes', () => {
    const m = corruptions('mnist-c');
    expect(m.map((c) => c.name)).toEqual(MNIST_C_NAMES);
    for (const c of m) {
      expect(c.severities).toBe(1);
      expect(c.suite).toBe('mnist-c');
      expect(c.imageShape).toEqual([1, 28, 28]);
      expect(c.source).toContain('google-research/mnist-c corruptions.py');
    }
    const cifar = corruptions('cifar10-c');
    expect(cifar.map((c) => c.name)).toEqual(CIFAR10_C_NAMES);
    for (const c of cifar) {
      expect(c.severities).toBe(5);
      expect(c.imageShape).toEqual([3, 32, 32]);
      expect(c.source).toContain('hendrycks/robustness ImageNet-C/create_c/make_cifar_c.py');
    }
    expect(sdebnn.SHIFT_SUITES).toEqual(['mnist-c', 'cifar10-c']);
  });

  it('reject bad arguments by name before any work', () => {
    const { images, shape } = mnist;
    expect(() => corrupt('mnist' as never, 'shot_noise', images, shape)).toThrow(/Expected one of 'mnist-c', 'cifar10-c' for suite but received "mnist"/);
    expect(() => corrupt('mnist-c', 'gaussian_noise', images, shape)).toThrow(/for name but received "gaussian_noise"/);
    expect(() => corrupt('mnist-c', 'shot_noise', Array.from(images) as never, shape)).toThrow(/Expected a Float32Array for images but received array/);
    expect(() => corrupt('mnist-c', 'shot_noise', images, [6, 28, 28] as never)).toThrow(/Expected an array \[N, C, H, W\] for shape/);
    expect(() => corrupt('mnist-c', 'shot_noise', images, [2, 3, 28, 28])).toThrow(
      /Expected shape \[N, 1, 28, 28\] \(mnist-c images\) for shape but received \[2, 3, 28, 28\]/,
    );
    expect(() => corrupt('mnist-c', 'shot_noise', images, [5, 1, 28, 28])).toThrow(
      /Expected 3920 values .* for images but received Float32Array of length 4704/,
    );
    expect(() => corrupt('mnist-c', 'shot_noise', images, [6, 1, 28, 28.5])).toThrow(/shape\[3\]/);
    const scaled = images.map((v) => v * 255);
    expect(() => corrupt('mnist-c', 'shot_noise', scaled, shape)).toThrow(/Expected pixel intensities in \[0, 1\] for images but received \d+ at index \d+/);
    const withNaN = images.slice();
    withNaN[5] = NaN;
    expect(() => corrupt('mnist-c', 'shot_noise', withNaN, shape)).toThrow(/received NaN at index 5/);
    expect(() => corrupt('mnist-c', 'shot_noise', images, shape, { severity: 2 })).toThrow(/Expected integer in \[1, 1\] for options.severity but received 2/);
    expect(() => corrupt('cifar10-c', 'fog', colour.images, colour.shape, { severity: 6 })).toThrow(/integer in \[1, 5\] for options.severity/);
    expect(() => corrupt('cifar10-c', 'fog', colour.images, colour.shape, { severity: 1.5 })).toThrow(/options.severity/);
    expect(() => corrupt('mnist-c', 'shot_noise', images, shape, { seed: -1 })).toThrow(/for options.seed but received -1/);
    expect(() => corrupt('mnist-c', 'shot_noise', images, shape, { offset: 0.5 })).toThrow(/options.offset/);
    expect(() => corrupt('mnist-c', 'shot_noise', images, shape, { sevrity: 1 } as never)).toThrow(/Unknown option options.sevrity/);
    expect(() => corrupt('mnist-c', 'shot_noise', images, shape, 3 as never)).toThrow(/Expected an object for options/);
    const [rotate] = corruptions('mnist-c').filter((c) => c.name === 'rotate');
    expect(() => rotate!.apply(images, shape, 0, 0)).toThrow(/Expected integer in \[1, 1\] for severity but received 0/);
    expect(() => rotate!.apply(images, shape, 1, 2 ** 60)).toThrow(/for seed/);
  });

  it('return a new array of the input shape in [0, 1], leave the input alone, and change it (every corruption, every severity)', () => {
    for (const { suite, data } of suites) {
      const before = data.images.slice();
      for (const c of corruptions(suite)) {
        for (let severity = 1; severity <= c.severities; severity++) {
          const out = c.apply(data.images, data.shape, severity, 11);
          expect(out).toBeInstanceOf(Float32Array);
          expect(out.length).toBe(data.images.length);
          expect(out.every((v) => v >= 0 && v <= 1)).toBe(true);
          expect(meanAbsDiff(out, data.images), `${suite} ${c.name} ${severity}`).toBeGreaterThan(1e-4);
        }
      }
      expect(data.images).toEqual(before);
    }
    expect(corrupt('mnist-c', 'rotate', new Float32Array(0), [0, 1, 28, 28])).toEqual(new Float32Array(0));
  });

  it('are deterministic for a seed; random ones differ between seeds and between images, deterministic ones do not', () => {
    for (const { suite, data } of suites) {
      const [n, c, h, w] = data.shape;
      // Every image the same, to tell per-image streams apart.
      const same = new Float32Array(data.images.length);
      for (let k = 0; k < n; k++) same.set(data.images.subarray(0, c * h * w), k * c * h * w);
      for (const corruption of corruptions(suite)) {
        const severity = corruption.severities;
        const a = corruption.apply(same, data.shape, severity, 5);
        expect(corruption.apply(same, data.shape, severity, 5), `${corruption.name} repeats`).toEqual(a);
        const b = corruption.apply(same, data.shape, severity, 6);
        const first = a.subarray(0, c * h * w);
        const others = Array.from({ length: n - 1 }, (_, k) => a.subarray((k + 1) * c * h * w, (k + 2) * c * h * w));
        if (corruption.random) {
          expect(b, `${corruption.name} seed`).not.toEqual(a);
          // Shear and rotate have two outcomes per image, translate four: some image must differ.
          expect(
            others.some((o) => meanAbsDiff(o, first) > 0),
            `${corruption.name} per image`,
          ).toBe(true);
        } else {
          expect(b, `${corruption.name} seed`).toEqual(a);
          for (const o of others) expect(o).toEqual(first);
        }
      }
    }
  });

  it('give the same images in chunks with their offsets as in one call, and prefixes of one call for prefixes', () => {
    for (const { suite, data } of suites) {
      const [n, c, h, w] = data.shape;
      const size = c * h * w;
      for (const corruption of corruptions(suite)) {
        const severity = Math.min(3, corruption.severities);
        const whole = corrupt(suite, corruption.name, data.images, data.shape, { severity, seed: 9 });
        const head = corrupt(suite, corruption.name, data.images.subarray(0, 2 * size), [2, c, h, w], { severity, seed: 9 });
        const tail = corrupt(suite, corruption.name, data.images.subarray(2 * size), [n - 2, c, h, w], { severity, seed: 9, offset: 2 });
        expect(head, `${corruption.name} head`).toEqual(whole.subarray(0, 2 * size));
        expect(tail, `${corruption.name} tail`).toEqual(whole.subarray(2 * size));
      }
    }
  });

  it('grow in effect with severity where the published parameters grow', () => {
    // Mean absolute change from the clean images, per severity; blurs also lose high-frequency
    // energy. Not here: glass blur, saturate and elastic (their published parameters do not grow
    // together: sigma .4 then .25 with more passes; saturation first lowered then raised), and
    // pixelate (its change depends on how block edges meet image edges; tested on its blocks).
    const monotone = [
      'gaussian_noise',
      'shot_noise',
      'impulse_noise',
      'speckle_noise',
      'gaussian_blur',
      'defocus_blur',
      'motion_blur',
      'zoom_blur',
      'contrast',
      'brightness',
      'fog',
      'jpeg_compression',
    ];
    const data = colourImages(24);
    for (const name of monotone) {
      const change = [1, 2, 3, 4, 5].map((severity) => meanAbsDiff(corrupt('cifar10-c', name, data.images, data.shape, { severity, seed: 1 }), data.images));
      for (let s = 1; s < 5; s++) expect(change[s], `${name} severity ${s + 1} vs ${s}: ${change.join(', ')}`).toBeGreaterThan(change[s - 1]!);
    }
    for (const name of ['gaussian_blur', 'defocus_blur', 'zoom_blur']) {
      const energy = [1, 2, 3, 4, 5].map((severity) => highFrequencyEnergy(corrupt('cifar10-c', name, data.images, data.shape, { severity }), 32, 32));
      for (let s = 1; s < 5; s++) expect(energy[s], `${name}: ${energy.join(', ')}`).toBeLessThan(energy[s - 1]!);
      expect(energy[0]).toBeLessThan(highFrequencyEnergy(data.images, 32, 32));
    }
  });
});
