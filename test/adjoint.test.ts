// Gradients through SDE solves: the stochastic adjoint against backprop on the same Brownian
// path, both against finite differences, Ito conversion against the exact Ito gradient.
import { describe, expect, it } from 'vitest';
import { sdebnn } from './helpers';

const { SDE, BrownianInterval, sdeint, sdeintGradients } = sdebnn;
type Tensor = import('../dist/tensor').Tensor;
type NeuralSpec = import('../dist/sde').NeuralSpec;

function seeded(n: number, seed: number, scale = 1): Float64Array {
  // A small LCG: fixed numbers without depending on the library under test.
  let s = seed >>> 0;
  return Float64Array.from({ length: n }, () => {
    s = (1664525 * s + 1013904223) >>> 0;
    return (s / 2 ** 32 - 0.5) * 2 * scale;
  });
}

function flatGrads(r: { gradY0: Tensor; gradParams: Record<string, Tensor> }): number[] {
  return [
    ...r.gradY0.data,
    ...Object.keys(r.gradParams)
      .sort()
      .flatMap((k) => [...r.gradParams[k]!.data]),
  ];
}

function relativeError(a: number[], b: number[]): number {
  let num = 0,
    den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i]! - b[i]!) ** 2;
    den += b[i]! ** 2;
  }
  return Math.sqrt(num / den);
}

const B = 8,
  D = 3;
const ts = [0, 0.5, 1];
const y0 = { data: seeded(B * D, 1, 0.8), shape: [B, D] };
const gradYs = { data: seeded(3 * B * D, 2), shape: [3, B, D] };

function neural(noiseType: NeuralSpec['noiseType'], sdeType: 'ito' | 'stratonovich' = 'stratonovich'): InstanceType<typeof SDE> {
  const diffusion =
    noiseType === 'additive'
      ? { kind: 'constant' as const, init: 0.3 }
      : noiseType === 'diagonal'
        ? { kind: 'scaled_tanh' as const, offset: 0.1 }
        : { kind: 'mlp' as const, hidden: [8], timeInput: true, offset: 0.05 };
  return new SDE({
    type: 'neural',
    d: D,
    m: noiseType === 'general' ? 2 : undefined,
    noiseType,
    sdeType,
    drift: { hidden: [16], activation: 'tanh', timeInput: true },
    diffusion,
    dtype: 'float64',
    seed: 3,
  });
}

function bmFor(sde: InstanceType<typeof SDE>, seed = 9) {
  const m = sde.noiseType === 'general' ? 2 : sde.noiseType === 'scalar' ? 1 : D;
  return new BrownianInterval({ t0: 0, t1: 1, shape: [B, m], seed, dtype: 'float64' });
}

describe('adjoint against backprop on the same Brownian path', () => {
  it.each(['diagonal', 'scalar', 'additive', 'general'] as const)(
    'midpoint, 200 steps, %s noise: relative error under 1e-3 and falling with dt',
    async (noise) => {
      const sde = neural(noise);
      const bm = bmFor(sde);
      const errorAt = async (steps: number) => {
        const bp = await sdeintGradients(sde, y0, ts, gradYs, { method: 'midpoint', dt: 1 / steps, bm });
        const adj = await sdeintGradients(sde, y0, ts, gradYs, { method: 'midpoint', dt: 1 / steps, bm, adjoint: true, adjointMethod: 'midpoint' });
        expect(Array.from(adj.ys.data)).toEqual(Array.from(bp.ys.data));
        return relativeError(flatGrads(adj), flatGrads(bp));
      };
      const coarse = await errorAt(50);
      const fine = await errorAt(200);
      expect(fine).toBeLessThan(1e-3);
      expect(fine).toBeLessThan(coarse);
    },
  );

  it('reversible Heun: the exact adjoint equals backprop to 1e-8', async () => {
    const sde = neural('diagonal');
    const bm = bmFor(sde);
    const opts = { method: 'reversible_heun' as const, dt: 1 / 100, bm };
    const bp = await sdeintGradients(sde, y0, ts, gradYs, opts);
    const adj = await sdeintGradients(sde, y0, ts, gradYs, { ...opts, adjoint: true, adjointMethod: 'reversible_heun' });
    expect(relativeError(flatGrads(adj), flatGrads(bp))).toBeLessThan(1e-8);
    expect(adj.adjointStats.stepsAccepted).toBe(100);
  });

  it('heun and euler_heun adjoints agree with backprop too', async () => {
    const sde = neural('diagonal');
    const bm = bmFor(sde);
    for (const method of ['heun', 'euler_heun'] as const) {
      const bp = await sdeintGradients(sde, y0, ts, gradYs, { method, dt: 1 / 200, bm });
      const adj = await sdeintGradients(sde, y0, ts, gradYs, { method, dt: 1 / 200, bm, adjoint: true, adjointMethod: method });
      expect(relativeError(flatGrads(adj), flatGrads(bp)), method).toBeLessThan(2e-3);
    }
  });
});

