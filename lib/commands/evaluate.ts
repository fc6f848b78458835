/**
 * What `sdebnn eval` and `sdebnn report` do once their flags are parsed (lib/cli.ts parses):
 * the uncertainty evaluation of a classifier (evaluate.ts) printed as a table, written as JSON
 * and as the HTML report, or for a regressor its metrics and predictive band.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { SdeBnn } from '../bnn';
import type { Dataset } from '../data/dataset';
import { fashionMnistAvailable, FASHION_MNIST_DIR, loadOodImages, type OodImages } from '../data/ood';
import { toyGrid } from '../data/toy';
import { evaluateUncertainty, type Evaluation, type EvaluationProgress, type ShiftSuiteLike } from '../evaluate';
import { predictDataset } from '../predict';
import { readTrainingLog, writeReport, type RegressionBand, type ReportInput } from '../report/page';
import { formatEvaluation } from '../report/table';
import { corruptions, SHIFT_SUITES, type ShiftSuite } from '../shift';
import { evaluate } from '../train';

export interface EvalCommandOptions {
  /** The checkpoint evaluated: named in the report; its folder's log.jsonl gives the training curves. */
  checkpoint: string;
  samples: number;
  seed: number;
  batchSize?: number;
  bins: number;
  /** OOD sets (see loadOodImages), or ['auto']: Fashion-MNIST where installed and uniform noise for MNIST-shaped models, noise otherwise. */
  ood: string[];
  /** A shift suite name, 'none', or 'auto' (mnist-c for [1, 28, 28] inputs, cifar10-c for [3, 32, 32]). */
  shift: string;
  shiftLimit?: number;
  deterministic: boolean;
  json?: string;
  report?: string;
  /** A regressor's training data, drawn with its predictive band in the report. */
  train?: Dataset;
  progress: boolean;
}

function resolveOod(model: SdeBnn, names: string[], seed: number, count: number, notes: string[]): OodImages[] {
  const inputShape = model.config.inputShape;
  const mnistShaped = inputShape.join(',') === '1,28,28';
  let list = names;
  if (names.length === 1 && names[0] === 'auto') {
    list = ['noise'];
    if (mnistShaped) {
      if (fashionMnistAvailable()) list = ['fashion-mnist', 'noise'];
      else notes.push(`Fashion-MNIST is not installed in ${FASHION_MNIST_DIR} (apt-get install dataset-fashion-mnist as root); OOD uses noise only`);
    }
  }
  return list.filter((n) => n !== 'none').map((n) => loadOodImages(n, { inputShape, seed, ...(n === 'noise' || n === 'constant' ? { limit: count } : {}) }));
}

/** The corruption suite (lib/shift) of --shift: a name, 'none', or 'auto' (the suite whose images fit the model, if any). */
function resolveShift(model: SdeBnn, name: string): ShiftSuiteLike | undefined {
  if (name === 'none') return undefined;
  const shape = model.config.inputShape.join(',');
  const fits = (suite: ShiftSuite) => corruptions(suite)[0]!.imageShape.join(',') === shape;
  if (name === 'auto') {
    const suite = SHIFT_SUITES.find(fits);
    return suite ? { name: suite, corruptions: corruptions(suite) } : undefined;
  }
  if (!(SHIFT_SUITES as readonly string[]).includes(name)) {
    throw new RangeError(`Expected ${SHIFT_SUITES.map((s) => `'${s}'`).join(', ')}, 'none' or 'auto' for --shift but received '${name}'`);
  }
  if (!fits(name as ShiftSuite)) {
    throw new RangeError(`The ${name} corruptions take images [${corruptions(name as ShiftSuite)[0]!.imageShape.join(', ')}] but the model takes [${model.config.inputShape.join(', ')}]`);
  }
  return { name, corruptions: corruptions(name as ShiftSuite) };
}

/** A progress line per stage on stderr (updated in place on a terminal), with the stage's time. */
function progressReporter(enabled: boolean): (p: EvaluationProgress) => void {
  let stageStart = Date.now(); // stages run back to back: each starts when the previous one ends
  return (p) => {
    if (enabled) process.stderr.write(`\r${p.stage}: ${p.done}/${p.total}\x1b[K`);
    if (p.done === p.total) {
      const line = `${p.stage}: ${p.total} images in ${((Date.now() - stageStart) / 1000).toFixed(1)} s`;
      process.stderr.write(enabled ? `\r${line}\x1b[K\n` : `${line}\n`);
      stageStart = Date.now();
    }
  };
}

