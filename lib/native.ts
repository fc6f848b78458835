/**
 * The one loader of the addon, and the typed declaration of its surface. Everything else in
 * lib/ reaches native code through `native()`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { BnnRoute, BnnTrainStepResult } from './bnn';
import type { GradientsResult, SdeintResult } from './sde';
import type { Tensor } from './tensor';

export interface NativeBackend {
  torchVersion: string;
  cudaAvailable: boolean;
  cudaDeviceCount: number;
  threads: number;
  interopThreads: number;
}

export type ProgressCallback = (event: Record<string, number | string>) => void;

/** Class labels or regression targets crossing to the addon (labels may be bytes or int32). */
export interface NativeTargets {
  data: Float32Array | Float64Array | Int32Array | Uint8Array;
  shape: number[];
}

/** A native SDE-BNN (native/addon/bnn.cc); one asynchronous call at a time. */
export interface NativeSdeBnn {
  info(): {
    wDims: number[];
    numParameters: number;
    parameterNames: string[];
    device: string;
    scale: number;
    routes: { train: BnnRoute; predict: BnnRoute };
  };
  trainStep(inputs: Tensor, targets: NativeTargets, options: { lr: number; beta: number }): Promise<BnnTrainStepResult>;
  gradients(
    inputs: Tensor,
    targets: NativeTargets,
    options: { beta: number; objective: 'loss' | 'kl'; seed?: number },
  ): Promise<{ loss: number; nll: number; kl: number; grads: Record<string, Tensor> }>;
  predict(
    inputs: Tensor,
    options: { samples: number; ema: boolean; seed?: number; keepSamples: boolean; deterministic: boolean },
  ): Promise<{ mean?: Tensor; samples?: Tensor }>;
  diagnose(
    inputs: Tensor,
    options: { seed?: number },
  ): Promise<{ tEnd: number; steps: number; nfe: number; w0: Tensor; w1: Tensor; kl: number; klDb: number }[]>;
  getState(): Record<string, Tensor>;
  setState(state: Record<string, Tensor>, strict: boolean): void;
  dispose(): void;
}

export interface NativeBinding {
  backend(): NativeBackend;
  setNumThreads(n: number): void;
  resolveDevice(spec: string): string;
  setCudaMathMode(mode: { tf32Matmul: boolean; tf32Conv: boolean; autocastBf16: boolean }): void;
  cudaMathMode(): { tf32Matmul: boolean; tf32Conv: boolean; autocastBf16: boolean };
  cudaMemoryStats(device: string, resetPeak: boolean): { allocatedBytes: number; peakAllocatedBytes: number; reservedBytes: number };
  roundTrip(tensor: Tensor, options: { transpose?: boolean; scale?: number; device?: string }): Tensor;
  /** Test hook: one of the engine's elementwise kernels applied to a tensor. */
  elementwise(tensor: Tensor, name: 'tanh'): Tensor;
  /** Test hook: an activation's value and slope by the buffered route's loops ('fast': sde::activate_cpu), the conv kernels, or LibTorch ('aten'). */
  elementwise(tensor: Tensor, name: `${'fast' | 'conv' | 'aten'}.${'tanh' | 'softplus' | 'relu' | 'sigmoid'}`): { value: Tensor; slope: Tensor };
  selfTest(
    options: { device: string; size: number; iterations: number },
    onProgress?: ProgressCallback,
  ): Promise<{
    device: string;
    iterations: number;
    seconds: number;
    gflops: number;
    maxAbsError: number;
    threads: number;
  }>;
  raise(kind: string): never;
  /** The engine's method-support table (native/sde/solvers.cpp). */
  methods(): unknown[];
  /** The engine's activation functions (native/sde/activations.h). */
  activations(): string[];
  NativeSDE: new (spec: object) => unknown;
  sdeint(sde: unknown, y0: Tensor, ts: number[], options: object, onProgress?: ProgressCallback): Promise<SdeintResult>;
  sdeintGradients(sde: unknown, y0: Tensor, ts: number[], gradYs: Tensor, options: object, onProgress?: ProgressCallback): Promise<GradientsResult>;
  BrownianInterval: new (options: {
    t0: number;
    t1: number;
    shape: number[];
    seed: number;
    dtype: 'float32' | 'float64';
    device: string;
    dtHint: number;
    levyArea: boolean;
    cacheSize: number;
  }) => {
    increment(s: number, t: number): Tensor;
    incrementAndLevyArea(s: number, t: number): { W: Tensor; H: Tensor };
    /** Fills caller-made typed arrays of the instance's dtype and size (faster than a native allocation). */
    incrementInto(s: number, t: number, W: Float32Array | Float64Array): void;
    incrementAndLevyAreaInto(s: number, t: number, W: Float32Array | Float64Array, H: Float32Array | Float64Array): void;
    cacheEntries(): number;
    stats(): { cacheEntries: number; cacheSize: number; nodes: number; splitsComputed: number };
    dispose(): void;
  };
  SdeBnn: new (config: Record<string, unknown>) => NativeSdeBnn;
  /** native/addon/distributed.cc */
  distributedAvailability(): { gloo: boolean; nccl: boolean; glooMissing: string; ncclMissing: string };
  trainStreamState(seed: number): Tensor;
  ProcessGroup: new () => {
    init(options: {
      backend: 'gloo' | 'nccl';
      rank: number;
      worldSize: number;
      localRank: number;
      masterAddr: string;
      masterPort: number;
      timeoutMs: number;
      interface: string;
    }): Promise<void>;
    allReduce(tensor: Tensor, op: 'sum' | 'mean' | 'min' | 'max'): Promise<void>;
    broadcast(tensor: Tensor, root: number): Promise<void>;
    barrier(): Promise<void>;
    attachGradients(model: NativeSdeBnn, bucketBytes: number): void;
    detachGradients(model: NativeSdeBnn): void;
    stats(): { collectives: number; seconds: number };
    destroy(): void;
  };
}

export const packageRoot = path.resolve(__dirname, '..');

let binding: NativeBinding | undefined;

/** Loads the addon once, through node-gyp-build: prebuilds/<platform>-<arch>/ first, then build/Release. */
export function native(): NativeBinding {
  if (binding) return binding;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const load = require('node-gyp-build') as (dir: string) => NativeBinding;
    binding = load(packageRoot);
    return binding;
  } catch (error) {
    const where = (p: string) => `${p} (${fs.existsSync(p) ? 'present' : 'absent'})`;
    throw new Error(
      [
        'sdebnn: could not load the native addon.',
        `  Tried: ${where(path.join(packageRoot, 'prebuilds', `${process.platform}-${process.arch}`))}`,
        `         ${where(path.join(packageRoot, 'build', 'Release', 'sdebnn.node'))}`,
        `  Error: ${(error as Error).message.split('\n')[0]}`,
        'To fix it:',
        '  - build from source: `bash scripts/setup.sh` in the package folder (installs LibTorch with apt-get where it can), or `npm rebuild sdebnn`;',
        '  - a LibTorch elsewhere (e.g. CUDA): `LIBTORCH=/path/to/libtorch npm rebuild sdebnn`;',
        '  - an installed PyTorch: `SDEBNN_TORCH_FROM_PYTHON=1 npm rebuild sdebnn`;',
        '  - "libtorch*.so: cannot open shared object file": install the LibTorch the addon was built against (Debian: apt-get install libtorch-dev).',
      ].join('\n'),
      { cause: error },
    );
  }
}
