// The W5 neural SDE of docs/benchmarks.md (torchsde's benchmark shape), shared by W4 and W5.
'use strict';
const sdebnn = require('../../dist/index.js');

const BATCH = 256,
  D = 128;

// kernels: 'fast' (the default: the buffered solver where it applies, else the hand-written kernels in
// the general solver) or 'autograd' (the naive baseline: plain LibTorch autograd).
function makeProblem(sdeType = 'ito', kernels = 'fast') {
  const sde = new sdebnn.SDE({
    type: 'neural',
    d: D,
    noiseType: 'diagonal',
    sdeType,
    kernels,
    drift: { hidden: [D], activation: 'tanh' },
    diffusion: { kind: 'scaled_tanh', init: 0.1, offset: 0.1 },
    seed: 0,
  });
  const y0 = { data: new Float32Array(BATCH * D).fill(0.1), shape: [BATCH, D] };
  // loss = sum of y_1: upstream gradient 1 at t = 1.
  const gradYs = { data: new Float32Array(2 * BATCH * D), shape: [2, BATCH, D] };
  gradYs.data.fill(1, BATCH * D);
  return { sde, y0, gradYs };
}

// Variant name -> sdeintGradients options (500 steps on [0, 1]).
const VARIANTS = {
  'euler backprop': { sdeType: 'ito', options: { method: 'euler' } },
  'euler adjoint': { sdeType: 'ito', options: { method: 'euler', adjoint: true, adjointMethod: 'euler_heun' } },
  'midpoint adjoint': { sdeType: 'stratonovich', options: { method: 'midpoint', adjoint: true, adjointMethod: 'midpoint' } },
  'reversible_heun adjoint': { sdeType: 'stratonovich', options: { method: 'reversible_heun', adjoint: true, adjointMethod: 'reversible_heun' } },
};

async function runVariant(name, steps, kernels = 'fast') {
  const v = VARIANTS[name];
  const { sde, y0, gradYs } = makeProblem(v.sdeType, kernels);
  return sdebnn.sdeintGradients(sde, y0, [0, 1], gradYs, { ...v.options, dt: 1 / steps, seed: 1 });
}

module.exports = { makeProblem, runVariant, VARIANTS };
