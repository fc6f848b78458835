/**
 * Safety limits: the most solver steps a solve may take and the most bytes one call may
 * allocate. Each is an option with a default (maxSteps, maxBytes); going over it is a
 * LimitError naming the option to raise, thrown before the work or allocation starts (steps of
 * adaptive solves are counted by the solver as it goes).
 */
import { LimitError } from './errors';
import { expectInteger, optional } from './validate';

/** Default of every `maxSteps` option: accepted plus rejected steps of one solve (forward, and each backward solve). */
export const DEFAULT_MAX_STEPS = 100_000;

/** Default of every `maxBytes` option: 4 GiB. Raise it for large models or batches on machines that have the memory. */
export const DEFAULT_MAX_BYTES = 2 ** 32;

export const LIMIT_DEFAULTS = Object.freeze({ maxSteps: DEFAULT_MAX_STEPS, maxBytes: DEFAULT_MAX_BYTES });

export function expectMaxSteps(value: unknown, field: string): number {
  return optional(value, DEFAULT_MAX_STEPS, (v) => expectInteger(v, field, 1, Number.MAX_SAFE_INTEGER));
}

export function expectMaxBytes(value: unknown, field: string): number {
  return optional(value, DEFAULT_MAX_BYTES, (v) => expectInteger(v, field, 1, Number.MAX_SAFE_INTEGER));
}

/** Bytes in binary units, e.g. "4 GiB", "11.2 GiB", "300 B". */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : +value.toPrecision(3)} ${units[unit]}`;
}

/** Throws a LimitError when `what` needs more than `limit` bytes; `option` names the setting. */
export function checkBytes(bytes: number, limit: number, option: string, what: string): void {
  if (!(bytes <= limit)) {
    throw new LimitError(
      `${what} needs about ${formatBytes(bytes)}, more than ${option} (${formatBytes(limit)}); raise ${option} if the machine has the memory, or use smaller shapes`,
      'ERR_LIMIT',
      option,
    );
  }
}

/** Throws a LimitError when a solve would take more than `limit` steps; `option` names the setting, `hint` the other way out. */
export function checkSteps(steps: number, limit: number, option: string, what: string, hint: string): void {
  if (!(steps <= limit)) {
    throw new LimitError(`${what} takes ${steps} steps, more than ${option} (${limit}); ${hint}, or raise ${option}`, 'ERR_LIMIT', option);
  }
}

/** Parameters of linear layers of the given sizes (weights and biases), each layer taking `extraInputs` more inputs (t). */
export function linearParameters(sizes: readonly number[], extraInputs = 0): number {
  let n = 0;
  for (let l = 0; l + 1 < sizes.length; l++) n += sizes[l + 1]! * (sizes[l]! + extraInputs) + sizes[l + 1]!;
  return n;
}

/** Steps of a fixed-step solve over the output times (as the native grid: each interval at least one step, a sliver under 1e-9 dt merged). */
export function fixedSteps(ts: readonly number[], dt: number): number {
  let steps = 0;
  for (let k = 1; k < ts.length; k++) steps += Math.max(1, Math.ceil((ts[k]! - ts[k - 1]!) / dt - 1e-9));
  return steps;
}
