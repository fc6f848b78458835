/**
 * The SDE-BNN's configuration: its types, their defaults, and resolveSdeBnnConfig, which checks
 * a user's config and fills in every default once (the native side requires every field).
 */
import { resolveDevice, type DeviceSpec } from './backend';
import { checkModelBytes } from './bnn-size';
import { checkSteps, expectMaxBytes, expectMaxSteps } from './limits';
import { ACTIVATIONS, activations, METHODS, methodInfo, methodNames, methods, type Activation, type Method, type NoiseType } from './sde';
import {
  describe,
  expectBoolean,
  expectInRange,
  expectInteger,
  expectKnownKeys,
  expectNonNegative,
  expectNumber,
  expectOneOf,
  expectOptionalObject,
  expectPositive,
  expectPositiveInteger,
  optional,
} from './validate';

/** The engine's activations and methods (lib/sde.ts): one list, shared with the SDE API. */
export const BNN_ACTIVATIONS = ACTIVATIONS;
/** The solver methods an SDE-BNN may use (the engine's; an SDE-BNN's weight SDE is Itô). */
export const BNN_METHODS = METHODS;
/** The KL estimators (see BnnEstimator). */
export const BNN_ESTIMATORS = ['ckl', 'fmc', 'stl'] as const;
/** The likelihoods: categorical (classification), gaussian or laplace (regression). */
export const BNN_LIKELIHOODS = ['categorical', 'gaussian', 'laplace'] as const;
/**
 * The models one SdeBnn can be, all made of the same blocks (the same dynamics, stem, pool and
 * head) and trained and called the same way (see BnnModelKind).
 */
export const BNN_MODELS = ['sdebnn', 'odenet', 'resnet', 'mfvi-resnet', 'mfvi-odenet'] as const;

/** An activation of the dynamics, the stem or the hypernetwork. */
export type BnnActivation = Activation;
/** A solver method of the weight and state SDE. */
export type BnnMethod = Method;
/**
 * KL estimators: 'ckl' the integral of 1/2 ||u||^2 dt only; 'fmc' plus the integral of u . dB
 * (full gradients); 'stl' ("sticking the landing") plus u . dB with the hypernetwork's parameters
 * under stop-gradient (gradient still flows through w_t).
 */
export type BnnEstimator = (typeof BNN_ESTIMATORS)[number];
/** One of BNN_LIKELIHOODS. */
export type BnnLikelihood = (typeof BNN_LIKELIHOODS)[number];
/**
 * What each block is:
 * - 'sdebnn': the SDE-BNN, whose weights follow an SDE in depth (sigma, hypernet, estimator);
 * - 'odenet': dh = f(h, t; w) dt with static weights w, solved by config.solver on [0, 1] (no noise, no KL);
 * - 'resnet': K = solver.steps residual layers per block, each with its own weights w_k (the k-th
 *   of K slices of the block's w0): h <- h + f(h, k/K; w_k) / K, the odenet's Euler step with
 *   piecewise-constant weights (so with equal w_k it is the odenet's Euler solve); method 'euler',
 *   fixed steps, backprop only;
 * - 'mfvi-odenet', 'mfvi-resnet': the same with a mean-field Gaussian posterior over each block's
 *   weights, q(w) = N(mu, exp(2 rho)) against the prior N(0, w0.priorStd^2) (config.w0), one draw per
 *   call shared by the batch, the KL in closed form and weighted as the SDE-BNN's (beta / nTrain).
 * The stem and the head are point estimates in every model, as in the SDE-BNN.
 */
export type BnnModelKind = (typeof BNN_MODELS)[number];

/** How each block's SDE is solved and differentiated: method, steps or adaptivity, backprop or the stochastic adjoint, limits. */
export interface SdeBnnSolverConfig {
  /** Default 'euler' (Ito). Stratonovich methods: midpoint, heun, euler_heun, reversible_heun. */
  method?: BnnMethod;
  /** Fixed steps on [0, 1] (the initial step size 1/steps when adaptive). Default 10 (conv) or 20 (mlp). */
  steps?: number;
  adaptive?: boolean;
  rtol?: number;
  atol?: number;
  dtMin?: number;
  /** 'backprop' through the solver (default) or the stochastic 'adjoint' (memory flat in steps). */
  gradient?: 'backprop' | 'adjoint';
  /** Default 'euler' for 'ckl' (additive noise), 'midpoint' for 'fmc'/'stl' (general noise). */
  adjointMethod?: BnnMethod;
  /** Default: steps. */
  adjointSteps?: number;
  adjointAdaptive?: boolean;
  /** The most steps (accepted plus rejected) of one block's solve, forward or backward; more is a LimitError. Default 100,000. */
  maxSteps?: number;
}

