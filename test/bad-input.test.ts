// Bad input never hangs, never passes silently and never names the wrong culprit (issue 13): the
// safety limits (maxSteps, maxBytes), inputs refused by name (NaN and Infinity where they enter),
// callbacks that throw, malformed checkpoints, stale temp files of killed writers, the CLI.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sdebnn } from './helpers';

const { SDE, BrownianInterval, sdeint, sdeintGradients, SdeBnn, LimitError, train, createDataset } = sdebnn;
const { modelSize } = require('../dist/bnn-size.js') as typeof import('../dist/bnn-size');

const root = path.resolve(__dirname, '..');
let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sdebnn-bad-input-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** The error `fn` throws synchronously (before any native work), or undefined. */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  return undefined;
}

function expectLimit(error: unknown, option: string): void {
  expect(error).toBeInstanceOf(LimitError);
  expect(error).toMatchObject({ code: 'ERR_LIMIT', option, name: 'LimitError' });
  expect((error as Error).message).toContain(`raise ${option}`);
}

const neural = () => new SDE({ type: 'neural', d: 3, drift: { hidden: [8] }, seed: 1 });
const y0 = (batch = 4, d = 3) => ({ data: new Float32Array(batch * d).fill(0.1), shape: [batch, d] });
const mlp = { kind: 'mlp' as const, inputShape: [2], hidden: [8], hypernet: { hidden: [8] }, seed: 2, solver: { steps: 4 } };

