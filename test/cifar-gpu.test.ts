// The CUDA math modes and memory figures (lib/gpu.ts) and config.cudaGraph for the CIFAR-scale GPU
// runs: on a machine without CUDA turning a mode on is a DeviceUnavailableError naming it (never a
// silent float32 run) and strict float32 stays settable; with CUDA the mode reads back as set and
// the allocator's peak covers a training step's tensors. The CUDA graphs themselves are checked on
// a GPU by scripts/gpu-check-bnn.js (graph against eager steps).
import { describe, expect, it } from 'vitest';
import { sdebnn } from './helpers';

const cuda = sdebnn.backend().cudaAvailable;

describe('CUDA math modes', () => {
  it('check their arguments before any native work', () => {
    expect(() => sdebnn.setCudaMathMode({ tf32: 'yes' } as never)).toThrow(new TypeError('Expected a boolean for mode.tf32 but received "yes"'));
    expect(() => sdebnn.setCudaMathMode({ autocast: 'fp16' } as never)).toThrow(`Expected one of 'off', 'bf16' for mode.autocast but received "fp16"`);
    expect(() => sdebnn.setCudaMathMode({ tf32: true, fast: true } as never)).toThrow(/mode.fast/);
    expect(() => sdebnn.cudaMemoryStats('cpu')).toThrow(new RangeError(`Expected 'cuda' or 'cuda:N' for device but received "cpu"`));
  });

  it.skipIf(cuda)('refuse TF32 and bf16 autocast without CUDA, and keep strict float32 settable', () => {
    const before = sdebnn.cudaMathMode();
    expect(before).toEqual({ tf32Matmul: false, tf32Conv: true, autocast: 'off' }); // LibTorch's defaults, as PyTorch's
    for (const [mode, named] of [
      [{ tf32: true }, 'mode.tf32 true'],
      [{ autocast: 'bf16' as const }, "mode.autocast 'bf16'"],
    ] as const) {
      let error: unknown;
      try {
        sdebnn.setCudaMathMode(mode);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(sdebnn.DeviceUnavailableError);
      expect((error as Error).message).toBe(`Expected a CUDA device for ${named} (CUDA math modes) but this LibTorch has none`);
    }
    expect(sdebnn.cudaMathMode()).toEqual(before);
    sdebnn.setCudaMathMode({ tf32: false });
    expect(sdebnn.cudaMathMode()).toEqual({ tf32Matmul: false, tf32Conv: false, autocast: 'off' });
    expect(() => sdebnn.cudaMemoryStats('cuda')).toThrow(sdebnn.DeviceUnavailableError);
  });

  it('check config.cudaGraph before any native work: a boolean, fixed steps on one grid, a CUDA device', () => {
    expect(() => sdebnn.resolveSdeBnnConfig({ cudaGraph: 'yes' as never })).toThrow(
      new TypeError('Expected a boolean for config.cudaGraph but received "yes"'),
    );
    expect(() => sdebnn.resolveSdeBnnConfig({ cudaGraph: true, solver: { gradient: 'adjoint', adjointSteps: 5 } })).toThrow(
      new RangeError(
        'Expected fixed steps on one grid with config.cudaGraph (solver.adaptive false, a method other than srk, and for the adjoint adjointAdaptive ' +
          "false and adjointSteps equal to steps) but received method 'euler', steps 10, adaptive false, gradient 'adjoint', adjointSteps 5, adjointAdaptive false",
      ),
    );
    expect(() => sdebnn.resolveSdeBnnConfig({ cudaGraph: true, solver: { adaptive: true } })).toThrow(/^Expected fixed steps on one grid/);
    expect(() => sdebnn.resolveSdeBnnConfig({ cudaGraph: true })).toThrow(
      new RangeError("Expected config.device 'cuda' or 'cuda:N' with config.cudaGraph (it records CUDA work) but received 'cpu'"),
    );
    expect(sdebnn.resolveSdeBnnConfig({}).cudaGraph).toBe(false);
  });

  it.skipIf(cuda)('refuse a CUDA-graph model without CUDA: a DeviceUnavailableError, never an eager CPU run', () => {
    expect(() => new sdebnn.SdeBnn({ device: 'cuda', cudaGraph: true })).toThrow(sdebnn.DeviceUnavailableError);
  });

  it.skipIf(!cuda)('set TF32 and bf16 autocast on CUDA, and report the peak memory of a step', async () => {
    sdebnn.setCudaMathMode({ tf32: true, autocast: 'bf16' });
    expect(sdebnn.cudaMathMode()).toEqual({ tf32Matmul: true, tf32Conv: true, autocast: 'bf16' });
    sdebnn.setCudaMathMode({ tf32: false, autocast: 'off' });
    expect(sdebnn.cudaMathMode()).toEqual({ tf32Matmul: false, tf32Conv: false, autocast: 'off' });
    const model = new sdebnn.SdeBnn({ inputShape: [3, 32, 32], stem: false, aug: 1, blocks: [1], width: 32, pool: 4, device: 'cuda', seed: 1 });
    sdebnn.cudaMemoryStats('cuda', { reset: true });
    await model.trainStep(new Float32Array(64 * 3072).fill(0.5), new Uint8Array(64));
    const stats = sdebnn.cudaMemoryStats('cuda');
    // At least the batch itself (64 x 4 x 32 x 32 float32 states) was allocated at once.
    expect(stats.peakAllocatedBytes).toBeGreaterThan(64 * 4 * 1024 * 4);
    expect(stats.peakAllocatedBytes).toBeGreaterThanOrEqual(stats.allocatedBytes);
    model.dispose();
  });
});
