// W4: peak resident memory above the process's baseline for the W5 SDE at 10, 100 and 1000 steps,
// backprop against the adjoint. Each measurement runs in a fresh process, so peaks do not mix.
'use strict';
const { execFileSync } = require('node:child_process');
const path = require('node:path');

// The peak is Linux's VmHWM, reset after the warm-up (clear_refs 5). getrusage's maxRSS cannot be
// reset, and a child's starts at its parent's RSS at the fork: after the other workloads that
// hid every peak below the bench process's own size.
const CHILD = `
const fs = require('node:fs');
const { runVariant } = require(${JSON.stringify(path.join(__dirname, 'w5-problem.js'))});
const [variant, steps] = process.argv.slice(1);
const statusKiB = (field) => Number(new RegExp(field + ':[ \t]+([0-9]+)').exec(fs.readFileSync('/proc/self/status', 'utf8'))[1]);
(async () => {
  // Warm the allocator and the addon with a 1-step solve, then take the baseline.
  await runVariant(variant, 1);
  fs.writeFileSync('/proc/self/clear_refs', '5');
  const baseline = statusKiB('VmRSS');
  await runVariant(variant, Number(steps));
  console.log(JSON.stringify({ peakAboveBaselineKiB: statusKiB('VmHWM') - baseline }));
})();
`;

module.exports = async function W4() {
  const results = [];
  for (const variant of ['euler backprop', 'euler adjoint', 'reversible_heun adjoint']) {
    const row = { workload: 'W4', variant };
    // 10000 steps for the adjoints only (backprop would need ~14 GiB).
    for (const steps of variant.includes('adjoint') ? [10, 100, 1000, 10000] : [10, 100, 1000]) {
      const out = execFileSync(process.execPath, ['-e', CHILD, variant, String(steps)], { encoding: 'utf8' });
      row[`peak_rss_mib_${steps}`] = +(JSON.parse(out.trim().split('\n').pop()).peakAboveBaselineKiB / 1024).toFixed(1);
    }
    const growth = (from, to) => +((row[`peak_rss_mib_${to}`] - row[`peak_rss_mib_${from}`]) / Math.max(row[`peak_rss_mib_${from}`], 1e-9)).toFixed(3);
    // The Brownian interval's LRU cache (45 entries, bounded) fills during the first ~45 steps, so
    // 100 -> 1000 (and -> 10000) shows what grows with the steps alone.
    row.growth_10_to_1000 = growth(10, 1000);
    row.growth_100_to_1000 = growth(100, 1000);
    if (row.peak_rss_mib_10000 !== undefined) row.growth_100_to_10000 = growth(100, 10000);
    results.push(row);
  }
  return results;
};
