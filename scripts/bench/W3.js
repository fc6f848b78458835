// W3 Brownian queries (docs/benchmarks.md): a Brownian interval on [0, 1], shapes
// (128, 5) and (512, 256); 1000 sequential increments W(t_k, t_k+1) forward, then the same
// 1000 in reverse (the adjoint's pattern), with and without the step-size hint. A run is one
// fresh instance (construction included) answering the 2000 queries; figures are ms per query.
// The naive baseline is the same queries without the hint (torchsde's adaptive tree).
'use strict';
const { BrownianInterval, backend } = require('../../dist');
const { time, round } = require('../bench');

const STEPS = 1000;
const DT = 1 / STEPS;

// torchsde 0.2.6 on PyTorch 1.13.1, same machine kind, 2 threads (ms per query; docs/benchmarks.md).
const PEER = {
  '128x5': { hint: 0.054, 'no hint': 0.28 },
  '512x256': { hint: 1.65, 'no hint': 7.3 },
};

const CASES = [
  { shape: [128, 5], runs: 30, warmup: 3 },
  { shape: [512, 256], runs: 5, warmup: 1, baselineRuns: 3 },
];

function walk(shape, dtHint, seed) {
  const bm = new BrownianInterval({ t0: 0, t1: 1, shape, seed, dtHint });
  for (let k = 0; k < STEPS; k++) bm.increment(k * DT, (k + 1) * DT);
  for (let k = STEPS - 1; k >= 0; k--) bm.increment(k * DT, (k + 1) * DT);
  bm.dispose();
}

module.exports = async function W3() {
  const threads = backend().threads;
  const results = [];
  for (const { shape, runs, warmup, baselineRuns = runs } of CASES) {
    const key = shape.join('x');
    let seed = 0;
    const hinted = await time(() => walk(shape, DT, seed++), { runs, warmup, per: 2 * STEPS });
    const plain = await time(() => walk(shape, undefined, seed++), { runs: baselineRuns, warmup, per: 2 * STEPS });
    for (const [variant, t, baseline] of [
      ['hint', hinted, plain],
      ['no hint', plain, undefined],
    ]) {
      const peer = PEER[key][variant] ?? null;
      results.push({
        workload: 'W3',
        variant: `${key} fwd+reverse, ${variant}`,
        median_ms: round(t.median_ms),
        min_ms: round(t.min_ms),
        runs: t.runs,
        threads,
        peer_ms: peer,
        speedup_vs_peer: peer === null ? null : round(peer / t.median_ms, 3),
        ...(baseline
          ? { baseline: 'same queries without the hint', baseline_ms: round(baseline.median_ms), ratio: round(baseline.median_ms / t.median_ms, 3) }
          : {}),
      });
    }
  }
  return results;
};
