/**
 * Data-parallel processes on LibTorch's c10d: a TCPStore rendezvous hosted by rank 0 and one
 * process group, Gloo on CPU or NCCL on CUDA builds that have it. `initDistributed` reads
 * torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT), which
 * `sdebnn train --nproc N` (lib/launch.ts) sets for its workers. Joining and every collective run
 * off the event loop and return Promises; collectives run in the order they are called.
 */
import { backend } from './backend';
import type { SdeBnn } from './bnn';
import { awaitNative, callNative, DistributedUnavailableError } from './errors';
import { native } from './native';
import { expectTensor, type Tensor } from './tensor';
import { describe, expectInteger, expectKnownKeys, expectOneOf, expectOptionalObject, expectPositiveInteger, expectString, optional } from './validate';

/** c10d backends: Gloo (CPU) and NCCL (CUDA). */
export type DistributedBackend = 'gloo' | 'nccl';
/** How allReduce combines the ranks' tensors. */
export type ReduceOp = 'sum' | 'mean' | 'min' | 'max';

/** Options of initDistributed; ranks and rendezvous default to the environment variables torchrun sets. */
export interface InitDistributedOptions {
  /** 'auto' (default): NCCL where this build has it and CUDA is present, else Gloo. */
  backend?: DistributedBackend | 'auto';
  /** This process's rank in [0, worldSize). Default: RANK. */
  rank?: number;
  /** Number of processes. Default: WORLD_SIZE. */
  worldSize?: number;
  /** Rank on this machine (its CUDA device under NCCL). Default: LOCAL_RANK, else 0. */
  localRank?: number;
  /** Host of rank 0, which serves the rendezvous store. Default: MASTER_ADDR, else 127.0.0.1. */
  masterAddr?: string;
  /** Port of the rendezvous store. Default: MASTER_PORT, else 29500. */
  masterPort?: number;
  /** How long joining, and any one collective, may wait for the other ranks. Default 300000 (5 minutes). */
  timeoutMs?: number;
}

/** Which c10d backends this build has (distributedAvailability). */
export interface DistributedAvailability {
  gloo: boolean;
  nccl: boolean;
  /** Why a backend is not compiled in (absent for those that are). */
  missing: { gloo?: string; nccl?: string };
}

/** Which c10d backends this build of sdebnn has, and why the others are missing. */
export function distributedAvailability(): DistributedAvailability {
  const a = callNative(() => native().distributedAvailability());
  return { gloo: a.gloo, nccl: a.nccl, missing: { ...(a.gloo ? {} : { gloo: a.glooMissing }), ...(a.nccl ? {} : { nccl: a.ncclMissing }) } };
}

/** An option, else the environment variable, else the fallback; integers are checked naming both. */
function fromEnv(value: unknown, field: string, variable: string, fallback?: string): { value: unknown; source: string } {
  if (value !== undefined) return { value, source: field };
  const env = process.env[variable];
  if (env !== undefined && env !== '') return { value: /^-?\d+$/.test(env) ? Number(env) : env, source: `${field} (from ${variable})` };
  if (fallback === undefined) {
    throw new RangeError(
      `initDistributed: ${field} was not given and ${variable} is not set; run under 'sdebnn train --nproc N' (or torchrun), or pass ${field}`,
    );
  }
  return { value: /^\d+$/.test(fallback) ? Number(fallback) : fallback, source: field };
}

function resolveBackend(requested: DistributedBackend | 'auto'): DistributedBackend {
  const a = distributedAvailability();
  if (requested === 'auto') {
    if (a.nccl && backend().cudaAvailable) return 'nccl';
    if (a.gloo) return 'gloo';
    throw new DistributedUnavailableError(
      `Distributed training needs Gloo or NCCL, and this build of sdebnn has neither: Gloo: ${a.missing.gloo}; NCCL: ${a.missing.nccl}`,
      'ERR_DISTRIBUTED_UNAVAILABLE',
    );
  }
  if (!a[requested]) {
    throw new DistributedUnavailableError(
      `backend '${requested}' is not available in this build of sdebnn: ${a.missing[requested]}`,
      'ERR_DISTRIBUTED_UNAVAILABLE',
    );
  }
  return requested;
}

