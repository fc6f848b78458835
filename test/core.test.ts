import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { native, sdebnn } from './helpers';

const root = path.resolve(__dirname, '..');

describe('backend', () => {
  it('reports LibTorch, CUDA and threads', () => {
    const b = sdebnn.backend();
    expect(b.torchVersion).toMatch(/^\d+\.\d+/);
    expect(typeof b.cudaAvailable).toBe('boolean');
    expect(b.cudaDeviceCount).toBeGreaterThanOrEqual(0);
    expect(b.threads).toBeGreaterThanOrEqual(1);
  });

  it('starts with the hardware thread count and lets users change it', () => {
    const start = sdebnn.backend().threads;
    const expected = process.env.OMP_NUM_THREADS ? Number(process.env.OMP_NUM_THREADS) : require('node:os').availableParallelism();
    expect(start).toBe(expected);
    sdebnn.setNumThreads(1);
    expect(sdebnn.backend().threads).toBe(1);
    sdebnn.setNumThreads(start);
    expect(sdebnn.backend().threads).toBe(start);
  });

  it('applies a changed thread count to work that runs after it, on every worker thread', async () => {
    // OpenMP's count is per thread: workers that already ran must pick up a later change.
    const start = sdebnn.backend().threads;
    try {
      for (const n of [2, 1, 2, 1]) {
        sdebnn.setNumThreads(n);
        const runs = await Promise.all(Array.from({ length: 6 }, () => sdebnn.selfTest({ size: 32, iterations: 1 })));
        expect(runs.map((r) => r.threads)).toEqual(Array(6).fill(n));
      }
    } finally {
      sdebnn.setNumThreads(start);
    }
  });

  it('rejects bad thread counts by name', () => {
    expect(() => sdebnn.setNumThreads(-3)).toThrow(new RangeError('Expected positive integer for threads but received -3'));
    expect(() => sdebnn.setNumThreads('2' as never)).toThrow(TypeError);
  });
});

describe('tensors across the boundary', () => {
  it('round-trips float32 values and shape', () => {
    const data = Float32Array.from({ length: 24 }, (_, i) => i * 0.5 - 3);
    const out = native().roundTrip({ data, shape: [2, 3, 4] }, {});
    expect(out.data).toBeInstanceOf(Float32Array);
    expect(out.shape).toEqual([2, 3, 4]);
    expect(Array.from(out.data)).toEqual(Array.from(data));
  });

  it('round-trips float64 without losing precision', () => {
    const data = Float64Array.from([Math.PI, 1e-300, -1e300, 1 / 3]);
    const out = native().roundTrip({ data, shape: [4] }, { scale: 2 });
    expect(out.data).toBeInstanceOf(Float64Array);
    expect(Array.from(out.data)).toEqual(Array.from(data, (x) => x * 2));
  });

  it('reads a subarray view at its offset without copying the whole buffer', () => {
    const buffer = Float32Array.from({ length: 10 }, (_, i) => i);
    const view = buffer.subarray(3, 9); // 3..8
    const out = native().roundTrip({ data: view, shape: [2, 3] }, {});
    expect(Array.from(out.data)).toEqual([3, 4, 5, 6, 7, 8]);
  });

  it('reads strided (non-contiguous) input and returns non-contiguous results contiguous', () => {
    // A 2x3 row-major buffer read as its 3x2 transpose through strides.
    const data = Float32Array.from([1, 2, 3, 4, 5, 6]);
    const transposedIn = native().roundTrip({ data, shape: [3, 2], strides: [1, 3] }, {});
    expect(transposedIn.shape).toEqual([3, 2]);
    expect(Array.from(transposedIn.data)).toEqual([1, 4, 2, 5, 3, 6]);
    const transposedOut = native().roundTrip({ data, shape: [2, 3] }, { transpose: true });
    expect(transposedOut.shape).toEqual([3, 2]);
    expect(Array.from(transposedOut.data)).toEqual([1, 4, 2, 5, 3, 6]);
  });

  it('handles empty tensors', () => {
    const out = native().roundTrip({ data: new Float32Array(0), shape: [0, 5] }, {});
    expect(out.shape).toEqual([0, 5]);
    expect(out.data.length).toBe(0);
  });

  it('validates tensors in TypeScript with the field name', () => {
    expect(() => sdebnn.tensor([1, 2, 3], [2, 2])).toThrow(/tensor\.data to hold 4 elements/);
    expect(() => sdebnn.tensor([1, 2, 3], [3, -1])).toThrow(/tensor\.shape\[1\]/);
  });

  it('rejects malformed tensors natively without crashing', () => {
    expect(() => native().roundTrip({ data: new Int32Array(4) as never, shape: [4] }, {})).toThrow(/Float32Array or Float64Array/);
    expect(() => native().roundTrip({ data: new Float32Array(4), shape: [5] }, {})).toThrow(/shape holds 5 elements/);
    expect(() => native().roundTrip({ data: new Float32Array(4), shape: [2, 2], strides: [4, 1] }, {})).toThrow(/past the end/);
    expect(() => native().roundTrip(null as never, {})).toThrow(/expected a tensor/);
  });
});

