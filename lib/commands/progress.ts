/**
 * The commands' progress display: one status line on stderr, redrawn in place. The library
 * prints nothing; the commands draw this from its callbacks (train's onStep and onEpoch,
 * evaluation's onProgress), only on a terminal and not with --quiet.
 */
import type { StepLog } from '../train';

/** One line redrawn in place (at most every 100 ms unless forced); clear() before printing anything else. */
export class StatusLine {
  private last = 0;
  private shown = false;

  constructor(
    readonly enabled: boolean,
    private readonly stream: NodeJS.WriteStream = process.stderr,
  ) {}

  update(text: string, force = false): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (!force && now - this.last < 100) return;
    this.last = now;
    this.shown = true;
    this.stream.write(`\r${text}\x1b[K`);
  }

  clear(): void {
    if (!this.shown) return;
    this.stream.write('\r\x1b[K');
    this.shown = false;
  }
}

/** True where a status line makes sense: stderr is a terminal and --quiet was not given. */
export function interactive(quiet: boolean): boolean {
  return !quiet && Boolean(process.stderr.isTTY);
}

/**
 * A train() onStep drawing `[#####...] epoch 3/10 batch 45/468 loss 0.1234 acc 0.912
 * kl 1.2e+03 12 s`. The bar is the run's progress: steps done of all, or the time limit's share
 * when that is further. Loss and accuracy are means over the epoch's steps so far (this process's
 * batches in a distributed run). Clear the line before printing an epoch's summary.
 */
export function trainingProgress(line: StatusLine, run: { epochs: number; timeLimit?: number }) {
  let epoch = -1;
  let sums = { loss: 0, accuracy: 0, steps: 0 };
  return (s: StepLog): void => {
    if (!line.enabled) return;
    if (s.epoch !== epoch) {
      epoch = s.epoch;
      sums = { loss: 0, accuracy: 0, steps: 0 };
    }
    sums.loss += s.loss;
    sums.accuracy += s.accuracy ?? 0;
    sums.steps++;
    const done = (s.epoch * s.batchesPerEpoch + s.batch + 1) / (run.epochs * s.batchesPerEpoch);
    const fraction = Math.min(1, Math.max(done, run.timeLimit ? s.seconds / run.timeLimit : 0));
    const width = 24;
    const filled = Math.round(fraction * width);
    line.update(
      `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] epoch ${s.epoch + 1}/${run.epochs} batch ${s.batch + 1}/${s.batchesPerEpoch}` +
        ` loss ${(sums.loss / sums.steps).toFixed(4)}` +
        (s.accuracy !== null ? ` acc ${(sums.accuracy / sums.steps).toFixed(3)}` : '') +
        ` kl ${s.kl.toExponential(2)} ${s.seconds.toFixed(0)}${run.timeLimit ? `/${run.timeLimit}` : ''} s`,
    );
  };
}
