/**
 * The browser demo in Debian's Chromium: it loads offline (everything from its own folder), a
 * digit drawn with the mouse is classified correctly, and the page's spike counts per site and
 * step equal onnxruntime-node's for the same input.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { buildWeb, serve } from '../web/build.js';
import { decodeModel } from '../src/onnx/codec.js';
import { Session, type Array32 } from '../src/ort/session.js';
import { tempDir } from './temp.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const SHOTS = path.join(process.cwd(), 'test-output');

interface PageResult {
  T: number;
  delay: number;
  input: number[];
  counts: number[][];
  prediction: number;
  annPrediction: number;
}

test(
  "browser demo: loads offline, classifies a drawn test digit, spike counts equal onnxruntime-node's",
  { skip: !fs.existsSync(CHROMIUM) && `no Chromium at ${CHROMIUM} (apt-get install chromium)` },
  async (t) => {
    const dir = tempDir('spikeport-web-', t);
    const build = await buildWeb(dir, { calibLimit: 500, threads: 1 });
    const server = await serve(dir);
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : 0;
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
      const page = await browser.newPage({ viewport: { width: 1100, height: 1000 } });
      const foreign: string[] = [];
      await page.route('**/*', (route) => {
        const url = route.request().url();
        if (url.startsWith(`http://127.0.0.1:${port}/`)) return route.continue();
        foreign.push(url);
        return route.abort();
      });
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(`http://127.0.0.1:${port}/`);
      await page.waitForFunction(
        () => (window as unknown as { spikeport?: { ready: boolean } }).spikeport?.ready === true,
        undefined,
        { timeout: 60_000 },
      );

      // Draw MNIST test image 0 with the mouse: a dab on every bright pixel, strokes between neighbours.
      const digit = build.meta.digits[0];
      const box = await page.locator('#pad').boundingBox();
      assert.ok(box);
      const cell = box.width / 28;
      const bright = digit.pixels.map((v, i) => ({ v, x: i % 28, y: Math.floor(i / 28) })).filter((p) => p.v > 0.6);
      for (const p of bright) {
        await page.mouse.move(box.x + (p.x + 0.5) * cell, box.y + (p.y + 0.5) * cell);
        await page.mouse.down();
        await page.mouse.up();
      }
      await page.locator('#T').fill('24');
      await page.locator('#T').dispatchEvent('input');
      await page.evaluate(() => (window as unknown as { spikeport: { run: () => Promise<void> } }).spikeport.run());
      const r = (await page.evaluate(
        () => (window as unknown as { spikeport: { result: unknown } }).spikeport.result,
      )) as PageResult;
      assert.equal(r.T, 24);
      t.diagnostic(
        `drawn ${digit.label}: SNN says ${r.prediction}, ANN ${r.annPrediction}; ${r.counts.flat().reduce((a, b) => a + b, 0)} spikes in ${r.T} steps`,
      );
      assert.equal(r.prediction, digit.label, 'the SNN classifies the drawn digit');
      assert.equal(r.annPrediction, digit.label);
      assert.match(await page.locator('#prediction').innerText(), new RegExp(`^${digit.label}$`));
      assert.equal(await page.locator('#rasters canvas').count(), build.meta.sites.length, 'a raster per layer');

      // The same input in onnxruntime-node: the same spike count at every site and step.
      const g = decodeModel(build.snn, 'snn.onnx');
      const s = await Session.create(g, { threads: 1 });
      try {
        const feeds: Record<string, Array32> = {
          [build.meta.input]: { dims: [1, ...build.meta.inputShape], data: Float32Array.from(r.input) },
        };
        for (const st of build.meta.states)
          feeds[st.input] = { dims: [1, ...st.shape], data: new Float32Array(st.shape.reduce((a, b) => a * b, 1)) };
        for (let step = 0; step < r.T; step++) {
          const out = await s.run(feeds);
          for (const st of build.meta.states) feeds[st.input] = out[st.output];
          const counts = build.meta.sites.map((site) => out[site.output].data.reduce((a, v) => a + (v > 0 ? 1 : 0), 0));
          assert.deepEqual(r.counts[step], counts, `step ${step + 1}`);
        }
      } finally {
        await s.release();
      }
      assert.ok(r.counts.flat().some((c) => c > 0));
      assert.deepEqual(foreign, [], 'nothing loaded from outside the demo folder');
      assert.deepEqual(errors, []);
      fs.mkdirSync(SHOTS, { recursive: true });
      await page.screenshot({ path: path.join(SHOTS, 'web-demo.png'), fullPage: true });
      assert.ok(fs.statSync(path.join(SHOTS, 'web-demo.png')).size > 20_000);
    } finally {
      await browser.close();
      server.close();
    }
  },
);
