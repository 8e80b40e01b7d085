import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { loadModel } from '../src/model/load.js';
import { runGraph } from './helpers.js';
import { loadSnn } from '../src/snn/network.js';
import { openDataset } from '../src/data/sources.js';
import { readBatch } from '../src/data/dataset.js';
import { tempDir } from './temp.js';

const CLI = path.join(process.cwd(), 'dist', 'src', 'cli', 'main.js');
const MNIST = path.join(process.cwd(), 'models', 'mnist-cnn.onnx');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const SHOTS = path.join(process.cwd(), 'test-output');
const tmp = tempDir('spikeport-report-');

function cli(args: string[]): string {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', cwd: tmp });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

const json = path.join(tmp, 'run.json');
const html = path.join(tmp, 'run.html');
const md = path.join(tmp, 'run.md');
const snnFile = path.join(tmp, 'run.snn.onnx');
let made = false;
function makeReport(): void {
  if (made) return;
  cli([
    'simulate',
    MNIST,
    '--data',
    'mnist:test',
    '--limit',
    '300',
    '--T',
    '4,8,16,32',
    '--iterations',
    '20',
    '--json',
    json,
    '--report',
    html,
    '--markdown',
    md,
    '--save',
    snnFile,
    '-q',
  ]);
  made = true;
}

test('simulate --json/--report/--markdown: one record; the Markdown shows its numbers; spikeport report re-renders the same page', async () => {
  makeReport();
  const r = JSON.parse(fs.readFileSync(json, 'utf8'));
  assert.equal(r.kind, 'simulate');
  assert.equal(r.energy.perT.length, 4);
  // SOPs grow with T (every step adds spikes) and energy follows the constants.
  const sops = r.energy.perT.map((p: { sops: number }) => p.sops);
  for (let i = 1; i < sops.length; i++) assert.ok(sops[i] > sops[i - 1]);
  for (const p of r.energy.perT) assert.ok(Math.abs(p.energy - (p.sops * 77e-15 + p.macs * 12.5e-12)) < 1e-15);
  assert.equal(r.siteErrors.sites.length, 3);
  // Site 0's clip error worked out here: its ReLU output R (the ANN's first max pool: the pool moves in
  // front of the neuron, ReLU and clip commute with it) on the same first test images, clipped at the
  // saved θ of each channel: ‖R − min(R, θ)‖ / ‖R‖.
  const { samples } = r.siteErrors;
  const snn = await loadSnn(snnFile, { ann: null });
  const theta = snn.spec.sites[0].theta;
  const batch = await readBatch(
    openDataset('mnist:test', samples),
    Array.from({ length: samples }, (_, i) => i),
    snn.meta.normalize,
  );
  const pooled = '/MaxPool_output_0';
  const ann = loadModel(MNIST).graph;
  const R = (
    await runGraph(
      { ...ann, outputs: [{ name: pooled, dtype: 'float32', shape: null }] },
      { input: { dims: [samples, 1, 28, 28], data: batch.x } },
    )
  )[pooled].data as Float32Array;
  let num = 0;
  let den = 0;
  R.forEach((v, i) => {
    num += (v - Math.min(v, theta[Math.floor(i / (14 * 14)) % 16])) ** 2;
    den += v * v;
  });
  const site0 = r.siteErrors.sites[0];
  const clip0 = Math.sqrt(num / den);
  assert.ok(clip0 > 1e-3, `θ clips some activations (${clip0})`);
  assert.ok(Math.abs(site0.clipError - clip0) <= 1e-5 * clip0, `site 0 clip error ${site0.clipError} vs ${clip0}`);
  // The SNN's error against the ANN is within its error against the clipped ANN of the clip error
  // (triangle inequality; at site 0 the clipped ANN is min(R, θ), and ‖min(R, θ)‖ ≤ ‖R‖).
  assert.ok(
    Math.abs(site0.snnVsAnn - site0.clipError) <= site0.snnVsClipped + 1e-6,
    `|${site0.snnVsAnn} − ${site0.clipError}| ≤ ${site0.snnVsClipped}`,
  );
  for (const s of r.siteErrors.sites)
    assert.ok(
      [s.clipError, s.snnVsAnn, s.snnVsClipped].every((v) => Number.isFinite(v) && v >= 0),
      JSON.stringify(s),
    );
  const text = fs.readFileSync(md, 'utf8');
  for (const x of r.results)
    assert.ok(text.includes(`| ${x.T} | ${x.delay} | ${(100 * x.metric).toFixed(2)} |`), `Markdown row for T=${x.T}`);
  const again = path.join(tmp, 'again.html');
  cli(['report', json, '--out', again]);
  assert.equal(fs.readFileSync(again, 'utf8'), fs.readFileSync(html, 'utf8'));
  // A file that is not a record: one clear line, no output file.
  const bad = spawnSync(process.execPath, [CLI, 'report', MNIST, '--out', path.join(tmp, 'x.html')], {
    encoding: 'utf8',
  });
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /^spikeport: error: .*not JSON/);
  assert.ok(!fs.existsSync(path.join(tmp, 'x.html')));
});

