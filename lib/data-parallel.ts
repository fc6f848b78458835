/**
 * The training loop's side of data-parallel training (train() with `distributed`): the ranks check
 * that they train the same model with the same options, start from rank 0's state and position,
 * average their gradients inside each native step, follow rank 0's clock for time limits and
 * prove at every checkpoint that they still hold identical parameters.
 *
 * Weight paths: by default each rank draws its own path per step (its own training stream), so
 * a step averages N paths' gradients, a lower-variance estimate than one path. With
 * weightPaths 'shared' all ranks draw rank 0's path, and N ranks reproduce the single-process
 * run with the same global batch up to floating-point rounding.
 */
import { createHash } from 'node:crypto';
import type { SdeBnn } from './bnn';
import type { MinibatchState } from './data/dataset';
import { ProcessGroup, trainStreamState } from './distributed';
import { DistributedError } from './errors';
import { Random } from './random';
import type { Tensor } from './tensor';
import { describe, expectKnownKeys, expectObject, expectOneOf, optional } from './validate';

/** Whether each rank draws its own weight paths ('independent') or all ranks draw the same ('shared'). */
export type WeightPaths = 'independent' | 'shared';

/** TrainOptions.distributed: data-parallel training over a process group. */
export interface DistributedTrainOptions {
  /** This process's group, from initDistributed. */
  group: ProcessGroup;
  /**
   * 'independent' (default): each rank draws its own weight path every step, so a step averages
   * the gradients of worldSize paths. 'shared': every rank draws the same path, so the run
   * reproduces the single-process run with the same global batch (to rounding).
   */
  weightPaths?: WeightPaths;
}

export function resolveDistributedTrainOptions(value: unknown, field: string): { group: ProcessGroup; weightPaths: WeightPaths } {
  const o = expectObject(value, field);
  expectKnownKeys(o, field, ['group', 'weightPaths']);
  if (!(o.group instanceof ProcessGroup)) {
    throw new TypeError(`Expected a ProcessGroup (from initDistributed) for ${field}.group but received ${describe(o.group)}`);
  }
  const weightPaths = optional(o.weightPaths, 'independent', (v) => expectOneOf(v, `${field}.weightPaths`, ['independent', 'shared'] as const));
  return { group: o.group, weightPaths };
}

/** Where training stands: what a checkpoint records, and what rank 0 hands the others. */
export interface TrainingPosition {
  epoch: number;
  step: number;
  iterator: MinibatchState;
}

/** JSON leaves by path ('config.solver.steps' -> '10'), for naming what differs between ranks. */
function leaves(value: unknown, prefix: string, out: Map<string, string>): Map<string, string> {
  if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) leaves(v, prefix ? `${prefix}.${k}` : k, out);
  } else {
    out.set(prefix, JSON.stringify(value));
  }
  return out;
}

/** A 48-bit digest of a tensor's bytes (exact as a float64, so it can travel in an all-reduce). */
function digest(t: Tensor): number {
  return createHash('sha256')
    .update(Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength))
    .digest()
    .readUIntBE(0, 6);
}

/** The seed of rank `rank`'s own training stream from `step` on (an integer below 2^53). */
function rankStreamSeed(modelSeed: number, step: number, rank: number): number {
  const rng = new Random((BigInt(modelSeed) * 1000003n + BigInt(step) * 7919n + BigInt(rank)) & ((1n << 64n) - 1n));
  return rng.nextUint32() * 2 ** 21 + (rng.nextUint32() >>> 11);
}

export class DataParallel {
  private constructor(
    readonly group: ProcessGroup,
    private readonly model: SdeBnn,
  ) {}

  /**
   * Checks that every rank trains with the same `fingerprint` (the model's config and the options
   * that shape the run), gives every rank rank 0's `position` and model state (parameters, Adam,
   * EMA, streams), and gives each rank its own training stream unless weight paths are shared.
   */
  static async start(
    model: SdeBnn,
    options: { group: ProcessGroup; weightPaths: WeightPaths },
    position: TrainingPosition,
    fingerprint: object,
  ): Promise<{ parallel: DataParallel; position: TrainingPosition }> {
    const { group } = options;
    await agree(group, fingerprint);
    const agreed = await group.broadcastObject(position);
    await broadcastState(group, model);
    if (options.weightPaths === 'independent' && group.rank > 0) {
      model.setState({ 'rng.train': trainStreamState(rankStreamSeed(model.config.seed, agreed.step, group.rank)) }, { strict: false });
    }
    return { parallel: new DataParallel(group, model), position: agreed };
  }

