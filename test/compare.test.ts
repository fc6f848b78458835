// One CLI for every model and `sdebnn compare`, end to end on a few hundred MNIST images and
// budgets of seconds: train --model for each kind, then eval and predict from its checkpoint;
// compare training and evaluating every model, a second run training and evaluating nothing, a
// run after an interruption redoing only what was lost; the sizing by parameters; bad command
// lines as usage errors. Every number printed is checked against the files and the library.
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { sdebnn } from './helpers';

const cli = path.resolve(__dirname, '..', 'dist', 'cli.js');
const exec = promisify(execFile);
const { PRESETS } = require('../dist/presets.js') as typeof import('../dist/presets');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sdebnn-compare-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  try {
    const { stdout, stderr } = await exec(process.execPath, [cli, ...args], { encoding: 'utf8' });
    return { code: 0, out: stdout, err: stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, out: err.stdout, err: err.stderr };
  }
}

const readJson = (file: string) => JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown> & { [k: string]: any }; // eslint-disable-line @typescript-eslint/no-explicit-any
const MODELS = ['sdebnn', 'odenet', 'resnet', 'mfvi-resnet', 'mfvi-odenet', 'ensemble'] as const;
const tiny = ['--train-limit', '64', '--test-limit', '32', '--batch-size', '32', '--stem', '4', '--width', '4', '--steps', '2', '--quiet'];

