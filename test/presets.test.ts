// The preset table (lib/presets.ts): every preset resolves to a valid model, and the paper's
// presets hold the published configuration of the authors' JAX code (docs/presets.md), checked
// value by value and through the model they build (its weight sizes and parameter count, computed
// here by hand from the shapes).
import { describe, expect, it } from 'vitest';
import { sdebnn } from './helpers';

const { PRESETS, PRESET_NAMES } = require('../dist/presets.js') as typeof import('../dist/presets');

/** One block's conv weights: conv3x3(cat[h, t] C+1 -> width) and conv3x3(cat[., t] width+1 -> C), with biases. */
const blockWeights = (channels: number, width: number) => (channels + 1) * width * 9 + width + (width + 1) * channels * 9 + channels;

describe('presets', () => {
  it('resolve to valid models, each with its data, and are listed in the table order', () => {
    expect(PRESET_NAMES).toEqual(['mnist', 'cifar10', 'toy', 'paper-mnist', 'paper-cifar10']);
    for (const name of PRESET_NAMES) {
      const { model, training, data } = PRESETS[name];
      const config = sdebnn.resolveSdeBnnConfig({ ...model, nTrain: 1000, beta: training.beta, optimizer: { lr: training.lr, clip: training.clip } });
      expect(config.inputShape, name).toEqual(model.inputShape);
      expect(data, name).toBe(config.kind === 'mlp' ? 'toy' : config.inputShape[0] === 3 ? 'cifar10' : 'mnist');
    }
  });

  it("paper-cifar10 holds the JAX code's flags: --aug 2 --nblocks 2-2-2 --fx_dim 64 --fw_dims 2-64-2 --diff_coef 0.2 --nsteps 20", () => {
    const p = PRESETS['paper-cifar10'];
    expect(p.data).toBe('cifar10');
    expect(p.model).toMatchObject({
      kind: 'conv',
      inputShape: [3, 32, 32],
      stem: false,
      aug: 2,
      blocks: [2, 2, 2],
      width: 64,
      convActivation: 'softplus',
      pool: 1,
      hypernet: { hidden: [2, 64, 2], activation: 'softplus' },
      sigma: 0.2,
      solver: { method: 'euler', steps: 20 },
      inputNormalization: { shift: [0.4914, 0.4822, 0.4465], scale: [0.2023, 0.1994, 0.201] },
    });
    expect(p.training).toMatchObject({ batchSize: 128, lr: 1e-3, beta: 1e-3, betaWarmup: 0, ema: 0.999, clip: 0, augment: true, epochs: 300 });
    // The MNIST preset is the same family: the same model on 1x28x28, no crops or flips.
    const m = PRESETS['paper-mnist'];
    const { inputShape: _a, inputNormalization: _b, ...family } = p.model;
    expect(m.model).toMatchObject({ ...family, inputShape: [1, 28, 28] });
    expect(m.training).toEqual({ ...p.training, augment: false });
  });

  it('builds the paper-cifar10 model with the weight sizes and parameter count computed from its shapes', () => {
    const { model: m } = PRESETS['paper-cifar10'];
    const bnn = new sdebnn.SdeBnn({ ...m, nTrain: 50000, seed: 3 });
    try {
      // Channels: 3 + aug 2 = 5, then x4 at each space-to-depth: 20, 80; width 64 throughout.
      const w = [5, 5, 20, 20, 80, 80].map((c) => blockWeights(c, 64));
      expect(w).toEqual([6450, 6450, 23880, 23880, 93600, 93600]);
      expect(bnn.wDims).toEqual(w);
      // Per block: w_0 (w), the hypernetwork [w, t] -> 2 -> 64 -> 2 -> w with biases; the head Linear(80 * 8 * 8, 10).
      const hypernet = (n: number) => (n + 1) * 2 + 2 + (2 * 64 + 64) + (64 * 2 + 2) + (2 * n + n);
      const expected = w.reduce((sum, n) => sum + n + hypernet(n), 0) + 80 * 8 * 8 * 10 + 10;
      expect(bnn.numParameters).toBe(expected);
    } finally {
      bnn.dispose();
    }
  });
});
