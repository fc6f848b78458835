/**
 * A small, fast, seedable pseudo-random generator for everything random on the TypeScript
 * side (data shuffling, augmentation, toy data). xoshiro128** (Blackman & Vigna), 32-bit
 * operations only, seeded through splitmix64 as its authors recommend. Its state is four
 * 32-bit words plus the cached second Box-Muller normal: `getState()` returns it as plain
 * JSON data and `setState()` resumes the exact same stream, so a checkpoint can hold it.
 *
 * Not for cryptography.
 */
import { describe, expectInteger, expectNumber, expectObject } from './validate';

export interface RandomState {
  algorithm: 'xoshiro128**';
  /** The four 32-bit state words, as unsigned integers. */
  s: [number, number, number, number];
  /** The second normal of the last Box-Muller pair, not yet returned (null when none). */
  spareNormal: number | null;
}

const MASK64 = (1n << 64n) - 1n;

/** splitmix64: expands a 64-bit seed into a stream of well-mixed 64-bit words. */
function splitmix64(state: { x: bigint }): bigint {
  state.x = (state.x + 0x9e3779b97f4a7c15n) & MASK64;
  let z = state.x;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  return z ^ (z >> 31n);
}

const TWO_POW_32 = 4294967296;
const TWO_POW_53 = 9007199254740992;

function expectSeed(value: unknown, field: string): bigint {
  if (typeof value === 'bigint') {
    if (value < 0n || value > MASK64) throw new RangeError(`Expected an integer in [0, 2^64) for ${field} but received ${value}`);
    return value;
  }
  const n = expectInteger(value, field, 0);
  if (!Number.isSafeInteger(n)) throw new RangeError(`Expected a safe integer (at most 2^53 - 1) or a bigint for ${field} but received ${n}`);
  return BigInt(n);
}

export class Random {
  private s0 = 0;
  private s1 = 0;
  private s2 = 0;
  private s3 = 0;
  private spare: number | null = null;

  /** `seed`: a non-negative safe integer or a bigint below 2^64. The same seed gives the same stream everywhere. */
  constructor(seed: number | bigint = 0) {
    const sm = { x: expectSeed(seed, 'seed') };
    const a = splitmix64(sm);
    const b = splitmix64(sm);
    this.s0 = Number(a & 0xffffffffn);
    this.s1 = Number(a >> 32n);
    this.s2 = Number(b & 0xffffffffn);
    this.s3 = Number(b >> 32n);
  }

  /** A generator that continues from `state` (as returned by `getState()`). */
  static fromState(state: RandomState): Random {
    const r = new Random(0);
    r.setState(state);
    return r;
  }

  /** The next 32 random bits as an unsigned integer in [0, 2^32). */
  nextUint32(): number {
    const s0 = this.s0;
    const s1 = this.s1;
    const s2 = this.s2;
    const s3 = this.s3;
    // result = rotl(s1 * 5, 7) * 9
    const m = Math.imul(s1, 5);
    const result = Math.imul((m << 7) | (m >>> 25), 9) >>> 0;
    const t = s1 << 9;
    const n2 = s2 ^ s0;
    const n3 = s3 ^ s1;
    this.s1 = s1 ^ n2;
    this.s0 = s0 ^ n3;
    this.s2 = n2 ^ t;
    this.s3 = (n3 << 11) | (n3 >>> 21);
    return result;
  }

  /**
   * Fills `out` with the next out.length outputs of nextUint32(), in order, and returns it: the
   * same stream, with the state kept in locals through the loop (several times faster for bulk draws).
   */
  fillUint32(out: Uint32Array): Uint32Array {
    let s0 = this.s0;
    let s1 = this.s1;
    let s2 = this.s2;
    let s3 = this.s3;
    for (let i = 0; i < out.length; i++) {
      const m = Math.imul(s1, 5);
      out[i] = Math.imul((m << 7) | (m >>> 25), 9);
      const t = s1 << 9;
      const n2 = s2 ^ s0;
      const n3 = s3 ^ s1;
      s1 ^= n2;
      s0 ^= n3;
      s2 = n2 ^ t;
      s3 = (n3 << 11) | (n3 >>> 21);
    }
    this.s0 = s0;
    this.s1 = s1;
    this.s2 = s2;
    this.s3 = s3;
    return out;
  }

  /** Uniform in [0, 1) with 53 random bits; or in [low, high) when both are given. */
  uniform(low?: number, high?: number): number {
    if (low === undefined && high === undefined) return this.unit();
    const a = expectNumber(low, 'low');
    const b = expectNumber(high, 'high');
    if (!(b >= a)) throw new RangeError(`Expected high >= low for uniform(low, high) but received low ${a}, high ${b}`);
    return a + (b - a) * this.unit();
  }

