/**
 * Out-of-distribution image sets, as raw pixel intensities in [0, 1] shaped like the model's
 * inputs (the model normalises them exactly as its own data):
 *   - 'fashion-mnist': the test images of Fashion-MNIST (Xiao et al. 2017) from Debian's
 *     `dataset-fashion-mnist` package, which installs them in /usr/share/datasets/fashion-mnist
 *     (`apt-get install dataset-fashion-mnist` as root; scripts/setup.sh does);
 *   - any IDX image file (gzip or not), or a folder holding t10k-images-idx3-ubyte(.gz);
 *   - a CIFAR-10 binary folder (its test batch);
 *   - 'noise': i.i.d. uniform [0, 1] pixels; 'constant': each image one uniform [0, 1] value.
 *     Both synthetic, seeded and download-free.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadCifar10 } from './cifar';
import { dataError, readIdx } from './idx';
import { Random } from '../random';
import { numel } from '../tensor';
import { describe, expectInteger, expectKnownKeys, expectObject, expectString, optional } from '../validate';

/** Where Debian's dataset-fashion-mnist package puts the IDX files. */
export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';
/** OOD sets made on the fly, needing no files: uniform noise and constant images. */
export const SYNTHETIC_OOD = ['noise', 'constant'] as const;

/** An out-of-distribution image set, raw pixels in [0, 1] (loadOodImages). */
export interface OodImages {
  /** 'fashion-mnist', 'noise', 'constant', or the file or folder's base name. */
  name: string;
  /** [N, C, H, W] row-major, in [0, 1]. */
  images: Float32Array;
  shape: [number, number, number, number];
  /** The files read (none for synthetic sets). */
  files: string[];
}

/** Options of loadOodImages. */
export interface OodOptions {
  /** The model's input shape [C, H, W]; the set must match it. */
  inputShape: readonly number[];
  /** At most this many images (file sets), or exactly this many (synthetic sets; default 10,000). */
  limit?: number;
  /** Seed of the synthetic sets (default 0). */
  seed?: number;
  /** Where 'fashion-mnist' is looked for (default FASHION_MNIST_DIR). */
  fashionMnistDir?: string;
}

const IDX_TEST_IMAGES = 't10k-images-idx3-ubyte';

/** Whether the Fashion-MNIST test images are installed in `dir`. */
export function fashionMnistAvailable(dir = FASHION_MNIST_DIR): boolean {
  return [IDX_TEST_IMAGES, `${IDX_TEST_IMAGES}.gz`].some((f) => fs.existsSync(path.join(dir, f)));
}

function idxImages(file: string, limit: number | undefined): { images: Float32Array; shape: [number, number, number, number] } {
  const idx = readIdx(file, limit === undefined ? {} : { limit });
  let shape: [number, number, number, number];
  if (idx.dims.length === 3) shape = [idx.count, 1, idx.dims[1]!, idx.dims[2]!];
  else if (idx.dims.length === 4) shape = [idx.count, idx.dims[1]!, idx.dims[2]!, idx.dims[3]!];
  else throw dataError(file, `holds an array of shape [${idx.dims.join(', ')}]; expected images [N, H, W] or [N, C, H, W]`);
  const images = new Float32Array(idx.data.length);
  for (let i = 0; i < images.length; i++) images[i] = idx.data[i]! / 255;
  return { images, shape };
}

function fromFolder(dir: string, limit: number | undefined): { images: Float32Array; shape: [number, number, number, number]; files: string[] } {
  for (const name of [IDX_TEST_IMAGES, `${IDX_TEST_IMAGES}.gz`]) {
    const file = path.join(dir, name);
    if (fs.existsSync(file)) return { ...idxImages(file, limit), files: [file] };
  }
  if (['test_batch.bin', path.join('cifar-10-batches-bin', 'test_batch.bin')].some((f) => fs.existsSync(path.join(dir, f)))) {
    const set = loadCifar10({ dir, split: 'test', ...(limit === undefined ? {} : { limit }) });
    return { images: set.images, shape: set.shape, files: set.files };
  }
  throw dataError(dir, `holds no ${IDX_TEST_IMAGES}(.gz) and no CIFAR-10 test_batch.bin; pass an IDX image file or such a folder`);
}

/** Synthetic OOD images: 'noise' (i.i.d. uniform pixels) or 'constant' (one uniform value per image). */
export function syntheticImages(kind: (typeof SYNTHETIC_OOD)[number], shape: readonly [number, number, number, number], seed = 0): Float32Array {
  const rng = new Random(seed);
  const images = new Float32Array(numel(shape));
  if (kind === 'noise') return rng.fillUniform(images);
  const per = images.length / shape[0];
  for (let i = 0; i < shape[0]; i++) images.fill(rng.uniform(), i * per, (i + 1) * per);
  return images;
}

/** Loads (or draws) an OOD set and checks that its images fit the model's input shape. */
export function loadOodImages(source: string, options: OodOptions): OodImages {
  expectString(source, 'source');
  const o = expectObject(options, 'options');
  expectKnownKeys(o, 'options', ['inputShape', 'limit', 'seed', 'fashionMnistDir']);
  if (!Array.isArray(o.inputShape) || o.inputShape.length !== 3) {
    throw new TypeError(`Expected [C, H, W] for options.inputShape but received ${describe(o.inputShape)}`);
  }
  const inputShape = o.inputShape.map((v, i) => expectInteger(v, `options.inputShape[${i}]`, 1)) as [number, number, number];
  const limit = optional(o.limit, undefined, (v) => expectInteger(v, 'options.limit', 1));
  const seed = optional(o.seed, 0, (v) => expectInteger(v, 'options.seed', 0, Number.MAX_SAFE_INTEGER));
  const fashionDir = optional(o.fashionMnistDir, FASHION_MNIST_DIR, (v) => expectString(v, 'options.fashionMnistDir'));

  if ((SYNTHETIC_OOD as readonly string[]).includes(source)) {
    const shape: [number, number, number, number] = [limit ?? 10000, ...inputShape];
    return { name: source, images: syntheticImages(source as 'noise' | 'constant', shape, seed), shape, files: [] };
  }
  let set: { images: Float32Array; shape: [number, number, number, number]; files: string[] };
  let name: string;
  if (source === 'fashion-mnist') {
    if (!fashionMnistAvailable(fashionDir)) {
      throw dataError(
        fashionDir,
        `holds no Fashion-MNIST test images; install Debian's package as root (apt-get install dataset-fashion-mnist) or pass the folder of its IDX files`,
      );
    }
    set = fromFolder(fashionDir, limit);
    name = 'fashion-mnist';
  } else {
    let stat: fs.Stats;
    try {
      stat = fs.statSync(source);
    } catch {
      throw dataError(
        source,
        `does not exist; expected an IDX image file, a folder of IDX or CIFAR-10 test files, or one of 'fashion-mnist', ${SYNTHETIC_OOD.map((s) => `'${s}'`).join(', ')}`,
      );
    }
    set = stat.isDirectory() ? fromFolder(source, limit) : { ...idxImages(source, limit), files: [source] };
    name = path.basename(source.replace(/[/\\]+$/, ''));
  }
  const [, c, h, w] = set.shape;
  if (c !== inputShape[0] || h !== inputShape[1] || w !== inputShape[2]) {
    throw dataError(set.files[0] ?? source, `holds images of shape [${c}, ${h}, ${w}] but the model takes [${inputShape.join(', ')}]`);
  }
  return { name, ...set };
}
