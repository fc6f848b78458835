/**
 * SDE-BNNs (Xu, Chen, Li, Duvenaud, AISTATS 2022): infinitely deep Bayesian neural networks
 * whose weights follow an SDE in depth. The model lives natively; a training step (Brownian
 * path, augmented solve, ELBO, gradients by backprop or the stochastic adjoint, clipping, Adam,
 * EMA) is one native call that runs off the event loop. Every argument is checked here first.
 */
import type { DeviceSpec } from './backend';
import { checkCallBytes, modelSize, type ModelSize } from './bnn-size';
import { awaitNative, callNative } from './errors';
import { readModelFile, writeModelFile } from './model-file';
import { native, type NativeSdeBnn, type NativeTargets } from './native';
import { expectTensor, numel, type Tensor } from './tensor';
import {
  describe,
  expectBoolean,
  expectInteger,
  expectKnownKeys,
  expectNonNegative,
  expectNumber,
  expectObject,
  expectOneOf,
  expectOptionalObject,
  expectPositiveInteger,
  expectString,
  optional,
} from './validate';

import { configOnDevice, nativeConfig, resolveSdeBnnConfig, type ResolvedSdeBnnConfig, type SdeBnnConfig } from './bnn-config';

/**
 * How an SdeBnn computes: 'direct' (every block on the buffered solver and the head, likelihood
 * and KL differentiated by hand: no autograd graph), 'buffered' (the blocks on the buffered
 * solver, the rest by autograd), 'fused' (the general solver with hand-written VJPs), 'autograd'.
 */
export type BnnRoute = 'direct' | 'buffered' | 'fused' | 'autograd';

/** Training targets: class labels (categorical) or N x outputs values (regression). */
export type BnnTargets = Uint8Array | Int32Array | Float32Array | Float64Array | readonly number[];
/** A batch of raw inputs, N x inputShape: a typed array or a tensor (the model normalises). */
export type BnnInputs = Float32Array | Float64Array | Tensor;

/** Options of one training step: learning rate, KL weight and the Brownian stream. */
export interface BnnTrainStepOptions {
  /** Learning rate for this step (default config.optimizer.lr); 0, where a cosine schedule to lrMin 0 ends, leaves the parameters as they are. */
  lr?: number;
  /** KL weight for this step, e.g. a warm-up schedule (default config.beta). */
  beta?: number;
}

/** One training step's loss, its NLL and KL terms, and its counts. */
export interface BnnTrainStepResult {
  /** NLL + beta * KL / nTrain. */
  loss: number;
  /** Mean negative log-likelihood over the batch. */
  nll: number;
  /** Path KL summed over blocks (plus the q(w_0) KL). */
  kl: number;
  /** The q(w_0) part of kl (0 for a point w_0). */
  klW0: number;
  /** Batch accuracy (categorical), else null. */
  accuracy: number | null;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  /** Drift/diffusion evaluations of the forward solves, and of the adjoint's backward solves (0 under backprop). */
  nfe: number;
  nfeBackward: number;
  /** Accepted solver steps (all blocks). */
  steps: number;
  /** The time the forward solves reached (1 when integration covered [0, 1]). */
  tEnd: number;
}

/** Options of predict: Monte Carlo weight paths, seed, EMA weights, per-path results, the deterministic view. */
export interface BnnPredictOptions {
  /** Monte Carlo weight paths (default 1). */
  samples?: number;
  /** Use the EMA parameters (needs config.optimizer.ema > 0). */
  ema?: boolean;
  /** A private Brownian stream; without it the model's evaluation stream advances. */
  seed?: number;
  /** Classification: also return each path's class probabilities, [samples, batch, classes] (default false). */
  returnSamples?: boolean;
  /**
   * The same network without weight noise (default false): each block's weights follow the
   * posterior drift's ODE path dw = (g_phi(w, t) - w) dt from the mean of q(w_0), solved by the
   * configured solver on a zero Brownian path. One path: samples must be 1.
   */
  deterministic?: boolean;
}

