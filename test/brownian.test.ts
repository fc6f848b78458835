import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { native, sdebnn } from './helpers';

const { BrownianInterval } = sdebnn;
type Interval = InstanceType<typeof BrownianInterval>;
type Arr = Float32Array | Float64Array;

// Statistical checks use fixed seeds, so each passes or fails deterministically. They are
// two-sided z tests with a family-wise error of 1% over at most MAX_CHECKS checks (Bonferroni):
// per check alpha = 0.01 / 64 = 1.6e-4, |z| < 3.7809 = Phi^-1(1 - alpha / 2). (A per-check 0.001
// would fail one check in ~16 seed choices by chance; a 4000-seed study of W(0.2, 0.7) gave
// chi-square and mean z with sd 1.01 and tail rates 0.050 / 0.0125 / 0.0010 beyond 1.96 / 2.58 /
// 3.29.) Power: a single 32768-element check flags a variance off by 3%, the pooled grid by 0.7%.
const MAX_CHECKS = 64;
const Z_CRIT = 3.7809;
let checks = 0;
afterAll(() => {
  expect(checks).toBeLessThanOrEqual(MAX_CHECKS); // keeps the correction honest as tests are added
});

function expectZ(z: number, label: string): void {
  checks++;
  expect(Math.abs(z), label).toBeLessThan(Z_CRIT);
}

// Sum of squares of n independent N(0, 1) is chi-square(n); Wilson-Hilferty: (Q/n)^(1/3) is
// close to normal with mean 1 - 2/(9n) and variance 2/(9n) (accurate to ~1e-3 for n >= 1000).
function chiSquareZ(sumSquares: number, n: number): number {
  const v = 2 / (9 * n);
  return (Math.cbrt(sumSquares / n) - (1 - v)) / Math.sqrt(v);
}

function sumSquares(x: Arr, scale = 1): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += (x[i]! / scale) ** 2;
  return s;
}

// z of the sample correlation of two independent standard normal vectors: sqrt(n) * r ~ N(0, 1).
function correlationZ(a: Arr, b: Arr): number {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i]! * b[i]!;
    aa += a[i]! ** 2;
    bb += b[i]! ** 2;
  }
  return (ab / Math.sqrt(aa * bb)) * Math.sqrt(a.length);
}

/** Checks that x / sd looks like n independent N(0, 1): the mean's z and the chi-square z. */
function expectStandardNormal(x: Arr, sd: number, label: string): { meanZ: number; chiZ: number } {
  let sum = 0;
  for (let i = 0; i < x.length; i++) sum += x[i]!;
  const meanZ = sum / sd / Math.sqrt(x.length);
  const chiZ = chiSquareZ(sumSquares(x, sd), x.length);
  expectZ(meanZ, `${label}: mean z`);
  expectZ(chiZ, `${label}: chi-square z (variance ${(sumSquares(x) / x.length).toPrecision(4)} vs ${(sd * sd).toPrecision(4)})`);
  return { meanZ, chiZ };
}

function maxAbsDiff(a: Arr, b: Arr): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

function add(a: Arr, b: Arr): Float64Array {
  return Float64Array.from(a, (x, i) => x + b[i]!);
}