  /**
   * Runs one training step of the model with its gradients averaged over the ranks (the hook is
   * set for this step alone, so a failed run leaves the model as it was).
   */
  async step<T>(trainStep: () => Promise<T>): Promise<T> {
    this.group.attachGradients(this.model);
    try {
      return await trainStep();
    } finally {
      this.group.detachGradients(this.model);
    }
  }

  /** Rank 0 writes checkpoints and logs (and the CLI prints only there). */
  get lead(): boolean {
    return this.group.rank === 0;
  }

  /** Rank 0's training seconds, so that every rank schedules the learning rate and stops alike. */
  async agreedSeconds(seconds: number): Promise<number> {
    return (await this.group.broadcast({ data: Float64Array.of(seconds), shape: [1] })).data[0]!;
  }

  /** Replaces each number with its mean over the ranks (identical epoch logs everywhere). */
  async average<K extends string>(values: Record<K, number>): Promise<void> {
    const keys = Object.keys(values) as K[];
    const t = await this.group.allReduce({ data: Float64Array.from(keys, (k) => values[k]), shape: [keys.length] }, { op: 'mean' });
    keys.forEach((k, i) => (values[k] = t.data[i]!));
  }

  /**
   * Throws DistributedError ERR_DISTRIBUTED_DIVERGED on every rank, naming the ranks and tensors,
   * unless all ranks hold identical parameters, Adam moments and EMA (compared by digest).
   */
  async verifyIdentical(step: number): Promise<void> {
    const state = this.model.getState();
    const names = Object.keys(state).filter((n) => !n.startsWith('rng.'));
    const { rank, worldSize } = this.group;
    const table = new Float64Array(worldSize * names.length);
    names.forEach((n, i) => (table[rank * names.length + i] = digest(state[n]!)));
    await this.group.allReduce({ data: table, shape: [worldSize, names.length] });
    const differences: string[] = [];
    for (let r = 1; r < worldSize; r++) {
      const differ = names.filter((_, i) => table[r * names.length + i] !== table[i]);
      if (differ.length > 0) differences.push(`rank ${r} in ${differ.slice(0, 4).join(', ')}${differ.length > 4 ? ` and ${differ.length - 4} more` : ''}`);
    }
    if (differences.length > 0) {
      throw new DistributedError(
        `At step ${step} the ranks hold different parameters (${differences.join('; ')} differ from rank 0). Data-parallel ranks ` +
          'apply the same averaged gradient and must stay identical: something changed one rank alone, or native work is not deterministic.',
        'ERR_DISTRIBUTED_DIVERGED',
      );
    }
  }
}

/** Every rank compares its fingerprint with rank 0's; all throw if any differs. */
async function agree(group: ProcessGroup, fingerprint: object): Promise<void> {
  const mine = leaves(JSON.parse(JSON.stringify(fingerprint)), '', new Map());
  const reference = leaves(await group.broadcastObject(fingerprint), '', new Map());
  const differences = [...new Set([...mine.keys(), ...reference.keys()])]
    .filter((k) => mine.get(k) !== reference.get(k))
    .map((k) => `${k} (rank 0: ${reference.get(k) ?? 'absent'}, rank ${group.rank}: ${mine.get(k) ?? 'absent'})`);
  const flags = new Float64Array(group.worldSize);
  flags[group.rank] = differences.length > 0 ? 1 : 0;
  await group.allReduce({ data: flags, shape: [group.worldSize] });
  const ranks = [...flags.keys()].filter((r) => flags[r] !== 0);
  if (ranks.length === 0) return;
  throw new DistributedError(
    differences.length > 0
      ? `rank ${group.rank} trains a different model or with different options than rank 0: ${differences.slice(0, 6).join('; ')}`
      : `rank${ranks.length > 1 ? 's' : ''} ${ranks.join(', ')} train${ranks.length > 1 ? '' : 's'} a different model or with different options than rank 0 (see ${ranks.length > 1 ? 'their errors' : 'its error'})`,
    'ERR_DISTRIBUTED_MISMATCH',
  );
}

/** Every rank takes rank 0's full model state, in one broadcast. */
async function broadcastState(group: ProcessGroup, model: SdeBnn): Promise<void> {
  const state = model.getState();
  const names = Object.keys(state); // one order on every rank: the same model (agree() checked)
  const flat = new Float64Array(names.reduce((n, k) => n + state[k]!.data.length, 0));
  let offset = 0;
  for (const n of names) {
    flat.set(state[n]!.data, offset);
    offset += state[n]!.data.length;
  }
  await group.broadcast({ data: flat, shape: [flat.length] });
  if (group.rank === 0) return;
  offset = 0;
  for (const n of names) {
    const t = state[n]!;
    t.data.set(flat.subarray(offset, offset + t.data.length));
    offset += t.data.length;
  }
  model.setState(state);
}
