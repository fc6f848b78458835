// SDE-BNN: the method's defining numbers (integration to t = 1, the KL with its 1/2, the
// estimators), gradients (fused VJPs vs autograd, backprop vs adjoint), training, checkpoints,
// and the errors users see. Fixed seeds throughout; tolerances are stated per check.
import { describe, expect, it } from 'vitest';
import { setConstantDrift } from './drift';
import { sdebnn } from './helpers';
import { adamStep, B, relativeError, SdeBnn, tiny, withEntries, x1d, y1d, type Config, type Tensor } from './bnn-fixtures';

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
    for (const [hidden, activation] of [
      [[16], 'identity'],
      [[12, 8], 'identity'],
      [[16], 'tanh'],
    ] as const) {
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
  it("stl evaluates u at w_t: its u . dB value equals fmc's on the same path (only the gradients differ)", async () => {
    const klDb: number[] = [];
    for (const estimator of ['fmc', 'stl'] as const) {
      const m = new SdeBnn({ ...tiny, estimator, solver: { steps: 50 } });
      m.setState(
        withEntries(m.getState(), 'blocks.0.hypernet.1.weight', (i) => 0.3 * Math.sin(5 * i)),
        { strict: false },
      );
      const [b] = await m.diagnose(x1d, { seed: 11 });
      klDb.push(b!.klDb);
    }
    expect(Math.abs(klDb[0]!)).toBeGreaterThan(1e-3);
    expect(klDb[1]).toBe(klDb[0]); // the JAX reference's u(w_0) would give a different number
  });

  it("away from the prior: fmc is the exact gradient of its KL, and stl is fmc without the dB term's direct hypernetwork gradient", async () => {
    // Posterior != prior: the hypernetwork's last layer set to a drift that depends on w_t and t.
    // KL_fmc(phi) = sum_k 1/2 |u_k|^2 dt + u(w_k; phi) . dB_k on a fixed Brownian path (Euler, Ito).
    // stl differentiates u(w_k; phi) . dB_k through w_k only, so grad_fmc - grad_stl is the direct
    // derivative D of sum_k u(w_k; phi) . dB_k at fixed w_k: zero for w_0, and, since u is linear in
    // the last layer (W_L, b_L), <(W_L, b_L), D> = the dB term itself (Euler's theorem).
    const estimators = ['ckl', 'fmc', 'stl'] as const;
    const last = 'blocks.0.hypernet.1';
    const results: Record<string, { kl: number; grads: Record<string, Tensor> }> = {};
    let klDb = 0;
    let state: Record<string, Tensor> = {};
    const config: Config = { ...tiny, solver: { method: 'euler', steps: 12 } };
    for (const estimator of estimators) {
      const m = new SdeBnn({ ...config, estimator });
      if (estimator === 'ckl') {
        const s = m.getState();
        m.setState(
          {
            ...withEntries(s, `${last}.weight`, (i) => 0.06 * Math.sin(7 * i + 1)),
            ...withEntries(s, `${last}.bias`, (i) => 0.03 * Math.cos(3 * i)),
          },
          { strict: false },
        );
        state = m.getState();
      } else {
        m.setState(state);
      }
      const g = await m.gradients(x1d, y1d, { seed: 13, objective: 'kl' });
      results[estimator] = { kl: g.kl, grads: g.grads };
      const [d] = await m.diagnose(x1d, { seed: 13 });
      expect(Math.abs(g.kl - d!.kl - d!.klDb), estimator).toBeLessThan(1e-12 * g.kl);
      if (estimator === 'fmc') {
        klDb = d!.klDb;
        // fmc's gradient against central differences of its KL on the same path, a few entries per parameter
        const h = 1e-6;
        for (const [name, indices] of [
          [`${last}.weight`, [0, 777]],
          [`${last}.bias`, [5]],
          ['blocks.0.hypernet.0.weight', [3, 200]],
          ['blocks.0.w0', [1, 300]],
        ] as const) {
          for (const i of indices) {
            const at = async (v: number) => {
              m.setState(
                withEntries(state, name, (k) => (k === i ? v : state[name]!.data[k]!)),
                { strict: false },
              );
              const [b] = await m.diagnose(x1d, { seed: 13 });
              return b!.kl + b!.klDb;
            };
            const v0 = state[name]!.data[i]!;
            const fd = ((await at(v0 + h)) - (await at(v0 - h))) / (2 * h);
            m.setState(state);
            const grad = g.grads[name]!.data[i]!;
            expect(Math.abs(grad - fd), `fmc d/d${name}[${i}]: ${grad} vs ${fd}`).toBeLessThan(1e-7 * Math.max(1, Math.abs(fd))); // measured: 3e-9 at most
          }
        }
      }
      m.dispose();
    }
    const { ckl, fmc, stl } = results as Record<(typeof estimators)[number], (typeof results)[string]>;
    // The KL values: fmc and stl add the same dB term to ckl's dt part.
    expect(Math.abs(klDb)).toBeGreaterThan(0.05 * ckl!.kl);
    expect(stl!.kl).toBe(fmc!.kl);
    expect(Math.abs(fmc!.kl - ckl!.kl - klDb)).toBeLessThan(1e-12 * fmc!.kl);
    // w_0: stl keeps the dB term's gradient through the path, so it equals fmc's, not ckl's.
    const w0 = (r: typeof fmc) => ({ w0: r!.grads['blocks.0.w0']! });
    expect(relativeError(w0(stl), w0(fmc))).toBeLessThan(1e-10);
    expect(relativeError(w0(ckl), w0(fmc))).toBeGreaterThan(0.05);
    // The hypernetwork: the three differ, and the last layer's difference pairs with the weights to the dB term.
    const hyper = (r: typeof fmc) => Object.fromEntries(Object.entries(r!.grads).filter(([n]) => n.includes('hypernet')));
    expect(relativeError(hyper(stl), hyper(fmc))).toBeGreaterThan(0.05);
    expect(relativeError(hyper(stl), hyper(ckl))).toBeGreaterThan(0.05);
    let pairing = 0;
    for (const name of [`${last}.weight`, `${last}.bias`]) {
      const p = state[name]!.data;
      for (let i = 0; i < p.length; i++) pairing += p[i]! * (fmc!.grads[name]!.data[i]! - stl!.grads[name]!.data[i]!);
    }
    expect(Math.abs(pairing - klDb), `pairing ${pairing} vs the dB term ${klDb}`).toBeLessThan(1e-10 * Math.abs(klDb));
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

  it('keeps an EMA of the parameters: ema = d ema + (1 - d) param after each step, d = min(decay, (1 + t) / (10 + t)) at Adam step t', async () => {
    const model = new SdeBnn({ ...tiny, optimizer: { ema: 0.9 } });
    const params = model.parameterNames;
    const start = model.getState();
    for (const name of params) expect(start[`ema.${name}`]!.data, name).toEqual(start[name]!.data); // starts at the parameters
    // t = 1: the warm-up decay 2/11; t = 101 (Adam's step set by hand): the configured 0.9 (< 102/111)
    for (const [t, d] of [
      [1, 2 / 11],
      [101, 0.9],
    ] as const) {
      if (t > 1) model.setState({ 'adam.step': { data: Float64Array.of(t - 1), shape: [1] } }, { strict: false });
      const before = model.getState();
      await model.trainStep(x1d, y1d, { lr: 1e-2 });
      const after = model.getState();
      const expected: Record<string, Tensor> = {};
      const got: Record<string, Tensor> = {};
      for (const name of ['blocks.0.w0', 'blocks.0.hypernet.1.weight']) expect(after[name]!.data, name).not.toEqual(before[name]!.data);
      for (const name of params) {
        expected[name] = { data: Float64Array.from(before[`ema.${name}`]!.data, (e, i) => d * e + (1 - d) * after[name]!.data[i]!), shape: after[name]!.shape };
        got[name] = after[`ema.${name}`]!;
      }
      expect(relativeError(got, expected), `step ${t}`).toBeLessThan(1e-14);
    }
    // predict({ ema: true }) runs on the EMA: the same samples as a model holding the EMA as its parameters
    const state = model.getState();
    const copy = new SdeBnn(tiny);
    copy.setState(Object.fromEntries(params.map((name) => [name, state[`ema.${name}`]!])), { strict: false });
    expect(await model.predict(x1d, { samples: 3, seed: 4, ema: true })).toEqual(await copy.predict(x1d, { samples: 3, seed: 4 }));
    expect(await model.predict(x1d, { samples: 3, seed: 4 })).not.toEqual(await copy.predict(x1d, { samples: 3, seed: 4 }));
    model.dispose();
    copy.dispose();
  });

  it("a training step is PyTorch's Adam on the gradients, clipped by the global norm (the fused CPU pass), float64 and float32", async () => {
    for (const [dtype, tol] of [
      ['float64', 1e-12],
      ['float32', 1e-5],
    ] as const) {
      for (const clip of [0, 1e-3]) {
        const config: Config = { ...tiny, dtype, optimizer: { lr: 1e-2, betas: [0.8, 0.95], eps: 1e-6, clip } };
        const a = new SdeBnn(config);
        for (let k = 0; k < 2; k++) await a.trainStep(x1d, y1d); // nonzero moments, step 2
        const before = a.getState();
        const b = new SdeBnn(config);
        b.setState(before);
        const { grads } = await a.gradients(x1d, y1d); // the training stream: the same path as b's step
        const step = await b.trainStep(x1d, y1d);
        const { got, expected, norm } = adamStep(before, b.getState(), grads, { lr: 1e-2, betas: [0.8, 0.95], eps: 1e-6, clip });
        expect(step.gradNorm).toBeCloseTo(norm, dtype === 'float64' ? 10 : 4);
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
    const c = await cifar.trainStep(
      Float32Array.from({ length: 2 * 3072 }, (_, i) => Math.sin(i)),
      new Int32Array([7, 2]),
    );
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
    expect(() => model.trainStep(x1d, y1d, { lr: -1 })).toThrow(/options\.lr/);
    // lr 0, where a cosine schedule to lrMin 0 ends, is a step that leaves every parameter as it is
    const atStart = model.getState();
    await model.trainStep(x1d, y1d, { lr: 0 });
    const afterStep = model.getState();
    for (const name of model.parameterNames) expect(Array.from(afterStep[name]!.data)).toEqual(Array.from(atStart[name]!.data));
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

describe('SdeBnn defaults', () => {
  it('has the documented defaults: the MNIST conv model and the W1-shaped mlp, value by value', () => {
    const common = {
      model: 'sdebnn',
      inputNormalization: { shift: [0], scale: [1] },
      hidden: [32, 32],
      activation: 'softplus',
      timeInput: false,
      width: [32],
      convActivation: 'softplus',
      pool: 2,
      classes: 10,
      outputs: 1,
      scale: 0.1,
      learnScale: false,
      blocks: [1],
      w0: { std: 0.1, posterior: 'point', priorStd: 0.1, rhoInit: Math.log(1e-3) },
      estimator: 'ckl',
      solver: {
        method: 'euler',
        adaptive: false,
        rtol: 1e-3,
        atol: 1e-4,
        dtMin: 1e-5,
        gradient: 'backprop',
        adjointMethod: 'euler',
        adjointAdaptive: false,
        maxSteps: 100000,
      },
      beta: 1e-3,
      nTrain: 60000,
      optimizer: { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, clip: 1, ema: 0 },
      seed: 0,
      dtype: 'float32',
      device: 'cpu',
      kernels: 'fast',
      cudaGraph: false,
      maxBytes: 2 ** 32,
    };
    const conv = sdebnn.resolveSdeBnnConfig({});
    expect(conv).toEqual({
      ...common,
      kind: 'conv',
      inputShape: [1, 28, 28],
      aug: 0,
      head: 'linear',
      stem: 16,
      likelihood: 'categorical',
      sigma: 0.05,
      hypernet: { hidden: [32], activation: 'tanh' },
      w0: { ...common.w0, init: 'fanIn' },
      solver: { ...common.solver, steps: 10, adjointSteps: 10 },
    });
    const mlp = sdebnn.resolveSdeBnnConfig({ kind: 'mlp' });
    expect(mlp).toEqual({
      ...common,
      kind: 'mlp',
      inputShape: [1],
      aug: 2,
      head: 'last',
      stem: false,
      likelihood: 'gaussian',
      sigma: 0.2,
      hypernet: { hidden: [64], activation: 'softplus' },
      w0: { ...common.w0, init: 'normal' },
      solver: { ...common.solver, steps: 20, adjointSteps: 20 },
    });
    // defaults that follow other fields
    expect(sdebnn.resolveSdeBnnConfig({ kind: 'mlp', likelihood: 'laplace' }).scale).toBe(1);
    expect(sdebnn.resolveSdeBnnConfig({ kind: 'mlp', likelihood: 'categorical' }).head).toBe('linear');
    expect(sdebnn.resolveSdeBnnConfig({ estimator: 'fmc' }).solver.adjointMethod).toBe('midpoint');
    expect(sdebnn.resolveSdeBnnConfig({ solver: { method: 'reversible_heun' } }).solver.adjointMethod).toBe('reversible_heun');
    expect(sdebnn.resolveSdeBnnConfig({ solver: { steps: 7 } }).solver.adjointSteps).toBe(7);
    expect(sdebnn.resolveSdeBnnConfig({ width: 8, blocks: [1, 2] }).width).toEqual([8, 8]);
  });

  it("the model runs with its defaults: shapes, fan-in w_0, steps, sigma, the hypernetwork's activation, beta / nTrain, Adam, dtype, seed", async () => {
    const images = Float32Array.from({ length: 2 * 784 }, (_, i) => Math.sin(0.3 * i));
    const labels = [4, 9];
    const conv = new SdeBnn();
    const state = conv.getState();
    // stem 16 (3x3 on one channel), width 32, hypernetwork [32], pool 2 of the 14x14 map into a 10-class head
    const shapes = Object.fromEntries(conv.parameterNames.map((n) => [n, state[n]!.shape]));
    expect(shapes).toEqual({
      'stem.weight': [16, 1, 3, 3],
      'stem.bias': [16],
      'blocks.0.w0': [9696],
      'blocks.0.hypernet.0.weight': [32, 9697],
      'blocks.0.hypernet.0.bias': [32],
      'blocks.0.hypernet.1.weight': [9696, 32],
      'blocks.0.hypernet.1.bias': [9696],
      'head.weight': [10, 16 * 7 * 7],
      'head.bias': [10],
    });
    expect(Object.keys(state).some((k) => k.startsWith('ema.'))).toBe(false); // EMA off
    expect(() => conv.predict(images, { ema: true })).toThrow(/ema/);
    expect(state['blocks.0.w0']!.data).toBeInstanceOf(Float32Array); // float32
    expect((await conv.predict(images, { seed: 1 })).kind).toBe('categorical');
    // fan-in init per slice: k1 [32, 16 + 1 (t), 3, 3], b1 [32] within 1/sqrt(153); k2 [16, 32 + 1, 3, 3], b2 [16] within 1/sqrt(297)
    const w0 = Array.from(state['blocks.0.w0']!.data, Math.abs);
    const maxOf = (a: number[]) => a.reduce((m, v) => Math.max(m, v), 0);
    const first = maxOf(w0.slice(0, 32 * 153 + 32));
    const second = maxOf(w0.slice(32 * 153 + 32));
    expect(first).toBeLessThanOrEqual(1 / Math.sqrt(153));
    expect(first).toBeGreaterThan(0.99 / Math.sqrt(153));
    expect(second).toBeLessThanOrEqual(1 / Math.sqrt(297));
    expect(second).toBeGreaterThan(0.99 / Math.sqrt(297));
    // seed 0
    expect(new SdeBnn({ seed: 0 }).getState()['blocks.0.w0']!.data).toEqual(state['blocks.0.w0']!.data);
    expect(new SdeBnn({ seed: 1 }).getState()['blocks.0.w0']!.data).not.toEqual(state['blocks.0.w0']!.data);

    // In float64 (every other field default): a constant drift through the tanh hypernetwork gives
    // KL = 1/2 ||g||^2 / 0.05^2 in 10 Euler steps with no dB term (ckl), and loss - nll = 1e-3 KL / 60000.
    const model = new SdeBnn({ dtype: 'float64' });
    const g2 = setConstantDrift(model, 4, 0.01)[0]!;
    const [d] = await model.diagnose(images, { seed: 2 });
    expect(d).toMatchObject({ tEnd: 1, steps: 10, nfe: 20, klDb: 0 });
    expect(Math.abs(d!.kl - (0.5 * g2) / 0.05 ** 2) / d!.kl).toBeLessThan(1e-12);
    const softplusG2 = (() => {
      const other = new SdeBnn({ dtype: 'float64', hypernet: { activation: 'softplus' } });
      return setConstantDrift(other, 4, 0.01)[0]!;
    })();
    expect(Math.abs(softplusG2 - g2) / g2).toBeGreaterThan(0.1); // the activation matters to this number
    const g = await model.gradients(images, labels, { seed: 2 });
    expect(Math.abs((g.loss - g.nll) / g.kl - 1e-3 / 60000) / (1e-3 / 60000)).toBeLessThan(1e-6);
    // Adam with lr 1e-3, betas (0.9, 0.999), eps 1e-8 and clipping at norm 1: two steps, then a third checked
    for (let k = 0; k < 2; k++) await model.trainStep(images, labels);
    const before = model.getState();
    const twin = new SdeBnn({ dtype: 'float64' });
    twin.setState(before);
    const { grads } = await model.gradients(images, labels); // the training stream: the same path as the twin's step
    const step = await twin.trainStep(images, labels);
    expect(step.gradNorm).toBeGreaterThan(1); // so the clip acts
    const { got, expected } = adamStep(before, twin.getState(), grads, { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, clip: 1 });
    expect(relativeError(got, expected)).toBeLessThan(1e-12);
    for (const m of [conv, model, twin]) m.dispose();

    // The mlp: steps 20, sigma 0.2 through a [64] softplus hypernetwork, w_0 ~ N(0, 0.1^2), no head
    // (the last coordinate of h_1 of [x, 0, 0] through 3-32-32-3), a Gaussian likelihood of scale 0.1.
    const mlp = new SdeBnn({ kind: 'mlp', dtype: 'float64' });
    expect(mlp.wDims).toEqual([3 * 32 + 32 + 32 * 32 + 32 + 32 * 3 + 3]);
    expect(mlp.parameterNames.some((n) => n.startsWith('head') || n.startsWith('stem'))).toBe(false);
    const mw0 = mlp.getState()['blocks.0.w0']!.data;
    const std = Math.sqrt(Array.from(mw0).reduce((a, v) => a + v * v, 0) / mw0.length);
    expect(Math.abs(std - 0.1)).toBeLessThan(0.01); // 1283 draws: standard error 0.002
    const mg2 = setConstantDrift(mlp, 5, 0.01)[0]!;
    const [md] = await mlp.diagnose(x1d, { seed: 3 });
    expect(md).toMatchObject({ tEnd: 1, steps: 20, nfe: 40, klDb: 0 });
    expect(Math.abs(md!.kl - (0.5 * mg2) / 0.2 ** 2) / md!.kl).toBeLessThan(1e-12);
    const out = await mlp.predict(x1d, { samples: 1, seed: 3 });
    if (out.kind !== 'regression') throw new Error('expected regression');
    expect(out.noiseScale).toBe(0.1);
    let nll = 0;
    for (let i = 0; i < B; i++) nll += 0.5 * ((y1d[i]! - out.samples[i]!) / 0.1) ** 2 + Math.log(0.1) + 0.5 * Math.log(2 * Math.PI);
    const mr = await mlp.gradients(x1d, y1d, { seed: 3 });
    expect(Math.abs(mr.nll - nll / B) / mr.nll).toBeLessThan(1e-12);
    mlp.dispose();
  });
});
