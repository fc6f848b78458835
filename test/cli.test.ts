// The command line end to end, as users run it: train on MNIST under a time limit (the main job's
// path, on a small slice), eval and predict from the checkpoint it wrote, the toy and predict --x,
// backend --self-test, and the errors. Every number printed is checked against the library.
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { sdebnn } from './helpers';

const cli = path.resolve(__dirname, '..', 'dist', 'cli.js');
const exec = promisify(execFile);

async function run(args: string[], cwd?: string): Promise<{ code: number; out: string; err: string }> {
  try {
    const { stdout, stderr } = await exec(process.execPath, [cli, ...args], { encoding: 'utf8', ...(cwd ? { cwd } : {}) });
    return { code: 0, out: stdout, err: stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, out: err.stdout, err: err.stderr };
  }
}

const jsonLines = (text: string) => text.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);

function modelFrom(checkpoint: string) {
  const saved = sdebnn.readTrainingCheckpoint(checkpoint);
  const model = new sdebnn.SdeBnn(saved.config as never);
  model.setState(saved.state);
  return { model, saved };
}

describe('command line', () => {
  it('prints help and rejects unknown options, datasets and commands', async () => {
    expect(await run(['train', '--help'])).toMatchObject({ code: 0, out: expect.stringContaining('--time-limit') });
    expect(await run(['train', '--epoks', '3'])).toMatchObject({ code: 1, err: expect.stringContaining('Unknown option --epoks') });
    expect(await run(['train', '--dataset', 'imagenet'])).toMatchObject({ code: 1, err: expect.stringContaining("for --dataset but received 'imagenet'") });
    expect(await run(['train', '--dataset', 'cifar10'])).toMatchObject({ code: 1, err: expect.stringContaining('needs --data-dir') });
    expect(await run(['frobnicate'])).toMatchObject({ code: 2, err: expect.stringContaining("unknown command 'frobnicate'") });
    expect(await run(['eval'])).toMatchObject({ code: 2, out: expect.stringContaining('Usage: sdebnn eval --checkpoint FILE') });
  });

  it('train --time-limit on MNIST writes model.safetensors, log.jsonl and summary.json; eval and predict --images reproduce it', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sdebnn-cli-'));
    const out = path.join(dir, 'run');
    // 8 batches of 32 per epoch, 50 epochs: the 1.5 s limit stops it long before (a step takes ~20 ms).
    const trained = await run([
      'train', '--dataset', 'mnist', '--train-limit', '256', '--test-limit', '64', '--time-limit', '1.5', '--epochs', '50',
      '--batch-size', '32', '--width', '8', '--stem', '4', '--steps', '2', '--samples', '2', '--beta', '0.01', '--out', out, '--quiet',
    ]);
    expect(trained.code, trained.err).toBe(0);
    expect(fs.readdirSync(out).sort()).toEqual(['log.jsonl', 'model.safetensors', 'summary.json']);
    const summary = JSON.parse(fs.readFileSync(path.join(out, 'summary.json'), 'utf8'));
    expect(summary).toMatchObject({ dataset: 'mnist', stoppedEarly: true, config: { kind: 'conv', stem: 4, width: [8], nTrain: 256, beta: 0.01 } });
    expect(summary.steps).toBeGreaterThan(0);
    expect(summary.steps).toBeLessThan(400);
    expect(summary.seconds).toBeGreaterThan(1.5);
    expect(Object.keys(summary.test).sort()).toEqual(['accuracy', 'adaptiveEce', 'brier', 'count', 'ece', 'eceBins', 'entropy', 'mce', 'nll']);
    expect(summary.test.count).toBe(64);
    // the log: a step line every 10 steps, an epoch line per epoch, the last with the test metrics
    const log = jsonLines(fs.readFileSync(path.join(out, 'log.jsonl'), 'utf8'));
    const steps = log.filter((l) => l.type === 'step');
    const epochs = log.filter((l) => l.type === 'epoch');
    expect(steps.map((s) => s.step)).toEqual(Array.from({ length: Math.floor(summary.steps / 10) }, (_, i) => 10 * (i + 1)));
    for (const s of steps) {
      expect(Object.keys(s)).toEqual(expect.arrayContaining(['epoch', 'lr', 'beta', 'seconds', 'loss', 'nll', 'kl', 'accuracy', 'gradNorm', 'nfe']));
      expect(s.beta).toBe(0.01);
      expect(Math.abs((s.loss as number) - (s.nll as number) - (0.01 * (s.kl as number)) / 256)).toBeLessThan(1e-6);
    }
    expect(epochs.map((e) => e.epoch)).toEqual(Array.from({ length: epochs.length }, (_, i) => i + 1));
    expect(epochs.reduce((a, e) => a + (e.steps as number), 0)).toBe(summary.steps);
    expect(epochs.at(-1)!.test).toEqual(summary.test);
    expect(epochs.slice(0, -1).every((e) => e.test === undefined)).toBe(true); // with a time limit: evaluated once, at the end
    expect(trained.out).toContain(`test accuracy ${(100 * summary.test.accuracy).toFixed(2)}%`);

    // The checkpoint holds the trained model: the library's evaluation of it is the summary's
    const checkpoint = path.join(out, 'model.safetensors');
    const { model, saved } = modelFrom(checkpoint);
    expect(saved.step).toBe(summary.steps);
    expect(saved.config).toEqual(summary.config);
    const test = sdebnn.imageDataset(sdebnn.loadMnist({ split: 'test', limit: 64 }));
    expect(await sdebnn.evaluate(model, test, { samples: 2 })).toEqual(summary.test);

    // eval: the same numbers from the command line
    const evaluationFile = path.join(dir, 'evaluation.json');
    const evaluated = await run(['eval', '--checkpoint', checkpoint, '--test-limit', '64', '--samples', '2', '--shift', 'none', '--ood', 'none', '--json', evaluationFile]);
    expect(evaluated.code, evaluated.err).toBe(0);
    expect(evaluated.out).toMatch(/accuracy/);
    expect(JSON.parse(fs.readFileSync(evaluationFile, 'utf8')).clean.metrics).toEqual(summary.test);

    // predict --images: class, probability and entropy per image, as the library computes them
    const images = path.join(sdebnn.defaultMnistDir(), 't10k-images-idx3-ubyte');
    const predicted = await run(['predict', '--checkpoint', checkpoint, '--images', images, '--limit', '3', '--samples', '2']);
    expect(predicted.code, predicted.err).toBe(0);
    const probs = await model.predict(test.inputs.subarray(0, 3 * 784), { samples: 2, seed: 0 });
    if (probs.kind !== 'categorical') throw new Error('expected probabilities');
    const entropy = sdebnn.predictiveEntropy({ data: probs.probs, shape: [3, 10] });
    const rows = jsonLines(predicted.out);
    expect(rows).toHaveLength(3);
    rows.forEach((row, i) => {
      const p = Array.from(probs.probs.subarray(i * 10, i * 10 + 10));
      const best = p.indexOf(Math.max(...p));
      expect(row).toEqual({ index: i, class: best, probability: +p[best]!.toFixed(6), entropy: +entropy[i]!.toFixed(6) });
    });
    model.dispose();
  });

  it('train --dataset toy, then predict --x prints the predictive mean and std the library gives', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sdebnn-cli-toy-'));
    const out = path.join(dir, 'toy');
    const trained = await run(['train', '--dataset', 'toy', '--epochs', '30', '--out', out, '--quiet']);
    expect(trained.code, trained.err).toBe(0);
    const summary = JSON.parse(fs.readFileSync(path.join(out, 'summary.json'), 'utf8'));
    expect(summary).toMatchObject({ dataset: 'toy', steps: 30, stoppedEarly: false });
    expect(summary.config).toEqual(sdebnn.resolveSdeBnnConfig({ ...sdebnn.toyModelConfig(), nTrain: 40, seed: 0, optimizer: { lr: 1e-3 } }));
    expect(Object.keys(summary.test)).toEqual(expect.arrayContaining(['nll', 'rmse', 'mean', 'std']));
    const checkpoint = path.join(out, 'model.safetensors');
    const predicted = await run(['predict', '--checkpoint', checkpoint, '--x', '1,4,7', '--samples', '8']);
    expect(predicted.code, predicted.err).toBe(0);
    const { model } = modelFrom(checkpoint);
    const expected = await model.predict(Float32Array.of(1, 4, 7), { samples: 8, seed: 0 });
    if (expected.kind !== 'regression') throw new Error('expected regression');
    expect(jsonLines(predicted.out)).toEqual([1, 4, 7].map((x, i) => ({ index: i, x, mean: expected.mean[i], std: expected.std[i], noiseScale: 0.1 })));
    expect(expected.std.every((s) => s > 0)).toBe(true);
    model.dispose();
    expect(await run(['predict', '--checkpoint', checkpoint, '--x', '1,a'])).toMatchObject({ code: 1, err: expect.stringContaining("Expected comma-separated numbers for --x but received '1,a'") });
  });

  it('backend --self-test prints the backend and a checked matrix product run', async () => {
    const result = await run(['backend', '--self-test']);
    expect(result.code, result.err).toBe(0);
    const [info, selfTest] = jsonLines(result.out);
    expect(info).toEqual(sdebnn.backend());
    expect(selfTest).toMatchObject({ device: 'cpu', iterations: 10 });
    expect(selfTest!.gflops).toBeGreaterThan(0);
    expect(selfTest!.maxAbsError).toBeLessThan(1e-4); // |(a q) q^T - a| for orthogonal q, float32, size 256: 3.3e-6
    expect(selfTest!.threads).toBe(info!.threads);
  });
});
