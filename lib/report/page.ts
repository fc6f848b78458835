/**
 * The self-contained HTML report: one file, inline CSS and SVG (svg.ts), no script, and a
 * Content-Security-Policy that forbids every network request. It draws what is given: an
 * evaluation (evaluate.ts), the training log (log.jsonl), and for 1D regression the
 * predictive band with the data.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Evaluation, ShiftEvaluation } from '../evaluate';
import { OOD_SCORES, type OodScoreName } from '../evaluate';
import { barChart, bandChart, escapeXml, histogramChart, lineChart, reliabilityChart, type Series } from './svg';

/** A run's log.jsonl as read by readTrainingLog. */
export interface TrainingLog {
  /** Step entries (every 10th step) and epoch entries of log.jsonl. */
  steps: { step: number; loss: number; nll: number; kl: number; accuracy?: number | null }[];
  epochs: { epoch: number; steps: number; loss: number; test?: Record<string, unknown> }[];
}

/** A 1D regressor's predictive band on a grid, with the training points. */
export interface RegressionBand {
  x: number[];
  mean: number[];
  /** Predictive std: the weight paths' spread and the likelihood's noise in quadrature. */
  std: number[];
  data: [number, number][];
}

/** What renderReport draws: any of an evaluation, a training log and a regression band. */
export interface ReportInput {
  title: string;
  /** Lines under the title, e.g. the checkpoint and the model. */
  notes?: string[];
  evaluation?: Evaluation;
  training?: TrainingLog;
  regression?: RegressionBand;
}

/** Reads a run's log.jsonl (lines that are not JSON objects are an error naming the line). */
export function readTrainingLog(file: string): TrainingLog {
  const log: TrainingLog = { steps: [], epochs: [] };
  fs.readFileSync(file, 'utf8')
    .split('\n')
    .forEach((line, i) => {
      if (line.trim() === '') return;
      let entry: unknown;
      try {
        entry = JSON.parse(line);
      } catch (error) {
        throw new RangeError(`${file}:${i + 1} is not JSON (${(error as Error).message})`, { cause: error });
      }
      if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw new RangeError(`${file}:${i + 1} is not a JSON object`);
      const { type } = entry as { type?: unknown };
      if (type === 'step') log.steps.push(entry as TrainingLog['steps'][number]);
      else if (type === 'epoch') log.epochs.push(entry as TrainingLog['epochs'][number]);
    });
  return log;
}

const NAMES: Record<OodScoreName, string> = { entropy: 'entropy', mutualInformation: 'mutual information', maxProbability: 'max probability' };

const pct = (v: number) => `${(100 * v).toFixed(2)}%`;
const num = (v: number, d = 4) => (Number.isFinite(v) ? v.toFixed(d) : 'n/a');

/** An HTML table of escaped cells. */
export function table(head: string[], rows: (string | number)[][]): string {
  const cell = (v: string | number, tag: string) => `<${tag}>${escapeXml(String(v))}</${tag}>`;
  return `<table><thead><tr>${head.map((h) => cell(h, 'th')).join('')}</tr></thead><tbody>${rows
    .map((r) => `<tr>${r.map((v) => cell(v, 'td')).join('')}</tr>`)
    .join('')}</tbody></table>`;
}

/** Charts side by side with a caption. */
export function figure(caption: string, ...charts: string[]): string {
  return `<figure>${charts.join('')}<figcaption>${escapeXml(caption)}</figcaption></figure>`;
}

function calibrationSection(e: Evaluation): string {
  const m = e.clean.metrics;
  const rel = e.clean.reliability;
  const rows: (string | number)[][] = [
    [
      `MC, S = ${e.samples}`,
      pct(m.accuracy),
      num(m.nll),
      num(m.brier),
      pct(m.ece),
      pct(m.adaptiveEce),
      pct(m.mce),
      num(e.clean.means.entropy),
      num(e.clean.means.mutualInformation),
    ],
  ];
  if (e.deterministic) {
    const d = e.deterministic;
    rows.push(['deterministic (zero noise)', pct(d.accuracy), num(d.nll), num(d.brier), pct(d.ece), pct(d.adaptiveEce), pct(d.mce), num(d.entropy), '0']);
  }
  return (
    `<h2>Calibration on the clean test set (${m.count} images, ${e.bins} bins)</h2>` +
    table(['view', 'accuracy', 'NLL', 'Brier', `ECE (${e.bins} bins)`, 'adaptive ECE', 'MCE', 'mean entropy', 'mean MI'], rows) +
    `<p>${e.clean.imagesPerSecond.toFixed(0)} images/s at S = ${e.samples}; AURC ${num(e.clean.selective.aurc)} (oracle ${num(e.clean.selective.optimalAurc)}).</p>` +
    figure(
      `Reliability diagram (${e.bins} equal-width bins; bars: accuracy, red: gap to the mean confidence) and the confidence histogram.`,
      reliabilityChart({ id: 'reliability', title: 'Reliability', lower: rel.lower, upper: rel.upper, accuracy: rel.accuracy, confidence: rel.confidence }),
      histogramChart({
        id: 'confidence',
        title: 'Confidence histogram',
        xLabel: 'max probability',
        edges: [...rel.lower, 1],
        series: [{ name: 'test', counts: rel.count }],
      }),
    ) +
    figure(
      'Selective prediction: accuracy of the most confident fraction of the test set (max probability as the confidence).',
      lineChart({
        id: 'coverage',
        title: 'Accuracy against coverage',
        xLabel: 'coverage',
        yLabel: 'accuracy',
        xDomain: [0, 1],
        series: [{ name: 'test', points: e.clean.selective.coverage.map((c, i) => [c, e.clean.selective.accuracy[i]!]) }],
      }),
    )
  );
}