describe('limits: maxSteps and maxBytes', () => {
  it('refuses a fixed-step solve of more than options.maxSteps steps before it starts (dt 1e-12 on [0, 1])', () => {
    const sde = neural();
    expectLimit(
      thrown(() => sdeint(sde, y0(), [0, 1], { dt: 1e-12 })),
      'options.maxSteps',
    );
    expectLimit(
      thrown(() => sdeint(sde, y0(), [0, 0.5, 1], { dt: 1e-3, maxSteps: 999 })),
      'options.maxSteps',
    );
    expectLimit(
      thrown(() => sdeintGradients(sde, y0(), [0, 1], { data: new Float32Array(24), shape: [2, 4, 3] }, { adjoint: true, adjointDt: 1e-12 })),
      'options.maxSteps',
    );
    sde.dispose();
  });

  it('stops an adaptive solve at options.maxSteps steps, counted natively (forward and adjoint)', async () => {
    const sde = new SDE({ type: 'gbm', mu: [0.5], sigma: [2], dtype: 'float64' });
    const x = { data: new Float64Array([1, 1]), shape: [2, 1] };
    const tight = { adaptive: true, rtol: 1e-10, atol: 1e-10, dtMin: 1e-12, maxSteps: 50 };
    const error = await sdeint(sde, x, [0, 1], tight).catch((e: unknown) => e);
    expectLimit(error, 'options.maxSteps');
    expect((error as Error).message).toMatch(/more than options\.maxSteps \(50\) steps/);
    const g = { data: new Float64Array(4).fill(1), shape: [2, 2, 1] };
    expectLimit(await sdeintGradients(sde, x, [0, 1], g, { ...tight, adjoint: true }).catch((e: unknown) => e), 'options.maxSteps');
    // The same solve within a generous limit runs (so the limit, not the solve, refused it).
    const ok = await sdeint(sde, x, [0, 1], { ...tight, rtol: 1e-3, atol: 1e-3, maxSteps: 10_000 });
    expect(ok.stats.stepsAccepted + ok.stats.stepsRejected).toBeLessThanOrEqual(10_000);
    sde.dispose();
  });

  it('refuses shapes that would allocate more than options.maxBytes before allocating ([1e9, 3] y0 with strides [0, 1])', async () => {
    const sde = neural();
    const huge = { data: new Float32Array(3).fill(0.1), shape: [1e9, 3], strides: [0, 1] };
    const error = thrown(() => sdeint(sde, huge, [0, 1]));
    expectLimit(error, 'options.maxBytes');
    expect((error as Error).message).toMatch(/y0 \[1000000000, 3\].*more than options\.maxBytes \(4 GiB\)/);
    // A broadcast y0 of a sane size solves; a small maxBytes refuses it.
    const small = { data: new Float32Array(3).fill(0.1), shape: [64, 3], strides: [0, 1] };
    const { ys } = await sdeint(sde, small, [0, 1], { dt: 0.1 });
    expect(ys.shape).toEqual([2, 64, 3]);
    expectLimit(
      thrown(() => sdeint(sde, small, [0, 1], { dt: 0.1, maxBytes: 1000 })),
      'options.maxBytes',
    );
    sde.dispose();
  });

  it('refuses an SdeBnn too large for config.maxBytes before anything is built (mlp inputShape [1e9])', () => {
    expectLimit(
      thrown(() => new SdeBnn({ kind: 'mlp', inputShape: [1e9] })),
      'config.maxBytes',
    );
    expectLimit(
      thrown(() => new SdeBnn({ kind: 'mlp', inputShape: [1e9], inputNormalization: { shift: 1 } })),
      'config.maxBytes',
    );
    expectLimit(
      thrown(() => new SdeBnn({ kind: 'conv', classes: 1e9 })),
      'config.maxBytes',
    );
    expectLimit(
      thrown(() => new SdeBnn({ ...mlp, hidden: [2 ** 31] })),
      'config.maxBytes',
    );
    expectLimit(
      thrown(() => new SdeBnn({ ...mlp, maxBytes: 1000 })),
      'config.maxBytes',
    );
  });

  it('refuses fixed steps over config.solver.maxSteps at construction, and stops adaptive ones natively', async () => {
    expectLimit(
      thrown(() => new SdeBnn({ ...mlp, solver: { steps: 1e9 } })),
      'config.solver.maxSteps',
    );
    expectLimit(
      thrown(() => new SdeBnn({ ...mlp, solver: { steps: 20, maxSteps: 10 } })),
      'config.solver.maxSteps',
    );
    expectLimit(
      thrown(() => new SdeBnn({ ...mlp, solver: { gradient: 'adjoint', adjointSteps: 1e7 } })),
      'config.solver.maxSteps',
    );
    const model = new SdeBnn({ ...mlp, dtype: 'float64', solver: { adaptive: true, rtol: 1e-12, atol: 1e-12, dtMin: 1e-12, maxSteps: 5 } });
    expectLimit(await model.trainStep(new Float64Array([0.5, -0.5]), [0.1]).catch((e: unknown) => e), 'config.solver.maxSteps');
    model.dispose();
  });

  it('refuses a call whose batch would allocate more than config.maxBytes (a strided batch of 1e9)', async () => {
    const model = new SdeBnn(mlp);
    const batch = { data: new Float32Array(2), shape: [1e9, 2], strides: [0, 1] };
    expectLimit(
      thrown(() => model.predict(batch)),
      'config.maxBytes',
    );
    expectLimit(
      thrown(() => model.trainStep(batch, new Float32Array(1))),
      'config.maxBytes',
    );
    const ok = await model.predict({ data: new Float32Array([0.5, 0.5]), shape: [8, 2], strides: [0, 1] }, { seed: 1 });
    expect(ok.kind).toBe('regression');
    model.dispose();
  });

  it('bounds BrownianInterval caches and selfTest matrices by options.maxBytes', () => {
    expectLimit(
      thrown(() => new BrownianInterval({ shape: [1e6, 100] })),
      'options.maxBytes',
    );
    expect(new BrownianInterval({ shape: [1e6, 100], cacheSize: 3, maxBytes: 2 ** 33 }).cacheSize).toBe(3);
    expectLimit(
      thrown(() => sdebnn.selfTest({ size: 1e5 })),
      'options.maxBytes',
    );
  });

  it("sizes a model as the native one is built: every block's weight dimension and the parameter count", () => {
    const configs = [
      mlp,
      { ...mlp, timeInput: true, blocks: 2, aug: 3, w0: { posterior: 'gaussian' as const }, learnScale: true, hypernet: { hidden: [5, 7] } },
      { ...mlp, likelihood: 'categorical' as const, classes: 3, head: 'linear' as const },
      { kind: 'conv' as const, inputShape: [1, 12, 12], stem: 4, width: 6, hypernet: { hidden: [4] }, classes: 3 },
      {
        kind: 'conv' as const,
        inputShape: [3, 8, 8],
        stem: false as const,
        aug: 1,
        blocks: [1, 2],
        width: [4, 5],
        pool: 'global' as const,
        hypernet: { hidden: [3] },
      },
    ];
    for (const config of configs) {
      const model = new SdeBnn(config);
      const size = modelSize(model.config);
      expect(size.blocks.flatMap((b) => new Array<number>(b.count).fill(b.size.wDim))).toEqual([...model.wDims]);
      expect(size.parameters).toBe(model.numParameters);
      model.dispose();
    }
  });
});

