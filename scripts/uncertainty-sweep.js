#!/usr/bin/env node
// Does the Bayesian part earn its cost? (issue 16's sweep; README, "Baselines"). Trains MNIST
// models that differ in one setting each (sigma, beta, q(w_0), weight paths per training step)
// for the same number of steps, plus the ODE-net, then evaluates every model the same way in three
// views: S weight paths, one path, and the zero-noise (deterministic) view of the same weights:
// accuracy, NLL, ECE, OOD AUROC by predictive entropy and by mutual information (Fashion-MNIST),
// and mean accuracy and ECE over MNIST-C.
//   node scripts/uncertainty-sweep.js [--epochs 2] [--samples 16] [--test 2000] [--shift-limit 100]
//                                     [--out runs/sweep] [--only a,b]
// A finished point (OUT/NAME/sweep.json) is not run again. Prints one JSON line per point and view,
// and a Markdown table at the end.
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { parseArgs } = require('node:util');

const root = path.join(__dirname, '..');
const sdebnn = require(path.join(root, 'dist', 'index.js'));
const { evaluateUncertainty } = require(path.join(root, 'dist', 'evaluate.js'));
const { loadData } = require(path.join(root, 'dist', 'commands', 'data.js'));
const { resolveShift } = require(path.join(root, 'dist', 'commands', 'evaluate.js'));
const { loadOodImages } = require(path.join(root, 'dist', 'data', 'ood.js'));

const { values: o } = parseArgs({
  options: {
    epochs: { type: 'string', default: '2' },
    samples: { type: 'string', default: '16' },
    test: { type: 'string', default: '2000' },
    'shift-limit': { type: 'string', default: '100' },
    out: { type: 'string', default: 'runs/sweep' },
    only: { type: 'string' },
  },
});

// Each point: the train flags beside the mnist preset's (sigma 0.05, beta 1e-3, point q(w_0), one path per step).
const POINTS = [
  ['default', []],
  ['sigma 0.2', ['--sigma', '0.2']],
  ['sigma 0.5', ['--sigma', '0.5']],
  ['beta 1 (untempered)', ['--beta', '1']],
  ['sigma 0.2, beta 1', ['--sigma', '0.2', '--beta', '1']],
  ['gaussian q(w_0)', ['--w0-posterior', 'gaussian']],
  ['2 paths per step', ['--nproc', '2', '--threads', '1']], // each process its own path over half the batch
  ['odenet', ['--model', 'odenet']],
];

const slug = (name) => name.replace(/[^a-z0-9]+/gi, '-').replace(/-$/, '');
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;

function summarise(e) {
  const fashion = e.ood.find((d) => d.name === 'fashion-mnist');
  return {
    accuracy: e.clean.metrics.accuracy,
    nll: e.clean.metrics.nll,
    ece: e.clean.metrics.ece,
    mi: e.clean.means.mutualInformation,
    aurocEntropy: fashion.scores.entropy.auroc,
    aurocMi: fashion.scores.mutualInformation.auroc,
    miOod: fashion.means.mutualInformation,
    shiftAccuracy: mean(e.shift.results.map((r) => r.accuracy)),
    shiftEce: mean(e.shift.results.map((r) => r.ece)),
  };
}

async function main() {
  const only = o.only ? o.only.split(',') : null;
  const n = Number(o.test);
  const { test } = loadData('mnist', { seed: 0, testLimit: n });
  const rows = [];
  for (const [name, flags] of POINTS) {
    if (only && !only.includes(slug(name))) continue;
    const dir = path.join(o.out, slug(name));
    const done = path.join(dir, 'sweep.json');
    if (!fs.existsSync(done)) {
      const start = Date.now();
      execFileSync(
        process.execPath,
        [path.join(root, 'dist', 'cli.js'), 'train', '--dataset', 'mnist', '--epochs', o.epochs, '--quiet', '--out', dir, ...flags],
        {
          stdio: ['ignore', 'ignore', 'inherit'],
        },
      );
      const trainSeconds = (Date.now() - start) / 1000;
      const model = sdebnn.loadModel(path.join(dir, 'model.safetensors'));
      const ood = [loadOodImages('fashion-mnist', { inputShape: [1, 28, 28], limit: n })];
      const shift = resolveShift(model, 'mnist-c');
      const common = { seed: 0, deterministic: false, shift, shiftLimit: Number(o['shift-limit']), ood };
      const stochastic = model.config.model === 'sdebnn';
      const views = {};
      for (const [view, samples] of stochastic
        ? [
            ['paths', Number(o.samples)],
            ['one path', 1],
          ]
        : [['paths', 1]]) {
        views[view] = summarise(await evaluateUncertainty(model, test, { ...common, samples }));
      }
      if (stochastic) {
        const zeroNoise = { config: model.config, predict: (x, p) => model.predict(x, { ...p, samples: 1, deterministic: true }) };
        views['zero noise'] = summarise(await evaluateUncertainty(zeroNoise, test, { ...common, samples: 1 }));
      }
      model.dispose();
      const steps = JSON.parse(fs.readFileSync(path.join(dir, 'summary.json'), 'utf8')).steps;
      fs.writeFileSync(done, `${JSON.stringify({ name, flags, steps, trainSeconds, views })}\n`);
    }
    const r = JSON.parse(fs.readFileSync(done, 'utf8'));
    for (const [view, m] of Object.entries(r.views)) console.log(JSON.stringify({ point: r.name, view, steps: r.steps, ...m }));
    rows.push(r);
  }
  const f = (x, d = 4) => x.toFixed(d);
  console.log(`\n| point | view | accuracy | NLL | ECE | AUROC entropy | AUROC MI | MI test / OOD | MNIST-C acc | MNIST-C ECE |`);
  console.log('|---|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    for (const [view, m] of Object.entries(r.views)) {
      console.log(
        `| ${r.name} | ${view} | ${f(100 * m.accuracy, 2)}% | ${f(m.nll)} | ${f(100 * m.ece, 2)}% | ${f(m.aurocEntropy, 3)} | ${f(m.aurocMi, 3)} | ` +
          `${f(m.mi)} / ${f(m.miOod)} | ${f(100 * m.shiftAccuracy, 2)}% | ${f(100 * m.shiftEce, 2)}% |`,
      );
    }
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
