// Small, fast fixtures for the evaluation and report tests: a two-class image task a tiny conv
// SDE-BNN learns in a few steps, and a fake corruption suite with the lib/shift interface.
import { sdebnn } from './helpers';

type Shape = readonly [number, number, number, number];

/** N images [1, 12, 12] in [0, 1]: class 1 has a bright left half. */
export function twoClassImages(n: number, seed: number) {
  const rng = new sdebnn.Random(seed);
  const inputs = new Float32Array(n * 144);
  const targets = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    targets[i] = i % 2;
    for (let p = 0; p < 144; p++) inputs[i * 144 + p] = Math.min(1, 0.4 * rng.uniform() + (targets[i] && p % 12 < 6 ? 0.6 : 0));
  }
  return sdebnn.createDataset({ inputs, inputShape: [1, 12, 12], targets, classes: 2 });
}

export const tinyConfig = {
  kind: 'conv' as const,
  inputShape: [1, 12, 12],
  classes: 2,
  stem: 4,
  width: 8,
  hypernet: { hidden: [8] },
  nTrain: 64,
  seed: 1,
  solver: { steps: 4 },
};

export async function tinyTrainedModel(options: { logFile?: string } = {}) {
  const model = new sdebnn.SdeBnn(tinyConfig);
  await sdebnn.train(model, { train: twoClassImages(64, 1) }, { epochs: 8, batchSize: 16, lr: 1e-2, evalEachEpoch: false, ...options });
  return model;
}

const corruption = (name: string, severities: number, f: (x: number, severity: number, i: number, seed: number) => number) => ({
  name,
  severities,
  source: 'test fixture',
  apply(images: Float32Array, shape: Shape, severity: number, seed: number): Float32Array {
    if (images.length !== shape[0] * shape[1] * shape[2] * shape[3]) throw new RangeError('shape does not match images');
    return Float32Array.from(images, (x, i) => Math.min(1, Math.max(0, f(x, severity, i, seed))));
  },
});

/** identity (1 severity), darken (3: x (1 - 0.3 s)), stripes (2: every (4 - s)th pixel set to 1). */
export function fakeSuite(severities: 'several' | 'one' = 'several') {
  const identity = corruption('identity', 1, (x) => x);
  if (severities === 'one') return { name: 'fake-c', corruptions: [identity, corruption('invert', 1, (x) => 1 - x)] };
  return {
    name: 'fake-c',
    corruptions: [identity, corruption('darken', 3, (x, s) => x * (1 - 0.3 * s)), corruption('stripes', 2, (x, s, i) => (i % (4 - s) === 0 ? 1 : x))],
  };
}
