// The child process of test/property.test.ts: runs one public-API call per message and reports
// how it ended, as plain data. Arguments arrive by structured clone (typed arrays, NaN, undefined);
// placeholders stand for what cannot be cloned: '$throw' a callback that throws, '$noop' one that
// does nothing, {$bm: options} a BrownianInterval. A crash or a hang of this process is what the
// parent looks for; everything here only classifies outcomes.
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const sdebnn = require('../../dist/index.js');

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sdebnn-property-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

const CALLBACK_ERROR = 'property-test callback';

function materialize(value) {
  if (value === '$throw') {
    return () => {
      throw new Error(CALLBACK_ERROR);
    };
  }
  if (value === '$noop') return () => {};
  if (Array.isArray(value)) return value.map(materialize);
  if (value && typeof value === 'object' && !ArrayBuffer.isView(value)) {
    if ('$bm' in value) return new sdebnn.BrownianInterval(value.$bm);
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, materialize(v)]));
  }
  return value;
}

/** Runs `fn` with a native object made by `make`, disposing of it afterwards. */
async function using(make, fn) {
  const object = make();
  try {
    return await fn(object);
  } finally {
    object.dispose();
  }
}

const apis = {
  sdeint: ([spec, y0, ts, options]) =>
    using(
      () => new sdebnn.SDE(spec),
      (sde) => sdebnn.sdeint(sde, y0, ts, options),
    ),
  sdeintGradients: ([spec, y0, ts, gradYs, options]) =>
    using(
      () => new sdebnn.SDE(spec),
      (sde) => sdebnn.sdeintGradients(sde, y0, ts, gradYs, options),
    ),
  sdeExact: ([spec, y0, t, w]) =>
    using(
      () => new sdebnn.SDE(spec),
      (sde) => sde.exact(y0, t, w),
    ),
  brownian: ([options, s, t]) =>
    using(
      () => new sdebnn.BrownianInterval(options),
      (bm) => bm.increment(s, t),
    ),
  bnnPredict: ([config, inputs, options]) =>
    using(
      () => new sdebnn.SdeBnn(config),
      (m) => m.predict(inputs, options),
    ),
  bnnTrainStep: ([config, inputs, targets, options]) =>
    using(
      () => new sdebnn.SdeBnn(config),
      (m) => m.trainStep(inputs, targets, options),
    ),
  bnnGradients: ([config, inputs, targets, options]) =>
    using(
      () => new sdebnn.SdeBnn(config),
      (m) => m.gradients(inputs, targets, options),
    ),
  train: ([config, data, options]) =>
    using(
      () => new sdebnn.SdeBnn(config),
      (m) => sdebnn.train(m, data, options),
    ),
  evaluate: ([config, dataset, options]) =>
    using(
      () => new sdebnn.SdeBnn(config),
      (m) => sdebnn.evaluate(m, dataset, options),
    ),
  createDataset: ([init]) => sdebnn.createDataset(init),
  minibatch: ([init, options]) => new sdebnn.MinibatchIterator(sdebnn.createDataset(init), options).epoch().next().value,
  saveCheckpoint: ([tensors, metadata]) => {
    const file = path.join(tmp, 'case.safetensors');
    sdebnn.saveCheckpoint(file, tensors, metadata);
    return sdebnn.loadCheckpoint(file);
  },
  parseCheckpoint: ([bytes]) => sdebnn.parseCheckpoint(bytes),
  parseIdx: ([bytes, options]) => sdebnn.parseIdx(bytes, options),
  selfTest: ([options]) => sdebnn.selfTest(options),
  setNumThreads: ([threads]) => {
    const before = sdebnn.backend().threads;
    try {
      return sdebnn.setNumThreads(threads);
    } finally {
      sdebnn.setNumThreads(before);
    }
  },
  resolveDevice: ([spec]) => sdebnn.resolveDevice(spec),
  classificationMetrics: ([probs, labels]) => sdebnn.classificationMetrics(probs, labels),
  regressionMetrics: ([samples, targets, options]) => sdebnn.regressionMetrics(samples, targets, options),
  tensor: ([data, shape]) => sdebnn.tensor(data, shape),
};

/** Every number in a result, typed arrays included; checkpoints' stored values are data, not results. */
function nonFinite(value, where, seen = new Set()) {
  if (typeof value === 'number') return Number.isFinite(value) ? undefined : `${where} = ${value}`;
  if (ArrayBuffer.isView(value) && !(value instanceof DataView)) {
    if (typeof value[0] === 'bigint') return undefined;
    for (let i = 0; i < value.length; i++) if (!Number.isFinite(value[i])) return `${where}[${i}] = ${value[i]}`;
    return undefined;
  }
  if (value && typeof value === 'object' && !seen.has(value)) {
    seen.add(value);
    for (const [k, v] of Object.entries(value)) {
      const bad = nonFinite(v, `${where}.${k}`, seen);
      if (bad) return bad;
    }
  }
  return undefined;
}

const DATA_APIS = new Set(['saveCheckpoint', 'parseCheckpoint', 'parseIdx', 'createDataset', 'minibatch', 'tensor']);

/** Results that may hold NaN by design: stored data, and metrics of no rows (documented as NaN). */
function exempt(api, args) {
  if (DATA_APIS.has(api)) return true;
  const rows = (t) => (t && Array.isArray(t.shape) ? t.shape.at(-1 - (api === 'regressionMetrics' ? 0 : 1)) : undefined);
  return (api === 'classificationMetrics' || api === 'regressionMetrics') && rows(args[0]) === 0;
}

function classify(api, error) {
  const typed =
    error instanceof TypeError ||
    error instanceof RangeError ||
    (error instanceof sdebnn.SdebnnError && !(error instanceof sdebnn.NativeError)) ||
    (error instanceof sdebnn.NativeError && ['ERR_BUSY', 'ERR_DISPOSED'].includes(error.code)) ||
    (error instanceof Error && error.message === CALLBACK_ERROR) ||
    // The file system's own errors from saveCheckpoint carry their code (ENOENT, ENOSPC, ...).
    (api === 'saveCheckpoint' && error instanceof Error && typeof error.code === 'string' && error.message.startsWith('Could not write checkpoint'));
  const name = error instanceof Error ? error.constructor.name : typeof error;
  return { kind: 'error', typed, name, code: error && error.code, message: error instanceof Error ? error.message : String(error) };
}

process.on('message', async ({ id, api, args }) => {
  let outcome;
  try {
    const result = await apis[api](materialize(args));
    const bad = exempt(api, args) ? undefined : nonFinite(result, 'result');
    outcome = { kind: 'ok', finite: bad === undefined, detail: bad };
  } catch (error) {
    outcome = classify(api, error);
  }
  process.send({ id, outcome });
});
process.send({ ready: true });
