/**
 * Inline SVG charts for the HTML report, written by hand (no chart library, no script, no
 * network). Every chart is one <svg class="chart" data-chart=ID data-marks=N> whose data are
 * drawn as N elements of class "mark" (bars, points, lines, bands), which the browser test
 * counts. Axes get "nice" ticks (1, 2, 5 x 10^k).
 */

export const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];

const WIDTH = 460;
const HEIGHT = 300;
const MARGIN = { left: 58, right: 16, top: 30, bottom: 62 };

export function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function fmt(v: number): string {
  return Number.isInteger(v) ? String(v) : String(+v.toFixed(4));
}

/** Tick values covering [min, max] at a step of 1, 2 or 5 x 10^k (about `count` of them). */
export function niceTicks(min: number, max: number, count = 5): number[] {
  if (!(max > min)) return [min];
  const raw = (max - min) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  const ticks: number[] = [];
  for (let v = Math.ceil(min / step - 1e-9) * step; v <= max + step * 1e-9; v += step) ticks.push(+v.toPrecision(12));
  return ticks;
}

interface Frame {
  x: (v: number) => number;
  y: (v: number) => number;
  parts: string[];
}

interface Axes {
  id: string;
  title: string;
  xLabel: string;
  yLabel: string;
  xDomain: [number, number];
  yDomain: [number, number];
  /** Category labels under the x axis at x = 0, 1, ... (bar charts) instead of numeric ticks. */
  categories?: string[];
}

function frame(a: Axes): Frame {
  const [x0, x1] = a.xDomain;
  const [y0, y1] = a.yDomain;
  const pw = WIDTH - MARGIN.left - MARGIN.right;
  const ph = HEIGHT - MARGIN.top - MARGIN.bottom;
  const x = (v: number) => MARGIN.left + ((v - x0) / (x1 - x0 || 1)) * pw;
  const y = (v: number) => MARGIN.top + ph - ((v - y0) / (y1 - y0 || 1)) * ph;
  const parts: string[] = [];
  parts.push(`<text x="${WIDTH / 2}" y="18" text-anchor="middle" class="title">${escapeXml(a.title)}</text>`);
  parts.push(`<rect x="${MARGIN.left}" y="${MARGIN.top}" width="${pw}" height="${ph}" class="plot"/>`);
  for (const t of niceTicks(y0, y1)) {
    parts.push(`<line x1="${MARGIN.left}" x2="${MARGIN.left + pw}" y1="${y(t)}" y2="${y(t)}" class="grid"/>`);
    parts.push(`<text x="${MARGIN.left - 6}" y="${y(t) + 4}" text-anchor="end" class="tick">${fmt(t)}</text>`);
  }
  if (a.categories) {
    a.categories.forEach((c, i) => {
      const cx = x(i);
      parts.push(`<text transform="translate(${cx + 3},${MARGIN.top + ph + 8}) rotate(40)" class="tick">${escapeXml(c)}</text>`);
    });
  } else {
    for (const t of niceTicks(x0, x1)) {
      parts.push(`<line x1="${x(t)}" x2="${x(t)}" y1="${MARGIN.top}" y2="${MARGIN.top + ph}" class="grid"/>`);
      parts.push(`<text x="${x(t)}" y="${MARGIN.top + ph + 16}" text-anchor="middle" class="tick">${fmt(t)}</text>`);
    }
  }
  parts.push(`<text x="${MARGIN.left + pw / 2}" y="${HEIGHT - 6}" text-anchor="middle" class="label">${escapeXml(a.xLabel)}</text>`);
  parts.push(`<text transform="translate(14,${MARGIN.top + ph / 2}) rotate(-90)" text-anchor="middle" class="label">${escapeXml(a.yLabel)}</text>`);
  return { x, y, parts };
}

/** Legends of more than this many entries are left out (each mark's tooltip names its series). */
const MAX_LEGEND = 6;

function finish(a: Axes, f: Frame, marks: number, legend: string[]): string {
  const items = (legend.length > MAX_LEGEND ? [] : legend).map(
    (name, i) =>
      `<g transform="translate(${MARGIN.left + 8},${MARGIN.top + 8 + i * 14})"><rect width="10" height="10" fill="${PALETTE[i % PALETTE.length]}"/>` +
      `<text x="14" y="9" class="legend">${escapeXml(name)}</text></g>`,
  );
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" class="chart" data-chart="${escapeXml(a.id)}" data-marks="${marks}" ` +
    `viewBox="0 0 ${WIDTH} ${HEIGHT}" width="${WIDTH}" height="${HEIGHT}" role="img" aria-label="${escapeXml(a.title)}">` +
    f.parts.join('') +
    items.join('') +
    `</svg>`
  );
}

