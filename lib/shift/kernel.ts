/**
 * The shape of a corruption's implementation: a factory that precomputes what images of one
 * size need (filter taps, tables, work buffers), and returns the per-image kernel.
 */
import type { Random } from '../random';

export interface ImageDims {
  channels: number;
  height: number;
  width: number;
}

/**
 * Corrupts one image: src and dst are its C x H x W values (row-major, in [0, 1]); rng is the
 * image's own stream (deterministic corruptions never draw from it). The caller clips dst to
 * [0, 1] afterwards, as every published corruption ends with np.clip(x, 0, 1).
 */
export type ImageKernel = (src: Float32Array, dst: Float32Array, rng: Random) => void;

/**
 * A deterministic corruption that is cheaper on many images at once (JPEG: one encoder call
 * for a mosaic of images). Each image's result must still depend on that image alone.
 */
export interface BatchKernel {
  /** Corrupts `count` images, src and dst holding count x C x H x W values. */
  batch(src: Float32Array, dst: Float32Array, count: number): void;
}

/** Builds the kernel for images of `dims`, once per batch. */
export type KernelFactory = (dims: ImageDims) => ImageKernel | BatchKernel;

/** A corruption as a suite lists it. */
export interface CorruptionDefinition {
  /** The published name, e.g. 'shot_noise'. */
  name: string;
  /** Where its parameters come from, and what they are. */
  source: string;
  /** Whether it draws random numbers (otherwise the seed changes nothing). */
  random: boolean;
  /** One factory per severity, mildest first. */
  levels: readonly KernelFactory[];
}

/** A suite: its image size (the published parameters are in its pixels) and its corruptions. */
export interface SuiteDefinition {
  dims: ImageDims;
  /** The paper and code the suite follows. */
  reference: string;
  corruptions: readonly CorruptionDefinition[];
}
