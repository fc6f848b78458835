import fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { expectDataFormatError, sdebnn } from './helpers';

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sdebnn-ckpt-'));
});
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});
afterEach(() => {
  vi.restoreAllMocks();
});

let counter = 0;
function folder(): string {
  const dir = path.join(tmp, `case-${counter++}`);
  fs.mkdirSync(dir);
  return dir;
}

/** A safetensors file from a header object (serialised as given, unpadded) and raw data bytes. */
function rawFile(header: unknown, data: Uint8Array = new Uint8Array(0), headerText = JSON.stringify(header)): Buffer {
  const text = Buffer.from(headerText, 'utf8');
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(text.length));
  return Buffer.concat([length, text, data]);
}

const sample = () => ({
  weights: { data: Float32Array.from([1.5, -2.25, 3, 0, Math.fround(0.1), -1e-30]), shape: [2, 3] },
  precise: { data: Float64Array.from([Math.PI, 1e-300, -1e300, 1 / 3]), shape: [4] },
  mask: { data: Uint8Array.from([0, 1, 255, 7, 9]), shape: [5] },
  flags: { data: Uint8Array.from([1, 0, 1]), shape: [3], dtype: 'BOOL' as const },
  step: { data: BigInt64Array.from([123456789012345n]), shape: [] },
  counts: { data: Int32Array.from([-1, 2]), shape: [1, 2] },
  empty: { data: new Float32Array(0), shape: [0, 3] },
});

describe('checkpoint round trip', () => {
  it('saves and loads float32, float64, uint8, bool, int64, int32, empty tensors and metadata exactly', () => {
    const file = path.join(folder(), 'model.safetensors');
    const metadata = { version: '1', config: JSON.stringify({ sigma: 0.05, steps: 8 }), rng: JSON.stringify(new sdebnn.Random(3).getState()) };
    sdebnn.saveCheckpoint(file, sample(), metadata);
    const loaded = sdebnn.loadCheckpoint(file);
    expect(loaded.path).toBe(file);
    expect(loaded.metadata).toEqual(metadata);
    const s = sample();
    for (const [name, t] of Object.entries(s)) {
      const got = loaded.tensors[name]!;
      expect(got.shape).toEqual(t.shape);
      expect(got.data.constructor).toBe(t.data.constructor);
      expect(Array.from(got.data as ArrayLike<unknown>)).toEqual(Array.from(t.data as ArrayLike<unknown>));
    }
    expect(loaded.tensors.weights!.dtype).toBe('F32');
    expect(loaded.tensors.precise!.dtype).toBe('F64');
    expect(loaded.tensors.mask!.dtype).toBe('U8');
    expect(loaded.tensors.flags!.dtype).toBe('BOOL');
    expect(loaded.tensors.step!.dtype).toBe('I64');
    expect(Object.keys(loaded.tensors).sort()).toEqual(Object.keys(s).sort());
    // The restored generator state continues the same stream.
    const r = sdebnn.Random.fromState(JSON.parse(loaded.metadata.rng!));
    expect(r.nextUint32()).toBe(new sdebnn.Random(3).nextUint32());
  });

  it('writes the safetensors layout: 8-byte LE length, space-padded JSON header, aligned contiguous data', () => {
    const file = path.join(folder(), 'layout.safetensors');
    sdebnn.saveCheckpoint(file, sample(), { version: '2' });
    const bytes = fs.readFileSync(file);
    const n = Number(bytes.readBigUInt64LE(0));
    expect(n % 8).toBe(0);
    const text = bytes.subarray(8, 8 + n).toString('utf8');
    expect(text.startsWith('{')).toBe(true);
    expect(text.trimEnd().endsWith('}')).toBe(true);
    expect(text.slice(text.trimEnd().length)).toMatch(/^ *$/);
    const header = JSON.parse(text);
    expect(header.__metadata__).toEqual({ version: '2' });
    expect(header.precise).toEqual({ dtype: 'F64', shape: [4], data_offsets: [0, 32] }); // 8-byte elements first
    expect(header.step).toEqual({ dtype: 'I64', shape: [], data_offsets: [32, 40] });
    expect(header.weights.dtype).toBe('F32');
    const tensors = Object.entries(header).filter(([k]) => k !== '__metadata__') as [string, { dtype: string; data_offsets: [number, number] }][];
    const size: Record<string, number> = { F64: 8, I64: 8, F32: 4, I32: 4, U8: 1, BOOL: 1 };
    let end = 0;
    for (const [, t] of tensors.sort((a, b) => a[1].data_offsets[0] - b[1].data_offsets[0])) {
      expect(t.data_offsets[0]).toBe(end);
      expect(t.data_offsets[0] % size[t.dtype]!).toBe(0); // aligned in the data part
      end = t.data_offsets[1];
    }
    expect(bytes.length).toBe(8 + n + end);
    // Little-endian raw values: the first F64 is pi.
    expect(bytes.readDoubleLE(8 + n)).toBe(Math.PI);
  });

  it('reads a file written by another safetensors writer (unpadded header, any key order)', () => {
    const file = path.join(folder(), 'other.safetensors');
    const data = Buffer.alloc(12);
    data.writeFloatLE(1.5, 0);
    data.writeFloatLE(-2, 4);
    data.writeInt32LE(7, 8);
    fs.writeFileSync(
      file,
      rawFile({
        b: { dtype: 'I32', shape: [1], data_offsets: [8, 12] },
        a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
        __metadata__: { format: 'pt' },
      }),
    );
    fs.appendFileSync(file, data);
    const c = sdebnn.loadCheckpoint(file);
    expect(Array.from(c.tensors.a!.data as Float32Array)).toEqual([1.5, -2]);
    expect(Array.from(c.tensors.b!.data as Int32Array)).toEqual([7]);
    expect(c.metadata).toEqual({ format: 'pt' });
  });
});

