// Data-parallel training on c10d Gloo (CPU): the process group's collectives, errors and
// timeouts in one process; N ranks against one (shared weight path, float64, mlp and conv, with
// resume across world sizes), ranks staying identical with independent paths, divergence and
// mismatch detection, in worker processes started by launch(); the CLI launcher's failure
// handling and two launchers as two nodes.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { sdebnn } from './helpers';

const { initDistributed, distributedAvailability, launch, SdeBnn, train, DistributedError, DistributedUnavailableError } = sdebnn;
const job = require('./fixtures/dist-job.js') as {
  data(kind: string): { train: import('../dist/index').Dataset; test: import('../dist/index').Dataset };
  config(kind: string): import('../dist/index').SdeBnnConfig;
  trainOptions(kind: string): import('../dist/index').TrainOptions;
  parameters(model: import('../dist/index').SdeBnn): Record<string, number[]>;
};

const worker = path.join(__dirname, 'fixtures', 'dist-worker.js');
const cli = path.join(__dirname, '..', 'dist', 'cli.js');
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'sdebnn-dist-'));

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function maxDifference(a: Record<string, number[]>, b: Record<string, number[]>): number {
  expect(Object.keys(a)).toEqual(Object.keys(b));
  let max = 0;
  for (const name of Object.keys(a)) a[name]!.forEach((v, i) => (max = Math.max(max, Math.abs(v - b[name]![i]!))));
  return max;
}

type WorkerRun = { parameters: Record<string, number[]>; epochs: import('../dist/index').EpochLog[]; kls: number[] };
type WorkerOutput = { runs?: Record<string, WorkerRun>; error?: { code: string; name: string; message: string } };

/** Launches `nproc` dist-worker.js ranks on `runs`; returns each rank's output. */
async function launchWorkers(runs: object[], nproc = 2) {
  const out = path.join(tmp(), 'out');
  const lines: string[] = [];
  const result = await launch({
    command: [process.execPath, worker, JSON.stringify({ out, runs })],
    nproc,
    env: { OMP_NUM_THREADS: '1' },
    report: (l) => lines.push(l),
  });
  const outputs = Array.from({ length: nproc }, (_, r) => JSON.parse(fs.readFileSync(`${out}.${r}.json`, 'utf8')) as WorkerOutput);
  return { result, outputs, lines };
}

