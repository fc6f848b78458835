/** What the native backend is, its threads, and device selection. */
import { awaitNative, callNative, DeviceUnavailableError } from './errors';
import { checkBytes, expectMaxBytes } from './limits';
import { native, type NativeBackend } from './native';
import { expectFunction, expectKnownKeys, expectOptionalObject, expectPositiveInteger, expectString, optional } from './validate';

export type Backend = NativeBackend;

/** LibTorch version, CUDA availability and device count, intra-op and inter-op threads. */
export function backend(): Backend {
  return callNative(() => native().backend());
}

/** The most intra-op threads setNumThreads accepts: more would only exhaust the process's threads. */
const MAX_THREADS = 1024;

/** Sets LibTorch's intra-op thread count, 1 to 1024 (the addon starts with the hardware's, or OMP_NUM_THREADS). */
export function setNumThreads(threads: number): void {
  expectPositiveInteger(threads, 'threads');
  if (threads > MAX_THREADS) throw new RangeError(`Expected at most ${MAX_THREADS} threads for threads but received ${threads}`);
  callNative(() => native().setNumThreads(threads));
}

export type DeviceSpec = 'cpu' | 'cuda' | 'auto' | `cuda:${number}`;

const deviceForm = /^(cpu|auto|cuda(:\d+)?)$/;

/**
 * Validates a device option and resolves it to a concrete device ('cpu', 'cuda:0', ...).
 * 'cuda' without a CUDA device throws DeviceUnavailableError; 'auto' picks cuda:0 when present.
 */
export function resolveDevice(device: unknown = 'cpu', field = 'device'): string {
  const spec = expectString(device, field);
  if (!deviceForm.test(spec)) {
    throw new RangeError(`Expected 'cpu', 'cuda', 'cuda:N' or 'auto' for ${field} but received ${JSON.stringify(spec)}`);
  }
  if (spec.startsWith('cuda')) {
    const info = backend();
    const index = spec === 'cuda' ? 0 : Number(spec.slice(5));
    if (!info.cudaAvailable) {
      throw new DeviceUnavailableError(
        `${field} '${spec}' requested but this LibTorch (${info.torchVersion}) has no CUDA device; ` +
          `rebuild against a CUDA LibTorch (LIBTORCH=/path/to/libtorch npm rebuild sdebnn) or use device 'cpu'`,
        'ERR_DEVICE_UNAVAILABLE',
      );
    }
    if (index >= info.cudaDeviceCount) {
      throw new DeviceUnavailableError(`${field} '${spec}' requested but only ${info.cudaDeviceCount} CUDA device(s) exist`, 'ERR_DEVICE_UNAVAILABLE');
    }
  }
  return callNative(() => native().resolveDevice(spec));
}

export interface SelfTestOptions {
  device?: DeviceSpec;
  /** Matrix size. Default 256. */
  size?: number;
  /** Number of products. Default 10. */
  iterations?: number;
  /** The most bytes the test may allocate (about 6 size x size float matrices); more is a LimitError. Default 4 GiB. */
  maxBytes?: number;
  /** Called after each product; if it throws, the test stops and the Promise rejects with that error. */
  onProgress?: (event: { stage: string; iteration: number; total: number }) => void;
}

export interface SelfTestResult {
  device: string;
  iterations: number;
  seconds: number;
  gflops: number;
  maxAbsError: number;
  /** Intra-op threads the worker thread ran with (what setNumThreads chose). */
  threads: number;
}

/**
 * Runs checked matrix products on a device, off the event loop, reporting progress per product.
 * Useful to confirm that a CUDA build really runs on the GPU.
 */
export function selfTest(options: SelfTestOptions = {}): Promise<SelfTestResult> {
  const o = expectOptionalObject(options, 'options');
  expectKnownKeys(o, 'options', ['device', 'size', 'iterations', 'maxBytes', 'onProgress']);
  const device = resolveDevice(o.device ?? 'cpu', 'options.device');
  const size = optional(o.size, 256, (v) => expectPositiveInteger(v, 'options.size'));
  const iterations = optional(o.iterations, 10, (v) => expectPositiveInteger(v, 'options.iterations'));
  checkBytes(6 * 4 * size * size, expectMaxBytes(o.maxBytes, 'options.maxBytes'), 'options.maxBytes', `selfTest with size ${size}`);
  const onProgress = o.onProgress === undefined ? undefined : expectFunction(o.onProgress, 'options.onProgress');
  return awaitNative(native().selfTest({ device, size, iterations }, onProgress as never));
}
