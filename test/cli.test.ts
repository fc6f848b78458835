// The command line end to end, as users run it: train on MNIST under a time limit (the main job's
// path, on a small slice), eval and predict from the checkpoint it wrote, the toy and predict --x,
// backend --self-test, the help generated from the presets, usage errors, and the progress line
// the CLI draws on a terminal. Every number printed is checked against the library.
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { sdebnn } from './helpers';

const cli = path.resolve(__dirname, '..', 'dist', 'cli.js');
const exec = promisify(execFile);
const { PRESETS, PRESET_NAMES } = require('../dist/presets.js') as typeof import('../dist/presets');

/** Runs the CLI; with `tty`, its stderr claims to be a terminal and tags each write with the rank (test/fixtures/fake-tty.cjs). */
async function run(args: string[], options: { tty?: boolean } = {}): Promise<{ code: number; out: string; err: string }> {
  const preload = options.tty ? ['--require', path.join(__dirname, 'fixtures', 'fake-tty.cjs')] : [];
  try {
    const { stdout, stderr } = await exec(process.execPath, [...preload, cli, ...args], { encoding: 'utf8' });
    return { code: 0, out: stdout, err: stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, out: err.stdout, err: err.stderr };
  }
}

const jsonLines = (text: string) =>
  text
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);

function modelFrom(checkpoint: string) {
  const saved = sdebnn.readTrainingCheckpoint(checkpoint);
  const model = new sdebnn.SdeBnn(saved.config as never);
  model.setState(saved.state);
  return { model, saved };
}

