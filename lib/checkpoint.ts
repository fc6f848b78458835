/**
 * Checkpoints in the safetensors layout (https://github.com/huggingface/safetensors), so
 * Python can open them with `safetensors.numpy.load_file` or `safetensors.torch.load_file`:
 *
 *     8 bytes    N, the header length, unsigned little-endian
 *     N bytes    JSON: { "<name>": { "dtype": "F32", "shape": [..], "data_offsets": [begin, end] }, ...,
 *                        "__metadata__": { "<key>": "<string>", ... } }, padded with spaces to a multiple of 8
 *     the rest   the tensors' bytes, little-endian, row-major; offsets relative to the start of this part,
 *                contiguous, no gaps, no overlap
 *
 * Writes are atomic: a temp file in the same folder, fsync, rename over the target, fsync of
 * the folder. A failed write leaves an existing checkpoint as it was and removes the temp file;
 * a writer killed mid-write leaves its temp file, which the next save to that path removes.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DataFormatError } from './errors';
import { describe, expectInteger, expectObject, expectOptionalObject, expectString } from './validate';

/** The safetensors dtypes. */
export type Dtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U64' | 'U32' | 'U16' | 'U8' | 'BOOL';

/** The typed arrays a checkpoint tensor may hold (F16 and BF16 as their raw Uint16 bits). */
export type CheckpointArray =
  Float64Array | Float32Array | BigInt64Array | BigUint64Array | Int32Array | Uint32Array | Int16Array | Uint16Array | Int8Array | Uint8Array;

/** A tensor to save: row-major data, its shape, and a dtype where the array type allows several. */
export interface CheckpointTensor<A extends CheckpointArray = CheckpointArray> {
  data: A;
  shape: number[];
  /** Inferred from the array type when absent; needed only for 'BOOL' (Uint8Array of 0/1) and 'F16'/'BF16' (raw Uint16Array bits). */
  dtype?: Dtype;
}

/** A tensor as loaded: data, shape and the file's dtype. */
export interface LoadedTensor<A extends CheckpointArray = CheckpointArray> {
  data: A;
  shape: number[];
  dtype: Dtype;
}

/** A loaded safetensors file: its path, tensors by name and string metadata. */
export interface Checkpoint {
  path: string;
  tensors: Record<string, LoadedTensor>;
  metadata: Record<string, string>;
}

type ArrayClass = {
  new (n: number): CheckpointArray;
  new (buffer: ArrayBuffer, byteOffset: number, length: number): CheckpointArray;
  BYTES_PER_ELEMENT: number;
};

const DTYPES: Record<Dtype, ArrayClass> = {
  F64: Float64Array,
  F32: Float32Array,
  F16: Uint16Array,
  BF16: Uint16Array,
  I64: BigInt64Array,
  I32: Int32Array,
  I16: Int16Array,
  I8: Int8Array,
  U64: BigUint64Array,
  U32: Uint32Array,
  U16: Uint16Array,
  U8: Uint8Array,
  BOOL: Uint8Array,
};

/** Whether `name` is a key of DTYPES itself: `in` would also accept 'constructor' or 'toString'. */
function isDtype(name: string): name is Dtype {
  return Object.hasOwn(DTYPES, name);
}

const INFERRED: [ArrayClass, Dtype][] = [
  [Float64Array, 'F64'],
  [Float32Array, 'F32'],
  [BigInt64Array, 'I64'],
  [BigUint64Array, 'U64'],
  [Int32Array, 'I32'],
  [Uint32Array, 'U32'],
  [Int16Array, 'I16'],
  [Uint16Array, 'U16'],
  [Int8Array, 'I8'],
  [Uint8Array, 'U8'],
] as unknown as [ArrayClass, Dtype][];

/** The largest header this reader accepts (safetensors' own limit). */
export const MAX_HEADER_BYTES = 100_000_000;
const METADATA_KEY = '__metadata__';
const LITTLE_ENDIAN = os.endianness() === 'LE';

