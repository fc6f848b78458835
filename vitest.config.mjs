import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Native work runs on LibTorch threads; one test file at a time keeps the 2-core CI honest.
    fileParallelism: false,
    testTimeout: 120000,
    hookTimeout: 120000,
  },
});