function extent(values: number[], pad = 0): [number, number] {
  const finite = values.filter(Number.isFinite);
  if (finite.length === 0) return [0, 1];
  let lo = Math.min(...finite);
  let hi = Math.max(...finite);
  if (hi === lo) {
    lo -= 0.5;
    hi += 0.5;
  }
  return [lo - pad * (hi - lo), hi + pad * (hi - lo)];
}

export interface Series {
  name: string;
  points: [number, number][];
  /** 'line' (one path), 'points' (a circle each) or 'both'. Default 'line'. */
  style?: 'line' | 'points' | 'both';
  dashed?: boolean;
}

/** Lines and/or points; marks: one per line and one per point. */
export function lineChart(a: Omit<Axes, 'xDomain' | 'yDomain'> & { xDomain?: [number, number]; yDomain?: [number, number]; series: Series[] }): string {
  const all = a.series.flatMap((s) => s.points);
  const axes: Axes = {
    ...a,
    xDomain: a.xDomain ?? extent(all.map((p) => p[0])),
    yDomain:
      a.yDomain ??
      extent(
        all.map((p) => p[1]),
        0.05,
      ),
  };
  const f = frame(axes);
  let marks = 0;
  a.series.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length];
    const style = s.style ?? 'line';
    const pts = s.points.filter((p) => Number.isFinite(p[0]) && Number.isFinite(p[1]));
    if ((style === 'line' || style === 'both') && pts.length > 0) {
      const d = pts.map((p, j) => `${j === 0 ? 'M' : 'L'}${f.x(p[0]).toFixed(2)},${f.y(p[1]).toFixed(2)}`).join('');
      f.parts.push(
        `<path d="${d}" class="mark line" fill="none" stroke="${color}"${s.dashed ? ' stroke-dasharray="5,4"' : ''}><title>${escapeXml(s.name)}</title></path>`,
      );
      marks++;
    }
    if (style === 'points' || style === 'both') {
      for (const p of pts) {
        f.parts.push(
          `<circle cx="${f.x(p[0]).toFixed(2)}" cy="${f.y(p[1]).toFixed(2)}" r="3" class="mark point" fill="${color}"><title>${escapeXml(`${s.name}: ${fmt(p[0])}, ${fmt(p[1])}`)}</title></circle>`,
        );
        marks++;
      }
    }
  });
  return finish(
    axes,
    f,
    marks,
    a.series.map((s) => s.name),
  );
}

/** Grouped bars over categories; marks: one per bar with a finite value. */
export function barChart(a: {
  id: string;
  title: string;
  xLabel: string;
  yLabel: string;
  categories: string[];
  series: { name: string; values: number[] }[];
  yDomain?: [number, number];
}): string {
  const values = a.series.flatMap((s) => s.values);
  const axes: Axes = {
    ...a,
    xDomain: [-0.5, a.categories.length - 0.5],
    yDomain: a.yDomain ?? [Math.min(0, ...values.filter(Number.isFinite)), extent(values, 0.05)[1]],
  };
  const f = frame(axes);
  const slot = f.x(1) - f.x(0);
  const barWidth = (slot * 0.8) / a.series.length;
  let marks = 0;
  a.series.forEach((s, i) => {
    s.values.forEach((v, c) => {
      if (!Number.isFinite(v)) return;
      const left = f.x(c) - slot * 0.4 + i * barWidth;
      const top = Math.min(f.y(v), f.y(0));
      f.parts.push(
        `<rect x="${left.toFixed(2)}" y="${top.toFixed(2)}" width="${barWidth.toFixed(2)}" height="${Math.abs(f.y(0) - f.y(v)).toFixed(2)}" ` +
          `class="mark bar" fill="${PALETTE[i % PALETTE.length]}"><title>${escapeXml(`${s.name}, ${a.categories[c]}: ${fmt(v)}`)}</title></rect>`,
      );
      marks++;
    });
  });
  return finish(axes, f, marks, a.series.length > 1 ? a.series.map((s) => s.name) : []);
}

/**
 * Histograms on shared bin edges, overlaid and translucent, each normalised to fractions of its
 * own set (sets of different sizes compare); marks: one per non-empty bin.
 */