/** A classifier's prediction: mean class probabilities over the paths, [B, C], and with returnSamples every path's, [S, B, C]. */
export interface ClassificationPrediction {
  kind: 'categorical';
  /** Class probabilities averaged over the samples, [batch, classes] row-major. */
  probs: Float32Array | Float64Array;
  shape: [number, number];
  /** With returnSamples: each path's class probabilities, [samples, batch, classes] row-major. */
  samples?: Float32Array | Float64Array;
  samplesShape?: [number, number, number];
}

/** A regressor's prediction: the mean and std over the paths, every path's outputs, and the noise scale. */
export interface RegressionPrediction {
  kind: 'regression';
  /** Per-sample outputs, [samples, batch, outputs] row-major. */
  samples: Float32Array | Float64Array;
  shape: [number, number, number];
  /** Mean and std over the samples (the weight uncertainty), [batch, outputs]. */
  mean: Float64Array;
  std: Float64Array;
  /** The likelihood's noise std (gaussian) or scale (laplace), for predictive intervals. */
  noiseScale: number;
}

/** Options of gradients: the Brownian stream and the KL weight. */
export interface BnnGradientsOptions {
  beta?: number;
  /** A private Brownian stream (default: the training stream advances). */
  seed?: number;
  /** Differentiate the loss (default) or the KL alone. */
  objective?: 'loss' | 'kl';
}

/** The loss, its terms and the gradient of every parameter, without an optimizer step. */
export interface BnnGradientsResult {
  loss: number;
  nll: number;
  kl: number;
  grads: Record<string, Tensor>;
}

/** One block's solve on a batch: where it ended, its counts and the weights at t0 and t1. */
export interface BnnBlockDiagnostics {
  /** The time the block's solve reached. */
  tEnd: number;
  steps: number;
  nfe: number;
  w0: Tensor;
  w1: Tensor;
  /** The dt part of the path KL and the dB part (fmc/stl). */
  kl: number;
  klDb: number;
}

function expectSeed(value: unknown, field: string): number {
  return expectInteger(value, field, 0, Number.MAX_SAFE_INTEGER);
}

/**
 * An SDE-BNN classifier or regressor. Construct with a config (defaults: the MNIST model of
 * the design notes: stem, one conv block of width 32, sigma 0.05, hypernetwork [32] tanh),
 * train with `trainStep`, predict with `predict`, checkpoint with `getState`/`setState`, and
 * `dispose` when done. One asynchronous call at a time per model (others throw ERR_BUSY).
 * config.model makes it one of the baselines made of the same blocks (an ODE-net, a ResNet, or
 * either with a mean-field Gaussian posterior; see BnnModelKind), with the same API; save and load
 * keep the model.
 */
export class SdeBnn {
  readonly config: Readonly<ResolvedSdeBnnConfig>;
  /** Weight dimension of each block (a resnet's: of each layer). */
  readonly wDims: readonly number[];
  /** Total number of learnable scalars (w_0 and its rho, hypernetworks, stem, head, likelihood scale). */
  readonly numParameters: number;
  readonly parameterNames: readonly string[];
  /** The routes that run (from config.kernels, the solver and the model): for training steps and gradients, and for predictions. */
  readonly routes: Readonly<{ train: BnnRoute; predict: BnnRoute }>;
  private handle: NativeSdeBnn;
  private readonly exampleSize: number;
  private readonly size: ModelSize;
  private isDisposed = false;

  constructor(config: SdeBnnConfig = {}) {
    this.config = Object.freeze(resolveSdeBnnConfig(config));
    this.size = modelSize(this.config); // its bytes were checked by resolveSdeBnnConfig
    const Native = native().SdeBnn;
    this.handle = callNative(() => new Native(nativeConfig(this.config)));
    const info = callNative(() => this.handle.info());
    this.wDims = Object.freeze([...info.wDims]);
    this.numParameters = info.numParameters;
    this.parameterNames = Object.freeze([...info.parameterNames]);
    this.routes = Object.freeze({ ...info.routes });
    this.exampleSize = numel(this.config.inputShape);
  }

  /** Weight-SDE dimension (summed over blocks). */
  get wDim(): number {
    return this.wDims.reduce((a, b) => a + b, 0);
  }

  get disposed(): boolean {
    return this.isDisposed;
  }

