// The deep ensemble (lib/ensemble.ts): its mixture against a hand computation from its members'
// own predictions, its save/load round trip (and that a failed write keeps the good file),
// training each member with its own seed, and bad input as typed errors.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { expectDataFormatError, sdebnn } from './helpers';

const { DeepEnsemble, SdeBnn } = sdebnn;
type Config = NonNullable<ConstructorParameters<typeof SdeBnn>[0]>;

// A tiny stochastic classifier: 4 features, 3 classes; sdebnn members, so every path differs.
const member: Config = {
  model: 'sdebnn',
  kind: 'mlp',
  inputShape: [4],
  likelihood: 'categorical',
  classes: 3,
  hidden: [8],
  hypernet: { hidden: [8] },
  sigma: 0.5,
  dtype: 'float64',
  seed: 11,
};
const B = 5;
const inputs = Float64Array.from({ length: B * 4 }, (_, i) => Math.sin(1.3 * i) * 2);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sdebnn-ensemble-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('DeepEnsemble', () => {
  it('predicts the equal mixture of its members: every path theirs, the mean over all paths', async () => {
    const ensemble = DeepEnsemble.create(member, { members: 3 });
    expect(ensemble.size).toBe(3);
    expect(ensemble.members.map((m) => m.config.seed)).toEqual([11, 12, 13]); // each its own initialisation
    expect(ensemble.numParameters).toBe(3 * ensemble.members[0]!.numParameters);
    const out = await ensemble.predict(inputs, { samples: 6, seed: 5, returnSamples: true });
    expect(out.shape).toEqual([B, 3]);
    expect(out.samplesShape).toEqual([6, B, 3]);
    // By hand: member m draws 2 paths from stream 5 * 3 + m; the mixture is the mean of all 6.
    const paths: number[][][] = []; // [path][example][class]
    for (let m = 0; m < 3; m++) {
      const own = await ensemble.members[m]!.predict(inputs, { samples: 2, seed: 15 + m, returnSamples: true });
      if (own.kind !== 'categorical') throw new Error('expected a classifier');
      for (let s = 0; s < 2; s++) paths.push(Array.from({ length: B }, (_, i) => Array.from(own.samples!.subarray((s * B + i) * 3, (s * B + i + 1) * 3))));
    }
    for (let s = 0; s < 6; s++) for (let i = 0; i < B; i++) for (let c = 0; c < 3; c++) expect(out.samples![(s * B + i) * 3 + c]).toBe(paths[s]![i]![c]);
    let spread = 0;
    for (let i = 0; i < B; i++) {
      for (let c = 0; c < 3; c++) {
        const expected = paths.reduce((a, p) => a + p[i]![c]!, 0) / 6;
        expect(Math.abs(out.probs[i * 3 + c]! - expected)).toBeLessThan(1e-12);
        spread = Math.max(spread, Math.abs(paths[0]![i]![c]! - paths[2]![i]![c]!));
      }
    }
    expect(spread).toBeGreaterThan(1e-3); // the members differ: the mixture is not one member's
    // Mutual information of the ensemble is the members' disagreement: positive here.
    const d = sdebnn.decomposeUncertainty({ data: out.samples!, shape: [6, B, 3] });
    expect(Math.min(...d.mutualInformation)).toBeGreaterThan(0);
    // The deterministic view: the mean of the members' zero-noise predictions, as one path.
    const det = await ensemble.predict(inputs, { deterministic: true, returnSamples: true });
    expect(det.samplesShape).toEqual([1, B, 3]);
    const views = await Promise.all(ensemble.members.map((m) => m.predict(inputs, { deterministic: true })));
    for (let j = 0; j < B * 3; j++) {
      const expected = views.reduce((sum, v) => sum + (v.kind === 'categorical' ? v.probs[j]! : NaN), 0) / 3;
      expect(Math.abs(det.probs[j]! - expected)).toBeLessThan(1e-12);
    }
    // By default one path per member; without a seed each member's own stream advances.
    expect((await ensemble.predict(inputs, { returnSamples: true })).samplesShape).toEqual([3, B, 3]);
    ensemble.dispose();
    expect(ensemble.disposed).toBe(true);
    expect(ensemble.members.every((m) => m.disposed)).toBe(true);
  });

  it('saves every member to one file and loads it back to the same predictions; a failed write keeps the previous file', async () => {
    const ensemble = DeepEnsemble.create(member, { members: 2 });
    await ensemble.members[0]!.trainStep(inputs, [0, 1, 2, 0, 1], { lr: 0.01 }); // members no longer at their initialisation
    const file = path.join(dir, 'ensemble.safetensors');
    ensemble.save(file);
    expect(sdebnn.isEnsembleCheckpoint(file)).toBe(true);
    const checkpoint = sdebnn.loadCheckpoint(file);
    expect(checkpoint.metadata.format).toBe('sdebnn-ensemble');
    expect(Object.keys(checkpoint.tensors).every((n) => /^member\.[01]\./.test(n))).toBe(true);
    const loaded = sdebnn.loadModel(file);
    expect(loaded).toBeInstanceOf(DeepEnsemble);
    if (!(loaded instanceof DeepEnsemble)) throw new Error('expected an ensemble');
    expect(loaded.members.map((m) => m.config)).toEqual(ensemble.members.map((m) => m.config));
    for (let m = 0; m < 2; m++) expect(loaded.members[m]!.getState()).toEqual(ensemble.members[m]!.getState());
    const a = await ensemble.predict(inputs, { samples: 4, seed: 9 });
    const b = await loaded.predict(inputs, { samples: 4, seed: 9 });
    expect(Array.from(b.probs)).toEqual(Array.from(a.probs));
    // A single model's checkpoint loads as an SdeBnn through the same loadModel.
    const single = path.join(dir, 'single.safetensors');
    ensemble.members[1]!.save(single);
    expect(sdebnn.isEnsembleCheckpoint(single)).toBe(false);
    const one = sdebnn.loadModel(single);
    expect(one).toBeInstanceOf(SdeBnn);
    one.dispose();
    // A write into a missing folder fails and leaves the good file as it was.
    const before = fs.readFileSync(file);
    expect(() => ensemble.save(path.join(dir, 'missing', 'ensemble.safetensors'))).toThrow(/Could not write checkpoint/);
    expect(fs.readFileSync(file).equals(before)).toBe(true);
    // A single model's file is no ensemble, and an ensemble's is no single model.
    expectDataFormatError(() => DeepEnsemble.load(single), 'is not a deep ensemble', 'format sdebnn');
    expect(() => SdeBnn.load(file)).toThrow(/not an sdebnn checkpoint/);
    ensemble.dispose();
    loaded.dispose();
  });

  it('trains each member with its own seed for its share of the time, and scores the mixture on the test set', async () => {
    const n = 40;
    const x = Float32Array.from({ length: n * 4 }, (_, i) => Math.cos(0.7 * i));
    const y = Uint8Array.from({ length: n }, (_, i) => i % 3);
    const data = sdebnn.createDataset({ inputs: x, inputShape: [4], targets: y, targetShape: [] });
    const ensemble = DeepEnsemble.create({ ...member, dtype: 'float32' }, { members: 2 });
    const result = await sdebnn.trainEnsemble(ensemble, { train: data, test: data }, { epochs: 3, batchSize: 20, seed: 4, evalSamples: 2 });
    expect(result.members.map((r) => r.steps)).toEqual([6, 6]);
    expect(result.steps).toBe(12);
    // The test metrics are the mixture's with 2 paths per member, each member on its streams seed + first index.
    const probs = await sdebnn.predictDataset(ensemble, data, { samples: 4 });
    if (probs.kind !== 'categorical') throw new Error('expected a classifier');
    expect(result.test).toEqual(sdebnn.classificationMetrics({ data: probs.probs, shape: [n, 3] }, y));
    // Member m shuffled with seed 4 + m: its own run of train() reproduces it.
    const alone = new SdeBnn({ ...member, dtype: 'float32', seed: 12 });
    const own = await sdebnn.train(alone, { train: data }, { epochs: 3, batchSize: 20, seed: 5, evalEachEpoch: false });
    expect(own.epochs.map((e) => e.loss)).toEqual(result.members[1]!.epochs.map((e) => e.loss));
    alone.dispose();
    ensemble.dispose();
  });

  it('refuses bad input with typed errors naming the argument', async () => {
    const ensemble = DeepEnsemble.create(member, { members: 2 });
    expect(() => ensemble.predict(inputs, { samples: 3 })).toThrow(
      new RangeError('Expected options.samples to be a multiple of the 2 members (an equal share of paths each) but received 3'),
    );
    expect(() => ensemble.predict(inputs, { deterministic: true, samples: 2 })).toThrow(RangeError);
    expect(() => ensemble.predict(inputs, { paths: 2 } as never)).toThrow(/paths/);
    expect(() => ensemble.predict(new Float64Array(3))).toThrow(/positive multiple of 4 values/); // member 0 checks the inputs, before native work
    expect(() => DeepEnsemble.create(member, { members: 0 })).toThrow(new RangeError('Expected positive integer for options.members but received 0'));
    expect(() => new DeepEnsemble([])).toThrow(TypeError);
    expect(() => new DeepEnsemble([ensemble.members[0]!, {} as never])).toThrow(new TypeError('Expected an SdeBnn for members[1] but received object'));
    const regressor = new SdeBnn({ kind: 'mlp', inputShape: [4], seed: 1 });
    expect(() => new DeepEnsemble([regressor])).toThrow(
      /Expected classifiers \(likelihood 'categorical'\) as members but members\[0\] has likelihood 'gaussian'/,
    );
    const wider = new SdeBnn({ ...member, classes: 4 });
    expect(() => new DeepEnsemble([ensemble.members[0]!, wider])).toThrow(/Expected members\[1\] to be a classifier of inputs \[4\] and 3 classes/);
    regressor.dispose();
    wider.dispose();
    const data = sdebnn.createDataset({ inputs: new Float32Array(80), inputShape: [4], targets: new Uint8Array(20), targetShape: [] });
    await expect(sdebnn.trainEnsemble(ensemble, { train: data }, { resume: true } as never)).rejects.toThrow(/Expected no options.resume for an ensemble/);
    expect(() => DeepEnsemble.load(path.join(dir, 'none.safetensors'))).toThrow(/does not exist/);
    ensemble.dispose();
  });
});
