#!/usr/bin/env node
// W1 toy1d (shared/bench-workloads.md): small MLP SDE-BNN, overhead-bound.
// batch 64, x ~ U(-1,1), y = cos(4x), h = [x, 0, 0]; f_h Linear(3,32) softplus Linear(32,32) softplus
// Linear(32,3) sliced from w (w_dim 1283), no time input; hypernetwork Linear(1284,64) softplus
// Linear(64,1283) (last layer zero); sigma 0.2; w_0 ~ N(0, 0.1^2); Euler-Maruyama, 20 fixed steps;
// loss L1(last coordinate of h_1, y) + 1e-3 KL / 64; Adam lr 1e-3. Variants: backprop, adjoint (euler).
// A step is one SdeBnn.trainStep (Brownian path, solve, loss, gradients, Adam update).
'use strict';
const path = require('node:path');
const { time, round } = require('../bench.js');

const WORKLOAD = 'W1';
const PEER_MS = { backprop: 16.5, adjoint: 37.4 };

function config(variant) {
  return {
    kind: 'mlp',
    inputShape: [1],
    aug: 2,
    hidden: [32, 32],
    activation: 'softplus',
    timeInput: false,
    head: 'last',
    outputs: 1,
    // Laplace with scale 1: |y - mu| + log 2, the L1 loss up to a constant
    likelihood: 'laplace',
    scale: 1,
    sigma: 0.2,
    hypernet: { hidden: [64], activation: 'softplus' },
    w0: { init: 'normal', std: 0.1 },
    estimator: 'ckl',
    solver: { method: 'euler', steps: 20, gradient: variant, adjointMethod: 'euler', adjointSteps: 20 },
    beta: 1e-3,
    nTrain: 64,
    optimizer: { lr: 1e-3, clip: 0 },
    seed: 0,
  };
}

async function W1(options = {}) {
  const sdebnn = require(path.join(__dirname, '..', '..', 'dist', 'index.js'));
  const runs = options.runs ?? 50;
  const warmup = options.warmup ?? 10;
  const batch = 64;
  let state = 12345;
  const uniform = () => ((state = (state * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1;
  const x = Float32Array.from({ length: batch }, uniform);
  const y = Float32Array.from(x, (v) => Math.cos(4 * v));
  const threads = sdebnn.backend().threads;
  const results = [];
  for (const variant of options.variants ?? ['backprop', 'adjoint']) {
    const model = new sdebnn.SdeBnn(config(variant));
    let last;
    const t = await time(async () => (last = await model.trainStep(x, y)), { runs, warmup });
    model.dispose();
    results.push({
      workload: WORKLOAD,
      variant,
      median_ms: round(t.median_ms),
      min_ms: round(t.min_ms),
      runs,
      threads,
      peer_ms: PEER_MS[variant],
      speedup_vs_peer: round(PEER_MS[variant] / t.median_ms, 3),
      nfe: last.nfe + last.nfeBackward,
      loss: round(last.loss),
    });
  }
  return results;
}

module.exports = W1;
module.exports.config = config;

if (require.main === module) {
  W1().then((rows) => rows.forEach((r) => console.log(JSON.stringify(r)))).catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
