import { expect } from 'vitest';
// Tests run against the built package (dist/), as users load it.
export const sdebnn = require('../dist/index.js') as typeof import('../dist/index');
export const { native } = require('../dist/native.js') as typeof import('../dist/native');

/** Runs fn and checks it threw a DataFormatError (ERR_DATA_FORMAT) whose message has every pattern. */
export function expectDataFormatError(fn: () => unknown, ...patterns: (string | RegExp)[]): void {
  let error: unknown;
  try {
    fn();
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(sdebnn.DataFormatError);
  expect((error as { code: string }).code).toBe('ERR_DATA_FORMAT');
  for (const p of patterns) {
    if (typeof p === 'string') expect((error as Error).message).toContain(p);
    else expect((error as Error).message).toMatch(p);
  }
}
