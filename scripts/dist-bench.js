#!/usr/bin/env node
// The device half of the distributed benchmarks (scripts/dist-bench.sh): one JSON line each for
//   - CPU scaling: the main model's training steps (global batch 128) with 1, 2, 4 and 8 Gloo
//     processes sharing the machine's cores (cores / P threads each), steps/s and the speed-up;
//   - CUDA: NCCL at world size 1 against one process without a group (the cost of the group);
//   - CUDA: Gloo with 2 ranks on one GPU (needs gloo's headers at build time; pip wheels have none).
// Steps/s come from the median step after two warm-up steps; compare within one run.
'use strict';
const os = require('node:os');
const path = require('node:path');
const sdebnn = require(path.join(__dirname, '..', 'dist', 'index.js'));
const { runDistWorkers } = require('./bench/W6.js');
const { round } = require('./bench.js');

const print = (o) => console.log(JSON.stringify({ bench: 'dist', ...o }));

async function main() {
  const cores = os.availableParallelism();
  const available = sdebnn.distributedAvailability();
  const info = sdebnn.backend();
  print({ torch: info.torchVersion, cuda: info.cudaAvailable, cores, gloo: available.gloo, nccl: available.nccl, missing: available.missing });
  const steps = Number(process.env.SDEBNN_DIST_BENCH_STEPS ?? 16);
  if (available.gloo) {
    let one;
    for (const nproc of [1, 2, 4, 8].filter((p) => p <= cores)) {
      const threads = Math.max(1, Math.floor(cores / nproc));
      const r = await runDistWorkers(nproc, { steps, threads, backend: 'gloo', device: 'cpu' });
      one ??= r.step.steps_per_s;
      print({ variant: 'cpu scaling', backend: 'gloo', nproc, threads, ...r.step, speedup: round(r.step.steps_per_s / one, 3) });
    }
  } else {
    print({ variant: 'cpu scaling', skipped: `no Gloo: ${available.missing.gloo}` });
  }
  if (!info.cudaAvailable) {
    print({ variant: 'cuda', skipped: 'no CUDA device' });
    return;
  }
  const alone = await runDistWorkers(1, { steps: 2 * steps, threads: cores, backend: 'none', device: 'cuda' });
  print({ variant: 'cuda without a group', ...alone.step });
  if (available.nccl) {
    const r = await runDistWorkers(1, { steps: 2 * steps, threads: cores, backend: 'nccl', device: 'cuda', sizes: [alone.step.floats, 1e6, 1e7] });
    print({ variant: 'cuda nccl world size 1', ...r.step, allreduce: r.allreduce, ratio_to_no_group: round(r.step.steps_per_s / alone.step.steps_per_s, 3) });
  } else {
    print({ variant: 'cuda nccl world size 1', skipped: `no NCCL: ${available.missing.nccl}` });
  }
  if (available.gloo) {
    const threads = Math.max(1, Math.floor(cores / 2));
    const r = await runDistWorkers(2, { steps: 2 * steps, threads, backend: 'gloo', device: 'cuda:0', sizes: [alone.step.floats] });
    print({
      variant: 'cuda gloo 2 ranks on one gpu',
      ...r.step,
      allreduce: r.allreduce,
      ratio_to_one_process: round(r.step.steps_per_s / alone.step.steps_per_s, 3),
    });
  } else {
    print({ variant: 'cuda gloo 2 ranks on one gpu', skipped: `no Gloo: ${available.missing.gloo}` });
  }
}

main().catch((error) => {
  console.error(`dist-bench: ${error.stack}`);
  process.exitCode = 1;
});