  /** Checks inputs (values or a tensor) and the bytes of a call on them (`training`: with gradients), before any copy. */
  private inputTensor(inputs: unknown, field: string, training = false): Tensor {
    let t: Tensor;
    if (inputs instanceof Float32Array || inputs instanceof Float64Array) {
      if (inputs.length === 0 || inputs.length % this.exampleSize !== 0) {
        throw new RangeError(
          `Expected ${field} to hold a positive multiple of ${this.exampleSize} values (inputShape [${this.config.inputShape.join(', ')}]) but received ${describe(inputs)}`,
        );
      }
      t = { data: inputs, shape: [inputs.length / this.exampleSize, ...this.config.inputShape] };
    } else {
      if (ArrayBuffer.isView(inputs)) {
        throw new TypeError(`Expected a Float32Array, a Float64Array or a tensor {data, shape} for ${field} but received ${describe(inputs)}`);
      }
      t = expectTensor(inputs, field);
      const expected = this.config.inputShape;
      if (t.shape.length !== expected.length + 1 || t.shape[0]! < 1 || expected.some((s, i) => t.shape[i + 1] !== s)) {
        throw new RangeError(`Expected ${field}.shape [batch, ${expected.join(', ')}] but received [${t.shape.join(', ')}]`);
      }
    }
    checkCallBytes(this.config, this.size, { batch: t.shape[0]!, training }, `An SdeBnn ${training ? 'training ' : ''}call on a batch of ${t.shape[0]}`);
    return this.normalized(t);
  }

  /** config.inputNormalization applied to a copy; the inputs themselves when it is the identity. */
  private normalized(t: Tensor): Tensor {
    const { shift, scale } = this.config.inputNormalization;
    if (shift.every((v) => v === 0) && scale.every((v) => v === 1)) return t;
    // Feature (mlp) or channel (conv) c of element i: inputShape[0] blocks of `inner` values per example.
    const inner = this.exampleSize / shift.length;
    const n = numel(t.shape);
    const data = t.data instanceof Float64Array ? new Float64Array(n) : new Float32Array(n);
    for (let i = 0; i < n; i++) {
      let at = i;
      if (t.strides) {
        at = 0;
        for (let d = t.shape.length - 1, rest = i; d >= 0; d--) {
          at += (rest % t.shape[d]!) * t.strides[d]!;
          rest = Math.floor(rest / t.shape[d]!);
        }
      }
      const c = Math.floor(i / inner) % shift.length;
      data[i] = (t.data[at]! - shift[c]!) / scale[c]!;
    }
    return { data, shape: t.shape };
  }

  private targetTensor(targets: unknown, batch: number, field: string): NativeTargets {
    const categorical = this.config.likelihood === 'categorical';
    const per = categorical ? 1 : this.config.outputs;
    let data: Uint8Array | Int32Array | Float32Array | Float64Array;
    if (Array.isArray(targets)) {
      targets.forEach((v, i) => (categorical ? expectInteger(v, `${field}[${i}]`) : expectNumber(v, `${field}[${i}]`)));
      data = categorical ? Int32Array.from(targets as number[]) : Float32Array.from(targets as number[]);
    } else if (
      targets instanceof Float32Array ||
      targets instanceof Float64Array ||
      (categorical && (targets instanceof Uint8Array || targets instanceof Int32Array))
    ) {
      data = targets;
    } else {
      throw new TypeError(
        `Expected ${categorical ? 'Uint8Array, Int32Array, Float32Array, Float64Array or number[] of class labels' : 'Float32Array, Float64Array or number[]'} for ${field} but received ${describe(targets)}`,
      );
    }
    if (data.length !== batch * per) {
      throw new RangeError(
        `Expected ${field} to hold ${batch * per} ${categorical ? 'labels' : 'values'} (batch ${batch}${per > 1 ? ` x ${per} outputs` : ''}) but received ${data.length}`,
      );
    }
    if (categorical) {
      for (let i = 0; i < data.length; i++) {
        const v = data[i]!;
        if (!Number.isInteger(v) || v < 0 || v >= this.config.classes) {
          throw new RangeError(`Expected an integer in [0, ${this.config.classes - 1}] for ${field}[${i}] but received ${v}`);
        }
      }
    } else {
      for (let i = 0; i < data.length; i++) {
        if (!Number.isFinite(data[i]!)) throw new RangeError(`Expected a finite number for ${field}[${i}] but received ${data[i]}`);
      }
    }
    return { data, shape: categorical ? [batch] : [batch, per] };
  }

