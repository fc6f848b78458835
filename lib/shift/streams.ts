/**
 * Random streams for corruptions: one per (suite, corruption, severity, seed, image index).
 * Image n of a batch draws only from its own stream, so corrupting images in chunks (with
 * their dataset offsets) gives exactly what corrupting them all at once gives, and any subset
 * can be regenerated alone. The streams are the project's xoshiro128** (lib/random.ts), each
 * seeded from a 64-bit hash of the key plus the image index.
 */
import { Random } from '../random';

const MASK64 = (1n << 64n) - 1n;

/** splitmix64's finaliser: a bijection of 64-bit words that mixes every input bit into every output bit. */
function mix64(x: bigint): bigint {
  let z = x & MASK64;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  return z ^ (z >> 31n);
}

/** 64-bit FNV-1a of a string's UTF-16 code units. */
function fnv1a64(text: string): bigint {
  let h = 0xcbf29ce484222325n;
  for (let i = 0; i < text.length; i++) h = ((h ^ BigInt(text.charCodeAt(i))) * 0x100000001b3n) & MASK64;
  return h;
}

/** The 64-bit key of the stream family of one (suite, corruption, severity, seed). */
export function streamKey(suite: string, name: string, severity: number, seed: number): bigint {
  return mix64(fnv1a64(`${suite}/${name}/${severity}`) ^ mix64(BigInt(seed)));
}

/**
 * The generator of image `index` of the family `key`. Random seeds itself through splitmix64,
 * so consecutive indices give unrelated streams.
 */
export function imageRandom(key: bigint, index: number): Random {
  return new Random((key + BigInt(index)) & MASK64);
}