describe('train --model, eval and predict', () => {
  it.each(MODELS)('trains --model %s, writes its checkpoint, and eval and predict load it', async (model) => {
    const out = path.join(dir, `train-${model}`);
    const extra = model === 'ensemble' ? ['--members', '2'] : [];
    const trained = await run(['train', '--model', model, ...extra, ...tiny, '--epochs', '2', '--samples', '2', '--out', out]);
    expect(trained.code, trained.err).toBe(0);
    const summary = readJson(path.join(out, 'summary.json'));
    expect(summary.model).toBe(model);
    expect(summary.config.model).toBe(model === 'ensemble' ? 'resnet' : model);
    expect(summary.config.sigma === null).toBe(model !== 'sdebnn'); // the weight SDE's settings only where there is one
    expect(summary.steps).toBe(model === 'ensemble' ? 8 : 4); // 2 epochs of 2 batches (each member)
    const checkpoint = path.join(out, 'model.safetensors');
    const loaded = sdebnn.loadModel(checkpoint);
    expect(loaded).toBeInstanceOf(model === 'ensemble' ? sdebnn.DeepEnsemble : sdebnn.SdeBnn);
    expect(loaded.config.model).toBe(summary.config.model);
    if (loaded instanceof sdebnn.DeepEnsemble) {
      expect(loaded.size).toBe(2);
      expect(summary.members).toBe(2);
      expect(fs.readdirSync(out).sort()).toEqual(['log-0.jsonl', 'log-1.jsonl', 'model.safetensors', 'summary.json']);
    }
    // eval: the same test metrics as training's final evaluation (the same paths and streams)
    const json = path.join(out, 'evaluation.json');
    const samples = model === 'ensemble' ? [] : ['--samples', '2'];
    const evaluated = await run(['eval', '--checkpoint', checkpoint, '--test-limit', '32', ...samples, '--shift', 'none', '--ood', 'none', '--json', json]);
    expect(evaluated.code, evaluated.err).toBe(0);
    const evaluation = readJson(json);
    expect(evaluation.clean.metrics).toEqual(summary.test);
    expect(evaluation.samples).toBe(2); // an ensemble's default: one path per member
    // predict: the library's prediction of the same images
    const images = path.join(sdebnn.defaultMnistDir(), 't10k-images-idx3-ubyte');
    const predicted = await run(['predict', '--checkpoint', checkpoint, '--images', images, '--limit', '2', ...samples]);
    expect(predicted.code, predicted.err).toBe(0);
    const x = sdebnn.imageDataset(sdebnn.loadMnist({ split: 'test', limit: 2 })).inputs;
    const p = await loaded.predict(x, { samples: 2, seed: 0 });
    if (p.kind !== 'categorical') throw new Error('expected a classifier');
    const rows = predicted.out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { class: number; probability: number });
    rows.forEach((row, i) => {
      const probs = Array.from(p.probs.subarray(10 * i, 10 * i + 10));
      expect(row.class).toBe(probs.indexOf(Math.max(...probs)));
      expect(row.probability).toBe(+Math.max(...probs).toFixed(6));
    });
    loaded.dispose();
  });

  it('refuses options that do not apply to the model, before any work', async () => {
    const out = path.join(dir, 'refused');
    const cases: [string[], string][] = [
      [
        ['train', '--model', 'transformer'],
        "Expected 'sdebnn', 'odenet', 'resnet', 'mfvi-resnet', 'mfvi-odenet' or 'ensemble' for --model but received 'transformer'",
      ],
      [
        ['train', '--model', 'resnet', '--sigma', '0.1'],
        'Expected --sigma only with --model sdebnn (the others have no weight SDE) but received it with --model resnet',
      ],
      [
        ['train', '--model', 'odenet', '--estimator', 'stl'],
        'Expected --estimator only with --model sdebnn (the others have no weight SDE) but received it with --model odenet',
      ],
      [['train', '--members', '3'], 'Expected --members only with --model ensemble but received it with --model sdebnn'],
      [
        ['train', '--model', 'ensemble', '--dataset', 'toy'],
        'Expected a classification preset (mnist, cifar10, paper-mnist, paper-cifar10) with --model ensemble but received --preset toy',
      ],
      [
        ['train', '--model', 'ensemble', '--resume'],
        'Expected no --resume with --model ensemble (its members train in memory, one after another, in one process) but received it',
      ],
      [['train', '--model', 'ensemble', '--members', '0'], "Expected a positive integer for --members but received '0'"],
      [['compare', '--models', 'sdebnn,bnn'], "Expected comma-separated model names for --models but received 'sdebnn,bnn'"],
      [['compare', '--models', 'resnet,resnet'], "Expected each model once in --models but received 'resnet' twice"],
      [['compare', '--models', 'resnet', '--members', '3'], 'Expected --members only with the ensemble among --models but received it without'],
      [['compare', '--dataset', 'toy'], "Expected 'mnist' or 'cifar10' for --dataset but received 'toy'"],
      [['compare', '--preset', 'toy'], "Expected 'mnist', 'cifar10', 'paper-mnist' or 'paper-cifar10' for --preset but received 'toy'"],
      [['compare', '--preset', 'mnist', '--dataset', 'mnist'], 'Expected one of --preset or --dataset but received both (--preset mnist --dataset mnist)'],
      [['compare', '--budget', '0'], "Expected a positive number for --budget but received '0'"],
      [['compare', '--sizing', 'flops'], "Expected 'params' or 'width' for --sizing but received 'flops'"],
    ];
    for (const [args, message] of cases) {
      const r = await run([...args, '--out', out]);
      expect(r, args.join(' ')).toMatchObject({ code: 2, out: '' });
      expect(r.err.split('\n')[0], args.join(' ')).toBe(`sdebnn ${args[0]}: ${message}`);
    }
    expect(fs.existsSync(out)).toBe(false);
    expect((await run(['--help'])).out).toMatch(/^ {2}compare +train every model for the same time budget/m);
    const help = await run(['compare', '--help']);
    expect(help.out).toMatch(/^ {2}--models LIST +comma-separated, of sdebnn, odenet, resnet, mfvi-resnet, mfvi-odenet, ensemble \(default\s+all\)$/m);
    expect((await run(['train', '--help'])).out).toMatch(
      /^ {2}--model MODEL +sdebnn, odenet, resnet, mfvi-resnet, mfvi-odenet, ensemble: [^]*?\(default sdebnn\)$/m,
    );
  });
});

