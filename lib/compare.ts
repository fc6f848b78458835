/**
 * The comparison of models on one dataset (`sdebnn compare`): which models, how each is sized so
 * that all have about the SDE-BNN's parameter count, how each is evaluated, and one row of the
 * comparison table per model from its training summary and its evaluation (lib/evaluate.ts).
 */
import { BNN_MODELS, resolveSdeBnnConfig, type SdeBnnConfig } from './bnn-config';
import { modelSize } from './bnn-size';
import type { Evaluation } from './evaluate';
import { textTable } from './report/table';
import { describe, expectInteger, expectKnownKeys, expectNonNegative, expectObject, expectOneOf, expectPositiveInteger } from './validate';

/** What `sdebnn train --model` and `sdebnn compare --models` take: the SdeBnn models and a deep ensemble of resnets. */
export const COMPARED_MODELS = [...BNN_MODELS, 'ensemble'] as const;
/** One of COMPARED_MODELS. */
export type ComparedModel = (typeof COMPARED_MODELS)[number];

/** The models whose prediction is one deterministic function of the input (one path says all). */
const DETERMINISTIC: readonly ComparedModel[] = ['resnet', 'odenet'];

/**
 * The paths each model is evaluated with: `samples` weight paths for the stochastic ones
 * (sdebnn, mfvi-*), 1 for resnet and odenet (more would repeat it), one per member for an
 * ensemble of K.
 */
export function evaluationSamples(model: ComparedModel, samples: number, members: number): number {
  if (model === 'ensemble') return members;
  return DETERMINISTIC.includes(model) ? 1 : samples;
}

/** Whether the model has a deterministic (zero-noise) view distinct from its prediction: the stochastic models. */
export function hasDeterministicView(model: ComparedModel): boolean {
  return model !== 'ensemble' && !DETERMINISTIC.includes(model);
}

/** `base` (an SDE-BNN's config) made `model`'s: an ensemble's members are resnets; the weight SDE's settings (sigma, estimator, hypernet) are the SDE-BNN's only. */
export function configFor(base: SdeBnnConfig, model: ComparedModel): SdeBnnConfig {
  if (model === 'sdebnn') return { ...base, model };
  const { sigma: _sigma, estimator: _estimator, hypernet: _hypernet, ...blocks } = base;
  return { ...blocks, model: model === 'ensemble' ? 'resnet' : model };
}

/** The parameters of one model (an ensemble's member for 'ensemble') of `base` with block width `width`, from its config alone. */
export function parametersAt(base: SdeBnnConfig, model: ComparedModel, width: number): number {
  return modelSize(resolveSdeBnnConfig({ ...configFor(base, model), width })).parameters;
}

/** A model's block width and the parameters it gives (all members together for an ensemble). */
export interface ModelSizing {
  width: number;
  parameters: number;
  /** True where the width that would match the target is above maxWidth. */
  capped: boolean;
}

/**
 * The block width of each model for which its parameter count (an ensemble's: its K members')
 * is closest to the SDE-BNN's at `base` (a conv config; its width the SDE-BNN's), searched in
 * [1, maxWidth]. Most of an SDE-BNN's parameters are its hypernetwork's, so an ODE-net needs a
 * far wider block to match: maxWidth keeps its steps affordable, and `capped` says where it bit.
 */
export function sizeModels(base: SdeBnnConfig, models: readonly ComparedModel[], options: { members: number; maxWidth: number }): Record<string, ModelSizing> {
  const b = expectObject(base, 'base') as SdeBnnConfig;
  if (b.kind === 'mlp') throw new RangeError(`Expected a conv config for base (width sizes a conv block) but received kind 'mlp'`);
  const o = expectObject(options, 'options');
  expectKnownKeys(o, 'options', ['members', 'maxWidth']);
  const members = expectPositiveInteger(o.members, 'options.members');
  const maxWidth = expectPositiveInteger(o.maxWidth, 'options.maxWidth');
  const width = Array.isArray(b.width) ? b.width[0] : b.width;
  const target = parametersAt(b, 'sdebnn', expectPositiveInteger(width ?? 32, 'base.width'));
  const sizing: Record<string, ModelSizing> = {};
  for (const model of models) {
    const m = expectOneOf(model, 'models[]', COMPARED_MODELS);
    const k = m === 'ensemble' ? members : 1;
    const at = (w: number) => k * parametersAt(b, m, w);
    // The parameter count grows with the width: the first width at or above the target, or the one below it.
    let lo = 1;
    let hi = maxWidth;
    while (lo < hi) {
      const mid = Math.floor((lo + hi) / 2);
      if (at(mid) < target) lo = mid + 1;
      else hi = mid;
    }
    const best = lo > 1 && Math.abs(at(lo - 1) - target) <= Math.abs(at(lo) - target) ? lo - 1 : lo;
    sizing[m] = { width: best, parameters: at(best), capped: best === maxWidth && at(maxWidth) < target };
  }
  return sizing;
}

