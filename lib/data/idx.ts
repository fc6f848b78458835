/**
 * The IDX format of MNIST (http://yann.lecun.com/exdb/mnist/): a big-endian 32-bit magic
 * number (two zero bytes, a type code, the number of dimensions), one big-endian 32-bit
 * size per dimension, then the values. Only unsigned bytes (type 0x08) are read, which is
 * what MNIST and its relatives (Fashion-MNIST, KMNIST, EMNIST) use. Files may be gzipped
 * (recognised by the gzip magic 1f 8b, whatever the name).
 *
 * Every problem is a DataFormatError naming the file and what is wrong.
 */
import * as fs from 'node:fs';
import * as zlib from 'node:zlib';
import { DataFormatError } from '../errors';
import { expectInteger, expectOptionalObject, expectString, optional } from '../validate';

/** An IDX file's values and dimensions (readIdx, parseIdx). */
export interface IdxData {
  /** The values, row-major, `dims` in order. */
  data: Uint8Array;
  /** The sizes stored in the header; dims[0] is the full count even when `limit` read fewer. */
  dims: number[];
  /** How many items (along dims[0]) `data` holds. */
  count: number;
  file: string;
}

/** Options of readIdx and parseIdx. */
export interface IdxReadOptions {
  /** The magic number the file must have, e.g. 0x00000803 for images, 0x00000801 for labels. */
  magic?: number;
  /** Read only the first `limit` items along the first dimension (the length is still checked in full). */
  limit?: number;
}

const UBYTE = 0x08;
const TYPE_NAMES: Record<number, string> = { 0x08: 'unsigned byte', 0x09: 'signed byte', 0x0b: 'short', 0x0c: 'int', 0x0d: 'float', 0x0e: 'double' };

export function dataError(file: string, problem: string): DataFormatError {
  return new DataFormatError(`${file}: ${problem}`, 'ERR_DATA_FORMAT');
}

function hex(n: number): string {
  return `0x${(n >>> 0).toString(16).padStart(8, '0')}`;
}

export function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/** Decompresses gzip bytes, naming the file when the stream is damaged. */
export function gunzip(bytes: Uint8Array, file: string): Buffer {
  try {
    return zlib.gunzipSync(bytes);
  } catch (error) {
    throw dataError(file, `is not a valid gzip stream (${(error as Error).message}); the download may be truncated or damaged`);
  }
}

interface Header {
  magic: number;
  dims: number[];
  headerBytes: number;
  dataBytes: number;
}

function parseHeader(bytes: Uint8Array, totalBytes: number, file: string, expectedMagic: number | undefined): Header {
  if (totalBytes < 4) throw dataError(file, `is truncated: ${totalBytes} bytes, too short for the 4-byte IDX magic number`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0, false);
  if (expectedMagic !== undefined && magic !== expectedMagic) {
    throw dataError(file, `has the wrong magic number ${hex(magic)}; expected ${hex(expectedMagic)}`);
  }
  if (bytes[0] !== 0 || bytes[1] !== 0) throw dataError(file, `is not an IDX file (magic number ${hex(magic)} does not start with two zero bytes)`);
  const type = bytes[2]!;
  if (type !== UBYTE) {
    throw dataError(file, `holds IDX type ${TYPE_NAMES[type] ?? hex(type)}; only unsigned bytes (0x08) are supported`);
  }
  const ndims = bytes[3]!;
  if (ndims === 0) throw dataError(file, 'declares 0 dimensions');
  const headerBytes = 4 + 4 * ndims;
  if (totalBytes < headerBytes) {
    throw dataError(file, `is truncated: ${totalBytes} bytes, too short for the header of ${ndims} dimensions (${headerBytes} bytes)`);
  }
  const dims: number[] = [];
  let dataBytes = 1;
  for (let i = 0; i < ndims; i++) {
    const d = view.getUint32(4 + 4 * i, false);
    dims.push(d);
    dataBytes *= d;
  }
  const expected = headerBytes + dataBytes;
  if (totalBytes < expected) {
    throw dataError(file, `is truncated: ${totalBytes} bytes but the header [${dims.join(', ')}] needs ${expected}`);
  }
  if (totalBytes > expected) {
    throw dataError(file, `has ${totalBytes - expected} bytes of trailing data: ${totalBytes} bytes but the header [${dims.join(', ')}] needs ${expected}`);
  }
  return { magic, dims, headerBytes, dataBytes };
}

/** Parses IDX bytes already in memory (gzipped or not). `file` names the source in errors. */
export function parseIdx(bytes: Uint8Array, file = '<buffer>', options: IdxReadOptions = {}): IdxData {
  const raw = isGzip(bytes) ? gunzip(bytes, file) : bytes;
  const header = parseHeader(raw, raw.length, file, options.magic);
  const count = clampLimit(header.dims[0]!, options.limit);
  const itemBytes = header.dataBytes / Math.max(1, header.dims[0]!);
  const view = raw.subarray(header.headerBytes, header.headerBytes + count * itemBytes);
  // A partial read copies, so the rest of a large decompressed file can be freed.
  const data = count < header.dims[0]! ? Uint8Array.prototype.slice.call(view) : new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
  return { data, dims: header.dims, count, file };
}

function clampLimit(total: number, limit: number | undefined): number {
  return limit === undefined ? total : Math.min(total, limit);
}

/**
 * Reads an IDX file. Uncompressed files with a `limit` read only the bytes needed, after
 * checking the file's full length against its header; gzipped files are decompressed whole.
 */
export function readIdx(file: string, options?: IdxReadOptions): IdxData {
  expectString(file, 'file');
  const opts = expectOptionalObject(options, 'options');
  const limit = optional(opts.limit, undefined, (v) => expectInteger(v, 'options.limit', 0));
  const magic = optional(opts.magic, undefined, (v) => expectInteger(v, 'options.magic', 0, 0xffffffff));
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw dataError(file, code === 'ENOENT' ? 'does not exist' : `cannot be opened (${(error as Error).message})`);
  }
  try {
    const size = fs.fstatSync(fd).size;
    const head = Buffer.alloc(Math.min(size, 4 + 4 * 255));
    readFully(fd, head, 0);
    if (isGzip(head)) return parseIdx(readWhole(fd, size), file, { magic, limit });
    const ndims = head.length >= 4 ? head[3]! : 0;
    const header = parseHeader(head.subarray(0, Math.min(head.length, 4 + 4 * ndims)), size, file, magic);
    const count = clampLimit(header.dims[0]!, limit);
    const itemBytes = header.dataBytes / Math.max(1, header.dims[0]!);
    const data = new Uint8Array(count * itemBytes);
    readFully(fd, data, header.headerBytes);
    return { data, dims: header.dims, count, file };
  } finally {
    fs.closeSync(fd);
  }
}

function readFully(fd: number, target: Uint8Array, position: number): void {
  let done = 0;
  while (done < target.length) {
    const n = fs.readSync(fd, target, done, target.length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  if (done < target.length) throw new Error(`Unexpected end of file after ${position + done} bytes`);
}

function readWhole(fd: number, size: number): Buffer {
  const buffer = Buffer.allocUnsafe(size);
  readFully(fd, buffer, 0);
  return buffer;
}
