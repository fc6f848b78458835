#!/usr/bin/env node
// The device half of scripts/gpu-bench.sh (issue 18): one JSON line per measurement on CUDA.
//   - W2 and W7 training steps (backprop, adjoint): ms, FLOP/s, the ratio to the same model on
//     LibTorch autograd in the same run, peak GPU memory (scripts/bench/W7.js's measure);
//   - the CUDA math modes against strict float32 on the W2 and W7 backprop steps: step time, and
//     the loss of each of `modeSteps` training steps from the same initialisation and noise next
//     to float32's (|difference| and relative);
//   - the same steps recorded as CUDA graphs (config.cudaGraph) against eager steps, alternated run
//     by run: the graphs' gain, their ms and peak memory, and their ratio to the reference;
//   - the ratio to the PyTorch + torchsde reference when SDEBNN_REFERENCE_JSON names its output.
// SDEBNN_GPU_BENCH_RUNS (default 10) sets the timed runs. Compare figures within one run.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const sdebnn = require(path.join(__dirname, '..', 'dist', 'index.js'));
const W2 = require('./bench/W2.js');
const W7 = require('./bench/W7.js');
const { pseudoBatch, round, timeAlternating } = require('./bench.js');

const print = (o) => console.log(JSON.stringify({ bench: 'gpu', ...o }));
const DEVICE = 'cuda';
const runs = Number(process.env.SDEBNN_GPU_BENCH_RUNS ?? 10);
const modeSteps = 5;
const workloads = {
  W2: (variant, extra = {}) => ({ ...W2.config(variant), ...extra }),
  W7: W7.config,
};

/** Losses of `modeSteps` training steps of a fresh model (seed 0: the same initialisation and Brownian paths in every mode), and the median step ms. */
async function lossesUnder(config, mode) {
  sdebnn.setCudaMathMode(mode);
  const model = new sdebnn.SdeBnn(config('backprop', { device: DEVICE }));
  const { x, y } = pseudoBatch(model.config.inputShape, 128);
  const losses = [];
  const ms = [];
  try {
    for (let i = 0; i < modeSteps; i++) {
      const start = process.hrtime.bigint();
      losses.push((await model.trainStep(x, y)).loss);
      ms.push(Number(process.hrtime.bigint() - start) / 1e6);
    }
  } finally {
    model.dispose();
    sdebnn.setCudaMathMode({ tf32: false, autocast: 'off' });
  }
  return { losses, ms: ms.slice(1).sort((a, b) => a - b)[(ms.length - 1) >> 1] }; // the first step warms up
}

/** One variant's eager and CUDA-graph steps alternated run by run; the graph's peak memory alone. */
async function graphGain(workload, config, variant, reference) {
  const eager = new sdebnn.SdeBnn(config(variant, { device: DEVICE }));
  const graphed = new sdebnn.SdeBnn(config(variant, { device: DEVICE, cudaGraph: true }));
  try {
    const { x, y } = pseudoBatch(eager.config.inputShape, 128);
    let last;
    const graphStep = async () => {
      last = await graphed.trainStep(x, y);
    };
    await graphStep(); // the eager first step that records the graph
    sdebnn.cudaMemoryStats(DEVICE, { reset: true });
    await graphStep();
    const peak = sdebnn.cudaMemoryStats(DEVICE).peakAllocatedBytes;
    const [e, g] = await timeAlternating(() => eager.trainStep(x, y), graphStep, { runs, warmup: 3 });
    const ref = reference.find((p) => p.workload === workload && p.variant === variant && p.median_ms);
    return {
      workload,
      variant,
      eager_ms: round(e.median_ms),
      graph_ms: round(g.median_ms),
      graph_gain: round(e.median_ms / g.median_ms, 3),
      graph_peak_gpu_mib: round(peak / 2 ** 20),
      graph_loss: round(last.loss, 6),
      runs,
      ...(ref ? { reference_ms: ref.median_ms, graph_speedup_vs_reference: round(ref.median_ms / g.median_ms, 3) } : {}),
    };
  } finally {
    eager.dispose();
    graphed.dispose();
  }
}

function readReference() {
  const file = process.env.SDEBNN_REFERENCE_JSON;
  if (!file || !fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l))
    .filter((r) => r.bench === 'reference');
}

async function main() {
  const info = sdebnn.backend();
  print({ part: 'info', torch: info.torchVersion, cuda: info.cudaAvailable, devices: info.cudaDeviceCount, mode: sdebnn.cudaMathMode() });
  if (!info.cudaAvailable) {
    print({ part: 'steps', skipped: 'no CUDA device in this build' });
    return 1;
  }
  // Strict float32 for the step figures: LibTorch, as PyTorch, runs convolutions in TF32 by default.
  sdebnn.setCudaMathMode({ tf32: false, autocast: 'off' });
  const reference = readReference();
  for (const [workload, config] of Object.entries(workloads)) {
    for (const variant of ['backprop', 'adjoint']) {
      try {
        const r = await W7.measure(sdebnn, { workload, config, device: DEVICE, variant, runs, warmup: 3, baseline: true, extra: {} });
        const ref = reference.find((p) => p.workload === workload && p.variant === variant && p.median_ms);
        if (ref)
          Object.assign(r, {
            reference_ms: ref.median_ms,
            reference_peak_gpu_mib: ref.peak_gpu_mib,
            speedup_vs_reference: round(ref.median_ms / r.median_ms, 3),
          });
        else r.reference = process.env.SDEBNN_REFERENCE_JSON ? 'no figure for this variant' : 'not run';
        print({ part: 'steps', float32: 'strict', ...r });
      } catch (e) {
        print({ part: 'steps', workload, variant, error: String(e && e.message ? e.message : e).slice(0, 400) });
      }
    }
    for (const variant of ['backprop', 'adjoint']) {
      try {
        print({ part: 'cuda graphs', float32: 'strict', ...(await graphGain(workload, config, variant, reference)) });
      } catch (e) {
        print({ part: 'cuda graphs', workload, variant, error: String(e && e.message ? e.message : e).slice(0, 400) });
      }
    }
    // The math modes against strict float32, backprop.
    let base;
    for (const [label, mode] of [
      ['float32', { tf32: false, autocast: 'off' }],
      ['tf32', { tf32: true, autocast: 'off' }],
      ['bf16 autocast', { tf32: false, autocast: 'bf16' }],
    ]) {
      try {
        const r = await lossesUnder(config, mode);
        base ??= r;
        const diff = r.losses.map((l, i) => Math.abs(l - base.losses[i]));
        print({
          part: 'math modes',
          workload,
          variant: 'backprop',
          mode: label,
          median_ms: round(r.ms),
          speedup_vs_float32: round(base.ms / r.ms, 3),
          losses: r.losses.map((l) => round(l, 6)),
          max_abs_loss_diff: round(Math.max(...diff), 3),
          max_rel_loss_diff: round(Math.max(...diff.map((d, i) => d / Math.abs(base.losses[i]))), 3),
        });
      } catch (e) {
        print({ part: 'math modes', workload, mode: label, error: String(e && e.message ? e.message : e).slice(0, 400) });
      }
    }
  }
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    print({ part: 'error', error: String(e && e.stack ? e.stack : e).slice(0, 800) });
    process.exitCode = 1;
  },
);
