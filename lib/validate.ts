/**
 * Argument checks shared by every public function. Each names the field, the expected
 * form and what was received, e.g. "Expected positive integer for steps but received -3".
 */

export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value);
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (Array.isArray(value)) return `array of length ${value.length}`;
  if (ArrayBuffer.isView(value)) return `${value.constructor.name} of length ${(value as unknown as { length: number }).length}`;
  if (typeof value === 'function') return 'function';
  return typeof value === 'object' ? `object` : typeof value;
}

function fail(kind: 'type' | 'range', field: string, expected: string, value: unknown): never {
  const message = `Expected ${expected} for ${field} but received ${describe(value)}`;
  throw kind === 'type' ? new TypeError(message) : new RangeError(message);
}

export function expectObject(value: unknown, field: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail('type', field, 'an object', value);
  return value as Record<string, unknown>;
}

export function expectOptionalObject(value: unknown, field: string): Record<string, unknown> {
  return value === undefined ? {} : expectObject(value, field);
}

export function expectNumber(value: unknown, field: string): number {
  if (typeof value !== 'number') fail('type', field, 'a number', value);
  if (!Number.isFinite(value)) fail('range', field, 'a finite number', value);
  return value;
}

export function expectPositive(value: unknown, field: string): number {
  const n = expectNumber(value, field);
  if (!(n > 0)) fail('range', field, 'a positive number', value);
  return n;
}

export function expectNonNegative(value: unknown, field: string): number {
  const n = expectNumber(value, field);
  if (!(n >= 0)) fail('range', field, 'a non-negative number', value);
  return n;
}

export function expectInRange(value: unknown, field: string, min: number, max: number): number {
  const n = expectNumber(value, field);
  if (n < min || n > max) fail('range', field, `a number in [${min}, ${max}]`, value);
  return n;
}

export function expectInteger(value: unknown, field: string, min = -Infinity, max = Infinity): number {
  if (typeof value !== 'number') fail('type', field, 'an integer', value);
  if (!Number.isInteger(value)) fail('range', field, 'an integer', value);
  if (value < min || value > max) {
    const expected =
      min === 1 && max === Infinity ? 'positive integer' : min === 0 && max === Infinity ? 'non-negative integer' : `integer in [${min}, ${max}]`;
    fail('range', field, expected, value);
  }
  return value;
}

export function expectPositiveInteger(value: unknown, field: string): number {
  return expectInteger(value, field, 1);
}

export function expectBoolean(value: unknown, field: string): boolean {
  if (typeof value !== 'boolean') fail('type', field, 'a boolean', value);
  return value;
}

export function expectString(value: unknown, field: string): string {
  if (typeof value !== 'string') fail('type', field, 'a string', value);
  return value;
}

export function expectOneOf<T extends string>(value: unknown, field: string, allowed: readonly T[]): T {
  if (typeof value !== 'string') fail('type', field, `one of ${allowed.map((a) => `'${a}'`).join(', ')}`, value);
  if (!(allowed as readonly string[]).includes(value)) fail('range', field, `one of ${allowed.map((a) => `'${a}'`).join(', ')}`, value);
  return value as T;
}

export function expectFunction<T extends (...args: never[]) => unknown>(value: unknown, field: string): T {
  if (typeof value !== 'function') fail('type', field, 'a function', value);
  return value as T;
}

export function optional<T>(value: unknown, fallback: T, check: (value: unknown) => T): T {
  return value === undefined ? fallback : check(value);
}

/** Rejects keys the options object does not know, naming the unknown key (catches typos). */
export function expectKnownKeys(obj: Record<string, unknown>, field: string, known: readonly string[]): void {
  for (const key of Object.keys(obj)) {
    if (!known.includes(key)) {
      throw new TypeError(`Unknown option ${field}.${key}; expected one of ${known.join(', ')}`);
    }
  }
}
