// Malformed calls of the public API for test/property.test.ts: each case starts from a valid call
// of one entry point and replaces one or two parts of its arguments (a field, an array element, a
// whole tensor or options object) with a bad value, or adds an option the call does not know.
// Values that only ask for more work or raise a limit (epochs: 1e9, maxSteps: 2 ** 53) are not
// malformed: the user asked for them, so they are left out of the pools for those fields.
import fc from 'fast-check';

export interface Case {
  api: string;
  args: unknown[];
  /** What was replaced, for the failure report. */
  mutations: { path: (string | number)[]; value: unknown }[];
}

const f32 = (...v: number[]) => Float32Array.from(v);
const f64 = (...v: number[]) => Float64Array.from(v);

/** A safetensors file of one F32 tensor, built by hand (the parser's valid input). */
function checkpointBytes(): Uint8Array {
  const header = JSON.stringify({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }).padEnd(64, ' ');
  const bytes = new Uint8Array(8 + 64 + 8);
  new DataView(bytes.buffer).setBigUint64(0, 64n, true);
  bytes.set(new TextEncoder().encode(header), 8);
  bytes.set(new Uint8Array(f32(1, 2).buffer), 72);
  return bytes;
}

/** An IDX file of 2 x 2 unsigned bytes. */
function idxBytes(): Uint8Array {
  return Uint8Array.from([0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 2, 1, 2, 3, 4]);
}

const neural = { type: 'neural', d: 2, drift: { hidden: [4] }, seed: 1 };
const y0 = () => ({ data: f32(0.1, 0.2, 0.3, 0.4), shape: [2, 2] });
const mlp = { kind: 'mlp', inputShape: [2], hidden: [4], hypernet: { hidden: [4] }, seed: 1, solver: { steps: 3 } };
const conv = { kind: 'conv', inputShape: [1, 4, 4], stem: 2, width: 2, hypernet: { hidden: [2] }, classes: 3, pool: 1, solver: { steps: 2 } };
const regression = () => ({ inputs: f32(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8), inputShape: [2], targets: f32(0.1, 0.2, 0.3, 0.4), targetShape: [1] });

