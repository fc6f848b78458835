// A hypernetwork set to a constant drift g: the path KL is then exactly 1/2 ||g||^2 / sigma^2 for any
// step count and solver, a number the tests compute themselves.
import { sdebnn } from './helpers';

type Model = InstanceType<typeof sdebnn.SdeBnn>;
type Tensor = { data: Float32Array | Float64Array; shape: number[] };

export const ACTIVATIONS: Record<string, (v: number) => number> = {
  tanh: Math.tanh,
  softplus: (v) => (v > 20 ? v : Math.log1p(Math.exp(v))),
  relu: (v) => Math.max(0, v),
  sigmoid: (v) => 1 / (1 + Math.exp(-v)),
  identity: (v) => v,
};

/** A small LCG: fixed numbers in [-scale, scale] without depending on the library under test. */
export function seeded(n: number, seed: number, scale = 1): Float64Array {
  let s = seed >>> 0;
  return Float64Array.from({ length: n }, () => {
    s = (1664525 * s + 1013904223) >>> 0;
    return (s / 2 ** 32 - 0.5) * 2 * scale;
  });
}

/**
 * Gives every block's hypernetwork a constant output: the first layer's weights (on w and t) are
 * zero, so g = W_L act(... act(b_0)) + b_L whatever w_t and t are. Returns ||g||^2 per block,
 * computed here from the values the model holds (read back, so float32 rounding is included).
 */
export function setConstantDrift(model: Model, seed: number, gScale: number): number[] {
  const layers = model.config.hypernet.hidden.length + 1;
  const act = ACTIVATIONS[model.config.hypernet.activation]!;
  const update: Record<string, Tensor> = {};
  const state = model.getState();
  model.wDims.forEach((_, b) => {
    for (let l = 0; l < layers; l++) {
      for (const kind of ['weight', 'bias'] as const) {
        const name = `blocks.${b}.hypernet.${l}.${kind}`;
        const t = state[name]!;
        const fan = kind === 'weight' ? t.shape[1]! : 1;
        const data =
          l === 0 && kind === 'weight'
            ? new Float64Array(t.data.length)
            : seeded(t.data.length, 1000 * seed + 10 * b + l + (kind === 'bias' ? 5 : 0), l === layers - 1 ? gScale : 1 / Math.sqrt(fan));
        update[name] = { data, shape: t.shape };
      }
    }
  });
  model.setState(update, { strict: false });
  const held = model.getState();
  return model.wDims.map((_, b) => {
    let h = Array.from(held[`blocks.${b}.hypernet.0.bias`]!.data, act);
    for (let l = 1; l < layers; l++) {
      const w = held[`blocks.${b}.hypernet.${l}.weight`]!;
      const bias = held[`blocks.${b}.hypernet.${l}.bias`]!.data;
      const [rows, cols] = w.shape as [number, number];
      const next = Array.from({ length: rows }, (_, r) => {
        let acc = bias[r]!;
        for (let c = 0; c < cols; c++) acc += w.data[r * cols + c]! * h[c]!;
        return acc;
      });
      h = l === layers - 1 ? next : next.map(act);
    }
    return h.reduce((a, v) => a + v * v, 0);
  });
}
