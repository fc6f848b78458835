#!/usr/bin/env node
// Runs the engine on 'cuda' and compares with 'cpu': the same Brownian path, the same solutions,
// gradients by backprop and the adjoint, timings. Prints one JSON line per check and a summary.
'use strict';
const s = require('../dist/index.js');

const results = [];
async function check(name, fn) {
  const start = Date.now();
  try {
    const detail = await fn();
    results.push({ name, ok: detail.ok !== false, ms: Date.now() - start, ...detail });
  } catch (error) {
    results.push({ name, ok: false, ms: Date.now() - start, error: String(error && error.message) });
  }
  console.log(JSON.stringify(results.at(-1)));
}

function maxAbsDiff(a, b) {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function relErr(a, b) {
  let num = 0,
    den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / den);
}

function grads(r) {
  return [
    ...r.gradY0.data,
    ...Object.keys(r.gradParams)
      .sort()
      .flatMap((k) => [...r.gradParams[k].data]),
  ];
}

(async () => {
  const info = s.backend();
  await check('backend', async () => ({ ok: info.cudaAvailable, ...info }));
  await check('selfTest cuda', async () => {
    const r = await s.selfTest({ device: 'cuda', size: 2048, iterations: 20 });
    return { ok: r.device.startsWith('cuda') && r.maxAbsError < 1e-2, ...r };
  });
  await check('brownian increments cuda == cpu', async () => {
    const cpu = new s.BrownianInterval({ t0: 0, t1: 1, shape: [64, 8], seed: 3, dtype: 'float64' });
    const gpu = new s.BrownianInterval({ t0: 0, t1: 1, shape: [64, 8], seed: 3, dtype: 'float64', device: 'cuda' });
    let m = 0;
    for (const [a, b] of [
      [0, 0.3],
      [0.3, 0.31],
      [0.31, 1],
      [0, 1],
    ])
      m = Math.max(m, maxAbsDiff(cpu.increment(a, b).data, gpu.increment(a, b).data));
    return { ok: m < 1e-12, maxAbsDiff: m };
  });
  for (const method of ['euler', 'milstein', 'srk']) {
    await check(`gbm ${method} cuda == cpu`, async () => {
      const spec = { type: 'gbm', mu: [0.3, -0.1], sigma: [0.5, 0.2], dtype: 'float64' };
      const y0 = { data: new Float64Array(512).fill(1), shape: [256, 2] };
      const a = await s.sdeint(new s.SDE(spec), y0, [0, 0.5, 1], { method, dt: 0.01, seed: 4 });
      const b = await s.sdeint(new s.SDE({ ...spec, device: 'cuda' }), y0, [0, 0.5, 1], { method, dt: 0.01, seed: 4, device: 'cuda' });
      const d = maxAbsDiff(a.ys.data, b.ys.data);
      return { ok: d < 1e-9, maxAbsDiff: d };
    });
  }
  await check('neural adjoint vs backprop on cuda (midpoint, 200 steps)', async () => {
    const spec = {
      type: 'neural',
      d: 16,
      noiseType: 'diagonal',
      sdeType: 'stratonovich',
      drift: { hidden: [32], timeInput: true },
      diffusion: { kind: 'scaled_tanh', offset: 0.1 },
      dtype: 'float64',
      device: 'cuda',
      seed: 1,
    };
    const sde = new s.SDE(spec);
    const y0 = { data: Float64Array.from({ length: 64 * 16 }, (_, i) => Math.sin(i)), shape: [64, 16] };
    const g = { data: Float64Array.from({ length: 2 * 64 * 16 }, (_, i) => Math.cos(i)), shape: [2, 64, 16] };
    const bm = new s.BrownianInterval({ t0: 0, t1: 1, shape: [64, 16], seed: 2, dtype: 'float64', device: 'cuda' });
    const opts = { method: 'midpoint', dt: 1 / 200, bm, device: 'cuda' };
    const bp = await s.sdeintGradients(sde, y0, [0, 1], g, opts);
    const adj = await s.sdeintGradients(sde, y0, [0, 1], g, { ...opts, adjoint: true });
    const cpu = await s.sdeintGradients(new s.SDE({ ...spec, device: 'cpu' }), y0, [0, 1], g, {
      method: 'midpoint',
      dt: 1 / 200,
      seed: 0,
      bm: new s.BrownianInterval({ t0: 0, t1: 1, shape: [64, 16], seed: 2, dtype: 'float64' }),
    });
    const e = relErr(grads(adj), grads(bp));
    const c = relErr(grads(bp), grads(cpu));
    return { ok: e < 1e-3 && c < 1e-9, adjointVsBackprop: e, cudaVsCpu: c };
  });
  for (const [route, sdeType, opts] of [
    ['euler backprop', 'ito', { method: 'euler' }],
    ['euler, euler_heun adjoint', 'ito', { method: 'euler', adjoint: true, adjointMethod: 'euler_heun' }],
    ['reversible_heun adjoint', 'stratonovich', { method: 'reversible_heun', adjoint: true }],
  ]) {
    await check(`neural SDE fused kernels == autograd on cuda (${route})`, async () => {
      const spec = {
        type: 'neural',
        d: 16,
        noiseType: 'diagonal',
        sdeType,
        drift: { hidden: [32], timeInput: true },
        diffusion: { kind: 'scaled_tanh', offset: 0.1 },
        dtype: 'float64',
        device: 'cuda',
        seed: 1,
      };
      const y0 = { data: Float64Array.from({ length: 64 * 16 }, (_, i) => Math.sin(i)), shape: [64, 16] };
      const g = { data: Float64Array.from({ length: 2 * 64 * 16 }, (_, i) => Math.cos(i)), shape: [2, 64, 16] };
      const run = (kernels) => s.sdeintGradients(new s.SDE({ ...spec, kernels }), y0, [0, 1], g, { ...opts, dt: 1 / 50, seed: 2, device: 'cuda' });
      const e = relErr(grads(await run('fused')), grads(await run('autograd')));
      // the default ('fast') takes the general solver on CUDA (the buffered one is CPU only), and says so
      const fast = await run('fast');
      return { ok: e < 1e-10 && fast.route === 'fused', fusedVsAutograd: e, fastRoute: fast.route };
    });
  }
  for (const device of ['cpu', 'cuda']) {
    await check(`W5 shape, euler backprop, 500 steps, ${device}`, async () => {
      const sde = new s.SDE({
        type: 'neural',
        d: 128,
        noiseType: 'diagonal',
        drift: { hidden: [128] },
        diffusion: { kind: 'scaled_tanh', init: 0.1, offset: 0.1 },
        device,
      });
      const y0 = { data: new Float32Array(256 * 128).fill(0.1), shape: [256, 128] };
      const g = { data: new Float32Array(2 * 256 * 128).fill(1), shape: [2, 256, 128] };
      await s.sdeintGradients(sde, y0, [0, 1], g, { method: 'euler', dt: 1 / 50, device });
      const start = Date.now();
      await s.sdeintGradients(sde, y0, [0, 1], g, { method: 'euler', dt: 1 / 500, device });
      return { seconds: (Date.now() - start) / 1000 };
    });
  }
  if (typeof s.SdeBnn === 'function') {
    await check('SDE-BNN train step on cuda', async () => {
      const model = new s.SdeBnn({ ...(s.SdeBnn.mnistDefaults ? s.SdeBnn.mnistDefaults() : {}), device: 'cuda' });
      const x = new Float32Array(64 * 784).map((_, i) => Math.sin(i));
      const y = Uint8Array.from({ length: 64 }, (_, i) => i % 10);
      const first = await model.trainStep(x, y, { lr: 1e-3, beta: 1e-3 });
      const start = Date.now();
      for (let i = 0; i < 5; i++) await model.trainStep(x, y, { lr: 1e-3, beta: 1e-3 });
      return { ok: Number.isFinite(first.loss), firstLoss: first.loss, msPerStep: (Date.now() - start) / 5 };
    });
  }
  const failed = results.filter((r) => !r.ok).map((r) => r.name);
  console.log(JSON.stringify({ summary: true, passed: results.length - failed.length, failed }));
  process.exitCode = failed.length ? 1 : 0;
})();
