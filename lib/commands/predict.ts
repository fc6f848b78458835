/**
 * `sdebnn predict`: one JSON object per input, the class, its probability and the predictive
 * entropy (classification), or the predictive mean and standard deviation (regression).
 */
import { readIdx } from '../data/idx';
import { MNIST_IMAGES_MAGIC } from '../data/mnist';
import { DeepEnsemble, loadModel } from '../ensemble';
import { predictiveEntropy } from '../metrics';
import { common, formatHelp, integer, list, number, option, parseFlags, text, UsageError } from './args';

const FLAGS = {
  checkpoint: option('FILE', text, 'the model (required)'),
  images: option('IDX_FILE', text, 'images to classify: an IDX image file (raw 0-255 pixels, the model normalises)'),
  limit: option('N', integer(1), 'only the first N images'),
  x: option('X1,X2,...', list(number(), 'numbers'), "inputs of a model with one input (the toy's x)"),
  samples: common.samples(8),
  seed: common.seed('Brownian streams'),
  device: common.device,
};

export const predictUsage = 'Usage: sdebnn predict --checkpoint FILE (--images IDX_FILE [--limit N] | --x X1,X2,...) [options]';

export async function predictCommand(argv: string[]): Promise<number> {
  const parsed = parseFlags('predict', argv, FLAGS);
  if (parsed.help) {
    console.log(
      formatHelp(
        `${predictUsage}\nPrints one JSON object per input: the class, its probability and the predictive entropy (classification),\nor the predictive mean and standard deviation (regression). A deep ensemble's --samples is a multiple of its K members (default K).`,
        FLAGS,
      ),
    );
    return 0;
  }
  const f = parsed.values;
  if (f.checkpoint === undefined) throw new UsageError(`Expected --checkpoint FILE for 'sdebnn predict' but received none`);
  if ((f.images === undefined) === (f.x === undefined)) {
    throw new UsageError(`Expected one of --images IDX_FILE or --x X1,X2,... for 'sdebnn predict' but received ${f.images === undefined ? 'neither' : 'both'}`);
  }
  if (f.limit !== undefined && f.images === undefined) throw new UsageError('Expected --limit only with --images but received it with --x');
  const inputs =
    f.images !== undefined
      ? Float32Array.from(readIdx(f.images, { magic: MNIST_IMAGES_MAGIC, ...(f.limit !== undefined ? { limit: f.limit } : {}) }).data, (v) => v / 255)
      : Float32Array.from(f.x!);
  const model = loadModel(f.checkpoint, f.device !== undefined ? { device: f.device } : {});
  try {
    const out = await model.predict(inputs, { samples: f.samples ?? (model instanceof DeepEnsemble ? model.size : 8), seed: f.seed ?? 0 });
    if (out.kind === 'categorical') {
      const [n, k] = out.shape;
      const entropy = predictiveEntropy({ data: out.probs, shape: [n, k] });
      for (let i = 0; i < n; i++) {
        const row = out.probs.subarray(i * k, (i + 1) * k);
        let best = 0;
        for (let c = 1; c < k; c++) if (row[c]! > row[best]!) best = c;
        console.log(JSON.stringify({ index: i, class: best, probability: +row[best]!.toFixed(6), entropy: +entropy[i]!.toFixed(6) }));
      }
    } else {
      for (let i = 0; i < out.mean.length; i++) {
        console.log(JSON.stringify({ index: i, x: inputs[i], mean: out.mean[i], std: out.std[i], noiseScale: out.noiseScale }));
      }
    }
  } finally {
    model.dispose();
  }
  return 0;
}