describe('atomic writes', () => {
  function goodCheckpoint(): { dir: string; file: string; bytes: Buffer } {
    const dir = folder();
    const file = path.join(dir, 'good.safetensors');
    sdebnn.saveCheckpoint(file, sample(), { version: '1' });
    return { dir, file, bytes: fs.readFileSync(file) };
  }
  const other = () => ({ w: { data: new Float32Array(1000).fill(7), shape: [1000] } });

  it('fails with ENOENT for a folder that does not exist', () => {
    const file = path.join(tmp, 'no-such-folder', 'x.safetensors');
    expect(() => sdebnn.saveCheckpoint(file, other())).toThrow(
      expect.objectContaining({ code: 'ENOENT', message: expect.stringContaining(`Could not write checkpoint ${file}`) }),
    );
    expect(fs.existsSync(path.dirname(file))).toBe(false);
  });

  it('leaves a good checkpoint untouched and removes the temp file when the disk fills up mid-write', () => {
    const { dir, file, bytes } = goodCheckpoint();
    const real = fs.writeSync;
    let calls = 0;
    vi.spyOn(fs, 'writeSync').mockImplementation(((fd: number, buffer: Uint8Array, offset?: number, length?: number) => {
      if (++calls === 2) {
        // Part of the data reaches the disk, then it is full.
        real(fd, buffer, offset ?? 0, Math.min(length ?? buffer.length, 3));
        throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28, syscall: 'write' });
      }
      return real(fd, buffer, offset, length);
    }) as typeof fs.writeSync);
    expect(() => sdebnn.saveCheckpoint(file, other())).toThrow(expect.objectContaining({ code: 'ENOSPC' }));
    expect(calls).toBe(2);
    vi.restoreAllMocks();
    expect(fs.readdirSync(dir)).toEqual(['good.safetensors']); // no temp file left
    expect(fs.readFileSync(file).equals(bytes)).toBe(true);
    expect(sdebnn.loadCheckpoint(file).metadata.version).toBe('1');
  });

  it('leaves a good checkpoint untouched when fsync or rename fails', () => {
    const { dir, file, bytes } = goodCheckpoint();
    vi.spyOn(fs, 'fsyncSync').mockImplementationOnce(() => {
      throw Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });
    });
    expect(() => sdebnn.saveCheckpoint(file, other())).toThrow(expect.objectContaining({ code: 'EIO' }));
    vi.restoreAllMocks();
    vi.spyOn(fs, 'renameSync').mockImplementationOnce(() => {
      throw Object.assign(new Error('EXDEV: cross-device link not permitted, rename'), { code: 'EXDEV' });
    });
    expect(() => sdebnn.saveCheckpoint(file, other())).toThrow(expect.objectContaining({ code: 'EXDEV' }));
    vi.restoreAllMocks();
    expect(fs.readdirSync(dir)).toEqual(['good.safetensors']);
    expect(fs.readFileSync(file).equals(bytes)).toBe(true);
  });

  it('replaces the checkpoint when the write succeeds, and refuses to replace a folder', () => {
    const { dir, file } = goodCheckpoint();
    sdebnn.saveCheckpoint(file, other(), { version: '2' });
    expect(fs.readdirSync(dir)).toEqual(['good.safetensors']);
    const c = sdebnn.loadCheckpoint(file);
    expect(c.metadata.version).toBe('2');
    expect(Object.keys(c.tensors)).toEqual(['w']);
    const sub = path.join(dir, 'sub');
    fs.mkdirSync(sub);
    expect(() => sdebnn.saveCheckpoint(sub, other())).toThrow(/Could not write checkpoint/);
    expect(fs.readdirSync(dir).sort()).toEqual(['good.safetensors', 'sub']);
  });
});