/** An SDE-BNN's configuration, every field optional: resolveSdeBnnConfig fills in the defaults (the MNIST conv model). */
export interface SdeBnnConfig {
  /** Which model (default 'sdebnn'): see BnnModelKind. sigma, hypernet and estimator apply to 'sdebnn' only. */
  model?: BnnModelKind;
  /** 'conv' for images (default, MNIST-shaped), 'mlp' for vectors. */
  kind?: 'conv' | 'mlp';
  /** conv: [C, H, W] (default [1, 28, 28]); mlp: [D] (default [1]). */
  inputShape?: number[];
  /**
   * The model reads (x - shift) / scale per input feature (mlp) or channel (conv), one number for all or
   * one per inputShape[0]; predict and trainStep take raw inputs. Default shift 0, scale 1.
   */
  inputNormalization?: { shift?: number | number[]; scale?: number | number[] };
  /** Zero channels (conv) or dimensions (mlp) appended to h_0. Default 0 (conv) or 2 (mlp). */
  aug?: number;
  /** mlp: hidden widths of f_h (default [32, 32]). */
  hidden?: number[];
  /** mlp: activation of f_h (default 'softplus'). */
  activation?: BnnActivation;
  /** mlp: append t to every layer's input (default false). */
  timeInput?: boolean;
  /** mlp: 'last' predicts the last `outputs` coordinates of h_1 (regression default); 'linear' a Linear head (classification default). */
  head?: 'last' | 'linear';
  /** conv: blocks per stage (default [1]); space-to-depth x2 between stages. mlp: the number of consecutive blocks (default 1). */
  blocks?: number | number[];
  /** conv: deterministic 3x3 stride-2 ReLU stem with this many channels, or false (default 16). */
  stem?: number | false;
  /** conv: hidden width of each block's first conv, one number or one per stage (default 32). */
  width?: number | number[];
  /** conv: activation between the two convs (default 'softplus'). */
  convActivation?: BnnActivation;
  /** conv: average-pool kernel before the linear head, or 'global' (default 2). */
  pool?: number | 'global';
  /** Default 'categorical' (conv) or 'gaussian' (mlp). */
  likelihood?: BnnLikelihood;
  /** categorical: number of classes (default 10). */
  classes?: number;
  /** gaussian/laplace: number of outputs (default 1). */
  outputs?: number;
  /** gaussian: noise std; laplace: scale (default 0.1 gaussian, 1 laplace); the initial value when learned. */
  scale?: number;
  learnScale?: boolean;
  /** Diffusion of the weight SDE, shared by prior and posterior. Default 0.05 (conv) or 0.2 (mlp). 'sdebnn' only (null: not applicable). */
  sigma?: number | null;
  /** g_phi([w, t]): hidden widths and activation; the last layer starts at zero. Default [32] tanh (conv), [64] softplus (mlp). 'sdebnn' only. */
  hypernet?: { hidden?: number[]; activation?: BnnActivation } | null;
  /**
   * w_0 (the static weights of the other models): 'fanIn' (PyTorch's layer init per slice; conv
   * default) or 'normal' with std (mlp default, 0.1). posterior 'gaussian' learns q(w_0) = N(mu,
   * exp(2 rho)) against the prior N(0, priorStd^2) (default 0.1), rho starting at rhoInit (default
   * log(1e-3) for 'sdebnn', -4 for the mfvi models, whose posterior is always 'gaussian'; 'odenet'
   * and 'resnet' take 'point' only).
   */
  w0?: { init?: 'normal' | 'fanIn'; std?: number; posterior?: 'point' | 'gaussian'; priorStd?: number; rhoInit?: number };
  /** 'sdebnn' only. */
  estimator?: BnnEstimator | null;
  solver?: SdeBnnSolverConfig;
  /** KL weight: loss = NLL + beta * KL / nTrain. Default 1e-3 (tempered); per-step override in trainStep. */
  beta?: number;
  /** Training set size. Default 60000. */
  nTrain?: number;
  /**
   * Adam: lr (default 1e-3), betas, eps; gradient-norm clip (default 1, 0 off); EMA decay (default 0, off).
   * After Adam step t the EMA is d ema + (1 - d) param with d = min(ema, (1 + t) / (10 + t)).
   */
  optimizer?: { lr?: number; betas?: [number, number]; eps?: number; clip?: number; ema?: number };
  /** Seeds the parameters' initialisation and the model's random streams. Default 0. */
  seed?: number;
  dtype?: 'float32' | 'float64';
  device?: DeviceSpec;
  /**
   * 'fast' (default): fixed-step Euler solves on CPU (backprop; the adjoint with a fixed-step Euler
   * adjoint and 'ckl') run the engine's buffered solver without autograd, everything else as 'fused';
   * 'fused': the general solver with hand-written VJPs, one autograd node per evaluation; 'autograd':
   * plain autograd (the reference). SdeBnn.routes says which route runs.
   */
  kernels?: 'fast' | 'fused' | 'autograd';
  /**
   * Record each training step's forward and backward pass as a CUDA graph and replay it (default
   * false): one launch per step instead of thousands, for models that are launch-bound on a GPU.
   * Needs a CUDA device and fixed steps on one grid (solver.adaptive false, a method other than
   * 'srk'; with the adjoint, adjointAdaptive false and adjointSteps equal to steps). The noise is
   * then drawn on the device: a run is reproducible by its seed on one kind of GPU, but its weight
   * paths differ from those of the same seed without graphs or on the CPU. The first step at each
   * batch size runs eagerly and records the next ones. Predictions are not recorded.
   */
  cudaGraph?: boolean;
  /**
   * The most bytes the model (parameters, gradients, Adam's moments, EMA) and each of its calls
   * (a batch's solves) may allocate, estimated from the shapes before anything is allocated; more
   * is a LimitError naming config.maxBytes. Default 4 GiB.
   */
  maxBytes?: number;
}

