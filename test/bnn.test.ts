// SDE-BNN: the method's defining numbers (integration to t = 1, the KL with its 1/2, the
// estimators), gradients (fused VJPs vs autograd, backprop vs adjoint), training, checkpoints,
// and the errors users see. Fixed seeds throughout; tolerances are stated per check.
import { describe, expect, it } from 'vitest';
import { sdebnn } from './helpers';

const { SdeBnn } = sdebnn;
type Config = NonNullable<ConstructorParameters<typeof SdeBnn>[0]>;
type Tensor = { data: Float32Array | Float64Array; shape: number[] };

// 1D regression data: 16 points on [-1, 1], target cos(4x).
const B = 16;
const x1d = Float64Array.from({ length: B }, (_, i) => -1 + (2 * i) / (B - 1));
const y1d = Float64Array.from(x1d, (v) => Math.cos(4 * v));
const tiny: Config = { kind: 'mlp', dtype: 'float64', seed: 3, hidden: [16, 16], hypernet: { hidden: [16] }, sigma: 0.2 };

function relativeError(a: Record<string, Tensor>, b: Record<string, Tensor>): number {
  let num = 0;
  let den = 0;
  for (const name of Object.keys(b)) {
    const p = a[name]!.data;
    const q = b[name]!.data;
    for (let i = 0; i < q.length; i++) {
      num += (p[i]! - q[i]!) ** 2;
      den += q[i]! ** 2;
    }
  }
  return Math.sqrt(num / den);
}

function withEntries(state: Record<string, Tensor>, name: string, fill: (i: number) => number): Record<string, Tensor> {
  const t = state[name]!;
  const data = Float64Array.from(t.data, (_, i) => fill(i));
  return { [name]: { data, shape: t.shape } };
}

describe('SdeBnn integration', () => {
  it('integrates the weight SDE all the way to t = 1 (the OU prior mean decays by (1 - dt)^N -> e^-1)', async () => {
    // g = 0 at initialisation (zero last layer), sigma tiny: w_1 = w_0 (1 - 1/N)^N + O(sigma).
    // The reference JAX solver stops near t = 0.53 (10 of 19 steps advance): ratio 0.95^10 = 0.60.
    for (const steps of [20, 200]) {
      const model = new SdeBnn({ ...tiny, sigma: 1e-3, solver: { steps } });
      const [block] = await model.diagnose(x1d, { seed: 1 });
      expect(block!.tEnd).toBe(1);
      expect(block!.steps).toBe(steps);
      let num = 0;
      let den = 0;
      block!.w0.data.forEach((w0, i) => {
        num += w0 * block!.w1.data[i]!;
        den += w0 * w0;
      });
      const ratio = num / den; // least-squares slope of w_1 on w_0
      expect(Math.abs(ratio - (1 - 1 / steps) ** steps)).toBeLessThan(2e-3); // noise: sigma ~0.66e-3 per weight, 800 weights
      expect(Math.abs(ratio - Math.exp(-1))).toBeLessThan(steps === 200 ? 3e-3 : 1.2e-2);
      model.dispose();
    }
    // Every training step reports the time reached and the steps taken.
    const model = new SdeBnn({ ...tiny, solver: { steps: 7 } });
    const step = await model.trainStep(x1d, y1d);
    expect(step.tEnd).toBe(1);
    expect(step.steps).toBe(7);
    expect(step.nfe).toBe(14); // drift and noise once per Euler step
  });

  it('accumulates KL = integral of 1/2 ||g / sigma||^2 dt (constant g: exact; g = c + d t: the Riemann sum, converging to the integral)', async () => {
    const sigma = 0.5;
    // Constant g = c: last hypernetwork layer W = 0, b = c. KL = 0.5 ||c||^2 / sigma^2 for any step count.
    const model = new SdeBnn({ ...tiny, sigma, solver: { steps: 7 } });
    const bias = withEntries(model.getState(), 'blocks.0.hypernet.1.bias', (i) => 0.3 * Math.sin(i + 1));
    model.setState(bias, { strict: false });
    const c2 = bias['blocks.0.hypernet.1.bias']!.data.reduce((a, v) => a + v * v, 0);
    const [block] = await model.diagnose(x1d, { seed: 1 });
    expect(block!.kl).toBeCloseTo((0.5 * c2) / sigma ** 2, 9); // with the 1/2 (the JAX reference omits it: twice this)
    expect(Math.abs(block!.kl - c2 / sigma ** 2)).toBeGreaterThan(10);

    // g(t) = c + d t: identity hidden unit z = t (weights on w zero, on t one), output d z + c.
    const steps = 50;
    for (const method of ['euler', 'midpoint'] as const) {
      const m = new SdeBnn({ ...tiny, sigma, hypernet: { hidden: [1], activation: 'identity' }, solver: { method, steps } });
      const s = m.getState();
      const wd = m.wDim;
      m.setState(
        {
          ...withEntries(s, 'blocks.0.hypernet.0.weight', (i) => (i === wd ? 1 : 0)),
          ...withEntries(s, 'blocks.0.hypernet.0.bias', () => 0),
          ...withEntries(s, 'blocks.0.hypernet.1.weight', (i) => 0.2 * Math.cos(i)),
          ...withEntries(s, 'blocks.0.hypernet.1.bias', (i) => 0.1 * Math.sin(i)),
        },
        { strict: false },
      );
      let cc = 0;
      let cd = 0;
      let dd = 0;
      for (let i = 0; i < wd; i++) {
        const c = 0.1 * Math.sin(i);
        const d = 0.2 * Math.cos(i);
        cc += c * c;
        cd += c * d;
        dd += d * d;
      }
      const rate = (t: number) => (0.5 * (cc + 2 * cd * t + dd * t * t)) / sigma ** 2;
      // Euler evaluates the rate at t_k, midpoint at t_k + dt/2.
      let sum = 0;
      for (let k = 0; k < steps; k++) sum += rate((k + (method === 'midpoint' ? 0.5 : 0)) / steps) / steps;
      const integral = (0.5 * (cc + cd + dd / 3)) / sigma ** 2;
      const [b] = await m.diagnose(x1d, { seed: 2 });
      expect(Math.abs(b!.kl - sum) / sum).toBeLessThan(1e-12);
      expect(Math.abs(b!.kl - integral) / integral).toBeLessThan(method === 'euler' ? 2e-2 : 1e-4);
    }
  });
});