/**
 * Joins the process group of `worldSize` processes; resolves once every rank has joined, or
 * rejects with a DistributedError (code ERR_DISTRIBUTED_TIMEOUT) naming how many came within
 * `timeoutMs`, or ERR_DISTRIBUTED_PORT_IN_USE when rank 0 cannot serve the rendezvous.
 * A build without the backend throws DistributedUnavailableError.
 */
export async function initDistributed(options: InitDistributedOptions = {}): Promise<ProcessGroup> {
  const o = expectOptionalObject(options, 'options');
  expectKnownKeys(o, 'options', ['backend', 'rank', 'worldSize', 'localRank', 'masterAddr', 'masterPort', 'timeoutMs']);
  const requested = optional(o.backend, 'auto' as const, (v) => expectOneOf(v, 'options.backend', ['gloo', 'nccl', 'auto'] as const));
  const world = fromEnv(o.worldSize, 'worldSize', 'WORLD_SIZE');
  const worldSize = expectPositiveInteger(world.value, world.source);
  const r = fromEnv(o.rank, 'rank', 'RANK');
  const rank = expectInteger(r.value, r.source, 0, worldSize - 1);
  const lr = fromEnv(o.localRank, 'localRank', 'LOCAL_RANK', '0');
  const localRank = expectInteger(lr.value, lr.source, 0);
  const addr = fromEnv(o.masterAddr, 'masterAddr', 'MASTER_ADDR', '127.0.0.1');
  const masterAddr = expectString(typeof addr.value === 'number' ? String(addr.value) : addr.value, addr.source);
  if (masterAddr === '') throw new RangeError(`Expected a host name or address for ${addr.source} but received ''`);
  const port = fromEnv(o.masterPort, 'masterPort', 'MASTER_PORT', '29500');
  const masterPort = expectInteger(port.value, port.source, 1, 65535);
  const timeoutMs = optional(o.timeoutMs, 300000, (v) => expectPositiveInteger(v, 'options.timeoutMs'));
  const chosen = resolveBackend(requested);
  const handle = callNative(() => new (native().ProcessGroup)());
  const settings = { backend: chosen, rank, worldSize, localRank, masterAddr, masterPort, timeoutMs };
  await awaitNative(callNative(() => handle.init({ ...settings, interface: process.env.GLOO_SOCKET_IFNAME ?? '' })));
  return new ProcessGroup(handle, settings);
}

type NativeGroup = InstanceType<ReturnType<typeof native>['ProcessGroup']>;

/** Bytes of one JSON value, as float32 numbers (exact for bytes) so that broadcast can carry them. */
function encodeJson(value: unknown): Float32Array {
  return Float32Array.from(Buffer.from(JSON.stringify(value) ?? 'null', 'utf8'));
}

/**
 * One process's membership in a process group (from initDistributed). Collectives work in place
 * on a tensor's memory, like torch.distributed's, and every rank must call the same ones in the
 * same order; each waits for all ranks, up to the group's timeout.
 */
export class ProcessGroup {
  readonly backend: DistributedBackend;
  readonly rank: number;
  readonly worldSize: number;
  readonly localRank: number;
  readonly masterAddr: string;
  readonly masterPort: number;
  readonly timeoutMs: number;
  private queue: Promise<unknown> = Promise.resolve();
  private destroyed = false;

  /** @internal Use initDistributed. */
  constructor(
    private readonly handle: NativeGroup,
    s: { backend: DistributedBackend; rank: number; worldSize: number; localRank: number; masterAddr: string; masterPort: number; timeoutMs: number },
  ) {
    this.backend = s.backend;
    this.rank = s.rank;
    this.worldSize = s.worldSize;
    this.localRank = s.localRank;
    this.masterAddr = s.masterAddr;
    this.masterPort = s.masterPort;
    this.timeoutMs = s.timeoutMs;
  }

