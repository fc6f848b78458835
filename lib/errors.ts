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

/**
 * A safety limit would be exceeded (too many solver steps, too many bytes for one call): raised
 * before the work or allocation starts, or by the solver at the step that passes the limit.
 * `option` names the setting that raises the limit, e.g. 'options.maxSteps' or 'config.maxBytes'.
 */
export class LimitError extends SdebnnError {
  readonly option: string;
  constructor(message: string, code = 'ERR_LIMIT', option = '') {
    super(message, code);
    this.option = option;
  }
}

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

/** The codes the addon's errors carry (native/addon/common.cc); ERR_NATIVE, ERR_OUT_OF_MEMORY, ERR_BUSY and ERR_DISPOSED become NativeError. */
const NATIVE_CODES = new Set([...Object.keys(byCode), 'ERR_INVALID_ARGUMENT', 'ERR_LIMIT', 'ERR_NATIVE', 'ERR_OUT_OF_MEMORY', 'ERR_BUSY', 'ERR_DISPOSED']);

/**
 * Turns an error thrown by the addon into the matching typed error. Anything else (what a
 * callback threw: an Error of its own, or any other value) passes through as it is.
 */
export function fromNative(error: unknown): unknown {
  if (error instanceof SdebnnError || !(error instanceof Error)) return error;
  const code = (error as Error & { code?: unknown }).code;
  if (typeof code !== 'string' || !NATIVE_CODES.has(code)) return error;
  if (code === 'ERR_INVALID_ARGUMENT') return new RangeError(error.message);
  if (code === 'ERR_LIMIT') {
    const option = (error as Error & { option?: unknown }).option;
    return new LimitError(error.message, code, typeof option === 'string' ? option : '');
  }
  const Class = byCode[code] ?? NativeError;
  return new Class(error.message, code);
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
