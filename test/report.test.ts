// The HTML report in a real browser: Debian's chromium, headless, driven by playwright-core. Every
// chart must be there with the number of marks its data implies, nothing may log an error or ask the
// network for anything, and a screenshot is kept in runs/test-report/ (git-ignored).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fakeSuite, tinyTrainedModel, twoClassImages } from './evaluation-fixtures';
import { sdebnn } from './helpers';

const CHROMIUM = process.env.SDEBNN_CHROMIUM ?? '/usr/bin/chromium';
const FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const shots = path.resolve(__dirname, '..', 'runs', 'test-report');

type ReportInput = Parameters<typeof sdebnn.renderReport>[0];

/** The marks each chart must hold, from the data the report was given. */
function expectedMarks(input: ReportInput): Record<string, number> {
  const out: Record<string, number> = {};
  const nonEmpty = (counts: number[]) => counts.filter((c) => c > 0).length;
  const e = input.evaluation;
  if (e) {
    out.reliability = 2 * nonEmpty(e.clean.reliability.count);
    out.confidence = nonEmpty(e.clean.reliability.count);
    out.coverage = 1;
    if (e.ood.length > 0) {
      for (const key of ['entropy', 'mutualInformation'] as const) {
        out[`${key}-histogram`] = nonEmpty(e.clean.histograms[key].counts) + e.ood.reduce((a, o) => a + nonEmpty(o.histograms[key].counts), 0);
      }
      for (const o of e.ood) out[`roc-${o.name}`] = 4; // three scores and chance
    }
    if (e.shift) {
      const names = [...new Set(e.shift.results.map((r) => r.corruption))];
      const single = e.shift.results.every((r) => r.severity === 1);
      // one bar per corruption and clean; or per corruption a line and a point per severity and clean
      for (const key of ['accuracy', 'ece', 'entropy']) out[`shift-${key}`] = single ? names.length + 1 : e.shift.results.length + 2 * names.length;
    }
  }
  if (input.training) {
    out['training-loss'] = 2 + Math.ceil(input.training.epochs.length / Math.ceil(input.training.epochs.length / 200));
    out['training-accuracy'] = 1;
    out['training-kl'] = 1;
  }
  if (input.regression) out['regression-band'] = 2 + input.regression.data.length;
  return out;
}

const inCi = process.env.CI === 'true';
const haveChromium = fs.existsSync(CHROMIUM);

describe('readTrainingLog', () => {
  it('reads step and epoch lines and names the line that is not a JSON object', () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'sdebnn-log-')), 'log.jsonl');
    fs.writeFileSync(file, '{"type":"step","step":1,"loss":2}\n\n{"type":"epoch","epoch":0,"steps":1,"loss":2}\n{"note":"other"}\n');
    const log = sdebnn.readTrainingLog(file);
    expect([log.steps.length, log.epochs.length, log.epochs[0]?.loss]).toEqual([1, 1, 2]);
    for (const [line, problem] of [
      ['null', 'is not a JSON object'],
      ['[1]', 'is not a JSON object'],
      ['5', 'is not a JSON object'],
      ['{', 'is not JSON'],
    ]) {
      fs.writeFileSync(file, `{"type":"step","step":1,"loss":2}\n${line}\n`);
      expect(() => sdebnn.readTrainingLog(file)).toThrow(`${file}:2 ${problem}`);
    }
  });
});

