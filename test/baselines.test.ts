// The baselines of config.model ('odenet', 'resnet', 'mfvi-odenet', 'mfvi-resnet'): their forward
// pass against a hand computation, their gradients on every route against autograd and against
// central finite differences (float64), the mfvi KL in closed form, determinism, save/load and
// bad input. Fixed seeds throughout; tolerances are stated per check.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { B, relativeError, SdeBnn, x1d, y1d, type Config, type Tensor } from './bnn-fixtures';
import { ACTIVATIONS } from './drift';
import { sdebnn } from './helpers';

const { modelSize } = require('../dist/bnn-size.js') as typeof import('../dist/bnn-size');

const BASELINES = ['odenet', 'resnet', 'mfvi-odenet', 'mfvi-resnet'] as const;
type Baseline = (typeof BASELINES)[number];
const isResnet = (m: Baseline) => m === 'resnet' || m === 'mfvi-resnet';
const isMfvi = (m: Baseline) => m === 'mfvi-odenet' || m === 'mfvi-resnet';

// A small mlp regressor: h = [x, 0, 0], 'last' head, 4 Euler steps (a resnet's 4 layers).
const mlp = (model: Baseline): Config => ({ model, kind: 'mlp', dtype: 'float64', seed: 3, hidden: [8, 8], solver: { steps: 4 }, nTrain: 40 });
// The conv classifier at 8x8 over two stages (space-to-depth between them), global pool.
const conv = (model: Baseline): Config => ({
  model,
  kind: 'conv',
  inputShape: [2, 8, 8],
  stem: 3,
  aug: 1,
  width: 4,
  blocks: [1, 1],
  pool: 'global',
  classes: 3,
  dtype: 'float64',
  seed: 2,
  solver: { steps: 3 },
  nTrain: 40,
});
const images = Float64Array.from({ length: 4 * 2 * 8 * 8 }, (_, i) => Math.sin(0.7 * i));
const labels = [0, 2, 1, 2];

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sdebnn-baselines-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** f(h) of the mlp dynamics: per layer W [out, in] row-major then b [out], from `w` at `offset`. */
function mlpDynamics(w: ArrayLike<number>, sizes: number[], act: (v: number) => number, h: number[]): number[] {
  let a = h;
  let at = 0;
  for (let l = 0; l + 1 < sizes.length; l++) {
    const [fan, out] = [sizes[l]!, sizes[l + 1]!];
    const z = Array.from({ length: out }, (_, r) => {
      let acc = w[at + out * fan + r]!;
      for (let c = 0; c < fan; c++) acc += w[at + r * fan + c]! * a[c]!;
      return acc;
    });
    at += out * fan + out;
    a = l + 2 === sizes.length ? z : z.map(act);
  }
  return a;
}

/** Trains a few steps so that the weights (and an mfvi rho) are off their initial values. */
async function trained(config: Config, x: Float64Array, y: Float64Array | number[]) {
  const model = new SdeBnn(config);
  for (let k = 0; k < 3; k++) await model.trainStep(x, y, { lr: 1e-2, beta: 1 });
  return model;
}

