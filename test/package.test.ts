// The package as another package depends on it (issue 13): `npm pack` as it would be published,
// `npm install <tarball>` into a fresh project (the install script builds the addon from source
// against the LibTorch the build finds, or loads a bundled prebuild where one matches), then use
// through `require` and `import` and the `sdebnn` bin. The build from source takes ~1.5 min on 2 cores.
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = path.resolve(__dirname, '..');
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'sdebnn-package-'));
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

function run(cmd: string, args: string[], cwd: string): { stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', maxBuffer: 64 << 20, env: { ...process.env, npm_config_loglevel: 'warn' } });
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}) in ${cwd}:\n${(r.stdout + r.stderr).slice(-4000)}`);
  }
  return { stdout: r.stdout, stderr: r.stderr };
}

describe('the published package, installed as a dependency', () => {
  it('packs every file the install needs, installs into a fresh project, and works through require, import and its bin', () => {
    // Packed as `npm publish` would (dist/ is built by pretest; prepare would only rebuild it).
    const packed = JSON.parse(run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], root).stdout) as [
      { filename: string; files: { path: string }[] },
    ];
    const files = packed[0].files.map((f) => f.path);
    for (const needed of [
      'package.json',
      'binding.gyp',
      'CMakeLists.txt',
      'scripts/cmake-js-compile.js',
      'dist/index.js',
      'dist/index.mjs',
      'dist/index.d.ts',
      'dist/cli.js',
      'native/addon/addon.cc',
      'native/sde/solvers.cpp',
      'native/bnn/model.cpp',
    ]) {
      expect(files, needed).toContain(needed);
    }
    expect(files.filter((f) => /^(test|lib|build|node_modules)\//.test(f))).toEqual([]);
    const tarball = path.join(work, packed[0].filename);

    // A consumer that has reviewed sdebnn's install script (npm 11's allowScripts; older npm ignores the field).
    const consumer = path.join(work, 'consumer');
    fs.mkdirSync(consumer);
    fs.writeFileSync(
      path.join(consumer, 'package.json'),
      JSON.stringify({ name: 'sdebnn-consumer', version: '1.0.0', private: true, allowScripts: { [`file:${tarball}`]: true, sdebnn: true } }, null, 2),
    );
    run('npm', ['install', tarball, '--no-audit', '--no-fund', '--prefer-offline'], consumer);
    const installed = path.join(consumer, 'node_modules', 'sdebnn');
    expect(fs.existsSync(path.join(installed, 'build', 'Release', 'sdebnn.node')) || fs.existsSync(path.join(installed, 'prebuilds'))).toBe(true);

    const cjs = run(
      process.execPath,
      [
        '-e',
        `
      const s = require('sdebnn');
      const sde = new s.SDE({ type: 'gbm', mu: [0.1], sigma: [0.2] });
      s.sdeint(sde, { data: Float32Array.of(1, 1), shape: [2, 1] }, [0, 1], { dt: 0.1 }).then((r) => {
        const addon = Object.keys(require.cache).find((k) => k.endsWith('.node'));
        console.log(JSON.stringify({ entry: require.resolve('sdebnn'), addon, torch: s.backend().torchVersion, shape: r.ys.shape, finite: r.ys.data.every(Number.isFinite) }));
      });
    `,
      ],
      consumer,
    );
    const c = JSON.parse(cjs.stdout) as { entry: string; addon: string; torch: string; shape: number[]; finite: boolean };
    expect(fs.realpathSync(c.entry)).toBe(fs.realpathSync(path.join(installed, 'dist', 'index.js')));
    expect(fs.realpathSync(c.addon).startsWith(fs.realpathSync(installed) + path.sep)).toBe(true); // its own addon, not this checkout's
    expect(c.torch).toMatch(/^\d+\.\d+/);
    expect(c).toMatchObject({ shape: [2, 2, 1], finite: true });

    const esm = run(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `
      import { SdeBnn, LimitError, backend } from 'sdebnn';
      import sdebnn from 'sdebnn';
      const model = new SdeBnn({ kind: 'mlp', inputShape: [2], seed: 1 });
      const p = await model.predict(Float32Array.of(0.1, 0.2), { samples: 2, seed: 1 });
      let limit = '';
      try { new SdeBnn({ kind: 'mlp', inputShape: [1e9] }); } catch (e) { limit = e instanceof LimitError ? e.option : String(e); }
      console.log(JSON.stringify({ same: sdebnn.backend === backend, kind: p.kind, mean: Array.from(p.mean), limit }));
    `,
      ],
      consumer,
    );
    const e = JSON.parse(esm.stdout) as { same: boolean; kind: string; mean: number[]; limit: string };
    expect(e).toMatchObject({ same: true, kind: 'regression', limit: 'config.maxBytes' });
    expect(e.mean.every(Number.isFinite)).toBe(true);

    const bin = execFileSync(path.join(consumer, 'node_modules', '.bin', 'sdebnn'), ['backend'], { cwd: consumer, encoding: 'utf8' });
    expect(bin).toContain(c.torch);
  }, 1_200_000);
});