/** Valid calls of each entry point, and options each may be given besides (to add, malformed). */
const BASELINES: Record<string, { args: () => unknown[]; extra?: Record<number, string[]> }> = {
  sdeint: {
    args: () => [neural, y0(), [0, 0.5], { dt: 0.1 }],
    extra: {
      0: ['noiseType', 'sdeType', 'dtype', 'kernels', 'diffusion', 'm', 'device', 'tpye'],
      3: ['method', 'adaptive', 'rtol', 'atol', 'dtMin', 'seed', 'device', 'maxSteps', 'maxBytes', 'bm', 'onProgress', 'adjoint', 'dT'],
    },
  },
  sdeintGradients: {
    args: () => [neural, y0(), [0, 0.5], { data: new Float32Array(8).fill(1), shape: [2, 2, 2] }, { dt: 0.1, adjoint: true }],
    extra: { 4: ['method', 'adjointMethod', 'adjointDt', 'adjointAdaptive', 'adaptive', 'maxSteps', 'bm', 'onProgress'] },
  },
  sdeExact: { args: () => [{ type: 'gbm', mu: [0.1], sigma: [0.2] }, { data: f32(1, 1), shape: [2, 1] }, 0.5, { data: f32(0.1, -0.1), shape: [2, 1] }] },
  sdeLinear: {
    args: () => [
      {
        type: 'linear',
        A: [
          [-1, 0],
          [0, -1],
        ],
        c: [0, 0],
        b: [0.1, 0.1],
      },
      y0(),
      [0, 1],
      { dt: 0.25, method: 'euler' },
    ],
  },
  brownian: {
    args: () => [{ t0: 0, t1: 1, shape: [2, 3], seed: 1 }, 0.25, 0.5],
    extra: { 0: ['dtype', 'dtHint', 'levyArea', 'cacheSize', 'maxBytes', 'device'] },
  },
  bnnPredict: {
    args: () => [mlp, f32(0.1, 0.2, 0.3, 0.4), { samples: 2, seed: 1 }],
    extra: {
      0: ['likelihood', 'classes', 'outputs', 'head', 'aug', 'blocks', 'sigma', 'kernels', 'dtype', 'estimator', 'inputNormalization', 'maxBytes', 'w0'],
      2: ['ema'],
    },
  },
  bnnPredictConv: {
    args: () => [conv, new Float32Array(32).fill(0.5), { samples: 1, seed: 2 }],
    extra: { 0: ['blocks', 'width', 'pool', 'stem', 'convActivation', 'aug', 'kernels'] },
  },
  bnnTrainStep: {
    args: () => [mlp, f32(0.1, 0.2, 0.3, 0.4), f32(0.1, 0.2), { lr: 1e-3 }],
    extra: { 0: ['solver', 'optimizer', 'beta', 'nTrain', 'learnScale', 'scale', 'timeInput'], 3: ['beta'] },
  },
  bnnTrainStepConv: { args: () => [conv, new Float32Array(32).fill(0.5), [0, 2], {}] },
  bnnGradients: { args: () => [mlp, f32(0.1, 0.2, 0.3, 0.4), [0.1, 0.2], { seed: 1, objective: 'kl' }] },
  train: {
    args: () => [mlp, { train: regression(), test: regression() }, { epochs: 1, batchSize: 2, evalSamples: 2 }],
    extra: {
      2: [
        'lr',
        'lrSchedule',
        'lrMin',
        'warmupSteps',
        'beta',
        'betaWarmupSteps',
        'seed',
        'timeLimit',
        'evalEachEpoch',
        'evalBatchSize',
        'onStep',
        'onEpoch',
        'augment',
        'checkpointEvery',
        'resume',
      ],
    },
  },
  evaluate: { args: () => [mlp, regression(), { samples: 2 }], extra: { 2: ['batchSize', 'ema', 'seed'] } },
  createDataset: {
    args: () => [{ inputs: new Float32Array(8), inputShape: [2], targets: Uint8Array.from([0, 1, 0, 1]) }],
    extra: { 0: ['classes', 'targetShape'] },
  },
  minibatch: { args: () => [regression(), { batchSize: 2, seed: 1 }], extra: { 1: ['shuffle', 'dropLast'] } },
  saveCheckpoint: { args: () => [{ w: { data: f32(1, 2), shape: [2] } }, { key: 'value' }] },
  parseCheckpoint: { args: () => [checkpointBytes()] },
  parseIdx: { args: () => [idxBytes(), {}], extra: { 1: ['magic', 'limit'] } },
  selfTest: { args: () => [{ size: 8, iterations: 2 }], extra: { 0: ['device', 'maxBytes', 'onProgress'] } },
  setNumThreads: { args: () => [2] },
  resolveDevice: { args: () => ['cpu'] },
  classificationMetrics: { args: () => [{ data: f64(0.9, 0.1, 0.2, 0.8), shape: [2, 2] }, Uint8Array.from([0, 1])] },
  regressionMetrics: { args: () => [{ data: f64(0.1, 0.2, 0.15, 0.25), shape: [2, 2] }, f32(0.1, 0.2), {}], extra: { 2: ['noiseStd'] } },
  tensor: {
    args: () => [
      [1, 2, 3, 4],
      [2, 2],
    ],
  },
};

/** Fields whose values are amounts of work the caller asks for, or limits the caller raises. */
const ASKED_FOR = new Set(['epochs', 'samples', 'iterations', 'evalSamples', 'maxSteps', 'maxBytes', 'timeLimit', 'cacheSize']);
const CALLBACKS = new Set(['onProgress', 'onStep', 'onEpoch', 'augment']);