describe('nothing passes silently', () => {
  it('refuses a Brownian motion that does not fit the solve (dtype, shape, Levy area)', () => {
    const sde = neural();
    const f64 = new BrownianInterval({ shape: [4, 3], dtype: 'float64' });
    expect(() => sdeint(sde, y0(), [0, 1], { bm: f64 })).toThrow(
      new TypeError("Expected a BrownianInterval of dtype 'float32' (the SDE's) for options.bm but received 'float64'"),
    );
    expect(() => sdeint(sde, y0(), [0, 1], { bm: new BrownianInterval({ shape: [5, 3] }) })).toThrow(
      /Expected a BrownianInterval of shape \[4, 3\].*received \[5, 3\]/,
    );
    const ito = new SDE({ type: 'gbm', mu: [0.1], sigma: [0.2] });
    expect(() => sdeint(ito, y0(4, 1), [0, 1], { method: 'srk', bm: new BrownianInterval({ shape: [4, 1] }) })).toThrow(/levyArea: true/);
    sde.dispose();
  });

  it('refuses NaN and Infinity in y0, gradYs and SdeBnn inputs, naming the input and the element', async () => {
    const sde = neural();
    const bad = y0();
    bad.data[4] = NaN;
    expect(() => sdeint(sde, bad, [0, 1])).toThrow(new RangeError('Expected finite numbers for y0 but y0[1, 1] is NaN'));
    bad.data[4] = -Infinity;
    expect(() => sdeint(sde, bad, [0, 1])).toThrow(new RangeError('Expected finite numbers for y0 but y0[1, 1] is -Infinity'));
    // A strided view that skips the bad element is fine: only the elements it addresses count.
    const skip = { data: Float32Array.from([0.1, 0.2, 0.3, NaN]), shape: [2, 3], strides: [0, 1] };
    await expect(sdeint(sde, skip, [0, 1], { dt: 0.5 })).resolves.toMatchObject({ ys: { shape: [2, 2, 3] } });
    const gradYs = { data: new Float32Array(2 * 4 * 3), shape: [2, 4, 3] };
    gradYs.data[13] = NaN;
    expect(() => sdeintGradients(sde, y0(), [0, 1], gradYs)).toThrow(new RangeError('Expected finite numbers for gradYs but gradYs[1, 0, 1] is NaN'));
    sde.dispose();

    const model = new SdeBnn(mlp);
    expect(() => model.trainStep(Float32Array.from([0.1, Infinity]), [0.5])).toThrow(
      new RangeError('Expected finite numbers for inputs but inputs[0, 1] is Infinity'),
    );
    expect(() => model.predict(Float32Array.from([NaN, 0]))).toThrow(/inputs\[0, 0\] is NaN/);
    // With input normalisation the inputs are copied first; the message still names them.
    const scaled = new SdeBnn({ ...mlp, inputNormalization: { shift: 1, scale: 2 } });
    expect(() => scaled.predict(Float32Array.from([0, NaN]))).toThrow(/Expected finite numbers for inputs but inputs\[0, 1\] is NaN/);
    model.dispose();
    scaled.dispose();
  });

  it('names an integer typed array given as SdeBnn inputs or as a tensor (it used to report inputs.data as undefined)', () => {
    const model = new SdeBnn(mlp);
    expect(() => model.predict(new Int32Array(4) as never)).toThrow(
      new TypeError('Expected a Float32Array, a Float64Array or a tensor {data, shape} for inputs but received Int32Array of length 4'),
    );
    model.dispose();
    const sde = neural();
    expect(() => sdeint(sde, new Int32Array(6) as never, [0, 1])).toThrow(
      new TypeError('Expected a tensor {data: Float32Array | Float64Array, shape: number[]} for y0 but received Int32Array of length 6'),
    );
    expect(() => sdeint(sde, { data: new Int32Array(6), shape: [2, 3] } as never, [0, 1])).toThrow(
      new TypeError('Expected Float32Array or Float64Array for y0.data but received Int32Array of length 6'),
    );
    sde.dispose();
  });

  it('rejects a call whose onProgress throws, with that error, after the native work stopped at its next step', async () => {
    const sde = neural();
    const x = y0(64);
    // The Brownian tree grows with the times the solve has reached: it shows how far the solve went.
    const fullBm = new BrownianInterval({ shape: [64, 3], seed: 3 });
    await sdeint(sde, x, [0, 1], { dt: 1e-4, bm: fullBm });
    const full = fullBm.stats().nodes;
    const bm = new BrownianInterval({ shape: [64, 3], seed: 3 });
    const failure = new Error('stop here');
    let calls = 0;
    const error = await sdeint(sde, x, [0, 1], {
      dt: 1e-4,
      bm,
      onProgress: () => {
        calls++;
        throw failure;
      },
    }).catch((e: unknown) => e);
    expect(error).toBe(failure);
    expect(calls).toBe(1);
    expect(bm.stats().nodes).toBeLessThan(full / 2);
    sde.dispose(); // not busy: nothing runs on after the rejection

    const thrownValue = await sdebnn
      .selfTest({
        size: 8,
        iterations: 50,
        onProgress: () => {
          throw 'not an Error';
        },
      })
      .catch((e: unknown) => e);
    expect(thrownValue).toBe('not an Error');
  });

  it('rejects train() with the error an onStep or onEpoch callback throws', async () => {
    const data = regressionData(16);
    const model = new SdeBnn(mlp);
    const failure = new Error('from onStep');
    let steps = 0;
    await expect(
      train(
        model,
        { train: data },
        {
          epochs: 3,
          batchSize: 4,
          onStep: () => {
            steps++;
            throw failure;
          },
        },
      ),
    ).rejects.toBe(failure);
    expect(steps).toBe(1);
    await expect(
      train(
        model,
        { train: data },
        {
          epochs: 3,
          batchSize: 4,
          onEpoch: () => {
            throw failure;
          },
        },
      ),
    ).rejects.toBe(failure);
    model.dispose();
  });

  it('refuses train() with a batch larger than the training set (it used to resolve with 0 steps)', async () => {
    const model = new SdeBnn(mlp);
    await expect(train(model, { train: regressionData(10) }, { batchSize: 11 })).rejects.toThrow(
      new RangeError('Expected options.batchSize at most the 10 examples of data.train but received 11'),
    );
    model.dispose();
  });

  it('refuses to resume a run that has done the requested epochs (it used to resolve with steps NaN)', async () => {
    const file = path.join(tmp, 'done.safetensors');
    const model = new SdeBnn(mlp);
    const data = { train: regressionData(8) };
    const first = await train(model, data, { epochs: 2, batchSize: 4, checkpointFile: file });
    expect(first.steps).toBe(4);
    await expect(train(new SdeBnn(mlp), data, { epochs: 2, batchSize: 4, checkpointFile: file, resume: true })).rejects.toThrow(
      /Expected options\.epochs above the 2 epochs checkpoint .*done\.safetensors has done \(resume\) but received 2/,
    );
    const more = await train(new SdeBnn(mlp), data, { epochs: 3, batchSize: 4, checkpointFile: file, resume: true });
    expect(more.steps).toBe(6);
    expect(() => sdebnn.saveTrainingCheckpoint(file, model, { epoch: 1 } as never)).toThrow(/Expected an integer for position\.step but received undefined/);
    model.dispose();
  });

  it('refuses a training checkpoint whose epoch or step metadata is not a count, naming the file and the key', () => {
    const model = new SdeBnn(mlp);
    const file = path.join(tmp, 'meta.safetensors');
    const tensors = Object.fromEntries(Object.entries(model.getState()).map(([k, t]) => [k, { data: t.data, shape: t.shape }]));
    const meta = { format: 'sdebnn', version: '1', config: JSON.stringify(model.config), epoch: '2', step: '8' };
    for (const [key, value] of [
      ['epoch', 'abc'],
      ['step', 'NaN'],
      ['epoch', '-1'],
      ['step', '1.5'],
    ]) {
      sdebnn.saveCheckpoint(file, tensors, { ...meta, [key!]: value! });
      expect(() => sdebnn.readTrainingCheckpoint(file)).toThrow(
        new RegExp(`Checkpoint .*meta\\.safetensors: metadata ${key} is "${value!.replace('.', '\\.')}", expected a non-negative integer`),
      );
    }
    model.dispose();
  });
});