  /**
   * One training step on a minibatch: a fresh Brownian path per block, the augmented solve,
   * loss = NLL + beta * KL / nTrain, gradients (backprop or adjoint), clipping, Adam, EMA.
   * `inputs` hold batch x prod(inputShape) values (row-major); `targets` class labels or values.
   */
  trainStep(inputs: BnnInputs, targets: BnnTargets, options: BnnTrainStepOptions = {}): Promise<BnnTrainStepResult> {
    const x = this.inputTensor(inputs, 'inputs', true);
    const y = this.targetTensor(targets, x.shape[0]!, 'targets');
    const o = expectOptionalObject(options, 'options');
    expectKnownKeys(o, 'options', ['lr', 'beta']);
    const lr = optional(o.lr, this.config.optimizer.lr, (v) => expectNonNegative(v, 'options.lr'));
    const beta = optional(o.beta, this.config.beta, (v) => expectNonNegative(v, 'options.beta'));
    const promise = callNative(() => this.handle.trainStep(x, y, { lr, beta }));
    return awaitNative(promise);
  }

  /** Gradients of the loss (or the KL alone) at the current parameters, without an update. */
  gradients(inputs: BnnInputs, targets: BnnTargets, options: BnnGradientsOptions = {}): Promise<BnnGradientsResult> {
    const x = this.inputTensor(inputs, 'inputs', true);
    const y = this.targetTensor(targets, x.shape[0]!, 'targets');
    const o = expectOptionalObject(options, 'options');
    expectKnownKeys(o, 'options', ['beta', 'seed', 'objective']);
    const beta = optional(o.beta, this.config.beta, (v) => expectNonNegative(v, 'options.beta'));
    const objective = optional(o.objective, 'loss' as const, (v) => expectOneOf(v, 'options.objective', ['loss', 'kl'] as const));
    const seed = o.seed === undefined ? undefined : expectSeed(o.seed, 'options.seed');
    return awaitNative(callNative(() => this.handle.gradients(x, y, { beta, objective, ...(seed === undefined ? {} : { seed }) })));
  }

  /**
   * Monte Carlo prediction over `samples` weight paths: averaged class probabilities (and, with
   * returnSamples, each path's), or the per-sample outputs with their mean and std (regression).
   * For a whole dataset in batches, see predictDataset.
   */
  predict(inputs: BnnInputs, options: BnnPredictOptions = {}): Promise<ClassificationPrediction | RegressionPrediction> {
    const x = this.inputTensor(inputs, 'inputs');
    const o = expectOptionalObject(options, 'options');
    expectKnownKeys(o, 'options', ['samples', 'ema', 'seed', 'returnSamples', 'deterministic']);
    const samples = optional(o.samples, 1, (v) => expectPositiveInteger(v, 'options.samples'));
    const ema = optional(o.ema, false, (v) => expectBoolean(v, 'options.ema'));
    if (ema && this.config.optimizer.ema === 0) {
      throw new RangeError('Expected config.optimizer.ema > 0 for options.ema but the model keeps no EMA');
    }
    const seed = o.seed === undefined ? undefined : expectSeed(o.seed, 'options.seed');
    const keepSamples = optional(o.returnSamples, false, (v) => expectBoolean(v, 'options.returnSamples'));
    const deterministic = optional(o.deterministic, false, (v) => expectBoolean(v, 'options.deterministic'));
    if (deterministic && samples !== 1) {
      throw new RangeError(`Expected options.samples 1 (or none) with options.deterministic, whose one path has no noise, but received ${samples}`);
    }
    const promise = callNative(() => this.handle.predict(x, { samples, ema, keepSamples, deterministic, ...(seed === undefined ? {} : { seed }) }));
    return awaitNative(promise).then(({ mean: probs, samples: out }) => {
      if (this.config.likelihood === 'categorical') {
        const prediction: ClassificationPrediction = { kind: 'categorical', probs: probs!.data, shape: [probs!.shape[0]!, probs!.shape[1]!] };
        if (out) return { ...prediction, samples: out.data, samplesShape: out.shape as [number, number, number] };
        return prediction;
      }
      if (!out) throw new Error('expected per-sample outputs from the native predict');
      const [s, b, k] = out.shape as [number, number, number];
      const mean = new Float64Array(b * k);
      const std = new Float64Array(b * k);
      for (let j = 0; j < b * k; j++) {
        let m = 0;
        for (let i = 0; i < s; i++) m += out.data[i * b * k + j]!;
        m /= s;
        let v = 0;
        for (let i = 0; i < s; i++) v += (out.data[i * b * k + j]! - m) ** 2;
        mean[j] = m;
        std[j] = s > 1 ? Math.sqrt(v / (s - 1)) : 0;
      }
      const noiseScale = this.config.learnScale && !this.isDisposed ? callNative(() => this.handle.info()).scale : this.config.scale;
      return { kind: 'regression', samples: out.data, shape: [s, b, k], mean, std, noiseScale };
    });
  }

