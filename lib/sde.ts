/**
 * SDEs and `sdeint`, in the manner of torchsde: one entry point whose options carry the
 * literature's names. SDEs are defined natively from a declarative spec (analytic problems
 * and neural SDEs); no JavaScript runs per solver step.
 */
import { awaitNative, callNative, NumericalError } from './errors';
import { resolveDevice } from './backend';
import { BrownianInterval, brownianHandle } from './brownian';
import { native, type ProgressCallback } from './native';
import { checkBytes, checkSteps, expectMaxBytes, expectMaxSteps, fixedSteps, linearParameters } from './limits';
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

/** Noise types of an SDE's diffusion (torchsde's names): diagonal, additive, scalar or general (a full matrix). */
export const NOISE_TYPES = ['diagonal', 'additive', 'scalar', 'general'] as const;
/** The SDE calculus: Itô or Stratonovich (each method supports one or both; see methods()). */
export const SDE_TYPES = ['ito', 'stratonovich'] as const;
/**
 * The engine's methods and activations as TypeScript names them (for the types). Validation reads
 * the engine's own lists, methods() and activations(); a test checks that the two agree.
 */
export const METHODS = ['euler', 'milstein', 'srk', 'midpoint', 'heun', 'euler_heun', 'reversible_heun'] as const;
/** The activations of the engine's MLPs, as TypeScript names them. */
export const ACTIVATIONS = ['tanh', 'softplus', 'relu', 'sigmoid', 'identity'] as const;

/** One of NOISE_TYPES. */
export type NoiseType = (typeof NOISE_TYPES)[number];
/** One of SDE_TYPES. */
export type SdeType = (typeof SDE_TYPES)[number];
/** A solver method: one of METHODS. */
export type Method = (typeof METHODS)[number];
/** An activation: one of ACTIVATIONS. */
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
/** The floating-point type of an SDE's state and parameters. */
export type FloatDtype = 'float32' | 'float64';

/** What every SDE spec may set: its calculus, dtype and device. */
export interface SdeSpecCommon {
  sdeType?: SdeType;
  dtype?: FloatDtype;
  device?: string;
}

/** Geometric Brownian motion dY = mu Y dt + sigma Y dW; sigma [d] or, for general noise, [d][m]. */
export interface GbmSpec extends SdeSpecCommon {
  type: 'gbm';
  mu: number[];
  sigma: number[] | number[][];
  noiseType?: Exclude<NoiseType, 'additive'>;
}

/** Ornstein-Uhlenbeck dX = theta (mu - X) dt + sigma dW, per component (additive noise). */
export interface OuSpec extends SdeSpecCommon {
  type: 'ou';
  theta: number;
  mu: number;
  sigma: number;
}

/** Linear SDE with additive noise dX = (A X + c) dt + b dW. */
export interface LinearSpec extends SdeSpecCommon {
  type: 'linear';
  A: number[][];
  c: number[];
  b: number[];
}

/** A multilayer perceptron of a neural SDE: hidden widths, activation and (for the diffusion) output activation. */
export interface MlpSpec {
  /** Hidden layer widths. */
  hidden?: number[];
  activation?: Activation;
  /** Append t to the network's input. */
  timeInput?: boolean;
}

/** A neural SDE: drift MLP, and a diffusion of one of three kinds. */
export interface NeuralSpec extends SdeSpecCommon {
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
  /** The most bytes the networks' parameters may take (with their gradients); more is a LimitError. Default 4 GiB. */
  maxBytes?: number;
}

/** An SDE: a built-in with a closed-form solution (GBM, OU, linear) or a neural SDE of MLPs. */
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
    activation: optional(o.activation, 'tanh', (v) => expectOneOf(v, `${field}.activation`, activations())),
    timeInput: optional(o.timeInput, false, (v) => expectBoolean(v, `${field}.timeInput`)),
  };
}

