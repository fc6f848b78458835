/**
 * The comparison report of `sdebnn compare`: one self-contained HTML page (the style and
 * Content-Security-Policy of page.ts) with the comparison table, one row per model, and bar
 * charts of the headline metrics. Each model's own report (`sdebnn report DIR/<model>`) holds
 * its full evaluation.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { comparisonCells, type ComparisonRow } from '../compare';
import { figure, STYLE, table } from './page';
import { barChart, escapeXml } from './svg';

/** What renderComparison draws: a title, lines of notes, and the rows. */
export interface ComparisonReportInput {
  title: string;
  notes?: string[];
  rows: ComparisonRow[];
}

/** The comparison report as one HTML document. */
export function renderComparison(input: ComparisonReportInput): string {
  const { head, cells } = comparisonCells(input.rows);
  const categories = input.rows.map((r) => r.model);
  const bars = (id: string, title: string, values: (number | null)[], yDomain?: [number, number]) =>
    barChart({
      id,
      title,
      xLabel: '',
      yLabel: title,
      categories,
      series: [{ name: title, values: values.map((v) => v ?? Number.NaN) }],
      ...(yDomain ? { yDomain } : {}),
    });
  const charts = [
    bars(
      'compare-accuracy',
      'accuracy',
      input.rows.map((r) => r.accuracy),
      [0, 1],
    ),
    bars(
      'compare-nll',
      'NLL',
      input.rows.map((r) => r.nll),
    ),
    bars(
      'compare-ece',
      'ECE',
      input.rows.map((r) => r.ece),
    ),
    bars(
      'compare-ood',
      'OOD AUROC (entropy)',
      input.rows.map((r) => r.oodAurocEntropy),
      [0, 1],
    ),
    bars(
      'compare-corrupted',
      'corrupted accuracy',
      input.rows.map((r) => r.corruptedAccuracy),
      [0, 1],
    ),
    bars(
      'compare-speed',
      'images/s',
      input.rows.map((r) => r.imagesPerSecond),
    ),
  ];
  const body = [
    `<h1>${escapeXml(input.title)}</h1>`,
    ...(input.notes ?? []).map((n) => `<p class="note">${escapeXml(n)}</p>`),
    `<h2>Comparison</h2>`,
    table(head, cells),
    figure('Clean accuracy, NLL and ECE, OOD AUROC by predictive entropy, mean accuracy under corruption, and prediction speed, per model.', ...charts),
  ].join('\n');
  return (
    `<!doctype html>\n<html lang="en"><head><meta charset="utf-8">` +
    `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">` +
    `<title>${escapeXml(input.title)}</title><style>${STYLE}</style></head>\n<body>\n${body}\n</body></html>\n`
  );
}

/** Writes the comparison report to `file` (folders created) through a temporary file, so a failed write leaves no half report. */
export function writeComparison(file: string, input: ComparisonReportInput): void {
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  const temp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(temp, renderComparison(input));
  fs.renameSync(temp, file);
}
