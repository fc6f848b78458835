// W6 all-reduce (shared/bench-workloads.md): between 2 local processes on c10d Gloo, the
// all-reduce of the main MNIST model's gradients (one flat buffer of all its parameters), of 1M
// and of 10M floats; the gradient all-reduce inside the main model's training steps and its share
// of the step (median_ms: the communication, the least over the ranks; with_wait_median_ms: the
// most, which adds the wait for the slower rank); and the main job's steps/s with `--nproc 2
// --threads 1` against one process with 2 threads, alternated run by run (the machine is shared:
// compare the ratio, not the figures).
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { median, round } = require('../bench.js');
const { mainModelConfig } = require('./dist-worker.js');

const root = path.join(__dirname, '..', '..');

/**
 * Runs scripts/bench/dist-worker.js as `nproc` ranks with `job` (see there) and returns rank 0's
 * figures; scripts/dist-bench.js uses it on a device machine too.
 */
async function runDistWorkers(nproc, job) {
  const sdebnn = require(path.join(root, 'dist', 'index.js'));
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'sdebnn-dist-bench-')), 'rank0.json');
  const launched = await sdebnn.launch({
    command: [process.execPath, path.join(__dirname, 'dist-worker.js'), JSON.stringify({ ...job, out })],
    nproc,
    env: { OMP_NUM_THREADS: String(job.threads) },
    report: () => {},
  });
  if (launched.exitCode !== 0) throw new Error(`dist-worker failed: ${JSON.stringify(launched.failure)}`);
  return JSON.parse(fs.readFileSync(out, 'utf8'));
}

/** Steps per second of one CLI training run on MNIST, from its log (step 10 to the last logged one). */
function cliStepsPerSecond(extra, steps) {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'sdebnn-w6-'));
  execFileSync(
    process.execPath,
    [
      path.join(root, 'dist', 'cli.js'),
      'train',
      '--dataset',
      'mnist',
      '--train-limit',
      String(128 * steps),
      '--test-limit',
      '10',
      '--epochs',
      '1',
      '--quiet',
      '--out',
      out,
      ...extra,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const log = fs
    .readFileSync(path.join(out, 'log.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
    .filter((e) => e.type === 'step');
  fs.rmSync(out, { recursive: true, force: true });
  const [first, last] = [log[0], log.at(-1)];
  return (last.step - first.step) / (last.seconds - first.seconds);
}

async function W6(options = {}) {
  const sdebnn = require(path.join(root, 'dist', 'index.js'));
  const available = sdebnn.distributedAvailability();
  if (!available.gloo) return [{ workload: 'W6', skipped: `no Gloo in this build: ${available.missing.gloo}` }];
  const model = new sdebnn.SdeBnn(mainModelConfig());
  const gradientFloats = model.numParameters;
  model.dispose();
  const measured = await runDistWorkers(2, {
    sizes: [gradientFloats, 1e6, 1e7],
    runs: options.runs ?? 20,
    steps: options.steps ?? 12,
    threads: 1,
    backend: 'gloo',
    device: 'cpu',
  });
  const results = measured.allreduce.map((a) => ({
    workload: 'W6',
    variant: 'allreduce',
    backend: 'gloo',
    ranks: 2,
    ...a,
    ...(a.floats === gradientFloats ? { buffer: 'main model gradients' } : {}),
  }));
  const s = measured.step;
  results.push({
    workload: 'W6',
    variant: 'gradients in training steps',
    backend: 'gloo',
    ranks: 2,
    threads: 1,
    floats: s.floats,
    median_ms: s.allreduce_median_ms,
    with_wait_median_ms: s.with_wait_median_ms,
    step_median_ms: s.step_median_ms,
    fraction_of_step: round(s.allreduce_median_ms / s.step_median_ms, 3),
    fraction_with_wait: round(s.with_wait_median_ms / s.step_median_ms, 3),
    steps: s.steps,
  });
  // The main job: 2 processes x 1 thread against 1 process x 2 threads, alternated.
  const repeats = options.repeats ?? 3;
  const steps = options.mainSteps ?? 30;
  const rates = { parallel: [], single: [] };
  for (let i = 0; i < repeats; i++) {
    rates.parallel.push(cliStepsPerSecond(['--nproc', '2', '--threads', '1'], steps));
    rates.single.push(cliStepsPerSecond(['--threads', '2'], steps));
  }
  results.push({
    workload: 'W6',
    variant: 'main job steps/s',
    nproc2_threads1: round(median(rates.parallel)),
    nproc1_threads2: round(median(rates.single)),
    ratio: round(median(rates.parallel) / median(rates.single), 3),
    ratios: rates.parallel.map((p, i) => round(p / rates.single[i], 3)),
    repeats,
    steps,
  });
  return results;
}

module.exports = W6;
module.exports.runDistWorkers = runDistWorkers;