describe('command line', () => {
  it('generates train --help from the preset table', async () => {
    const help = await run(['train', '--help']);
    expect(help.code, help.err).toBe(0);
    expect(help.out).toMatch(/^ {2}--time-limit SECONDS +stop training after this long/m);
    expect(help.out).toMatch(/^ {2}--epochs N +training epochs \(default from the preset\)$/m);
    expect(help.out).toMatch(/^ {2}--nproc N +start N worker processes/m);
    // The table: a column per preset, a row per default, each value the preset's.
    const table = help.out.slice(help.out.indexOf('Presets (--preset NAME)'));
    const row = (label: string) =>
      table
        .split('\n')
        .find((l) => l.startsWith(`  ${label} `))!
        .trim()
        .slice(label.length)
        .trim()
        .split(/ {2,}/);
    expect(row('')).toEqual(PRESET_NAMES);
    expect(PRESET_NAMES).toEqual(['mnist', 'cifar10', 'toy', 'paper-mnist', 'paper-cifar10']);
    const each = (get: (p: (typeof PRESETS)['mnist']) => unknown) => PRESET_NAMES.map((n) => String(get(PRESETS[n])));
    expect(row('--epochs')).toEqual(each((p) => p.training.epochs));
    expect(row('--epochs')).toEqual(['10', '10', '10000', '300', '300']);
    expect(row('--batch-size')).toEqual(each((p) => p.training.batchSize));
    expect(row('--lr')).toEqual(each((p) => p.training.lr));
    expect(row('--beta')).toEqual(['0.001', '0.001', '0.0001', '0.001', '0.001']);
    expect(row('--samples')).toEqual(each((p) => p.training.samples));
    expect(row('--sigma')).toEqual(each((p) => p.model.sigma));
    expect(row('--steps')).toEqual(['10', '10', '40', '20', '20']);
    expect(row('--time-limit')).toEqual(['none', 'none', 'none', 'none', 'none']);
    expect(row('--width')).toEqual(['32', '32', '-', '64', '64']);
    expect(row('--ema')).toEqual(['none', 'none', 'none', '0.999', '0.999']);
    expect(row('(x - shift) / scale')).toEqual([
      `${sdebnn.MNIST_MEAN} / ${sdebnn.MNIST_STD}`,
      `${sdebnn.CIFAR10_MEAN.join(',')} / ${sdebnn.CIFAR10_STD.join(',')}`,
      '4 / 0.5',
      `${sdebnn.MNIST_MEAN} / ${sdebnn.MNIST_STD}`,
      `${sdebnn.CIFAR10_MEAN.join(',')} / 0.2023,0.1994,0.201`,
    ]);
    expect(row('crops and flips')).toEqual(['no', 'yes', 'no', 'no', 'yes']);
    for (const command of ['eval', 'report', 'predict', 'backend']) {
      const r = await run([command, '--help']);
      expect(r.code, r.err).toBe(0);
      expect(r.out).toMatch(new RegExp(`^Usage: sdebnn ${command}`));
    }
    expect((await run(['predict', '--help'])).out).toMatch(/^ {2}--samples S +Monte Carlo weight paths \(default 8\)$/m);
  });

  it('refuses bad command lines with exit code 2, naming the flag, what it expects and what it got, before any work', async () => {
    const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'sdebnn-cli-usage-')), 'run');
    const cases: [string[], string][] = [
      [['train', '--epoks', '3'], "Unknown option --epoks for 'sdebnn train' (did you mean --epochs?)"],
      [['train', '-e', '3'], "Unknown option -e for 'sdebnn train'"],
      [['train', '--epochs'], 'Expected a value (N) after --epochs but received nothing'],
      [['train', '--width', '--quiet'], "Expected a value (N) after --width but received the option '--quiet'"],
      [['train', '--epochs', 'ten'], "Expected a positive integer for --epochs but received 'ten'"],
      [['train', '--epochs', '2.5'], "Expected a positive integer for --epochs but received '2.5'"],
      [['train', '--lr', '1e-3x'], "Expected a positive number for --lr but received '1e-3x'"],
      [['train', '--lr', '-0.1'], "Expected a positive number for --lr but received '-0.1'"],
      [['train', '--beta', 'NaN'], "Expected a non-negative number for --beta but received 'NaN'"],
      [['train', '--ema', '1'], "Expected a number in [0, 1) for --ema but received '1'"],
      [['train', '--blocks', '1,x'], "Expected comma-separated positive integers for --blocks but received '1,x'"],
      [['train', '--master-port', '70000'], "Expected an integer in [1, 65535] for --master-port but received '70000'"],
      [['train', '--dataset', 'imagenet'], "Expected 'mnist', 'cifar10' or 'toy' for --dataset but received 'imagenet'"],
      [
        ['train', '--method', 'rk4'],
        "Expected 'euler', 'milstein', 'srk', 'midpoint', 'heun', 'euler_heun' or 'reversible_heun' for --method but received 'rk4'",
      ],
      [['train', '--device', 'gpu'], "Expected 'cpu', 'cuda', 'cuda:N' or 'auto' for --device but received 'gpu'"],
      [['train', '--quiet=no'], "Expected no value for the switch --quiet but received 'no'"],
      [['train', 'mnist'], "Expected only flags (--name value) for 'sdebnn train' but received 'mnist'"],
      [['train', '--dataset', 'cifar10'], 'Expected --data-dir DIR (the folder of the CIFAR-10 binary batches) for the cifar10 data but received none'],
      [
        ['train', '--dataset', 'toy', '--stem', '8'],
        'Expected --stem only with a conv preset (mnist, cifar10, paper-mnist, paper-cifar10) but received it with the preset toy (kind mlp)',
      ],
      [['train', '--nproc', '0'], "Expected a positive integer for --nproc but received '0'"],
      [['train', '--tf32'], 'Expected --tf32 only with --device cuda or auto (it applies to CUDA) but received it with --device cpu'],
      [['train', '--cuda-graph'], 'Expected --cuda-graph only with --device cuda or auto (it applies to CUDA) but received it with --device cpu'],
      [
        ['train', '--model', 'odenet', '--w0-posterior', 'gaussian'],
        'Expected --w0-posterior only with --model sdebnn (the others have no weight SDE) but received it with --model odenet',
      ],
      [['train', '--w0-posterior', 'wide'], "Expected 'point' or 'gaussian' for --w0-posterior but received 'wide'"],
      [['eval'], "Expected --checkpoint FILE for 'sdebnn eval' but received none"],
      [['eval', '--checkpoint', 'm.safetensors', '--bins', '0'], "Expected a positive integer for --bins but received '0'"],
      [['report'], "Expected RUN_DIR (the --out of a training run) for 'sdebnn report' but received none"],
      [['report', 'a', 'b'], "Expected at most 1 argument before the flags for 'sdebnn report' but received 'b'"],
      [['predict', '--checkpoint', 'm.safetensors'], "Expected one of --images IDX_FILE or --x X1,X2,... for 'sdebnn predict' but received neither"],
      [['predict', '--checkpoint', 'm.safetensors', '--x', '1,a'], "Expected comma-separated numbers for --x but received '1,a'"],
      [['backend', '--self-test', '--device', 'tpu'], "Expected 'cpu', 'cuda', 'cuda:N' or 'auto' for --device but received 'tpu'"],
    ];
    for (const [args, message] of cases) {
      const command = args[0]!;
      const r = await run(command === 'train' ? ['train', '--out', out, ...args.slice(1)] : args);
      expect(r, args.join(' ')).toMatchObject({ code: 2, out: '' });
      expect(r.err).toBe(`sdebnn ${command}: ${message}\n${r.err.split('\n')[1]}\nRun 'sdebnn ${command} --help' for the options.\n`);
      expect(r.err.split('\n')[1]).toMatch(new RegExp(`^Usage: sdebnn ${command}`));
    }
    expect(fs.existsSync(out)).toBe(false); // refused before anything was written
    // Negative numbers are values, not flags; --help wins over everything else.
    expect(await run(['predict', '--checkpoint', path.join(out, 'none.safetensors'), '--x', '-1,2'])).toMatchObject({
      code: 1,
      err: expect.stringContaining('none.safetensors'),
    });
    expect(await run(['train', '--epoks', '3', '--help'])).toMatchObject({ code: 0, out: expect.stringContaining('Usage: sdebnn train') });
    expect(await run(['frobnicate'])).toMatchObject({ code: 2, err: expect.stringContaining("unknown command 'frobnicate'") });
    expect(await run([])).toMatchObject({ code: 2, out: expect.stringContaining('Usage: sdebnn <command>') });
  });

  it('train --time-limit on MNIST writes model.safetensors, log.jsonl and summary.json; eval and predict --images reproduce it', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sdebnn-cli-'));
    const out = path.join(dir, 'run');
    // 8 batches of 32 per epoch, 50 epochs: the 1.5 s limit stops it long before (a step takes ~20 ms).
    const trained = await run([
      'train',
      '--dataset',
      'mnist',
      '--train-limit',
      '256',
      '--test-limit',
      '64',
      '--time-limit',
      '1.5',
      '--epochs',
      '50',
      '--batch-size',
      '32',
      '--width',
      '8',
      '--stem',
      '4',
      '--steps',
      '2',
      '--samples',
      '2',
      '--beta',
      '0.01',
      '--out',
      out,
      '--quiet',
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
    const json = path.join(dir, 'evaluation.json');
    const evaluated = await run([
      'eval',
      '--checkpoint',
      checkpoint,
      '--test-limit',
      '64',
      '--samples',
      '2',
      '--shift',
      'none',
      '--ood',
      'none',
      '--json',
      json,
    ]);
    expect(evaluated.code, evaluated.err).toBe(0);
    expect(JSON.parse(fs.readFileSync(json, 'utf8')).clean.metrics).toEqual(summary.test);

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
  });

  it("draws the progress line on a terminal only, from train()'s callbacks, and not with --quiet", async () => {
    const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'sdebnn-cli-tty-')), 'toy');
    const args = ['train', '--dataset', 'toy', '--epochs', '3', '--out', out];
    const drawn = await run(args, { tty: true });
    expect(drawn.code, drawn.err).toBe(0);
    // The first step is drawn at once (later ones at most every 100 ms); the line is cleared
    // before the epoch's summary and at the end.
    // eslint-disable-next-line no-control-regex -- the progress line's ANSI erase-line code
    expect(drawn.err).toMatch(/^<none>\r\[#{8}\.{16}\] epoch 1\/3 batch 1\/1 loss \d+\.\d{4} kl \d\.\d\de[+-]\d+ \d+ s\x1b\[K<\/none>/);
    // eslint-disable-next-line no-control-regex -- as above
    expect(drawn.err).toMatch(/<none>\r\x1b\[K<\/none>$/);
    expect(drawn.out).toContain('epoch 3: loss');
    expect((await run([...args, '--quiet'], { tty: true })).err).toBe('');
    expect((await run(args)).err).toBe(''); // not a terminal
  });

  it('draws the progress line only on rank 0 of a distributed run', async () => {
    const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'sdebnn-cli-tty-')), 'toy');
    const r = await run(['train', '--dataset', 'toy', '--epochs', '3', '--nproc', '2', '--threads', '1', '--out', out], { tty: true });
    expect(r.code, r.err).toBe(0);
    expect(r.err).toMatch(/<0>\r\[#+\.*\] epoch 1\/3 batch 1\/1 loss/);
    expect(r.err).not.toMatch(/<1>[^<]*epoch/);
    expect(r.out).toMatch(/^test nll .*rmse/m);
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