function oodSection(e: Evaluation): string {
  if (e.ood.length === 0) return '';
  const rows = e.ood.map((o) => [
    o.name,
    o.count,
    ...OOD_SCORES.flatMap((s) => [num(o.scores[s].auroc, 3), pct(o.scores[s].fprAtTpr), num(o.scores[s].auprIn, 3), num(o.scores[s].auprOut, 3)]),
  ]);
  const head = ['OOD set', 'images', ...OOD_SCORES.flatMap((s) => [`AUROC ${NAMES[s]}`, 'FPR95', 'AUPR-in', 'AUPR-out'])];
  const hist = (key: 'entropy' | 'mutualInformation') =>
    histogramChart({
      id: `${key}-histogram`,
      title: `${NAMES[key]} (nats)`,
      xLabel: NAMES[key],
      edges: e.clean.histograms[key].edges,
      series: [{ name: 'test (in)', counts: e.clean.histograms[key].counts }, ...e.ood.map((o) => ({ name: o.name, counts: o.histograms[key].counts }))],
    });
  const rocs = e.ood.map((o) =>
    lineChart({
      id: `roc-${o.name}`,
      title: `ROC: test against ${o.name}`,
      xLabel: 'false-positive rate (OOD accepted)',
      yLabel: 'true-positive rate (test accepted)',
      xDomain: [0, 1],
      yDomain: [0, 1],
      series: [
        ...OOD_SCORES.map((s): Series => ({
          name: `${NAMES[s]} (AUROC ${num(o.scores[s].auroc, 3)})`,
          points: o.scores[s].roc.fpr.map((f, i) => [f, o.scores[s].roc.tpr[i]!]),
        })),
        {
          name: 'chance',
          points: [
            [0, 0],
            [1, 1],
          ],
          dashed: true,
        },
      ],
    }),
  );
  return (
    `<h2>Out-of-distribution detection</h2><p>In-distribution (the test set) is the positive class; FPR95 is the share of OOD images accepted at the threshold that accepts 95% of the test set.</p>` +
    table(head, rows) +
    figure(
      'Predictive entropy and mutual information, in-distribution against each OOD set (fractions of each set).',
      hist('entropy'),
      hist('mutualInformation'),
    ) +
    figure('ROC curves for each score.', ...rocs)
  );
}

function shiftSection(e: Evaluation): string {
  if (!e.shift || e.shift.results.length === 0) return '';
  const results = e.shift.results;
  const clean = e.clean.metrics;
  const rows = results.map((r) => [r.corruption, r.severity, pct(r.accuracy), num(r.nll), pct(r.ece), num(r.entropy), num(r.mutualInformation)]);
  rows.unshift(['clean', 0, pct(clean.accuracy), num(clean.nll), pct(clean.ece), num(clean.entropy), num(e.clean.means.mutualInformation)]);
  const single = results.every((r) => r.severity === 1);
  const names = [...new Set(results.map((r) => r.corruption))];
  const chart = (key: keyof Pick<ShiftEvaluation, 'accuracy' | 'ece' | 'entropy'>, label: string) => {
    const cleanValue = key === 'entropy' ? clean.entropy : clean[key];
    if (single) {
      return barChart({
        id: `shift-${key}`,
        title: `${label} under ${e.shift!.suite}`,
        xLabel: '',
        yLabel: label,
        categories: ['clean', ...names],
        series: [{ name: label, values: [cleanValue, ...names.map((n) => results.find((r) => r.corruption === n)![key])] }],
      });
    }
    const series: Series[] = names.map((n) => ({
      name: n,
      style: 'both',
      points: [[0, cleanValue] as [number, number], ...results.filter((r) => r.corruption === n).map((r): [number, number] => [r.severity, r[key]])],
    }));
    return lineChart({ id: `shift-${key}`, title: `${label} against severity (${e.shift!.suite})`, xLabel: 'severity (0: clean)', yLabel: label, series });
  };
  return (
    `<h2>Under corruption: ${escapeXml(e.shift.suite)} (${e.shift.limit} test images each, regenerated)</h2>` +
    table(['corruption', 'severity', 'accuracy', 'NLL', `ECE (${e.bins} bins)`, 'mean entropy', 'mean MI'], rows) +
    figure(
      'Accuracy, ECE and mean predictive entropy under each corruption.',
      chart('accuracy', 'accuracy'),
      chart('ece', 'ECE'),
      chart('entropy', 'mean entropy'),
    )
  );
}