describe('errors', () => {
  it('turns a LibTorch error into an Error with message and code', () => {
    let caught: (Error & { code?: string }) | undefined;
    try {
      native().raise('torch');
    } catch (e) {
      caught = e as Error & { code?: string };
    }
    expect(caught).toBeInstanceOf(Error);
    expect(caught!.code).toBe('ERR_TORCH');
    expect(caught!.message).toMatch(/cannot be multiplied/);
    expect(caught!.message).not.toMatch(/Exception raised from/); // no C++ backtrace
  });

  it("maps a LibTorch error in a public call to TorchError (ERR_TORCH), with LibTorch's message and no backtrace", () => {
    // A broadcast batch of 2^43 rows (strides [0, 1]): made contiguous it is 64 TiB, which LibTorch's
    // allocator refuses under Linux's default overcommit heuristic (more than memory plus swap);
    // config.maxBytes is raised so that the package's own limit lets the call through.
    let caught: unknown;
    const model = new sdebnn.SdeBnn({ kind: 'mlp', inputShape: [2], hidden: [8], outputs: 1, likelihood: 'gaussian', maxBytes: Number.MAX_SAFE_INTEGER });
    try {
      void model.predict({ data: new Float32Array(2), shape: [2 ** 43, 2], strides: [0, 1] });
    } catch (e) {
      caught = e;
    }
    model.dispose();
    expect(caught).toBeInstanceOf(sdebnn.TorchError);
    expect(caught).toBeInstanceOf(sdebnn.SdebnnError);
    const error = caught as InstanceType<typeof sdebnn.TorchError>;
    expect(error.code).toBe('ERR_TORCH');
    expect(error.name).toBe('TorchError');
    expect(error.message).toMatch(/can't allocate memory: you tried to allocate \d+ bytes/);
    expect(error.message).not.toMatch(/Exception raised from/);
  });

  it('turns a std::exception into an Error with code ERR_NATIVE', () => {
    expect(() => native().raise('std')).toThrow(expect.objectContaining({ code: 'ERR_NATIVE', message: 'a standard exception from native code' }));
  });
});

describe('devices', () => {
  it('resolves cpu and auto', () => {
    expect(sdebnn.resolveDevice('cpu')).toBe('cpu');
    expect(sdebnn.resolveDevice('auto')).toBe(sdebnn.backend().cudaAvailable ? 'cuda:0' : 'cpu');
  });

  it('rejects malformed device strings by name', () => {
    expect(() => sdebnn.resolveDevice('gpu')).toThrow(new RangeError(`Expected 'cpu', 'cuda', 'cuda:N' or 'auto' for device but received "gpu"`));
    expect(() => sdebnn.resolveDevice(3 as never)).toThrow(TypeError);
  });

  it.skipIf(sdebnn.backend().cudaAvailable)('refuses cuda without CUDA, in TypeScript and natively', () => {
    expect(() => sdebnn.resolveDevice('cuda')).toThrow(sdebnn.DeviceUnavailableError);
    expect(() => sdebnn.resolveDevice('cuda:1')).toThrow(/no CUDA device/);
    // The native side refuses too: it never falls back silently.
    expect(() => native().resolveDevice('cuda')).toThrow(expect.objectContaining({ code: 'ERR_DEVICE_UNAVAILABLE' }));
    expect(() => sdebnn.selfTest({ device: 'cuda' })).toThrow(sdebnn.DeviceUnavailableError);
  });
});

describe('async work', () => {
  it('returns a Promise, reports progress and leaves the event loop free', async () => {
    const events: Array<{ iteration: number; total: number }> = [];
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const result = await sdebnn.selfTest({ size: 256, iterations: 40, onProgress: (e) => events.push(e) });
    clearInterval(timer);
    expect(result.device).toBe('cpu');
    expect(result.maxAbsError).toBeLessThan(1e-3);
    expect(events.map((e) => e.iteration)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    expect(events.every((e) => e.total === 40)).toBe(true);
    expect(ticks).toBeGreaterThan(0); // the timer ran while native work was in flight
  });

  it('validates options before starting native work', () => {
    expect(() => sdebnn.selfTest({ iterations: 0 })).toThrow(new RangeError('Expected positive integer for options.iterations but received 0'));
    expect(() => sdebnn.selfTest({ onProgress: 5 as never })).toThrow(/options\.onProgress/);
    expect(() => sdebnn.selfTest({ sise: 3 } as never)).toThrow(/Unknown option options\.sise/);
  });

  it('survives a throwing progress callback: the Promise rejects with its error and the work stops', async () => {
    const failure = new Error('callback failure');
    let calls = 0;
    const result = sdebnn.selfTest({
      size: 16,
      iterations: 3,
      onProgress: () => {
        calls++;
        throw failure;
      },
    });
    await expect(result).rejects.toBe(failure);
    expect(calls).toBe(1);
  });
});

describe('module formats', () => {
  it('loads with require and import', () => {
    const cjs = execFileSync(process.execPath, ['-e', "console.log(typeof require('sdebnn').backend().threads)"], { cwd: root, encoding: 'utf8' });
    expect(cjs.trim()).toBe('number');
    const esm = execFileSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        "import { backend } from 'sdebnn'; import def from 'sdebnn'; console.log(typeof backend().threads, def.backend === backend)",
      ],
      { cwd: root, encoding: 'utf8' },
    );
    expect(esm.trim()).toBe('number true');
  });
});