/** One model's line of the comparison: its size and training, and its evaluation's headline numbers. */
export interface ComparisonRow {
  model: ComparedModel;
  /** Block width (each member's for an ensemble) and learnable parameters (all members'). */
  width: number;
  parameters: number;
  /** Whether the width stopped at the sizing's maxWidth below the parameter count it aimed for. */
  capped: boolean;
  members?: number;
  /** Training steps (all members') and the seconds they took. */
  steps: number;
  trainSeconds: number;
  /** Prediction paths per image in the evaluation. */
  samples: number;
  accuracy: number;
  nll: number;
  ece: number;
  brier: number;
  /** OOD AUROC by predictive entropy and by mutual information, the mean over the OOD sets (null: none). */
  oodAurocEntropy: number | null;
  oodAurocMutualInformation: number | null;
  /** Mean over every corruption and severity (null: no shift suite). */
  corruptedAccuracy: number | null;
  corruptedEce: number | null;
  /** Clean test images per second of prediction at `samples` paths. */
  imagesPerSecond: number;
}

const mean = (values: number[]): number | null => (values.length === 0 ? null : values.reduce((a, b) => a + b, 0) / values.length);

/** The row of `model` from its sizing, its training summary and its evaluation. */
export function comparisonRow(
  model: ComparedModel,
  size: { width: number; parameters: number; capped: boolean; members?: number },
  training: { steps: number; trainSeconds: number },
  e: Evaluation,
): ComparisonRow {
  expectOneOf(model, 'model', COMPARED_MODELS);
  const t = expectObject(training, 'training');
  const shift = e.shift?.results ?? [];
  return {
    model,
    width: expectPositiveInteger(size.width, 'size.width'),
    parameters: expectPositiveInteger(size.parameters, 'size.parameters'),
    capped: size.capped === true,
    ...(size.members !== undefined ? { members: size.members } : {}),
    steps: expectInteger(t.steps, 'training.steps', 0),
    trainSeconds: expectNonNegative(t.trainSeconds, 'training.trainSeconds'),
    samples: e.samples,
    accuracy: e.clean.metrics.accuracy,
    nll: e.clean.metrics.nll,
    ece: e.clean.metrics.ece,
    brier: e.clean.metrics.brier,
    oodAurocEntropy: mean(e.ood.map((o) => o.scores.entropy.auroc)),
    oodAurocMutualInformation: mean(e.ood.map((o) => o.scores.mutualInformation.auroc)),
    corruptedAccuracy: mean(shift.map((r) => r.accuracy)),
    corruptedEce: mean(shift.map((r) => r.ece)),
    imagesPerSecond: e.clean.imagesPerSecond,
  };
}

const pct = (v: number | null) => (v === null || !Number.isFinite(v) ? '-' : `${(100 * v).toFixed(2)}%`);
const fixed = (v: number | null, d: number) => (v === null || !Number.isFinite(v) ? '-' : v.toFixed(d));

/** The comparison table's header and cells (the terminal's and the report's). */
export function comparisonCells(rows: readonly ComparisonRow[]): { head: string[]; cells: string[][] } {
  const given: unknown = rows;
  if (!Array.isArray(given)) throw new TypeError(`Expected an array of comparison rows for rows but received ${describe(rows)}`);
  const head = [
    'model',
    'width',
    'parameters',
    'steps',
    'S',
    'accuracy',
    'NLL',
    'ECE',
    'Brier',
    'OOD AUROC (entropy)',
    'OOD AUROC (MI)',
    'corrupted accuracy',
    'corrupted ECE',
    'images/s',
  ];
  const cells = rows.map((r) => [
    r.members !== undefined ? `${r.model} (${r.members})` : r.model,
    `${r.members !== undefined ? `${r.members} x ` : ''}${r.width}${r.capped ? ' (capped)' : ''}`,
    String(r.parameters),
    String(r.steps),
    String(r.samples),
    pct(r.accuracy),
    fixed(r.nll, 4),
    pct(r.ece),
    fixed(r.brier, 4),
    fixed(r.oodAurocEntropy, 3),
    fixed(r.oodAurocMutualInformation, 3),
    pct(r.corruptedAccuracy),
    pct(r.corruptedEce),
    r.imagesPerSecond.toFixed(0),
  ]);
  return { head, cells };
}

/** The comparison as a plain-text table for the terminal. */
export function formatComparison(rows: readonly ComparisonRow[]): string {
  const { head, cells } = comparisonCells(rows);
  return textTable(head, cells);
}
