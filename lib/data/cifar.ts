/**
 * CIFAR-10 from its binary batches (https://www.cs.toronto.edu/~kriz/cifar.html, the
 * "binary version"): data_batch_1.bin ... data_batch_5.bin and test_batch.bin, each
 * 10,000 records of 1 label byte and 3,072 pixel bytes (1,024 red, 1,024 green, 1,024
 * blue, each 32x32 row-major), i.e. already in C x H x W order.
 *
 * Plus minibatch augmentation (random crop with zero padding, horizontal flip) driven by
 * a seeded Random, so an augmented run is reproducible.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ImageSet } from './dataset';
import { dataError } from './idx';
import { byteTable } from './mnist';
import { Random } from '../random';
import {
  describe,
  expectBoolean,
  expectInteger,
  expectKnownKeys,
  expectNumber,
  expectObject,
  expectOneOf,
  expectOptionalObject,
  expectString,
  optional,
} from '../validate';

/**
 * Per-channel mean and standard deviation of the CIFAR-10 training pixels scaled to [0, 1]
 * (over all 50,000 x 1,024 pixels). Note: the often-copied std (0.2023, 0.1994, 0.2010) is
 * the mean of per-image stds, not the dataset std.
 */
export const CIFAR10_MEAN: readonly number[] = [0.4914, 0.4822, 0.4465];
/** Per-channel standard deviation of CIFAR-10 training pixels scaled to [0, 1]. */
export const CIFAR10_STD: readonly number[] = [0.247, 0.2435, 0.2616];

/** CIFAR-10 class names, by label. */
export const CIFAR10_CLASSES: readonly string[] = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];

const RECORD_BYTES = 1 + 3 * 32 * 32;
const PIXELS = 3 * 32 * 32;

/** Options of loadCifar10. */
export interface Cifar10Options {
  /** The folder with the .bin batches, or its parent holding cifar-10-batches-bin/. */
  dir: string;
  split: 'train' | 'test';
  /** Load only the first `limit` examples (in file order). */
  limit?: number;
  /**
   * Default false: pixel intensities in [0, 1] (models normalise with config.inputNormalization
   * { shift: CIFAR10_MEAN, scale: CIFAR10_STD }). true: normalised per channel with those constants.
   */
  normalize?: boolean;
  /** Records each batch file must hold (default 10000, the official files); for small test fixtures. */
  recordsPerFile?: number;
}