describe('errors name the right culprit', () => {
  it('checks a dataset against the model before training: input shape, labels against targets', async () => {
    const model = new SdeBnn(mlp);
    const wide = createDataset({ inputs: new Float32Array(30), inputShape: [3], targets: new Float32Array(10) });
    await expect(train(model, { train: wide })).rejects.toThrow(
      new RangeError("Expected data.train.inputShape [2] (the model's config.inputShape) but received [3]"),
    );
    const labels = createDataset({ inputs: new Float32Array(20), inputShape: [2], targets: new Uint8Array(10) });
    await expect(train(model, { train: labels })).rejects.toThrow(
      /Expected regression targets of shape \[1\].*for data\.train\.targets but received class labels/,
    );
    await expect(train(model, { train: regressionData(8), test: wide })).rejects.toThrow(/data\.test\.inputShape/);
    await expect(train(model, { train: { inputs: 'x' } as never })).rejects.toThrow(/data\.train\.inputs/);
    await expect(sdebnn.evaluate(model, wide)).rejects.toThrow(/dataset\.inputShape \[2\]/);
    await expect(sdebnn.evaluate(model, regressionData(4), null as never)).rejects.toThrow(new TypeError('Expected an object for options but received null'));
    await expect(sdebnn.evaluate(model, regressionData(4), { samples: 2 })).resolves.toHaveProperty('rmse');
    model.dispose();
  });

  it('names the file and the key of malformed JSON metadata in a training checkpoint', () => {
    const model = new SdeBnn(mlp);
    const file = path.join(tmp, 'json.safetensors');
    const tensors = Object.fromEntries(Object.entries(model.getState()).map(([k, t]) => [k, { data: t.data, shape: t.shape }]));
    sdebnn.saveCheckpoint(file, tensors, { format: 'sdebnn', version: '1', config: '{"kind": "mlp",', epoch: '0', step: '0' });
    let error: unknown = thrown(() => sdebnn.readTrainingCheckpoint(file));
    expect(error).toBeInstanceOf(sdebnn.DataFormatError);
    expect((error as Error).message).toMatch(/^Checkpoint .*json\.safetensors: metadata config is not valid JSON/);
    sdebnn.saveCheckpoint(file, tensors, { format: 'sdebnn', version: '1', config: '{}', iterator: '[1]', epoch: '0', step: '0' });
    error = thrown(() => sdebnn.readTrainingCheckpoint(file));
    expect((error as Error).message).toMatch(/json\.safetensors: metadata iterator is not a JSON object/);
    model.dispose();
  });
});