/** The configuration with every default filled in. */
export interface ResolvedSdeBnnConfig {
  model: BnnModelKind;
  kind: 'conv' | 'mlp';
  inputShape: number[];
  inputNormalization: { shift: number[]; scale: number[] };
  aug: number;
  hidden: number[];
  activation: BnnActivation;
  timeInput: boolean;
  head: 'last' | 'linear';
  blocks: number[];
  stem: number | false;
  width: number[];
  convActivation: BnnActivation;
  pool: number | 'global';
  likelihood: BnnLikelihood;
  classes: number;
  outputs: number;
  scale: number;
  learnScale: boolean;
  /** null for the models without a weight SDE (every model but 'sdebnn'); so are hypernet and estimator. */
  sigma: number | null;
  hypernet: { hidden: number[]; activation: BnnActivation } | null;
  w0: { init: 'normal' | 'fanIn'; std: number; posterior: 'point' | 'gaussian'; priorStd: number; rhoInit: number };
  estimator: BnnEstimator | null;
  solver: Required<SdeBnnSolverConfig>;
  beta: number;
  nTrain: number;
  optimizer: { lr: number; betas: [number, number]; eps: number; clip: number; ema: number };
  seed: number;
  dtype: 'float32' | 'float64';
  device: string;
  kernels: 'fast' | 'fused' | 'autograd';
  cudaGraph: boolean;
  maxBytes: number;
}

const CONFIG_KEYS = [
  'model',
  'kind',
  'inputShape',
  'inputNormalization',
  'aug',
  'hidden',
  'activation',
  'timeInput',
  'head',
  'blocks',
  'stem',
  'width',
  'convActivation',
  'pool',
  'likelihood',
  'classes',
  'outputs',
  'scale',
  'learnScale',
  'sigma',
  'hypernet',
  'w0',
  'estimator',
  'solver',
  'beta',
  'nTrain',
  'optimizer',
  'seed',
  'dtype',
  'device',
  'kernels',
  'cudaGraph',
  'maxBytes',
] as const;

function positiveIntegers(value: unknown, field: string, minLength = 1): number[] {
  if (!Array.isArray(value)) throw new TypeError(`Expected an array of positive integers for ${field} but received ${describe(value)}`);
  if (value.length < minLength) {
    throw new RangeError(`Expected at least ${minLength} entr${minLength === 1 ? 'y' : 'ies'} in ${field} but received an empty array`);
  }
  return value.map((v, i) => expectPositiveInteger(v, `${field}[${i}]`));
}