function batchFiles(split: 'train' | 'test'): string[] {
  return split === 'train' ? [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`) : ['test_batch.bin'];
}

function resolveDir(dir: string, first: string): string {
  if (fs.existsSync(path.join(dir, first))) return dir;
  const nested = path.join(dir, 'cifar-10-batches-bin');
  if (fs.existsSync(path.join(nested, first))) return nested;
  throw dataError(path.join(dir, first), `does not exist (nor ${path.join(nested, first)}); pass the folder of the CIFAR-10 binary batches`);
}

/**
 * Checks one batch file's bytes: whole records, the expected count, labels 0 to 9.
 * Returns the number of records.
 */
export function checkCifarBatch(bytes: Uint8Array, file: string, recordsPerFile = 10000): number {
  const expected = recordsPerFile * RECORD_BYTES;
  if (bytes.length !== expected) {
    const whole = bytes.length % RECORD_BYTES === 0;
    const problem = bytes.length < expected ? 'is truncated' : 'is too long';
    throw dataError(
      file,
      `${problem}: ${bytes.length} bytes (${whole ? `${bytes.length / RECORD_BYTES} records` : `${(bytes.length / RECORD_BYTES).toFixed(2)} records, not a whole number`}) ` +
        `but a CIFAR-10 batch holds ${recordsPerFile} records of ${RECORD_BYTES} bytes (${expected} bytes)`,
    );
  }
  for (let r = 0; r < recordsPerFile; r++) {
    const label = bytes[r * RECORD_BYTES]!;
    if (label > 9) throw dataError(file, `has label ${label} in record ${r}; CIFAR-10 labels are 0 to 9 (is this the CIFAR-100 or Python version?)`);
  }
  return recordsPerFile;
}

/** Loads a CIFAR-10 split from the binary batches as [N, 3, 32, 32] images in [0, 1] (or normalised) with their labels. */
export function loadCifar10(options: Cifar10Options): ImageSet {
  const opts = expectObject(options, 'options');
  expectKnownKeys(opts, 'options', ['dir', 'split', 'limit', 'normalize', 'recordsPerFile']);
  const dirArg = expectString(opts.dir, 'options.dir');
  const split = expectOneOf(opts.split, 'options.split', ['train', 'test'] as const);
  const limit = optional(opts.limit, undefined, (v) => expectInteger(v, 'options.limit', 1));
  const normalize = optional(opts.normalize, false, (v) => expectBoolean(v, 'options.normalize'));
  const recordsPerFile = optional(opts.recordsPerFile, 10000, (v) => expectInteger(v, 'options.recordsPerFile', 1));

  const names = batchFiles(split);
  const dir = resolveDir(dirArg, names[0]!);
  const files = names.map((n) => path.join(dir, n));
  const total = Math.min(files.length * recordsPerFile, limit ?? Infinity);
  const filesNeeded = Math.ceil(total / recordsPerFile);

  const images = new Float32Array(total * PIXELS);
  const labels = new Uint8Array(total);
  const tables = [0, 1, 2].map((c) => (normalize ? byteTable(CIFAR10_MEAN[c]!, CIFAR10_STD[c]!) : byteTable(0, 1)));
  const used: string[] = [];
  for (let f = 0; f < filesNeeded; f++) {
    const file = files[f]!;
    let bytes: Buffer;
    try {
      bytes = fs.readFileSync(file);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      throw dataError(file, code === 'ENOENT' ? 'does not exist' : `cannot be read (${(error as Error).message})`);
    }
    checkCifarBatch(bytes, file, recordsPerFile);
    used.push(file);
    const first = f * recordsPerFile;
    const count = Math.min(recordsPerFile, total - first);
    for (let r = 0; r < count; r++) {
      const src = r * RECORD_BYTES;
      const n = first + r;
      labels[n] = bytes[src]!;
      const dst = n * PIXELS;
      for (let c = 0; c < 3; c++) {
        const table = tables[c]!;
        const o = c * 1024;
        for (let p = 0; p < 1024; p++) images[dst + o + p] = table[bytes[src + 1 + o + p]!]!;
      }
    }
  }
  return {
    images,
    labels,
    shape: [total, 3, 32, 32],
    classes: 10,
    mean: normalize ? [...CIFAR10_MEAN] : null,
    std: normalize ? [...CIFAR10_STD] : null,
    files: used,
  };
}

/** Options of augmentBatch: random crop after zero padding, and horizontal flips. */
export interface AugmentOptions {
  /** Zero padding on each side before the random crop back to H x W (default 4; 0: no crop). */
  padding?: number;
  /** Flip each image left-right with probability 1/2 (default true). */
  flip?: boolean;
  /**
   * The value of padded pixels, one for all channels or one per channel (default 0). On raw
   * [0, 1] images 0 is black and CIFAR10_MEAN the mean colour; on normalised images 0 is the mean
   * colour and -mean/std per channel black.
   */
  fill?: number | readonly number[];
}

function expectBatchShape(value: unknown, field: string, length: number): [number, number, number, number] {
  if (!Array.isArray(value) || value.length !== 4) throw new TypeError(`Expected [N, C, H, W] for ${field} but received ${describe(value)}`);
  const shape = value.map((s, i) => expectInteger(s, `${field}[${i}]`, 0)) as [number, number, number, number];
  const n = shape[0] * shape[1] * shape[2] * shape[3];
  if (n !== length) throw new RangeError(`Expected images to hold ${n} elements for ${field} [${shape.join(', ')}] but received ${length}`);
  return shape;
}

/**
 * Augments a minibatch [N, C, H, W]: for each image in order, draws a crop offset (dy then
 * dx, each uniform in [0, 2 * padding]) and then a flip, and writes the padded-cropped
 * (and flipped) image to `out` (a new array when not given; it must not be `images`).
 * The same generator state gives the same output.
 */
export function augmentBatch(images: Float32Array, shape: readonly number[], rng: Random, options?: AugmentOptions, out?: Float32Array): Float32Array {
  if (!(images instanceof Float32Array)) throw new TypeError(`Expected a Float32Array for images but received ${describe(images)}`);
  const [n, c, h, w] = expectBatchShape(shape, 'shape', images.length);
  if (!(rng instanceof Random)) throw new TypeError(`Expected a Random for rng but received ${describe(rng)}`);
  const opts = expectOptionalObject(options, 'options');
  expectKnownKeys(opts, 'options', ['padding', 'flip', 'fill']);
  const pad = optional(opts.padding, 4, (v) => expectInteger(v, 'options.padding', 0));
  const flip = optional(opts.flip, true, (v) => expectBoolean(v, 'options.flip'));
  const fill = fillValues(opts.fill, c);
  const result = out ?? new Float32Array(images.length);
  if (!(result instanceof Float32Array) || result.length !== images.length) {
    throw new RangeError(`Expected a Float32Array of length ${images.length} for out but received ${describe(result)}`);
  }
  if (
    result.buffer === images.buffer &&
    result.byteOffset < images.byteOffset + images.byteLength &&
    images.byteOffset < result.byteOffset + result.byteLength
  ) {
    throw new RangeError('Expected out not to overlap images (the crop reads pixels another row has overwritten)');
  }
  const plane = h * w;
  for (let i = 0; i < n; i++) {
    const dy = pad > 0 ? rng.integerBelow(2 * pad + 1) - pad : 0;
    const dx = pad > 0 ? rng.integerBelow(2 * pad + 1) - pad : 0;
    const flipped = flip && rng.nextUint32() < 0x80000000;
    for (let ch = 0; ch < c; ch++) {
      const base = (i * c + ch) * plane;
      const value = fill[ch]!;
      for (let y = 0; y < h; y++) {
        const sy = y + dy;
        const row = base + y * w;
        if (sy < 0 || sy >= h) {
          result.fill(value, row, row + w);
          continue;
        }
        const srow = base + sy * w;
        for (let x = 0; x < w; x++) {
          // Output column x shows padded-crop column x (then mirrored when flipped).
          const cx = flipped ? w - 1 - x : x;
          const sx = cx + dx;
          result[row + x] = sx < 0 || sx >= w ? value : images[srow + sx]!;
        }
      }
    }
  }
  return result;
}

/** Random crop with zero padding only (see augmentBatch). */
export function randomCrop(images: Float32Array, shape: readonly number[], rng: Random, padding = 4, out?: Float32Array): Float32Array {
  return augmentBatch(images, shape, rng, { padding, flip: false }, out);
}

/** Random horizontal flip only (see augmentBatch). */
export function randomHorizontalFlip(images: Float32Array, shape: readonly number[], rng: Random, out?: Float32Array): Float32Array {
  return augmentBatch(images, shape, rng, { padding: 0, flip: true }, out);
}

function fillValues(value: unknown, channels: number): number[] {
  if (value === undefined) return new Array<number>(channels).fill(0);
  if (typeof value === 'number') return new Array<number>(channels).fill(expectNumber(value, 'options.fill'));
  if (!Array.isArray(value) || value.length !== channels) {
    throw new TypeError(`Expected a number or ${channels} numbers (one per channel) for options.fill but received ${describe(value)}`);
  }
  return value.map((v, i) => expectNumber(v, `options.fill[${i}]`));
}