function trainingSection(log: TrainingLog): string {
  if (log.steps.length === 0 && log.epochs.length === 0) return '';
  // Epoch entries at the step their epoch ended (the step count of a run is the sum of its epochs').
  let step = 0;
  const epochEnds = log.epochs.map((e) => (step += e.steps));
  const charts = [
    lineChart({
      id: 'training-loss',
      title: 'Training loss',
      xLabel: 'step',
      yLabel: 'loss (per example)',
      series: [
        { name: 'loss', points: log.steps.map((s) => [s.step, s.loss]) },
        { name: 'NLL', points: log.steps.map((s) => [s.step, s.nll]) },
        // At most about 200 epoch points (the toy runs 10,000 one-step epochs).
        {
          name: 'epoch mean loss',
          style: 'points',
          points: log.epochs.flatMap((e, i) => (i % Math.ceil(log.epochs.length / 200) === 0 ? [[epochEnds[i]!, e.loss] as [number, number]] : [])),
        },
      ],
    }),
  ];
  const withAccuracy = log.steps.filter((s) => typeof s.accuracy === 'number');
  if (withAccuracy.length > 0) {
    charts.push(
      lineChart({
        id: 'training-accuracy',
        title: 'Training batch accuracy',
        xLabel: 'step',
        yLabel: 'accuracy',
        series: [{ name: 'batch accuracy', points: withAccuracy.map((s) => [s.step, s.accuracy as number]) }],
      }),
    );
  }
  charts.push(
    lineChart({
      id: 'training-kl',
      title: 'Path KL',
      xLabel: 'step',
      yLabel: 'KL (nats)',
      series: [{ name: 'KL', points: log.steps.map((s) => [s.step, s.kl]) }],
    }),
  );
  return `<h2>Training</h2>` + figure(`Training curves from the run's log (every 10th step; ${log.epochs.length} epoch entries).`, ...charts);
}

function regressionSection(r: RegressionBand): string {
  return (
    `<h2>Predictive distribution</h2>` +
    figure(
      'Predictive mean ± 2 standard deviations (weight paths and likelihood noise) with the training data.',
      bandChart({
        id: 'regression-band',
        title: 'Predictive band',
        xLabel: 'x',
        yLabel: 'y',
        x: r.x,
        mean: r.mean,
        lower: r.mean.map((m, i) => m - 2 * r.std[i]!),
        upper: r.mean.map((m, i) => m + 2 * r.std[i]!),
        data: r.data,
      }),
    )
  );
}

/** The reports' stylesheet. */
export const STYLE = `body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1440px;color:#222}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f4f4f4}
td:first-child,th:first-child{text-align:left}figure{margin:12px 0;display:flex;flex-wrap:wrap;gap:12px}
figcaption{flex-basis:100%;color:#555}.chart .title{font-size:13px;font-weight:600}.chart .tick{font-size:10px;fill:#444}
.chart .label,.chart .legend{font-size:11px;fill:#222}.chart .plot{fill:#fff;stroke:#999}.chart .grid{stroke:#eee}
.chart .line{stroke-width:1.8}.chart .diagonal{stroke:#888;stroke-dasharray:4,4;fill:none}`;

/** The report as one HTML document. */
export function renderReport(input: ReportInput): string {
  const e = input.evaluation;
  const body = [
    `<h1>${escapeXml(input.title)}</h1>`,
    ...(input.notes ?? []).map((n) => `<p class="note">${escapeXml(n)}</p>`),
    e ? calibrationSection(e) + shiftSection(e) + oodSection(e) : '',
    input.regression ? regressionSection(input.regression) : '',
    input.training ? trainingSection(input.training) : '',
  ].join('\n');
  return (
    `<!doctype html>\n<html lang="en"><head><meta charset="utf-8">` +
    `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">` +
    `<title>${escapeXml(input.title)}</title><style>${STYLE}</style></head>\n<body>\n${body}\n</body></html>\n`
  );
}

/** Writes the report to `file` (folders created), through a temporary file so a failed write leaves no half report. */
export function writeReport(file: string, input: ReportInput): void {
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  const temp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(temp, renderReport(input));
  fs.renameSync(temp, file);
}
