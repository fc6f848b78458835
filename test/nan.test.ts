// NaN and infinities through the engine's own kernels (issue 13): each hand-written activation
// (value and slope) gives what LibTorch's op gives on NaN, +-Infinity and extremes; and NaN
// inside a solve is a NumericalError on every kernel route ('fast', 'fused', 'autograd') in
// float32 and float64, where the float32 fused tanh used to turn it into finite numbers.
import { describe, expect, it } from 'vitest';
import { native, sdebnn } from './helpers';

const { SDE, sdeint, sdeintGradients, SdeBnn, NumericalError } = sdebnn;
type Tensor = import('../dist/tensor').Tensor;
type Activation = 'tanh' | 'softplus' | 'relu' | 'sigmoid';
const ACTIVATIONS: Activation[] = ['tanh', 'softplus', 'relu', 'sigmoid'];
const DTYPES = ['float32', 'float64'] as const;

const SPECIALS = [NaN, Infinity, -Infinity, 0, 1e30, -1e30, 3.5e38, -3.5e38, 104, -104, 88.7, -88.7, 20, 20.5, -20.5, 7.9, -7.9, 1.5, -0.25];

function values(dtype: (typeof DTYPES)[number]): Tensor {
  const data = dtype === 'float64' ? Float64Array.from(SPECIALS) : Float32Array.from(SPECIALS);
  return { data, shape: [data.length] };
}

/** Same NaN-ness and infinities; finite values within rel (or abs near 0). */
function expectSame(got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what: string): void {
  for (let i = 0; i < want.length; i++) {
    const g = got[i]!,
      w = want[i]!,
      where = `${what} at ${SPECIALS[i]}`;
    if (Number.isNaN(w) || !Number.isFinite(w)) {
      expect(g, where).toBe(w); // toBe: Object.is, so NaN matches NaN only
    } else {
      expect(Number.isFinite(g), where).toBe(true);
      expect(Math.abs(g - w), where).toBeLessThanOrEqual(tol * Math.max(1, Math.abs(w)));
    }
  }
}

describe("the engine's elementwise kernels on NaN, infinities and extremes, against LibTorch's ops", () => {
  for (const dtype of DTYPES) {
    // Finite values: float32 to the kernels' documented accuracy; float64 to 3e-9, since the engine's
    // softplus slope is sigmoid(z) also above LibTorch's threshold of 20 (where LibTorch's is 1).
    const tol = dtype === 'float32' ? 4e-6 : 3e-9;
    it(`sde tanh (${dtype}; float32 is the vectorised rational approximation)`, () => {
      const out = native().elementwise(values(dtype), 'tanh');
      expectSame(out.data, native().elementwise(values(dtype), 'aten.tanh').value.data, tol, 'tanh');
      expect(out.data[0]).toBeNaN();
    });
    for (const route of ['fast', 'conv'] as const) {
      for (const act of ACTIVATIONS) {
        it(`${route} ${act} value and slope (${dtype})`, () => {
          const got = native().elementwise(values(dtype), `${route}.${act}`);
          const ref = native().elementwise(values(dtype), `aten.${act}`);
          expectSame(got.value.data, ref.value.data, tol, `${route}.${act} value`);
          expectSame(got.slope.data, ref.slope.data, tol, `${route}.${act} slope`);
          expect(got.value.data[0], 'NaN in, NaN out').toBeNaN();
        });
      }
    }
  }
});

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    (value) => ({ resolved: value }),
    (error: unknown) => error,
  );
}

