// OOD image sets: IDX files (gzip or not) and folders, CIFAR-10 folders, Fashion-MNIST from
// Debian's package, and the synthetic sets; all raw [0, 1] and checked against the model's shape.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { expectDataFormatError, sdebnn } from './helpers';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sdebnn-ood-'));
const mnistShape = [1, 28, 28];

function idx(dims: number[], fill: (i: number) => number): Buffer {
  const header = Buffer.alloc(4 + 4 * dims.length);
  header.writeUInt32BE(0x00000800 + dims.length, 0);
  dims.forEach((d, i) => header.writeUInt32BE(d, 4 + 4 * i));
  const n = dims.reduce((a, b) => a * b, 1);
  return Buffer.concat([header, Buffer.from(Uint8Array.from({ length: n }, (_, i) => fill(i)))]);
}

describe('OOD sets from files', () => {
  it('reads an IDX image file, plain or gzipped, as [N, 1, H, W] intensities in [0, 1]', () => {
    const bytes = idx([3, 28, 28], (i) => i % 256);
    const plain = path.join(root, 'letters-idx3-ubyte');
    fs.writeFileSync(plain, bytes);
    fs.writeFileSync(`${plain}.gz`, zlib.gzipSync(bytes));
    for (const file of [plain, `${plain}.gz`]) {
      const set = sdebnn.loadOodImages(file, { inputShape: mnistShape });
      expect(set.shape).toEqual([3, 1, 28, 28]);
      expect(set.images[255]).toBe(1);
      expect(set.images[51]).toBeCloseTo(0.2, 7);
      expect(set.files).toEqual([file]);
    }
    expect(sdebnn.loadOodImages(plain, { inputShape: mnistShape, limit: 2 }).shape).toEqual([2, 1, 28, 28]);
    expect(sdebnn.loadOodImages(plain, { inputShape: mnistShape }).name).toBe('letters-idx3-ubyte');
  });

  it('reads a folder of IDX test images (e.g. another MNIST-like set) and a CIFAR-10 folder', () => {
    const folder = path.join(root, 'kmnist');
    fs.mkdirSync(folder);
    fs.writeFileSync(path.join(folder, 't10k-images-idx3-ubyte.gz'), zlib.gzipSync(idx([2, 28, 28], () => 255)));
    const set = sdebnn.loadOodImages(folder, { inputShape: mnistShape });
    expect(set.name).toBe('kmnist');
    expect(set.images.every((v) => v === 1)).toBe(true);

    const cifar = path.join(root, 'cifar', 'cifar-10-batches-bin');
    fs.mkdirSync(cifar, { recursive: true });
    const record = Buffer.alloc(3073, 51);
    record[0] = 3;
    fs.writeFileSync(path.join(cifar, 'test_batch.bin'), Buffer.concat(Array.from({ length: 10000 }, () => record)));
    const c = sdebnn.loadOodImages(path.join(root, 'cifar'), { inputShape: [3, 32, 32], limit: 5 });
    expect(c.shape).toEqual([5, 3, 32, 32]);
    expect(c.images[0]).toBeCloseTo(0.2, 7);
    // An MNIST model cannot take CIFAR images: the error names both shapes.
    expectDataFormatError(() => sdebnn.loadOodImages(cifar, { inputShape: mnistShape }), 'holds images of shape [3, 32, 32] but the model takes [1, 28, 28]');
  });

  it('names what is wrong', () => {
    expectDataFormatError(
      () => sdebnn.loadOodImages(path.join(root, 'nothing'), { inputShape: mnistShape }),
      "does not exist; expected an IDX image file, a folder of IDX or CIFAR-10 test files, or one of 'fashion-mnist', 'noise', 'constant'",
    );
    const labels = path.join(root, 'labels-idx1-ubyte');
    fs.writeFileSync(
      labels,
      idx([4], () => 1),
    );
    expectDataFormatError(
      () => sdebnn.loadOodImages(labels, { inputShape: mnistShape }),
      'holds an array of shape [4]; expected images [N, H, W] or [N, C, H, W]',
    );
    const empty = path.join(root, 'empty');
    fs.mkdirSync(empty);
    expectDataFormatError(() => sdebnn.loadOodImages(empty, { inputShape: mnistShape }), 'holds no t10k-images-idx3-ubyte(.gz) and no CIFAR-10 test_batch.bin');
    expectDataFormatError(
      () => sdebnn.loadOodImages('fashion-mnist', { inputShape: mnistShape, fashionMnistDir: empty }),
      'apt-get install dataset-fashion-mnist',
    );
    expect(() => sdebnn.loadOodImages('noise', { inputShape: [1, 28] })).toThrow(/Expected \[C, H, W\] for options\.inputShape/);
  });
});

describe('synthetic OOD sets', () => {
  it('noise: i.i.d. uniform pixels (mean 1/2, variance 1/12); constant: one value per image; both seeded', () => {
    const noise = sdebnn.loadOodImages('noise', { inputShape: mnistShape, limit: 100, seed: 3 });
    expect(noise.shape).toEqual([100, 1, 28, 28]);
    let sum = 0;
    let sq = 0;
    for (const v of noise.images) {
      sum += v;
      sq += v * v;
    }
    const n = noise.images.length;
    // 78,400 pixels: the SE of the mean is sqrt(1/12 / n) = 0.001; of the variance about 0.0003.
    expect(Math.abs(sum / n - 0.5)).toBeLessThan(0.005);
    expect(Math.abs(sq / n - (sum / n) ** 2 - 1 / 12)).toBeLessThan(0.002);
    expect(Array.from(sdebnn.loadOodImages('noise', { inputShape: mnistShape, limit: 100, seed: 3 }).images)).toEqual(Array.from(noise.images));
    const constant = sdebnn.loadOodImages('constant', { inputShape: [3, 4, 4], limit: 10, seed: 1 });
    for (let i = 0; i < 10; i++) {
      const image = constant.images.subarray(i * 48, (i + 1) * 48);
      expect(image.every((v) => v === image[0])).toBe(true);
    }
    expect(constant.images[0]).not.toBe(constant.images[48]);
    expect(sdebnn.loadOodImages('constant', { inputShape: mnistShape }).shape[0]).toBe(10000);
  });
});

describe("Fashion-MNIST from Debian's dataset-fashion-mnist", () => {
  const installed = sdebnn.fashionMnistAvailable();
  // CI installs it (scripts/setup.sh as root); elsewhere the skip says why.
  if (!installed && process.env.CI !== 'true') {
    it.skip(`needs ${sdebnn.FASHION_MNIST_DIR} (apt-get install dataset-fashion-mnist)`, () => {});
    return;
  }
  it(`loads its 10,000 test images from ${sdebnn.FASHION_MNIST_DIR}`, () => {
    const set = sdebnn.loadOodImages('fashion-mnist', { inputShape: mnistShape });
    expect(set.shape).toEqual([10000, 1, 28, 28]);
    expect(set.files[0]).toMatch(/fashion-mnist[/\\]t10k-images-idx3-ubyte(\.gz)?$/);
    // Clothes fill more of the frame than digits: mean intensity 0.286 (MNIST: 0.133).
    const mean = set.images.reduce((a, b) => a + b, 0) / set.images.length;
    expect(mean).toBeGreaterThan(0.25);
    expect(mean).toBeLessThan(0.32);
  });
});