/** The parameters of a neural SDE (native/sde/neural.cpp): the drift MLP, and the diffusion MLP or its vector s. */
function neuralParameters(s: { d: number; m?: number; noiseType: NoiseType; drift: MlpSpec; diffusion: MlpSpec & { kind: string } }): number {
  const mlp = (inputs: number, outputs: number, spec: MlpSpec) => linearParameters([inputs + (spec.timeInput ? 1 : 0), ...spec.hidden!, outputs]);
  const width = s.noiseType === 'general' ? s.d * s.m! : s.d;
  const diffusion = s.diffusion.kind === 'mlp' ? mlp(s.noiseType === 'additive' ? 0 : s.d, width, s.diffusion) : s.d;
  return mlp(s.d, s.d, s.drift) + diffusion;
}

/** Validates an SDE spec, returning it with defaults filled in. */
export function validateSpec(spec: unknown, field = 'spec'): Required<Pick<SdeSpecCommon, 'sdeType' | 'dtype' | 'device'>> & SDESpec {
  const o = expectObject(spec, field);
  const type = expectOneOf(o.type, `${field}.type`, ['gbm', 'ou', 'linear', 'neural'] as const);
  const common = {
    sdeType: optional(o.sdeType, 'ito', (v) => expectOneOf(v, `${field}.sdeType`, SDE_TYPES)),
    dtype: optional(o.dtype, 'float32', (v) => expectOneOf(v, `${field}.dtype`, ['float32', 'float64'] as const)),
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
      return {
        ...common,
        type,
        theta: expectNumber(o.theta, `${field}.theta`),
        mu: expectNumber(o.mu, `${field}.mu`),
        sigma: expectNumber(o.sigma, `${field}.sigma`),
      };
    case 'linear': {
      expectKnownKeys(o, field, ['type', 'A', 'c', 'b', 'sdeType', 'dtype', 'device']);
      const A = expectMatrix(o.A, `${field}.A`);
      if (A[0]!.length !== A.length) throw new RangeError(`Expected a square matrix for ${field}.A but received ${A.length}x${A[0]!.length}`);
      return { ...common, type, A, c: expectNumbers(o.c, `${field}.c`, A.length), b: expectNumbers(o.b, `${field}.b`, A.length) };
    }
    case 'neural': {
      expectKnownKeys(o, field, ['type', 'd', 'm', 'noiseType', 'drift', 'diffusion', 'seed', 'sdeType', 'dtype', 'device', 'kernels', 'maxBytes']);
      const d = expectPositiveInteger(o.d, `${field}.d`);
      const noiseType = optional(o.noiseType, 'diagonal', (v) => expectOneOf(v, `${field}.noiseType`, NOISE_TYPES));
      const m = noiseType === 'general' ? expectPositiveInteger(o.m, `${field}.m`) : undefined;
      const diffusionIn = expectOptionalObject(o.diffusion, `${field}.diffusion`);
      expectKnownKeys(diffusionIn, `${field}.diffusion`, ['kind', 'hidden', 'activation', 'timeInput', 'output', 'offset', 'init']);
      const defaultKind = noiseType === 'additive' ? 'constant' : noiseType === 'diagonal' ? 'scaled_tanh' : 'mlp';
      const kind = optional(diffusionIn.kind, defaultKind, (v) => expectOneOf(v, `${field}.diffusion.kind`, ['mlp', 'scaled_tanh', 'constant'] as const));
      if (kind === 'scaled_tanh' && noiseType !== 'diagonal')
        throw new RangeError(`${field}.diffusion.kind 'scaled_tanh' needs noiseType 'diagonal' but received '${noiseType}'`);
      if (kind === 'constant' && noiseType !== 'additive')
        throw new RangeError(`${field}.diffusion.kind 'constant' needs noiseType 'additive' but received '${noiseType}'`);
      const diffusion = {
        ...expectMlp({ hidden: diffusionIn.hidden, activation: diffusionIn.activation, timeInput: diffusionIn.timeInput }, `${field}.diffusion`),
        kind,
        output: optional(diffusionIn.output, 'sigmoid', (v) => expectOneOf(v, `${field}.diffusion.output`, activations())),
        offset: optional(diffusionIn.offset, 0, (v) => expectNumber(v, `${field}.diffusion.offset`)),
        init: optional(diffusionIn.init, 0.1, (v) => expectNumber(v, `${field}.diffusion.init`)),
      };
      if (kind === 'mlp' && noiseType === 'additive' && !diffusion.timeInput) {
        throw new RangeError(`${field}.diffusion: additive noise cannot depend on the state; use kind 'constant' or set timeInput: true`);
      }
      const driftIn = expectOptionalObject(o.drift, `${field}.drift`);
      expectKnownKeys(driftIn, `${field}.drift`, ['hidden', 'activation', 'timeInput']);
      const drift = expectMlp(driftIn, `${field}.drift`);
      const maxBytes = expectMaxBytes(o.maxBytes, `${field}.maxBytes`);
      const parameters = neuralParameters({ d, m, noiseType, drift, diffusion });
      checkBytes(parameters * 2 * (common.dtype === 'float64' ? 8 : 4), maxBytes, `${field}.maxBytes`, `A neural SDE with ${parameters} parameters`);
      return {
        ...common,
        type,
        d,
        ...(m !== undefined ? { m } : {}),
        noiseType,
        drift,
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

  /**
   * Geometric Brownian motion only: the exact Y_t from Y_0 and W(t) - W(t0); a NumericalError where
   * it overflows the dtype. `options.maxBytes` (default 4 GiB) bounds what it allocates.
   */
  exact(y0: Tensor, t: number, w: Tensor, options: { maxBytes?: number } = {}): Tensor {
    const o = expectOptionalObject(options, 'options');
    expectKnownKeys(o, 'options', ['maxBytes']);
    const y0t = expectTensor(y0, 'y0', 2);
    const wt = expectTensor(w, 'w', 2);
    const values = Math.max(numel(y0t.shape), numel(wt.shape));
    checkBytes(
      4 * values * (this.spec.dtype === 'float64' ? 8 : 4),
      expectMaxBytes(o.maxBytes, 'options.maxBytes'),
      'options.maxBytes',
      `exact on y0 [${y0t.shape.join(', ')}]`,
    );
    const y = callNative(() => this.handle.exact(y0t, expectNumber(t, 't'), wt));
    const at = y.data.findIndex((v) => !Number.isFinite(v));
    if (at >= 0) throw new NumericalError(`the exact solution is not finite in ${this.spec.dtype} (element ${at} is ${y.data[at]})`, 'ERR_NUMERICAL');
    return y;
  }

  /** Frees the native SDE; later calls throw ERR_DISPOSED. */
  dispose(): void {
    callNative(() => this.handle.dispose());
  }
}

/** Counts of one solve: accepted and rejected steps and function evaluations. */
export interface SolveStats {
  /** Drift and diffusion evaluations. */
  nfe: number;
  stepsAccepted: number;
  stepsRejected: number;
  /** An adaptive step was forced at dtMin. */
  hitDtMin: boolean;
}

/** Options of sdeint and sdeintGradients: method, step size or adaptivity, Brownian motion, gradients (backprop or adjoint), limits and progress. */
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
  /**
   * The most steps (accepted plus rejected) one solve may take: the forward solve, and the
   * adjoint's backward solve, each. Fixed steps are counted before the solve starts; adaptive
   * ones as the solver goes. More is a LimitError naming options.maxSteps. Default 100,000.
   */
  maxSteps?: number;
  /**
   * The most bytes the call may allocate, estimated from the shapes before anything is allocated
   * (see README, "Bad input and limits"). More is a LimitError naming options.maxBytes. Default 4 GiB.
   */
  maxBytes?: number;
  /**
   * Called on the event loop about every 5% of the time span. If it throws, the solve stops at its
   * next step and the Promise rejects with that error.
   */
  onProgress?: (event: { stage: 'forward' | 'backward'; fraction: number; t: number; nfe: number; stepsAccepted: number }) => void;
}

const OPTION_KEYS = [
  'method',
  'dt',
  'adaptive',
  'rtol',
  'atol',
  'dtMin',
  'bm',
  'seed',
  'device',
  'adjoint',
  'adjointMethod',
  'adjointDt',
  'adjointAdaptive',
  'adjointRtol',
  'adjointAtol',
  'maxSteps',
  'maxBytes',
  'onProgress',
] as const;

/** The shape of the Brownian increments a solve of `sde` from y0 [batch, d] needs (as the engine's brownian_shape). */
function brownianShape(sde: SDE, y0: Tensor): number[] {
  const [batch, d] = y0.shape as [number, number];
  const spec = sde.spec;
  if (sde.noiseType === 'scalar') return [batch, 1];
  if (sde.noiseType !== 'general') return [batch, d];
  if (spec.type === 'neural') return [batch, spec.m!];
  return [batch, (spec as GbmSpec).sigma.length > 0 ? ((spec as GbmSpec).sigma[0] as number[]).length : 0];
}

/** A caller's Brownian motion must fit the solve: dtype and device of the SDE, the noise's shape, Levy area for srk. */
function checkBrownian(bm: BrownianInterval, sde: SDE, y0: Tensor, device: string, method: Method): void {
  if (bm.dtype !== sde.spec.dtype) {
    throw new TypeError(`Expected a BrownianInterval of dtype '${sde.spec.dtype}' (the SDE's) for options.bm but received '${bm.dtype}'`);
  }
  if (bm.device !== device) throw new RangeError(`Expected a BrownianInterval on '${device}' for options.bm but received one on '${bm.device}'`);
  const shape = brownianShape(sde, y0);
  if (bm.shape.length !== shape.length || bm.shape.some((s, i) => s !== shape[i])) {
    throw new RangeError(
      `Expected a BrownianInterval of shape [${shape.join(', ')}] for options.bm (its shape does not match the SDE's noise for this y0) but received [${bm.shape.join(', ')}]`,
    );
  }
  if (method === 'srk' && !bm.levyArea)
    throw new RangeError("Expected a BrownianInterval made with levyArea: true for options.bm (method 'srk' needs the Levy area)");
}

/**
 * Bytes a solve allocates, from the shapes: the outputs, the solver's working states (stages,
 * network activations), the Brownian cache and, for backprop through the solver, what autograd
 * keeps per step. An estimate of the dominant terms, not an exact count.
 */
function solveBytes(
  sde: SDE,
  y0: Tensor,
  times: number[],
  o: { dt: number; adjoint: boolean; method: Method },
  gradients: boolean,
  bm?: BrownianInterval,
): number {
  const [batch, d] = y0.shape as [number, number];
  const spec = sde.spec;
  const noise = numel(brownianShape(sde, y0)) / Math.max(1, batch);
  let width = d + (sde.noiseType === 'general' ? d * noise : d);
  if (spec.type === 'neural') {
    width += spec.drift!.hidden!.reduce((a, b) => a + b, 0);
    if (spec.diffusion!.kind === 'mlp') width += spec.diffusion!.hidden!.reduce((a, b) => a + b, 0);
  }
  const cache = (bm?.cacheSize ?? 45) * noise * (bm?.levyArea || o.method === 'srk' ? 2 : 1);
  const stored = gradients && !o.adjoint ? 4 * fixedSteps(times, o.dt) : gradients ? 8 : 0;
  const item = spec.dtype === 'float64' ? 8 : 4;
  return item * batch * (times.length * d + 8 * width + cache + stored * width);
}

function validateOptions(sde: SDE, options: unknown) {
  const o = expectOptionalObject(options, 'options');
  expectKnownKeys(o, 'options', OPTION_KEYS);
  const method = optional(o.method, sde.sdeType === 'ito' ? 'euler' : 'midpoint', (v) => expectOneOf(v, 'options.method', methodNames()));
  const dt = optional(o.dt, 0.01, (v) => expectPositive(v, 'options.dt'));
  const adaptive = optional(o.adaptive, false, (v) => expectBoolean(v, 'options.adaptive'));
  const rtol = optional(o.rtol, 1e-3, (v) => expectPositive(v, 'options.rtol'));
  const atol = optional(o.atol, 1e-4, (v) => expectPositive(v, 'options.atol'));
  const dtMin = optional(o.dtMin, 1e-5, (v) => expectPositive(v, 'options.dtMin'));
  const adjoint = optional(o.adjoint, false, (v) => expectBoolean(v, 'options.adjoint'));
  // The backward pass's default: the Stratonovich counterpart of the forward method (Euler's is
  // euler_heun: one drift evaluation per step), the exact adjoint for reversible_heun.
  const defaultAdjointMethod: Method =
    method === 'reversible_heun'
      ? 'reversible_heun'
      : method === 'euler'
        ? sde.noiseType === 'additive'
          ? 'euler'
          : 'euler_heun'
        : method === 'heun' || method === 'euler_heun'
          ? method
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
    maxSteps: expectMaxSteps(o.maxSteps, 'options.maxSteps'),
    maxBytes: expectMaxBytes(o.maxBytes, 'options.maxBytes'),
    ...(o.bm !== undefined ? { bm: brownianHandle(o.bm, 'options.bm') } : {}),
  };
  const onProgress = o.onProgress === undefined ? undefined : expectFunction<ProgressCallback>(o.onProgress, 'options.onProgress');
  return { native: out, onProgress, bm: o.bm as BrownianInterval | undefined };
}

/** The checks that need y0, ts and the options together: the Brownian motion, step counts and bytes. */
function checkSolve(sde: SDE, y0: Tensor, times: number[], v: ReturnType<typeof validateOptions>, gradients: boolean): void {
  const o = v.native;
  if (v.bm) checkBrownian(v.bm, sde, y0, o.device, o.method);
  const span = `ts spans ${times.at(-1)! - times[0]!}`;
  if (!o.adaptive) checkSteps(fixedSteps(times, o.dt), o.maxSteps, 'options.maxSteps', `The solve (${span} with dt ${o.dt})`, 'use a larger options.dt');
  if (gradients && o.adjoint && !o.adjointAdaptive) {
    checkSteps(
      fixedSteps(times, o.adjointDt),
      o.maxSteps,
      'options.maxSteps',
      `The adjoint solve (${span} with adjointDt ${o.adjointDt})`,
      'use a larger options.adjointDt',
    );
  }
  checkBytes(
    solveBytes(sde, y0, times, o, gradients, v.bm),
    o.maxBytes,
    'options.maxBytes',
    `This ${gradients ? 'sdeintGradients' : 'sdeint'} call (y0 [${y0.shape.join(', ')}], ${times.length} output times)`,
  );
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
  if (t.data instanceof Float64Array !== wantF64) {
    throw new TypeError(`Expected ${wantF64 ? 'Float64Array' : 'Float32Array'} for y0.data (the SDE's dtype is ${sde.spec.dtype})`);
  }
  return t;
}

/** How a solve ran: the buffered solver, or the general solver with hand-written VJPs ('fused') or autograd. */
export type Route = 'buffered' | 'fused' | 'autograd';

/** What sdeint resolves with: the solution at every output time, [T, ...y0.shape], and the solve's counts. */
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
  const v = validateOptions(sde, options);
  checkSolve(sde, y, times, v, false);
  return awaitNative(callNative(() => native().sdeint(sde.handle, y, times, v.native, v.onProgress)));
}

/** What sdeintGradients resolves with: the solution, and the gradients of sum(ys * gradYs) with respect to y0 and every parameter. */
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
  const v = validateOptions(sde, options);
  checkSolve(sde, y, times, v, true);
  return awaitNative(callNative(() => native().sdeintGradients(sde.handle, y, times, g, v.native, v.onProgress)));
}