describe('NaN inside a solve is a NumericalError on every route and dtype', () => {
  for (const dtype of DTYPES) {
    for (const kernels of ['fast', 'fused', 'autograd'] as const) {
      // Diagonal and additive noise: with 'fast', the buffered solver runs the solve and backprop for
      // both, and the Euler adjoint for additive noise.
      it(`neural SDE with NaN drift weights: sdeint, backprop and adjoint (${kernels}, ${dtype}, every activation and noise)`, async () => {
        for (const [activation, noiseType] of ACTIVATIONS.flatMap((a) => (['diagonal', 'additive'] as const).map((n) => [a, n] as const))) {
          const sde = new SDE({ type: 'neural', d: 3, noiseType, drift: { hidden: [8], activation }, dtype, kernels, seed: 2 });
          for (const [name, p] of Object.entries(sde.parameters())) {
            if (!name.startsWith('drift.')) continue;
            const data = dtype === 'float64' ? new Float64Array(p.data.length).fill(NaN) : new Float32Array(p.data.length).fill(NaN);
            sde.setParameter(name, { data, shape: p.shape });
          }
          const Arr = dtype === 'float64' ? Float64Array : Float32Array;
          const y0 = { data: new Arr(12).fill(0.3), shape: [4, 3] };
          const gradYs = { data: new Arr(24).fill(1), shape: [2, 4, 3] };
          const what = `${activation}, ${noiseType}, ${kernels}, ${dtype}`;
          expect(await rejection(sdeint(sde, y0, [0, 1], { dt: 0.1 })), what).toBeInstanceOf(NumericalError);
          expect(await rejection(sdeintGradients(sde, y0, [0, 1], gradYs, { dt: 0.1 })), what).toBeInstanceOf(NumericalError);
          expect(await rejection(sdeintGradients(sde, y0, [0, 1], gradYs, { dt: 0.1, adjoint: true })), what).toBeInstanceOf(NumericalError);
          sde.dispose();
        }
      });
    }
  }

  // setState refuses non-finite values, so the NaN is made inside: dynamics weights of alternating
  // sign too large for the dtype overflow the hidden state to +-Infinity, and the next layer's sums
  // of +-Infinity to NaN. That needs an unbounded activation (relu, softplus) in the dynamics: with a
  // bounded one, whether an overflow becomes NaN depends on the arithmetic (with fused multiply-adds,
  // as BLAS has them, a sum passes +Infinity where separate products make Infinity - Infinity), so
  // routes may then legitimately differ; the kernels' own NaN semantics are held to LibTorch above.
  const big = { float32: 1e30, float64: 1e200 };
  const models = {
    mlp: (activation: Activation, hyper: Activation) => ({
      kind: 'mlp' as const,
      inputShape: [2],
      hidden: [8],
      activation,
      hypernet: { hidden: [8], activation: hyper },
      solver: { steps: 4 },
    }),
    conv: (activation: Activation, hyper: Activation) => ({
      kind: 'conv' as const,
      inputShape: [1, 6, 6],
      stem: 2,
      width: 4,
      convActivation: activation,
      hypernet: { hidden: [4], activation: hyper },
      classes: 3,
      solver: { steps: 3 },
    }),
  };
  for (const dtype of DTYPES) {
    for (const kernels of ['fast', 'fused', 'autograd'] as const) {
      it(`SDE-BNN whose weights overflow to NaN: trainStep and predict (${kernels}, ${dtype}, mlp and conv, relu and softplus dynamics, every hypernetwork activation)`, async () => {
        for (const [kind, make] of Object.entries(models)) {
          for (const [activation, hyper] of (['relu', 'softplus'] as const).flatMap((a) => ACTIVATIONS.map((h) => [a, h] as const))) {
            const model = new SdeBnn({ ...make(activation, hyper), dtype, kernels, seed: 1 });
            const state = model.getState();
            const w0 = state['blocks.0.w0']!;
            for (let i = 0; i < w0.data.length; i++) w0.data[i] = (i % 2 ? -1 : 1) * big[dtype];
            model.setState(state);
            const Arr = dtype === 'float64' ? Float64Array : Float32Array;
            const per = kind === 'mlp' ? 2 : 36;
            const x = Arr.from({ length: 4 * per }, (_, i) => Math.sin(i));
            const y = kind === 'mlp' ? Arr.from([0.1, 0.2, 0.3, 0.4]) : [0, 1, 2, 0];
            const what = `${kind} ${activation} (hypernetwork ${hyper}), ${kernels}, ${dtype}`;
            expect(await rejection(model.trainStep(x, y)), what).toBeInstanceOf(NumericalError);
            expect(await rejection(model.predict(x, { samples: 2 })), what).toBeInstanceOf(NumericalError);
            model.dispose();
          }
        }
      });
    }
  }
});