describe('SdeBnn KL estimators', () => {
  it('stl has zero gradient variance at posterior = prior where fmc does not (w.r.t. the hypernetwork)', async () => {
    const variance: Record<string, number> = {};
    for (const estimator of ['ckl', 'fmc', 'stl'] as const) {
      const model = new SdeBnn({ ...tiny, estimator });
      const grads: Record<string, Tensor>[] = [];
      for (let s = 0; s < 12; s++) grads.push((await model.gradients(x1d, y1d, { seed: 100 + s, objective: 'kl' })).grads);
      let v = 0;
      for (const name of model.parameterNames.filter((n) => n.includes('hypernet'))) {
        for (let i = 0; i < grads[0]![name]!.data.length; i++) {
          const mean = grads.reduce((a, g) => a + g[name]!.data[i]!, 0) / grads.length;
          v += grads.reduce((a, g) => a + (g[name]!.data[i]! - mean) ** 2, 0) / (grads.length - 1);
        }
      }
      variance[estimator] = v;
    }
    // fmc's u . dB gradient is (1/sigma) sum_k a_k dB_k^T for the last layer: variance of order 1e4 here.
    expect(variance.fmc).toBeGreaterThan(1e3);
    expect(variance.stl).toBeLessThan(1e-20); // exactly zero: u = 0 and du/dw = 0 there
    expect(variance.ckl).toBeLessThan(1e-20);
  });

  it('the u . dB term agrees between Ito (euler) and Stratonovich (midpoint with the -1/2 tr(dg/dw) drift) path by path', async () => {
    // Ito: integral u . dB. Stratonovich: integral u o dB = Ito + 1/2 integral tr(dg/dw) dt, so the
    // Stratonovich solve carries the drift -1/2 tr(dg/dw) on kl_dB. With the last layer aligned to
    // the first (W_L = alpha (W_1 ... W_0w)^T) the trace is large; with identity activations it is a
    // constant we can compute here. The per-path gap then shrinks with dt, while a missing or wrong
    // correction leaves a gap of 1/2 tr (about 5 here).
    for (const [hidden, activation] of [[[16], 'identity'], [[12, 8], 'identity'], [[16], 'tanh']] as const) {
      const gaps: number[] = [];
      let halfTrace = 0;
      for (const seed of [4, 5, 6]) {
        const klDb: number[] = [];
        for (const method of ['euler', 'midpoint'] as const) {
          const m = new SdeBnn({ ...tiny, estimator: 'fmc', hypernet: { hidden: [...hidden], activation }, solver: { method, steps: 200 } });
          const s = m.getState();
          const wd = m.wDim;
          const w0 = s['blocks.0.hypernet.0.weight']!; // [h0, wd + 1]
          const h0 = w0.shape[0]!;
          // P = W_{L-2} ... W_1 W_0w  ([h_last, wd]); W_L = alpha P^T; identity: tr(dg/dw) = alpha ||P||_F^2
          let p = Array.from({ length: h0 }, (_, a) => Array.from({ length: wd }, (_, i) => w0.data[a * (wd + 1) + i]!));
          for (let l = 1; l < hidden.length; l++) {
            const w = s[`blocks.0.hypernet.${l}.weight`]!;
            const [rows, cols] = w.shape as [number, number];
            p = Array.from({ length: rows }, (_, r) =>
              Array.from({ length: wd }, (_, i) => {
                let acc = 0;
                for (let c = 0; c < cols; c++) acc += w.data[r * cols + c]! * p[c]![i]!;
                return acc;
              }),
            );
          }
          const frobenius2 = p.reduce((a, row) => a + row.reduce((b, v) => b + v * v, 0), 0);
          const alpha = 10 / frobenius2; // identity activations: tr(dg/dw) = 10
          const last = `blocks.0.hypernet.${hidden.length}.weight`;
          const h = p.length;
          const data = new Float64Array(wd * h);
          for (let i = 0; i < wd; i++) for (let k = 0; k < h; k++) data[i * h + k] = alpha * p[k]![i]!;
          halfTrace = 0.5 * alpha * frobenius2;
          m.setState({ [last]: { data, shape: s[last]!.shape } }, { strict: false });
          const [b] = await m.diagnose(x1d, { seed });
          klDb.push(b!.klDb);
          m.dispose();
        }
        gaps.push(Math.abs(klDb[1]! - klDb[0]!));
      }
      expect(halfTrace).toBeCloseTo(5, 9);
      // with the correction: gaps of 0.05 to 0.4 (discretisation, strong order 1/2); without: about 5 (tanh: 0.5 to 1 times 5)
      for (const gap of gaps) expect(gap, `${activation} [${hidden.join(', ')}]`).toBeLessThan(0.15 * halfTrace);
    }
  });
  it('stl evaluates u at w_t: its u . dB value equals fmc\'s on the same path (only the gradients differ)', async () => {
    const klDb: number[] = [];
    for (const estimator of ['fmc', 'stl'] as const) {
      const m = new SdeBnn({ ...tiny, estimator, solver: { steps: 50 } });
      m.setState(withEntries(m.getState(), 'blocks.0.hypernet.1.weight', (i) => 0.3 * Math.sin(5 * i)), { strict: false });
      const [b] = await m.diagnose(x1d, { seed: 11 });
      klDb.push(b!.klDb);
    }
    expect(Math.abs(klDb[0]!)).toBeGreaterThan(1e-3);
    expect(klDb[1]).toBe(klDb[0]); // the JAX reference's u(w_0) would give a different number
  });

});