describe('the adaptive adjoint: adjointAdaptive, adjointRtol and adjointAtol', () => {
  // The forward solve is fine (midpoint, dt 1/2000) and the same for every run, so backprop through
  // it is the pathwise gradient to ~1e-5 and what changes is only the backward solve. Which steps an
  // adaptive solve accepts turns on the last bits (kernels that agree to 1e-16 per step take other
  // step sequences at rtol 1e-4), and one path's error moves by 2-3x with them, so errors are
  // compared as medians over six Brownian paths. Measured medians of the relative error against
  // backprop: 6.5e-3 (rtol 1e-2, atol 1e-3; ~11 steps), 1.6e-3-1.8e-3 (1e-3, 1e-4; ~45 steps),
  // 2.4e-4-2.7e-4 (1e-4, 1e-5; ~200 steps); on the first path, atol alone: 3.1e-4 (206 steps) at
  // 1e-6, 5.2e-3 (8) at 1e-2; fixed steps of adjointDt 0.05: 5.3e-3 (20 steps).
  it('tighter tolerances take more backward steps and come closer to backprop; atol alone changes the solve', async () => {
    const sde = neural('diagonal');
    const median = (v: number[]) => {
      const sorted = [...v].sort((a, b) => a - b);
      return (sorted[(sorted.length - 1) >> 1]! + sorted[sorted.length >> 1]!) / 2;
    };
    const runs: Record<'loose' | 'middle' | 'tight', number[]> = { loose: [], middle: [], tight: [] };
    for (const seed of [9, 10, 11, 12, 13, 14]) {
      const forward = { method: 'midpoint' as const, dt: 1 / 2000, bm: bmFor(sde, seed) };
      const bp = flatGrads(await sdeintGradients(sde, y0, ts, gradYs, forward));
      const adjoint = async (options: object) => {
        const r = await sdeintGradients(sde, y0, ts, gradYs, { ...forward, adjoint: true, adjointMethod: 'midpoint', adjointDt: 0.05, ...options });
        return { error: relativeError(flatGrads(r), bp), stats: r.adjointStats };
      };
      const loose = await adjoint({ adjointAdaptive: true, adjointRtol: 1e-2, adjointAtol: 1e-3 });
      const middle = await adjoint({ adjointAdaptive: true, adjointRtol: 1e-3, adjointAtol: 1e-4 });
      const tight = await adjoint({ adjointAdaptive: true, adjointRtol: 1e-4, adjointAtol: 1e-5 });
      expect(middle.stats.stepsRejected, `path ${seed}`).toBeGreaterThan(0);
      expect(middle.stats.stepsAccepted, `path ${seed}`).toBeGreaterThan(2 * loose.stats.stepsAccepted);
      expect(tight.stats.stepsAccepted, `path ${seed}`).toBeGreaterThan(2 * middle.stats.stepsAccepted);
      runs.loose.push(loose.error);
      runs.middle.push(middle.error);
      runs.tight.push(tight.error);
      if (seed !== 9) continue;
      const fixed = await adjoint({});
      expect(fixed.stats).toMatchObject({ stepsAccepted: 20, stepsRejected: 0 });
      const smallAtol = await adjoint({ adjointAdaptive: true, adjointRtol: 1e-3, adjointAtol: 1e-6 });
      const largeAtol = await adjoint({ adjointAdaptive: true, adjointRtol: 1e-3, adjointAtol: 1e-2 });
      expect(smallAtol.stats.stepsAccepted).toBeGreaterThan(5 * largeAtol.stats.stepsAccepted);
      expect(smallAtol.error).toBeLessThan(largeAtol.error / 3);
    }
    const [loose, middle, tight] = [median(runs.loose), median(runs.middle), median(runs.tight)];
    expect(middle).toBeLessThan(loose / 3);
    expect(tight).toBeLessThan(middle / 3);
    expect(middle).toBeLessThan(3e-3);
    expect(tight).toBeLessThan(5e-4);
  });
});