// A small seeded generator for shuffles (mulberry32).
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function shuffled<T>(items: readonly T[], seed: number): T[] {
  const out = [...items];
  const r = rng(seed);
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

const grid = (n: number, t0 = 0, t1 = 1) => Array.from({ length: n }, (_, k) => [t0 + ((t1 - t0) * k) / n, t0 + ((t1 - t0) * (k + 1)) / n] as const);

const live: Interval[] = [];
function make(options: ConstructorParameters<typeof BrownianInterval>[0]): Interval {
  const bm = new BrownianInterval(options);
  live.push(bm);
  return bm;
}
afterEach(() => {
  for (const bm of live.splice(0)) bm.dispose();
});

const BIG = [256, 128]; // 32768 elements per increment: one query is a strong statistical sample

describe('BrownianInterval: distribution', () => {
  it('gives increments of variance t - s (chi-square, several lengths, including split sub-intervals)', () => {
    const bm = make({ shape: BIG, seed: 11 });
    // Order matters: [0.2, 0.7] becomes a node first, then is split by the later queries.
    const intervals: Array<[number, number]> = [
      [0, 1],
      [0.2, 0.7],
      [0.2, 0.45],
      [0.45, 0.7],
      [0.3, 0.31],
      [0.3, 0.3001],
      [0.3001, 0.31],
      [0.9, 0.9 + 1e-6],
      [0.05, 0.95], // spans several nodes
    ];
    for (const [s, t] of intervals) expectStandardNormal(bm.increment(s, t).data, Math.sqrt(t - s), `W(${s}, ${t})`);
  });

  it('keeps disjoint increments uncorrelated, also across a split', () => {
    const bm = make({ shape: BIG, seed: 12 });
    const parent = bm.increment(0.1, 0.9).data;
    const left = bm.increment(0.1, 0.2).data; // uneven split: p = 1/8
    const right = bm.increment(0.2, 0.9).data;
    expectZ(correlationZ(left, right), 'corr(W(0.1, 0.2), W(0.2, 0.9))');
    expectZ(correlationZ(bm.increment(0, 0.1).data, parent), 'corr(W(0, 0.1), W(0.1, 0.9))');
  });

  it('works on a shifted interval [t0, t1] and in float64', () => {
    const bm = make({ t0: -2, t1: 3, shape: BIG, seed: 13, dtype: 'float64' });
    const w = bm.increment(-2, 3).data;
    expect(w).toBeInstanceOf(Float64Array);
    expectStandardNormal(w, Math.sqrt(5), 'W(-2, 3)');
    expectStandardNormal(bm.increment(-1.5, 0.25).data, Math.sqrt(1.75), 'W(-1.5, 0.25)');
    expectStandardNormal(bm.increment(0.25, 0.2500001).data, Math.sqrt(1e-7), 'W(0.25, 0.2500001)');
  });

  it('pools the 1000 steps of a grid walk to chi-square(1000 * 640)', () => {
    const bm = make({ shape: [128, 5], seed: 14, dtHint: 1e-3 });
    let q = 0;
    let n = 0;
    for (const [s, t] of grid(1000)) {
      const w = bm.increment(s, t).data;
      q += sumSquares(w, Math.sqrt(t - s));
      n += w.length;
    }
    expectZ(chiSquareZ(q, n), 'pooled grid chi-square z');
  });
});

describe('BrownianInterval: space-time Levy area', () => {
  it('has Var H = h/12, W independent of H, and Var W = h (several lengths, split sub-intervals)', () => {
    const bm = make({ shape: BIG, seed: 21, levyArea: true });
    const intervals: Array<[number, number]> = [
      [0, 1],
      [0.2, 0.7],
      [0.2, 0.25], // uneven split of [0.2, 0.7]: p = 0.1
      [0.25, 0.7],
      [0.5, 0.5 + 1e-4],
      [0.1, 0.6], // tiles [0.1, 0.2] + [0.2, 0.25] + [0.25, 0.6]: aggregated H
    ];
    for (const [s, t] of intervals) {
      const { W, H } = bm.incrementAndLevyArea(s, t);
      const h = t - s;
      expectStandardNormal(W.data, Math.sqrt(h), `W(${s}, ${t})`);
      expectStandardNormal(H.data, Math.sqrt(h / 12), `H(${s}, ${t})`);
      expectZ(correlationZ(W.data, H.data), `corr(W, H) on (${s}, ${t})`);
    }
  });

  it('draws the children of a split independently of each other (the exact joint bridge)', () => {
    const bm = make({ shape: BIG, seed: 22, levyArea: true });
    bm.incrementAndLevyArea(0.3, 0.9); // the parent node
    const L = bm.incrementAndLevyArea(0.3, 0.45);
    const R = bm.incrementAndLevyArea(0.45, 0.9);
    const parts = { WL: L.W.data, HL: L.H.data, WR: R.W.data, HR: R.H.data };
    const names = Object.keys(parts) as Array<keyof typeof parts>;
    for (let i = 0; i < names.length; i++) {
      for (let j = i + 1; j < names.length; j++) {
        expectZ(correlationZ(parts[names[i]!], parts[names[j]!]), `corr(${names[i]}, ${names[j]})`);
      }
    }
  });

  it('recombines children into the parent: W adds, H follows the aggregation identity (1e-6)', () => {
    const bm = make({ shape: [64, 8], seed: 23, levyArea: true });
    const [a, b, c] = [0.15, 0.4, 0.85];
    const P = bm.incrementAndLevyArea(a, c);
    const L = bm.incrementAndLevyArea(a, b);
    const R = bm.incrementAndLevyArea(b, c);
    expect(maxAbsDiff(P.W.data, add(L.W.data, R.W.data))).toBeLessThan(1e-6);
    // H_{a,c} = ((c-b)(H_{b,c} + W_{a,b}/2) + (b-a)(H_{a,b} - W_{b,c}/2)) / (c-a)
    const agg = Float64Array.from(P.H.data, (_, i) => ((c - b) * (R.H.data[i]! + L.W.data[i]! / 2) + (b - a) * (L.H.data[i]! - R.W.data[i]! / 2)) / (c - a));
    expect(maxAbsDiff(P.H.data, agg)).toBeLessThan(1e-6);
  });

  it('increment() of a Levy-area interval is its W', () => {
    const bm = make({ shape: [16], seed: 24, levyArea: true });
    const { W } = bm.incrementAndLevyArea(0.2, 0.6);
    expect(Array.from(bm.increment(0.2, 0.6).data)).toEqual(Array.from(W.data));
  });
});

describe('BrownianInterval: additivity and zero increments', () => {
  it('satisfies W(a,c) = W(a,b) + W(b,c) to 1e-6 in float32, in both query orders', () => {
    const bm = make({ shape: [128, 5], seed: 31 });
    const triples = [
      [0, 0.5, 1],
      [0.1, 0.2, 0.3],
      [0.123, 0.1234, 0.9],
      [0.6, 0.61, 0.62],
    ];
    for (const [a, b, c] of triples) {
      const whole = bm.increment(a!, c!).data; // whole first: later split
      expect(maxAbsDiff(whole, add(bm.increment(a!, b!).data, bm.increment(b!, c!).data))).toBeLessThan(1e-6);
    }
    // parts first: the whole is then composed of existing nodes
    const p1 = bm.increment(0.7, 0.75).data;
    const p2 = bm.increment(0.75, 0.8).data;
    expect(maxAbsDiff(bm.increment(0.7, 0.8).data, add(p1, p2))).toBeLessThan(1e-6);
    // and a long chain: the sum of 1000 grid steps is W(0, 1) up to accumulated rounding
    const sum = new Float64Array(640);
    for (const [s, t] of grid(1000)) bm.increment(s, t).data.forEach((x, i) => (sum[i]! += x));
    expect(maxAbsDiff(sum, bm.increment(0, 1).data)).toBeLessThan(1e-5);
  });

  it('is exact to 1e-12 in float64', () => {
    const bm = make({ shape: [32, 4], seed: 32, dtype: 'float64', levyArea: true });
    const whole = bm.incrementAndLevyArea(0.2, 0.9).W.data;
    expect(maxAbsDiff(whole, add(bm.increment(0.2, 0.33).data, bm.increment(0.33, 0.9).data))).toBeLessThan(1e-12);
  });

  it('returns zeros for s == t (W and H), also at the ends', () => {
    const bm = make({ shape: [3, 2], seed: 33, levyArea: true });
    for (const t of [0, 0.5, 1]) {
      const { W, H } = bm.incrementAndLevyArea(t, t);
      expect(Array.from(W.data)).toEqual([0, 0, 0, 0, 0, 0]);
      expect(Array.from(H.data)).toEqual([0, 0, 0, 0, 0, 0]);
      expect(W.shape).toEqual([3, 2]);
    }
    expect(Array.from(bm.increment(0.5, 0.5).data)).toEqual([0, 0, 0, 0, 0, 0]);
  });

  it('handles a scalar motion (shape [])', () => {
    const bm = make({ shape: [], seed: 34 });
    const w = bm.increment(0, 1);
    expect(w.shape).toEqual([]);
    expect(w.data.length).toBe(1);
    expect(Math.abs(w.data[0]! - (bm.increment(0, 0.4).data[0]! + bm.increment(0.4, 1).data[0]!))).toBeLessThan(1e-6);
  });
});

describe('BrownianInterval: determinism', () => {
  const queries = (() => {
    const steps = grid(200).map(([s, t]) => [s, t] as [number, number]);
    const r = rng(7);
    const random = Array.from({ length: 100 }, () => {
      const a = r();
      const b = r();
      return [Math.min(a, b), Math.max(a, b)] as [number, number];
    });
    return [...steps, ...random];
  })();
  const answer = (bm: Interval, [s, t]: readonly [number, number]) =>
    Array.from(bm.incrementAndLevyArea(s, t).W.data).concat(Array.from(bm.incrementAndLevyArea(s, t).H.data));

  it('answers repeated, reversed and shuffled query sequences identically (small cache: recomputed entries)', () => {
    const bm = make({ shape: [32, 3], seed: 41, levyArea: true, cacheSize: 5, dtHint: 0.005 });
    const first = queries.map((q) => answer(bm, q));
    const again = queries.map((q) => answer(bm, q));
    const reversed = [...queries]
      .reverse()
      .map((q) => answer(bm, q))
      .reverse();
    const order = shuffled(
      queries.map((_, i) => i),
      99,
    );
    const shuffledAnswers: number[][] = new Array(queries.length);
    for (const i of order) shuffledAnswers[i] = answer(bm, queries[i]!);
    expect(again).toEqual(first);
    expect(reversed).toEqual(first);
    expect(shuffledAnswers).toEqual(first);
    expect(bm.stats().splitsComputed).toBeGreaterThan(bm.stats().nodes / 2); // entries really were recomputed
  });

  it('agrees exactly between two instances with the same seed and queries; differs across seeds', () => {
    const opts = { shape: [64, 4], levyArea: true, dtHint: 0.01 } as const;
    const a = make({ ...opts, seed: 42 });
    const b = make({ ...opts, seed: 42 });
    const c = make({ ...opts, seed: 43 });
    for (const q of shuffled(queries, 5)) {
      const wa = answer(a, q);
      expect(answer(b, q)).toEqual(wa);
      const wc = answer(c, q);
      expect(wc.filter((x, i) => x === wa[i]).length).toBe(0);
    }
  });

  it('gives the same bits whatever the thread count', () => {
    const start = sdebnn.backend().threads;
    const run = (threads: number) => {
      sdebnn.setNumThreads(threads);
      const bm = make({ shape: [256, 256], seed: 44, levyArea: true });
      return [bm.increment(0.1, 0.7).data, bm.incrementAndLevyArea(0.3, 0.4).H.data];
    };
    try {
      const one = run(1);
      const two = run(2);
      expect(Buffer.compare(Buffer.from(one[0]!.buffer), Buffer.from(two[0]!.buffer))).toBe(0);
      expect(Buffer.compare(Buffer.from(one[1]!.buffer), Buffer.from(two[1]!.buffer))).toBe(0);
    } finally {
      sdebnn.setNumThreads(start);
    }
  });

  it('runs the device (ATen) kernels on CPU to the same values (SDEBNN_BROWNIAN_GENERIC=1)', () => {
    const opts = { shape: [64, 16], seed: 45, levyArea: true, cacheSize: 4, dtHint: 0.05 } as const;
    const fast = make(opts);
    process.env.SDEBNN_BROWNIAN_GENERIC = '1';
    let generic: Interval;
    try {
      generic = make(opts);
    } finally {
      delete process.env.SDEBNN_BROWNIAN_GENERIC;
    }
    let worst = 0;
    for (const q of queries.slice(150, 260)) {
      const f = fast.incrementAndLevyArea(q[0], q[1]);
      const g = generic.incrementAndLevyArea(q[0], q[1]);
      worst = Math.max(worst, maxAbsDiff(f.W.data, g.W.data), maxAbsDiff(f.H.data, g.H.data));
    }
    expect(worst).toBeLessThan(1e-6);
  });
});

describe('BrownianInterval: memory and speed structure', () => {
  it('never holds more than cacheSize entries, over thousands of queries', () => {
    const bm = make({ shape: [16, 4], seed: 51, cacheSize: 10, levyArea: true });
    const r = rng(3);
    let most = 0;
    for (let i = 0; i < 3000; i++) {
      const a = r();
      const b = r();
      bm.incrementAndLevyArea(Math.min(a, b), Math.max(a, b));
      most = Math.max(most, bm.cacheEntries());
    }
    expect(most).toBe(10);
    const stats = bm.stats();
    expect(stats.cacheSize).toBe(10);
    expect(stats.nodes).toBeGreaterThan(3000); // bookkeeping grows with split points, tensors do not
  });

  it('finds a hinted grid cheaply: about one child pair per query, forward then reversed', () => {
    const hinted = make({ shape: [8], seed: 52, dtHint: 1e-3 });
    const steps = grid(1000);
    for (const [s, t] of steps) hinted.increment(s, t);
    for (const [s, t] of [...steps].reverse()) hinted.increment(s, t);
    expect(hinted.stats().splitsComputed / 2000).toBeLessThan(1.4); // 1.27 measured; torchsde's tree sizing gives 1.41
    expect(hinted.stats().cacheEntries).toBe(45);
  });

  it('bounds the pre-split tree for absurdly small hints (at most 2^16 pieces)', () => {
    const bm = make({ shape: [4], seed: 53, dtHint: 1e-12 });
    expect(bm.stats().nodes).toBe(2 ** 17 - 1);
    expect(bm.stats().cacheEntries).toBe(0); // splitting the tree computes no tensors
    expect(bm.increment(0.25, 0.5).data.length).toBe(4);
  });
});

describe('BrownianInterval: errors', () => {
  it('rejects bad options by name before anything native runs', () => {
    expect(() => new BrownianInterval(undefined as never)).toThrow(new TypeError('Expected an object for options but received undefined'));
    expect(() => new BrownianInterval({} as never)).toThrow(new TypeError('Expected an array of sizes for options.shape but received undefined'));
    expect(() => new BrownianInterval({ shape: [3, 0] })).toThrow(new RangeError('Expected positive integer for options.shape[1] but received 0'));
    expect(() => new BrownianInterval({ shape: [2.5] })).toThrow(/options\.shape\[0\]/);
    expect(() => new BrownianInterval({ shape: [2 ** 16, 2 ** 16] })).toThrow(/at most 1073741824 elements for options\.shape/);
    expect(() => new BrownianInterval({ shape: [2], t0: 1, t1: 0 })).toThrow(new RangeError('Expected options.t1 greater than options.t0 (1) but received 0'));
    expect(() => new BrownianInterval({ shape: [2], t1: Infinity })).toThrow(new RangeError('Expected a finite number for options.t1 but received Infinity'));
    expect(() => new BrownianInterval({ shape: [2], t0: '0' as never })).toThrow(new TypeError('Expected a number for options.t0 but received "0"'));
    expect(() => new BrownianInterval({ shape: [2], seed: -1 })).toThrow(/options\.seed/);
    expect(() => new BrownianInterval({ shape: [2], seed: 2 ** 53 })).toThrow(/options\.seed/);
    expect(() => new BrownianInterval({ shape: [2], dtype: 'float16' as never })).toThrow(/options\.dtype/);
    expect(() => new BrownianInterval({ shape: [2], device: 'gpu' as never })).toThrow(/options\.device/);
    expect(() => new BrownianInterval({ shape: [2], dtHint: 0 })).toThrow(new RangeError('Expected a positive number for options.dtHint but received 0'));
    expect(() => new BrownianInterval({ shape: [2], levyArea: 1 as never })).toThrow(new TypeError('Expected a boolean for options.levyArea but received 1'));
    expect(() => new BrownianInterval({ shape: [2], cacheSize: 2 })).toThrow(
      new RangeError('Expected integer in [3, 1000000] for options.cacheSize but received 2'),
    );
    expect(() => new BrownianInterval({ shape: [2], dt: 0.1 } as never)).toThrow(/Unknown option options\.dt;/);
  });

  it.skipIf(sdebnn.backend().cudaAvailable)('refuses cuda without CUDA', () => {
    expect(() => new BrownianInterval({ shape: [2], device: 'cuda' })).toThrow(sdebnn.DeviceUnavailableError);
  });

  it('rejects bad queries by name, in TypeScript and natively', () => {
    const bm = make({ t0: 0, t1: 2, shape: [2], seed: 61, levyArea: false });
    expect(() => bm.increment(0.5, 0.25)).toThrow(new RangeError('Expected s <= t but received s = 0.5 > t = 0.25'));
    expect(() => bm.increment(NaN, 1)).toThrow(new RangeError('Expected a finite number for s but received NaN'));
    expect(() => bm.increment(0, 2.5)).toThrow(new RangeError('Expected a number in [0, 2] for t but received 2.5'));
    expect(() => bm.increment(-0.1, 1)).toThrow(/for s but received -0\.1/);
    expect(() => bm.increment('0' as never, 1)).toThrow(TypeError);
    expect(() => bm.incrementAndLevyArea(0, 1)).toThrow(/levyArea = true/);
    // The engine checks too (for C++ callers), with the same names.
    const raw = bm.nativeHandle;
    const code = { code: 'ERR_INVALID_ARGUMENT' };
    expect(() => raw.increment(0.5, 0.25)).toThrow(expect.objectContaining({ ...code, message: 'increment: expected s <= t but received s=0.5 > t=0.25' }));
    expect(() => raw.increment(NaN, 1)).toThrow(expect.objectContaining({ ...code, message: 'increment: s is NaN' }));
    expect(() => raw.increment(0, NaN)).toThrow(expect.objectContaining({ ...code, message: 'increment: t is NaN' }));
    expect(() => raw.increment(0, 3)).toThrow(expect.objectContaining({ ...code, message: 'increment: t=3 is outside [0, 2]' }));
    expect(() => raw.increment(-1, 1)).toThrow(expect.objectContaining({ ...code, message: 'increment: s=-1 is outside [0, 2]' }));
    expect(() => raw.incrementAndLevyArea(0, 1)).toThrow(expect.objectContaining({ ...code, message: expect.stringMatching(/without levy_area/) }));
    expect(() => raw.incrementInto(0, 1, new Float64Array(2))).toThrow(/expected a Float32Array for W/);
    expect(() => raw.incrementInto(0, 1, new Float32Array(3))).toThrow(/expected 2 elements for W but received 3/);
    expect(() => raw.increment('a' as never, 1)).toThrow(/expected a number for s/);
    // A failed query leaves the instance usable.
    expect(bm.increment(0, 1).data.length).toBe(2);
  });

  it('frees native memory on dispose; later calls throw ERR_DISPOSED', () => {
    const bm = new BrownianInterval({ shape: [4], seed: 62 });
    bm.increment(0, 0.5);
    bm.dispose();
    bm.dispose(); // idempotent
    expect(() => bm.increment(0, 0.5)).toThrow(expect.objectContaining({ code: 'ERR_DISPOSED', name: 'NativeError' }));
    expect(() => bm.cacheEntries()).toThrow(expect.objectContaining({ code: 'ERR_DISPOSED' }));
    expect(() => bm.nativeHandle.increment(0, 0.5)).toThrow(expect.objectContaining({ code: 'ERR_DISPOSED' }));
  });

  it('rejects malformed native construction without crashing', () => {
    const Native = native().BrownianInterval;
    expect(() => new Native(undefined as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
    expect(() => new Native({ shape: [2], cacheSize: 1 } as never)).toThrow(/cache_size >= 3/);
    expect(() => new Native({ shape: [2], t0: 1, t1: 1 } as never)).toThrow(/finite t0 < t1/);
  });
});
