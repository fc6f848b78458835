/**
 * The SDE-BNN checkpoint format, read and written only here (SdeBnn.save / SdeBnn.load and the
 * training checkpoint wrap it): a safetensors file (lib/checkpoint.ts) holding every tensor of
 * SdeBnn.getState() by name, with string metadata
 *   format  'sdebnn'
 *   version '1'
 *   config  JSON of the resolved model config (inputNormalization included, so the model reads
 *           raw inputs; config.model names the model, 'sdebnn' when absent as in older files)
 * plus any further keys of the caller (the training position: epoch, step, iterator).
 */
import { loadCheckpoint, saveCheckpoint, type CheckpointTensor } from './checkpoint';
import type { Tensor } from './tensor';
import { DataFormatError } from './errors';
import { describe, expectObject, expectString } from './validate';

export const MODEL_FILE_FORMAT = 'sdebnn';
export const MODEL_FILE_VERSION = '1';
const RESERVED = ['format', 'version', 'config'];

export interface ModelFile {
  /** The resolved config the model was built with (a plain object; SdeBnn resolves and checks it). */
  config: object;
  state: Record<string, Tensor>;
  /** The caller's metadata keys (format, version and config removed). */
  metadata: Record<string, string>;
}

/** Writes config, state and extra metadata atomically; a failed write leaves an existing file intact. */
export function writeModelFile(file: string, config: object, state: Record<string, Tensor>, metadata: Record<string, string> = {}): void {
  expectString(file, 'file');
  const extra = expectObject(metadata, 'metadata');
  for (const [key, value] of Object.entries(extra)) {
    if (RESERVED.includes(key)) throw new RangeError(`Expected a metadata key other than ${RESERVED.join(', ')} for metadata but received '${key}'`);
    if (typeof value !== 'string') throw new TypeError(`Expected a string for metadata.${key} but received ${describe(value)}`);
  }
  const tensors: Record<string, CheckpointTensor> = {};
  for (const [name, t] of Object.entries(state)) tensors[name] = { data: t.data, shape: t.shape };
  saveCheckpoint(file, tensors, {
    ...(extra as Record<string, string>),
    format: MODEL_FILE_FORMAT,
    version: MODEL_FILE_VERSION,
    config: JSON.stringify(config),
  });
}

/** Reads a file written by writeModelFile, checking its format, version and dtypes (errors name the file). */
export function readModelFile(file: string): ModelFile {
  const checkpoint = loadCheckpoint(file);
  const { format, version, config, ...metadata } = checkpoint.metadata;
  if (format !== MODEL_FILE_FORMAT || version !== MODEL_FILE_VERSION) {
    throw new RangeError(
      `Checkpoint ${file} is not an sdebnn checkpoint of version ${MODEL_FILE_VERSION} (format ${format ?? 'none'}, version ${version ?? 'none'})`,
    );
  }
  const state: Record<string, Tensor> = {};
  for (const [name, t] of Object.entries(checkpoint.tensors)) {
    if (!(t.data instanceof Float32Array) && !(t.data instanceof Float64Array)) {
      throw new RangeError(`Checkpoint ${file}: tensor ${name} has dtype ${t.dtype}; expected F32 or F64`);
    }
    state[name] = { data: t.data, shape: t.shape };
  }
  return { config: metadataJson(file, checkpoint.metadata, 'config') ?? {}, state, metadata };
}

/** A checkpoint's metadata `key` as a JSON object (undefined when absent); anything else is a DataFormatError naming the file and key. */
export function metadataJson(file: string, meta: Record<string, string>, key: string): object | undefined {
  const text = meta[key];
  if (text === undefined) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new DataFormatError(`Checkpoint ${file}: metadata ${key} is not valid JSON (${(error as Error).message})`, 'ERR_DATA_FORMAT');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new DataFormatError(`Checkpoint ${file}: metadata ${key} is not a JSON object (${describe(value)})`, 'ERR_DATA_FORMAT');
  }
  return value;
}