function formatError(file: string, problem: string): DataFormatError {
  return new DataFormatError(`Checkpoint ${file}: ${problem}`, 'ERR_DATA_FORMAT');
}

function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Whether `strides` are the row-major strides of `shape` (what a contiguous tensor has). */
export function isRowMajor(shape: readonly number[], strides: unknown): boolean {
  if (!Array.isArray(strides) || strides.length !== shape.length) return false;
  if (shape.includes(0)) return true; // empty: no element is addressed
  let expected = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i]! > 1 && strides[i] !== expected) return false;
    expected *= shape[i]!;
  }
  return true;
}

function checkTensor(value: unknown, field: string): { data: CheckpointArray; shape: number[]; dtype: Dtype } {
  const obj = expectObject(value, field);
  const data = obj.data;
  const entry = INFERRED.find(([cls]) => data instanceof cls);
  if (!entry) {
    throw new TypeError(
      `Expected a typed array (Float32Array, Float64Array, Uint8Array, Int32Array, BigInt64Array, ...) for ${field}.data but received ${describe(data)}`,
    );
  }
  const array = data as CheckpointArray;
  if (!Array.isArray(obj.shape)) throw new TypeError(`Expected an array of sizes for ${field}.shape but received ${describe(obj.shape)}`);
  const shape = obj.shape.map((s, i) => expectInteger(s, `${field}.shape[${i}]`, 0));
  if (obj.strides !== undefined && !isRowMajor(shape, obj.strides)) {
    throw new RangeError(`Expected a contiguous (row-major) tensor for ${field} but received strides ${describe(obj.strides)}`);
  }
  if (numel(shape) !== array.length) {
    throw new RangeError(`Expected ${field}.data to hold ${numel(shape)} elements for shape [${shape.join(', ')}] but received ${array.length}`);
  }
  let dtype = entry[1];
  if (obj.dtype !== undefined) {
    const given = expectString(obj.dtype, `${field}.dtype`);
    if (!isDtype(given) || !(array instanceof (DTYPES[given] as unknown as typeof Uint8Array))) {
      throw new RangeError(
        `Expected a dtype matching ${array.constructor.name} (${dtype}${dtype === 'U8' ? " or 'BOOL'" : dtype === 'U16' ? ", 'F16' or 'BF16'" : ''}) for ${field}.dtype but received ${describe(obj.dtype)}`,
      );
    }
    dtype = given;
  }
  return { data: array, shape, dtype };
}

/** Bytes of a typed array in little-endian order (a view when the host is little-endian). */
function littleEndianBytes(array: CheckpointArray): Uint8Array {
  const view = new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
  if (LITTLE_ENDIAN || array.BYTES_PER_ELEMENT === 1) return view;
  const copy = Buffer.from(view);
  if (array.BYTES_PER_ELEMENT === 2) copy.swap16();
  else if (array.BYTES_PER_ELEMENT === 4) copy.swap32();
  else copy.swap64();
  return copy;
}

/** Builds the header and the ordered list of tensor bytes. Tensors are laid out by element size (largest first), then name, so every tensor is aligned. */
function layout(tensors: Record<string, unknown>, metadata: Record<string, string>): { header: Buffer; parts: Uint8Array[] } {
  const entries = Object.keys(tensors).map((name) => {
    if (name === METADATA_KEY) throw new RangeError(`Expected a tensor name other than ${METADATA_KEY} for tensors`);
    return { name, ...checkTensor(tensors[name], `tensors[${JSON.stringify(name)}]`) };
  });
  entries.sort((a, b) => b.data.BYTES_PER_ELEMENT - a.data.BYTES_PER_ELEMENT || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const json: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) json[METADATA_KEY] = metadata;
  let offset = 0;
  for (const e of entries) {
    json[e.name] = { dtype: e.dtype, shape: e.shape, data_offsets: [offset, offset + e.data.byteLength] };
    offset += e.data.byteLength;
  }
  let text = JSON.stringify(json);
  const padded = Math.ceil(Buffer.byteLength(text) / 8) * 8;
  text += ' '.repeat(padded - Buffer.byteLength(text));
  const header = Buffer.alloc(8 + padded);
  header.writeBigUInt64LE(BigInt(padded), 0);
  header.write(text, 8, 'utf8');
  return { header, parts: entries.map((e) => littleEndianBytes(e.data)) };
}