describe('baseline models: forward pass', () => {
  it('odenet and resnet (and the mfvi means) equal Euler steps / residual layers computed here (mlp, float64, 1e-12)', async () => {
    for (const model of BASELINES) {
      const m = await trained(mlp(model), x1d, y1d);
      const state = m.getState();
      const K = 4;
      const sizes = [3, 8, 8, 3];
      const act = ACTIVATIONS.softplus!;
      // the mfvi models' deterministic view is the network at the posterior mean
      const p = (await m.predict(x1d, isMfvi(model) ? { deterministic: true } : {})) as { samples: Float64Array };
      for (let i = 0; i < B; i++) {
        let h = [x1d[i]!, 0, 0];
        for (let k = 0; k < K; k++) {
          // odenet: one weight vector at t = k/K; resnet: layer k's own, the k-th slice of w0
          const w0 = state['blocks.0.w0']!.data;
          const f = mlpDynamics(isResnet(model) ? w0.subarray(131 * k, 131 * (k + 1)) : w0, sizes, act, h);
          h = h.map((v, j) => v + f[j]! / K);
        }
        expect(Math.abs(p.samples[i]! - h[2]!), `${model} example ${i}`).toBeLessThan(1e-12);
      }
      expect(m.wDims).toEqual([isResnet(model) ? 4 * 131 : 131]);
      m.dispose();
    }
  });

  it('a resnet whose layers all hold the odenet weights is the odenet solved by Euler (conv, two stages)', async () => {
    const ode = await trained(conv('odenet'), images, labels);
    const res = new SdeBnn(conv('resnet'));
    const s = ode.getState();
    const update: Record<string, Tensor> = {};
    for (const name of ['stem.weight', 'stem.bias', 'head.weight', 'head.bias']) update[name] = s[name]!;
    // each block's three layers hold the odenet block's weights
    for (const b of [0, 1]) {
      const w = s[`blocks.${b}.w0`]!.data;
      const data = new Float64Array(3 * w.length);
      for (let k = 0; k < 3; k++) data.set(w, k * w.length);
      update[`blocks.${b}.w0`] = { data, shape: [data.length] };
    }
    res.setState(update, { strict: false });
    const a = (await ode.predict(images)) as { probs: Float64Array };
    const b = (await res.predict(images)) as { probs: Float64Array };
    a.probs.forEach((v, i) => expect(Math.abs(v - b.probs[i]!)).toBeLessThan(1e-14));
    ode.dispose();
    res.dispose();
  });

  it('prediction shapes, and parameter counts as lib/bnn-size computes them', async () => {
    for (const model of BASELINES) {
      const c = new SdeBnn(conv(model));
      const p = await c.predict(images, { samples: 3, returnSamples: true });
      expect(p.kind).toBe('categorical');
      if (p.kind === 'categorical') {
        expect(p.shape).toEqual([4, 3]);
        expect(p.samplesShape).toEqual([3, 4, 3]);
      }
      expect(c.numParameters, model).toBe(modelSize(c.config).parameters);
      // stem 3*2*9+3, per block of stage s (C = 4, then 16): 4*(C+1)*9+4 + C*5*9+C, head 3*16+3
      const w = [4 * 5 * 9 + 4 + 4 * 5 * 9 + 4, 4 * 17 * 9 + 4 + 16 * 5 * 9 + 16];
      const blocks = (isResnet(model) ? 3 : 1) * (w[0]! + w[1]!) * (isMfvi(model) ? 2 : 1);
      expect(c.numParameters, model).toBe(57 + blocks + 51);
      expect(c.parameterNames.some((n) => n.includes('hypernet'))).toBe(false);
      c.dispose();
      const r = new SdeBnn(mlp(model));
      const q = await r.predict(x1d, { samples: 2 });
      expect(q.kind).toBe('regression');
      if (q.kind === 'regression') expect(q.shape).toEqual([2, B, 1]);
      r.dispose();
    }
  });
});

describe('baseline models: gradients', () => {
  it('every route equals autograd (float64, 1e-12): mlp (the direct route for the point models) and conv', async () => {
    for (const model of BASELINES) {
      for (const [config, x, y] of [
        [mlp(model), x1d, y1d],
        [conv(model), images, labels],
      ] as const) {
        const fast = await trained(config, x, y);
        const reference = new SdeBnn({ ...config, kernels: 'autograd' });
        reference.setState(fast.getState());
        const b = await reference.gradients(x, y, { seed: 5, beta: 10 });
        for (const kernels of ['fast', 'fused'] as const) {
          const m = kernels === 'fast' ? fast : new SdeBnn({ ...config, kernels });
          if (m !== fast) m.setState(fast.getState());
          const a = await m.gradients(x, y, { seed: 5, beta: 10 });
          const label = `${model} ${config.kind} ${kernels} (${m.routes.train})`;
          expect(Math.abs(a.loss - b.loss) / b.loss, label).toBeLessThan(1e-12);
          expect(relativeError(a.grads, b.grads), label).toBeLessThan(1e-12);
          if (m !== fast) m.dispose();
        }
        // the point models on the mlp with a 'last' head take the direct route (no autograd graph)
        if (config.kind === 'mlp') expect(fast.routes.train).toBe(isMfvi(model) ? 'buffered' : 'direct');
        fast.dispose();
        reference.dispose();
      }
    }
  });

  it('gradients equal central finite differences of the loss (float64, relative 1e-6 on 6 coordinates per model)', async () => {
    for (const model of BASELINES) {
      for (const [config, x, y] of [
        [mlp(model), x1d, y1d],
        [conv(model), images, labels],
      ] as const) {
        const m = await trained(config, x, y);
        const state = m.getState();
        const g = await m.gradients(x, y, { seed: 7, beta: 10 });
        const names = m.parameterNames.filter((n) => n.startsWith('blocks.'));
        for (let k = 0; k < 6; k++) {
          const name = names[k % names.length]!;
          const t = state[name]!;
          // a coordinate whose gradient is not zero (one on an input that is 0, e.g. aug's, is)
          let i = (17 * k + 5) % t.data.length;
          while (Math.abs(g.grads[name]!.data[i]!) < 1e-6) i = (i + 1) % t.data.length;
          const loss = async (delta: number) => {
            const data = Float64Array.from(t.data);
            data[i] = data[i]! + delta;
            m.setState({ [name]: { data, shape: t.shape } }, { strict: false });
            return (await m.gradients(x, y, { seed: 7, beta: 10 })).loss;
          };
          const eps = 1e-6;
          const fd = ((await loss(eps)) - (await loss(-eps))) / (2 * eps);
          m.setState({ [name]: t }, { strict: false });
          const ad = g.grads[name]!.data[i]!;
          expect(Math.abs(fd - ad), `${model} ${config.kind} ${name}[${i}]: fd ${fd} ad ${ad}`).toBeLessThan(1e-6 * Math.max(1, Math.abs(ad)));
        }
        m.dispose();
      }
    }
  });
});