/** The predictive band of a 1D regressor on a grid around its data, with S = 64 paths. */
async function regressionBand(model: SdeBnn, train: Dataset, seed: number): Promise<RegressionBand> {
  let lo = Infinity;
  let hi = -Infinity;
  for (const x of train.inputs) {
    lo = Math.min(lo, x);
    hi = Math.max(hi, x);
  }
  const pad = 0.25 * (hi - lo || 1);
  const grid = toyGrid({ min: lo - pad, max: hi + pad, count: 161 });
  const out = await predictDataset(model, grid, { samples: 64, seed });
  if (out.kind !== 'regression') throw new Error('expected a regression prediction');
  return {
    x: Array.from(grid),
    mean: Array.from(out.mean),
    std: Array.from(out.std, (s) => Math.sqrt(s * s + out.noiseScale * out.noiseScale)),
    data: Array.from(train.inputs, (x, i): [number, number] => [x, train.targets[i]!]),
  };
}

/** Runs the evaluation, prints it, and writes the JSON and the report as asked. */
export async function evalCommand(model: SdeBnn, test: Dataset, o: EvalCommandOptions): Promise<void> {
  const notes = [`checkpoint ${path.resolve(o.checkpoint)}`, `model: ${model.config.kind}, input [${model.config.inputShape.join(', ')}], ${model.numParameters} parameters, sigma ${model.config.sigma}`];
  const log = path.join(path.dirname(o.checkpoint), 'log.jsonl');
  const report: ReportInput = { title: `SDE-BNN evaluation: ${path.basename(path.dirname(path.resolve(o.checkpoint)))}`, notes };
  if (fs.existsSync(log)) report.training = readTrainingLog(log);
  let result: object; // what --json writes
  if (model.config.likelihood === 'categorical') {
    const ood = resolveOod(model, o.ood, o.seed, test.length, notes);
    const shift = resolveShift(model, o.shift);
    const evaluation = await evaluateUncertainty(model, test, {
      samples: o.samples, seed: o.seed, bins: o.bins, deterministic: o.deterministic,
      ...(o.batchSize ? { batchSize: o.batchSize } : {}),
      ...(shift ? { shift } : {}),
      ...(o.shiftLimit ? { shiftLimit: o.shiftLimit } : {}),
      ood,
      onProgress: progressReporter(o.progress),
    });
    for (const n of notes.slice(2)) console.log(`note: ${n}`);
    console.log(formatEvaluation(evaluation));
    report.evaluation = evaluation;
    result = evaluation;
  } else {
    const metrics = await evaluate(model, test, { samples: o.samples, seed: o.seed });
    result = { kind: 'regression', examples: test.length, samples: o.samples, nll: metrics.nll, ...('rmse' in metrics ? { rmse: metrics.rmse } : {}) };
    console.log(JSON.stringify(result));
    if (o.train && model.config.inputShape.length === 1 && model.config.inputShape[0] === 1 && model.config.outputs === 1) {
      report.regression = await regressionBand(model, o.train, o.seed);
    }
  }
  if (o.json) {
    fs.mkdirSync(path.dirname(path.resolve(o.json)), { recursive: true });
    fs.writeFileSync(o.json, `${JSON.stringify(result)}\n`);
    console.log(`evaluation ${o.json}`);
  }
  if (o.report) {
    writeReport(o.report, report);
    console.log(`report ${o.report}`);
  }
}

/**
 * `sdebnn report RUN_DIR`: the report of a training run from its evaluation.json (written by a
 * previous eval) when `reuse` and it exists, else a fresh evaluation (saved to evaluation.json).
 */
export async function reportCommand(model: SdeBnn, test: Dataset, runDir: string, o: Omit<EvalCommandOptions, 'checkpoint' | 'json' | 'report'> & { out: string; reuse: boolean }): Promise<void> {
  const checkpoint = path.join(runDir, 'model.safetensors');
  const saved = path.join(runDir, 'evaluation.json');
  if (o.reuse && model.config.likelihood === 'categorical' && fs.existsSync(saved)) {
    const evaluation = JSON.parse(fs.readFileSync(saved, 'utf8')) as Evaluation;
    const log = path.join(runDir, 'log.jsonl');
    writeReport(o.out, {
      title: `SDE-BNN evaluation: ${path.basename(path.resolve(runDir))}`,
      notes: [`checkpoint ${path.resolve(checkpoint)}`, `evaluation read from ${path.resolve(saved)}`],
      evaluation,
      ...(fs.existsSync(log) ? { training: readTrainingLog(log) } : {}),
    });
    console.log(`report ${o.out}`);
    return;
  }
  await evalCommand(model, test, { ...o, checkpoint, json: saved, report: o.out });
}