/** Whether process `pid` exists on this machine (EPERM: it does, under another user). */
function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes the temp files of earlier saves to `target` whose writer has died (killed mid-write):
 * `.<name>.<pid>.<hex>.tmp` with no process `pid`. Only those names, never the target itself, and
 * never a live writer's file; best effort (a file that cannot be removed is left).
 */
function removeStaleTemps(dir: string, target: string): void {
  const prefix = `.${path.basename(target)}.`;
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const match = /^(\d+)\.[0-9a-f]{8}\.tmp$/.exec(name.slice(prefix.length));
    if (!match) continue;
    const pid = Number(match[1]);
    if (pid === process.pid || processAlive(pid)) continue;
    try {
      fs.unlinkSync(path.join(dir, name));
    } catch {
      // gone already, or not ours to remove
    }
  }
}

function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.length) done += fs.writeSync(fd, bytes, done, bytes.length - done);
}

/**
 * Writes `tensors` and string `metadata` to `file` atomically. Throws the file system's error
 * (with its `code`, e.g. ENOENT for a missing folder, ENOSPC for a full disk) after cleaning up.
 */
export function saveCheckpoint(file: string, tensors: Record<string, CheckpointTensor>, metadata: Record<string, string> = {}): void {
  expectString(file, 'path');
  const tensorMap = expectObject(tensors, 'tensors');
  const meta = expectOptionalObject(metadata, 'metadata');
  for (const [key, value] of Object.entries(meta)) {
    if (typeof value !== 'string') throw new TypeError(`Expected a string for metadata.${key} but received ${describe(value)}`);
  }
  const { header, parts } = layout(tensorMap, meta as Record<string, string>);

  const target = path.resolve(file);
  const dir = path.dirname(target);
  removeStaleTemps(dir, target);
  const temp = path.join(dir, `.${path.basename(target)}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`);
  let fd: number | undefined;
  try {
    fd = fs.openSync(temp, 'wx', 0o644);
    writeAll(fd, header);
    for (const part of parts) writeAll(fd, part);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(temp, target);
  } catch (error) {
    if (fd !== undefined) {
      try {
        fs.closeSync(fd);
      } catch {
        // already failing; the original error matters
      }
    }
    try {
      fs.unlinkSync(temp);
    } catch {
      // never created, or already gone
    }
    const e = error as NodeJS.ErrnoException;
    const wrapped = new Error(`Could not write checkpoint ${target}: ${e.message}`, { cause: error }) as NodeJS.ErrnoException;
    if (e.code !== undefined) wrapped.code = e.code;
    throw wrapped;
  }
  // Make the rename itself durable. Some file systems refuse fsync on a folder; the data is already safe.
  try {
    const dfd = fs.openSync(dir, 'r');
    try {
      fs.fsyncSync(dfd);
    } finally {
      fs.closeSync(dfd);
    }
  } catch {
    // best effort
  }
}

