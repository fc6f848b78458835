#!/usr/bin/env node
// Runs the benchmark workloads of docs/benchmarks.md: `npm run bench -- W1 W3` runs
// the named ones, no names runs every scripts/bench/W*.js. Each workload module exports an
// async function returning result objects; each is printed as one JSON line. Workloads load
// the built package (dist/), so run `npm run compile` first. The timing helpers below are
// shared with the workloads (require('../bench')).
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const dir = path.join(__dirname, 'bench');

/** Median of numbers. */
function median(values) {
  const v = [...values].sort((a, b) => a - b);
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

/**
 * Calls `fn` `warmup` times untimed, then `runs` times timed; returns per-run milliseconds
 * divided by `per` (e.g. the number of queries in a run) as {median_ms, min_ms, runs}.
 */
async function time(fn, { runs, warmup = 1, per = 1 }) {
  for (let i = 0; i < warmup; i++) await fn();
  const ms = [];
  for (let i = 0; i < runs; i++) {
    const start = process.hrtime.bigint();
    await fn();
    ms.push(Number(process.hrtime.bigint() - start) / 1e6 / per);
  }
  return { median_ms: median(ms), min_ms: Math.min(...ms), runs };
}

/**
 * Times `ours` and `baseline` alternately, run by run, after `warmup` untimed calls of each, so
 * that a change in machine load hits both alike; returns [ours, baseline] as {median_ms, min_ms, runs}.
 */
async function timeAlternating(ours, baseline, { runs, warmup = 1 }) {
  for (let i = 0; i < warmup; i++) {
    await ours();
    await baseline();
  }
  const ms = [[], []];
  for (let i = 0; i < runs; i++) {
    for (const [k, fn] of [ours, baseline].entries()) {
      const start = process.hrtime.bigint();
      await fn();
      ms[k].push(Number(process.hrtime.bigint() - start) / 1e6);
    }
  }
  return ms.map((v) => ({ median_ms: median(v), min_ms: Math.min(...v), runs }));
}

/** Rounds to `digits` significant digits for printing. */
function round(x, digits = 4) {
  return x === null || x === undefined || !Number.isFinite(x) ? x : Number(x.toPrecision(digits));
}

function available() {
  return fs
    .readdirSync(dir)
    .map((f) => /^(W\d+)\.js$/.exec(f))
    .filter(Boolean)
    .map((m) => m[1])
    .sort((a, b) => Number(a.slice(1)) - Number(b.slice(1)));
}

async function main(argv) {
  const all = available();
  const names = argv.length > 0 ? argv : all;
  const unknown = names.filter((n) => !all.includes(n));
  if (unknown.length > 0) {
    console.error(`bench: unknown workload(s) ${unknown.join(', ')}; available: ${all.join(', ') || 'none'}`);
    return 2;
  }
  if (!fs.existsSync(path.join(__dirname, '..', 'dist', 'index.js'))) {
    console.error('bench: dist/ is missing; run `npm run compile` (or `npm ci`) first');
    return 2;
  }
  for (const name of names) {
    const mod = require(path.join(dir, `${name}.js`));
    const run = typeof mod === 'function' ? mod : mod.run;
    if (typeof run !== 'function') {
      console.error(`bench: scripts/bench/${name}.js exports no function`);
      return 2;
    }
    for (const result of await run()) console.log(JSON.stringify(result));
  }
  return 0;
}

/**
 * Times `trainStep(x, y)` of a fresh SdeBnn per variant (W1, W2): median and min ms per step,
 * the peer figure and the speed-up, the evaluations per step and the last loss. median_ms is
 * timed as the peer's figure was, in an uninterrupted loop of training steps. With `baseline` (a
 * config transform, e.g. kernels: 'autograd'), the same model built that naive way is then timed
 * alternating with ours run by run, so that machine load hits both alike: baseline_ms,
 * interleaved_ms (ours in that phase: a step right after a baseline step finds its caches cold,
 * ~30% slower for W1) and ratio = baseline_ms / interleaved_ms.
 */
async function timeTrainSteps({ workload, variants, config, x, y, runs, warmup, peerMs, baseline }) {
  const sdebnn = require(path.join(__dirname, '..', 'dist', 'index.js'));
  const threads = sdebnn.backend().threads;
  const results = [];
  for (const variant of variants) {
    const model = new sdebnn.SdeBnn(config(variant));
    let last;
    const step = async () => {
      last = await model.trainStep(x, y);
    };
    const ours = await time(step, { runs, warmup });
    const result = {
      workload,
      variant,
      median_ms: round(ours.median_ms),
      min_ms: round(ours.min_ms),
      runs,
      threads,
      peer_ms: peerMs[variant],
      speedup_vs_peer: round(peerMs[variant] / ours.median_ms, 3),
      nfe: last.nfe + last.nfeBackward,
      loss: round(last.loss),
    };
    if (baseline) {
      const naive = new sdebnn.SdeBnn(baseline(config(variant)));
      const [interleaved, base] = await timeAlternating(step, () => naive.trainStep(x, y), { runs, warmup });
      naive.dispose();
      result.baseline_ms = round(base.median_ms);
      result.interleaved_ms = round(interleaved.median_ms);
      result.ratio = round(base.median_ms / interleaved.median_ms, 3);
    }
    model.dispose();
    results.push(result);
  }
  return results;
}

/** Deterministic pseudo-images in [0, 1], `batch` of `shape`, and labels cycling through 10 classes (the timings do not depend on them). */
function pseudoBatch(shape, batch) {
  const size = shape.reduce((a, b) => a * b, 1);
  const x = Float32Array.from({ length: batch * size }, (_, i) => 0.5 + 0.5 * Math.sin(i * 0.37));
  const y = Uint8Array.from({ length: batch }, (_, i) => i % 10);
  return { x, y };
}

module.exports = { median, time, timeAlternating, round, timeTrainSteps, pseudoBatch };

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (error) => {
      console.error(`bench: ${error && error.stack ? error.stack : error}`);
      process.exitCode = 1;
    },
  );
}
