// W7 cifar_step (docs/benchmarks.md): one training step of the paper-cifar10 preset (lib/presets.ts)
// at batch 128 on 3x32x32, backprop and adjoint, on the CPU and, where the build sees one, on CUDA.
// Reported: ms per step, the FLOPs of the step counted from the model's shapes (flops() below),
// the achieved FLOP/s, the ratio to the same model on plain LibTorch autograd (kernels:
// 'autograd') timed alternately run by run, and on CUDA the peak GPU memory of a step.
'use strict';
const path = require('node:path');
const { pseudoBatch, round, time, timeAlternating } = require('../bench.js');

const root = path.join(__dirname, '..', '..');
const WORKLOAD = 'W7';
const BATCH = 128;

/** The preset's model with nTrain 50000 and the variant's gradient; `extra` adds options (device, kernels, speed options). */
function config(variant, extra = {}) {
  const { PRESETS } = require(path.join(root, 'dist', 'presets.js'));
  const p = PRESETS['paper-cifar10'];
  return {
    ...p.model,
    solver: { ...p.model.solver, gradient: variant },
    beta: p.training.beta,
    nTrain: 50000,
    optimizer: { lr: p.training.lr, clip: p.training.clip, ema: p.training.ema },
    seed: 0,
    // backprop keeps every step's activations: 20 steps x 6 blocks at batch 128 passes the 4 GiB default.
    maxBytes: 16 * 2 ** 30,
    ...extra,
  };
}

/**
 * Multiply-adds x 2 of one training step, from the resolved config's shapes. Per solver step and
 * block (one drift evaluation, Euler): conv3x3 (C+1 -> width) and conv3x3 (width+1 -> C) over the
 * block's map at batch B (the t channel counted as an input channel), and the hypernetwork's
 * linear layers on [w, t] (one weight path per batch). The head: Linear(features, classes).
 * Backward costs twice the forward (input and weight gradients); the adjoint re-evaluates the
 * dynamics once more on its backward solve, so a step is 3x the forward (backprop) or 4x the
 * solves plus 3x the head (adjoint). Elementwise work (activations, noise, Adam) is not counted.
 */
function flops(c, batch = BATCH) {
  let [ch, h, w] = [c.inputShape[0] + c.aug, c.inputShape[1], c.inputShape[2]];
  if (c.stem !== false) throw new Error('W7 counts the stem-less paper model only');
  let perStep = 0;
  c.blocks.forEach((n, s) => {
    if (s > 0) [ch, h, w] = [ch * 4, h / 2, w / 2];
    const width = c.width[s];
    const conv = 2 * batch * h * w * 9 * ((ch + 1) * width + (width + 1) * ch);
    const wDim = (ch + 1) * width * 9 + width + (width + 1) * ch * 9 + ch;
    const dims = [wDim + 1, ...c.hypernet.hidden, wDim];
    let hyper = 0;
    for (let i = 1; i < dims.length; i++) hyper += 2 * dims[i - 1] * dims[i];
    perStep += n * (conv + hyper);
  });
  const pool = c.pool === 'global' ? h : c.pool;
  const head = 2 * batch * ch * (h / pool) * (w / pool) * c.classes;
  const forward = c.solver.steps * perStep;
  return c.solver.gradient === 'adjoint' ? 4 * forward + 3 * head : 3 * (forward + head);
}

/**
 * One workload's training step on one device (W7 here; W2 and W7 on CUDA in scripts/gpu-bench.js):
 * ours alone, then ours alternating with the autograd baseline; FLOPs from flops(), and on CUDA
 * the peak memory of ours alone. o: workload, config (variant, extra) => SdeBnnConfig, device,
 * variant, runs, warmup, baseline, extra, label.
 */
async function measure(sdebnn, o) {
  const { device, variant } = o;
  const model = new sdebnn.SdeBnn(o.config(variant, { device, ...o.extra }));
  const { x, y } = pseudoBatch(model.config.inputShape, BATCH);
  const count = flops(model.config);
  let last;
  const step = async () => {
    last = await model.trainStep(x, y);
  };
  const cuda = device !== 'cpu';
  if (cuda) sdebnn.cudaMemoryStats(device, { reset: true });
  const ours = await time(step, { runs: o.runs, warmup: o.warmup });
  const result = {
    workload: o.workload,
    variant,
    device,
    ...(o.label ? { options: o.label } : {}),
    route: model.routes.train,
    median_ms: round(ours.median_ms),
    min_ms: round(ours.min_ms),
    runs: o.runs,
    threads: sdebnn.backend().threads,
    gflop_per_step: round(count / 1e9),
    achieved_gflops: round(count / 1e9 / (ours.median_ms / 1000)),
    nfe: last.nfe + last.nfeBackward,
    loss: round(last.loss),
  };
  if (cuda) result.peak_gpu_mib = round(sdebnn.cudaMemoryStats(device).peakAllocatedBytes / 2 ** 20);
  if (o.baseline) {
    const naive = new sdebnn.SdeBnn(o.config(variant, { device, ...o.extra, kernels: 'autograd' }));
    const [interleaved, base] = await timeAlternating(step, () => naive.trainStep(x, y), { runs: o.runs, warmup: o.warmup });
    naive.dispose();
    result.baseline_ms = round(base.median_ms);
    result.interleaved_ms = round(interleaved.median_ms);
    result.ratio = round(base.median_ms / interleaved.median_ms, 3);
  }
  model.dispose();
  return result;
}

/**
 * options: runs (default 3 on the CPU, 10 on CUDA), warmup (1, 3), variants, devices (default
 * 'cpu' and 'cuda' where available), baseline (default true), extra (config fields added to ours,
 * e.g. speed options, with `label` naming them in the output).
 */
async function W7(options = {}) {
  const sdebnn = require(path.join(root, 'dist', 'index.js'));
  const devices = options.devices ?? ['cpu', ...(sdebnn.backend().cudaAvailable ? ['cuda'] : [])];
  const results = [];
  for (const device of devices) {
    for (const variant of options.variants ?? ['backprop', 'adjoint']) {
      const gpu = device !== 'cpu';
      results.push(
        await measure(sdebnn, {
          workload: WORKLOAD,
          config,
          device,
          variant,
          runs: options.runs ?? (gpu ? 10 : 3),
          warmup: options.warmup ?? (gpu ? 3 : 1),
          baseline: options.baseline !== false,
          extra: options.extra ?? {},
          label: options.label,
        }),
      );
    }
  }
  return results;
}

module.exports = W7;
module.exports.config = config;
module.exports.flops = flops;
module.exports.measure = measure;
