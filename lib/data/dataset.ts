/**
 * In-memory datasets over typed arrays and a seeded minibatch iterator.
 *
 * A dataset is N examples, each input a Float32Array block of `inputShape` (row-major),
 * each target either a class label (Uint8Array, one per example) or a Float32Array block
 * of `targetShape` (regression). The iterator permutes the examples once per epoch with
 * its own seeded generator and copies each minibatch into buffers it reuses, so training
 * allocates nothing per step. Its state (epoch, position, generator) fits in a checkpoint
 * and resumes the same batch sequence.
 */
import { numel } from '../tensor';
import { Random, type RandomState } from '../random';
import { describe, expectBoolean, expectInteger, expectKnownKeys, expectObject, expectOptionalObject, optional } from '../validate';

/** What the image loaders return. */
export interface ImageSet {
  /** N x C x H x W, row-major. */
  images: Float32Array;
  labels: Uint8Array;
  shape: [number, number, number, number];
  classes: number;
  /** Per-channel mean and std that were subtracted/divided (of pixels in [0, 1]); null when not normalised. */
  mean: number[] | null;
  std: number[] | null;
  /** The files read. */
  files: string[];
}

/** Class labels (bytes) or regression targets (floats). */
export type Targets = Uint8Array | Float32Array;

/** Examples in two flat arrays: inputs [length, ...inputShape] and targets [length, ...targetShape] (createDataset). */
export interface Dataset<T extends Targets = Targets> {
  /** The inputs, row-major: length x inputShape. */
  inputs: Float32Array;
  /** The shape of one example's input, e.g. [1, 28, 28] or [1]. */
  inputShape: number[];
  /** The targets, row-major: length x targetShape. */
  targets: T;
  /** The shape of one example's target: [] for class labels, e.g. [1] for scalar regression. */
  targetShape: number[];
  /** Number of examples. */
  length: number;
  /** Number of classes for labels (every label is below it); undefined for regression. */
  classes?: number;
}

/** What createDataset checks and builds a Dataset from. */
export interface DatasetInit<T extends Targets = Targets> {
  inputs: Float32Array;
  inputShape: number[];
  targets: T;
  /** Default: [] for Uint8Array labels, [targets.length / N] for Float32Array targets. */
  targetShape?: number[];
  /** For labels; default: max label + 1. */
  classes?: number;
}

function expectShape(value: unknown, field: string): number[] {
  if (!Array.isArray(value)) throw new TypeError(`Expected an array of sizes for ${field} but received ${describe(value)}`);
  return value.map((s, i) => expectInteger(s, `${field}[${i}]`, 1));
}