  /** Per-block solve statistics and weights at t = 0 and t = 1 for one weight path (no update). */
  diagnose(inputs: BnnInputs, options: { seed?: number } = {}): Promise<BnnBlockDiagnostics[]> {
    const x = this.inputTensor(inputs, 'inputs');
    const o = expectOptionalObject(options, 'options');
    expectKnownKeys(o, 'options', ['seed']);
    const seed = o.seed === undefined ? undefined : expectSeed(o.seed, 'options.seed');
    return awaitNative(callNative(() => this.handle.diagnose(x, seed === undefined ? {} : { seed })));
  }

  /**
   * Everything a checkpoint needs, by name: parameters, Adam moments ('adam.exp_avg.*',
   * 'adam.exp_avg_sq.*') and step ('adam.step'), EMA ('ema.*') and the random streams
   * ('rng.train', 'rng.eval', as bytes). setState of this resumes to identical numbers.
   */
  getState(): Record<string, Tensor> {
    return callNative(() => this.handle.getState());
  }

  /** Restores tensors by name; shapes are checked before anything is written. strict (default): all must be present. */
  setState(state: Record<string, Tensor>, options: { strict?: boolean } = {}): void {
    const s = expectObject(state, 'state');
    const o = expectOptionalObject(options, 'options');
    expectKnownKeys(o, 'options', ['strict']);
    const strict = optional(o.strict, true, (v) => expectBoolean(v, 'options.strict'));
    const checked: Record<string, Tensor> = {};
    for (const [name, t] of Object.entries(s)) checked[name] = expectTensor(t, `state['${name}']`);
    callNative(() => this.handle.setState(checked, strict));
  }

  /** @internal The native model, for lib/distributed.ts (which sets its gradient hook). */
  nativeHandle(): NativeSdeBnn {
    return this.handle;
  }

  /**
   * Writes the config and getState() (parameters, Adam state, EMA, random streams) to `file`
   * atomically in the safetensors layout (lib/model-file.ts); SdeBnn.load gives the model back,
   * ready to predict or to train on. `metadata`: further string entries, e.g. a training position.
   */
  save(file: string, options: { metadata?: Record<string, string> } = {}): void {
    const o = expectOptionalObject(options, 'options');
    expectKnownKeys(o, 'options', ['metadata']);
    const metadata = o.metadata === undefined ? {} : (expectObject(o.metadata, 'options.metadata') as Record<string, string>);
    writeModelFile(expectString(file, 'file'), this.config, this.getState(), metadata);
  }

  /**
   * The model saved in `file` (by save, or a training checkpoint), its state restored: ready to
   * predict. `device` overrides the saved device (a device that is not there is an error, never a
   * silent CPU run).
   */
  static load(file: string, options: { device?: DeviceSpec } = {}): SdeBnn {
    const o = expectOptionalObject(options, 'options');
    expectKnownKeys(o, 'options', ['device']);
    const saved = readModelFile(expectString(file, 'file'));
    const model = new SdeBnn(configOnDevice(saved.config, o.device as DeviceSpec | undefined));
    try {
      model.setState(saved.state);
    } catch (error) {
      model.dispose();
      throw error;
    }
    return model;
  }

  /** Frees the native model; later calls throw an error with code ERR_DISPOSED. */
  dispose(): void {
    callNative(() => this.handle.dispose());
    this.isDisposed = true;
  }
}
