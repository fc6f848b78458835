// W5: neural SDE solve with gradients, 500 steps (docs/benchmarks.md).
'use strict';
const sdebnn = require('../../dist/index.js');
const { timeAlternating, round } = require('../bench.js');
const { runVariant, VARIANTS } = require('./w5-problem.js');

// Peer: PyTorch 1.13.1 + torchsde 0.2.6 on the same machine kind, at its best thread count (1),
// re-measured 2026-12-03 (docs/benchmarks.md). The peer's "euler adjoint" runs torchsde's Ito
// adjoint with euler; this engine adjoins an Ito solve on its Stratonovich conversion, here with
// euler_heun, the Stratonovich counterpart of Euler (one drift evaluation per step, the noise term
// evaluated twice; without the drift's matrix products, noise is cheap).
const PEER_MS = { 'euler backprop': 616, 'euler adjoint': 1527, 'midpoint adjoint': 2135, 'reversible_heun adjoint': 1610 };

// One thread, as the peer's best. On a quiet machine of this kind (2026-12-04) every variant
// is at least 2x the peer on 1 thread; on 2 threads euler backprop is ~10% faster, but the
// reversible Heun adjoint's runs vary by half (page faults of its second thread's regions).
const THREADS = 1;

// Each variant also times the naive baseline in the same run: the same SDE with kernels
// 'autograd' (LibTorch autograd through every operation).
module.exports = async function W5() {
  const previous = sdebnn.backend().threads;
  sdebnn.setNumThreads(THREADS);
  try {
    return await variants();
  } finally {
    sdebnn.setNumThreads(previous);
  }
};

async function variants() {
  const results = [];
  for (const variant of Object.keys(VARIANTS)) {
    // Alternating run by run: this machine kind's speed drifts by tens of percent within a minute.
    const [t, baseline] = await timeAlternating(
      () => runVariant(variant, 500),
      () => runVariant(variant, 500, 'autograd'),
      { runs: 5 },
    );
    const peer = PEER_MS[variant];
    results.push({
      workload: 'W5',
      variant,
      median_ms: round(t.median_ms),
      min_ms: round(t.min_ms),
      runs: t.runs,
      threads: sdebnn.backend().threads,
      baseline_ms: round(baseline.median_ms),
      ratio: round(baseline.median_ms / t.median_ms, 3),
      ...(peer ? { peer_ms: peer, speedup_vs_peer: round(peer / t.median_ms, 3) } : {}),
    });
  }
  return results;
}