describe('baseline models: the adjoint', () => {
  it("an odenet's adjoint gradients converge to backprop's: exact for reversible Heun, O(dt) otherwise (float64, both routes)", async () => {
    const cases = [
      // [method, steps, tolerance]: measured 7.2e-6, 5.9e-10, 6.8e-17 (8.1e-6, 7.9e-10, 1.0e-16 mfvi)
      ['euler', 400, 3e-5],
      ['midpoint', 100, 1e-8],
      ['reversible_heun', 20, 1e-13],
    ] as const;
    for (const model of ['odenet', 'mfvi-odenet'] as const) {
      for (const [method, steps, tolerance] of cases) {
        const config: Config = { ...mlp(model), head: 'linear', solver: { method, steps } };
        const backprop = await trained(config, x1d, y1d);
        const b = await backprop.gradients(x1d, y1d, { seed: 5 });
        for (const kernels of ['fast', 'fused'] as const) {
          const m = new SdeBnn({ ...config, kernels, solver: { method, steps, gradient: 'adjoint', adjointMethod: method } });
          m.setState(backprop.getState());
          const a = await m.gradients(x1d, y1d, { seed: 5 });
          expect(a.loss).toBe(b.loss);
          expect(relativeError(a.grads, b.grads), `${model} ${method} ${kernels}`).toBeLessThan(tolerance);
          m.dispose();
        }
        backprop.dispose();
      }
    }
  });
});

