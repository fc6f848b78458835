// The SDE-BNN's objective computed independently in the test: loss = NLL + beta * KL / nTrain,
// with the categorical, Gaussian and Laplace NLLs evaluated here from the model's own outputs
// (predict with one sample and the same seed draws the same weight path as gradients()) and the
// KL from a hypernetwork set to a constant drift g, where the path KL is exactly 1/2 ||g||^2 / sigma^2
// for any step count (plus the closed form of a Gaussian q(w_0)). No number here comes from the
// library's autograd route.
import { describe, expect, it } from 'vitest';
import { setConstantDrift, seeded } from './drift';
import { sdebnn } from './helpers';

const { SdeBnn } = sdebnn;
type Config = NonNullable<ConstructorParameters<typeof SdeBnn>[0]>;
type Model = InstanceType<typeof SdeBnn>;

/** The closed-form KL of q(w_0) = N(mu, exp(2 rho)) against N(0, p^2), summed over blocks (0 for a point w_0). */
function gaussianW0Kl(model: Model): number {
  if (model.config.w0.posterior !== 'gaussian') return 0;
  const p = model.config.w0.priorStd;
  const s = model.getState();
  let kl = 0;
  model.wDims.forEach((_, b) => {
    const mu = s[`blocks.${b}.w0`]!.data;
    const rho = s[`blocks.${b}.w0_rho`]!.data;
    for (let i = 0; i < mu.length; i++) kl += Math.log(p) - rho[i]! + (Math.exp(2 * rho[i]!) + mu[i]! ** 2) / (2 * p * p) - 0.5;
  });
  return kl;
}

/** The likelihood's scale as the model holds it: exp(log_scale) when learned, else config.scale. */
function noiseScale(model: Model): number {
  return model.config.learnScale ? Math.exp(model.getState()['likelihood.log_scale']!.data[0]!) : model.config.scale;
}

/** The NLL of targets under one weight path's outputs, as the model defines it: mean over the batch, sum over outputs. */
async function nllFromOutputs(model: Model, x: Float64Array, y: ArrayLike<number>, seed: number): Promise<number> {
  const out = await model.predict(x, { samples: 1, seed });
  if (out.kind === 'categorical') {
    const [n, k] = out.shape;
    let sum = 0;
    for (let i = 0; i < n; i++) sum -= Math.log(out.probs[i * k + y[i]!]!);
    return sum / n;
  }
  const [, n, k] = out.shape;
  const s = noiseScale(model);
  let sum = 0;
  for (let i = 0; i < n * k; i++) {
    const r = y[i]! - out.samples[i]!;
    sum +=
      model.config.likelihood === 'gaussian'
        ? (0.5 * r * r) / (s * s) + Math.log(s) + 0.5 * Math.log(2 * Math.PI)
        : Math.abs(r) / s + Math.log(s) + Math.log(2);
  }
  return sum / n;
}

/**
 * gradients() against the loss computed here: the NLL from predict's outputs on the same path,
 * the KL from the constant drifts' ||g||^2 (per block) and the q(w_0) closed form.
 */
async function expectLoss(
  model: Model,
  x: Float64Array,
  y: Float64Array | number[],
  g2: number[],
  o: { seed: number; beta: number; tol: number; label: string },
) {
  const r = await model.gradients(x, y, { seed: o.seed, beta: o.beta });
  const nll = await nllFromOutputs(model, x, y, o.seed);
  const kl = g2.reduce((a, v) => a + (0.5 * v) / model.config.sigma ** 2, 0) + gaussianW0Kl(model);
  const expected = nll + (o.beta * kl) / model.config.nTrain;
  expect(Math.abs(r.nll - nll) / nll, `${o.label}: nll`).toBeLessThan(o.tol);
  expect(Math.abs(r.kl - kl) / kl, `${o.label}: kl`).toBeLessThan(o.tol);
  expect(Math.abs(r.loss - expected) / expected, `${o.label}: loss`).toBeLessThan(o.tol);
  // the KL term is a sizeable part of the loss, so a wrong beta, nTrain or KL would show
  expect((o.beta * kl) / model.config.nTrain / expected, o.label).toBeGreaterThan(0.05);
}

const B = 12;
const x1d = Float64Array.from({ length: B }, (_, i) => -1 + (2 * i) / (B - 1));
const y1d = Float64Array.from(x1d, (v) => Math.cos(4 * v));
const y2d = Float64Array.from({ length: 2 * B }, (_, i) => Math.sin(i));
const tiny: Config = { kind: 'mlp', dtype: 'float64', seed: 3, hidden: [16, 16], hypernet: { hidden: [16] }, sigma: 0.2, nTrain: 50, solver: { steps: 6 } };

