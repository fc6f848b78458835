// The uncertainty evaluation: clean, deterministic view, corruptions (a fake suite with lib/shift's
// interface) and OOD sets, checked for internal consistency; its table; and `sdebnn eval` / `report`.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { fakeSuite, tinyTrainedModel, twoClassImages } from './evaluation-fixtures';
import { sdebnn } from './helpers';

describe('evaluateUncertainty', () => {
  it('runs clean, deterministic, every corruption and severity, and each OOD set, consistently', async () => {
    const model = await tinyTrainedModel();
    const test = twoClassImages(40, 2);
    const stages: string[] = [];
    const same = { name: 'same', images: test.inputs, shape: [40, 1, 12, 12] as [number, number, number, number], files: [] };
    const constant = sdebnn.loadOodImages('constant', { inputShape: [1, 12, 12], limit: 30 });
    const e = await sdebnn.evaluateUncertainty(model, test, {
      samples: 3,
      batchSize: 16,
      bins: 10,
      shift: fakeSuite(),
      ood: [same, constant],
      onProgress: (p) => {
        if (p.done === p.total) stages.push(p.stage);
      },
    });
    expect(stages).toEqual([
      'clean',
      'deterministic',
      'shift identity 1',
      'shift darken 1',
      'shift darken 2',
      'shift darken 3',
      'shift stripes 1',
      'shift stripes 2',
      'ood same',
      'ood constant',
    ]);
    expect([e.samples, e.bins, e.classes]).toEqual([3, 10, 2]);
    const m = e.clean.metrics;
    expect(m.count).toBe(40);
    expect(m.eceBins).toBe(10);
    expect(m.accuracy).toBeGreaterThan(0.9); // the task is easy
    // The identity corruption is the clean set again, predicted with the same streams: the same numbers.
    const identity = e.shift!.results[0]!;
    expect(identity).toMatchObject({
      corruption: 'identity',
      severity: 1,
      source: 'test fixture',
      count: 40,
      accuracy: m.accuracy,
      nll: m.nll,
      ece: m.ece,
      entropy: m.entropy,
    });
    expect(e.shift!.results.map((r) => `${r.corruption}${r.severity}`)).toEqual(['identity1', 'darken1', 'darken2', 'darken3', 'stripes1', 'stripes2']);
    // An OOD set identical to the test set cannot be told apart: AUROC exactly 1/2 for every score.
    for (const s of sdebnn.OOD_SCORES) expect(e.ood[0]!.scores[s].auroc).toBe(0.5);
    expect(e.ood[1]!.count).toBe(30);
    // Reliability counts, coverage and histograms account for every example.
    expect(e.clean.reliability.count.reduce((a, b) => a + b, 0)).toBe(40);
    expect(e.clean.selective.coverage[99]).toBe(1);
    expect(e.clean.selective.accuracy[99]).toBeCloseTo(m.accuracy, 12);
    expect(e.clean.histograms.entropy.counts.reduce((a, b) => a + b, 0)).toBe(40);
    expect(e.ood[1]!.histograms.mutualInformation.counts.reduce((a, b) => a + b, 0)).toBe(30);
    expect(e.ood[1]!.histograms.mutualInformation.edges).toEqual(e.clean.histograms.mutualInformation.edges); // shared edges
    expect(e.clean.histograms.entropy.edges.at(-1)).toBeCloseTo(Math.LN2, 12);
    expect(e.deterministic!.count).toBe(40);
    expect(JSON.parse(JSON.stringify(e))).toEqual(e); // plain JSON throughout

    const table = sdebnn.formatEvaluation(e);
    expect(table).toContain('Clean test set: 40 images, S = 3 weight paths, 10 calibration bins');
    expect(table).toMatch(/deterministic view/);
    expect(table).toMatch(/darken\s+3\s+/);
    expect(table).toContain('mean over fake-c');
    expect(table).toMatch(/same\s+40\s+0\.500 \//);

    const light = await sdebnn.evaluateUncertainty(model, test, { samples: 2, deterministic: false });
    expect(light.deterministic).toBeUndefined();
    expect(light.shift).toBeUndefined();
    expect(light.ood).toEqual([]);
    model.dispose();
  });

  it('rejects what it cannot evaluate', async () => {
    const model = await tinyTrainedModel();
    const test = twoClassImages(8, 2);
    const regressor = new sdebnn.SdeBnn({ kind: 'mlp' });
    await expect(sdebnn.evaluateUncertainty(regressor, test)).rejects.toThrow(
      "Expected a classifier (likelihood 'categorical') but the model's likelihood is 'gaussian'",
    );
    await expect(sdebnn.evaluateUncertainty(model, test, { shift: { name: 'x' } as never })).rejects.toThrow(
      /Expected \{name, corruptions\} for options\.shift/,
    );
    const wrong = sdebnn.loadOodImages('noise', { inputShape: [1, 28, 28], limit: 2 });
    await expect(sdebnn.evaluateUncertainty(model, test, { ood: [wrong] })).rejects.toThrow(
      "Expected OOD set 'noise' of shape [N, 1, 12, 12] but received [2, 1, 28, 28]",
    );
    await expect(sdebnn.evaluateUncertainty(model, test, { sample: 2 } as never)).rejects.toThrow(/Unknown option options\.sample/);
    regressor.dispose();
    model.dispose();
  });
});

describe('sdebnn eval and sdebnn report', () => {
  const cli = path.resolve(__dirname, '..', 'dist', 'cli.js');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sdebnn-eval-'));
  const run = (args: string[]) => execFileSync(process.execPath, [cli, ...args], { encoding: 'utf8', stdio: 'pipe' });

  it('evaluates a CLI-trained MNIST checkpoint, prints the table, writes JSON and the report; report RUN_DIR reuses the JSON', () => {
    const out = path.join(dir, 'mnist');
    run([
      'train',
      '--dataset',
      'mnist',
      '--train-limit',
      '256',
      '--test-limit',
      '100',
      '--epochs',
      '1',
      '--width',
      '8',
      '--stem',
      '4',
      '--steps',
      '4',
      '--out',
      out,
      '--quiet',
    ]);
    const json = path.join(out, 'evaluation.json');
    const printed = run([
      'eval',
      '--checkpoint',
      path.join(out, 'model.safetensors'),
      '--test-limit',
      '100',
      '--samples',
      '2',
      '--shift-limit',
      '20',
      '--ood',
      'noise,constant',
      '--json',
      json,
      '--report',
      path.join(out, 'eval.html'),
    ]);
    expect(printed).toMatch(/Clean test set: 100 images, S = 2 weight paths, 15 calibration bins/);
    expect(printed).toMatch(/OOD detection \(test set = positive\): AUROC \/ FPR at 95% TPR/);
    expect(printed).toMatch(/noise\s+100\s+/);
    // MNIST models get the generated MNIST-C shifts by default: 15 corruptions, one severity each.
    expect(printed).toMatch(/shot_noise\s+1\s+\d+\.\d\d%/);
    expect(printed).toContain('mean over mnist-c');
    const e = JSON.parse(fs.readFileSync(json, 'utf8'));
    expect(e.clean.metrics.count).toBe(100);
    expect(e.shift.suite).toBe('mnist-c');
    expect(e.shift.results).toHaveLength(15);
    expect(e.shift.results.every((r: { count: number }) => r.count === 20)).toBe(true);
    expect(e.ood.map((o: { name: string }) => o.name)).toEqual(['noise', 'constant']);
    expect(fs.readFileSync(path.join(out, 'eval.html'), 'utf8')).toContain('data-chart="reliability"');
    const reported = run(['report', out]);
    expect(reported).toContain(`report ${path.join(out, 'report.html')}`);
    const html = fs.readFileSync(path.join(out, 'report.html'), 'utf8');
    expect(html).toContain(`evaluation read from ${path.resolve(json)}`);
    expect(html).toContain('data-chart="training-loss"');
  });

  it('reports a 1D regression run with its predictive band and the data', () => {
    const out = path.join(dir, 'toy');
    run(['train', '--dataset', 'toy', '--epochs', '20', '--out', out, '--quiet']);
    expect(run(['report', out, '--samples', '4'])).toMatch(/"rmse":/);
    const html = fs.readFileSync(path.join(out, 'report.html'), 'utf8');
    expect(html).toMatch(/data-chart="regression-band" data-marks="42"/); // band, mean and the 40 points
  });

  it('refuses a shift suite that does not fit the model', () => {
    const checkpoint = path.join(dir, 'mnist', 'model.safetensors');
    expect(() => run(['eval', '--checkpoint', checkpoint, '--shift', 'cifar10-c', '--test-limit', '10'])).toThrow(
      /The cifar10-c corruptions take images \[3, 32, 32\] but the model takes \[1, 28, 28\]/,
    );
    expect(() => run(['eval', '--checkpoint', checkpoint, '--shift', 'imagenet-c', '--test-limit', '10'])).toThrow(
      /Expected 'mnist-c', 'cifar10-c', 'none' or 'auto' for --shift but received 'imagenet-c'/,
    );
  });

  it('explains its usage', () => {
    expect(run(['eval', '--help'])).toMatch(/^ {2}--shift SUITE +corruptions of the test set: mnist-c, cifar10-c or none \(default auto/m);
    expect(run(['report', '--help'])).toContain('Usage: sdebnn report RUN_DIR');
  });
});
