// Shared by the SDE-BNN tests (bnn.test.ts, bnn-routes.test.ts): a 1D regression batch, a tiny
// float64 model, and reference computations done in the test (relative error, Adam).
import { sdebnn } from './helpers';
export const { SdeBnn } = sdebnn;
export type Config = NonNullable<ConstructorParameters<typeof SdeBnn>[0]>;
export type Tensor = { data: Float32Array | Float64Array; shape: number[] };

// 1D regression data: 16 points on [-1, 1], target cos(4x).
export const B = 16;
export const x1d = Float64Array.from({ length: B }, (_, i) => -1 + (2 * i) / (B - 1));
export const y1d = Float64Array.from(x1d, (v) => Math.cos(4 * v));
export const tiny: Config = { kind: 'mlp', dtype: 'float64', seed: 3, hidden: [16, 16], hypernet: { hidden: [16] }, sigma: 0.2 };

export function relativeError(a: Record<string, Tensor>, b: Record<string, Tensor>): number {
  let num = 0;
  let den = 0;
  for (const name of Object.keys(b)) {
    const p = a[name]!.data;
    const q = b[name]!.data;
    for (let i = 0; i < q.length; i++) {
      num += (p[i]! - q[i]!) ** 2;
      den += q[i]! ** 2;
    }
  }
  return Math.sqrt(num / den);
}

export function withEntries(state: Record<string, Tensor>, name: string, fill: (i: number) => number): Record<string, Tensor> {
  const t = state[name]!;
  const data = Float64Array.from(t.data, (_, i) => fill(i));
  return { [name]: { data, shape: t.shape } };
}

/**
 * PyTorch's Adam step on `grads` after clipping them to global norm `clip` (0: off), from the
 * parameters and moments in `before`; returns the expected and the actual (`after`) parameters and moments.
 */
export function adamStep(
  before: Record<string, Tensor>,
  after: Record<string, Tensor>,
  grads: Record<string, Tensor>,
  o: { lr: number; betas: [number, number]; eps: number; clip: number },
) {
  let sq = 0;
  for (const g of Object.values(grads)) for (const v of g.data) sq += v * v;
  const norm = Math.sqrt(sq);
  const coef = o.clip > 0 && norm > o.clip ? o.clip / (norm + 1e-6) : 1;
  const [b1, b2] = o.betas;
  const t = before['adam.step']!.data[0]! + 1;
  const bc1 = 1 - b1 ** t;
  const bc2 = 1 - b2 ** t;
  const expected: Record<string, Tensor> = {};
  const got: Record<string, Tensor> = {};
  for (const [name, g] of Object.entries(grads)) {
    const m = Float64Array.from(before[`adam.exp_avg.${name}`]!.data, (v, i) => b1 * v + (1 - b1) * coef * g.data[i]!);
    const v2 = Float64Array.from(before[`adam.exp_avg_sq.${name}`]!.data, (v, i) => b2 * v + (1 - b2) * (coef * g.data[i]!) ** 2);
    const p = Float64Array.from(before[name]!.data, (v, i) => v - (o.lr / bc1) * (m[i]! / (Math.sqrt(v2[i]!) / Math.sqrt(bc2) + o.eps)));
    for (const [key, val] of [
      [name, p],
      [`adam.exp_avg.${name}`, m],
      [`adam.exp_avg_sq.${name}`, v2],
    ] as const) {
      expected[key] = { data: val, shape: g.shape };
      got[key] = after[key]!;
    }
  }
  return { got, expected, norm };
}
