#!/usr/bin/env node
// clang-format over the C++ sources (native/, test/native/) with the repository's .clang-format.
//   node scripts/clang-format.js          rewrites the files that differ
//   node scripts/clang-format.js --check  lists them and exits 1 (npm run lint)
// The binary is the npm package clang-format's (clang-format 15, bundled for linux x64, macOS and
// Windows, so CI needs nothing from apt); elsewhere a clang-format on the PATH.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const root = path.join(__dirname, '..');
const DIRS = ['native', path.join('test', 'native')];
const EXTENSIONS = new Set(['.h', '.cc', '.cpp', '.inc']);

function binary() {
  try {
    return require('clang-format').getNativeBinary();
  } catch {
    return 'clang-format';
  }
}

function sources(dir) {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return sources(p);
    return e.isFile() && EXTENSIONS.has(path.extname(e.name)) ? [p] : [];
  });
}

function main() {
  const check = process.argv.includes('--check');
  const bin = binary();
  const files = DIRS.flatMap((d) => sources(path.join(root, d))).sort();
  const differ = [];
  for (const file of files) {
    // --assume-filename: finds .clang-format, and tells the include sorter which header is the file's own.
    const r = spawnSync(bin, ['--style=file', `--assume-filename=${file}`], {
      input: fs.readFileSync(file),
      maxBuffer: 64 << 20,
    });
    if (r.error || r.status !== 0) {
      const why = r.error ? r.error.message : r.stderr.toString().trim();
      console.error(`clang-format failed on ${path.relative(root, file)}: ${why}`);
      if (r.error && r.error.code === 'ENOENT') console.error('Install clang-format (npm ci installs the npm package clang-format).');
      process.exit(2);
    }
    if (r.stdout.equals(fs.readFileSync(file))) continue;
    differ.push(path.relative(root, file));
    if (!check) fs.writeFileSync(file, r.stdout);
  }
  if (check && differ.length > 0) {
    console.error(`clang-format: ${differ.length} of ${files.length} files need formatting (npm run format):\n  ${differ.join('\n  ')}`);
    process.exit(1);
  }
  if (!check && differ.length > 0) console.log(`clang-format: formatted ${differ.length} of ${files.length} files`);
}

main();