/** One number for every feature, or an array of `count` numbers; each checked by `check`. */
function perFeature(value: unknown, field: string, count: number, fallback: number, check: (v: unknown, field: string) => number): number[] {
  if (value === undefined) return new Array<number>(count).fill(fallback);
  if (!Array.isArray(value)) return new Array<number>(count).fill(check(value, field));
  if (value.length !== count) {
    throw new RangeError(`Expected one number or ${count} (inputShape[0]) for ${field} but received an array of ${value.length}`);
  }
  return value.map((v, i) => check(v, `${field}[${i}]`));
}

/** Fills defaults and checks every field of a config, naming the field in each error. */
export function resolveSdeBnnConfig(config: unknown = {}): ResolvedSdeBnnConfig {
  const c = expectOptionalObject(config, 'config');
  expectKnownKeys(c, 'config', CONFIG_KEYS);
  const model = optional(c.model, 'sdebnn' as const, (v) => expectOneOf(v, 'config.model', BNN_MODELS));
  const sdebnn = model === 'sdebnn';
  const mfvi = model === 'mfvi-odenet' || model === 'mfvi-resnet';
  const resnet = model === 'resnet' || model === 'mfvi-resnet';
  if (!sdebnn) {
    // A resolved config holds null here (and resolves again).
    for (const key of ['sigma', 'hypernet', 'estimator'] as const) {
      if (c[key] !== undefined && c[key] !== null) {
        throw new TypeError(
          `Expected no config.${key} with model '${model}' (it has no weight SDE; ${key} applies to model 'sdebnn' only) but received ${describe(c[key])}`,
        );
      }
    }
  }
  const kind = optional(c.kind, 'conv' as const, (v) => expectOneOf(v, 'config.kind', ['conv', 'mlp'] as const));
  const conv = kind === 'conv';

  const inputShape = optional(c.inputShape, conv ? [1, 28, 28] : [1], (v) => positiveIntegers(v, 'config.inputShape'));
  if (inputShape.length !== (conv ? 3 : 1)) {
    throw new RangeError(`Expected ${conv ? '[C, H, W]' : '[D]'} for config.inputShape (kind '${kind}') but received [${inputShape.join(', ')}]`);
  }
  const nc = expectOptionalObject(c.inputNormalization, 'config.inputNormalization');
  expectKnownKeys(nc, 'config.inputNormalization', ['shift', 'scale']);
  const aug = optional(c.aug, conv ? 0 : 2, (v) => expectInteger(v, 'config.aug', 0));
  const hidden = optional(c.hidden, [32, 32], (v) => positiveIntegers(v, 'config.hidden'));
  const activation = optional(c.activation, 'softplus', (v) => expectOneOf(v, 'config.activation', activations()));
  const timeInput = optional(c.timeInput, false, (v) => expectBoolean(v, 'config.timeInput'));
  const likelihood = optional(c.likelihood, (conv ? 'categorical' : 'gaussian') as BnnLikelihood, (v) => expectOneOf(v, 'config.likelihood', BNN_LIKELIHOODS));
  const categorical = likelihood === 'categorical';
  const classes = optional(c.classes, 10, (v) => expectInteger(v, 'config.classes', 2));
  const outputs = optional(c.outputs, 1, (v) => expectPositiveInteger(v, 'config.outputs'));
  // A resolved config (outputs 1) must resolve again, e.g. one read back from a checkpoint.
  if (categorical && c.outputs !== undefined && c.outputs !== 1) {
    throw new TypeError(`Use config.classes, not config.outputs, with likelihood 'categorical'`);
  }
  const head = optional(c.head, categorical ? 'linear' : 'last', (v) => expectOneOf(v, 'config.head', ['last', 'linear'] as const));
  if (conv && c.head !== undefined && c.head !== 'linear') throw new TypeError(`config.head applies to kind 'mlp' only (conv models pool into a linear head)`);
  if (!conv && head === 'last') {
    if (categorical) throw new RangeError(`Expected config.head 'linear' for likelihood 'categorical' but received 'last'`);
    if (outputs > inputShape[0]! + aug) {
      throw new RangeError(
        `Expected config.outputs at most the hidden size ${inputShape[0]! + aug} (inputShape[0] + aug) with head 'last' but received ${outputs}`,
      );
    }
  }

  let blocks: number[];
  if (c.blocks === undefined) blocks = [1];
  else if (typeof c.blocks === 'number') blocks = [expectPositiveInteger(c.blocks, 'config.blocks')];
  else blocks = positiveIntegers(c.blocks, 'config.blocks');
  if (!conv && blocks.length !== 1) throw new RangeError(`Expected one number of blocks for config.blocks (kind 'mlp') but received ${blocks.length} stages`);
  const stem: number | false = c.stem === false ? false : optional<number | false>(c.stem, conv ? 16 : false, (v) => expectPositiveInteger(v, 'config.stem'));
  if (!conv && c.stem !== undefined && c.stem !== false) throw new TypeError(`config.stem applies to kind 'conv' only`);
  let width: number[];
  if (c.width === undefined) width = blocks.map(() => 32);
  else if (typeof c.width === 'number') width = blocks.map(() => expectPositiveInteger(c.width, 'config.width'));
  else {
    width = positiveIntegers(c.width, 'config.width');
    if (width.length !== blocks.length) {
      throw new RangeError(`Expected one width per stage (${blocks.length}) for config.width but received ${width.length}`);
    }
  }
  const convActivation = optional(c.convActivation, 'softplus', (v) => expectOneOf(v, 'config.convActivation', activations()));
  const pool: number | 'global' =
    c.pool === 'global'
      ? 'global'
      : optional(c.pool, 2, (v) => {
          if (typeof v === 'string') throw new RangeError(`Expected a positive integer or 'global' for config.pool but received ${describe(v)}`);
          return expectPositiveInteger(v, 'config.pool');
        });
  if (conv) {
    let [, h, w] = inputShape as [number, number, number];
    if (stem !== false) {
      h = Math.floor((h - 1) / 2) + 1;
      w = Math.floor((w - 1) / 2) + 1;
    }
    for (let s = 1; s < blocks.length; s++) {
      if (h % 2 !== 0 || w % 2 !== 0) {
        throw new RangeError(`Expected even feature maps for the space-to-depth before stage ${s} of config.blocks but the map is ${h}x${w}; use fewer stages`);
      }
      h /= 2;
      w /= 2;
    }
    if (pool !== 'global' && (pool > h || pool > w)) {
      throw new RangeError(`Expected config.pool at most the final feature map ${h}x${w} but received ${pool}`);
    }
  }

  const scale = optional(c.scale, likelihood === 'laplace' ? 1 : 0.1, (v) => expectPositive(v, 'config.scale'));
  const learnScale = optional(c.learnScale, false, (v) => expectBoolean(v, 'config.learnScale'));
  const sigma = sdebnn ? optional(c.sigma, conv ? 0.05 : 0.2, (v) => expectPositive(v, 'config.sigma')) : null;

  let hypernet: ResolvedSdeBnnConfig['hypernet'] = null;
  if (sdebnn) {
    const hn = expectOptionalObject(c.hypernet, 'config.hypernet');
    expectKnownKeys(hn, 'config.hypernet', ['hidden', 'activation']);
    hypernet = {
      hidden: optional(hn.hidden, conv ? [32] : [64], (v) => positiveIntegers(v, 'config.hypernet.hidden')),
      activation: optional(hn.activation, (conv ? 'tanh' : 'softplus') as BnnActivation, (v) => expectOneOf(v, 'config.hypernet.activation', activations())),
    };
  }

  const w0c = expectOptionalObject(c.w0, 'config.w0');
  expectKnownKeys(w0c, 'config.w0', ['init', 'std', 'posterior', 'priorStd', 'rhoInit']);
  const w0 = {
    init: optional(w0c.init, conv ? 'fanIn' : 'normal', (v) => expectOneOf(v, 'config.w0.init', ['normal', 'fanIn'] as const)),
    std: optional(w0c.std, 0.1, (v) => expectPositive(v, 'config.w0.std')),
    posterior: optional(w0c.posterior, mfvi ? 'gaussian' : 'point', (v) => expectOneOf(v, 'config.w0.posterior', ['point', 'gaussian'] as const)),
    priorStd: optional(w0c.priorStd, 0.1, (v) => expectPositive(v, 'config.w0.priorStd')),
    rhoInit: optional(w0c.rhoInit, mfvi ? -4 : Math.log(1e-3), (v) => expectNumber(v, 'config.w0.rhoInit')),
  };
  if (mfvi && w0.posterior !== 'gaussian') {
    throw new RangeError(`Expected config.w0.posterior 'gaussian' with model '${model}' (its posterior is mean-field Gaussian) but received '${w0.posterior}'`);
  }
  if ((model === 'odenet' || model === 'resnet') && w0.posterior !== 'point') {
    throw new RangeError(
      `Expected config.w0.posterior 'point' with model '${model}' (use model 'mfvi-${model}' for a Gaussian posterior) but received '${w0.posterior}'`,
    );
  }

  const estimator = sdebnn ? optional(c.estimator, 'ckl', (v) => expectOneOf(v, 'config.estimator', BNN_ESTIMATORS)) : null;
  const sc = expectOptionalObject(c.solver, 'config.solver');
  expectKnownKeys(sc, 'config.solver', [
    'method',
    'steps',
    'adaptive',
    'rtol',
    'atol',
    'dtMin',
    'gradient',
    'adjointMethod',
    'adjointSteps',
    'adjointAdaptive',
    'maxSteps',
  ]);
  const method = optional(sc.method, 'euler', (v) => expectOneOf(v, 'config.solver.method', methodNames()));
  const steps = optional(sc.steps, conv ? 10 : 20, (v) => expectPositiveInteger(v, 'config.solver.steps'));
  const general = estimator !== null && estimator !== 'ckl';
  const solver: Required<SdeBnnSolverConfig> = {
    method,
    steps,
    adaptive: optional(sc.adaptive, false, (v) => expectBoolean(v, 'config.solver.adaptive')),
    rtol: optional(sc.rtol, 1e-3, (v) => expectPositive(v, 'config.solver.rtol')),
    atol: optional(sc.atol, 1e-4, (v) => expectPositive(v, 'config.solver.atol')),
    dtMin: optional(sc.dtMin, 1e-5, (v) => expectPositive(v, 'config.solver.dtMin')),
    gradient: optional(sc.gradient, 'backprop' as const, (v) => expectOneOf(v, 'config.solver.gradient', ['backprop', 'adjoint'] as const)),
    adjointMethod: optional(sc.adjointMethod, (method === 'reversible_heun' ? 'reversible_heun' : general ? 'midpoint' : 'euler') as BnnMethod, (v) =>
      expectOneOf(v, 'config.solver.adjointMethod', methodNames()),
    ),
    adjointSteps: optional(sc.adjointSteps, steps, (v) => expectPositiveInteger(v, 'config.solver.adjointSteps')),
    adjointAdaptive: optional(sc.adjointAdaptive, false, (v) => expectBoolean(v, 'config.solver.adjointAdaptive')),
    maxSteps: expectMaxSteps(sc.maxSteps, 'config.solver.maxSteps'),
  };
  if (resnet) {
    // Each of the K layers is one Euler step: other methods, adaptivity or an adjoint would not make a residual network.
    if (solver.method !== 'euler')
      throw new RangeError(`Expected config.solver.method 'euler' with model '${model}' (each layer is one Euler step) but received '${solver.method}'`);
    if (solver.adaptive)
      throw new RangeError(`Expected config.solver.adaptive false with model '${model}' (solver.steps is its number of layers) but received true`);
    if (solver.gradient !== 'backprop') {
      throw new RangeError(
        `Expected config.solver.gradient 'backprop' with model '${model}' (a residual network has no adjoint) but received '${solver.gradient}'`,
      );
    }
  }
  if (!solver.adaptive) checkSteps(steps, solver.maxSteps, 'config.solver.maxSteps', 'A block solve with config.solver.steps', 'use fewer steps');
  if (solver.gradient === 'adjoint' && !solver.adjointAdaptive) {
    checkSteps(solver.adjointSteps, solver.maxSteps, 'config.solver.maxSteps', 'A backward solve with config.solver.adjointSteps', 'use fewer adjointSteps');
  }
  // The engine's method table decides: a block's noise is additive (ckl) or general (fmc/stl).
  const noise: NoiseType = general ? 'general' : 'additive';
  const solving = (m: Method) => methodInfo(m).noiseTypes.includes(noise);
  const quoted = (names: Method[]) => names.map((m) => `'${m}'`).join(', ');
  if (!solving(method)) {
    throw new RangeError(
      `Expected config.solver.method ${quoted(methodNames().filter(solving))} for estimator '${estimator ?? 'ckl'}' ` +
        `(its ${general ? 'u . dB term makes the noise general' : 'noise is additive'}) but received '${method}'`,
    );
  }
  if (solver.adaptive && !methodInfo(method).adaptive) {
    throw new RangeError(`Expected config.solver.adaptive false with method '${method}' (fixed steps only) but received true`);
  }
  if (solver.gradient === 'adjoint') {
    const am = solver.adjointMethod;
    const requires = methodInfo(am).adjoint.requiresMethod;
    if (requires !== null && requires !== method) {
      throw new RangeError(`Expected config.solver.method '${requires}' with adjointMethod '${am}' but received '${method}'`);
    }
    const adjoints = methods()
      .filter((m) => m.adjoint.noiseTypes.includes(noise) && (m.adjoint.requiresMethod === null || m.adjoint.requiresMethod === method))
      .map((m) => m.name);
    if (!adjoints.includes(am)) {
      throw new RangeError(`Expected config.solver.adjointMethod ${quoted(adjoints)} for estimator '${estimator ?? 'ckl'}' but received '${am}'`);
    }
  }

  const beta = optional(c.beta, 1e-3, (v) => expectNonNegative(v, 'config.beta'));
  const nTrain = optional(c.nTrain, 60000, (v) => expectPositive(v, 'config.nTrain'));
  const oc = expectOptionalObject(c.optimizer, 'config.optimizer');
  expectKnownKeys(oc, 'config.optimizer', ['lr', 'betas', 'eps', 'clip', 'ema']);
  let betas: [number, number] = [0.9, 0.999];
  if (oc.betas !== undefined) {
    if (!Array.isArray(oc.betas) || oc.betas.length !== 2) {
      throw new TypeError(`Expected two numbers for config.optimizer.betas but received ${describe(oc.betas)}`);
    }
    betas = [0, 1].map((i) => {
      const b = expectInRange((oc.betas as unknown[])[i], `config.optimizer.betas[${i}]`, 0, 1);
      if (b === 1) throw new RangeError(`Expected a number in [0, 1) for config.optimizer.betas[${i}] but received 1`);
      return b;
    }) as [number, number];
  }
  const ema = optional(oc.ema, 0, (v) => expectInRange(v, 'config.optimizer.ema', 0, 1));
  if (ema === 1) throw new RangeError('Expected a number in [0, 1) for config.optimizer.ema but received 1');
  const optimizer = {
    lr: optional(oc.lr, 1e-3, (v) => expectPositive(v, 'config.optimizer.lr')),
    betas,
    eps: optional(oc.eps, 1e-8, (v) => expectPositive(v, 'config.optimizer.eps')),
    clip: optional(oc.clip, 1, (v) => expectNonNegative(v, 'config.optimizer.clip')),
    ema,
  };
  const seed = optional(c.seed, 0, (v) => expectInteger(v, 'config.seed', 0, Number.MAX_SAFE_INTEGER));
  const dtype = optional(c.dtype, 'float32' as const, (v) => expectOneOf(v, 'config.dtype', ['float32', 'float64'] as const));
  const device = resolveDevice(c.device ?? 'cpu', 'config.device');
  const kernels = optional(c.kernels, 'fast' as const, (v) => expectOneOf(v, 'config.kernels', ['fast', 'fused', 'autograd'] as const));
  const cudaGraph = optional(c.cudaGraph, false, (v) => expectBoolean(v, 'config.cudaGraph'));
  if (cudaGraph) {
    const oneGrid =
      !solver.adaptive && solver.method !== 'srk' && (solver.gradient !== 'adjoint' || (!solver.adjointAdaptive && solver.adjointSteps === solver.steps));
    if (!oneGrid) {
      throw new RangeError(
        'Expected fixed steps on one grid with config.cudaGraph (solver.adaptive false, a method other than srk, and for the adjoint ' +
          `adjointAdaptive false and adjointSteps equal to steps) but received method '${solver.method}', steps ${solver.steps}, adaptive ` +
          `${solver.adaptive}, gradient '${solver.gradient}', adjointSteps ${solver.adjointSteps}, adjointAdaptive ${solver.adjointAdaptive}`,
      );
    }
    if (!device.startsWith('cuda'))
      throw new RangeError(`Expected config.device 'cuda' or 'cuda:N' with config.cudaGraph (it records CUDA work) but received '${device}'`);
  }
  const maxBytes = expectMaxBytes(c.maxBytes, 'config.maxBytes');
  const rest = {
    aug,
    hidden,
    activation,
    timeInput,
    head,
    blocks,
    stem,
    width,
    convActivation,
    pool,
    likelihood,
    classes,
    outputs,
    scale,
    learnScale,
    sigma,
    hypernet,
    w0,
    estimator,
    solver,
    beta,
    nTrain,
    optimizer,
    seed,
    dtype,
    device,
    kernels,
    cudaGraph,
    maxBytes,
  };
  // Before anything sized by the shapes is built (here: the per-feature normalisation arrays).
  checkModelBytes({ model, kind, inputShape, ...rest });
  const inputNormalization = {
    shift: perFeature(nc.shift, 'config.inputNormalization.shift', inputShape[0]!, 0, expectNumber),
    scale: perFeature(nc.scale, 'config.inputNormalization.scale', inputShape[0]!, 1, expectPositive),
  };
  return { model, kind, inputShape, inputNormalization, ...rest };
}

