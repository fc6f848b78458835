/**
 * CUDA speed modes and memory figures. TF32 and bf16 autocast are modes of the process, as in
 * PyTorch (torch.backends.cuda.matmul.allow_tf32, torch.autocast): they change how every CUDA
 * model's float32 matmuls and convolutions run, not what a model is, so they are set here rather
 * than in a model's config. Both need a CUDA device: on a machine without one, turning them on is a
 * DeviceUnavailableError, never a silent float32 run.
 */
import { backend } from './backend';
import { callNative, DeviceUnavailableError } from './errors';
import { native } from './native';
import { expectBoolean, expectKnownKeys, expectObject, expectOneOf, expectOptionalObject, optional } from './validate';

/** How CUDA runs float32 work. LibTorch's defaults, as PyTorch's: TF32 convolutions on, TF32 matmuls off, autocast off. */
export interface CudaMathMode {
  /** TF32 tensor cores for float32 matmuls (cuBLAS): 10 mantissa bits instead of 23. */
  tf32Matmul: boolean;
  /** TF32 for float32 convolutions (cuDNN). */
  tf32Conv: boolean;
  /**
   * 'bf16': every native job runs its CUDA ops under autocast to bfloat16: matmuls and convolutions
   * in bf16 (the engine's own kernels take their results back to float32 for the elementwise work;
   * losses stay float32); 'off': float32.
   */
  autocast: 'off' | 'bf16';
}

/** The current mode. */
export function cudaMathMode(): CudaMathMode {
  const m = callNative(() => native().cudaMathMode());
  return { tf32Matmul: m.tf32Matmul, tf32Conv: m.tf32Conv, autocast: m.autocastBf16 ? 'bf16' : 'off' };
}

/**
 * Sets the CUDA math mode from now on: `tf32` true or false sets both TF32 flags (matmuls and
 * convolutions; false is strict float32), `autocast` 'bf16' or 'off'; a field left out keeps its
 * value. Turning TF32 or autocast on without a CUDA device throws DeviceUnavailableError.
 */
export function setCudaMathMode(mode: { tf32?: boolean; autocast?: 'off' | 'bf16' }): void {
  const m = expectObject(mode, 'mode');
  expectKnownKeys(m, 'mode', ['tf32', 'autocast']);
  const current = cudaMathMode();
  const tf32 = optional<boolean | undefined>(m.tf32, undefined, (v) => expectBoolean(v, 'mode.tf32'));
  const autocast = optional(m.autocast, current.autocast, (v) => expectOneOf(v, 'mode.autocast', ['off', 'bf16'] as const));
  const next = { tf32Matmul: tf32 ?? current.tf32Matmul, tf32Conv: tf32 ?? current.tf32Conv, autocastBf16: autocast === 'bf16' };
  const asked = [
    (next.tf32Matmul && !current.tf32Matmul) || (next.tf32Conv && !current.tf32Conv) ? 'mode.tf32 true' : '',
    next.autocastBf16 ? "mode.autocast 'bf16'" : '',
  ].filter(Boolean);
  if (asked.length > 0 && !backend().cudaAvailable) {
    throw new DeviceUnavailableError(
      `Expected a CUDA device for ${asked.join(' and ')} (CUDA math modes) but this LibTorch has none`,
      'ERR_DEVICE_UNAVAILABLE',
    );
  }
  callNative(() => native().setCudaMathMode(next));
}

/** The CUDA caching allocator's figures for one device, in bytes. */
export interface CudaMemoryStats {
  allocatedBytes: number;
  /** The most allocated at once since the process started or the last reset. */
  peakAllocatedBytes: number;
  reservedBytes: number;
}

/**
 * The allocator's memory figures of a CUDA device ('cuda' or 'cuda:N'); `reset: true` starts a
 * new peak after reading. DeviceUnavailableError without CUDA (or on a CPU build of sdebnn).
 */
export function cudaMemoryStats(device: string, options: { reset?: boolean } = {}): CudaMemoryStats {
  const o = expectOptionalObject(options, 'options');
  expectKnownKeys(o, 'options', ['reset']);
  const reset = optional(o.reset, false, (v) => expectBoolean(v, 'options.reset'));
  if (typeof device !== 'string' || !/^cuda(:\d+)?$/.test(device)) {
    throw new RangeError(`Expected 'cuda' or 'cuda:N' for device but received ${JSON.stringify(device)}`);
  }
  return callNative(() => native().cudaMemoryStats(device, reset));
}