describe('SdeBnn gradients', () => {
  const trained = async (config: Config, x: Float64Array, y: Float64Array | number[]) => {
    const model = new SdeBnn(config);
    for (let k = 0; k < 3; k++) await model.trainStep(x, y, { lr: 1e-2, beta: 1 }); // move the hypernetwork off zero
    return model;
  };

  it('hand-written VJPs equal autograd (mlp with time input and a 2-hidden-layer hypernetwork; conv over two stages), float64', async () => {
    for (const estimator of ['ckl', 'fmc', 'stl'] as const) {
      for (const method of ['euler', 'midpoint'] as const) {
        // kernels 'fused': the generic engine's fused nodes (the fast path has its own test below)
        const config: Config = { ...tiny, timeInput: true, hypernet: { hidden: [12, 8], activation: 'tanh' }, estimator, solver: { method, steps: 8 }, kernels: 'fused' };
        const fused = await trained(config, x1d, y1d);
        const reference = new SdeBnn({ ...config, kernels: 'autograd' });
        reference.setState(fused.getState());
        const a = await fused.gradients(x1d, y1d, { seed: 5, beta: 10 });
        const b = await reference.gradients(x1d, y1d, { seed: 5, beta: 10 });
        expect(a.loss).toBe(b.loss);
        expect(relativeError(a.grads, b.grads)).toBeLessThan(1e-12);
      }
    }
    // conv: two stages at 8x8; and 28x28 with a batch of 5 (the CPU kernels run image by image)
    const cases = [
      [[2, 8, 8], [1, 1], 4, 'ckl', 'tanh'],
      [[2, 8, 8], [1, 1], 4, 'stl', 'tanh'],
      [[1, 28, 28], [1], 5, 'ckl', 'softplus'],
      [[2, 8, 8], [1], 2, 'ckl', 'relu'],
      [[2, 8, 8], [1], 2, 'ckl', 'sigmoid'],
    ] as const;
    for (const [inputShape, blocks, batch, estimator, convActivation] of cases) {
      const images = Float64Array.from({ length: batch * inputShape[0] * inputShape[1] * inputShape[2] }, (_, i) => Math.sin(i));
      const labels = Array.from({ length: batch }, (_, i) => i % 3);
      const config: Config = {
        kind: 'conv', inputShape: [...inputShape], stem: false, aug: 1, width: 4, blocks: [...blocks], pool: 'global', classes: 3,
        dtype: 'float64', seed: 2, estimator, convActivation, hypernet: { hidden: [8] }, solver: { steps: 4 }, kernels: 'fused',
      };
      const fused = await trained(config, images, labels as never);
      const reference = new SdeBnn({ ...config, kernels: 'autograd' });
      reference.setState(fused.getState());
      const a = await fused.gradients(images, labels, { seed: 5, beta: 10 });
      const b = await reference.gradients(images, labels, { seed: 5, beta: 10 });
      expect(relativeError(a.grads, b.grads)).toBeLessThan(1e-12);
    }
  });

  it('backprop and the stochastic adjoint agree (float64, same Brownian path)', async () => {
    const cases = [
      // [estimator, method, adjoint method, steps, tolerance]
      ['ckl', 'reversible_heun', 'reversible_heun', 20, 1e-12], // exact discrete adjoint
      ['stl', 'reversible_heun', 'reversible_heun', 20, 1e-12],
      ['ckl', 'euler', 'euler', 400, 6e-3], // O(dt): 2.7e-2 at 50 steps, 2.5e-3 at 400
      ['fmc', 'euler', 'midpoint', 400, 6e-3], // Ito forward, Stratonovich adjoint with the trace correction: 2.1e-3
      ['fmc', 'midpoint', 'midpoint', 100, 1e-4], // 5e-6
    ] as const;
    for (const [estimator, method, adjointMethod, steps, tolerance] of cases) {
      const config: Config = { ...tiny, estimator, solver: { method, steps, adjointMethod } };
      const backprop = await trained({ ...config, solver: { method, steps: 10 } }, x1d, y1d);
      const state = backprop.getState();
      const a = new SdeBnn(config);
      const b = new SdeBnn({ ...config, solver: { ...config.solver, gradient: 'adjoint' } });
      a.setState(state);
      b.setState(state);
      const objective = estimator === 'ckl' ? 'loss' : 'kl'; // the u . dB term's gradient, not drowned by the NLL
      const ga = await a.gradients(x1d, y1d, { seed: 7, beta: 100, objective });
      const gb = await b.gradients(x1d, y1d, { seed: 7, beta: 100, objective });
      // The same forward solve; equal to round-off only where one route takes the fast fixed-step
      // path and the other the generic engine (fmc euler/midpoint: the adjoint falls back).
      expect(Math.abs(gb.loss - ga.loss)).toBeLessThanOrEqual(1e-14 * Math.abs(ga.loss));
      const err = relativeError(gb.grads, ga.grads);
      expect(err, `${estimator} ${method}/${adjointMethod} ${steps} steps`).toBeLessThan(tolerance);
    }
  });
});

