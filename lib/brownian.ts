/**
 * Brownian motion sampled on demand: torchsde's Brownian interval on the native engine.
 * Any increment W(t) - W(s) of one fixed path can be asked for, in any order, as often as
 * needed (the stochastic adjoint replays the forward path backwards); memory stays bounded by
 * an LRU cache of `cacheSize` entries.
 */
import { resolveDevice, type DeviceSpec } from './backend';
import { callNative } from './errors';
import { checkBytes, expectMaxBytes } from './limits';
import { native, type NativeBinding } from './native';
import { numel, type FloatArray, type Tensor } from './tensor';
import {
  describe,
  expectBoolean,
  expectInRange,
  expectInteger,
  expectKnownKeys,
  expectNumber,
  expectObject,
  expectOneOf,
  expectPositive,
  expectPositiveInteger,
  optional,
} from './validate';

/** Floating-point type of a Brownian motion's values. */
export type BrownianDtype = 'float32' | 'float64';

/** Options of `new BrownianInterval`: the interval, the increment shape, the seed and the cache. */
export interface BrownianIntervalOptions {
  /** Start of the interval. Default 0. */
  t0?: number;
  /** End of the interval (> t0). Default 1. */
  t1?: number;
  /** Shape of each increment, e.g. [batch, dims]; [] for a scalar motion. */
  shape: readonly number[];
  /** Non-negative integer seed (up to 2^53 - 1). Default 0. */
  seed?: number;
  /** Default 'float32'. */
  dtype?: BrownianDtype;
  /** Default 'cpu'. */
  device?: DeviceSpec;
  /** Expected step size of the queries: pre-splits the tree so a grid of this step is fast. */
  dtHint?: number;
  /** Also sample the space-time Levy area H (needed by the srk solvers). Default false. */
  levyArea?: boolean;
  /** Increments kept in the LRU cache (>= 3); bounds the tensor memory. Default 45. */
  cacheSize?: number;
  /** The most bytes the cache may hold (cacheSize full entries); more is a LimitError naming options.maxBytes. Default 4 GiB. */
  maxBytes?: number;
}

type NativeBrownianInterval = InstanceType<NativeBinding['BrownianInterval']>;

const knownOptions = ['t0', 't1', 'shape', 'seed', 'dtype', 'device', 'dtHint', 'levyArea', 'cacheSize', 'maxBytes'] as const;
const maxElements = 2 ** 30;
const maxCacheSize = 1_000_000;

/** One fixed Brownian path on [t0, t1], queried by interval (see the module comment); dispose() frees it. */
export class BrownianInterval {
  readonly t0: number;
  readonly t1: number;
  readonly shape: readonly number[];
  readonly seed: number;
  readonly dtype: BrownianDtype;
  /** The resolved device ('cpu', 'cuda:0', ...). */
  readonly device: string;
  /** The step hint, or undefined (the tree then adapts to the observed steps, as torchsde's does). */
  readonly dtHint: number | undefined;
  readonly levyArea: boolean;
  readonly cacheSize: number;
  private readonly handle: NativeBrownianInterval;
  private readonly size: number;

