/**
 * SDEs and `sdeint`, in the manner of torchsde: one entry point whose options carry the
 * literature's names. SDEs are defined natively from a declarative spec (analytic problems
 * and neural SDEs); no JavaScript runs per solver step.
 */
import { awaitNative, callNative } from './errors';
import { resolveDevice } from './backend';
import { BrownianInterval, brownianHandle } from './brownian';
import { native, type ProgressCallback } from './native';
import { expectTensor, numel, type Tensor } from './tensor';
import {
  describe,
  expectBoolean,
  expectFunction,
  expectInteger,
  expectKnownKeys,
  expectNumber,
  expectObject,
  expectOneOf,
  expectOptionalObject,
  expectPositive,
  expectPositiveInteger,
  optional,
} from './validate';

export const NOISE_TYPES = ['diagonal', 'additive', 'scalar', 'general'] as const;
export const SDE_TYPES = ['ito', 'stratonovich'] as const;
/**
 * The engine's methods and activations as TypeScript names them (for the types). Validation reads
 * the engine's own lists, methods() and activations(); a test checks that the two agree.
 */
export const METHODS = ['euler', 'milstein', 'srk', 'midpoint', 'heun', 'euler_heun', 'reversible_heun'] as const;
export const ACTIVATIONS = ['tanh', 'softplus', 'relu', 'sigmoid', 'identity'] as const;

export type NoiseType = (typeof NOISE_TYPES)[number];
export type SdeType = (typeof SDE_TYPES)[number];
export type Method = (typeof METHODS)[number];
export type Activation = (typeof ACTIVATIONS)[number];

/** One row of the engine's method-support table (native/sde/solvers.cpp). */
export interface MethodInfo {
  name: Method;
  /** The SDE types it solves. */
  sdeTypes: SdeType[];
  /** The noise types it solves. */
  noiseTypes: NoiseType[];
  strongOrder: string;
  /** Whether it takes adaptive steps. */
  adaptive: boolean;
  /** As an adjointMethod: the noise types whose adjoint it solves, and the forward method it needs (reversible_heun: itself). */
  adjoint: { noiseTypes: NoiseType[]; requiresMethod: Method | null };
}

let methodTable: readonly MethodInfo[] | undefined;
let activationNames: readonly Activation[] | undefined;

/** The engine's method-support table: every method and what it supports. */
export function methods(): readonly MethodInfo[] {
  methodTable ??= Object.freeze(callNative(() => native().methods()) as MethodInfo[]);
  return methodTable;
}

/** The row of `method` in the engine's table. */
export function methodInfo(method: Method): MethodInfo {
  return methods().find((m) => m.name === method)!;
}

/** The engine's activation functions. */
export function activations(): readonly Activation[] {
  activationNames ??= Object.freeze(callNative(() => native().activations()) as Activation[]);
  return activationNames;
}

/** The names of the engine's methods, for validation. */
export function methodNames(): readonly Method[] {
  return methods().map((m) => m.name);
}
export type Dtype = 'float32' | 'float64';

interface Common {
  sdeType?: SdeType;
  dtype?: Dtype;
  device?: string;
}

/** Geometric Brownian motion dY = mu Y dt + sigma Y dW; sigma [d] or, for general noise, [d][m]. */
export interface GbmSpec extends Common {
  type: 'gbm';
  mu: number[];
  sigma: number[] | number[][];
  noiseType?: Exclude<NoiseType, 'additive'>;
}

/** Ornstein-Uhlenbeck dX = theta (mu - X) dt + sigma dW, per component (additive noise). */
export interface OuSpec extends Common {
  type: 'ou';
  theta: number;
  mu: number;
  sigma: number;
}

/** Linear SDE with additive noise dX = (A X + c) dt + b dW. */
export interface LinearSpec extends Common {
  type: 'linear';
  A: number[][];
  c: number[];
  b: number[];
}

export interface MlpSpec {
  /** Hidden layer widths. */
  hidden?: number[];
  activation?: Activation;
  /** Append t to the network's input. */
  timeInput?: boolean;
}

