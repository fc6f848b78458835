/**
 * The sizes of an SDE-BNN, from its resolved config, as native/bnn builds the model: each block's
 * weight-SDE dimension, hidden-state and activation sizes per example, and the parameter count.
 * They give the bytes a model and each of its calls allocate, checked against config.maxBytes
 * before anything native is allocated (test/bad-input.test.ts compares them with the native model).
 */
import type { ResolvedSdeBnnConfig } from './bnn-config';
import { checkBytes, linearParameters } from './limits';

type SizeConfig = Pick<
  ResolvedSdeBnnConfig,
  | 'model'
  | 'kind'
  | 'inputShape'
  | 'aug'
  | 'hidden'
  | 'timeInput'
  | 'head'
  | 'blocks'
  | 'stem'
  | 'width'
  | 'pool'
  | 'likelihood'
  | 'classes'
  | 'outputs'
  | 'learnScale'
  | 'hypernet'
  | 'w0'
  | 'optimizer'
  | 'dtype'
  | 'solver'
  | 'maxBytes'
>;

export interface BlockSize {
  /** The weight SDE's dimension. */
  wDim: number;
  /** The block's hidden state per example, in its solver layout (conv: zero-bordered maps). */
  state: number;
  /** What one drift evaluation computes per example besides the state (hidden activations). */
  activations: number;
}

export interface ModelSize {
  /** The blocks, as runs of `count` identical ones (a conv stage; the mlp's blocks), so a huge count costs nothing to size. */
  blocks: { count: number; size: BlockSize }[];
  /** Learnable scalars: w_0 (and its rho), hypernetworks, stem, head, likelihood scale. */
  parameters: number;
  /** Values one hypernetwork evaluation keeps (hidden pre-activations and activations; per evaluation, not per example). */
  hyperActivations: number;
  /** Values per example that the stem computes (conv), before the blocks. */
  stem: number;
}

const sum = (values: readonly number[]) => values.reduce((a, b) => a + b, 0);

export function modelSize(c: SizeConfig): ModelSize {
  const blocks: ModelSize['blocks'] = [];
  let parameters = 0;
  let stem = 0;
  let feature: number;
  const layers = c.model === 'resnet' || c.model === 'mfvi-resnet' ? c.solver.steps : 1; // a resnet's w: its layers' weights
  const outputs = c.likelihood === 'categorical' ? c.classes : c.outputs;
  if (c.kind === 'conv') {
    let [C, H, W] = c.inputShape as [number, number, number];
    if (c.stem !== false) {
      parameters += c.stem * C * 9 + c.stem;
      C = c.stem;
      H = Math.floor((H - 1) / 2) + 1;
      W = Math.floor((W - 1) / 2) + 1;
      stem = C * H * W;
    }
    C += c.aug;
    c.blocks.forEach((count, s) => {
      if (s > 0) {
        C *= 4;
        H = Math.floor(H / 2);
        W = Math.floor(W / 2);
      }
      const width = c.width[s]!;
      const padded = (H + 2) * (W + 2);
      blocks.push({
        count: count * layers,
        size: { wDim: width * (C + 1) * 9 + width + C * (width + 1) * 9 + C, state: C * padded, activations: (width + 1) * padded },
      });
    });
    feature = c.pool === 'global' ? C : C * Math.floor(H / c.pool) * Math.floor(W / c.pool);
  } else {
    const d = c.inputShape[0]! + c.aug;
    const wDim = layers * linearParameters([d, ...c.hidden, d], c.timeInput ? 1 : 0);
    blocks.push({ count: c.blocks[0]!, size: { wDim, state: d, activations: 2 * sum(c.hidden) } });
    feature = c.head === 'last' ? 0 : d;
  }
  for (const { count, size: b } of blocks) {
    const hypernet = c.hypernet === null ? 0 : linearParameters([b.wDim + 1, ...c.hypernet.hidden, b.wDim]);
    parameters += count * (b.wDim * (c.w0.posterior === 'gaussian' ? 2 : 1) + hypernet);
  }
  if (feature > 0) parameters += outputs * feature + outputs;
  if (c.likelihood !== 'categorical' && c.learnScale) parameters += 1;
  return { blocks, parameters, hyperActivations: c.hypernet === null ? 0 : 2 * sum(c.hypernet.hidden), stem };
}

function itemBytes(c: SizeConfig): number {
  return c.dtype === 'float64' ? 8 : 4;
}

/** Parameters, their gradients, Adam's two moments and the EMA. */
export function checkModelBytes(c: SizeConfig): ModelSize {
  const size = modelSize(c);
  const copies = 4 + (c.optimizer.ema > 0 ? 1 : 0);
  checkBytes(size.parameters * copies * itemBytes(c), c.maxBytes, 'config.maxBytes', `An SdeBnn with ${size.parameters} parameters`);
  return size;
}

/**
 * One call on a batch (`training`: with gradients): the inputs, the stem, and per block its
 * solver's working states (8 copies of the state and activations, w and dW, the hypernetwork's
 * values) plus, for backprop through the solver, one such record per step (the adjoint: 8 more).
 * An estimate of the dominant terms, not an exact count.
 */
export function checkCallBytes(c: SizeConfig, size: ModelSize, call: { batch: number; training: boolean }, what: string): void {
  const { batch } = call;
  const backprop = call.training && c.solver.gradient === 'backprop';
  const stored = 8 + (backprop ? c.solver.steps : c.solver.gradient === 'adjoint' && call.training ? 8 : 0);
  let values = batch * c.inputShape.reduce((a, b) => a * b, 1) + 2 * batch * size.stem;
  for (const { count, size: b } of size.blocks) values += count * stored * (batch * (b.state + b.activations) + 2 * b.wDim + size.hyperActivations);
  checkBytes(values * itemBytes(c), c.maxBytes, 'config.maxBytes', what);
}
