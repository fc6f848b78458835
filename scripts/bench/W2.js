// W2 mnist_block (docs/benchmarks.md): one conv SDE-BNN block on MNIST-sized input, compute-bound.
// batch 128 of 1x28x28 images; h = [image, one zero channel] (C = 2); f_h conv3x3(cat[h, t] 3->32, pad 1)
// softplus conv3x3(cat[., t] 33->2, pad 1) sliced from w (w_dim 1492); hypernetwork [w, t] -> 64 softplus
// -> w_dim (last layer zero); sigma 0.2; w_0 ~ N(0, 0.05^2); Euler-Maruyama, 10 fixed steps; head avgpool
// 4x4 -> 98 -> Linear(98, 10); loss cross-entropy + 1e-3 KL / 60000; Adam lr 1e-3.
// Variants: backprop, adjoint (euler). Inputs are deterministic pseudo-images (the timing does not
// depend on the pixel values); labels cycle through 0..9.
'use strict';
const { pseudoBatch, timeTrainSteps } = require('../bench.js');

const WORKLOAD = 'W2';
const PEER_MS = { backprop: 350, adjoint: 515 }; // the middle of the peer's ranges, 338-362 and 489-542

function config(variant) {
  return {
    kind: 'conv',
    inputShape: [1, 28, 28],
    stem: false,
    aug: 1,
    width: 32,
    blocks: [1],
    convActivation: 'softplus',
    pool: 4,
    likelihood: 'categorical',
    classes: 10,
    sigma: 0.2,
    hypernet: { hidden: [64], activation: 'softplus' },
    w0: { init: 'normal', std: 0.05 },
    estimator: 'ckl',
    solver: { method: 'euler', steps: 10, gradient: variant, adjointMethod: 'euler', adjointSteps: 10 },
    beta: 1e-3,
    nTrain: 60000,
    optimizer: { lr: 1e-3, clip: 0 },
    seed: 0,
  };
}

async function W2(options = {}) {
  const runs = options.runs ?? 7;
  const warmup = options.warmup ?? 2;
  const { x, y } = pseudoBatch([1, 28, 28], 128);
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

module.exports = W2;
module.exports.config = config;