/** A neural SDE: drift MLP, and a diffusion of one of three kinds. */
export interface NeuralSpec extends Common {
  type: 'neural';
  /** State dimension. */
  d: number;
  /** Brownian dimension (general noise only). */
  m?: number;
  noiseType?: NoiseType;
  drift?: MlpSpec;
  diffusion?: MlpSpec & {
    /** 'mlp': out(MLP(y[, t])); 'scaled_tanh': sigmoid(s) * tanh(y) + offset (diagonal); 'constant': s (additive). */
    kind?: 'mlp' | 'scaled_tanh' | 'constant';
    /** Output activation of the diffusion MLP. Default 'sigmoid'. */
    output?: Activation;
    offset?: number;
    /** Initial value of s ('scaled_tanh', 'constant'). Default 0.1. */
    init?: number;
  };
  /** Seed of the parameters' initialisation. */
  seed?: number;
  /**
   * Where the diffusion is 'scaled_tanh' or 'constant' the drift and diffusion have hand-written
   * derivatives. 'fast' (default): fixed-step Euler solves on CPU (backprop, and the Euler adjoint
   * of additive noise) run the buffered solver, in place over reused buffers without autograd;
   * everything else as 'fused'. 'fused': the general solver, one graph node per step and no
   * autograd in the adjoint. 'autograd': plain LibTorch autograd (the reference the others are
   * tested against). Results report the route that ran.
   */
  kernels?: 'fast' | 'fused' | 'autograd';
}

export type SDESpec = GbmSpec | OuSpec | LinearSpec | NeuralSpec;

function expectNumbers(value: unknown, field: string, length?: number): number[] {
  if (!Array.isArray(value)) throw new TypeError(`Expected an array of numbers for ${field} but received ${describe(value)}`);
  if (length !== undefined && value.length !== length) {
    throw new RangeError(`Expected ${length} numbers for ${field} but received ${value.length}`);
  }
  if (value.length === 0) throw new RangeError(`Expected a non-empty array for ${field}`);
  return value.map((v, i) => expectNumber(v, `${field}[${i}]`));
}

function expectMatrix(value: unknown, field: string, rows?: number, cols?: number): number[][] {
  if (!Array.isArray(value) || value.length === 0) throw new TypeError(`Expected a non-empty array of rows for ${field} but received ${describe(value)}`);
  if (rows !== undefined && value.length !== rows) throw new RangeError(`Expected ${rows} rows for ${field} but received ${value.length}`);
  const width = Array.isArray(value[0]) ? (value[0] as unknown[]).length : 0;
  return value.map((row, i) => expectNumbers(row, `${field}[${i}]`, cols ?? width));
}

function expectMlp(value: unknown, field: string): MlpSpec {
  const o = expectOptionalObject(value, field);
  return {
    hidden: optional(o.hidden, [], (v) => {
      if (!Array.isArray(v)) throw new TypeError(`Expected an array of widths for ${field}.hidden but received ${describe(v)}`);
      return v.map((w, i) => expectPositiveInteger(w, `${field}.hidden[${i}]`));
    }),
    activation: optional(o.activation, 'tanh' as Activation, (v) => expectOneOf(v, `${field}.activation`, activations())),
    timeInput: optional(o.timeInput, false, (v) => expectBoolean(v, `${field}.timeInput`)),
  };
}