describe('the HTML report in headless Chromium', () => {
  if (!haveChromium && !inCi) {
    it.skip(`needs ${CHROMIUM} (apt-get install chromium, as scripts/setup.sh does as root)`, () => {});
    return;
  }
  const reports: { name: string; input: ReportInput }[] = [];
  let browser: Awaited<ReturnType<typeof chromium.launchPersistentContext>>;
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'sdebnn-chromium-'));

  beforeAll(async () => {
    if (!haveChromium) throw new Error(`Chromium is missing at ${CHROMIUM}: CI must run scripts/setup.sh as root (it installs Debian's chromium)`);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sdebnn-report-'));
    const logFile = path.join(dir, 'log.jsonl');
    const model = await tinyTrainedModel({ logFile });
    const test = twoClassImages(60, 2);
    const ood = [
      sdebnn.loadOodImages('noise', { inputShape: [1, 12, 12], limit: 50 }),
      sdebnn.loadOodImages('constant', { inputShape: [1, 12, 12], limit: 50 }),
    ];
    const several = await sdebnn.evaluateUncertainty(model, test, { samples: 3, shift: fakeSuite('several'), ood });
    const one = await sdebnn.evaluateUncertainty(model, test, { samples: 2, shift: fakeSuite('one'), ood: ood.slice(0, 1), deterministic: false });
    model.dispose();
    // A 1D regressor's band: a few steps of the toy model.
    const toy = sdebnn.toyRegression({ seed: 0 });
    const regressor = new sdebnn.SdeBnn({ ...sdebnn.toyModelConfig(), solver: { steps: 8 } });
    await sdebnn.train(regressor, { train: toy.dataset }, { epochs: 5, batchSize: 40 });
    const grid = sdebnn.toyGrid({ min: -1, max: 9, count: 51 });
    const band = await regressor.predict(grid, { samples: 8, seed: 1 });
    regressor.dispose();
    if (band.kind !== 'regression') throw new Error('expected regression');
    reports.push({
      name: 'several-severities',
      input: { title: 'Report with several severities', notes: ['fixture'], evaluation: several, training: sdebnn.readTrainingLog(logFile) },
    });
    reports.push({
      name: 'one-severity-and-regression',
      input: {
        title: 'Report with one severity and a regression band',
        evaluation: one,
        regression: {
          x: Array.from(grid),
          mean: Array.from(band.mean),
          std: Array.from(band.std),
          data: Array.from(toy.x, (x, i): [number, number] => [x, toy.y[i]!]),
        },
      },
    });
    browser = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: FLAGS });
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    fs.rmSync(profile, { recursive: true, force: true });
  });

  it('draws every chart with the expected marks, without console errors or network requests, and saves a screenshot', async () => {
    fs.mkdirSync(shots, { recursive: true });
    for (const { name, input } of reports) {
      const file = path.join(shots, `${name}.html`);
      sdebnn.writeReport(file, input);
      const page = await browser.newPage();
      const errors: string[] = [];
      const requests: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error') errors.push(m.text());
      });
      page.on('pageerror', (e) => errors.push(String(e)));
      page.on('request', (r) => {
        if (r.url() !== `file://${file}`) requests.push(r.url());
      });
      await page.setViewportSize({ width: 1500, height: 1000 });
      await page.goto(`file://${file}`, { waitUntil: 'load' });
      const charts = await page.$$eval('svg.chart', (svgs) =>
        svgs.map((s) => ({
          id: s.getAttribute('data-chart')!,
          declared: Number(s.getAttribute('data-marks')),
          marks: s.querySelectorAll('.mark').length,
          width: s.getBoundingClientRect().width,
        })),
      );
      const expected = expectedMarks(input);
      expect(charts.map((c) => c.id).sort(), name).toEqual(Object.keys(expected).sort());
      for (const c of charts) {
        expect(c.marks, `${name}: ${c.id}`).toBe(expected[c.id]);
        expect(c.declared, `${name}: ${c.id}`).toBe(c.marks);
        expect(c.marks, `${name}: ${c.id}`).toBeGreaterThan(0);
        expect(c.width, `${name}: ${c.id} is laid out`).toBeGreaterThan(100);
      }
      const shot = path.join(shots, `${name}.png`);
      await page.screenshot({ path: shot, fullPage: true });
      expect(fs.statSync(shot).size).toBeGreaterThan(20_000);
      expect(errors, name).toEqual([]);
      expect(requests, name).toEqual([]);
      await page.close();
    }
  }, 120_000);
});