describe('corrupted checkpoints', () => {
  const good = () =>
    rawFile({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'U8', shape: [4], data_offsets: [8, 12] } }, new Uint8Array(12));
  function write(bytes: Uint8Array): string {
    const file = path.join(folder(), 'bad.safetensors');
    fs.writeFileSync(file, bytes);
    return file;
  }

  it('accepts the hand-made good file', () => {
    expect(Object.keys(sdebnn.loadCheckpoint(write(good())).tensors)).toEqual(['a', 'b']);
  });

  it('rejects each header defect with a DataFormatError naming the file and the problem', () => {
    const cases: [Uint8Array, string | RegExp][] = [
      [Buffer.from([1, 2, 3]), 'is truncated: 3 bytes, too short for the 8-byte header length'],
      [
        (() => {
          const b = good();
          b.writeBigUInt64LE(10_000n);
          return b;
        })(),
        'declares a header of 10000 bytes but the file has only',
      ],
      [
        (() => {
          const b = good();
          b.writeBigUInt64LE(2n ** 63n);
          return b;
        })(),
        /declares a header of 9223372036854775808 bytes/,
      ],
      [rawFile(null, new Uint8Array(0), '{"a": {"dtype": "F32", '), 'not valid JSON'],
      [rawFile(null, new Uint8Array(0), '[1, 2]'), 'not a JSON object'],
      [rawFile({ a: { dtype: 'F8', shape: [1], data_offsets: [0, 1] } }, new Uint8Array(1)), 'tensor "a" has unknown dtype "F8"'],
      [rawFile({ a: { dtype: 'constructor', shape: [1], data_offsets: [0, 1] } }, new Uint8Array(1)), 'tensor "a" has unknown dtype "constructor"'],
      [rawFile({ a: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, new Uint8Array(4)), 'tensor "a" has an invalid shape [-1]'],
      [rawFile({ a: { dtype: 'F32', shape: [1], data_offsets: [4, 0] } }, new Uint8Array(4)), 'tensor "a" has invalid data_offsets [4,0]'],
      [
        rawFile({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 12] } }, new Uint8Array(8)),
        'tensor "a" has data_offsets [0, 12] beyond the 8 data bytes (truncated?)',
      ],
      [rawFile({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, new Uint8Array(8)), 'tensor "a" has 8 bytes but dtype F32 and shape [3] need 12'],
      [
        rawFile({ a: { dtype: 'U8', shape: [2], data_offsets: [0, 2] }, b: { dtype: 'U8', shape: [2], data_offsets: [3, 5] } }, new Uint8Array(5)),
        'gap of 1 bytes before tensor "b"',
      ],
      [
        rawFile({ a: { dtype: 'U8', shape: [2], data_offsets: [0, 2] }, b: { dtype: 'U8', shape: [2], data_offsets: [1, 3] } }, new Uint8Array(3)),
        'overlaps the previous tensor',
      ],
      [rawFile({ a: { dtype: 'U8', shape: [2], data_offsets: [0, 2] } }, new Uint8Array(5)), 'has 3 bytes after the last tensor'],
      [rawFile({ __metadata__: { version: 2 } }), 'metadata "version" that is not a string'],
      [rawFile({ a: [1, 2] }), 'tensor "a" is not an object'],
    ];
    for (const [bytes, problem] of cases) {
      const file = write(bytes);
      expectDataFormatError(() => sdebnn.loadCheckpoint(file), `Checkpoint ${file}: `, problem);
    }
    // A checkpoint cut short: its last tensor runs past the end.
    const file = path.join(folder(), 'cut.safetensors');
    sdebnn.saveCheckpoint(file, sample());
    const bytes = fs.readFileSync(file);
    fs.writeFileSync(file, bytes.subarray(0, bytes.length - 4));
    expectDataFormatError(() => sdebnn.loadCheckpoint(file), file, /beyond the \d+ data bytes \(truncated\?\)/);
    expectDataFormatError(() => sdebnn.loadCheckpoint(path.join(tmp, 'missing.safetensors')), 'missing.safetensors: does not exist');
  });
});

