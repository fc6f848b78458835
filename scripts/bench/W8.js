// W8: evaluation throughput (see ../shared/bench-workloads.md): generating the corruption suites,
// and the main model's prediction with 16 weight paths on the 10,000 MNIST test images.
'use strict';
const sdebnn = require('../../dist/index.js');
const { round } = require('../bench.js');

/** Wall and process CPU seconds of fn (CPU time is less disturbed by other work on a shared machine). */
async function timed(fn) {
  const cpu = process.cpuUsage();
  const start = process.hrtime.bigint();
  const result = await fn();
  const wall = Number(process.hrtime.bigint() - start) / 1e9;
  const used = process.cpuUsage(cpu);
  return { wall, cpu: (used.user + used.system) / 1e6, result };
}

/** Every corruption of a suite at every severity on the images; seconds per corruption. */
async function generate(suite, images, shape) {
  const per = {};
  let wall = 0;
  let cpu = 0;
  for (const c of sdebnn.corruptions(suite)) {
    const t = await timed(() => {
      for (let severity = 1; severity <= c.severities; severity++) c.apply(images, shape, severity, 0);
    });
    per[c.name] = round(t.wall, 3);
    wall += t.wall;
    cpu += t.cpu;
  }
  return { wall, cpu, per };
}

/** n synthetic colour images 3 x 32 x 32: smooth colour fields, a disc and texture, different per image. */
function syntheticCifar(n) {
  const rng = new sdebnn.Random(8);
  const images = new Float32Array(n * 3072);
  for (let k = 0; k < n; k++) {
    const [fx, fy, phase] = [0.1 + 0.3 * rng.uniform(), 0.1 + 0.3 * rng.uniform(), 6 * rng.uniform()];
    const [cx, cy, r] = [8 + 16 * rng.uniform(), 8 + 16 * rng.uniform(), 3 + 6 * rng.uniform()];
    for (let ch = 0; ch < 3; ch++) {
      const tint = rng.uniform();
      for (let y = 0; y < 32; y++) {
        for (let x = 0; x < 32; x++) {
          const inDisc = (x - cx) ** 2 + (y - cy) ** 2 < r * r;
          const v = inDisc ? tint : 0.5 + 0.35 * Math.sin(fx * x + fy * y + phase + ch) + 0.05 * rng.normal();
          images[k * 3072 + ch * 1024 + y * 32 + x] = Math.min(1, Math.max(0, v));
        }
      }
    }
  }
  return images;
}

module.exports = async function W8() {
  const threads = sdebnn.backend().threads;
  const results = [];

  const mnist = sdebnn.loadMnist({ split: 'test', normalize: false });
  await generate('mnist-c', mnist.images.subarray(0, 200 * 784), [200, 1, 28, 28]); // warm-up
  const m = await generate('mnist-c', mnist.images, mnist.shape);
  results.push({
    workload: 'W8',
    variant: 'mnist-c generation',
    seconds: round(m.wall, 3),
    cpu_seconds: round(m.cpu, 3),
    images: 10000,
    corruptions: sdebnn.corruptions('mnist-c').length,
    per_corruption_s: m.per,
  });

  const n = 10000;
  const cifar = syntheticCifar(n);
  await generate('cifar10-c', cifar.subarray(0, 100 * 3072), [100, 3, 32, 32]); // warm-up
  const c = await generate('cifar10-c', cifar, [n, 3, 32, 32]);
  results.push({
    workload: 'W8',
    variant: 'cifar10-c generation (synthetic 3x32x32)',
    seconds: round(c.wall, 3),
    cpu_seconds: round(c.cpu, 3),
    images: n,
    corruptions: sdebnn.corruptions('cifar10-c').length,
    severities: 5,
    per_corruption_s: c.per,
  });

  // The main job's model (the CLI's `train --dataset mnist` defaults), freshly initialised: its
  // prediction costs what the trained one's does. evaluate() predicts in batches of 500.
  const test = sdebnn.imageDataset(sdebnn.loadMnist({ split: 'test' }));
  const model = new sdebnn.SdeBnn({ kind: 'conv', inputShape: [1, 28, 28], classes: 10, nTrain: 60000, seed: 0 });
  await model.predict(test.inputs.subarray(0, 100 * 784), { samples: 2, seed: 0 }); // warm-up
  const p = await timed(() => sdebnn.evaluate(model, test, { samples: 16 }));
  model.dispose();
  results.push({
    workload: 'W8',
    variant: 'predict 10,000 MNIST test images, 16 weight paths',
    images_per_s: round(10000 / p.wall),
    seconds: round(p.wall, 3),
    cpu_seconds: round(p.cpu, 3),
    samples: 16,
    threads,
    model: "default conv SdeBnn, freshly initialised (the main job's architecture and solver)",
    accuracy_untrained: round(p.result.accuracy),
  });
  return results;
};