  /** Runs native collectives strictly in call order, so every rank issues them in the same order. */
  private enqueue<T>(start: () => Promise<T>): Promise<T> {
    if (this.destroyed) return Promise.reject(new RangeError('this ProcessGroup has been destroyed'));
    const run = this.queue.then(start, start);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Reduces `tensor` over all ranks in place ('sum' by default; 'mean', 'min', 'max') and resolves to it. */
  allReduce<T extends Tensor>(tensor: T, options: { op?: ReduceOp } = {}): Promise<T> {
    const t = expectTensor(tensor, 'tensor');
    const o = expectOptionalObject(options, 'options');
    expectKnownKeys(o, 'options', ['op']);
    const op = optional(o.op, 'sum', (v) => expectOneOf(v, 'options.op', ['sum', 'mean', 'min', 'max'] as const));
    return this.enqueue(() => awaitNative(callNative(() => this.handle.allReduce(t, op)))).then(() => tensor);
  }

  /** Overwrites `tensor` on every rank with rank `root`'s (default 0) and resolves to it. */
  broadcast<T extends Tensor>(tensor: T, options: { root?: number } = {}): Promise<T> {
    const t = expectTensor(tensor, 'tensor');
    const root = this.rootOf(options);
    return this.enqueue(() => awaitNative(callNative(() => this.handle.broadcast(t, root)))).then(() => tensor);
  }

  /** Rank `root`'s JSON value on every rank (others pass anything, e.g. undefined). */
  async broadcastObject<T>(value: T, options: { root?: number } = {}): Promise<T> {
    const root = this.rootOf(options);
    const bytes = this.rank === root ? encodeJson(value) : new Float32Array(0);
    const length = await this.broadcast({ data: Float64Array.of(bytes.length), shape: [1] }, { root });
    const received = this.rank === root ? bytes : new Float32Array(length.data[0]!);
    await this.broadcast({ data: received, shape: [received.length] }, { root });
    return JSON.parse(Buffer.from(Uint8Array.from(received)).toString('utf8')) as T;
  }

  /** Resolves once every rank has called it. */
  barrier(): Promise<void> {
    return this.enqueue(() => awaitNative(callNative(() => this.handle.barrier())));
  }

  /** Collectives this rank has run (including the gradient averages of training steps) and their total seconds. */
  stats(): { collectives: number; seconds: number } {
    return callNative(() => this.handle.stats());
  }

  /** Leaves the group and frees it; later collectives reject. */
  destroy(): void {
    this.destroyed = true;
    callNative(() => this.handle.destroy());
  }

  /**
   * @internal Until detachGradients, every training step of `model` averages its gradients over
   * the ranks (in flat buckets of at most `bucketBytes`) before clipping and Adam.
   */
  attachGradients(model: SdeBnn, bucketBytes = 25 * 2 ** 20): void {
    callNative(() => this.handle.attachGradients(model.nativeHandle(), bucketBytes));
  }

  /** @internal */
  detachGradients(model: SdeBnn): void {
    if (!model.disposed) callNative(() => this.handle.detachGradients(model.nativeHandle()));
  }

  private rootOf(options: unknown): number {
    const o = expectOptionalObject(options, 'options');
    expectKnownKeys(o, 'options', ['root']);
    return optional(o.root, 0, (v) => expectInteger(v, 'options.root', 0, this.worldSize - 1));
  }
}

/**
 * The device of this rank for a model's `device` option: 'cuda' and 'auto' (with CUDA) become
 * cuda:LOCAL_RANK, one GPU per process as torchrun's workers use them; an explicit 'cuda:N' and
 * 'cpu' stay as they are.
 */
export function deviceForRank(device: unknown, group: ProcessGroup | undefined, field = 'device'): string {
  const spec = expectString(device, field);
  if (!group) return spec;
  if (spec === 'cuda' || (spec === 'auto' && backend().cudaAvailable)) return `cuda:${group.localRank}`;
  if (spec === 'auto') return 'cpu';
  return spec;
}

/** @internal The 'rng.train' state of a model's training stream seeded with `seed` (an integer below 2^53). */
export function trainStreamState(seed: number): Tensor {
  if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`Expected a safe non-negative integer seed but received ${describe(seed)}`);
  return callNative(() => native().trainStreamState(seed));
}
