// W4: peak resident memory above the process's baseline for the W5 SDE at 10, 100 and 1000 steps,
// backprop against the adjoint. Each measurement runs in a fresh process, so peaks do not mix.
'use strict';
const { execFileSync } = require('node:child_process');
const path = require('node:path');

const CHILD = `
const { runVariant } = require(${JSON.stringify(path.join(__dirname, 'w5-problem.js'))});
const [variant, steps] = process.argv.slice(1);
(async () => {
  // Warm the allocator and the addon with a 1-step solve, then take the baseline.
  await runVariant(variant, 1);
  const baseline = process.resourceUsage().maxRSS;
  await runVariant(variant, Number(steps));
  console.log(JSON.stringify({ peakAboveBaselineKiB: process.resourceUsage().maxRSS - baseline }));
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