describe('elementwise kernels', () => {
  it('tanh (float32): within 3e-7 of the exact value, 2e-6 relative, odd, saturating to 1', () => {
    // A dense grid over the approximation's range and past its clamp, plus tiny and huge inputs.
    const xs = [...Array.from({ length: 40001 }, (_, i) => -10 + i * 5e-4), 1e-30, -1e-8, 3e-4, 1e4, -1e30];
    const data = Float32Array.from(xs);
    const out = native().elementwise({ data, shape: [data.length] }, 'tanh').data;
    let maxAbs = 0,
      maxRel = 0;
    for (let i = 0; i < data.length; i++) {
      const exact = Math.tanh(data[i]!);
      const err = Math.abs(out[i]! - exact);
      maxAbs = Math.max(maxAbs, err);
      if (Math.abs(exact) > 1e-30) maxRel = Math.max(maxRel, err / Math.abs(exact));
    }
    const negated = native().elementwise({ data: data.map((x) => -x), shape: [data.length] }, 'tanh').data;
    expect(Math.max(...Array.from(out, (y, i) => Math.abs(y + negated[i]!)))).toBeLessThan(3e-7);
    expect(maxAbs).toBeLessThan(3e-7);
    expect(maxRel).toBeLessThan(2e-6);
    expect(Math.abs(out[data.length - 2]! - 1)).toBeLessThan(1e-7);
  });

  it('tanh (float64) is exact to rounding, and names its argument', () => {
    const data = Float64Array.from({ length: 201 }, (_, i) => -10 + i * 0.1);
    const out = native().elementwise({ data, shape: [201] }, 'tanh').data;
    for (let i = 0; i < data.length; i++) expect(Math.abs(out[i]! - Math.tanh(data[i]!))).toBeLessThan(4e-16);
    expect(() => native().elementwise({ data, shape: [201] }, 'erf' as never)).toThrow("Expected 'tanh' for name but received 'erf'");
  });
});