describe('compare', () => {
  it("sizes every model's block for about the SDE-BNN's parameter count, as the models built count them", () => {
    const base = PRESETS.mnist.model;
    const sizes = sdebnn.sizeModels(base, MODELS, { members: 5, maxWidth: 512 });
    const target = sdebnn.parametersAt(base, 'sdebnn', 32);
    expect(sizes.sdebnn).toEqual({ width: 32, parameters: target, capped: false });
    for (const m of MODELS) {
      const { width, parameters } = sizes[m]!;
      const k = m === 'ensemble' ? 5 : 1;
      const at = (w: number) => k * sdebnn.parametersAt(base, m, w);
      expect(at(width)).toBe(parameters);
      // no width closer to the target
      if (width > 1) expect(Math.abs(at(width - 1) - target)).toBeGreaterThanOrEqual(Math.abs(parameters - target));
      if (width < 512) expect(Math.abs(at(width + 1) - target)).toBeGreaterThanOrEqual(Math.abs(parameters - target));
    }
    // The odenet's block has no hypernetwork and no per-layer weights: it needs the widest block.
    expect(sizes.odenet!.width).toBeGreaterThan(sizes.resnet!.width);
    expect(sizes.resnet!.width).toBeGreaterThan(sizes['mfvi-resnet']!.width);
    // Under a cap, the widest and the flag
    const capped = sdebnn.sizeModels(base, ['odenet', 'resnet'], { members: 5, maxWidth: 64 });
    expect(capped.odenet).toEqual({ width: 64, parameters: sdebnn.parametersAt(base, 'odenet', 64), capped: true });
    // The count from the config is the model's own.
    const { sigma: _s, estimator: _e, ...blocks } = base;
    for (const m of ['resnet', 'mfvi-odenet'] as const) {
      const built = new sdebnn.SdeBnn({ ...blocks, model: m, width: sizes[m]!.width });
      expect(built.numParameters).toBe(sizes[m]!.parameters);
      built.dispose();
    }
    expect(() => sdebnn.sizeModels(base, ['bnn' as never], { members: 5, maxWidth: 64 })).toThrow(
      "Expected one of 'sdebnn', 'odenet', 'resnet', 'mfvi-resnet', 'mfvi-odenet', 'ensemble' for models[] but received \"bnn\"",
    );
  });

  it('trains and evaluates every model once, prints one table, and resumes what an interruption lost', async () => {
    const out = path.join(dir, 'compare');
    const args = [
      'compare',
      '--budget',
      '1',
      '--members',
      '2',
      '--train-limit',
      '128',
      '--test-limit',
      '32',
      '--batch-size',
      '32',
      '--sizing',
      'width',
      '--samples',
      '2',
      '--shift-limit',
      '8',
      '--ood',
      'noise',
      '--out',
      out,
      '--quiet',
    ];
    const first = await run(args);
    expect(first.code, first.err).toBe(0);
    const comparison = readJson(path.join(out, 'comparison.json'));
    const rows = comparison.rows as import('../dist/compare').ComparisonRow[];
    expect(rows.map((r) => r.model)).toEqual([...MODELS]);
    const shifts = sdebnn.corruptions('mnist-c').reduce((a, c) => a + c.severities, 0);
    const table = first.out.slice(first.out.indexOf('model  '));
    for (const row of rows) {
      const modelDir = path.join(out, row.model);
      const summary = readJson(path.join(modelDir, 'summary.json'));
      const evaluation = readJson(path.join(modelDir, 'evaluation.json'));
      expect(row.steps).toBe(summary.steps);
      expect(row.steps).toBeGreaterThan(0);
      expect(summary.trainSeconds).toBeGreaterThan(1); // an ensemble's: each member past its half of the second
      expect(row.accuracy).toBe(evaluation.clean.metrics.accuracy);
      expect(row.ece).toBe(evaluation.clean.metrics.ece);
      const results = evaluation.shift.results as { accuracy: number; ece: number }[];
      expect(row.corruptedAccuracy).toBeCloseTo(results.reduce((t, r) => t + r.accuracy, 0) / results.length, 12);
      expect(row.corruptedEce).toBeCloseTo(results.reduce((t, r) => t + r.ece, 0) / results.length, 12);
      expect(row.oodAurocEntropy).toBe(evaluation.ood[0].scores.entropy.auroc); // one OOD set: its own
      expect(row.oodAurocMutualInformation).toBe(evaluation.ood[0].scores.mutualInformation.auroc);
      expect(row.imagesPerSecond).toBe(evaluation.clean.imagesPerSecond);
      expect(row.samples).toBe({ sdebnn: 2, odenet: 1, resnet: 1, 'mfvi-resnet': 2, 'mfvi-odenet': 2, ensemble: 2 }[row.model]);
      expect(evaluation.shift.results).toHaveLength(shifts); // the same corruptions and images for every model
      expect(evaluation.shift.results.every((r: { count: number }) => r.count === 8)).toBe(true);
      expect(evaluation.ood.map((o: { name: string }) => o.name)).toEqual(['noise']);
      const model = sdebnn.loadModel(path.join(modelDir, 'model.safetensors'));
      expect(row.parameters).toBe(model.numParameters);
      model.dispose();
      const line = table.split('\n').find((l) => l.startsWith(`${row.model} `))!;
      expect(line).toContain(` ${row.parameters} `);
      expect(line).toContain(`${(100 * row.accuracy).toFixed(2)}%`);
    }
    const html = fs.readFileSync(path.join(out, 'comparison.html'), 'utf8');
    for (const m of MODELS) expect(html).toContain(`<td>${m}`);
    // six bar charts (accuracy, NLL, ECE, OOD AUROC, corrupted accuracy, speed), a bar per model in each
    expect(html.match(/<svg /g)).toHaveLength(6);
    expect(html.match(/class="mark bar"/g)).toHaveLength(6 * MODELS.length);

    // A second run trains and evaluates nothing: every model's files stay as they were.
    const stamp = (m: string) => fs.statSync(path.join(out, m, 'model.safetensors')).mtimeMs;
    const before = Object.fromEntries(MODELS.map((m) => [m, stamp(m)]));
    const second = await run(args);
    expect(second.code, second.err).toBe(0);
    for (const m of MODELS) expect(second.out).toContain(`${m}: trained and evaluated before`);
    expect(second.out).not.toContain('training for');
    expect(readJson(path.join(out, 'comparison.json')).rows).toEqual(rows);
    for (const m of MODELS) expect(stamp(m)).toBe(before[m]);

    // Interrupted after resnet's training (no row yet) and during odenet's (no summary): resnet is
    // evaluated again without training, odenet trained again from scratch, the others left alone.
    fs.rmSync(path.join(out, 'resnet', 'compared.json'));
    fs.rmSync(path.join(out, 'odenet', 'compared.json'));
    fs.rmSync(path.join(out, 'odenet', 'summary.json')); // its training had not ended
    const third = await run(args);
    expect(third.code, third.err).toBe(0);
    expect(third.out).toContain('resnet: trained before');
    expect(third.out).toContain('odenet: training for 1 s');
    expect(third.out.match(/training for/g)).toHaveLength(1);
    expect(stamp('resnet')).toBe(before.resnet);
    expect(stamp('odenet')).not.toBe(before.odenet);
    const epochs = fs
      .readFileSync(path.join(out, 'odenet', 'log.jsonl'), 'utf8')
      .split('\n')
      .filter((l) => l.includes('"type":"epoch"'))
      .map((l) => JSON.parse(l) as { steps: number });
    expect(epochs.reduce((a, e) => a + e.steps, 0)).toBe(readJson(path.join(out, 'odenet', 'summary.json')).steps); // a fresh log, not appended to
    const after = readJson(path.join(out, 'comparison.json')).rows as typeof rows;
    // resnet's evaluation again: the same numbers (its speed is measured anew); the others' rows as they were
    const timeless = (r: (typeof rows)[number]) => ({ ...r, imagesPerSecond: undefined });
    expect(after.filter((r) => r.model !== 'odenet').map(timeless)).toEqual(rows.filter((r) => r.model !== 'odenet').map(timeless));
    expect(after.filter((r) => r.model !== 'odenet' && r.model !== 'resnet')).toEqual(rows.filter((r) => r.model !== 'odenet' && r.model !== 'resnet'));

    // Other settings in the same folder are refused, not mixed.
    const changed = await run(args.map((a) => (a === '1' ? '2' : a)));
    expect(changed.code).toBe(2);
    expect(changed.err).toContain(`Expected --out ${out} to hold no comparison or one with the same settings but it holds one with budget 1 (now 2)`);
  });
});