describe('baseline models: KL, noise and checkpoints', () => {
  it('the mfvi KL is the closed form KL(N(mu, exp(2 rho)) || N(0, priorStd^2)) summed over the weights, weighted beta / nTrain', async () => {
    for (const model of ['mfvi-odenet', 'mfvi-resnet'] as const) {
      const m = await trained({ ...mlp(model), w0: { priorStd: 0.3 } }, x1d, y1d);
      const s = m.getState();
      const p = 0.3;
      let kl = 0;
      m.wDims.forEach((_, b) => {
        const mu = s[`blocks.${b}.w0`]!.data;
        const rho = s[`blocks.${b}.w0_rho`]!.data;
        for (let i = 0; i < mu.length; i++) kl += Math.log(p / Math.exp(rho[i]!)) + (Math.exp(2 * rho[i]!) + mu[i]! ** 2) / (2 * p * p) - 0.5;
      });
      const g = await m.gradients(x1d, y1d, { seed: 1, beta: 2 });
      expect(Math.abs(g.kl - kl) / kl, model).toBeLessThan(1e-12);
      expect(Math.abs(g.loss - (g.nll + (2 * kl) / 40)) / g.loss, model).toBeLessThan(1e-12);
      const r = await m.trainStep(x1d, y1d, { lr: 0 });
      expect(r.klW0).toBe(r.kl);
      expect(m.config.w0.rhoInit).toBe(-4);
      m.dispose();
    }
    for (const model of ['odenet', 'resnet'] as const) {
      const r = await new SdeBnn(mlp(model)).trainStep(x1d, y1d);
      expect(r.kl).toBe(0);
    }
  });

  it('odenet and resnet predict deterministically; the mfvi models vary with the seed and repeat with it', async () => {
    for (const model of BASELINES) {
      const m = new SdeBnn(conv(model));
      const a = (await m.predict(images, { seed: 1 })) as { probs: Float64Array };
      const b = (await m.predict(images, { seed: 2 })) as { probs: Float64Array };
      const c = (await m.predict(images, { seed: 1 })) as { probs: Float64Array };
      const diff = Math.max(...a.probs.map((v, i) => Math.abs(v - b.probs[i]!)));
      if (isMfvi(model)) expect(diff, model).toBeGreaterThan(1e-6);
      else expect(diff, model).toBe(0);
      expect(c.probs).toEqual(a.probs);
      m.dispose();
    }
  });

  it('save and load keep the model, its parameters and its predictions', async () => {
    for (const model of BASELINES) {
      for (const [config, x, y] of [
        [mlp(model), x1d, y1d],
        [conv(model), images, labels],
      ] as const) {
        const m = await trained(config, x, y);
        const file = path.join(tmp, `${model}-${config.kind}.safetensors`);
        m.save(file);
        const back = SdeBnn.load(file);
        expect(back.config.model).toBe(model);
        expect(back.config.sigma).toBeNull();
        expect(back.parameterNames).toEqual(m.parameterNames);
        const a = await m.predict(x, { seed: 4, samples: 2 });
        const b = await back.predict(x, { seed: 4, samples: 2 });
        expect(b).toEqual(a);
        // and it trains on identically (Adam's state and the random streams came back too)
        const ra = await m.trainStep(x, y);
        const rb = await back.trainStep(x, y);
        expect(rb.loss).toBe(ra.loss);
        m.dispose();
        back.dispose();
      }
    }
  });
});

describe('baseline models: bad input', () => {
  const { resolveSdeBnnConfig } = sdebnn;
  it('unknown models and options that do not apply are typed errors naming the field', () => {
    expect(() => resolveSdeBnnConfig({ model: 'densenet' })).toThrow(RangeError);
    expect(() => resolveSdeBnnConfig({ model: 'densenet' })).toThrow(
      /Expected one of 'sdebnn', 'odenet', 'resnet', 'mfvi-resnet', 'mfvi-odenet' for config\.model but received "densenet"/,
    );
    expect(() => resolveSdeBnnConfig({ model: 3 as never })).toThrow(TypeError);
    for (const model of BASELINES) {
      expect(() => resolveSdeBnnConfig({ model, sigma: 0.1 })).toThrow(TypeError);
      expect(() => resolveSdeBnnConfig({ model, sigma: 0.1 })).toThrow(`Expected no config.sigma with model '${model}'`);
      expect(() => resolveSdeBnnConfig({ model, hypernet: { hidden: [4] } })).toThrow(/config\.hypernet/);
      expect(() => resolveSdeBnnConfig({ model, estimator: 'ckl' })).toThrow(/config\.estimator/);
      expect(() => resolveSdeBnnConfig({ model, w0: { posterior: isMfvi(model) ? 'point' : 'gaussian' } })).toThrow(RangeError);
    }
    expect(() => resolveSdeBnnConfig({ sigma: null })).toThrow(/config\.sigma/);
    for (const model of ['resnet', 'mfvi-resnet'] as const) {
      expect(() => resolveSdeBnnConfig({ model, solver: { method: 'midpoint' } })).toThrow(`Expected config.solver.method 'euler' with model '${model}'`);
      expect(() => resolveSdeBnnConfig({ model, solver: { adaptive: true } })).toThrow(/config\.solver\.adaptive false/);
      expect(() => resolveSdeBnnConfig({ model, solver: { gradient: 'adjoint' } })).toThrow(/config\.solver\.gradient 'backprop'/);
    }
    // a resolved config resolves again to itself (a checkpoint's)
    for (const model of BASELINES) {
      const r = resolveSdeBnnConfig({ model });
      expect(resolveSdeBnnConfig(JSON.parse(JSON.stringify(r)))).toEqual(r);
      expect(r.sigma).toBeNull();
      expect(r.hypernet).toBeNull();
      expect(r.estimator).toBeNull();
    }
    expect(resolveSdeBnnConfig({}).model).toBe('sdebnn');
  });
});