/**
 * A saved config moved to `device` (undefined: where it was): cudaGraph, a training speed option of
 * CUDA, is kept on a CUDA device only, so that a model trained with it loads on the CPU.
 */
export function configOnDevice(config: SdeBnnConfig, device: DeviceSpec | undefined): SdeBnnConfig {
  if (device === undefined) return config;
  const resolved = resolveDevice(device, 'options.device');
  return { ...config, device: resolved as DeviceSpec, cudaGraph: resolved.startsWith('cuda') ? config.cudaGraph : false };
}

/** The flat form the addon reads (native/addon/bnn.cc read_config). */
export function nativeConfig(r: ResolvedSdeBnnConfig): Record<string, unknown> {
  const conv = r.kind === 'conv';
  // The models without a weight SDE take no sigma, hypernetwork or estimator: the addon reads every
  // field, and native/bnn ignores these three for them (a static block's noise is zero and additive).
  return {
    model: r.model,
    kind: r.kind,
    inputShape: r.inputShape,
    aug: r.aug,
    hidden: r.hidden,
    activation: r.activation,
    timeInput: r.timeInput,
    outputLast: r.head === 'last',
    mlpBlocks: conv ? 1 : r.blocks[0],
    stemChannels: conv && r.stem !== false ? r.stem : 0,
    blocks: r.blocks,
    widths: r.width,
    convActivation: r.convActivation,
    pool: r.pool === 'global' ? 0 : r.pool,
    outputs: r.likelihood === 'categorical' ? r.classes : r.outputs,
    likelihood: r.likelihood,
    scale: r.scale,
    learnScale: r.learnScale,
    sigma: r.sigma ?? 0,
    hyperHidden: r.hypernet?.hidden ?? [],
    hyperActivation: r.hypernet?.activation ?? 'tanh',
    w0Init: r.w0.init,
    w0Std: r.w0.std,
    w0Gaussian: r.w0.posterior === 'gaussian',
    w0PriorStd: r.w0.priorStd,
    w0RhoInit: r.w0.rhoInit,
    estimator: r.estimator ?? 'ckl',
    method: r.solver.method,
    steps: r.solver.steps,
    adaptive: r.solver.adaptive,
    rtol: r.solver.rtol,
    atol: r.solver.atol,
    dtMin: r.solver.dtMin,
    gradient: r.solver.gradient,
    adjointMethod: r.solver.adjointMethod,
    adjointSteps: r.solver.adjointSteps,
    adjointAdaptive: r.solver.adjointAdaptive,
    maxSteps: r.solver.maxSteps,
    beta: r.beta,
    nTrain: r.nTrain,
    lr: r.optimizer.lr,
    adamBeta1: r.optimizer.betas[0],
    adamBeta2: r.optimizer.betas[1],
    adamEps: r.optimizer.eps,
    clip: r.optimizer.clip,
    ema: r.optimizer.ema,
    seed: r.seed,
    kernels: r.kernels,
    cudaGraph: r.cudaGraph,
    dtype: r.dtype,
    device: r.device,
  };
}