/** Checks user-provided arrays and builds a dataset; every problem names the field. */
export function createDataset<T extends Targets>(init: DatasetInit<T>, field = 'dataset'): Dataset<T> {
  const obj = expectObject(init, field);
  expectKnownKeys(obj, field, ['inputs', 'inputShape', 'targets', 'targetShape', 'classes']);
  const { inputs, targets } = obj;
  if (!(inputs instanceof Float32Array)) throw new TypeError(`Expected a Float32Array for ${field}.inputs but received ${describe(inputs)}`);
  const inputShape = expectShape(obj.inputShape, `${field}.inputShape`);
  const exampleSize = numel(inputShape);
  if (inputs.length % exampleSize !== 0) {
    throw new RangeError(
      `Expected a multiple of ${exampleSize} elements (inputShape [${inputShape.join(', ')}]) for ${field}.inputs but received ${describe(inputs)}`,
    );
  }
  const n = inputs.length / exampleSize;
  let targetShape: number[];
  let classes: number | undefined;
  if (targets instanceof Uint8Array) {
    targetShape = optional(obj.targetShape, [], (v) => expectShape(v, `${field}.targetShape`));
    if (targetShape.length !== 0) {
      throw new RangeError(`Expected [] (one label per example) for ${field}.targetShape with Uint8Array labels but received [${targetShape.join(', ')}]`);
    }
    if (targets.length !== n) {
      throw new RangeError(`Expected ${n} labels (one per example of ${field}.inputs) for ${field}.targets but received ${describe(targets)}`);
    }
    let max = -1;
    for (let i = 0; i < n; i++) if (targets[i]! > max) max = targets[i]!;
    classes = optional(obj.classes, max + 1, (v) => expectInteger(v, `${field}.classes`, 1, 256));
    if (max >= classes) {
      const at = targets.findIndex((t) => t >= classes!);
      throw new RangeError(`Expected labels below ${classes} (${field}.classes) for ${field}.targets but label ${targets[at]} is at index ${at}`);
    }
  } else if (targets instanceof Float32Array) {
    if (obj.classes !== undefined)
      throw new TypeError(`Expected no ${field}.classes with Float32Array (regression) targets but received ${describe(obj.classes)}`);
    const perExample = n === 0 ? 1 : targets.length / n;
    targetShape = optional(obj.targetShape, Number.isInteger(perExample) && perExample > 0 ? [perExample] : [], (v) => expectShape(v, `${field}.targetShape`));
    const size = numel(targetShape);
    if (targetShape.length === 0 || targets.length !== n * size) {
      throw new RangeError(
        `Expected ${n} x ${targetShape.length ? size : 'k'} elements (one target per example of ${field}.inputs) for ${field}.targets but received ${describe(targets)}`,
      );
    }
    for (let i = 0; i < targets.length; i++) {
      if (!Number.isFinite(targets[i])) throw new RangeError(`Expected finite values for ${field}.targets but element ${i} is ${targets[i]}`);
    }
  } else {
    throw new TypeError(`Expected a Uint8Array (labels) or Float32Array (regression) for ${field}.targets but received ${describe(targets)}`);
  }
  return { inputs, inputShape, targets: targets as T, targetShape, length: n, ...(classes !== undefined ? { classes } : {}) };
}

/** A zeroed array of the targets' kind (Uint8Array, also for a Buffer, or Float32Array). */
function allocateLike<T extends Targets>(targets: T, length: number): T {
  return (targets instanceof Float32Array ? new Float32Array(length) : new Uint8Array(length)) as T;
}

/** The dataset of an image set (from loadMnist or loadCifar10). */
export function imageDataset(set: ImageSet): Dataset<Uint8Array> {
  const obj = expectObject(set, 'set');
  const shape = expectShape(obj.shape, 'set.shape');
  return createDataset({ inputs: set.images, inputShape: shape.slice(1), targets: set.labels, classes: set.classes }, 'set');
}

/** A new dataset holding copies of the examples at `indices` (in that order). */
export function subset<T extends Targets>(dataset: Dataset<T>, indices: ArrayLike<number>): Dataset<T> {
  const inSize = numel(dataset.inputShape);
  const tSize = numel(dataset.targetShape);
  const inputs = new Float32Array(indices.length * inSize);
  const targets = allocateLike(dataset.targets, indices.length * tSize);
  for (let k = 0; k < indices.length; k++) {
    const i = expectInteger(indices[k], `indices[${k}]`, 0, dataset.length - 1);
    inputs.set(dataset.inputs.subarray(i * inSize, (i + 1) * inSize), k * inSize);
    targets.set(dataset.targets.subarray(i * tSize, (i + 1) * tSize), k * tSize);
  }
  return {
    inputs,
    inputShape: [...dataset.inputShape],
    targets,
    targetShape: [...dataset.targetShape],
    length: indices.length,
    ...(dataset.classes !== undefined ? { classes: dataset.classes } : {}),
  };
}

/** Splits off a random validation set of `validationSize` examples (seeded); the rest is `train`. */
export function splitDataset<T extends Targets>(
  dataset: Dataset<T>,
  options: { validationSize: number; seed?: number },
): { train: Dataset<T>; validation: Dataset<T> } {
  const opts = expectObject(options, 'options');
  expectKnownKeys(opts, 'options', ['validationSize', 'seed']);
  const size = expectInteger(opts.validationSize, 'options.validationSize', 0, dataset.length);
  const seed = optional(opts.seed, 0, (v) => expectInteger(v, 'options.seed', 0, Number.MAX_SAFE_INTEGER));
  const perm = new Random(seed).permutation(dataset.length);
  return { validation: subset(dataset, perm.subarray(0, size)), train: subset(dataset, perm.subarray(size)) };
}