const general = fc.constantFrom<unknown>(
  undefined,
  null,
  NaN,
  Infinity,
  -Infinity,
  0,
  -1,
  0.5,
  1,
  1e9,
  2 ** 53,
  '',
  'x',
  '2',
  'cuda',
  'auto',
  true,
  false,
  [],
  {},
  [NaN],
  [-1],
  [0],
  [1e9],
  [2 ** 40],
  [1, 2, 3],
  [[1, 2], [3]],
  { data: 1 },
  new Float32Array(0),
);
const numbers = fc.oneof(
  fc.constantFrom(NaN, Infinity, -Infinity, 0, -0, -1, -3, 0.5, 1.5, 1, 2, 3, 7, 1e-12, 1e-300, 1e-5, 1e9, 1e300, -1e300, 2 ** 31, 2 ** 53),
  fc.double(),
  fc.integer({ min: -5, max: 40 }),
);
/** The names the API's enums use: valid elsewhere, so they reach the checks of combinations. */
const names = fc.constantFrom(
  'euler',
  'milstein',
  'srk',
  'midpoint',
  'heun',
  'euler_heun',
  'reversible_heun',
  'diagonal',
  'additive',
  'scalar',
  'general',
  'ito',
  'stratonovich',
  'float64',
  'float32',
  'fused',
  'autograd',
  'fast',
  'conv',
  'mlp',
  'gaussian',
  'laplace',
  'categorical',
  'ckl',
  'fmc',
  'stl',
  'adjoint',
  'backprop',
  'tanh',
  'relu',
  'softplus',
  'sigmoid',
  'identity',
  'constant',
  'scaled_tanh',
  'cosine',
  'global',
  'normal',
  'fanIn',
  'point',
  'loss',
  'kl',
  'linear',
  'last',
  'neural',
  'gbm',
  'ou',
  'cpu',
  'cuda:0',
);
const arrays = fc.constantFrom<unknown>(
  [],
  [0],
  [-1],
  [0.5],
  [NaN],
  [1e9],
  [3],
  [1, 2, 3],
  [2, 2],
  [1, 28, 28],
  [[1]],
  [
    [0.1, 0.2],
    [0.3, 0.4],
  ],
);
const scalarish = fc.oneof(
  { weight: 3, arbitrary: numbers },
  { weight: 2, arbitrary: names },
  { weight: 1, arbitrary: fc.boolean() },
  { weight: 2, arbitrary: general },
);
const asked = fc.constantFrom<unknown>(undefined, null, NaN, Infinity, -1, 0, 0.5, 1, 2, 'x', [], {}, true);
const callbacks = fc.constantFrom<unknown>('$throw', '$noop', 5, 'x', null, {});
const tensors = fc.constantFrom<unknown>(
  { data: f32(NaN, 1, 2, 3), shape: [2, 2] },
  { data: f32(0.1, Infinity, 0.2, 0.3), shape: [2, 2] },
  { data: f32(0.1, 0.2), shape: [1e9, 2], strides: [0, 1] },
  { data: f32(0.1, 0.2), shape: [2 ** 40, 2], strides: [0, 1] },
  { data: f32(0.1, 0.2, 0.3, 0.4), shape: [2, 2], strides: [-1, 1] },
  { data: f32(0.1, 0.2, 0.3, 0.4), shape: [2, 2], strides: [4, 1] },
  { data: f32(0.1, 0.2, 0.3, 0.4), shape: [4] },
  { data: f32(0.1, 0.2, 0.3, 0.4), shape: [2, 2, 1] },
  { data: f32(0.1, 0.2, 0.3, 0.4), shape: [2, 3] },
  { data: f32(), shape: [0, 2] },
  { data: f64(0.1, 0.2, 0.3, 0.4), shape: [2, 2] },
  { data: Int32Array.from([1, 2, 3, 4]), shape: [2, 2] },
  { data: [0.1, 0.2, 0.3, 0.4], shape: [2, 2] },
  Int32Array.from([1, 2, 3, 4]),
  Uint8Array.from([1, 2, 3, 4]),
  f32(NaN, 0.2, 0.3, 0.4),
  f64(0.1, 0.2, 0.3, 0.4),
  new Float32Array(8e4),
);
const brownians = fc.constantFrom<unknown>(
  { $bm: { shape: [2, 2], dtype: 'float64' } },
  { $bm: { shape: [3, 2] } },
  { $bm: { shape: [2, 2], t0: 0.2, t1: 0.4 } },
  { $bm: { shape: [2, 1] } },
  { $bm: { shape: [2, 2] } },
);
const bytes = fc.oneof(
  fc.uint8Array({ maxLength: 64 }),
  fc.tuple(fc.integer({ min: 0, max: 79 }), fc.integer({ min: 0, max: 255 })).map(([at, v]) => {
    const b = checkpointBytes();
    b[at] = v;
    return b;
  }),
  fc.integer({ min: 0, max: 79 }).map((n) => checkpointBytes().subarray(0, n)),
  fc.tuple(fc.integer({ min: 0, max: 15 }), fc.integer({ min: 0, max: 255 })).map(([at, v]) => {
    const b = idxBytes();
    b[at] = v;
    return b;
  }),
);

