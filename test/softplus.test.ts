import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

// The engine's own softplus (value and slope in one pass, native/sde/vector_math.h) against
// long-double log1p(exp(x)) and sigmoid over a wide range, by a small C++ program built here with
// the addon's compiler flags (test/native/softplus_check.cpp), in the baseline and AVX2+FMA builds
// and the conv kernels' AVX-512 one. Skipped where no C++ compiler is at hand (the addon came prebuilt).
function compiler(): string | undefined {
  for (const cxx of [process.env.CXX, 'c++', 'g++'].filter((c): c is string => !!c)) {
    try {
      execFileSync(cxx, ['--version'], { stdio: 'ignore' });
      return cxx;
    } catch {
      // next
    }
  }
  return undefined;
}

const cxx = compiler();

describe('fast path softplus kernel', () => {
  it.skipIf(!cxx)('matches log1p(exp(x)) (threshold 20) and sigmoid: float to ~1e-7, double to ~1e-16; NaN and infinities', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sdebnn-softplus-'));
    try {
      const exe = join(dir, 'softplus_check');
      execFileSync(cxx!, ['-O3', '-std=gnu++17', '-Wno-psabi', '-I', join(__dirname, '..', 'native'), join(__dirname, 'native', 'softplus_check.cpp'), '-o', exe], {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      const r = JSON.parse(execFileSync(exe, { encoding: 'utf8' })) as Record<string, { value: number; slope: number; exactAbove20: boolean; specials: boolean }> & { avx2: boolean; avx512: boolean };
      const builds = ['floatBase', 'doubleBase', ...(r.avx2 ? ['floatAvx2', 'doubleAvx2'] : []), ...(r.avx512 ? ['floatAvx512'] : [])];
      for (const name of builds) {
        const e = r[name]!;
        const tol = name.startsWith('float') ? 4e-7 : 1e-15;
        expect(e.value, `${name} value`).toBeLessThan(tol);
        expect(e.slope, `${name} slope`).toBeLessThan(tol);
        expect(e.exactAbove20, `${name}: z > 20 gives z`).toBe(true);
        expect(e.specials, `${name}: NaN, infinities, value without slope`).toBe(true);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
