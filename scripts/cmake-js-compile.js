#!/usr/bin/env node
// The one native build: binding.gyp's action and `npm run compile:native` both end here,
// so node-gyp-driven tools (npm install, prebuildify, electron-rebuild) run the same CMake build.
'use strict';
const { spawnSync } = require('node:child_process');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const cmakeJs = require.resolve('cmake-js/bin/cmake-js', { paths: [root] });
const args = [cmakeJs, 'compile', '--out', path.join('build', 'cmake')];
if (process.env.SDEBNN_DEBUG === '1') args.push('--debug');
const result = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
if (result.error) {
  console.error(`sdebnn: could not run cmake-js: ${result.error.message}`);
  process.exit(1);
}
process.exit(result.status ?? 1);
