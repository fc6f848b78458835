// A seeded property test of the public API on malformed arguments (issue 13): each generated call
// (test/property/cases.ts) runs in a child process (test/property/worker.cjs), and must end within
// a few seconds, without taking the process down, in a typed error (TypeError, RangeError or an
// SdebnnError with its code) or a result whose numbers are all finite. A crashed or hung child is
// replaced by a fresh one for the next call. CI runs 250 calls from a fixed seed; for a longer run:
//   npm run test:property -- (SDEBNN_PROPERTY_RUNS=5000, SDEBNN_PROPERTY_SEED=<n> to vary)
import { fork, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { malformedCall, type Case } from './property/cases';

const RUNS = Number(process.env.SDEBNN_PROPERTY_RUNS ?? 250);
const SEED = Number(process.env.SDEBNN_PROPERTY_SEED ?? 13);
/** Per call, after the child has loaded the package. */
const TIMEOUT_MS = Number(process.env.SDEBNN_PROPERTY_TIMEOUT_MS ?? 5000);

type Outcome =
  | { kind: 'ok'; finite: boolean; detail?: string }
  | { kind: 'error'; typed: boolean; name: string; code?: string; message: string }
  | { kind: 'crash'; detail: string }
  | { kind: 'hang' };

/** One child at a time; a new one after a crash or a hang. */
class Runner {
  private child: ChildProcess | undefined;
  private ready: Promise<void> | undefined;
  private next = 0;
  readonly outcomes: Record<string, number> = {};

  private start(): Promise<void> {
    const child = fork(path.join(__dirname, 'property', 'worker.cjs'), [], { serialization: 'advanced', stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
    child.stderr!.resume();
    this.child = child;
    this.ready = new Promise((resolve, reject) => {
      child.once('message', () => resolve());
      child.once('exit', (code, signal) => reject(new Error(`the worker exited while loading (${code ?? signal})`)));
    });
    return this.ready;
  }

  async run(c: Case): Promise<Outcome> {
    if (!this.child || this.child.exitCode !== null || this.child.signalCode !== null) await this.start();
    await this.ready;
    const child = this.child!;
    const id = this.next++;
    const outcome = await new Promise<Outcome>((resolve) => {
      const timer = setTimeout(() => {
        cleanup();
        child.kill('SIGKILL');
        resolve({ kind: 'hang' });
      }, TIMEOUT_MS);
      const onMessage = (m: { id: number; outcome: Outcome }) => {
        if (m.id !== id) return;
        cleanup();
        resolve(m.outcome);
      };
      const onExit = (code: number | null, signal: string | null) => {
        cleanup();
        resolve({ kind: 'crash', detail: `exit ${code ?? signal}` });
      };
      const cleanup = () => {
        clearTimeout(timer);
        child.off('message', onMessage);
        child.off('exit', onExit);
      };
      child.on('message', onMessage);
      child.once('exit', onExit);
      child.send({ id, api: c.api, args: c.args });
    });
    const key = outcome.kind === 'error' ? `${c.api}: ${outcome.name}${outcome.code ? ` ${outcome.code}` : ''}` : `${c.api}: ${outcome.kind}`;
    this.outcomes[key] = (this.outcomes[key] ?? 0) + 1;
    return outcome;
  }

  stop(): void {
    this.child?.kill();
  }
}

const runner = new Runner();
afterAll(() => runner.stop());

function describeCase(c: Case): string {
  const show = (v: unknown) =>
    ArrayBuffer.isView(v)
      ? `${v.constructor.name}(${(v as unknown as ArrayLike<number>).length})`
      : JSON.stringify(v, (_, x) =>
          typeof x === 'number' && !Number.isFinite(x)
            ? String(x)
            : ArrayBuffer.isView(x)
              ? `${x.constructor.name}(${(x as unknown as ArrayLike<number>).length})`
              : x,
        );
  return `${c.api} with ${c.mutations.map((m) => `[${m.path.join('.')}] = ${show(m.value)}`).join(', ')}`;
}

describe('malformed calls of the public API (fast-check, seeded, each in a child process)', () => {
  it(`${RUNS} calls: no crash, no hang over ${TIMEOUT_MS / 1000} s, a typed error or a finite result`, async () => {
    await fc.assert(
      fc.asyncProperty(malformedCall, async (c) => {
        const outcome = await runner.run(c);
        const context = `${describeCase(c)} -> ${JSON.stringify(outcome)}`;
        expect(outcome.kind, context).not.toBe('crash');
        expect(outcome.kind, context).not.toBe('hang');
        if (outcome.kind === 'error') {
          expect(outcome.typed, context).toBe(true);
          expect(outcome.message.length, context).toBeGreaterThan(0);
        }
        if (outcome.kind === 'ok') expect(outcome.finite, context).toBe(true);
      }),
      { seed: SEED, numRuns: RUNS, endOnFailure: process.env.SDEBNN_PROPERTY_SHRINK !== '1' },
    );
    // Most calls must reach an error (they are malformed), and several must pass validation and run.
    const counts = Object.entries(runner.outcomes);
    const errors = counts.filter(([k]) => !k.endsWith(': ok')).reduce((a, [, n]) => a + n, 0);
    const ok = counts.filter(([k]) => k.endsWith(': ok')).reduce((a, [, n]) => a + n, 0);
    expect(errors).toBeGreaterThan(RUNS / 2);
    expect(ok).toBeGreaterThan(RUNS / 20);
    if (process.env.SDEBNN_PROPERTY_REPORT === '1') console.log(Object.fromEntries(counts.sort()));
  }, 1_200_000);
});