describe('the loss, computed in the test', () => {
  // [label, config, targets]: every likelihood; the direct route (mlp, head 'last', fixed scale,
  // point w_0) and the graph routes (a linear head, a learned scale, a Gaussian q(w_0), two blocks);
  // fast, fused and autograd kernels; ckl; float64 (1e-12) and the float32 default (1e-5).
  const regression: [string, Config, Float64Array][] = [
    ['gaussian, head last (direct route)', { ...tiny }, y1d],
    ['gaussian, two outputs, two blocks, scale 0.7', { ...tiny, outputs: 2, blocks: 2, scale: 0.7 }, y2d],
    ['gaussian, learned scale, Gaussian w_0', { ...tiny, learnScale: true, scale: 0.3, w0: { posterior: 'gaussian', rhoInit: -3 } }, y1d],
    ['gaussian, linear head, kernels fused', { ...tiny, head: 'linear', kernels: 'fused' }, y1d],
    ['laplace, head last (direct route)', { ...tiny, likelihood: 'laplace' }, y1d],
    ['laplace, two outputs, scale 0.4, kernels autograd', { ...tiny, likelihood: 'laplace', outputs: 2, scale: 0.4, kernels: 'autograd' }, y2d],
    [
      'laplace, learned scale, linear head, adjoint',
      { ...tiny, likelihood: 'laplace', learnScale: true, head: 'linear', solver: { steps: 6, gradient: 'adjoint' } },
      y1d,
    ],
    ['gaussian, float32', { ...tiny, dtype: 'float32' }, y1d],
  ];
  it.each(regression)('%s: loss = NLL + beta KL / nTrain', async (label, config, y) => {
    const model = new SdeBnn(config);
    const g2 = setConstantDrift(model, 1, 0.04);
    if (config.learnScale) model.setState({ 'likelihood.log_scale': { data: Float64Array.of(Math.log(0.45)), shape: [1] } }, { strict: false });
    const beta = 4;
    const tol = config.dtype === 'float32' ? 1e-5 : 1e-12;
    for (const seed of [7, 8]) await expectLoss(model, x1d, y, g2, { seed, beta, tol, label });
    model.dispose();
  });

  it.each([
    ['mlp, linear head, 3 classes', { ...tiny, likelihood: 'categorical', classes: 3, inputShape: [2] } as Config, 2],
    [
      'conv: stem, two stages, pool 2',
      {
        kind: 'conv',
        inputShape: [1, 8, 8],
        stem: 4,
        width: 4,
        blocks: [1, 1],
        pool: 2,
        classes: 3,
        hypernet: { hidden: [8] },
        dtype: 'float64',
        seed: 2,
        sigma: 0.05,
        nTrain: 50,
        solver: { steps: 3 },
      } as Config,
      64,
    ],
    ["the main job's model (the default config), float32", { seed: 1, nTrain: 50 } as Config, 784],
  ])('categorical, %s: loss = NLL + beta KL / nTrain', async (label, config, per) => {
    const model = new SdeBnn(config);
    const classes = model.config.classes;
    const n = 5;
    const x = seeded(n * per, 11, 1.5);
    const labels = Array.from({ length: n }, (_, i) => (3 * i + 1) % classes);
    const g2 = setConstantDrift(model, 2, 0.02);
    const beta = 3;
    const tol = model.config.dtype === 'float32' ? 1e-5 : 1e-12;
    await expectLoss(model, x, labels, g2, { seed: 4, beta, tol, label });
    model.dispose();
  });

  it('counts the u . dB term of fmc and stl in the KL (kl = sum over blocks of the dt and dB parts)', async () => {
    for (const estimator of ['fmc', 'stl'] as const) {
      const model = new SdeBnn({ ...tiny, estimator, blocks: 2 });
      const g2 = setConstantDrift(model, 3, 0.04);
      const r = await model.gradients(x1d, y1d, { seed: 9, beta: 2 });
      const blocks = await model.diagnose(x1d, { seed: 9 });
      blocks.forEach((b, i) => expect(Math.abs(b.kl - (0.5 * g2[i]!) / 0.04) / b.kl).toBeLessThan(1e-12));
      const klDb = blocks.reduce((a, b) => a + b.klDb, 0);
      expect(Math.abs(klDb)).toBeGreaterThan(0.1); // c . B_1 / sigma: a sizeable random number
      const kl = g2.reduce((a, v) => a + (0.5 * v) / 0.04, 0) + klDb;
      expect(Math.abs(r.kl - kl) / Math.abs(kl), estimator).toBeLessThan(1e-12);
      const nll = await nllFromOutputs(model, x1d, y1d, 9);
      expect(Math.abs(r.loss - (nll + (2 * kl) / 50)) / r.loss, estimator).toBeLessThan(1e-12);
      model.dispose();
    }
  });
});
