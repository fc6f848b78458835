// SDE-BNN gradients on every route: fused VJPs and the fast fixed-step path against autograd,
// backprop against the adjoint. Fixed seeds throughout; tolerances are stated per check.
import { describe, expect, it } from 'vitest';
import { sdebnn } from './helpers';
import { B, relativeError, SdeBnn, tiny, x1d, y1d, type Config } from './bnn-fixtures';

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
        const config: Config = {
          ...tiny,
          timeInput: true,
          hypernet: { hidden: [12, 8], activation: 'tanh' },
          estimator,
          solver: { method, steps: 8 },
          kernels: 'fused',
        };
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
        kind: 'conv',
        inputShape: [...inputShape],
        stem: false,
        aug: 1,
        width: 4,
        blocks: [...blocks],
        pool: 'global',
        classes: 3,
        dtype: 'float64',
        seed: 2,
        estimator,
        convActivation,
        hypernet: { hidden: [8] },
        solver: { steps: 4 },
        kernels: 'fused',
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

  it("solver.adjointAdaptive steps the adjoint by the solver's rtol and atol, closer to backprop as they tighten", async () => {
    // ckl, Euler forward in 1000 steps; backprop through it is the reference. Measured relative errors:
    // 10 fixed adjoint steps 6.7e-2; adaptive at rtol 1e-2, atol 1e-3: 2.7e-2; 1e-3, 1e-4: 6.1e-3; 1e-5, 1e-6: 8.5e-4.
    const base = await trained({ ...tiny, solver: { steps: 10 } }, x1d, y1d);
    const state = base.getState();
    // nfeBackward from a training step: the backward solve's evaluations (on the generic engine's
    // adjoint, which the adaptive one takes, plus its second forward solve of 2000)
    const gradients = async (solver: Config['solver'], withStep = true) => {
      const m = new SdeBnn({ ...tiny, solver });
      m.setState(state);
      const g = await m.gradients(x1d, y1d, { seed: 7, beta: 100 });
      const nfeBackward = withStep ? (await m.trainStep(x1d, y1d, { beta: 100 })).nfeBackward : 0;
      m.dispose();
      return { grads: g.grads, nfeBackward };
    };
    const reference = (await gradients({ method: 'euler', steps: 1000 }, false)).grads;
    const adjoint = { method: 'euler', steps: 1000, gradient: 'adjoint', adjointMethod: 'euler', adjointSteps: 10 } as const;
    const runs = [
      await gradients(adjoint),
      await gradients({ ...adjoint, adjointAdaptive: true, rtol: 1e-2, atol: 1e-3 }),
      await gradients({ ...adjoint, adjointAdaptive: true }),
      await gradients({ ...adjoint, adjointAdaptive: true, rtol: 1e-5, atol: 1e-6 }),
    ];
    const errors = runs.map((r) => relativeError(r.grads, reference));
    expect(runs[0]!.nfeBackward).toBe(20); // 10 Euler steps of drift and diffusion
    for (let k = 1; k < runs.length; k++) {
      expect(errors[k], `errors ${errors.map((e) => e.toExponential(1)).join(', ')}`).toBeLessThan(errors[k - 1]! / 2);
      expect(runs[k]!.nfeBackward).toBeGreaterThan(runs[k - 1]!.nfeBackward);
    }
    expect(errors[3]).toBeLessThan(2e-3);
    base.dispose();
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
          ...tiny,
          ...extra,
          dtype,
          estimator,
          solver: { method: 'euler', steps: 8, gradient, adjointSteps: gradient === 'adjoint' ? 7 : 8 },
        } as Config;
        const x = dtype === 'float32' ? Float64Array.from(x1d, Math.fround) : x1d;
        const objective = estimator === 'ckl' ? 'loss' : 'kl'; // the u . dB term's gradient, not drowned by the NLL
        await compare(config, x, y1d, objective, dtype === 'float64' ? 1e-10 : 1e-5);
      }
    }
  });

  it("equals autograd at the W1 shapes with a batch of 7 (the register-blocked kernels' full tiles and leftover rows/columns), float64 and float32", async () => {
    // 3-32-32-3 dynamics, 1284-64-1283 hypernetwork: 4-row tiles, then single rows; 16/8-column
    // tiles, then leftover columns (3, and 1283 = 160 x 8 + 3)
    const x7 = Float64Array.from({ length: 7 }, (_, i) => -0.9 + 0.3 * i);
    const y7 = Float64Array.from(x7, (v) => Math.cos(4 * v));
    for (const dtype of ['float64', 'float32'] as const) {
      for (const gradient of ['backprop', 'adjoint'] as const) {
        const config: Config = {
          kind: 'mlp',
          dtype,
          seed: 4,
          hidden: [32, 32],
          hypernet: { hidden: [64] },
          sigma: 0.2,
          likelihood: 'laplace',
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
            ...tiny,
            dtype,
            likelihood,
            blocks: 2,
            aug: 2,
            outputs: 2,
            scale: 0.7,
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
      for (const [estimator, gradient] of [
        ['ckl', 'backprop'],
        ['stl', 'backprop'],
        ['ckl', 'adjoint'],
      ] as const) {
        const batch = 5; // 28x28, an odd batch (the CPU conv kernels run image by image)
        const images = Float64Array.from({ length: batch * 784 }, (_, i) => Math.sin(i));
        const labels = Array.from({ length: batch }, (_, i) => i % 3);
        const config: Config = {
          kind: 'conv',
          inputShape: [1, 28, 28],
          stem: false,
          aug: 1,
          width: 4,
          blocks: [1],
          pool: 'global',
          classes: 3,
          dtype,
          seed: 2,
          estimator,
          hypernet: { hidden: [8] },
          solver: { steps: 4, gradient },
        };
        await compare(config, images, labels, 'loss', dtype === 'float64' ? 1e-10 : 1e-5);
      }
    }
  });

  it("equals autograd on the main job's model (stem, blocks over two stages, pool 2, linear head), float64", async () => {
    // The default config is the MNIST main model (stem 16, width 32, hypernetwork [32] tanh, pool 2
    // into a linear head). Here in float64: as it is, with two blocks then one over two stages (the
    // space-to-depth between them), and by the adjoint. Measured: 1e-14 at most, per tensor. Three
    // Adam steps at lr 3e-4 move the hypernetwork off zero (at 1e-2 its drift of ~1 per weight
    // blows the activations up to gradients of 1e6-1e20, where round-off alone reaches 1e-10).
    const batch = 2;
    const images = Float64Array.from({ length: batch * 784 }, (_, i) => Math.sin(0.7 * i) + 0.3 * Math.cos(0.05 * i));
    const labels = [3, 7];
    const cases: [string, Config][] = [
      ['the default config', {}],
      ['blocks [2, 1]', { blocks: [2, 1] }],
      ['blocks [1, 1], adjoint', { blocks: [1, 1], solver: { steps: 3, gradient: 'adjoint' } }],
    ];
    for (const [label, extra] of cases) {
      const config: Config = { seed: 1, dtype: 'float64', solver: { steps: 3 }, ...extra };
      const fast = new SdeBnn(config);
      for (let k = 0; k < 3; k++) await fast.trainStep(images, labels, { lr: 3e-4, beta: 1 });
      expect(fast.parameterNames, label).toEqual(expect.arrayContaining(['stem.weight', 'head.weight', `blocks.${fast.wDims.length - 1}.w0`]));
      const reference = new SdeBnn({ ...config, kernels: 'autograd' });
      reference.setState(fast.getState());
      const a = await fast.gradients(images, labels, { seed: 5, beta: 10 });
      const b = await reference.gradients(images, labels, { seed: 5, beta: 10 });
      expect(a.kl, label).toBeGreaterThan(0);
      expect(Math.abs(a.loss - b.loss) / b.loss, label).toBeLessThan(1e-12);
      for (const name of fast.parameterNames) {
        expect(relativeError({ [name]: a.grads[name]! }, { [name]: b.grads[name]! }), `${label}: ${name}`).toBeLessThan(1e-12);
      }
      fast.dispose();
      reference.dispose();
    }
  });

  it('gives the same numbers on 1 and 2 threads (conv block, float32: per-image gradients add up in a fixed order)', async () => {
    const start = sdebnn.backend().threads;
    const batch = 7;
    const images = Float64Array.from({ length: batch * 784 }, (_, i) => Math.sin(0.3 * i));
    const labels = Array.from({ length: batch }, (_, i) => i % 3);
    const config: Config = {
      kind: 'conv',
      inputShape: [1, 28, 28],
      stem: false,
      aug: 1,
      width: 8,
      blocks: [1],
      pool: 'global',
      classes: 3,
      dtype: 'float32',
      seed: 4,
      hypernet: { hidden: [8] },
      solver: { steps: 3 },
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
