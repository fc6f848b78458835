#!/usr/bin/env bash
# Proves the prebuild path: `npm run prebuild` leaves prebuilds/<platform>-<arch>/sdebnn.node,
# and with build/ out of the way the package loads from there.
set -euo pipefail
cd "$(dirname "$0")/.."
npm run prebuild >/dev/null
ls prebuilds/*/sdebnn.node
mv build build.check-prebuild
trap 'rm -rf build; mv build.check-prebuild build' EXIT
node -e "
const s = require('./dist/index.js');
s.backend();
const prebuild = require.resolve('./prebuilds/' + process.platform + '-' + process.arch + '/sdebnn.node');
if (!(prebuild in require.cache)) { console.error('check-prebuild: the addon did not load from', prebuild); process.exit(1); }
console.log('check-prebuild: loaded from', prebuild);
"
