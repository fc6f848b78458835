/**
 * Errors raised by sdebnn. Argument problems are plain TypeError/RangeError raised before
 * anything native runs; failures inside the native engine arrive as SdebnnError subclasses
 * carrying the engine's `code`.
 */

export class SdebnnError extends Error {
  readonly code: string;
  constructor(message: string, code: string) {
    super(message);
    this.name = new.target.name;
    this.code = code;
  }
}

/** 'cuda' asked for where LibTorch has no CUDA device: never a silent CPU run. */
export class DeviceUnavailableError extends SdebnnError {}

/** LibTorch raised an error (shape mismatch, out of memory on the device, ...). */
export class TorchError extends SdebnnError {}

/** The numerical engine failed: a solve produced NaN, a step size collapsed, ... */
export class NumericalError extends SdebnnError {}

/** A file is missing, truncated or not in the expected format. */
export class DataFormatError extends SdebnnError {}

/** Any other native failure. */
export class NativeError extends SdebnnError {}

/**
 * Distributed training asked of a build that cannot do it: the message names what is missing
 * (gloo's headers at build time, a CUDA LibTorch with NCCL). Never a silent single-process run.
 */
export class DistributedUnavailableError extends SdebnnError {}

/**
 * Distributed training failed: a rank did not join within the timeout (ERR_DISTRIBUTED_TIMEOUT),
 * the rendezvous port is taken (ERR_DISTRIBUTED_PORT_IN_USE), a collective failed because a peer
 * stopped (ERR_DISTRIBUTED), ranks train with different options (ERR_DISTRIBUTED_MISMATCH) or
 * hold different parameters (ERR_DISTRIBUTED_DIVERGED). The message names the rank.
 */
export class DistributedError extends SdebnnError {}

const byCode: Record<string, new (message: string, code: string) => SdebnnError> = {
  ERR_DEVICE_UNAVAILABLE: DeviceUnavailableError,
  ERR_TORCH: TorchError,
  ERR_NUMERICAL: NumericalError,
  ERR_DATA_FORMAT: DataFormatError,
  ERR_DISTRIBUTED_UNAVAILABLE: DistributedUnavailableError,
  ERR_DISTRIBUTED: DistributedError,
  ERR_DISTRIBUTED_TIMEOUT: DistributedError,
  ERR_DISTRIBUTED_PORT_IN_USE: DistributedError,
};

/** Turns an error thrown by the addon into the matching typed error. */
export function fromNative(error: unknown): Error {
  if (error instanceof SdebnnError) return error;
  if (error instanceof Error) {
    const code = (error as Error & { code?: unknown }).code;
    if (typeof code === 'string') {
      if (code === 'ERR_INVALID_ARGUMENT') return new RangeError(error.message);
      const Class = byCode[code] ?? NativeError;
      return new Class(error.message, code);
    }
    return error;
  }
  return new NativeError(String(error), 'ERR_NATIVE');
}

/** Runs a synchronous native call, mapping its errors. */
export function callNative<T>(fn: () => T): T {
  try {
    return fn();
  } catch (error) {
    throw fromNative(error);
  }
}

/** Awaits a native Promise, mapping its rejection. */
export async function awaitNative<T>(promise: Promise<T>): Promise<T> {
  try {
    return await promise;
  } catch (error) {
    throw fromNative(error);
  }
}