  /** Uniform in [0, 1): 53 random bits from two 32-bit outputs. */
  private unit(): number {
    const hi = this.nextUint32() >>> 5; // 27 bits
    const lo = this.nextUint32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / TWO_POW_53;
  }

  /** Standard normal (Box-Muller with the second value cached), scaled as mean + std * z when given. */
  normal(mean = 0, std = 1): number {
    let z: number;
    if (this.spare !== null) {
      z = this.spare;
      this.spare = null;
    } else {
      const u1 = 1 - this.unit(); // (0, 1]: the log stays finite
      const u2 = this.unit();
      const r = Math.sqrt(-2 * Math.log(u1));
      const theta = 2 * Math.PI * u2;
      z = r * Math.cos(theta);
      this.spare = r * Math.sin(theta);
    }
    return mean + std * z;
  }

  /** Uniform integer in [0, n), without modulo bias; n a positive integer up to 2^53. */
  integerBelow(n: number): number {
    expectInteger(n, 'n', 1, TWO_POW_53);
    if (n <= TWO_POW_32) {
      // Reject the top partial block of the 32-bit range so every residue is equally likely.
      const limit = TWO_POW_32 - (TWO_POW_32 % n);
      for (;;) {
        const x = this.nextUint32();
        if (x < limit) return x % n;
      }
    }
    const limit = TWO_POW_53 - (TWO_POW_53 % n);
    for (;;) {
      const x = (this.nextUint32() >>> 11) * TWO_POW_32 + this.nextUint32(); // 53 bits
      if (x < limit) return x % n;
    }
  }

  /** Shuffles `array` in place (Fisher-Yates) and returns it. */
  shuffle<T extends { length: number; [index: number]: unknown }>(array: T): T {
    if (typeof array !== 'object' || array === null || typeof array.length !== 'number') {
      throw new TypeError(`Expected an array or typed array for array but received ${describe(array)}`);
    }
    for (let i = array.length - 1; i > 0; i--) {
      const j = this.integerBelow(i + 1);
      const tmp = array[i];
      array[i] = array[j];
      array[j] = tmp;
    }
    return array;
  }

  /** A random permutation of 0..n-1. */
  permutation(n: number): Uint32Array {
    expectInteger(n, 'n', 0, 2 ** 32 - 1);
    const p = new Uint32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    return this.shuffle(p);
  }

  /** Fills `out` with uniforms in [low, high) (default [0, 1)) and returns it. */
  fillUniform<T extends Float32Array | Float64Array>(out: T, low = 0, high = 1): T {
    for (let i = 0; i < out.length; i++) out[i] = low + (high - low) * this.unit();
    return out;
  }

  /** Fills `out` with normals of the given mean and std (default standard) and returns it. */
  fillNormal<T extends Float32Array | Float64Array>(out: T, mean = 0, std = 1): T {
    for (let i = 0; i < out.length; i++) out[i] = this.normal(mean, std);
    return out;
  }

  /** An independent generator seeded from 64 bits of this one (for a separate stream, e.g. per worker). */
  fork(): Random {
    const seed = (BigInt(this.nextUint32()) << 32n) | BigInt(this.nextUint32());
    return new Random(seed);
  }

  /** The complete state, as JSON-serialisable data. */
  getState(): RandomState {
    return { algorithm: 'xoshiro128**', s: [this.s0 >>> 0, this.s1 >>> 0, this.s2 >>> 0, this.s3 >>> 0], spareNormal: this.spare };
  }

  /** Restores a state from `getState()`; the stream continues exactly where that state was taken. */
  setState(state: RandomState): void {
    const obj = expectObject(state, 'state');
    if (obj.algorithm !== 'xoshiro128**') {
      throw new RangeError(`Expected 'xoshiro128**' for state.algorithm but received ${describe(obj.algorithm)}`);
    }
    const s = obj.s;
    if (!Array.isArray(s) || s.length !== 4) throw new TypeError(`Expected an array of 4 words for state.s but received ${describe(s)}`);
    const words = s.map((w, i) => expectInteger(w, `state.s[${i}]`, 0, 2 ** 32 - 1));
    if (words.every((w) => w === 0)) throw new RangeError('Expected a non-zero state for state.s but received all zeros');
    const spare = obj.spareNormal;
    if (spare !== null && spare !== undefined) expectNumber(spare, 'state.spareNormal');
    [this.s0, this.s1, this.s2, this.s3] = words.map((w) => w | 0) as [number, number, number, number];
    this.spare = spare === undefined ? null : (spare as number | null);
  }
}