// A neural SDE with a hand-written diffusion (scaled_tanh, or constant for additive noise), solved
// with gradients through ts with 20 steps: the kernels' routes against each other.
const solve = (
  kernels: 'fast' | 'fused' | 'autograd',
  dtype: 'float32' | 'float64',
  activation: 'tanh' | 'softplus' | 'relu' | 'sigmoid',
  additive: boolean,
  sdeType: 'ito' | 'stratonovich',
  options: object,
) => {
  const sde = new SDE({
    type: 'neural',
    d: D,
    noiseType: additive ? 'additive' : 'diagonal',
    sdeType,
    dtype,
    kernels,
    seed: 5,
    drift: { hidden: [16, 8], activation, timeInput: true },
    diffusion: additive ? { kind: 'constant', init: 0.3 } : { kind: 'scaled_tanh', init: 0.4, offset: 0.2 },
  });
  const cast = (t: { data: Float64Array; shape: number[] }) => ({ data: dtype === 'float32' ? Float32Array.from(t.data) : t.data, shape: t.shape });
  return sdeintGradients(sde, cast(y0), ts, cast(gradYs), { ...options, dt: 1 / 20, seed: 4 });
};

describe("the neural SDE's hand-written kernels against autograd", () => {
  // kernels 'fused' (one graph node per step, no autograd in the adjoint) against 'autograd', on
  // the same Brownian path: equal to round-off in float64 (1e-10) and float32 (1e-5), for every
  // activation, both diffusions, Ito (with the correction's derivatives) and Stratonovich.
  const routes = [
    ['euler backprop', 'ito', { method: 'euler' }],
    ['euler, adjoint by midpoint (Ito correction)', 'ito', { method: 'euler', adjoint: true, adjointMethod: 'midpoint' }],
    ['midpoint adjoint', 'stratonovich', { method: 'midpoint', adjoint: true, adjointMethod: 'midpoint' }],
    ['euler_heun adjoint', 'stratonovich', { method: 'euler_heun', adjoint: true, adjointMethod: 'euler_heun' }],
    ['reversible Heun adjoint', 'stratonovich', { method: 'reversible_heun', adjoint: true, adjointMethod: 'reversible_heun' }],
  ] as const;
  it.each(['float64', 'float32'] as const)('%s: every route, activation and diffusion', async (dtype) => {
    const tolerance = dtype === 'float64' ? 1e-10 : 1e-5;
    for (const [name, sdeType, options] of routes) {
      for (const activation of ['tanh', 'softplus', 'relu', 'sigmoid'] as const) {
        for (const additive of [false, true]) {
          if (additive && name.startsWith('euler,')) continue; // additive noise: the Ito correction is zero
          const fused = await solve('fused', dtype, activation, additive, sdeType, options);
          const reference = await solve('autograd', dtype, activation, additive, sdeType, options);
          const label = `${name}, ${activation}, ${additive ? 'constant' : 'scaled_tanh'}`;
          expect(relativeError(Array.from(fused.ys.data), Array.from(reference.ys.data)), label).toBeLessThan(tolerance);
          expect(relativeError(flatGrads(fused), flatGrads(reference)), label).toBeLessThan(tolerance);
          for (const k of Object.keys(reference.gradParams)) {
            expect(relativeError(Array.from(fused.gradParams[k]!.data), Array.from(reference.gradParams[k]!.data)), `${label}: ${k}`).toBeLessThan(tolerance);
          }
        }
      }
    }
  });
});