describe('SdeBnn fast fixed-step path (kernels: fast)', () => {
  const trained = async (config: Config, x: Float64Array, y: Float64Array | number[]) => {
    const model = new SdeBnn(config);
    for (let k = 0; k < 3; k++) await model.trainStep(x, y, { lr: 1e-2, beta: 1 }); // move the hypernetwork off zero
    return model;
  };
  // Fast vs the generic engine ('fused') and plain autograd, same state and Brownian path.
  const compare = async (config: Config, x: Float64Array, y: Float64Array | number[], objective: 'loss' | 'kl', tolerance: number) => {
    const fast = await trained(config, x, y);
    const state = fast.getState();
    const out: number[] = [];
    const a = await fast.gradients(x, y, { seed: 5, beta: 10, objective });
    for (const kernels of ['fused', 'autograd'] as const) {
      const other = new SdeBnn({ ...config, kernels });
      other.setState(state);
      const b = await other.gradients(x, y, { seed: 5, beta: 10, objective });
      expect(Math.abs(a.loss - b.loss) / Math.abs(b.loss), `${kernels} loss`).toBeLessThan(tolerance);
      const err = relativeError(a.grads, b.grads);
      expect(err, `${kernels} gradients`).toBeLessThan(tolerance);
      out.push(err);
      other.dispose();
    }
    fast.dispose();
    return out;
  };

  it('equals the generic route and autograd: mlp, every estimator by backprop, ckl by the euler adjoint, float64 and float32', async () => {
    const cases = [
      // [estimator, gradient, extra config]
      ['ckl', 'backprop', {}],
      ['fmc', 'backprop', {}],
      ['stl', 'backprop', {}],
      ['stl', 'backprop', { timeInput: true, hidden: [8, 12, 6], activation: 'tanh', hypernet: { hidden: [12, 8], activation: 'sigmoid' } }],
      ['fmc', 'backprop', { activation: 'relu', hypernet: { hidden: [12], activation: 'identity' } }],
      ['ckl', 'adjoint', {}],
      ['ckl', 'adjoint', { timeInput: true, activation: 'sigmoid', hypernet: { hidden: [12, 8], activation: 'tanh' } }],
    ] as const;
    for (const dtype of ['float64', 'float32'] as const) {
      for (const [estimator, gradient, extra] of cases) {
        const config: Config = {
          ...tiny, ...extra, dtype, estimator,
          solver: { method: 'euler', steps: 8, gradient, adjointSteps: gradient === 'adjoint' ? 7 : 8 },
        } as Config;
        const x = dtype === 'float32' ? Float64Array.from(x1d, Math.fround) : x1d;
        const objective = estimator === 'ckl' ? 'loss' : 'kl'; // the u . dB term's gradient, not drowned by the NLL
        await compare(config, x, y1d, objective, dtype === 'float64' ? 1e-10 : 1e-5);
      }
    }
  });

  it('equals autograd at the W1 shapes with a batch of 7 (the register-blocked kernels\' full tiles and leftover rows/columns), float64 and float32', async () => {
    // 3-32-32-3 dynamics, 1284-64-1283 hypernetwork: 4-row tiles, then single rows; 16/8-column
    // tiles, then leftover columns (3, and 1283 = 160 x 8 + 3)
    const x7 = Float64Array.from({ length: 7 }, (_, i) => -0.9 + 0.3 * i);
    const y7 = Float64Array.from(x7, (v) => Math.cos(4 * v));
    for (const dtype of ['float64', 'float32'] as const) {
      for (const gradient of ['backprop', 'adjoint'] as const) {
        const config: Config = {
          kind: 'mlp', dtype, seed: 4, hidden: [32, 32], hypernet: { hidden: [64] }, sigma: 0.2, likelihood: 'laplace',
          solver: { method: 'euler', steps: 6, gradient, adjointSteps: 6 },
        };
        const x = dtype === 'float32' ? Float64Array.from(x7, Math.fround) : x7;
        await compare(config, x, y7, 'loss', dtype === 'float64' ? 1e-10 : 1e-5);
      }
    }
  });

  it('the direct route (head, likelihood and KL by hand, no graph) equals autograd: two blocks, two outputs, both likelihoods, both objectives', async () => {
    // mlp, head 'last', fixed scale, point w_0: train_step and gradients() skip autograd entirely;
    // two blocks chain dL/dh(0) of the second into dL/dh(1) of the first. A linear head, a learned
    // scale and a Gaussian w_0 keep the autograd route (covered by the other tests).
    const y2 = Float64Array.from({ length: 2 * B }, (_, i) => Math.sin(i));
    for (const dtype of ['float64', 'float32'] as const) {
      for (const likelihood of ['laplace', 'gaussian'] as const) {
        for (const gradient of ['backprop', 'adjoint'] as const) {
          const config: Config = {
            ...tiny, dtype, likelihood, blocks: 2, aug: 2, outputs: 2, scale: 0.7,
            solver: { method: 'euler', steps: 5, gradient, adjointSteps: 5 },
          };
          const x = dtype === 'float32' ? Float64Array.from(x1d, Math.fround) : x1d;
          for (const objective of ['loss', 'kl'] as const) await compare(config, x, y2, objective, dtype === 'float64' ? 1e-10 : 1e-5);
        }
      }
    }
    // a training step's numbers on the direct route are the autograd route's
    const config: Config = { ...tiny, likelihood: 'laplace', blocks: 2, solver: { steps: 5 } };
    const a = new SdeBnn(config);
    const b = new SdeBnn({ ...config, kernels: 'autograd' });
    b.setState(a.getState());
    for (let k = 0; k < 2; k++) {
      const sa = await a.trainStep(x1d, y1d);
      const sb = await b.trainStep(x1d, y1d);
      expect(Math.abs(sa.loss - sb.loss)).toBeLessThan(1e-12 * Math.abs(sb.loss));
      expect(Math.abs(sa.gradNorm - sb.gradNorm)).toBeLessThan(1e-10 * sb.gradNorm);
      expect([sa.nfe, sa.nfeBackward, sa.steps, sa.tEnd]).toEqual([sb.nfe, sb.nfeBackward, sb.steps, sb.tEnd]);
    }
    a.dispose();
    b.dispose();
  });

  it('equals the generic route and autograd on the conv block (backprop: ckl, stl; adjoint: ckl), float64 and float32', async () => {
    for (const dtype of ['float64', 'float32'] as const) {
      for (const [estimator, gradient] of [['ckl', 'backprop'], ['stl', 'backprop'], ['ckl', 'adjoint']] as const) {
        const batch = 5; // 28x28, an odd batch (the CPU conv kernels run image by image)
        const images = Float64Array.from({ length: batch * 784 }, (_, i) => Math.sin(i));
        const labels = Array.from({ length: batch }, (_, i) => i % 3);
        const config: Config = {
          kind: 'conv', inputShape: [1, 28, 28], stem: false, aug: 1, width: 4, blocks: [1], pool: 'global', classes: 3,
          dtype, seed: 2, estimator, hypernet: { hidden: [8] }, solver: { steps: 4, gradient },
        };
        await compare(config, images, labels, 'loss', dtype === 'float64' ? 1e-10 : 1e-5);
      }
    }
  });

  it('gives the same numbers on 1 and 2 threads (conv block, float32: per-image gradients add up in a fixed order)', async () => {
    const start = sdebnn.backend().threads;
    const batch = 7;
    const images = Float64Array.from({ length: batch * 784 }, (_, i) => Math.sin(0.3 * i));
    const labels = Array.from({ length: batch }, (_, i) => i % 3);
    const config: Config = {
      kind: 'conv', inputShape: [1, 28, 28], stem: false, aug: 1, width: 8, blocks: [1], pool: 'global', classes: 3,
      dtype: 'float32', seed: 4, hypernet: { hidden: [8] }, solver: { steps: 3 },
    };
    const results = [];
    try {
      for (const threads of [1, 2]) {
        sdebnn.setNumThreads(threads);
        for (const gradient of ['backprop', 'adjoint'] as const) {
          const model = new SdeBnn({ ...config, solver: { ...config.solver, gradient } });
          results.push(await model.gradients(images, labels, { seed: 6 }));
          model.dispose();
        }
      }
    } finally {
      sdebnn.setNumThreads(start);
    }
    expect(results[2]!.loss).toBe(results[0]!.loss);
    expect(relativeError(results[2]!.grads, results[0]!.grads)).toBe(0);
    expect(results[3]!.loss).toBe(results[1]!.loss);
    expect(relativeError(results[3]!.grads, results[1]!.grads)).toBe(0);
  });

  it('says which route runs: select_route in one place, from kernels, the solver and the model', () => {
    const routes = (config: Config) => {
      const m = new SdeBnn(config);
      const r = { ...m.routes };
      m.dispose();
      return r;
    };
    // mlp, 'last' head, fixed-scale Gaussian, point w_0, Euler: no graph anywhere in a training step
    expect(routes(tiny)).toEqual({ train: 'direct', predict: 'buffered' });
    expect(routes({ ...tiny, solver: { gradient: 'adjoint', adjointMethod: 'euler' } })).toEqual({ train: 'direct', predict: 'buffered' });
    expect(routes({ ...tiny, learnScale: true })).toEqual({ train: 'buffered', predict: 'buffered' });
    expect(routes({ kind: 'conv', inputShape: [1, 8, 8], stem: false })).toEqual({ train: 'buffered', predict: 'buffered' });
    // fmc needs a Stratonovich adjoint: the general solver for the gradients, the buffered one to predict
    expect(routes({ ...tiny, estimator: 'fmc', solver: { gradient: 'adjoint' } })).toEqual({ train: 'fused', predict: 'buffered' });
    expect(routes({ ...tiny, solver: { method: 'midpoint' } })).toEqual({ train: 'fused', predict: 'fused' });
    expect(routes({ ...tiny, solver: { adaptive: true } })).toEqual({ train: 'fused', predict: 'fused' });
    expect(routes({ ...tiny, kernels: 'fused' })).toEqual({ train: 'fused', predict: 'fused' });
    expect(routes({ ...tiny, kernels: 'autograd' })).toEqual({ train: 'autograd', predict: 'autograd' });
  });

  it('leaves unsupported combinations to the generic route (identical numbers), and predicts alike', async () => {
    // fmc with a midpoint adjoint, a midpoint solve, adaptive steps: not fast-path combinations
    for (const solver of [
      { method: 'euler', steps: 6, gradient: 'adjoint', adjointMethod: 'midpoint' },
      { method: 'midpoint', steps: 6 },
      { method: 'euler', steps: 6, adaptive: true },
    ] as const) {
      const config: Config = { ...tiny, estimator: 'fmc', solver };
      const a = new SdeBnn(config);
      const b = new SdeBnn({ ...config, kernels: 'fused' });
      b.setState(a.getState());
      const ga = await a.gradients(x1d, y1d, { seed: 3, beta: 10 });
      const gb = await b.gradients(x1d, y1d, { seed: 3, beta: 10 });
      expect(ga.loss).toBe(gb.loss);
      expect(relativeError(ga.grads, gb.grads)).toBe(0);
    }
    // prediction (no gradients) runs the fast forward: same samples as the generic route
    const fast = await trained({ ...tiny }, x1d, y1d);
    const generic = new SdeBnn({ ...tiny, kernels: 'fused' });
    generic.setState(fast.getState());
    const pa = await fast.predict(x1d, { samples: 4, seed: 9 });
    const pb = await generic.predict(x1d, { samples: 4, seed: 9 });
    if (pa.kind !== 'regression' || pb.kind !== 'regression') throw new Error('expected regression');
    pa.mean.forEach((m, i) => expect(Math.abs(m - pb.mean[i]!)).toBeLessThan(1e-12));
    const [da] = await fast.diagnose(x1d, { seed: 2 });
    const [db] = await generic.diagnose(x1d, { seed: 2 });
    expect(da!.tEnd).toBe(1);
    expect(da!.steps).toBe(db!.steps);
    expect(da!.nfe).toBe(db!.nfe);
    expect(Math.abs(da!.kl - db!.kl)).toBeLessThan(1e-12 * Math.max(1, Math.abs(db!.kl)));
  });
});

