// One rank of the distributed benchmarks (W6, scripts/dist-bench.js), started by launch():
// all-reduce times of flat float32 buffers, then training steps of the main MNIST model (global
// batch 128 of synthetic images: the timing does not depend on the pixels) with their gradient
// all-reduce. Rank 0 writes the figures as JSON to `out`.
// argv[2]: {out, sizes: number[], runs, steps, threads, backend: 'gloo' | 'nccl' | 'none', device}
// ('none': one process without a group, the baseline).
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const sdebnn = require(path.join(__dirname, '..', '..', 'dist', 'index.js'));
const { median, round } = require('../bench.js');

/** The model `npm run main` trains (sdebnn train --dataset mnist with the CLI's defaults). */
function mainModelConfig() {
  return { kind: 'conv', inputShape: [1, 28, 28], classes: 10, beta: 1e-3, nTrain: 60000, optimizer: { lr: 1e-3 }, seed: 0 };
}

async function allReduceTimes(group, sizes, runs) {
  const out = [];
  for (const floats of sizes) {
    const t = { data: new Float32Array(floats).fill(group.rank + 1), shape: [floats] };
    const n = floats >= 5e6 ? Math.max(3, runs >> 2) : runs;
    for (let i = 0; i < 3; i++) await group.allReduce(t); // warm-up: connections and buffers
    const ms = [];
    for (let i = 0; i < n; i++) {
      await group.barrier(); // start together, so the time is the collective's, not a peer's lag
      const start = process.hrtime.bigint();
      await group.allReduce(t);
      ms.push(Number(process.hrtime.bigint() - start) / 1e6);
    }
    out.push({ floats, median_ms: round(median(ms)), min_ms: round(Math.min(...ms)), runs: n });
  }
  return out;
}

async function trainingSteps(group, o) {
  const model = new sdebnn.SdeBnn({ ...mainModelConfig(), device: sdebnn.deviceForRank(o.device, group) });
  const n = 128 * o.steps;
  const inputs = Float32Array.from({ length: n * 784 }, (_, i) => Math.sin(i * 0.37));
  const targets = Uint8Array.from({ length: n }, (_, i) => i % 10);
  const data = { train: sdebnn.createDataset({ inputs, inputShape: [1, 28, 28], targets, classes: 10 }) };
  const marks = [];
  await sdebnn.train(model, data, {
    epochs: 1,
    batchSize: 128,
    evalEachEpoch: false,
    ...(group ? { distributed: { group } } : {}),
    onStep: (s) => marks.push({ seconds: s.seconds, comm: group ? group.stats().seconds : 0 }),
  });
  const later = marks.slice(2); // the first steps warm the caches
  const step = later.slice(1).map((m, i) => 1000 * (m.seconds - later[i].seconds));
  const result = { floats: model.numParameters, step_median_ms: round(median(step)), steps_per_s: round(1000 / median(step)), steps: step.length };
  model.dispose();
  if (!group) return result;
  // A rank's time in the average includes waiting for the slower rank to arrive; the last to
  // arrive waits least, so the minimum over the ranks is the communication itself.
  const comm = later.slice(1).map((m, i) => 1000 * (m.comm - later[i].comm));
  const least = await group.allReduce({ data: Float64Array.from(comm), shape: [comm.length] }, { op: 'min' });
  const most = await group.allReduce({ data: Float64Array.from(comm), shape: [comm.length] }, { op: 'max' });
  return { ...result, allreduce_median_ms: round(median(least.data)), with_wait_median_ms: round(median(most.data)) };
}

async function main() {
  const o = JSON.parse(process.argv[2]);
  sdebnn.setNumThreads(o.threads);
  const group = o.backend === 'none' ? undefined : await sdebnn.initDistributed({ backend: o.backend, timeoutMs: 120000 });
  const out = { allreduce: group ? await allReduceTimes(group, o.sizes ?? [], o.runs ?? 20) : [], step: await trainingSteps(group, o) };
  if (!group || group.rank === 0) fs.writeFileSync(o.out, JSON.stringify(out));
  group?.destroy();
}

module.exports = { mainModelConfig };

if (require.main === module) {
  main().catch((error) => {
    console.error(`dist-worker: ${error.stack}`);
    process.exitCode = 1;
  });
}