export function histogramChart(a: { id: string; title: string; xLabel: string; edges: number[]; series: { name: string; counts: number[] }[] }): string {
  const fractions = a.series.map((s) => {
    const total = s.counts.reduce((x, y) => x + y, 0) || 1;
    return s.counts.map((c) => c / total);
  });
  const axes: Axes = {
    ...a,
    yLabel: 'fraction of the set',
    xDomain: [a.edges[0]!, a.edges[a.edges.length - 1]!],
    yDomain: [0, Math.max(1e-9, ...fractions.flat()) * 1.05],
  };
  const f = frame(axes);
  let marks = 0;
  fractions.forEach((fr, i) => {
    fr.forEach((v, b) => {
      if (a.series[i]!.counts[b] === 0) return;
      const left = f.x(a.edges[b]!);
      const right = f.x(a.edges[b + 1]!);
      f.parts.push(
        `<rect x="${left.toFixed(2)}" y="${f.y(v).toFixed(2)}" width="${(right - left).toFixed(2)}" height="${(f.y(0) - f.y(v)).toFixed(2)}" ` +
          `class="mark bar" fill="${PALETTE[i % PALETTE.length]}" fill-opacity="0.45"><title>${escapeXml(`${a.series[i]!.name}: ${a.series[i]!.counts[b]}`)}</title></rect>`,
      );
      marks++;
    });
  });
  return finish(
    axes,
    f,
    marks,
    a.series.map((s) => s.name),
  );
}

/**
 * The reliability diagram: per non-empty equal-width bin, a bar of the accuracy and, above or
 * below it, the gap to the mean confidence (red), with the diagonal; marks: two per non-empty bin.
 */
export function reliabilityChart(a: {
  id: string;
  title: string;
  lower: number[];
  upper: number[];
  accuracy: (number | null)[];
  confidence: (number | null)[];
}): string {
  const axes: Axes = { ...a, xLabel: 'confidence (max probability)', yLabel: 'accuracy', xDomain: [0, 1], yDomain: [0, 1] };
  const f = frame(axes);
  f.parts.push(`<path d="M${f.x(0)},${f.y(0)}L${f.x(1)},${f.y(1)}" class="diagonal"/>`);
  let marks = 0;
  a.lower.forEach((lo, b) => {
    const acc = a.accuracy[b];
    const conf = a.confidence[b];
    if (acc === null || acc === undefined || conf === null || conf === undefined) return;
    const left = f.x(lo);
    const width = f.x(a.upper[b]!) - left;
    f.parts.push(
      `<rect x="${left.toFixed(2)}" y="${f.y(acc).toFixed(2)}" width="${width.toFixed(2)}" height="${(f.y(0) - f.y(acc)).toFixed(2)}" class="mark bar" fill="${PALETTE[0]}"><title>accuracy ${fmt(acc)}</title></rect>`,
    );
    const top = f.y(Math.max(acc, conf));
    f.parts.push(
      `<rect x="${left.toFixed(2)}" y="${top.toFixed(2)}" width="${width.toFixed(2)}" height="${Math.max(0.5, Math.abs(f.y(acc) - f.y(conf))).toFixed(2)}" class="mark gap" fill="${PALETTE[1]}" fill-opacity="0.5"><title>mean confidence ${fmt(conf)}</title></rect>`,
    );
    marks += 2;
  });
  return finish(axes, f, marks, ['accuracy', 'gap to confidence']);
}

/** A predictive band (lower/upper around a mean line) with data points; marks: band, mean and one per point. */
export function bandChart(a: {
  id: string;
  title: string;
  xLabel: string;
  yLabel: string;
  x: number[];
  mean: number[];
  lower: number[];
  upper: number[];
  data: [number, number][];
}): string {
  const axes: Axes = { ...a, xDomain: extent(a.x), yDomain: extent([...a.lower, ...a.upper, ...a.data.map((p) => p[1])], 0.05) };
  const f = frame(axes);
  const upper = a.x.map((x, i) => `${f.x(x).toFixed(2)},${f.y(a.upper[i]!).toFixed(2)}`);
  const lower = a.x.map((x, i) => `${f.x(x).toFixed(2)},${f.y(a.lower[i]!).toFixed(2)}`).reverse();
  f.parts.push(`<path d="M${[...upper, ...lower].join('L')}Z" class="mark band" fill="${PALETTE[0]}" fill-opacity="0.25"><title>mean ± 2 std</title></path>`);
  f.parts.push(
    `<path d="M${a.x.map((x, i) => `${f.x(x).toFixed(2)},${f.y(a.mean[i]!).toFixed(2)}`).join('L')}" class="mark line" fill="none" stroke="${PALETTE[0]}"><title>predictive mean</title></path>`,
  );
  for (const [x, y] of a.data) f.parts.push(`<circle cx="${f.x(x).toFixed(2)}" cy="${f.y(y).toFixed(2)}" r="2.5" class="mark point" fill="${PALETTE[1]}"/>`);
  return finish(axes, f, 2 + a.data.length, ['mean ± 2 std', 'training data']);
}