/** Validates an SDE spec, returning it with defaults filled in. */
export function validateSpec(spec: unknown, field = 'spec'): Required<Pick<Common, 'sdeType' | 'dtype' | 'device'>> & SDESpec {
  const o = expectObject(spec, field);
  const type = expectOneOf(o.type, `${field}.type`, ['gbm', 'ou', 'linear', 'neural'] as const);
  const common = {
    sdeType: optional(o.sdeType, 'ito' as SdeType, (v) => expectOneOf(v, `${field}.sdeType`, SDE_TYPES)),
    dtype: optional(o.dtype, 'float32' as Dtype, (v) => expectOneOf(v, `${field}.dtype`, ['float32', 'float64'] as const)),
    device: resolveDevice(o.device ?? 'cpu', `${field}.device`),
  };
  switch (type) {
    case 'gbm': {
      expectKnownKeys(o, field, ['type', 'mu', 'sigma', 'noiseType', 'sdeType', 'dtype', 'device']);
      const noiseType = optional(o.noiseType, 'diagonal' as const, (v) => expectOneOf(v, `${field}.noiseType`, ['diagonal', 'scalar', 'general'] as const));
      const mu = expectNumbers(o.mu, `${field}.mu`);
      const sigma = noiseType === 'general' ? expectMatrix(o.sigma, `${field}.sigma`, mu.length) : expectNumbers(o.sigma, `${field}.sigma`, mu.length);
      return { ...common, type, mu, sigma, noiseType };
    }
    case 'ou':
      expectKnownKeys(o, field, ['type', 'theta', 'mu', 'sigma', 'sdeType', 'dtype', 'device']);
      return { ...common, type, theta: expectNumber(o.theta, `${field}.theta`), mu: expectNumber(o.mu, `${field}.mu`), sigma: expectNumber(o.sigma, `${field}.sigma`) };
    case 'linear': {
      expectKnownKeys(o, field, ['type', 'A', 'c', 'b', 'sdeType', 'dtype', 'device']);
      const A = expectMatrix(o.A, `${field}.A`);
      if (A[0]!.length !== A.length) throw new RangeError(`Expected a square matrix for ${field}.A but received ${A.length}x${A[0]!.length}`);
      return { ...common, type, A, c: expectNumbers(o.c, `${field}.c`, A.length), b: expectNumbers(o.b, `${field}.b`, A.length) };
    }
    case 'neural': {
      expectKnownKeys(o, field, ['type', 'd', 'm', 'noiseType', 'drift', 'diffusion', 'seed', 'sdeType', 'dtype', 'device', 'kernels']);
      const d = expectPositiveInteger(o.d, `${field}.d`);
      const noiseType = optional(o.noiseType, 'diagonal' as NoiseType, (v) => expectOneOf(v, `${field}.noiseType`, NOISE_TYPES));
      const m = noiseType === 'general' ? expectPositiveInteger(o.m, `${field}.m`) : undefined;
      const diffusionIn = expectOptionalObject(o.diffusion, `${field}.diffusion`);
      expectKnownKeys(diffusionIn, `${field}.diffusion`, ['kind', 'hidden', 'activation', 'timeInput', 'output', 'offset', 'init']);
      const defaultKind = noiseType === 'additive' ? 'constant' : noiseType === 'diagonal' ? 'scaled_tanh' : 'mlp';
      const kind = optional(diffusionIn.kind, defaultKind, (v) => expectOneOf(v, `${field}.diffusion.kind`, ['mlp', 'scaled_tanh', 'constant'] as const));
      if (kind === 'scaled_tanh' && noiseType !== 'diagonal') throw new RangeError(`${field}.diffusion.kind 'scaled_tanh' needs noiseType 'diagonal' but received '${noiseType}'`);
      if (kind === 'constant' && noiseType !== 'additive') throw new RangeError(`${field}.diffusion.kind 'constant' needs noiseType 'additive' but received '${noiseType}'`);
      const diffusion = {
        ...expectMlp({ hidden: diffusionIn.hidden, activation: diffusionIn.activation, timeInput: diffusionIn.timeInput }, `${field}.diffusion`),
        kind,
        output: optional(diffusionIn.output, 'sigmoid' as Activation, (v) => expectOneOf(v, `${field}.diffusion.output`, activations())),
        offset: optional(diffusionIn.offset, 0, (v) => expectNumber(v, `${field}.diffusion.offset`)),
        init: optional(diffusionIn.init, 0.1, (v) => expectNumber(v, `${field}.diffusion.init`)),
      };
      if (kind === 'mlp' && noiseType === 'additive' && !diffusion.timeInput) {
        throw new RangeError(`${field}.diffusion: additive noise cannot depend on the state; use kind 'constant' or set timeInput: true`);
      }
      const driftIn = expectOptionalObject(o.drift, `${field}.drift`);
      expectKnownKeys(driftIn, `${field}.drift`, ['hidden', 'activation', 'timeInput']);
      return {
        ...common,
        type,
        d,
        ...(m !== undefined ? { m } : {}),
        noiseType,
        drift: expectMlp(driftIn, `${field}.drift`),
        diffusion,
        seed: optional(o.seed, 0, (v) => expectInteger(v, `${field}.seed`, 0, 2 ** 53 - 1)),
        kernels: optional(o.kernels, 'fast' as const, (v) => expectOneOf(v, `${field}.kernels`, ['fast', 'fused', 'autograd'] as const)),
      };
    }
  }
}

interface NativeSde {
  parameters(): Record<string, Tensor>;
  setParameter(name: string, value: Tensor): void;
  exact(y0: Tensor, t: number, w: Tensor): Tensor;
  dispose(): void;
}

/** An SDE held natively. Call dispose() to free its parameters early. */
export class SDE {
  readonly spec: ReturnType<typeof validateSpec>;
  /** @internal */
  readonly handle: NativeSde;

  constructor(spec: SDESpec) {
    this.spec = validateSpec(spec);
    const NativeSDE = native().NativeSDE as unknown as new (spec: object) => NativeSde;
    this.handle = callNative(() => new NativeSDE(this.spec));
  }

  get sdeType(): SdeType {
    return this.spec.sdeType;
  }

  get noiseType(): NoiseType {
    return this.spec.type === 'ou' || this.spec.type === 'linear' ? 'additive' : (this.spec.noiseType ?? 'diagonal');
  }