describe('checkpoint debris', () => {
  it('removes the temp file a killed writer left at the next save to that path, keeping the good checkpoint until then', () => {
    const file = path.join(tmp, 'killed', 'model.safetensors');
    fs.mkdirSync(path.dirname(file));
    const good = { w: { data: Float32Array.from([1, 2, 3]), shape: [3] } };
    sdebnn.saveCheckpoint(file, good, { run: 'good' });
    // A writer killed between writing its temp file and renaming it (SIGKILL from inside fsync).
    const child = spawnSync(process.execPath, [
      '-e',
      `
      const fs = require('node:fs');
      fs.fsyncSync = () => process.kill(process.pid, 'SIGKILL');
      require(${JSON.stringify(path.join(root, 'dist', 'index.js'))}).saveCheckpoint(${JSON.stringify(file)}, { w: { data: new Float32Array(1000), shape: [1000] } });
    `,
    ]);
    expect(child.signal).toBe('SIGKILL');
    const temps = () => fs.readdirSync(path.dirname(file)).filter((n) => n.endsWith('.tmp'));
    expect(temps()).toHaveLength(1);
    expect(temps()[0]).toMatch(new RegExp(`^\\.model\\.safetensors\\.${child.pid}\\.[0-9a-f]{8}\\.tmp$`));
    expect(sdebnn.loadCheckpoint(file).metadata.run).toBe('good'); // the kill destroyed nothing

    // A live writer's temp file (pid 1 always runs) and another path's are left alone.
    const liveTemp = '.model.safetensors.1.0badcafe.tmp';
    fs.writeFileSync(path.join(path.dirname(file), liveTemp), 'in progress');
    const otherTemp = `.other.safetensors.${child.pid}.deadbeef.tmp`;
    fs.writeFileSync(path.join(path.dirname(file), otherTemp), 'another path');

    sdebnn.saveCheckpoint(file, good, { run: 'next' });
    expect(temps().sort()).toEqual([liveTemp, otherTemp].sort());
    expect(sdebnn.loadCheckpoint(file).metadata.run).toBe('next');
  });
});

describe('command line', () => {
  it('refuses --train-limit 0 (it used to train on all 60,000 examples) and other non-counts', () => {
    for (const [flag, value] of [
      ['--train-limit', '0'],
      ['--test-limit', '2.5'],
      ['--train-limit', '-1'],
    ]) {
      const r = spawnSync(process.execPath, [path.join(root, 'dist', 'cli.js'), 'train', flag!, value!, '--out', path.join(tmp, 'cli')], { encoding: 'utf8' });
      expect(r.status).toBe(2); // a usage error
      expect(r.stderr).toContain(`Expected a positive integer for ${flag} but received '${value}'`);
    }
  });
});

function regressionData(n: number) {
  const inputs = new Float32Array(n * 2);
  const targets = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    inputs[2 * i] = Math.sin(i);
    inputs[2 * i + 1] = Math.cos(i);
    targets[i] = 0.5 * Math.sin(i);
  }
  return createDataset({ inputs, inputShape: [2], targets });
}