function valuesFor(key: string | number | undefined, current: unknown): fc.Arbitrary<unknown> {
  if (typeof key === 'string' && ASKED_FOR.has(key)) return asked;
  if (typeof key === 'string' && CALLBACKS.has(key)) return callbacks;
  if (key === 'bm') return fc.oneof(brownians, general);
  if (current instanceof Uint8Array && current.length > 8) return fc.oneof(bytes, general);
  if (ArrayBuffer.isView(current) || (typeof current === 'object' && current !== null && 'data' in current)) return fc.oneof(tensors, general);
  if (typeof current === 'number') return fc.oneof({ weight: 4, arbitrary: numbers }, { weight: 1, arbitrary: general });
  if (typeof current === 'string') return fc.oneof({ weight: 3, arbitrary: names }, { weight: 1, arbitrary: general });
  if (typeof current === 'boolean') return fc.oneof(fc.boolean(), general);
  if (Array.isArray(current)) return fc.oneof({ weight: 2, arbitrary: arrays }, { weight: 1, arbitrary: general }, { weight: 1, arbitrary: tensors });
  return fc.oneof({ weight: 4, arbitrary: scalarish }, { weight: 1, arbitrary: arrays }, { weight: 1, arbitrary: tensors });
}

/** Every path into a baseline's arguments (objects and arrays, not typed-array elements), plus the extra option keys. */
function paths(args: unknown[], extra: Record<number, string[]> = {}): (string | number)[][] {
  const out: (string | number)[][] = [];
  const walk = (value: unknown, path: (string | number)[]) => {
    out.push(path);
    if (ArrayBuffer.isView(value) || value === null || typeof value !== 'object') return;
    for (const [k, v] of Object.entries(value)) walk(v, [...path, Array.isArray(value) ? Number(k) : k]);
  };
  args.forEach((a, i) => walk(a, [i]));
  for (const [i, keys] of Object.entries(extra)) for (const k of keys) out.push([Number(i), k]);
  return out;
}

function get(root: unknown, path: (string | number)[]): unknown {
  return path.reduce<unknown>((v, k) => (v !== null && typeof v === 'object' ? (v as Record<string | number, unknown>)[k] : undefined), root);
}

/** A copy of `args` with `value` at `path`: objects on the way are copied (never shared with the baseline), and anything else there (an earlier mutation's value) becomes a fresh object. */
function set(args: unknown[], path: (string | number)[], value: unknown): unknown[] {
  const container = (v: unknown): Record<string | number, unknown> =>
    Array.isArray(v) ? [...v] : v !== null && typeof v === 'object' && !ArrayBuffer.isView(v) ? { ...v } : {};
  const root = [...args] as unknown as Record<string | number, unknown>;
  let node = root;
  path.forEach((k, i) => {
    if (i === path.length - 1) {
      node[k] = value;
    } else {
      node[k] = container(node[k]);
      node = node[k] as Record<string | number, unknown>;
    }
  });
  return root as unknown as unknown[];
}

const mutation = (api: string) => {
  const base = BASELINES[api]!;
  const all = paths(base.args(), base.extra);
  return fc.integer({ min: 0, max: all.length - 1 }).chain((i) => {
    const path = all[i]!;
    return valuesFor(path.at(-1), get(base.args(), path)).map((value) => ({ path, value }));
  });
};

/** One malformed call: an entry point and one or two replaced parts of its valid arguments. */
export const malformedCall: fc.Arbitrary<Case> = fc.constantFrom(...Object.keys(BASELINES)).chain((api) =>
  fc.array(mutation(api), { minLength: 1, maxLength: 2 }).map((mutations) => {
    let args = BASELINES[api]!.args();
    for (const m of mutations) args = set(args, m.path, m.value);
    return { api: api === 'sdeLinear' ? 'sdeint' : api.replace(/Conv$/, ''), args, mutations };
  }),
);