  /** The learnable parameters by name (neural SDEs; mu and sigma of geometric Brownian motion). */
  parameters(): Record<string, Tensor> {
    return callNative(() => this.handle.parameters());
  }

  /** Overwrites one named parameter of a neural SDE (same shape). */
  setParameter(name: string, value: Tensor): void {
    const tensor = expectTensor(value, 'value');
    callNative(() => this.handle.setParameter(name, tensor));
  }

  /** Geometric Brownian motion only: the exact Y_t from Y_0 and W(t) - W(t0). */
  exact(y0: Tensor, t: number, w: Tensor): Tensor {
    return callNative(() => this.handle.exact(expectTensor(y0, 'y0', 2), expectNumber(t, 't'), expectTensor(w, 'w', 2)));
  }

  dispose(): void {
    callNative(() => this.handle.dispose());
  }
}

export interface SolveStats {
  /** Drift and diffusion evaluations. */
  nfe: number;
  stepsAccepted: number;
  stepsRejected: number;
  /** An adaptive step was forced at dtMin. */
  hitDtMin: boolean;
}

export interface SdeintOptions {
  /** Default 'euler' for Ito SDEs, 'midpoint' for Stratonovich. */
  method?: Method;
  /** Step size (the initial one when adaptive). Default 0.01. */
  dt?: number;
  adaptive?: boolean;
  rtol?: number;
  atol?: number;
  dtMin?: number;
  /** The Brownian motion to solve on; by default a Brownian interval over [ts[0], ts.at(-1)] from `seed`. */
  bm?: BrownianInterval;
  seed?: number;
  device?: string;
  /** Gradients by the stochastic adjoint (constant memory) instead of backprop through the solver. */
  adjoint?: boolean;
  adjointMethod?: Method;
  adjointDt?: number;
  adjointAdaptive?: boolean;
  adjointRtol?: number;
  adjointAtol?: number;
  onProgress?: (event: { stage: 'forward' | 'backward'; fraction: number; t: number; nfe: number; stepsAccepted: number }) => void;
}

const OPTION_KEYS = [
  'method', 'dt', 'adaptive', 'rtol', 'atol', 'dtMin', 'bm', 'seed', 'device', 'adjoint',
  'adjointMethod', 'adjointDt', 'adjointAdaptive', 'adjointRtol', 'adjointAtol', 'onProgress',
] as const;

function validateOptions(sde: SDE, options: unknown) {
  const o = expectOptionalObject(options, 'options');
  expectKnownKeys(o, 'options', OPTION_KEYS);
  const method = optional(o.method, sde.sdeType === 'ito' ? ('euler' as Method) : ('midpoint' as Method), (v) => expectOneOf(v, 'options.method', methodNames()));
  const dt = optional(o.dt, 0.01, (v) => expectPositive(v, 'options.dt'));
  const adaptive = optional(o.adaptive, false, (v) => expectBoolean(v, 'options.adaptive'));
  const rtol = optional(o.rtol, 1e-3, (v) => expectPositive(v, 'options.rtol'));
  const atol = optional(o.atol, 1e-4, (v) => expectPositive(v, 'options.atol'));
  const dtMin = optional(o.dtMin, 1e-5, (v) => expectPositive(v, 'options.dtMin'));
  const adjoint = optional(o.adjoint, false, (v) => expectBoolean(v, 'options.adjoint'));
  // The backward pass's default: the Stratonovich counterpart of the forward method (Euler's is
  // euler_heun: one drift evaluation per step), the exact adjoint for reversible_heun.
  const defaultAdjointMethod: Method =
    method === 'reversible_heun' ? 'reversible_heun'
    : method === 'euler' ? (sde.noiseType === 'additive' ? 'euler' : 'euler_heun')
    : method === 'heun' || method === 'euler_heun' ? method
    : 'midpoint';
  const out = {
    method,
    dt,
    adaptive,
    rtol,
    atol,
    dtMin,
    seed: optional(o.seed, 0, (v) => expectInteger(v, 'options.seed', 0, 2 ** 53 - 1)),
    device: resolveDevice(o.device ?? sde.spec.device, 'options.device'),
    adjoint,
    adjointMethod: optional(o.adjointMethod, defaultAdjointMethod, (v) => expectOneOf(v, 'options.adjointMethod', methodNames())),
    adjointDt: optional(o.adjointDt, dt, (v) => expectPositive(v, 'options.adjointDt')),
    adjointAdaptive: optional(o.adjointAdaptive, adaptive, (v) => expectBoolean(v, 'options.adjointAdaptive')),
    adjointRtol: optional(o.adjointRtol, rtol, (v) => expectPositive(v, 'options.adjointRtol')),
    adjointAtol: optional(o.adjointAtol, atol, (v) => expectPositive(v, 'options.adjointAtol')),
    ...(o.bm !== undefined ? { bm: brownianHandle(o.bm, 'options.bm') } : {}),
  };
  const onProgress = o.onProgress === undefined ? undefined : expectFunction<ProgressCallback>(o.onProgress, 'options.onProgress');
  return { native: out, onProgress };
}