describe("the fused route's drift kernel at other shapes, against autograd", () => {
  // The fused route's adjoint evaluates the drift MLP by the raw CPU kernel, whose batch-1 layout
  // (t kept in the input) and W5's size (rows split between threads) the cases above do not reach.
  const neuralAt = (kernels: 'fused' | 'autograd', d: number, hidden: number[], dtype: 'float32' | 'float64') =>
    new SDE({
      type: 'neural',
      d,
      noiseType: 'diagonal',
      sdeType: 'stratonovich',
      dtype,
      kernels,
      seed: 6,
      drift: { hidden, activation: 'tanh', timeInput: true },
      diffusion: { kind: 'scaled_tanh', init: 0.4, offset: 0.2 },
    });
  const cases = [
    ['batch 1, float64', 1, 3, [16, 8], 'float64', 1e-10],
    ["W5's shape (batch 256, d 128), float32", 256, 128, [128], 'float32', 1e-5],
  ] as const;
  it.each(cases)('%s: midpoint, heun and euler_heun adjoints', async (_name, batch, d, hidden, dtype, tolerance) => {
    const Float = dtype === 'float64' ? Float64Array : Float32Array;
    const start = { data: Float.from({ length: batch * d }, (_, i) => 0.5 * Math.sin(i + 1)), shape: [batch, d] };
    const g = { data: Float.from({ length: 2 * batch * d }, (_, i) => Math.cos(i)), shape: [2, batch, d] };
    for (const method of ['midpoint', 'heun', 'euler_heun'] as const) {
      const options = { method, dt: 0.1, seed: 3, adjoint: true, adjointMethod: method };
      const fused = await sdeintGradients(neuralAt('fused', d, [...hidden], dtype), start, [0, 1], g, options);
      const reference = await sdeintGradients(neuralAt('autograd', d, [...hidden], dtype), start, [0, 1], g, options);
      expect(fused.route).toBe('fused');
      expect(reference.route).toBe('autograd');
      expect(relativeError(Array.from(fused.ys.data), Array.from(reference.ys.data)), method).toBeLessThan(tolerance);
      expect(relativeError(flatGrads(fused), flatGrads(reference)), method).toBeLessThan(tolerance);
      expect(fused.adjointStats.nfe, method).toBe(reference.adjointStats.nfe);
    }
  });
});

