/**
 * The launcher behind `sdebnn train --nproc N`: like torchrun (static rendezvous), it starts N
 * worker processes on this machine with RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE,
 * MASTER_ADDR and MASTER_PORT set (ranks nodeRank * N ... nodeRank * N + N - 1 of nnodes * N),
 * forwards SIGINT, SIGTERM and SIGHUP to them, and when one fails stops the others at once and
 * returns non-zero with a message naming the rank and its exit reason. A worker whose launcher
 * dies exits too (its IPC channel closes).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as net from 'node:net';
import * as os from 'node:os';
import { describe, expectInteger, expectKnownKeys, expectObject, expectPositiveInteger, expectString, optional } from './validate';

/** Options of launch: the worker command and the group's shape. */
export interface LaunchOptions {
  /** The worker's command: executable and arguments (e.g. [process.execPath, 'train.js']). */
  command: string[];
  /** Workers on this machine. */
  nproc: number;
  /** Machines, each running its own launcher. Default 1. */
  nnodes?: number;
  /** This machine's index in [0, nnodes). Default 0. */
  nodeRank?: number;
  /** Host of rank 0 (on node 0). Default 127.0.0.1; required when nnodes > 1. */
  masterAddr?: string;
  /** Port of the rendezvous store. Default: a free port for one machine, 29500 for several. */
  masterPort?: number;
  /** Environment of the workers, on top of this process's. */
  env?: Record<string, string>;
  /** After a failure or a signal, how long workers get to exit before SIGKILL. Default 5000. */
  graceMs?: number;
  /** Where the launcher's own lines go. Default: stderr. */
  report?: (line: string) => void;
}

/** How a worker ended, as the launcher saw it. */
export interface WorkerExit {
  rank: number;
  localRank: number;
  pid: number | undefined;
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The error the worker reported before exiting (see reportToLauncher), if any. */
  error?: string;
}

/** How a launch ended: its exit code and each worker's exit. */
export interface LaunchResult {
  /** 0 when every worker exited with 0; 128 + n after signal n; 1 when a worker failed. */
  exitCode: number;
  /** The worker whose failure stopped the run (the first to fail), if any. */
  failure?: WorkerExit;
  workers: WorkerExit[];
}

const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/** A port that was free on this machine a moment ago (torchrun --standalone does the same). */
async function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function exitReason(w: WorkerExit): string {
  const how = w.signal ? `was killed by ${w.signal}` : `exited with code ${w.code}`;
  return `rank ${w.rank} (local rank ${w.localRank}, pid ${w.pid ?? '?'}) ${how}${w.error ? `: ${w.error}` : ''}`;
}

/**
 * Starts the workers and resolves when all have exited. Never rejects for a worker's failure:
 * the result says what happened (and the report line says it too).
 */