describe('SdeBnn training', () => {
  it('decreases the loss on a tiny regression problem (W1 shape, L1 likelihood)', async () => {
    const n = 32;
    const x = Float32Array.from({ length: n }, (_, i) => -1 + (2 * i) / (n - 1));
    const y = Float32Array.from(x, (v) => Math.cos(4 * v));
    const model = new SdeBnn({ kind: 'mlp', likelihood: 'laplace', nTrain: n, seed: 1, optimizer: { lr: 1e-2 } });
    expect(model.wDim).toBe(1283);
    const losses: number[] = [];
    for (let k = 0; k < 40; k++) losses.push((await model.trainStep(x, y)).loss);
    const mean = (a: number[]) => a.reduce((s, v) => s + v, 0) / a.length;
    expect(mean(losses.slice(-5))).toBeLessThan(0.8 * mean(losses.slice(0, 5)));
    const prediction = await model.predict(x, { samples: 4, seed: 1 });
    expect(prediction.kind).toBe('regression');
    if (prediction.kind === 'regression') {
      expect(prediction.shape).toEqual([4, n, 1]);
      expect(prediction.mean.length).toBe(n);
      expect(prediction.std.every((s) => s >= 0 && Number.isFinite(s))).toBe(true);
      expect(prediction.noiseScale).toBe(1);
    }
  });

  it('adds the closed-form KL of a Gaussian q(w_0) against N(0, 0.1^2), learns a Gaussian noise scale, and steps adaptively', async () => {
    const model = new SdeBnn({ ...tiny, w0: { posterior: 'gaussian', rhoInit: -3 }, learnScale: true, solver: { adaptive: true, steps: 4 } });
    expect(model.parameterNames).toEqual(expect.arrayContaining(['blocks.0.w0_rho', 'likelihood.log_scale']));
    const s = model.getState();
    const mu = s['blocks.0.w0']!.data;
    const rho = s['blocks.0.w0_rho']!.data;
    let expected = 0;
    for (let i = 0; i < mu.length; i++) {
      const v = Math.exp(2 * rho[i]!);
      expected += Math.log(0.1) - rho[i]! + (v + mu[i]! ** 2) / (2 * 0.01) - 0.5;
    }
    const step = await model.trainStep(x1d, y1d);
    expect(step.klW0).toBeCloseTo(expected, 8);
    expect(step.kl).toBeCloseTo(expected, 8); // path KL 0 at the start
    expect(step.tEnd).toBe(1);
    expect(step.steps).toBeGreaterThan(0);
    const before = s['likelihood.log_scale']!.data[0]!;
    await model.trainStep(x1d, y1d);
    expect(model.getState()['likelihood.log_scale']!.data[0]).not.toBe(before);
  });

  it('resumes from a state round trip to identical numbers (parameters, Adam, EMA, random streams)', async () => {
    const config: Config = { ...tiny, dtype: 'float32', optimizer: { ema: 0.9 }, w0: { posterior: 'gaussian' } };
    const x = Float32Array.from(x1d);
    const y = Float32Array.from(y1d);
    const first = new SdeBnn(config);
    for (let k = 0; k < 3; k++) await first.trainStep(x, y);
    const state = first.getState();
    expect(Object.keys(state)).toEqual(expect.arrayContaining(['adam.step', 'rng.train', 'ema.blocks.0.w0', 'blocks.0.w0_rho']));
    const continued: number[] = [];
    for (let k = 0; k < 3; k++) continued.push((await first.trainStep(x, y)).loss);
    const resumed = new SdeBnn({ ...config, seed: 99 }); // different initialisation, overwritten
    resumed.setState(state);
    const again: number[] = [];
    for (let k = 0; k < 3; k++) again.push((await resumed.trainStep(x, y)).loss);
    expect(again).toEqual(continued);
    const a = first.getState();
    const b = resumed.getState();
    for (const name of Object.keys(a)) expect(Array.from(b[name]!.data), name).toEqual(Array.from(a[name]!.data));
    const pa = await first.predict(x, { samples: 2, ema: true });
    const pb = await resumed.predict(x, { samples: 2, ema: true });
    expect(pa).toEqual(pb);
  });

  it('a training step is PyTorch\'s Adam on the gradients, clipped by the global norm (the fused CPU pass), float64 and float32', async () => {
    for (const [dtype, tol] of [['float64', 1e-12], ['float32', 1e-5]] as const) {
      for (const clip of [0, 1e-3]) {
        const config: Config = { ...tiny, dtype, optimizer: { lr: 1e-2, betas: [0.8, 0.95], eps: 1e-6, clip } };
        const a = new SdeBnn(config);
        for (let k = 0; k < 2; k++) await a.trainStep(x1d, y1d); // nonzero moments, step 2
        const before = a.getState();
        const b = new SdeBnn(config);
        b.setState(before);
        const { grads } = await a.gradients(x1d, y1d); // the training stream: the same path as b's step
        const step = await b.trainStep(x1d, y1d);
        let sq = 0;
        for (const g of Object.values(grads)) for (const v of g.data) sq += v * v;
        const norm = Math.sqrt(sq);
        expect(step.gradNorm).toBeCloseTo(norm, dtype === 'float64' ? 10 : 4);
        const coef = clip > 0 && norm > clip ? clip / (norm + 1e-6) : 1;
        const t = before['adam.step']!.data[0]! + 1;
        const bc1 = 1 - 0.8 ** t;
        const bc2 = 1 - 0.95 ** t;
        const expected: Record<string, Tensor> = {};
        const after = b.getState();
        const got: Record<string, Tensor> = {};
        for (const [name, g] of Object.entries(grads)) {
          const m = Float64Array.from(before[`adam.exp_avg.${name}`]!.data, (v, i) => 0.8 * v + 0.2 * coef * g.data[i]!);
          const v2 = Float64Array.from(before[`adam.exp_avg_sq.${name}`]!.data, (v, i) => 0.95 * v + 0.05 * (coef * g.data[i]!) ** 2);
          const p = Float64Array.from(before[name]!.data, (v, i) => v - (1e-2 / bc1) * (m[i]! / (Math.sqrt(v2[i]!) / Math.sqrt(bc2) + 1e-6)));
          for (const [key, val] of [[name, p], [`adam.exp_avg.${name}`, m], [`adam.exp_avg_sq.${name}`, v2]] as const) {
            expected[key] = { data: val, shape: g.shape };
            got[key] = after[key]!;
          }
        }
        expect(relativeError(got, expected), `${dtype} clip ${clip}`).toBeLessThan(tol);
      }
    }
  });

  it('trains the MNIST-shaped default (28x28x1) and a CIFAR-shaped two-stage model (32x32x3) one step each', async () => {
    const mnist = new SdeBnn({ seed: 1 });
    expect(mnist.wDims).toEqual([9696]);
    const images = Float32Array.from({ length: 4 * 784 }, (_, i) => (i % 7) / 7);
    const step = await mnist.trainStep(images, new Uint8Array([3, 1, 4, 1]));
    expect(step.kl).toBe(0); // the zero last layer: posterior = prior at the start
    expect(step.accuracy).not.toBeNull();
    const probs = await mnist.predict(images, { samples: 2 });
    expect(probs.kind).toBe('categorical');
    if (probs.kind === 'categorical') {
      expect(probs.shape).toEqual([4, 10]);
      for (let r = 0; r < 4; r++) expect(probs.probs.slice(r * 10, r * 10 + 10).reduce((a, v) => a + v, 0)).toBeCloseTo(1, 5);
    }
    const cifar = new SdeBnn({ inputShape: [3, 32, 32], blocks: [1, 1], pool: 'global', solver: { steps: 4, gradient: 'adjoint' } });
    // stem 3 -> 16 at 16x16; stage 1: 32*17*9 + 32 + 16*33*9 + 16; space-to-depth to 64 channels at 8x8: 32*65*9 + 32 + 64*33*9 + 64
    expect(cifar.wDims).toEqual([9696, 37824]);
    const c = await cifar.trainStep(Float32Array.from({ length: 2 * 3072 }, (_, i) => Math.sin(i)), new Int32Array([7, 2]));
    expect(Number.isFinite(c.loss)).toBe(true);
    expect(c.nfeBackward).toBeGreaterThan(0);
  });
});