/** One minibatch of a MinibatchIterator. */
export interface Batch<T extends Targets = Targets> {
  /** size x inputShape, row-major. Overwritten by the next batch: copy it to keep it. */
  inputs: Float32Array;
  /** size x targetShape. Overwritten by the next batch. */
  targets: T;
  /** [size, ...inputShape]. */
  shape: number[];
  /** Number of examples in this batch (batchSize, or fewer for a kept last batch or a shard). */
  size: number;
  /** The dataset indices of the examples. Overwritten by the next batch. */
  indices: Uint32Array;
  /** Zero-based epoch and batch number within the epoch. */
  epoch: number;
  index: number;
}

/** Options of a MinibatchIterator. */
export interface MinibatchOptions {
  batchSize: number;
  /** Permute the examples each epoch (default true); false gives them in order. */
  shuffle?: boolean;
  /** Seed of the iterator's own generator (default 0). */
  seed?: number;
  /** Drop a last batch smaller than batchSize (default false: keep it). */
  dropLast?: boolean;
  /**
   * Data-parallel training: this process's share of every batch. Batches are drawn as without it
   * (the same permutation, batchSize examples each), and each yields only rows
   * [floor(rank * size / count), floor((rank + 1) * size / count)) of them (none, for a kept last
   * batch of fewer than `count` examples).
   */
  shard?: { rank: number; count: number };
}

/** Where a MinibatchIterator is, as plain JSON data, so that training resumes on the same batches. */
export interface MinibatchState {
  /** The epoch in progress (or the next one, when `position` is 0). */
  epoch: number;
  /** Batches of that epoch already handed out. */
  position: number;
  /** The generator's state before this epoch's permutation was drawn. */
  rng: RandomState;
}

/**
 * Seeded shuffled minibatches with reusable buffers.
 *
 *     const batches = new MinibatchIterator(train, { batchSize: 128, seed: 1 });
 *     for (let e = 0; e < epochs; e++) for (const b of batches.epoch()) step(b.inputs, b.targets, b.size);
 *
 * `getState()` taken while handling a batch counts that batch as done; `setState()` on a new
 * iterator over the same dataset resumes with the next batch, bit for bit.
 */
export class MinibatchIterator<T extends Targets = Targets> {
  readonly dataset: Dataset<T>;
  readonly batchSize: number;
  readonly shuffle: boolean;
  readonly dropLast: boolean;
  readonly shard: { rank: number; count: number };
  private readonly rng: Random;
  private epochStart: RandomState;
  private order: Uint32Array;
  private orderEpoch = -1;
  private currentEpoch = 0;
  private position = 0;
  private readonly inputBuffer: Float32Array;
  private readonly targetBuffer: T;
  private readonly indexBuffer: Uint32Array;
  /** Bumped by each epoch() and setState(): an older epoch generator then stops with an error. */
  private generation = 0;

  constructor(dataset: Dataset<T>, options: MinibatchOptions) {
    const opts = expectObject(options, 'options');
    expectKnownKeys(opts, 'options', ['batchSize', 'shuffle', 'seed', 'dropLast', 'shard']);
    this.dataset = expectDataset(dataset, 'dataset');
    this.batchSize = expectInteger(opts.batchSize, 'options.batchSize', 1);
    this.shuffle = optional(opts.shuffle, true, (v) => expectBoolean(v, 'options.shuffle'));
    this.dropLast = optional(opts.dropLast, false, (v) => expectBoolean(v, 'options.dropLast'));
    const seed = optional(opts.seed, 0, (v) => expectInteger(v, 'options.seed', 0, Number.MAX_SAFE_INTEGER));
    const shard = expectOptionalObject(opts.shard, 'options.shard');
    expectKnownKeys(shard, 'options.shard', ['rank', 'count']);
    const count = optional(shard.count, 1, (v) => expectInteger(v, 'options.shard.count', 1, this.batchSize));
    this.shard = { rank: optional(shard.rank, 0, (v) => expectInteger(v, 'options.shard.rank', 0, count - 1)), count };
    this.rng = new Random(seed);
    this.epochStart = this.rng.getState();
    this.order = new Uint32Array(dataset.length);
    const rows = Math.min(this.batchSize, dataset.length);
    this.inputBuffer = new Float32Array(rows * numel(dataset.inputShape));
    this.targetBuffer = allocateLike(dataset.targets, rows * numel(dataset.targetShape));
    this.indexBuffer = new Uint32Array(rows);
  }