export async function launch(options: LaunchOptions): Promise<LaunchResult> {
  const o = expectObject(options, 'options');
  expectKnownKeys(o, 'options', ['command', 'nproc', 'nnodes', 'nodeRank', 'masterAddr', 'masterPort', 'env', 'graceMs', 'report']);
  if (!Array.isArray(o.command) || o.command.length === 0) {
    throw new TypeError(`Expected a non-empty array of strings for options.command but received ${describe(o.command)}`);
  }
  const command = o.command.map((c, i) => expectString(c, `options.command[${i}]`));
  const nproc = expectPositiveInteger(o.nproc, 'options.nproc');
  const nnodes = optional(o.nnodes, 1, (v) => expectPositiveInteger(v, 'options.nnodes'));
  const nodeRank = optional(o.nodeRank, 0, (v) => expectInteger(v, 'options.nodeRank', 0, nnodes - 1));
  if (nnodes > 1 && o.masterAddr === undefined) {
    throw new RangeError(`Expected options.masterAddr (the host of node 0) with ${nnodes} nodes; every node's launcher must name the same one`);
  }
  const masterAddr = optional(o.masterAddr, '127.0.0.1', (v) => expectString(v, 'options.masterAddr'));
  const masterPort =
    o.masterPort === undefined ? (nnodes > 1 ? 29500 : await freePort(masterAddr)) : expectInteger(o.masterPort, 'options.masterPort', 1, 65535);
  const env = o.env === undefined ? {} : (expectObject(o.env, 'options.env') as Record<string, string>);
  const graceMs = optional(o.graceMs, 5000, (v) => expectInteger(v, 'options.graceMs', 0));
  const report = (o.report as ((line: string) => void) | undefined) ?? ((line: string) => process.stderr.write(`${line}\n`));

  const worldSize = nnodes * nproc;
  // One process per share of the cores unless the caller chose (torchrun sets 1).
  const threads = process.env.OMP_NUM_THREADS ?? String(Math.max(1, Math.floor(os.availableParallelism() / nproc)));
  const workers: { child: ChildProcess; exit: WorkerExit | undefined; error?: string }[] = [];
  let failure: WorkerExit | undefined;
  let signalled: NodeJS.Signals | undefined;
  let killTimer: NodeJS.Timeout | undefined;

  const stop = (signal: NodeJS.Signals) => {
    for (const w of workers) if (!w.exit) w.child.kill(signal);
    if (!killTimer) {
      killTimer = setTimeout(() => {
        for (const w of workers) if (!w.exit) w.child.kill('SIGKILL');
      }, graceMs);
      killTimer.unref();
    }
  };
  const onSignal = (signal: NodeJS.Signals) => {
    signalled ??= signal;
    report(`sdebnn launch: ${signal}: stopping ${workers.filter((w) => !w.exit).length} worker(s)`);
    stop(signal);
  };
  for (const s of SIGNALS) process.on(s, onSignal);

  const done = new Promise<void>((resolve) => {
    let left = nproc;
    for (let local = 0; local < nproc; local++) {
      const rank = nodeRank * nproc + local;
      const child = spawn(command[0]!, command.slice(1), {
        stdio: ['inherit', 'inherit', 'inherit', 'ipc'],
        env: {
          ...process.env,
          OMP_NUM_THREADS: threads,
          ...env,
          RANK: String(rank),
          WORLD_SIZE: String(worldSize),
          LOCAL_RANK: String(local),
          LOCAL_WORLD_SIZE: String(nproc),
          GROUP_RANK: String(nodeRank),
          MASTER_ADDR: masterAddr,
          MASTER_PORT: String(masterPort),
          SDEBNN_LAUNCHER: '1',
        },
      });
      const worker: (typeof workers)[number] = { child, exit: undefined };
      workers.push(worker);
      child.on('message', (m: unknown) => {
        if (m && typeof m === 'object' && typeof (m as { error?: unknown }).error === 'string') worker.error = (m as { error: string }).error;
      });
      const finish = (code: number | null, signal: NodeJS.Signals | null) => {
        if (worker.exit) return;
        worker.exit = { rank, localRank: local, pid: child.pid, code, signal, ...(worker.error ? { error: worker.error } : {}) };
        if ((code !== 0 || signal) && !failure && !signalled) {
          failure = worker.exit;
          const others = workers.filter((w) => !w.exit).length;
          report(`sdebnn launch: ${exitReason(worker.exit)}; stopping the other ${others} worker${others === 1 ? '' : 's'}`);
          stop('SIGTERM');
        }
        if (--left === 0) resolve();
      };
      child.on('close', finish); // after 'exit' and the IPC channel: the worker's last message is in
      child.on('error', (error) => {
        worker.error = error.message;
        finish(127, null);
      });
    }
  });
  report(
    `sdebnn launch: ranks ${nodeRank * nproc}-${nodeRank * nproc + nproc - 1} of ${worldSize} on this machine (pids ${workers.map((w) => w.child.pid).join(', ')}), ` +
      `rendezvous ${masterAddr}:${masterPort}, OMP_NUM_THREADS ${env.OMP_NUM_THREADS ?? threads}`,
  );
  await done;
  if (killTimer) clearTimeout(killTimer);
  for (const s of SIGNALS) process.off(s, onSignal);
  const exits = workers.map((w) => ({ ...w.exit!, ...(w.error ? { error: w.error } : {}) }));
  if (failure) failure = exits.find((e) => e.rank === failure!.rank);
  const exitCode = signalled ? 128 + (os.constants.signals[signalled] ?? 1) : failure ? 1 : 0;
  if (failure) report(`sdebnn launch: failed: ${exitReason(failure)}`);
  return { exitCode, workers: exits, ...(failure ? { failure } : {}) };
}

/**
 * In a worker started by launch(): exit when the launcher is gone (its IPC channel closes), and
 * let the channel not keep the process alive. No-op elsewhere.
 */
export function followLauncher(): void {
  if (process.env.SDEBNN_LAUNCHER !== '1' || !process.channel) return;
  process.channel.unref();
  process.on('disconnect', () => {
    process.stderr.write(`sdebnn (rank ${process.env.RANK}): the launcher is gone; exiting\n`);
    process.exit(1);
  });
}

/** In a worker started by launch(): hands the launcher the error that ends this worker, for its report. */
export async function reportToLauncher(error: string): Promise<void> {
  if (process.env.SDEBNN_LAUNCHER !== '1' || !process.send || !process.connected) return;
  await new Promise<void>((resolve) => process.send!({ error }, undefined, {}, () => resolve()));
}