function validateTimes(ts: unknown): number[] {
  if (!Array.isArray(ts) && !(ts instanceof Float64Array) && !(ts instanceof Float32Array)) {
    throw new TypeError(`Expected an array of times for ts but received ${describe(ts)}`);
  }
  const out = Array.from(ts as ArrayLike<unknown>, (t, i) => expectNumber(t, `ts[${i}]`));
  if (out.length < 2) throw new RangeError(`Expected at least two times for ts but received ${out.length}`);
  for (let i = 1; i < out.length; i++) {
    if (!(out[i]! > out[i - 1]!)) throw new RangeError(`Expected strictly increasing ts but ts[${i}] = ${out[i]} follows ${out[i - 1]}`);
  }
  return out;
}

function validateY0(sde: SDE, y0: unknown): Tensor {
  const t = expectTensor(y0, 'y0');
  if (t.shape.length !== 2) throw new RangeError(`Expected y0 of shape [batch, d] but received [${t.shape.join(', ')}]`);
  const wantF64 = sde.spec.dtype === 'float64';
  if ((t.data instanceof Float64Array) !== wantF64) {
    throw new TypeError(`Expected ${wantF64 ? 'Float64Array' : 'Float32Array'} for y0.data (the SDE's dtype is ${sde.spec.dtype})`);
  }
  return t;
}

/** How a solve ran: the buffered solver, or the general solver with hand-written VJPs ('fused') or autograd. */
export type Route = 'buffered' | 'fused' | 'autograd';

export interface SdeintResult {
  /** The solution at every ts: [len(ts), batch, d]. */
  ys: Tensor;
  stats: SolveStats;
  /** The route that ran (see NeuralSpec.kernels). */
  route: Route;
}

/**
 * Solves `sde` from y0 at ts[0] and returns the solution at each of ts (the solver steps exactly
 * onto every output time). Runs off the event loop.
 */
export function sdeint(sde: SDE, y0: Tensor, ts: ArrayLike<number>, options: SdeintOptions = {}): Promise<SdeintResult> {
  if (!(sde instanceof SDE)) throw new TypeError(`Expected an SDE for sde but received ${describe(sde)}`);
  const y = validateY0(sde, y0);
  const times = validateTimes(ts);
  const { native: opts, onProgress } = validateOptions(sde, options);
  return awaitNative(callNative(() => native().sdeint(sde.handle, y, times, opts, onProgress)));
}

export interface GradientsResult extends SdeintResult {
  /** dL/dy0, shaped like y0. */
  gradY0: Tensor;
  /** dL/dtheta for each named parameter. */
  gradParams: Record<string, Tensor>;
  /** Statistics of the backward (adjoint) solve; zeros for backprop. */
  adjointStats: SolveStats;
}

/**
 * Solves and returns the gradients of a loss L with respect to y0 and the SDE's parameters, given
 * the upstream gradient gradYs = dL/dys ([len(ts), batch, d]). `adjoint: true` uses the stochastic
 * adjoint (constant memory); otherwise backprop through the solver.
 */
export function sdeintGradients(sde: SDE, y0: Tensor, ts: ArrayLike<number>, gradYs: Tensor, options: SdeintOptions = {}): Promise<GradientsResult> {
  if (!(sde instanceof SDE)) throw new TypeError(`Expected an SDE for sde but received ${describe(sde)}`);
  const y = validateY0(sde, y0);
  const times = validateTimes(ts);
  const g = expectTensor(gradYs, 'gradYs');
  const expected = [times.length, ...y.shape];
  if (g.shape.length !== expected.length || g.shape.some((s, i) => s !== expected[i]) || numel(g.shape) !== numel(expected)) {
    throw new RangeError(`Expected gradYs of shape [${expected.join(', ')}] but received [${g.shape.join(', ')}]`);
  }
  if (g.data.constructor !== y.data.constructor) throw new TypeError('Expected gradYs.data to have the same type as y0.data');
  const { native: opts, onProgress } = validateOptions(sde, options);
  return awaitNative(callNative(() => native().sdeintGradients(sde.handle, y, times, g, opts, onProgress)));
}
