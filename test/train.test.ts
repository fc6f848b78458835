// The training loop: reproducibility, checkpoint resume to identical numbers, the schedule, the
// 1D toy's uncertainty between clusters, and the CLI's errors.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { sdebnn } from './helpers';

const { SdeBnn, train, evaluate, learningRate, createDataset, toyRegression } = sdebnn;

function tinyMnistLike(n: number, seed: number) {
  // Two classes told apart by the mean brightness of the left half: learnable in a few steps.
  let s = seed;
  const rand = () => ((s = (1664525 * s + 1013904223) >>> 0) / 2 ** 32);
  const inputs = new Float32Array(n * 28 * 28);
  const targets = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    targets[i] = i % 2;
    for (let p = 0; p < 784; p++) inputs[i * 784 + p] = rand() - 0.5 + (targets[i] && p % 28 < 14 ? 1 : 0);
  }
  return createDataset({ inputs, inputShape: [1, 28, 28], targets, classes: 2 });
}

const smallConfig = { kind: 'conv' as const, inputShape: [1, 28, 28], classes: 2, stem: 4, width: 8, hypernet: { hidden: [8] }, nTrain: 64, seed: 1, solver: { steps: 4 } };

describe('learning-rate schedule', () => {
  it('warms up linearly, then decays by a cosine to lrMin', () => {
    const o = { lr: 1e-3, lrSchedule: 'cosine' as const, lrMin: 1e-5, warmupSteps: 10 };
    expect(learningRate(0, 0, o)).toBeCloseTo(1e-4, 12);
    expect(learningRate(9, 0.1, o)).toBeCloseTo(1e-3, 12);
    expect(learningRate(50, 0.5, o)).toBeCloseTo(1e-5 + 0.5 * (1e-3 - 1e-5), 12);
    expect(learningRate(100, 1, o)).toBeCloseTo(1e-5, 12);
    expect(learningRate(100, 1, { ...o, lrSchedule: 'constant' })).toBe(1e-3);
  });
});

