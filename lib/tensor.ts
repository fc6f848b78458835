/**
 * Tensors cross the native boundary as a typed array with a shape (row-major), optionally
 * with element strides for a strided view of the same memory. Nothing is copied on the way in.
 */
import { describe, expectInteger } from './validate';

export type FloatArray = Float32Array | Float64Array;

export interface Tensor<T extends FloatArray = FloatArray> {
  data: T;
  shape: number[];
  /** Element strides, for a strided (non-contiguous) view of `data`. Row-major when absent. */
  strides?: number[];
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Checks a tensor argument: float typed array, integer shape, sizes or strides that fit `data`. */
export function expectTensor(value: unknown, field: string, dims?: number): Tensor {
  // A bare typed array is named as such, not as a tensor whose data is undefined.
  if (typeof value !== 'object' || value === null || ArrayBuffer.isView(value)) {
    throw new TypeError(`Expected a tensor {data: Float32Array | Float64Array, shape: number[]} for ${field} but received ${describe(value)}`);
  }
  const { data, shape, strides } = value as Partial<Tensor>;
  if (!(data instanceof Float32Array) && !(data instanceof Float64Array)) {
    throw new TypeError(`Expected Float32Array or Float64Array for ${field}.data but received ${describe(data)}`);
  }
  if (!Array.isArray(shape)) throw new TypeError(`Expected an array of sizes for ${field}.shape but received ${describe(shape)}`);
  shape.forEach((s, i) => expectInteger(s, `${field}.shape[${i}]`, 0));
  if (dims !== undefined && shape.length !== dims) {
    throw new RangeError(`Expected ${dims} dimensions for ${field}.shape but received [${shape.join(', ')}]`);
  }
  if (strides !== undefined) {
    if (!Array.isArray(strides) || strides.length !== shape.length) {
      throw new TypeError(`Expected one stride per dimension for ${field}.strides but received ${describe(strides)}`);
    }
    strides.forEach((s, i) => expectInteger(s, `${field}.strides[${i}]`, 0));
    const last = shape.reduce((acc, size, i) => acc + (size > 0 ? (size - 1) * strides[i]! : 0), 0);
    if (numel(shape) > 0 && last >= data.length) {
      throw new RangeError(`Expected ${field}.strides to stay inside data (length ${data.length}) but the last element is at ${last}`);
    }
  } else if (numel(shape) !== data.length) {
    throw new RangeError(`Expected ${field}.data to hold ${numel(shape)} elements for shape [${shape.join(', ')}] but received ${data.length}`);
  }
  return { data, shape: [...shape], ...(strides ? { strides: [...strides] } : {}) };
}

/** Builds a tensor from numbers (float32 unless a Float64Array is given). */
export function tensor(data: FloatArray | readonly number[], shape?: readonly number[]): Tensor {
  const typed = data instanceof Float32Array || data instanceof Float64Array ? data : Float32Array.from(data);
  return expectTensor({ data: typed, shape: shape ? [...shape] : [typed.length] }, 'tensor');
}