describe('SdeBnn errors', () => {
  it('rejects bad configs naming the field', () => {
    expect(() => new SdeBnn({ kind: 'mlp', hidden: [32, -3] })).toThrow(new RangeError('Expected positive integer for config.hidden[1] but received -3'));
    expect(() => new SdeBnn({ sigma: 0 })).toThrow(/config\.sigma/);
    expect(() => new SdeBnn({ kind: 'cnn' as never })).toThrow(/config\.kind/);
    expect(() => new SdeBnn({ hypernet: { hidden: [] } })).toThrow(/config\.hypernet\.hidden/);
    expect(() => new SdeBnn({ solver: { steps: 2.5 } })).toThrow(/config\.solver\.steps/);
    expect(() => new SdeBnn({ estimator: 'stl', solver: { gradient: 'adjoint', adjointMethod: 'euler' } })).toThrow(/adjointMethod/);
    expect(() => new SdeBnn({ estimator: 'fmc', solver: { method: 'milstein' } })).toThrow(/config\.solver\.method/);
    expect(() => new SdeBnn({ blocks: [1, 1, 1] })).toThrow(/space-to-depth before stage 2/); // 28 -> 14 -> 7: odd
    expect(() => new SdeBnn({ optimizer: { lr: -1 } })).toThrow(/config\.optimizer\.lr/);
    expect(() => new SdeBnn({ solver: { stepz: 3 } as never })).toThrow(/config\.solver\.stepz/);
    expect(() => new SdeBnn({ device: 'tpu' as never })).toThrow(/config\.device/);
    expect(() => new SdeBnn({ kind: 'mlp', inputNormalization: { scale: 0 } })).toThrow(
      new RangeError('Expected a positive number for config.inputNormalization.scale but received 0'),
    );
    expect(() => new SdeBnn({ kind: 'mlp', inputShape: [2], inputNormalization: { shift: [1, 2, 3] } })).toThrow(
      new RangeError('Expected one number or 2 (inputShape[0]) for config.inputNormalization.shift but received an array of 3'),
    );
    expect(() => new SdeBnn({ inputNormalization: { mean: 0 } as never })).toThrow(/config\.inputNormalization\.mean/);
  });

  it('applies inputNormalization per feature (mlp) and per channel (conv), to plain arrays and strided tensors alike', async () => {
    // The same seed gives the same parameters and weight paths, so normalizing inside the model must
    // equal normalizing by hand before an identity model, bit for bit.
    const x = Float64Array.from({ length: 10 }, (_, i) => Math.sin(i) * 3);
    const mlp: Config = { kind: 'mlp', inputShape: [2], dtype: 'float64', seed: 4 };
    const byHand = Float64Array.from(x, (v, i) => (v - [1, -2][i % 2]!) / [0.5, 4][i % 2]!);
    const inside = new SdeBnn({ ...mlp, inputNormalization: { shift: [1, -2], scale: [0.5, 4] } });
    const plain = new SdeBnn(mlp);
    const a = await inside.predict(x, { samples: 3, seed: 2 });
    expect(a).toEqual(await plain.predict(byHand, { samples: 3, seed: 2 }));
    // A transposed view: shape [5, 2] over data laid out [2, 5].
    const t = Float64Array.from({ length: 10 }, (_, k) => x[(k % 5) * 2 + Math.floor(k / 5)]!);
    expect(await inside.predict({ data: t, shape: [5, 2], strides: [1, 5] }, { samples: 3, seed: 2 })).toEqual(a);
    expect(Array.from(x.slice(0, 2))).toEqual([0, Math.sin(1) * 3]); // the caller's inputs are left as they were

    const conv: Config = { inputShape: [2, 4, 4], stem: false, width: 4, pool: 'global', classes: 3, dtype: 'float64', seed: 1, solver: { steps: 2 } };
    const img = Float64Array.from({ length: 2 * 32 }, (_, i) => Math.cos(i));
    const imgByHand = Float64Array.from(img, (v, i) => (v - 0.5 * Math.floor((i % 32) / 16)) / 2);
    const c = await new SdeBnn({ ...conv, inputNormalization: { shift: [0, 0.5], scale: 2 } }).predict(img, { samples: 2, seed: 3 });
    expect(c).toEqual(await new SdeBnn(conv).predict(imgByHand, { samples: 2, seed: 3 }));
  });

  it('resolves a resolved config to itself (checkpoints store the resolved form)', () => {
    const configs: Config[] = [
      {},
      { kind: 'mlp' },
      { kind: 'mlp', likelihood: 'categorical', classes: 3, inputShape: [4], blocks: 2, estimator: 'stl' },
      { inputShape: [3, 32, 32], blocks: [1, 1], width: [32, 48], pool: 'global', stem: false, aug: 1 },
      { kind: 'mlp', w0: { posterior: 'gaussian' }, solver: { method: 'reversible_heun', gradient: 'adjoint' }, optimizer: { ema: 0.99 } },
    ];
    for (const c of configs) {
      const once = sdebnn.resolveSdeBnnConfig(c);
      expect(sdebnn.resolveSdeBnnConfig(JSON.parse(JSON.stringify(once)))).toEqual(once);
    }
  });

  it('rejects bad inputs and targets, and misuse, with clear errors', async () => {
    const model = new SdeBnn({ ...tiny, dtype: 'float32' });
    expect(() => model.trainStep(new Float32Array(0), [])).toThrow(/inputs to hold a positive multiple/);
    expect(() => model.trainStep(x1d, new Float64Array(3))).toThrow(/Expected targets to hold 16 values/);
    expect(() => model.trainStep(x1d, y1d, { lr: 0 })).toThrow(/options\.lr/);
    expect(() => model.predict(x1d, { samples: 0 })).toThrow(/options\.samples/);
    expect(() => model.predict(x1d, { ema: true })).toThrow(/ema/);
    const labelled = new SdeBnn({ seed: 1, solver: { steps: 2 } });
    const images = new Float32Array(2 * 784);
    expect(() => labelled.trainStep(images, [0, 10])).toThrow(/targets\[1\]/);
    expect(() => labelled.trainStep({ data: images, shape: [2, 28, 28] }, [0, 1])).toThrow(/inputs\.shape/);
    // a state tensor of the wrong shape is refused natively, naming the tensor, before anything is written
    const before = labelled.getState();
    expect(() => labelled.setState({ 'blocks.0.w0': { data: new Float32Array(3), shape: [3] } }, { strict: false })).toThrow(
      /'blocks\.0\.w0' has shape \[3\] but the model expects \[9696\]/,
    );
    expect(() => labelled.setState({ 'blocks.0.w0': before['blocks.0.w0']! })).toThrow(/is missing/);
    expect(() => labelled.setState({ nope: before['head.bias']! }, { strict: false })).toThrow(/unknown tensor 'nope'/);
    // one asynchronous call at a time
    const running = labelled.trainStep(images, [0, 1]);
    expect(() => labelled.trainStep(images, [0, 1])).toThrow(expect.objectContaining({ code: 'ERR_BUSY' }));
    expect(() => labelled.getState()).toThrow(expect.objectContaining({ code: 'ERR_BUSY' }));
    await running;
    labelled.dispose();
    expect(labelled.disposed).toBe(true);
    expect(() => labelled.trainStep(images, [0, 1])).toThrow(expect.objectContaining({ code: 'ERR_DISPOSED' }));
    expect(() => labelled.getState()).toThrow(expect.objectContaining({ code: 'ERR_DISPOSED' }));
  });
});