  constructor(options: BrownianIntervalOptions) {
    const o = expectObject(options, 'options');
    expectKnownKeys(o, 'options', knownOptions);
    this.t0 = optional(o.t0, 0, (v) => expectNumber(v, 'options.t0'));
    this.t1 = optional(o.t1, 1, (v) => expectNumber(v, 'options.t1'));
    if (!(this.t1 > this.t0)) {
      throw new RangeError(`Expected options.t1 greater than options.t0 (${this.t0}) but received ${this.t1}`);
    }
    this.dtype = optional(o.dtype, 'float32', (v) => expectOneOf(v, 'options.dtype', ['float32', 'float64'] as const));
    // Values have standard deviation sqrt(t1 - t0): far out in its tails they must stay finite in the dtype.
    const maxSpan = this.dtype === 'float32' ? 1e65 : Number.MAX_VALUE;
    if (!(this.t1 - this.t0 <= maxSpan)) {
      throw new RangeError(
        `Expected options.t1 - options.t0 at most ${maxSpan} for ${this.dtype} Brownian values (they must stay finite) but received ${this.t1 - this.t0}`,
      );
    }
    if (!Array.isArray(o.shape)) throw new TypeError(`Expected an array of sizes for options.shape but received ${describe(o.shape)}`);
    this.shape = Object.freeze(o.shape.map((d, i) => expectPositiveInteger(d, `options.shape[${i}]`)));
    this.size = numel(this.shape);
    if (this.size > maxElements) {
      throw new RangeError(`Expected at most ${maxElements} elements for options.shape but received [${this.shape.join(', ')}]`);
    }
    this.seed = optional(o.seed, 0, (v) => expectInteger(v, 'options.seed', 0, Number.MAX_SAFE_INTEGER));
    this.dtHint = o.dtHint === undefined ? undefined : expectPositive(o.dtHint, 'options.dtHint');
    this.levyArea = optional(o.levyArea, false, (v) => expectBoolean(v, 'options.levyArea'));
    this.cacheSize = optional(o.cacheSize, 45, (v) => expectInteger(v, 'options.cacheSize', 3, maxCacheSize));
    // A full cache, plus the two arrays of a query.
    const entryBytes = this.size * (this.dtype === 'float64' ? 8 : 4) * (this.levyArea ? 2 : 1);
    checkBytes(
      entryBytes * (this.cacheSize + 2),
      expectMaxBytes(o.maxBytes, 'options.maxBytes'),
      'options.maxBytes',
      `A BrownianInterval of shape [${this.shape.join(', ')}] with cacheSize ${this.cacheSize}`,
    );
    this.device = resolveDevice(o.device ?? 'cpu', 'options.device');
    const Native = native().BrownianInterval;
    this.handle = callNative(
      () =>
        new Native({
          t0: this.t0,
          t1: this.t1,
          shape: [...this.shape],
          seed: this.seed,
          dtype: this.dtype,
          device: this.device,
          dtHint: this.dtHint ?? 0,
          levyArea: this.levyArea,
          cacheSize: this.cacheSize,
        }),
    );
  }

  /** W(t) - W(s) for t0 <= s <= t <= t1 (zeros when s == t). */
  increment(s: number, t: number): Tensor {
    this.checkQuery(s, t);
    const data = this.allocate();
    callNative(() => this.handle.incrementInto(s, t, data));
    return { data, shape: [...this.shape] };
  }

  /**
   * W(t) - W(s) and the space-time Levy area
   * H(s, t) = 1/(t-s) * integral_s^t (W(r) - W(s)) dr - (W(t) - W(s))/2, for an interval made
   * with levyArea: true.
   */
  incrementAndLevyArea(s: number, t: number): { W: Tensor; H: Tensor } {
    if (!this.levyArea) {
      throw new RangeError('incrementAndLevyArea needs a BrownianInterval made with options.levyArea = true');
    }
    this.checkQuery(s, t);
    const W = this.allocate();
    const H = this.allocate();
    callNative(() => this.handle.incrementAndLevyAreaInto(s, t, W, H));
    return { W: { data: W, shape: [...this.shape] }, H: { data: H, shape: [...this.shape] } };
  }

  /** (W, H) entries held in the cache now (never more than cacheSize). */
  cacheEntries(): number {
    return callNative(() => this.handle.cacheEntries());
  }

  /** Cache entries, tree nodes and child pairs drawn so far (for tests and benchmarks). */
  stats(): { cacheEntries: number; cacheSize: number; nodes: number; splitsComputed: number } {
    return callNative(() => this.handle.stats());
  }

  /** Frees the native tree and cached tensors now; later calls throw an error with code ERR_DISPOSED. */
  dispose(): void {
    callNative(() => this.handle.dispose());
  }

  /** @internal The native object, for other bindings (solvers) that take a Brownian motion. */
  get nativeHandle(): NativeBrownianInterval {
    return this.handle;
  }

  private allocate(): FloatArray {
    return this.dtype === 'float64' ? new Float64Array(this.size) : new Float32Array(this.size);
  }

  private checkQuery(s: number, t: number): void {
    expectInRange(s, 's', this.t0, this.t1);
    expectInRange(t, 't', this.t0, this.t1);
    if (s > t) throw new RangeError(`Expected s <= t but received s = ${s} > t = ${t}`);
  }
}

/** The native object behind a BrownianInterval option (e.g. a solver's options.bm), checked by name. */
export function brownianHandle(bm: unknown, field: string): NativeBrownianInterval {
  if (!(bm instanceof BrownianInterval)) throw new TypeError(`Expected a BrownianInterval for ${field} but received ${describe(bm)}`);
  return bm.nativeHandle;
}