  /** Batches per epoch (with the dropLast rule). */
  get batchesPerEpoch(): number {
    const n = this.dataset.length;
    return this.dropLast ? Math.floor(n / this.batchSize) : Math.ceil(n / this.batchSize);
  }

  /** The epoch the next batch belongs to. */
  get epochNumber(): number {
    return this.currentEpoch;
  }

  /**
   * The remaining batches of the current epoch (all of them for a fresh epoch); the epoch
   * counter advances after the last one. Leaving the loop early keeps the position, so the
   * next epoch() call continues the same epoch. A newer epoch() or setState() call retires
   * an older generator (it throws if resumed), since all batches share the same buffers.
   */
  *epoch(): Generator<Batch<T>, void, undefined> {
    const generation = ++this.generation;
    const { dataset, batchSize } = this;
    const inSize = numel(dataset.inputShape);
    const tSize = numel(dataset.targetShape);
    this.prepareOrder();
    const total = this.batchesPerEpoch;
    while (this.position < total) {
      const index = this.position;
      const whole = Math.min(batchSize, dataset.length - index * batchSize);
      const first = Math.floor((this.shard.rank * whole) / this.shard.count);
      const start = index * batchSize + first;
      const size = Math.floor(((this.shard.rank + 1) * whole) / this.shard.count) - first;
      const indices = this.indexBuffer.subarray(0, size);
      const inputs = this.inputBuffer.subarray(0, size * inSize);
      const targets = this.targetBuffer.subarray(0, size * tSize) as T;
      for (let k = 0; k < size; k++) {
        const i = this.order[start + k]!;
        indices[k] = i;
        inputs.set(dataset.inputs.subarray(i * inSize, (i + 1) * inSize), k * inSize);
        if (tSize === 1) targets[k] = dataset.targets[i]!;
        else targets.set(dataset.targets.subarray(i * tSize, (i + 1) * tSize), k * tSize);
      }
      this.position = index + 1;
      yield { inputs, targets, shape: [size, ...dataset.inputShape], size, indices, epoch: this.currentEpoch, index };
      if (generation !== this.generation) {
        throw new Error('MinibatchIterator: this epoch generator was superseded by a newer epoch() or setState() call');
      }
    }
    this.currentEpoch += 1;
    this.position = 0;
    this.epochStart = this.rng.getState();
  }

  private prepareOrder(): void {
    if (this.orderEpoch === this.currentEpoch) return;
    const order = this.order;
    for (let i = 0; i < order.length; i++) order[i] = i;
    if (this.shuffle) {
      this.rng.setState(this.epochStart);
      this.rng.shuffle(order);
    }
    this.orderEpoch = this.currentEpoch;
  }

  /** The position and generator state, for a checkpoint. */
  getState(): MinibatchState {
    const rng = this.epochStart;
    return { epoch: this.currentEpoch, position: this.position, rng: { ...rng, s: [...rng.s] } };
  }

  /** Resumes, with the next batch, at a state from getState of an iterator over the same dataset. */
  setState(state: MinibatchState): void {
    const obj = expectObject(state, 'state');
    const epoch = expectInteger(obj.epoch, 'state.epoch', 0);
    const position = expectInteger(obj.position, 'state.position', 0, this.batchesPerEpoch);
    const rng = new Random(0);
    rng.setState(obj.rng as RandomState); // validates before anything changes
    this.rng.setState(obj.rng as RandomState);
    this.epochStart = this.rng.getState();
    this.currentEpoch = epoch;
    this.position = position;
    this.orderEpoch = -1;
    this.generation++;
  }
}

/** Checks a dataset argument (as createDataset checks its parts), naming it `field` in errors. */
export function expectDataset<T extends Targets>(dataset: unknown, field: string): Dataset<T> {
  const obj = expectObject(dataset, field);
  return createDataset(
    {
      inputs: obj.inputs as Float32Array,
      inputShape: obj.inputShape as number[],
      targets: obj.targets as T,
      targetShape: obj.targetShape as number[],
      ...(obj.classes !== undefined ? { classes: obj.classes as number } : {}),
    },
    field,
  );
}