describe('checking a checkpoint against the model', () => {
  it('passes a matching checkpoint and lists every mismatch in one error', () => {
    const file = path.join(folder(), 'm.safetensors');
    sdebnn.saveCheckpoint(file, sample(), { version: '1', model: 'mlp' });
    const c = sdebnn.loadCheckpoint(file);
    const expected = {
      version: '1',
      tensors: { weights: [2, 3], precise: [4], mask: [5], flags: { shape: [3], dtype: 'BOOL' as const }, step: [], counts: [1, 2], empty: [0, 3] },
    };
    expect(sdebnn.expectCheckpoint(c, expected)).toBe(c);
    expect(sdebnn.checkpointMismatches(c, expected)).toEqual([]);
    const wrong = {
      version: '2',
      metadata: { model: 'conv' },
      tensors: { weights: [3, 2], precise: { shape: [4], dtype: 'F32' as const }, mask: [5], extra: [7] },
    };
    const problems = sdebnn.checkpointMismatches(c, wrong);
    expect(problems).toEqual([
      'metadata model is "mlp", expected "conv"',
      'metadata version is "1", expected "2"',
      'tensor weights has shape [2, 3], expected [3, 2]',
      'tensor precise has dtype F64, expected F32',
      'tensor extra is missing (expected shape [7])',
      'tensor counts is not expected',
      'tensor empty is not expected',
      'tensor flags is not expected',
      'tensor step is not expected',
    ]);
    expectDataFormatError(
      () => sdebnn.expectCheckpoint(c, wrong),
      `Checkpoint ${file}: does not match the model (9 problems): metadata model is "mlp"`,
      'tensor step is not expected',
    );
    expect(sdebnn.checkpointMismatches(c, { ...wrong, allowExtra: true })).toHaveLength(5);
    expect(sdebnn.checkpointMismatches(c, { version: '1', tensors: {}, allowExtra: true })).toEqual([]);
    expect(sdebnn.checkpointMismatches({ ...c, metadata: {} }, { version: '1', tensors: {}, allowExtra: true })).toEqual([
      'metadata version is missing, expected "1"',
    ]);
  });
});

describe('saveCheckpoint arguments', () => {
  it('accepts row-major strides (as a contiguous Tensor may carry)', () => {
    const file = path.join(folder(), 's.safetensors');
    sdebnn.saveCheckpoint(file, { w: { data: Float32Array.from([1, 2, 3, 4, 5, 6]), shape: [2, 3], strides: [3, 1] } as never });
    expect(sdebnn.loadCheckpoint(file).tensors.w!.shape).toEqual([2, 3]);
  });

  it('names the bad field', () => {
    const file = path.join(folder(), 'x.safetensors');
    const w = { data: new Float32Array(2), shape: [2] };
    expect(() => sdebnn.saveCheckpoint(file, { w }, { version: 1 } as never)).toThrow(new TypeError('Expected a string for metadata.version but received 1'));
    expect(() => sdebnn.saveCheckpoint(file, { w: { data: new Float32Array(3), shape: [2] } })).toThrow(
      new RangeError('Expected tensors["w"].data to hold 2 elements for shape [2] but received 3'),
    );
    expect(() => sdebnn.saveCheckpoint(file, { w: { data: [1, 2] as never, shape: [2] } })).toThrow(/typed array .* for tensors\["w"\]\.data/);
    expect(() => sdebnn.saveCheckpoint(file, { w: { data: new Uint8ClampedArray(2) as never, shape: [2] } })).toThrow(TypeError);
    expect(() => sdebnn.saveCheckpoint(file, { w: { ...w, dtype: 'BOOL' } })).toThrow(/matching Float32Array \(F32\) for tensors\["w"\]\.dtype/);
    for (const inherited of ['constructor', 'toString']) {
      expect(() => sdebnn.saveCheckpoint(file, { w: { ...w, dtype: inherited as never } })).toThrow(/matching Float32Array \(F32\) for tensors\["w"\]\.dtype/);
    }
    expect(() => sdebnn.saveCheckpoint(file, { w: { ...w, shape: [2.5] } })).toThrow(/tensors\["w"\]\.shape\[0\]/);
    expect(() => sdebnn.saveCheckpoint(file, JSON.parse('{"__metadata__": {"data": [], "shape": [0]}}'))).toThrow(/other than __metadata__/);
    expect(() => sdebnn.saveCheckpoint(file, { w: { data: new Float32Array(6), shape: [3, 2], strides: [1, 3] } as never })).toThrow(
      /contiguous \(row-major\) tensor for tensors\["w"\] but received strides array of length 2/,
    );
    expect(fs.existsSync(file)).toBe(false);
  });
});