describe("the neural SDE's buffered route (kernels 'fast') against autograd", () => {
  // Fixed-step Euler on CPU: backprop runs the buffered solver's reverse sweep, and for additive
  // noise the Euler adjoint too; equal to autograd's to round-off, through two output times.
  it.each(['float64', 'float32'] as const)('%s: euler backprop (both diffusions), the euler adjoint of additive noise', async (dtype) => {
    const tolerance = dtype === 'float64' ? 1e-10 : 1e-5;
    const cases = [
      [false, { method: 'euler' }],
      [true, { method: 'euler' }],
      [true, { method: 'euler', adjoint: true, adjointMethod: 'euler' }],
    ] as const;
    for (const [additive, options] of cases) {
      for (const activation of ['tanh', 'softplus', 'relu', 'sigmoid'] as const) {
        const fast = await solve('fast', dtype, activation, additive, 'ito', options);
        const reference = await solve('autograd', dtype, activation, additive, 'ito', options);
        const label = `${JSON.stringify(options)}, ${activation}, ${additive ? 'constant' : 'scaled_tanh'}`;
        expect(fast.route, label).toBe('buffered');
        expect(reference.route, label).toBe('autograd');
        expect(relativeError(Array.from(fast.ys.data), Array.from(reference.ys.data)), label).toBeLessThan(tolerance);
        expect(relativeError(flatGrads(fast), flatGrads(reference)), label).toBeLessThan(tolerance);
        expect(fast.stats).toEqual(reference.stats);
        if ('adjoint' in options) expect(fast.adjointStats.nfe, label).toBe(reference.adjointStats.nfe);
      }
    }
    // other methods and the adjoint of diagonal noise keep the general solver with the fused kernels
    const midpoint = await solve('fast', dtype, 'tanh', false, 'ito', { method: 'euler', adjoint: true, adjointMethod: 'midpoint' });
    expect(midpoint.route).toBe('fused');
  });

  it("at W5's shape (batch 256, d 128: BLAS for the drift's products), float32, 10 steps", async () => {
    const sde = (kernels: 'fast' | 'autograd') =>
      new SDE({
        type: 'neural',
        d: 128,
        noiseType: 'diagonal',
        kernels,
        seed: 0,
        drift: { hidden: [128], activation: 'tanh' },
        diffusion: { kind: 'scaled_tanh', init: 0.1, offset: 0.1 },
      });
    const start = { data: Float32Array.from({ length: 256 * 128 }, (_, i) => 0.5 * Math.sin(i)), shape: [256, 128] };
    const g = { data: Float32Array.from({ length: 2 * 256 * 128 }, (_, i) => (i < 256 * 128 ? 0 : Math.cos(i))), shape: [2, 256, 128] };
    const a = await sdeintGradients(sde('fast'), start, [0, 1], g, { method: 'euler', dt: 0.1, seed: 3 });
    const b = await sdeintGradients(sde('autograd'), start, [0, 1], g, { method: 'euler', dt: 0.1, seed: 3 });
    expect(a.route).toBe('buffered');
    expect(relativeError(Array.from(a.ys.data), Array.from(b.ys.data))).toBeLessThan(1e-5);
    expect(relativeError(flatGrads(a), flatGrads(b))).toBeLessThan(1e-5);
    // the drift's products split by rows between threads: the same bits on 1 and 2 threads
    const threads = sdebnn.backend().threads;
    try {
      sdebnn.setNumThreads(threads === 1 ? 2 : 1);
      const c = await sdeintGradients(sde('fast'), start, [0, 1], g, { method: 'euler', dt: 0.1, seed: 3 });
      expect(flatGrads(c)).toEqual(flatGrads(a));
    } finally {
      sdebnn.setNumThreads(threads);
    }
  });
});

describe('finite differences', () => {
  it('backprop and adjoint match central differences of the solution on a small problem', async () => {
    const sde = new SDE({
      type: 'neural',
      d: 2,
      noiseType: 'diagonal',
      sdeType: 'stratonovich',
      drift: { hidden: [4] },
      diffusion: { kind: 'scaled_tanh', offset: 0.1 },
      dtype: 'float64',
      seed: 5,
    });
    const x0 = { data: Float64Array.from([0.3, -0.4, 0.1, 0.7]), shape: [2, 2] };
    const bm = new BrownianInterval({ t0: 0, t1: 1, shape: [2, 2], seed: 4, dtype: 'float64' });
    const opts = { method: 'midpoint' as const, dt: 1 / 64, bm };
    const weights = Float64Array.from([1.0, -2.0, 0.5, 1.5]);
    const loss = async (state: typeof x0) => {
      const { ys } = await sdeint(sde, state, [0, 1], opts);
      return ys.data.subarray(4).reduce((acc, v, i) => acc + weights[i]! * v, 0);
    };
    const g = { data: new Float64Array(8), shape: [2, 2, 2] };
    g.data.set(weights, 4);
    const bp = await sdeintGradients(sde, x0, [0, 1], g, opts);
    const adj = await sdeintGradients(sde, x0, [0, 1], g, { ...opts, adjoint: true });
    const h = 1e-6;
    // dL/dy0
    for (let i = 0; i < 4; i++) {
      const plus = { data: Float64Array.from(x0.data), shape: x0.shape };
      const minus = { data: Float64Array.from(x0.data), shape: x0.shape };
      plus.data[i]! += h;
      minus.data[i]! -= h;
      const fd = ((await loss(plus)) - (await loss(minus))) / (2 * h);
      expect(bp.gradY0.data[i]).toBeCloseTo(fd, 6);
      expect(Math.abs(adj.gradY0.data[i]! - fd)).toBeLessThan(5e-3 * Math.max(1, Math.abs(fd)));
    }
    // dL/dtheta for a few entries of each parameter
    const params = sde.parameters();
    for (const name of Object.keys(params)) {
      const p = params[name]!;
      for (const i of [0, p.data.length - 1]) {
        const orig = p.data[i]!;
        const set = (v: number) => {
          const data = Float64Array.from(p.data);
          data[i] = v;
          sde.setParameter(name, { data, shape: p.shape });
        };
        set(orig + h);
        const up = await loss(x0);
        set(orig - h);
        const down = await loss(x0);
        set(orig);
        const fd = (up - down) / (2 * h);
        expect(bp.gradParams[name]!.data[i], `${name}[${i}]`).toBeCloseTo(fd, 6);
        expect(Math.abs(adj.gradParams[name]!.data[i]! - fd), `${name}[${i}] adjoint`).toBeLessThan(5e-3 * Math.max(1, Math.abs(fd)));
      }
    }
  });
});