describe('train', () => {
  it("takes lr and beta from the model's config unless the options give them", async () => {
    const data = { train: tinyMnistLike(64, 3) };
    const seen: { lr: number; beta: number }[] = [];
    const model = new SdeBnn({ ...smallConfig, beta: 0.25, optimizer: { lr: 2e-3 } });
    await train(model, data, { epochs: 1, batchSize: 64, lrSchedule: 'constant', progress: false, evalEachEpoch: false, onStep: (s) => seen.push(s) });
    await train(model, data, { epochs: 1, batchSize: 64, lrSchedule: 'constant', progress: false, evalEachEpoch: false, lr: 5e-4, beta: 0.5, onStep: (s) => seen.push(s) });
    expect(seen.map((s) => [s.lr, s.beta])).toEqual([[2e-3, 0.25], [5e-4, 0.5]]);
    model.dispose();
  });

  it('is reproducible and resumes from a checkpoint to identical numbers', async () => {
    const data = { train: tinyMnistLike(64, 3), test: tinyMnistLike(32, 4) };
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sdebnn-train-'));
    const options = { epochs: 2, batchSize: 16, lr: 3e-3, evalSamples: 2, seed: 5, progress: false };

    const straight = new SdeBnn(smallConfig);
    const full = await train(straight, data, options);
    const again = await train(new SdeBnn(smallConfig), data, options);
    expect(again.epochs.map((e) => e.loss)).toEqual(full.epochs.map((e) => e.loss));

    // Interrupt a run after its first epoch, then resume it in a fresh model.
    const checkpointFile = path.join(dir, 'model.safetensors');
    const first = new SdeBnn(smallConfig);
    const interrupt = () => {
      throw new Error('interrupted');
    };
    await expect(train(first, data, { ...options, checkpointFile, onEpoch: interrupt })).rejects.toThrow('interrupted');
    first.dispose();
    const resumed = new SdeBnn(smallConfig);
    const rest = await train(resumed, data, { ...options, checkpointFile, resume: true, logFile: path.join(dir, 'log.jsonl') });
    expect(rest.epochs).toHaveLength(1);
    expect(rest.epochs[0]!.loss).toBe(full.epochs[1]!.loss);
    expect(rest.epochs[0]!.kl).toBe(full.epochs[1]!.kl);
    expect(rest.test).toEqual(full.test);
    const log = fs.readFileSync(path.join(dir, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(log.at(-1)).toMatchObject({ type: 'epoch', epoch: 2 });
    // A model rebuilt from the checkpoint alone (its stored config) predicts identically.
    const saved = sdebnn.readTrainingCheckpoint(checkpointFile);
    const rebuilt = new SdeBnn(saved.config as typeof smallConfig);
    rebuilt.setState(saved.state);
    const probe = data.test.inputs.subarray(0, 4 * 784);
    const a = await resumed.predict(probe, { samples: 2, seed: 3 });
    const b = await rebuilt.predict(probe, { samples: 2, seed: 3 });
    expect(b).toEqual(a);
    // checkpointEvery: epoch 1 of every 2 writes nothing; the last epoch is always written.
    const sparse = path.join(dir, 'sparse.safetensors');
    await expect(train(new SdeBnn(smallConfig), data, { ...options, checkpointFile: sparse, checkpointEvery: 2, onEpoch: interrupt })).rejects.toThrow('interrupted');
    expect(fs.existsSync(sparse)).toBe(false);
    await train(new SdeBnn(smallConfig), data, { ...options, checkpointFile: sparse, checkpointEvery: 5 });
    expect(sdebnn.readTrainingCheckpoint(sparse).epoch).toBe(2);
    // The loss fell: the tiny task is learnable.
    expect(full.epochs[1]!.nll).toBeLessThan(full.epochs[0]!.nll);
  });

  it('passes every training batch through augment', async () => {
    const model = new SdeBnn(smallConfig);
    const shapes: number[][] = [];
    await train(model, { train: tinyMnistLike(32, 2) }, {
      batchSize: 16, progress: false,
      augment: (x, shape) => {
        shapes.push(shape);
        return x.map((v) => -v);
      },
    });
    expect(shapes).toEqual([[16, 1, 28, 28], [16, 1, 28, 28]]);
  });

  it('rejects bad options by name', async () => {
    const model = new SdeBnn(smallConfig);
    const data = { train: tinyMnistLike(8, 1) };
    await expect(train(model, data, { batchSize: 0 })).rejects.toThrow(/Expected positive integer for options\.batchSize but received 0/);
    await expect(train(model, data, { lrSchedule: 'step' as never })).rejects.toThrow(/options\.lrSchedule/);
    await expect(train(model, data, { epoch: 3 } as never)).rejects.toThrow(/Unknown option options\.epoch/);
    await expect(train(model, data, { checkpointEvery: 0 })).rejects.toThrow(/Expected positive integer for options\.checkpointEvery but received 0/);
  });
});

describe('the 1D toy regression', () => {
  // toyModelConfig() as `sdebnn train --dataset toy` uses it, trained as the CLI trains it (full batch,
  // 10,000 steps, lr 1e-3 with a cosine decay to 0, the config's beta). Seed 0: std 0.399 between the clusters, 0.113
  // on them (3.5x), RMSE against cos x 0.064. Over model seeds 0-5 the ratio is 3.5, 3.7, 4.3, 2.3,
  // 3.2, 4.3 (RMSE 0.059-0.072). The issue asks for 3x. About 30 s on one core.
  it('fits the clusters and is at least 3x more uncertain between them than on them', async () => {
    const toy = toyRegression({ seed: 0 });
    const model = new SdeBnn({ ...sdebnn.toyModelConfig(), seed: 0 });
    await train(model, { train: toy.dataset }, { epochs: 10000, batchSize: 40, lr: 1e-3, progress: false });
    const grid = sdebnn.toyGrid({ min: 0, max: 8, count: 81 });
    const out = await model.predict(grid, { samples: 64, seed: 1 });
    if (out.kind !== 'regression') throw new Error('expected regression');
    const mean = (lo: number, hi: number, f: (i: number) => number) => {
      const picked = Array.from(grid).flatMap((x, i) => (x >= lo - 1e-6 && x <= hi + 1e-6 ? [f(i)] : []));
      return picked.reduce((a, b) => a + b, 0) / picked.length;
    };
    const between = mean(3, 5, (i) => out.std[i]!);
    const onData = (mean(0, 2, (i) => out.std[i]!) + mean(6, 8, (i) => out.std[i]!)) / 2;
    const mse = (mean(0, 2, (i) => (out.mean[i]! - Math.cos(grid[i]!)) ** 2) + mean(6, 8, (i) => (out.mean[i]! - Math.cos(grid[i]!)) ** 2)) / 2;
    expect(Math.sqrt(mse)).toBeLessThan(0.1);
    expect(between / onData, `std between ${between.toFixed(3)}, on the data ${onData.toFixed(3)}`).toBeGreaterThanOrEqual(3);
  }, 180_000);
});

describe('command line', () => {
  const cli = path.resolve(__dirname, '..', 'dist', 'cli.js');
  const run = (args: string[]) => {
    try {
      return { code: 0, out: execFileSync(process.execPath, [cli, ...args], { encoding: 'utf8', stdio: 'pipe' }) };
    } catch (e) {
      const err = e as { status: number; stdout: string; stderr: string };
      return { code: err.status, out: err.stdout + err.stderr };
    }
  };
  it('prints help and rejects unknown options and datasets', () => {
    expect(run(['train', '--help'])).toMatchObject({ code: 0, out: expect.stringContaining('--time-limit') });
    expect(run(['train', '--epoks', '3'])).toMatchObject({ code: 1, out: expect.stringContaining('Unknown option --epoks') });
    expect(run(['train', '--dataset', 'imagenet'])).toMatchObject({ code: 1, out: expect.stringContaining("for --dataset but received 'imagenet'") });
    expect(run(['train', '--dataset', 'cifar10'])).toMatchObject({ code: 1, out: expect.stringContaining('needs --data-dir') });
    expect(run(['frobnicate'])).toMatchObject({ code: 2, out: expect.stringContaining("unknown command 'frobnicate'") });
  });
});

describe('configs', () => {
  it('a resolved config resolves to itself (checkpoints store the resolved form)', () => {
    for (const c of [{}, { kind: 'mlp' as const, inputShape: [1] }, { kind: 'conv' as const, inputShape: [3, 32, 32], blocks: [1, 1] }]) {
      const once = sdebnn.resolveSdeBnnConfig(c);
      expect(sdebnn.resolveSdeBnnConfig(once)).toEqual(once);
    }
  });
});
