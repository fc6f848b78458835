/**
 * Distribution shift the package generates itself: MNIST-C and CIFAR-10-C style corruptions,
 * regenerated from the published code's parameters (see mnist-c.ts and cifar10-c.ts). Results
 * are comparable between models evaluated with this package, not with numbers published on
 * the released MNIST-C or CIFAR-10-C files: the random draws differ, outputs are not rounded
 * to 8 bits, and a few operations are emulated (ImageMagick's motion blur, JPEG through
 * jpeg-js).
 *
 * Determinism: image i of a call draws only from the stream of (suite, corruption, severity,
 * seed, offset + i) (streams.ts), so a chunk corrupted with its dataset offset equals the same
 * images cut from one call on the whole set.
 */
import { Random } from '../random';
import { describe, expectInteger, expectKnownKeys, expectObject, expectOneOf, optional } from '../validate';
import { CIFAR10_C } from './cifar10-c';
import type { CorruptionDefinition, SuiteDefinition } from './kernel';
import { MNIST_C } from './mnist-c';
import { imageRandom, streamKey } from './streams';

export type ShiftSuite = 'mnist-c' | 'cifar10-c';

export const SHIFT_SUITES: readonly ShiftSuite[] = ['mnist-c', 'cifar10-c'];

/** N x C x H x W. */
export type ImageShape = readonly [number, number, number, number];

export interface Corruption {
  /** The published name, e.g. 'shot_noise'. */
  readonly name: string;
  readonly suite: ShiftSuite;
  /** 1 for MNIST-C, 5 for CIFAR-10-C. */
  readonly severities: number;
  /** The published source of its parameters, and the parameters. */
  readonly source: string;
  /** Whether it is random; a deterministic corruption gives the same output for every seed. */
  readonly random: boolean;
  /** C x H x W of the images it takes: [1, 28, 28] for MNIST-C, [3, 32, 32] for CIFAR-10-C. */
  readonly imageShape: readonly [number, number, number];
  /**
   * images: [N, C, H, W] row-major pixel intensities in [0, 1]; returns a new array in [0, 1]
   * of the same shape. Deterministic for (severity, seed); `offset` (default 0) is the dataset
   * index of images[0], so that chunks corrupted with their offsets equal one call on the whole.
   */
  apply(images: Float32Array, shape: ImageShape, severity: number, seed: number, offset?: number): Float32Array;
}

export interface CorruptOptions {
  /** 1 .. severities (default 1). */
  severity?: number;
  /** A non-negative safe integer (default 0). */
  seed?: number;
  /** The dataset index of images[0] (default 0): see Corruption.apply. */
  offset?: number;
}

const SUITES: Record<ShiftSuite, SuiteDefinition> = { 'mnist-c': MNIST_C, 'cifar10-c': CIFAR10_C };

function formatShape(shape: readonly unknown[]): string {
  return `[${shape.map((v) => (typeof v === 'number' ? v : describe(v))).join(', ')}]`;
}

class SuiteCorruption implements Corruption {
  readonly name: string;
  readonly severities: number;
  readonly source: string;
  readonly random: boolean;
  readonly imageShape: readonly [number, number, number];

  constructor(
    readonly suite: ShiftSuite,
    private readonly definition: CorruptionDefinition,
  ) {
    const { channels, height, width } = SUITES[suite].dims;
    this.name = definition.name;
    this.severities = definition.levels.length;
    this.source = definition.source;
    this.random = definition.random;
    this.imageShape = Object.freeze([channels, height, width] as [number, number, number]);
  }

