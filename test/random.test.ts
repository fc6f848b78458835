import { describe, expect, it } from 'vitest';
import { sdebnn } from './helpers';

const { Random } = sdebnn;

function moments(xs: Float64Array): { mean: number; variance: number; m3: number; m4: number } {
  let s = 0;
  for (const x of xs) s += x;
  const mean = s / xs.length;
  let v = 0;
  let m3 = 0;
  let m4 = 0;
  for (const x of xs) {
    const d = x - mean;
    v += d * d;
    m3 += d * d * d;
    m4 += d * d * d * d;
  }
  return { mean, variance: v / xs.length, m3: m3 / xs.length, m4: m4 / xs.length };
}

describe('Random (xoshiro128** seeded by splitmix64)', () => {
  it('matches the reference C implementation bit for bit', () => {
    // Reference: Vigna's xoshiro128starstar.c with s = {lo(a), hi(a), lo(b), hi(b)} where a, b are the
    // first two outputs of splitmix64.c from the seed (compiled with gcc; splitmix64(0) = 0xe220a8397b1dcdaf).
    const r0 = new Random(0);
    expect(Array.from({ length: 6 }, () => r0.nextUint32())).toEqual([3737715805, 2584255861, 2876756834, 3286328325, 1553311962, 1625202774]);
    const r1 = new Random(1);
    expect(Array.from({ length: 6 }, () => r1.nextUint32())).toEqual([1695105466, 1423115009, 634581793, 1068227753, 716759206, 4186505319]);
    const r = new Random(12345);
    for (let i = 0; i < 1_000_000; i++) r.nextUint32();
    expect(r.nextUint32()).toBe(3207690205);
    expect(new Random(12345n).nextUint32()).toBe(new Random(12345).nextUint32());
  });

  it('fills a Uint32Array with exactly the stream nextUint32 gives, and continues it', () => {
    const a = new Random(42);
    const b = new Random(42);
    const bulk = a.fillUint32(new Uint32Array(1001));
    expect(Array.from(bulk)).toEqual(Array.from({ length: 1001 }, () => b.nextUint32()));
    expect(a.nextUint32()).toBe(b.nextUint32());
    expect(a.getState()).toEqual(b.getState());
  });

  it('restores its state (including a pending Box-Muller normal) to give identical streams', () => {
    const a = new Random(42);
    for (let i = 0; i < 17; i++) a.uniform();
    a.normal(); // leaves the second normal of the pair cached
    const state = JSON.parse(JSON.stringify(a.getState())); // as a checkpoint would store it
    expect(state.spareNormal).not.toBeNull();
    const b = Random.fromState(state);
    const c = new Random(7);
    c.setState(state);
    const draw = (r: InstanceType<typeof Random>) => [r.normal(), r.uniform(), r.integerBelow(1000), r.normal(2, 3), r.nextUint32()];
    for (let i = 0; i < 200; i++) {
      const x = draw(a);
      expect(draw(b)).toEqual(x);
      expect(draw(c)).toEqual(x);
    }
  });

  it('draws standard normals: mean 0, variance 1, skewness 0, kurtosis 3 within stated tolerances', () => {
    const n = 200_000;
    const r = new Random(2024);
    const xs = new Float64Array(n);
    for (let i = 0; i < n; i++) xs[i] = r.normal();
    const m = moments(xs);
    // Standard errors for n = 2e5: mean 1/sqrt(n) = 0.0022, variance sqrt(2/n) = 0.0032,
    // third moment sqrt(15/n) = 0.0087, fourth moment sqrt(96/n) = 0.022. Tolerances are about 4.5 of those.
    expect(Math.abs(m.mean)).toBeLessThan(0.01);
    expect(Math.abs(m.variance - 1)).toBeLessThan(0.015);
    expect(Math.abs(m.m3)).toBeLessThan(0.04);
    expect(Math.abs(m.m4 - 3)).toBeLessThan(0.1);
    const scaled = new Random(3).fillNormal(new Float64Array(n), 5, 2);
    const ms = moments(scaled);
    expect(Math.abs(ms.mean - 5)).toBeLessThan(0.02); // 4.5 x 2/sqrt(n)
    expect(Math.abs(ms.variance - 4)).toBeLessThan(0.06); // 4.5 x 4 sqrt(2/n)
  });

  it('draws uniforms in [0, 1) with mean 1/2 and variance 1/12', () => {
    const n = 200_000;
    const xs = new Random(5).fillUniform(new Float64Array(n));
    expect(xs.reduce((a, b) => Math.min(a, b), Infinity)).toBeGreaterThanOrEqual(0);
    expect(xs.reduce((a, b) => Math.max(a, b), -Infinity)).toBeLessThan(1);
    const m = moments(xs);
    expect(Math.abs(m.mean - 0.5)).toBeLessThan(0.003); // SE 0.00065
    expect(Math.abs(m.variance - 1 / 12)).toBeLessThan(0.001); // SE sqrt(1/180/n) = 0.00017
    const r = new Random(1);
    for (let i = 0; i < 1000; i++) {
      const u = r.uniform(-3, -1);
      expect(u).toBeGreaterThanOrEqual(-3);
      expect(u).toBeLessThan(-1);
    }
  });

  it('draws integers below n uniformly, also above 2^32', () => {
    const r = new Random(9);
    const counts = new Array(7).fill(0);
    const n = 70_000;
    for (let i = 0; i < n; i++) counts[r.integerBelow(7)]++;
    // Chi-square with 6 degrees of freedom: the 99.9% quantile is 22.5.
    const chi2 = counts.reduce((a, c) => a + (c - n / 7) ** 2 / (n / 7), 0);
    expect(chi2).toBeLessThan(22.5);
    const big = 2 ** 40 + 3;
    let sawHigh = false;
    for (let i = 0; i < 1000; i++) {
      const x = r.integerBelow(big);
      expect(Number.isInteger(x) && x >= 0 && x < big).toBe(true);
      if (x > 2 ** 39) sawHigh = true;
    }
    expect(sawHigh).toBe(true);
    expect(r.integerBelow(1)).toBe(0);
  });

  it('shuffles in place into a uniformly random permutation', () => {
    const a = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
    new Random(11).shuffle(a);
    expect([...a].sort((x, y) => x - y)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(Array.from(new Random(11).permutation(10))).toEqual(a); // same seed, same permutation
    // All 6 orders of 3 items, 60,000 shuffles: each expected 10,000 times (SD 91); allow 500.
    const r = new Random(12);
    const counts = new Map<string, number>();
    for (let i = 0; i < 60_000; i++) {
      const key = r.shuffle(new Uint8Array([0, 1, 2])).join('');
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    expect(counts.size).toBe(6);
    for (const c of counts.values()) expect(Math.abs(c - 10_000)).toBeLessThan(500);
  });

  it('forks a reproducible independent stream', () => {
    const a = new Random(3).fork();
    const b = new Random(3).fork();
    const parent = new Random(3);
    const xs = Array.from({ length: 5 }, () => a.nextUint32());
    expect(Array.from({ length: 5 }, () => b.nextUint32())).toEqual(xs);
    expect(Array.from({ length: 5 }, () => parent.nextUint32())).not.toEqual(xs);
  });

  it('rejects bad seeds, bounds and states by name', () => {
    expect(() => new Random(-3)).toThrow(new RangeError('Expected non-negative integer for seed but received -3'));
    expect(() => new Random(1.5)).toThrow(/for seed/);
    expect(() => new Random(-1n)).toThrow(/for seed/);
    expect(() => new Random(2 ** 60)).toThrow(/safe integer .* for seed/);
    const r = new Random(0);
    expect(() => r.integerBelow(0)).toThrow(/for n but received 0/);
    expect(() => r.uniform(2, 1)).toThrow(RangeError);
    expect(() => r.setState({ algorithm: 'mt19937' } as never)).toThrow(/state\.algorithm/);
    expect(() => r.setState({ algorithm: 'xoshiro128**', s: [1, 2, 3], spareNormal: null } as never)).toThrow(/state\.s/);
    expect(() => r.setState({ algorithm: 'xoshiro128**', s: [1, 2, 3, 2 ** 32], spareNormal: null })).toThrow(/state\.s\[3\]/);
    expect(() => r.setState({ algorithm: 'xoshiro128**', s: [0, 0, 0, 0], spareNormal: null })).toThrow(/all zeros/);
    // A failed setState leaves the generator as it was.
    expect(r.nextUint32()).toBe(3737715805);
  });
});
