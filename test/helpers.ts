// Tests run against the built package (dist/), as users load it.
// eslint-disable-next-line @typescript-eslint/no-require-imports
export const sdebnn = require('../dist/index.js') as typeof import('../dist/index');
// eslint-disable-next-line @typescript-eslint/no-require-imports
export const { native } = require('../dist/native.js') as typeof import('../dist/native');