/** An own enumerable property, even for names such as "__proto__". */
function define<T>(target: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

function isNonNegativeInteger(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** Parses safetensors bytes; `file` names the source in errors. Every structural problem is a DataFormatError. */
export function parseCheckpoint(bytes: Uint8Array, file = '<buffer>'): Checkpoint {
  if (bytes.length < 8) throw formatError(file, `is truncated: ${bytes.length} bytes, too short for the 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = view.getBigUint64(0, true);
  if (n > BigInt(bytes.length - 8)) {
    throw formatError(
      file,
      `declares a header of ${n} bytes but the file has only ${bytes.length - 8} bytes after the length (truncated or not a safetensors file)`,
    );
  }
  if (n > BigInt(MAX_HEADER_BYTES)) throw formatError(file, `declares a header of ${n} bytes, more than the limit of ${MAX_HEADER_BYTES}`);
  const headerBytes = Number(n);
  if (headerBytes < 2 || bytes[8] !== 0x7b /* { */) throw formatError(file, 'has a header that is not a JSON object (it must start with "{")');
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + headerBytes)));
  } catch (error) {
    throw formatError(file, `has a header that is not valid JSON (${(error as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw formatError(file, 'has a header that is not a JSON object');
  const header = json as Record<string, unknown>;
  const dataStart = 8 + headerBytes;
  const dataLength = bytes.length - dataStart;

  const metadata: Record<string, string> = {};
  const rawMeta = header[METADATA_KEY];
  if (rawMeta !== undefined) {
    if (typeof rawMeta !== 'object' || rawMeta === null || Array.isArray(rawMeta))
      throw formatError(file, `has a ${METADATA_KEY} that is not an object of strings`);
    for (const [key, value] of Object.entries(rawMeta)) {
      if (typeof value !== 'string') throw formatError(file, `has metadata ${JSON.stringify(key)} that is not a string (${describe(value)})`);
      define(metadata, key, value);
    }
  }

  const entries: { name: string; dtype: Dtype; shape: number[]; begin: number; end: number }[] = [];
  for (const [name, raw] of Object.entries(header)) {
    if (name === METADATA_KEY) continue;
    const where = `tensor ${JSON.stringify(name)}`;
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw formatError(file, `${where} is not an object`);
    const { dtype, shape, data_offsets: offsets } = raw as Record<string, unknown>;
    if (typeof dtype !== 'string' || !isDtype(dtype)) {
      throw formatError(file, `${where} has unknown dtype ${describe(dtype)}; known: ${Object.keys(DTYPES).join(', ')}`);
    }
    if (!Array.isArray(shape) || !shape.every(isNonNegativeInteger)) throw formatError(file, `${where} has an invalid shape ${JSON.stringify(shape)}`);
    const pair = Array.isArray(offsets) && offsets.length === 2 && offsets.every(isNonNegativeInteger) ? (offsets as [number, number]) : undefined;
    if (!pair || pair[0] > pair[1]) throw formatError(file, `${where} has invalid data_offsets ${JSON.stringify(offsets)}`);
    const [begin, end] = pair;
    if (end > dataLength) {
      throw formatError(file, `${where} has data_offsets [${begin}, ${end}] beyond the ${dataLength} data bytes (truncated?)`);
    }
    const itemBytes = DTYPES[dtype].BYTES_PER_ELEMENT;
    const expectedBytes = numel(shape) * itemBytes;
    if (end - begin !== expectedBytes) {
      throw formatError(file, `${where} has ${end - begin} bytes but dtype ${dtype} and shape [${shape.join(', ')}] need ${expectedBytes}`);
    }
    entries.push({ name, dtype, shape, begin, end });
  }
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  for (const e of entries) {
    if (e.begin !== cursor) {
      throw formatError(
        file,
        e.begin < cursor
          ? `tensor ${JSON.stringify(e.name)} overlaps the previous tensor (data_offsets start at ${e.begin}, previous ends at ${cursor})`
          : `has a gap of ${e.begin - cursor} bytes before tensor ${JSON.stringify(e.name)} (data_offsets must be contiguous)`,
      );
    }
    cursor = e.end;
  }
  if (cursor !== dataLength) throw formatError(file, `has ${dataLength - cursor} bytes after the last tensor (the data must end where the tensors end)`);

  const tensors: Record<string, LoadedTensor> = {};
  for (const e of entries) {
    const Cls = DTYPES[e.dtype];
    const size = Cls.BYTES_PER_ELEMENT;
    const count = (e.end - e.begin) / size;
    // A copy: aligned, independent of the file buffer, and in host byte order.
    const data = new Cls(count);
    const target = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    target.set(bytes.subarray(dataStart + e.begin, dataStart + e.end));
    if (!LITTLE_ENDIAN && size > 1) {
      const b = Buffer.from(target.buffer, target.byteOffset, target.byteLength);
      if (size === 2) b.swap16();
      else if (size === 4) b.swap32();
      else b.swap64();
    }
    define(tensors, e.name, { data, shape: e.shape, dtype: e.dtype });
  }
  return { path: file, tensors, metadata };
}

/** Reads and checks a checkpoint; a missing, truncated or malformed file is a DataFormatError naming it. */
export function loadCheckpoint(file: string): Checkpoint {
  expectString(file, 'path');
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw formatError(file, code === 'ENOENT' ? 'does not exist' : `cannot be read (${(error as Error).message})`);
  }
  return parseCheckpoint(bytes, file);
}

/** What checkpointMismatches and expectCheckpoint compare a checkpoint with. */
export interface ExpectedCheckpoint {
  /** Compared with metadata.version. */
  version?: string;
  /** Further metadata that must match exactly. */
  metadata?: Record<string, string>;
  /** Each expected tensor: its shape, or its shape and dtype. */
  tensors: Record<string, readonly number[] | { shape: readonly number[]; dtype?: Dtype }>;
  /** Accept tensors the expectation does not list (default false). */
  allowExtra?: boolean;
}

/** Every difference between a loaded checkpoint and what the model expects; empty when it fits. */
export function checkpointMismatches(checkpoint: Checkpoint, expected: ExpectedCheckpoint): string[] {
  const ckpt = expectObject(checkpoint, 'checkpoint') as unknown as Checkpoint;
  const exp = expectObject(expected, 'expected');
  const wanted = expectObject(exp.tensors, 'expected.tensors');
  const problems: string[] = [];
  const meta = { ...(exp.metadata as Record<string, string> | undefined), ...(exp.version !== undefined ? { version: exp.version as string } : {}) };
  for (const [key, value] of Object.entries(meta)) {
    const got = Object.hasOwn(ckpt.metadata, key) ? ckpt.metadata[key] : undefined;
    if (got !== value) problems.push(`metadata ${key} is ${got === undefined ? 'missing' : JSON.stringify(got)}, expected ${JSON.stringify(value)}`);
  }
  for (const [name, spec] of Object.entries(wanted)) {
    const shape = Array.isArray(spec) ? (spec as number[]) : ((spec as { shape: number[] }).shape ?? []);
    const dtype = Array.isArray(spec) ? undefined : (spec as { dtype?: Dtype }).dtype;
    const got = Object.hasOwn(ckpt.tensors, name) ? ckpt.tensors[name] : undefined;
    if (!got) {
      problems.push(`tensor ${name} is missing (expected shape [${shape.join(', ')}])`);
      continue;
    }
    if (got.shape.length !== shape.length || got.shape.some((s, i) => s !== shape[i])) {
      problems.push(`tensor ${name} has shape [${got.shape.join(', ')}], expected [${shape.join(', ')}]`);
    }
    if (dtype !== undefined && got.dtype !== dtype) problems.push(`tensor ${name} has dtype ${got.dtype}, expected ${dtype}`);
  }
  if (exp.allowExtra !== true) {
    for (const name of Object.keys(ckpt.tensors).sort()) if (!Object.hasOwn(wanted, name)) problems.push(`tensor ${name} is not expected`);
  }
  return problems;
}

/** Throws one DataFormatError listing every mismatch between the checkpoint and the expectation. */
export function expectCheckpoint(checkpoint: Checkpoint, expected: ExpectedCheckpoint): Checkpoint {
  const problems = checkpointMismatches(checkpoint, expected);
  if (problems.length > 0) {
    throw formatError(checkpoint.path, `does not match the model (${problems.length} problem${problems.length > 1 ? 's' : ''}): ${problems.join('; ')}`);
  }
  return checkpoint;
}