test(
  'the HTML report renders its charts in headless Chromium (offline, no scripts)',
  { skip: !fs.existsSync(CHROMIUM) && `no Chromium at ${CHROMIUM} (apt-get install chromium)` },
  async () => {
    makeReport();
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
      ],
    });
    try {
      const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
      const requests: string[] = [];
      page.on('request', (req) => {
        if (!req.url().startsWith('file:')) requests.push(req.url());
      });
      await page.goto(`file://${html}`);
      const r = JSON.parse(fs.readFileSync(json, 'utf8'));
      const charts = page.locator('figure.chart svg');
      assert.equal(await charts.count(), 4, 'accuracy, firing rate, per-site error, energy charts');
      for (let i = 0; i < 4; i++) {
        const box = await charts.nth(i).boundingBox();
        assert.ok(box && box.width > 300 && box.height > 200, `chart ${i} is laid out (${JSON.stringify(box)})`);
      }
      // Accuracy chart: a line per series with one point per T.
      const acc = charts.nth(0);
      assert.ok((await acc.locator('.mark-line.role-mark path').count()) >= 2, 'two accuracy lines');
      assert.equal(
        await acc.locator('.mark-symbol.role-mark path').count(),
        (r.ceiling ? 3 : 2) * r.results.length,
        'one point per T and series (with and without delay, and the ceiling)',
      );
      // Firing-rate bars: one per site, heights ordered like the rates.
      const bars = charts.nth(1).locator('.mark-rect.role-mark path');
      assert.equal(await bars.count(), r.firingRates.length);
      const heights = await Promise.all(
        Array.from({ length: r.firingRates.length }, async (_, i) => (await bars.nth(i).boundingBox())?.height ?? 0),
      );
      const order = (xs: number[]): number[] => xs.map((_, i) => i).sort((a, b) => xs[a] - xs[b]);
      assert.deepEqual(order(heights), order(r.firingRates.map((f: { rate: number }) => f.rate)));
      assert.equal(await charts.nth(2).locator('.mark-rect.role-mark path').count(), 3 * r.siteErrors.sites.length);
      assert.match(await page.locator('h1').innerText(), /mnist-cnn\.onnx on mnist:test \(300 samples\)/);
      const embedded = JSON.parse((await page.locator('#spikeport-record').textContent()) ?? '');
      assert.deepEqual(embedded.results, r.results);
      assert.deepEqual(requests, [], 'the page loads nothing from the network');
      fs.mkdirSync(SHOTS, { recursive: true });
      await page.screenshot({ path: path.join(SHOTS, 'report.png'), fullPage: true });
      assert.ok(fs.statSync(path.join(SHOTS, 'report.png')).size > 20_000);
    } finally {
      await browser.close();
    }
  },
);
