import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

// The engine's C++ tests (test/native/engine_test.cpp: Euler's strong order on GBM, Brownian
// additivity, adjoint vs backprop, the grid source, the buffered solver vs autograd, maxSteps on both solvers, the
// softplus kernel), built without Node beside the addon by `npm run compile` in a checkout and run
// here through CTest.
// Skipped where the addon was not built from this checkout (a prebuild).
const build = join(__dirname, '..', 'build', 'cmake');
const built = existsSync(join(build, 'CTestTestfile.cmake'));

describe('the engine without Node (CTest)', () => {
  it.skipIf(!built)('passes every case of test/native', () => {
    let output: string;
    try {
      output = execFileSync('ctest', ['--test-dir', build, '--output-on-failure'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (error) {
      output = String((error as { stdout?: string }).stdout ?? error);
    }
    expect(output, output).toMatch(/100% tests passed, 0 tests failed out of \d+/);
  });
});
