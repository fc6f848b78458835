// The paper's CIFAR-10 preset end to end on synthetic binary batches (CIFAR-10 itself cannot be
// downloaded here): `sdebnn train --preset paper-cifar10` on 1,000 images (the model at full width,
// a few Euler steps so that it stays fast), `sdebnn eval --preset paper-cifar10` of the checkpoint,
// the distributed launcher with the preset, and the preset flags' usage errors.
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { sdebnn } from './helpers';

const cli = path.resolve(__dirname, '..', 'dist', 'cli.js');
const exec = promisify(execFile);

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  try {
    const { stdout, stderr } = await exec(process.execPath, [cli, ...args], { encoding: 'utf8', maxBuffer: 1 << 24 });
    return { code: 0, out: stdout, err: stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, out: err.stdout, err: err.stderr };
  }
}

/** A CIFAR-10 binary batch of 10,000 records (1 label byte + 3072 pixel bytes, channel-major): each class a flat colour of its own plus seeded noise. */
function syntheticBatch(seed: number): Buffer {
  const records = 10000;
  const bytes = Buffer.alloc(records * 3073);
  let state = seed >>> 0;
  const next = () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state >>> 24;
  };
  for (let r = 0; r < records; r++) {
    const label = next() % 10;
    const o = r * 3073;
    bytes[o] = label;
    for (let c = 0; c < 3; c++) {
      const base = 40 + 20 * ((label * (c + 3)) % 10);
      for (let p = 0; p < 1024; p++) bytes[o + 1 + c * 1024 + p] = base + (next() >> 3);
    }
  }
  return bytes;
}

let root = '';
let data = '';

beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'sdebnn-cifar-preset-'));
  data = path.join(root, 'cifar-10-batches-bin');
  fs.mkdirSync(data);
  fs.writeFileSync(path.join(data, 'data_batch_1.bin'), syntheticBatch(1)); // --train-limit 1000 reads only the first batch
  fs.writeFileSync(path.join(data, 'test_batch.bin'), syntheticBatch(2));
});

describe('paper-cifar10 preset on synthetic CIFAR-10 batches', () => {
  it('trains on 1,000 images with the preset, then evaluates the checkpoint with it', async () => {
    const out = path.join(root, 'run');
    const trained = await run([
      'train',
      '--preset',
      'paper-cifar10',
      '--data-dir',
      root,
      '--train-limit',
      '1000',
      '--test-limit',
      '100',
      '--epochs',
      '1',
      '--batch-size',
      '250',
      '--steps',
      '1',
      '--samples',
      '1',
      '--threads',
      '2',
      '--quiet',
      '--out',
      out,
    ]);
    expect(trained.code, trained.err).toBe(0);
    expect(trained.out).toMatch(/^sdebnn: paper-cifar10: 1000 training and 100 test examples; \d+ parameters \(w_dim 6450\+6450\+23880\+23880\+93600\+93600\)/);
    const summary = JSON.parse(fs.readFileSync(path.join(out, 'summary.json'), 'utf8'));
    expect(summary).toMatchObject({ preset: 'paper-cifar10', dataset: 'cifar10', steps: 4, stoppedEarly: false });
    // The preset's model and optimizer, with the one override (--steps 1).
    expect(summary.config).toMatchObject({
      inputShape: [3, 32, 32],
      stem: false,
      aug: 2,
      blocks: [2, 2, 2],
      width: [64, 64, 64],
      pool: 1,
      sigma: 0.2,
      hypernet: { hidden: [2, 64, 2], activation: 'softplus' },
      solver: { method: 'euler', steps: 1, gradient: 'backprop' },
      beta: 1e-3,
      nTrain: 1000,
      optimizer: { lr: 1e-3, clip: 0, ema: 0.999 },
    });
    const [epoch] = fs
      .readFileSync(path.join(out, 'log.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; steps: number; loss: number; test: { count: number; nll: number } })
      .filter((e) => e.type === 'epoch');
    // One epoch of 4 steps of 250 images, evaluated on the 100 test images.
    expect(epoch).toMatchObject({ steps: 4, test: { count: 100 } });
    expect(Number.isFinite(epoch!.loss) && Number.isFinite(epoch!.test.nll)).toBe(true);
    expect(summary.test).toEqual(epoch!.test);

    // eval with the preset: the cifar10 test set and the preset's 4 weight paths.
    const json = path.join(root, 'evaluation.json');
    const evaluated = await run([
      'eval',
      '--checkpoint',
      path.join(out, 'model.safetensors'),
      '--preset',
      'paper-cifar10',
      '--data-dir',
      data,
      '--test-limit',
      '100',
      '--ood',
      'none',
      '--shift',
      'none',
      '--json',
      json,
      '--quiet',
    ]);
    expect(evaluated.code, evaluated.err).toBe(0);
    const evaluation = JSON.parse(fs.readFileSync(json, 'utf8'));
    expect(evaluation.samples).toBe(4);
    expect(evaluation.inputShape).toEqual([3, 32, 32]);
    expect(evaluation.clean.metrics.count).toBe(100);
    expect(Number.isFinite(evaluation.clean.metrics.nll)).toBe(true);

    // A checkpoint of another input shape is refused with both shapes named.
    const wrong = await run(['eval', '--checkpoint', path.join(out, 'model.safetensors'), '--preset', 'paper-mnist', '--quiet']);
    expect(wrong.code).toBe(2);
    expect(wrong.err).toContain('Expected a model of input [1, 28, 28] for --preset paper-mnist but');
    expect(wrong.err).toContain('takes [3, 32, 32]');
  }, 300_000); // two CLI runs of the full-width model: about a minute on a quiet 2-core machine

  it.skipIf(!sdebnn.distributedAvailability().gloo)(
    'runs the preset under the distributed launcher (--nproc 2)',
    async () => {
      const out = path.join(root, 'dist');
      const r = await run([
        'train',
        '--preset',
        'paper-cifar10',
        '--data-dir',
        data,
        '--train-limit',
        '200',
        '--test-limit',
        '50',
        '--epochs',
        '1',
        '--batch-size',
        '100',
        '--steps',
        '1',
        '--samples',
        '1',
        '--threads',
        '1',
        '--nproc',
        '2',
        '--quiet',
        '--out',
        out,
      ]);
      expect(r.code, r.err).toBe(0);
      const summary = JSON.parse(fs.readFileSync(path.join(out, 'summary.json'), 'utf8'));
      expect(summary).toMatchObject({ preset: 'paper-cifar10', steps: 2 });
      expect(summary.config).toMatchObject({ blocks: [2, 2, 2], optimizer: { ema: 0.999, clip: 0 } });
    },
    300_000,
  );

  it('refuses --preset with --dataset, and a CIFAR preset without its data, before any work', async () => {
    const out = path.join(root, 'refused');
    const both = await run(['train', '--preset', 'paper-cifar10', '--dataset', 'cifar10', '--out', out]);
    expect(both.code).toBe(2);
    expect(both.err).toContain('Expected one of --preset or --dataset but received both (--preset paper-cifar10 --dataset cifar10)');
    const noData = await run(['train', '--preset', 'paper-cifar10', '--out', out]);
    expect(noData.code).toBe(2);
    expect(noData.err).toContain('Expected --data-dir DIR (the folder of the CIFAR-10 binary batches) for the cifar10 data but received none');
    expect(fs.existsSync(out)).toBe(false);
  });
});
