// W1 toy1d (docs/benchmarks.md): small MLP SDE-BNN, overhead-bound.
// batch 64, x ~ U(-1,1), y = cos(4x), h = [x, 0, 0]; f_h Linear(3,32) softplus Linear(32,32) softplus
// Linear(32,3) sliced from w (w_dim 1283), no time input; hypernetwork Linear(1284,64) softplus
// Linear(64,1283) (last layer zero); sigma 0.2; w_0 ~ N(0, 0.1^2); Euler-Maruyama, 20 fixed steps;
// loss L1(last coordinate of h_1, y) + 1e-3 KL / 64; Adam lr 1e-3. Variants: backprop, adjoint (euler).
// A step is one SdeBnn.trainStep (Brownian path, solve, loss, gradients, Adam update).
'use strict';
const { timeTrainSteps } = require('../bench.js');

const WORKLOAD = 'W1';
const PEER_MS = { backprop: 19.8, adjoint: 68 };

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
  const runs = options.runs ?? 50;
  const warmup = options.warmup ?? 10;
  const batch = 64;
  let state = 12345;
  const uniform = () => ((state = (state * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1;
  const x = Float32Array.from({ length: batch }, uniform);
  const y = Float32Array.from(x, (v) => Math.cos(4 * v));
  return timeTrainSteps({
    workload: WORKLOAD,
    variants: options.variants ?? ['backprop', 'adjoint'],
    config,
    x,
    y,
    runs,
    warmup,
    peerMs: PEER_MS,
    // the naive baseline: the same model on plain LibTorch autograd
    baseline: options.baseline === false ? undefined : (c) => ({ ...c, kernels: 'autograd' }),
  });
}

module.exports = W1;
module.exports.config = config;