describe('Ito SDEs: the adjoint converts to Stratonovich', () => {
  it('matches the exact Ito gradient of geometric Brownian motion, which the unconverted SDE would miss', async () => {
    // Y_T = Y_0 exp((mu - sigma^2/2) T + sigma W_T):  dY_T/dmu = T Y_T,  dY_T/dsigma = (W_T - sigma T) Y_T.
    const n = 256,
      mu = 0.3,
      sigma = 0.6;
    const sde = new SDE({ type: 'gbm', mu: [mu], sigma: [sigma], sdeType: 'ito', dtype: 'float64' });
    const bm = new BrownianInterval({ t0: 0, t1: 1, shape: [n, 1], seed: 21, dtype: 'float64' });
    const x0 = { data: new Float64Array(n).fill(1), shape: [n, 1] };
    const w = bm.increment(0, 1);
    const exact = sde.exact(x0, 1, w).data;
    let dMu = 0,
      dSigma = 0,
      strat = 0;
    for (let i = 0; i < n; i++) {
      dMu += exact[i]! / n;
      dSigma += ((w.data[i]! - sigma) * exact[i]!) / n;
      strat += (w.data[i]! * exact[i]!) / n;
    }
    const g = { data: new Float64Array(2 * n), shape: [2, n, 1] };
    g.data.fill(1 / n, n);
    for (const method of ['euler', 'milstein'] as const) {
      const adj = await sdeintGradients(sde, x0, [0, 1], g, { method, dt: 1 / 2000, bm, adjoint: true, adjointMethod: 'midpoint' });
      const bp = await sdeintGradients(sde, x0, [0, 1], g, { method, dt: 1 / 2000, bm });
      for (const [route, r] of [
        ['adjoint', adj],
        ['backprop', bp],
      ] as const) {
        expect(Math.abs(r.gradParams.mu!.data[0]! / dMu - 1), `${method} ${route} mu`).toBeLessThan(2e-2);
        expect(Math.abs(r.gradParams.sigma!.data[0]! - dSigma), `${method} ${route} sigma`).toBeLessThan(2e-2 * Math.abs(dSigma) + 2e-3);
      }
    }
    // Without the conversion the gradient would be that of the Stratonovich solution: far off.
    expect(Math.abs(strat - dSigma)).toBeGreaterThan(0.3);
  });
});

describe('bad adjoint options', () => {
  const sde = neural('diagonal');
  it('names what the adjoint supports', () => {
    expect(() => sdeintGradients(sde, y0, ts, gradYs, { method: 'midpoint', adjoint: true, adjointMethod: 'euler' })).toThrow(
      /adjointMethod 'euler' cannot solve the adjoint of a diagonal-noise SDE; use 'midpoint', 'heun' or 'euler_heun'/,
    );
    expect(() => sdeintGradients(sde, y0, ts, gradYs, { method: 'midpoint', adjoint: true, adjointMethod: 'reversible_heun' })).toThrow(
      /needs method 'reversible_heun'/,
    );
    expect(() => sdeintGradients(sde, y0, ts, { data: new Float64Array(3), shape: [3] }, {})).toThrow(/Expected gradYs of shape \[3, 8, 3\]/);
    expect(() => sdeintGradients(sde, y0, ts, gradYs, { adjointDt: 0 })).toThrow(/positive number for options\.adjointDt/);
  });
});