  apply(images: Float32Array, shape: ImageShape, severity: number, seed: number, offset = 0): Float32Array {
    const [n, channels, height, width] = this.checkImages(images, shape);
    expectInteger(severity, 'severity', 1, this.severities);
    expectInteger(seed, 'seed', 0, Number.MAX_SAFE_INTEGER);
    expectInteger(offset, 'offset', 0, Number.MAX_SAFE_INTEGER);
    const size = channels * height * width;
    const out = new Float32Array(n * size);
    const kernel = this.definition.levels[severity - 1]!({ channels, height, width });
    const key = streamKey(this.suite, this.name, severity, seed);
    if ('batch' in kernel) {
      kernel.batch(images, out, n);
    } else {
      const unused = new Random(key); // deterministic kernels never draw
      for (let i = 0; i < n; i++) {
        const rng = this.random ? imageRandom(key, offset + i) : unused;
        kernel(images.subarray(i * size, (i + 1) * size), out.subarray(i * size, (i + 1) * size), rng);
      }
    }
    for (let i = 0; i < out.length; i++) {
      const v = out[i]!;
      out[i] = v > 1 ? 1 : v >= 0 ? v : 0; // NaN would become 0; no kernel makes one
    }
    return out;
  }

  /** Checks images, shape and their agreement with the suite's image size; returns the shape. */
  private checkImages(images: unknown, shape: unknown): [number, number, number, number] {
    if (!(images instanceof Float32Array)) throw new TypeError(`Expected a Float32Array for images but received ${describe(images)}`);
    if (!Array.isArray(shape) || shape.length !== 4) {
      throw new TypeError(`Expected an array [N, C, H, W] for shape but received ${describe(shape)}`);
    }
    const n = expectInteger(shape[0], 'shape[0]', 0, Number.MAX_SAFE_INTEGER);
    const dims = shape.slice(1).map((v, i) => expectInteger(v, `shape[${i + 1}]`, 1)) as [number, number, number];
    const [c, h, w] = this.imageShape;
    if (dims[0] !== c || dims[1] !== h || dims[2] !== w) {
      throw new RangeError(`Expected shape [N, ${c}, ${h}, ${w}] (${this.suite} images) for shape but received ${formatShape(shape)}`);
    }
    if (images.length !== n * c * h * w) {
      throw new RangeError(`Expected ${n * c * h * w} values (shape ${formatShape(shape)}) for images but received ${describe(images)}`);
    }
    for (let i = 0; i < images.length; i++) {
      const v = images[i]!;
      if (!(v >= 0 && v <= 1)) {
        throw new RangeError(`Expected pixel intensities in [0, 1] for images but received ${v} at index ${i} (scale 0-255 images by 1/255; do not normalise)`);
      }
    }
    return [n, ...dims];
  }
}

const CORRUPTIONS: Record<ShiftSuite, readonly Corruption[]> = {
  'mnist-c': Object.freeze(MNIST_C.corruptions.map((d) => new SuiteCorruption('mnist-c', d))),
  'cifar10-c': Object.freeze(CIFAR10_C.corruptions.map((d) => new SuiteCorruption('cifar10-c', d))),
};

/** The corruptions of a suite, in the published code's order. */
export function corruptions(suite: ShiftSuite): readonly Corruption[] {
  return CORRUPTIONS[expectOneOf(suite, 'suite', SHIFT_SUITES)];
}

/**
 * Corrupts images [N, C, H, W] (in [0, 1]) with the named corruption of a suite; returns a new
 * array in [0, 1]. Arguments are checked before any work, and a bad one is named.
 */
export function corrupt(suite: ShiftSuite, name: string, images: Float32Array, shape: ImageShape, options?: CorruptOptions): Float32Array {
  const list = corruptions(suite);
  const names = list.map((c) => c.name);
  const corruption = list[names.indexOf(expectOneOf(name, 'name', names))]!;
  const opts = options === undefined ? {} : expectObject(options, 'options');
  expectKnownKeys(opts, 'options', ['severity', 'seed', 'offset']);
  const severity = optional(opts.severity, 1, (v) => expectInteger(v, 'options.severity', 1, corruption.severities));
  const seed = optional(opts.seed, 0, (v) => expectInteger(v, 'options.seed', 0, Number.MAX_SAFE_INTEGER));
  const offset = optional(opts.offset, 0, (v) => expectInteger(v, 'options.offset', 0, Number.MAX_SAFE_INTEGER));
  return corruption.apply(images, shape, severity, seed, offset);
}