describe('process group', () => {
  it('reports what this build has: Gloo here, NCCL missing with the reason', () => {
    const a = distributedAvailability();
    expect(a.gloo).toBe(true);
    expect(a.nccl).toBe(false);
    expect(a.missing.nccl).toMatch(/not a CUDA build/);
  });

  it('raises DistributedUnavailableError for a backend this build lacks, never a silent single-process run', async () => {
    const error = await initDistributed({ backend: 'nccl', rank: 0, worldSize: 1 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DistributedUnavailableError);
    expect((error as { code: string }).code).toBe('ERR_DISTRIBUTED_UNAVAILABLE');
    expect((error as Error).message).toMatch(/backend 'nccl' is not available in this build of sdebnn: this LibTorch is not a CUDA build/);
  });

  it('joins off the event loop, then all-reduces and broadcasts in place', async () => {
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    const masterPort = await freePort();
    const common = { backend: 'gloo' as const, worldSize: 2, masterAddr: '127.0.0.1', masterPort, timeoutMs: 20000 };
    const first = initDistributed({ ...common, rank: 0 });
    await new Promise((r) => setTimeout(r, 300)); // rank 1 comes late; rank 0 waits without blocking JS
    const [g0, g1] = await Promise.all([first, initDistributed({ ...common, rank: 1 })]);
    clearInterval(timer);
    expect(ticks).toBeGreaterThan(20);
    expect([g0.rank, g1.rank, g0.worldSize, g0.backend]).toEqual([0, 1, 2, 'gloo']);

    const a = { data: Float64Array.of(1, -2, 3.5), shape: [3] };
    const b = { data: Float64Array.of(10, 20, -30), shape: [3] };
    for (const [op, expected] of [
      ['sum', [11, 18, -26.5]],
      ['mean', [5.5, 9, -13.25]],
      ['max', [10, 20, 3.5]],
    ] as const) {
      a.data.set([1, -2, 3.5]);
      b.data.set([10, 20, -30]);
      const [ra] = await Promise.all([g0.allReduce(a, { op }), g1.allReduce(b, { op })]);
      expect(ra).toBe(a); // in place
      expect(Array.from(a.data)).toEqual(expected);
      expect(Array.from(b.data)).toEqual(expected);
    }
    const lo = { data: Float32Array.of(1, 5), shape: [2] };
    const hi = { data: Float32Array.of(4, 2), shape: [2] };
    await Promise.all([g0.allReduce(lo, { op: 'min' }), g1.allReduce(hi, { op: 'min' })]);
    expect([Array.from(lo.data), Array.from(hi.data)]).toEqual([
      [1, 2],
      [1, 2],
    ]);
    // A strided view is reduced through a copy and written back in place.
    const strided = { data: Float32Array.of(1, 0, 2, 0), shape: [2], strides: [2] };
    const plain = { data: Float32Array.of(10, 20), shape: [2] };
    await Promise.all([g0.allReduce(strided), g1.allReduce(plain)]);
    expect(Array.from(strided.data)).toEqual([11, 0, 22, 0]);

    const x = { data: Float32Array.of(0, 0), shape: [2] };
    const y = { data: Float32Array.of(7, 8), shape: [2] };
    await Promise.all([g0.broadcast(x, { root: 1 }), g1.broadcast(y, { root: 1 })]);
    expect(Array.from(x.data)).toEqual([7, 8]);
    const [o0, o1] = await Promise.all([g0.broadcastObject({ epoch: 3, name: 'ü' }), g1.broadcastObject(undefined)]);
    expect(o0).toEqual({ epoch: 3, name: 'ü' });
    expect(o1).toEqual(o0);
    await Promise.all([g0.barrier(), g1.barrier()]);
    expect(g0.stats().collectives).toBeGreaterThanOrEqual(10);

    // Bad arguments throw before anything native starts.
    expect(() => g0.allReduce({ data: new Int32Array(2), shape: [2] } as never)).toThrow(/Float32Array or Float64Array for tensor\.data/);
    expect(() => g0.allReduce(a, { op: 'prod' as never })).toThrow(/options\.op/);
    expect(() => g0.broadcast(a, { root: 2 })).toThrow(/options\.root/);
    g0.destroy();
    g1.destroy();
    await expect(g0.barrier()).rejects.toThrow(/destroyed/);
  });

  it("reads torchrun's environment and names what is missing or wrong", async () => {
    const names = ['RANK', 'WORLD_SIZE', 'MASTER_PORT'];
    const saved = names.map((n) => process.env[n]);
    try {
      delete process.env.RANK;
      delete process.env.WORLD_SIZE;
      await expect(initDistributed()).rejects.toThrow(/worldSize was not given and WORLD_SIZE is not set/);
      process.env.WORLD_SIZE = '2';
      process.env.RANK = '2';
      await expect(initDistributed()).rejects.toThrow(/rank \(from RANK\)/);
      process.env.RANK = 'x';
      await expect(initDistributed()).rejects.toThrow(/Expected an integer for rank \(from RANK\) but received "x"/);
      process.env.RANK = '0';
      process.env.MASTER_PORT = '70000';
      await expect(initDistributed()).rejects.toThrow(/masterPort \(from MASTER_PORT\)/);
    } finally {
      names.forEach((n, i) => (saved[i] === undefined ? delete process.env[n] : (process.env[n] = saved[i])));
    }
    await expect(initDistributed({ rank: 0, worldSize: 1, timeoutMs: 0 })).rejects.toThrow(/options\.timeoutMs/);
    await expect(initDistributed({ rank: 0, worldSize: 1, backend: 'mpi' as never })).rejects.toThrow(/options\.backend/);
  });

  it('fails clearly within the timeout when the port is taken or a rank never joins', async () => {
    const taken = net.createServer();
    const port = await new Promise<number>((resolve) => taken.listen(0, '127.0.0.1', () => resolve((taken.address() as net.AddressInfo).port)));
    let start = Date.now();
    const busy = await initDistributed({ rank: 0, worldSize: 2, masterPort: port, timeoutMs: 20000 }).catch((e: unknown) => e);
    taken.close();
    expect(busy).toBeInstanceOf(DistributedError);
    expect((busy as { code: string }).code).toBe('ERR_DISTRIBUTED_PORT_IN_USE');
    expect((busy as Error).message).toMatch(new RegExp(`port ${port} is already in use`));
    expect(Date.now() - start).toBeLessThan(10000); // at once, not at the timeout

    const timeoutMs = 2000;
    for (const rank of [0, 1]) {
      start = Date.now();
      const alone = await initDistributed({ rank, worldSize: 2, masterPort: await freePort(), timeoutMs }).catch((e: unknown) => e);
      const elapsed = Date.now() - start;
      expect(alone).toBeInstanceOf(DistributedError);
      expect((alone as { code: string }).code).toBe('ERR_DISTRIBUTED_TIMEOUT');
      expect((alone as Error).message).toMatch(
        rank === 0 ? /timed out after 2 s: 1 of 2 ranks reached the rendezvous/ : /could not reach rank 0's rendezvous store/,
      );
      expect(elapsed).toBeLessThan(timeoutMs + 3000); // slack for a loaded machine
    }
  });
});

describe('data-parallel training', () => {
  it("shards each batch of the epoch's permutation: the ranks' shares make up the unsharded batch", () => {
    const { train: dataset } = job.data('mlp');
    const indices = (options: object) =>
      Array.from(new sdebnn.MinibatchIterator(dataset, { batchSize: 10, seed: 4, ...options }).epoch(), (b) => Array.from(b.indices));
    const whole = indices({});
    for (const count of [2, 3]) {
      const shares = Array.from({ length: count }, (_, rank) => indices({ shard: { rank, count } }));
      whole.forEach((batch, i) => expect(shares.flatMap((share) => share[i]!)).toEqual(batch));
      expect(shares.map((share) => share[0]!.length)).toEqual(count === 2 ? [5, 5] : [3, 3, 4]);
    }
    expect(() => new sdebnn.MinibatchIterator(dataset, { batchSize: 4, shard: { rank: 2, count: 2 } })).toThrow(/options\.shard\.rank/);
  });

  it('with a shared weight path, 2 ranks reproduce 1 rank (float64, mlp and conv), also across a resume to another world size', async () => {
    const dir = tmp();
    const single: Record<string, { parameters: Record<string, number[]>; epochs: import('../dist/index').EpochLog[] }> = {};
    for (const kind of ['mlp', 'conv']) {
      const model = new SdeBnn(job.config(kind));
      const result = await train(model, job.data(kind), job.trainOptions(kind));
      single[kind] = { parameters: job.parameters(model), epochs: result.epochs };
      model.dispose();
    }
    // One rank's checkpoint after epoch 1, for two ranks to resume.
    const fromOne = path.join(dir, 'one.safetensors');
    const interrupted = new SdeBnn(job.config('mlp'));
    await expect(
      train(interrupted, job.data('mlp'), {
        ...job.trainOptions('mlp'),
        checkpointFile: fromOne,
        onEpoch: () => {
          throw new Error('interrupted');
        },
      }),
    ).rejects.toThrow('interrupted');
    const fromTwo = path.join(dir, 'two.safetensors');
    const { result, outputs } = await launchWorkers([
      { name: 'mlp', kind: 'mlp', weightPaths: 'shared' },
      { name: 'conv', kind: 'conv', weightPaths: 'shared' },
      { name: 'resumed', kind: 'mlp', weightPaths: 'shared', checkpointFile: fromOne, resume: true },
      { name: 'interrupted', kind: 'mlp', weightPaths: 'shared', checkpointFile: fromTwo, stopAfterEpoch: 1 },
    ]);
    expect(result.exitCode).toBe(0);
    const [r0, r1] = outputs.map((o) => o.runs!);
    for (const kind of ['mlp', 'conv']) {
      // Rounding only: each rank's mean loss over half the batch, then the mean of the two.
      expect(maxDifference(r0![kind]!.parameters, single[kind]!.parameters)).toBeLessThan(1e-13);
      expect(r1![kind]!.parameters).toEqual(r0![kind]!.parameters);
      for (const [e, epoch] of r0![kind]!.epochs.entries()) {
        const reference = single[kind]!.epochs[e]!;
        expect(epoch.loss).toBeCloseTo(reference.loss, 10);
        // evaluation sharded by batches and gathered: the single-process metrics
        for (const [k, v] of Object.entries(reference.test!)) {
          const got = (epoch.test as unknown as Record<string, unknown>)[k];
          if (typeof v === 'number') expect(got).toBeCloseTo(v, 10);
          else Object.values(v as object).forEach((x: number, i) => expect(Object.values(got as object)[i]).toBeCloseTo(x, 10));
        }
      }
      // one path for all: the same KL on both ranks at every step
      expect(r1![kind]!.kls).toEqual(r0![kind]!.kls);
    }
    // 1 rank -> 2 ranks: the resumed run ends where the uninterrupted single-process run does.
    expect(r0!.resumed!.epochs).toHaveLength(1);
    expect(maxDifference(r0!.resumed!.parameters, single.mlp!.parameters)).toBeLessThan(1e-13);
    // 2 ranks -> 1 rank, from the checkpoint rank 0 alone wrote.
    expect(sdebnn.readTrainingCheckpoint(fromTwo).epoch).toBe(1);
    const resumed = new SdeBnn(job.config('mlp'));
    const rest = await train(resumed, job.data('mlp'), { ...job.trainOptions('mlp'), checkpointFile: fromTwo, resume: true });
    expect(rest.epochs).toHaveLength(1);
    expect(maxDifference(job.parameters(resumed), single.mlp!.parameters)).toBeLessThan(1e-13);
  });

  it('with independent weight paths, the ranks draw different paths and stay identical over 60 steps', async () => {
    const { result, outputs } = await launchWorkers([{ name: 'independent', kind: 'mlp', weightPaths: 'independent', epochs: 15, checkpointEvery: 3 }]);
    expect(result.exitCode).toBe(0); // five checkpoint-time comparisons passed
    const [r0, r1] = outputs.map((o) => o.runs!.independent!);
    expect(r0!.kls).toHaveLength(60);
    expect(r1!.parameters).toEqual(r0!.parameters);
    expect(r0!.kls.filter((kl, i) => kl !== r1!.kls[i]).length).toBeGreaterThan(50);
    // and they learn: the last epoch's (rank-averaged) loss is below the first's
    expect(r0!.epochs.at(-1)!.loss).toBeLessThan(r0!.epochs[0]!.loss);
  });

  it('stops every rank with a clear error when the ranks diverge or disagree', async () => {
    const diverged = await launchWorkers([{ name: 'perturbed', kind: 'mlp', weightPaths: 'shared', perturbAt: 2 }]);
    expect(diverged.result.exitCode).toBe(1);
    for (const o of diverged.outputs) {
      expect(o.error!.code).toBe('ERR_DISTRIBUTED_DIVERGED');
      // rank 1's w0 was moved after step 2; the averaged gradients kept Adam's moments equal
      expect(o.error!.message).toMatch(/At step 4 the ranks hold different parameters \(rank 1 in blocks\.0\.w0 differ from rank 0\)/);
    }
    const mismatch = await launchWorkers([{ name: 'lr', kind: 'mlp', weightPaths: 'shared', lr: 1e-2 }]);
    expect(mismatch.result.exitCode).toBe(1);
    expect(mismatch.outputs[1]!.error!.message).toMatch(
      /rank 1 trains a different model or with different options than rank 0: options\.lr \(rank 0: 0\.003, rank 1: 0\.01\)/,
    );
    expect(mismatch.outputs[0]!.error!.message).toMatch(/rank 1 trains a different model or with different options than rank 0 \(see its error\)/);
  });
});

/** Runs the CLI; resolves with its exit code and output once it exits. */
function runCli(args: string[], onStderr?: (text: string, child: ChildProcess) => void) {
  const child = spawn(process.execPath, [cli, ...args], { env: { ...process.env, OMP_NUM_THREADS: '1' } });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d));
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d;
    onStderr?.(stderr, child);
  });
  const done = new Promise<{ code: number | null; stdout: string; stderr: string; seconds: number }>((resolve) => {
    const start = Date.now();
    child.on('close', (code) => resolve({ code, stdout, stderr, seconds: (Date.now() - start) / 1000 }));
  });
  return { child, done };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('sdebnn train --nproc', () => {
  it('ends the run when a worker dies, naming its rank and exit reason', async () => {
    const out = tmp();
    let pids: number[] = [];
    const { done } = runCli(['train', '--dataset', 'toy', '--epochs', '1000000', '--nproc', '2', '--out', out, '--quiet'], (text) => {
      const m = /pids (\d+), (\d+)/.exec(text);
      if (m) pids = [Number(m[1]), Number(m[2])];
    });
    // Kill rank 1 once rank 0 has logged training steps.
    const log = path.join(out, 'log.jsonl');
    for (let i = 0; i < 600 && !(fs.existsSync(log) && fs.statSync(log).size > 0); i++) await new Promise((r) => setTimeout(r, 100));
    expect(pids).toHaveLength(2);
    const killedAt = Date.now();
    process.kill(pids[1]!, 'SIGKILL');
    const { code, stderr } = await done;
    expect(code).toBe(1);
    expect(stderr).toMatch(new RegExp(`sdebnn launch: failed: rank 1 \\(local rank 1, pid ${pids[1]}\\) was killed by SIGKILL`));
    expect(Date.now() - killedAt).toBeLessThan(15000);
    expect(alive(pids[0]!)).toBe(false);
  });

  it('forwards SIGTERM to the workers and exits with 128 + 15', async () => {
    const out = tmp();
    let pids: number[] = [];
    const { child, done } = runCli(['train', '--dataset', 'toy', '--epochs', '1000000', '--nproc', '2', '--out', out, '--quiet'], (text) => {
      const m = /pids (\d+), (\d+)/.exec(text);
      if (m) pids = [Number(m[1]), Number(m[2])];
    });
    const log = path.join(out, 'log.jsonl');
    for (let i = 0; i < 600 && !fs.existsSync(log); i++) await new Promise((r) => setTimeout(r, 100));
    child.kill('SIGTERM');
    const { code, stderr } = await done;
    expect(code).toBe(143);
    expect(stderr).toMatch(/SIGTERM: stopping 2 worker/);
    expect(pids.map(alive)).toEqual([false, false]);
  });

  it('trains across two launchers as two nodes on this machine; rank 0 alone writes', async () => {
    const port = String(await freePort());
    const [out0, out1] = [path.join(tmp(), 'node0'), path.join(tmp(), 'node1')];
    const common = [
      'train',
      '--dataset',
      'toy',
      '--epochs',
      '30',
      '--nproc',
      '1',
      '--nnodes',
      '2',
      '--master-addr',
      '127.0.0.1',
      '--master-port',
      port,
      '--quiet',
    ];
    const [a, b] = await Promise.all([
      runCli([...common, '--node-rank', '0', '--out', out0]).done,
      runCli([...common, '--node-rank', '1', '--out', out1]).done,
    ]);
    expect([a.code, b.code]).toEqual([0, 0]);
    expect(a.stderr).toMatch(/ranks 0-0 of 2 on this machine/);
    expect(b.stderr).toMatch(/ranks 1-1 of 2 on this machine/);
    expect(a.stdout).toMatch(/^test nll .*rmse/m);
    expect(sdebnn.readTrainingCheckpoint(path.join(out0, 'model.safetensors')).epoch).toBe(30);
    expect(fs.existsSync(out1)).toBe(false);
    expect(b.stdout).toBe('');
  });

  it('rejects launcher flags that cannot work', async () => {
    const { code, stderr } = await runCli(['train', '--dataset', 'toy', '--nproc', '1', '--nnodes', '2', '--node-rank', '1']).done;
    expect(code).toBe(1);
    expect(stderr).toMatch(/Expected options\.masterAddr \(the host of node 0\) with 2 nodes/);
  });
});
