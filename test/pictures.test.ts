/**
 * The report's pictures: what the record keeps is what the SNN computed (checked against an
 * independent average of every step's readout and the ANN run by ONNX Runtime directly), the
 * misclassified grid is exactly the misclassified samples, and the HTML shows them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { convert } from '../src/api/convert.js';
import { simulate } from '../src/api/simulate.js';
import type { Snn } from '../src/snn/network.js';
import { openDataset, openMemoryDataset } from '../src/data/sources.js';
import { readBatch, type MemoryDataset } from '../src/data/dataset.js';
import { crc32, decodeLabelPng, encodePng } from '../src/data/png.js';
import { simulateBatches as runSteps } from '../src/runtime/batches.js';
import { TailRunner } from '../src/evaluate/tail.js';
import { expandRuns, runLengths, PICTURE_MIN_SCORE } from '../src/evaluate/pictures.js';
import { decode } from '../src/tasks/detection.js';
import { toInput, toOriginal, type Placement } from '../src/data/preprocess.js';
import { parseRecord, type SimulateRecord } from '../src/report/record.js';
import { reportHtml } from '../src/report/html.js';
import { reportMarkdown } from '../src/report/markdown.js';
import { tempDir } from './temp.js';

const CLI = path.join(process.cwd(), 'dist', 'src', 'cli', 'main.js');
const MODELS = path.join(process.cwd(), 'models');
const tmp = tempDir('spikeport-pictures-');

function pngBytes(uri: string): Buffer {
  assert.match(uri, /^data:image\/png;base64,/);
  return Buffer.from(uri.slice('data:image/png;base64,'.length), 'base64');
}

/**
 * Every step's readout kept (no running sums), averaged over steps d+1..T here, and put through
 * the tail: the SNN's outputs for the given windows, per sample index.
 */
async function averagedOutputs(
  snn: Snn,
  data: MemoryDataset,
  windows: readonly { T: number; delay: number }[],
  batchSize: number,
): Promise<Map<number, { data: Float32Array; dims: readonly number[] }[]>> {
  const { spec } = snn;
  const Tmax = Math.max(...windows.map((w) => w.T));
  const tail = await TailRunner.create(snn.tail, spec.readout, { threads: 1 });
  const out = new Map<number, { data: Float32Array; dims: readonly number[] }[]>();
  try {
    await runSteps(
      snn.graph,
      spec,
      data,
      { steps: Tmax, batchSize, normalize: snn.meta.normalize, form: snn.form, engine: 'steps', threads: 1 },
      async (b) => {
        assert.ok(b.readouts, 'every step kept');
        const stride = b.n * b.size;
        for (let k = 0; k < b.n; k++) {
          const perWindow: { data: Float32Array; dims: readonly number[] }[] = [];
          for (const w of windows) {
            const avg = new Float32Array(b.size);
            for (let j = 0; j < b.size; j++) {
              let s = 0;
              for (let t = w.delay; t < w.T; t++) s += (b.readouts as Float32Array)[t * stride + k * b.size + j];
              avg[j] = s / (w.T - w.delay);
            }
            const [r] = await tail.apply(avg, [1, ...spec.readoutShape]);
            perWindow.push({ data: Float32Array.from(r.data), dims: r.dims });
          }
          out.set(b.indices[k], perWindow);
        }
      },
    );
  } finally {
    await tail.release();
  }
  return out;
}

/** The ANN itself (the bundled ONNX file, run by ONNX Runtime) on some samples. */
async function annDirect(
  model: string,
  data: MemoryDataset,
  indices: number[],
  norm: { mean: readonly number[]; std: readonly number[] },
): Promise<ort.Tensor> {
  const session = await ort.InferenceSession.create(model);
  const b = await readBatch(data, indices, norm);
  const out = await session.run({
    [session.inputNames[0]]: new ort.Tensor('float32', b.x, [b.n, ...data.sampleShape]),
  });
  return out[session.outputNames[0]];
}

function argmaxPlane(v: ArrayLike<number>, offset: number, C: number, plane: number): number[] {
  return Array.from({ length: plane }, (_, p) => {
    let best = 0;
    for (let c = 1; c < C; c++) if (v[offset + c * plane + p] > v[offset + best * plane + p]) best = c;
    return best;
  });
}

test('PNG: gray, palette and RGB images written here read back (our decoder, sharp); CRC-32 of "123456789"', async () => {
  assert.equal(crc32(Buffer.from('123456789')), 0xcbf43926);
  const px = Uint8Array.from({ length: 7 * 5 }, (_, i) => (i * 53) % 256);
  assert.deepEqual(
    Array.from(decodeLabelPng(encodePng({ width: 7, height: 5, channels: 1, data: px }), 'gray').data),
    Array.from(px),
  );
  const idx = Uint8Array.from(px, (v) => v % 4);
  const palette = Uint8Array.from([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255]);
  const pal = encodePng({ width: 7, height: 5, channels: 1, data: idx, palette });
  assert.deepEqual(Array.from(decodeLabelPng(pal, 'palette').data), Array.from(idx), 'palette indices');
  const viaSharp = await sharp(Buffer.from(pal)).raw().toBuffer();
  assert.deepEqual(
    Array.from(viaSharp.subarray(0, 3 * 4)),
    Array.from(idx.subarray(0, 4)).flatMap((i) => Array.from(palette.subarray(3 * i, 3 * i + 3))),
    'palette colours',
  );
  const rgb = Uint8Array.from({ length: 7 * 5 * 3 }, (_, i) => (i * 29) % 256);
  assert.deepEqual(
    Array.from(
      await sharp(Buffer.from(encodePng({ width: 7, height: 5, channels: 3, data: rgb })))
        .raw()
        .toBuffer(),
    ),
    Array.from(rgb),
  );
  assert.throws(() => encodePng({ width: 7, height: 5, channels: 3, data: px }), /35 bytes for 7×5×3/);
});

test('mask run lengths: round trip, and a malformed or short run is an error', () => {
  const mask = Uint8Array.from([0, 0, 0, 3, 3, 255, 0, 0]);
  const runs = runLengths(mask);
  assert.equal(runs, '0:3 3:2 255:1 0:2');
  assert.deepEqual(Array.from(expandRuns(runs, 8)), Array.from(mask));
  assert.throws(() => expandRuns(runs, 9), /describe 8 of 9 pixels/);
  assert.throws(() => expandRuns('0:3 3:x', 5), /do not describe/);
  assert.throws(() => expandRuns('256:8', 8), /do not describe/);
});

test("segmentation pictures: the masks at each T are the argmax of the SNN's output averaged over the window (every step kept, averaged here); ANN masks are the ONNX file's; truth and image are the sample's", async () => {
  const model = path.join(MODELS, 'mnist-fcn.onnx');
  const snn = await convert(model, openMemoryDataset('mnist-seg:train', 400), {
    iterations: 20,
    batchSize: 20,
    threads: 1,
  });
  const data = openMemoryDataset('mnist-seg:test', 9);
  const rec = await simulate(snn, data, { T: [3, 5, 8, 24], batchSize: 4, pictures: 3, references: true, threads: 1 });
  const p = rec.pictures;
  assert.ok(p);
  assert.equal(p.task, 'segmentation');
  // The smallest, a middle and the largest T, with the run's delays.
  assert.deepEqual(
    p.windows.map((w) => w.T),
    [3, 5, 24],
  );
  for (const w of p.windows) assert.equal(w.delay, rec.results.find((r) => r.T === w.T)?.delay);
  assert.deepEqual(
    p.samples.map((s) => s.index),
    [0, 3, 6],
    'spread over the data',
  );
  assert.deepEqual(p.classes, ['background', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
  const independent = await averagedOutputs(snn, data, p.windows, 4);
  const plane = 64 * 64;
  const ann = await annDirect(
    model,
    data,
    p.samples.map((s) => s.index),
    snn.meta.normalize as { mean: number[]; std: number[] },
  );
  const all = await data.read(p.samples.map((s) => s.index));
  let differ = 0;
  p.samples.forEach((s, k) => {
    assert.equal(s.snn.length, 3);
    s.snn.forEach((pred, w) => {
      const o = (independent.get(s.index) ?? [])[w];
      assert.deepEqual(
        Array.from(expandRuns(pred.mask ?? '', plane)),
        argmaxPlane(o.data, 0, 11, plane),
        `sample ${s.index}, T = ${p.windows[w].T}`,
      );
    });
    if (s.snn[0].mask !== s.snn[2].mask) differ++;
    assert.deepEqual(
      Array.from(expandRuns(s.ann?.mask ?? '', plane)),
      argmaxPlane(ann.data as Float32Array, k * 11 * plane, 11, plane),
      `ANN, sample ${s.index}`,
    );
    assert.deepEqual(
      Array.from(expandRuns(s.truth.mask ?? '', plane)),
      Array.from((all.masks as Uint8Array).subarray(k * plane, (k + 1) * plane)),
      'truth',
    );
    assert.deepEqual(
      Array.from(decodeLabelPng(pngBytes(s.image), 'image').data),
      Array.from(all.x.subarray(k * plane, (k + 1) * plane)),
      'the image is the sample',
    );
  });
  assert.ok(differ > 0, 'the masks change with T (the test can tell windows apart)');
});

test("detection pictures: boxes at each T are the decoded averaged output (score ≥ the shown minimum); truth boxes are the sample's", async () => {
  const model = path.join(MODELS, 'mnist-centernet.onnx');
  const snn = await convert(model, openMemoryDataset('mnist-det:train', 400), {
    iterations: 20,
    batchSize: 20,
    threads: 1,
  });
  const data = openMemoryDataset('mnist-det:test', 4);
  const rec = await simulate(snn, data, { T: [8, 32], batchSize: 4, pictures: 2, threads: 1 });
  const p = rec.pictures;
  assert.ok(p);
  assert.equal(p.minScore, PICTURE_MIN_SCORE);
  assert.deepEqual(
    p.windows.map((w) => w.T),
    [8, 32],
    'two T: both shown',
  );
  assert.deepEqual(
    p.samples.map((s) => s.index),
    [0, 2],
  );
  const independent = await averagedOutputs(snn, data, p.windows, 4);
  let boxes = 0;
  for (const s of p.samples) {
    assert.equal(s.ann, null, 'no references asked for: no ANN');
    assert.deepEqual(
      s.truth.boxes,
      (data.boxes ?? [])
        .filter((b) => b.image === s.index)
        .map((b) => ({ label: b.label, x: b.x, y: b.y, w: b.w, h: b.h })),
    );
    s.snn.forEach((pred, w) => {
      const o = (independent.get(s.index) ?? [])[w];
      const [, C4, h, wd] = o.dims;
      const want = decode(o.data, 1, h, wd, [s.index], { classes: C4 - 4, stride: 64 / wd }).filter(
        (d) => d.score >= PICTURE_MIN_SCORE,
      );
      assert.equal(pred.boxes?.length, want.length, `sample ${s.index}, T = ${p.windows[w].T}`);
      pred.boxes?.forEach((b, j) => {
        assert.equal(b.label, want[j].label);
        for (const k of ['x', 'y', 'w', 'h', 'score'] as const)
          assert.ok(Math.abs((b[k] ?? NaN) - want[j][k]) < 0.01, `${k}: ${b[k]} vs ${want[j][k]}`);
      });
      boxes += want.length;
    });
  }
  assert.ok(boxes > 0, 'some boxes to compare');
  const html = await reportHtml(rec);
  assert.equal(html.match(/<svg class="pic"/g)?.length, 2 * (1 + 2), 'per sample: the ground truth and two T as SVG');
  assert.equal(
    html.match(/<rect [^>]*fill="none"/g)?.length,
    p.samples.reduce(
      (a, s) => a + (s.truth.boxes?.length ?? 0) + s.snn.reduce((b, x) => b + (x.boxes?.length ?? 0), 0),
      0,
    ),
    'one outline per box',
  );
});

test("classification pictures: the grid is exactly the first misclassified samples at the smallest T; their count matches the record's top-1; the HTML shows them, the Markdown says where", async () => {
  const model = path.join(MODELS, 'mnist-cnn.onnx');
  const snn = await convert(model, openMemoryDataset('mnist:train', 200), { iterations: 3, batchSize: 50, threads: 1 });
  const data = openMemoryDataset('mnist:test', 120);
  const rec = await simulate(snn, data, { T: [2, 8], batchSize: 50, pictures: 1, references: true, threads: 1 });
  const p = rec.pictures;
  assert.ok(p);
  assert.equal(p.task, 'classification');
  assert.deepEqual(p.windows, [{ T: 2, delay: rec.results[0].delay }]);
  assert.equal(p.checked, 120);
  assert.equal(p.misclassified, Math.round((1 - rec.results[0].metric) * 120), 'misclassified = (1 − top-1) × samples');
  const independent = await averagedOutputs(snn, data, p.windows, 50);
  const labels = data.labels as Int32Array;
  const pred = (i: number): number => {
    const v = (independent.get(i) ?? [])[0].data;
    return v.indexOf(Math.max(...v)); // first of the largest, as top-1 counts
  };
  const wrong = Array.from({ length: 120 }, (_, i) => i).filter((i) => pred(i) !== labels[i]);
  assert.equal(wrong.length, p.misclassified);
  assert.ok(wrong.length > 0, 'T = 2 with 3 iterations misclassifies some');
  assert.deepEqual(
    p.samples.map((s) => s.index),
    wrong.slice(0, 8),
    'the first 8 (8 per picture asked for)',
  );
  const ann = await annDirect(model, data, wrong.slice(0, 8), snn.meta.normalize as { mean: number[]; std: number[] });
  p.samples.forEach((s, k) => {
    assert.equal(s.truth.label, labels[s.index]);
    assert.equal(s.snn[0].label, pred(s.index));
    const a = Array.from((ann.data as Float32Array).subarray(10 * k, 10 * k + 10));
    assert.equal(s.ann?.label, a.indexOf(Math.max(...a)), "the ANN's class");
  });
  const html = await reportHtml(rec);
  assert.match(html, /<h2>Misclassified at T = 2<\/h2>/);
  assert.equal(html.match(/<figure class="card">/g)?.length, p.samples.length);
  for (const s of p.samples) assert.ok(html.includes(`src="${s.image}"`), `sample ${s.index}'s image`);
  assert.match(html, new RegExp(`${p.misclassified} of 120 samples`));
  assert.match(reportMarkdown(rec), /pictures are in the HTML report/);
  // The record read back (as spikeport report does) renders the same page.
  const back = parseRecord(JSON.parse(JSON.stringify(rec)), 'record') as SimulateRecord;
  assert.deepEqual(back.pictures, rec.pictures);
  assert.equal(await reportHtml(back), html);
});

test('records: one without pictures (older) renders without them; a picture that is not a PNG data URI, or bad mask runs, is refused when read; names are escaped', async () => {
  const old = JSON.parse(
    fs.readFileSync(path.join(process.cwd(), 'docs', 'generated', 'tasks', 'mnist-fcn.json'), 'utf8'),
  );
  delete old.pictures;
  const html = await reportHtml(parseRecord(old, 'old'));
  assert.ok(!html.includes('class="pic"') && !html.includes('<h2>Pictures</h2>'));
  assert.match(html, /<h2>mIoU against time steps<\/h2>/);
  const image = `data:image/png;base64,${Buffer.from(encodePng({ width: 2, height: 2, channels: 1, data: new Uint8Array(4) })).toString('base64')}`;
  const pictures = {
    task: 'segmentation',
    width: 2,
    height: 2,
    windows: [{ T: 4, delay: 2 }],
    classes: ['<b>bg</b>', 'x'],
    samples: [{ index: 0, image, truth: { mask: '0:2 1:2' }, ann: null, snn: [{ mask: '0:4' }] }],
  };
  const ok = parseRecord({ ...old, pictures }, 'ok');
  const page = await reportHtml(ok);
  assert.ok(page.includes('&lt;b&gt;bg&lt;/b&gt;') && !page.includes('<b>bg</b>'), 'class names escaped');
  // Truth 0 0 1 1, SNN 0 0 0 0: IoU 2/4 for class 0, 0 for class 1 → the image's mIoU 25 %.
  assert.match(page, /mIoU 25\.0 %/, "the SNN mask's mIoU on its image");
  const bad = (p: unknown): void =>
    assert.throws(
      () => parseRecord({ ...old, pictures: p }, 'r.json'),
      /r\.json: a simulate record with a bad field pictures/,
    );
  bad({ ...pictures, samples: [{ ...pictures.samples[0], image: 'javascript:alert(1)' }] });
  bad({ ...pictures, samples: [{ ...pictures.samples[0], image: 'data:image/png;base64,AAAA" onerror="x' }] });
  bad({ ...pictures, samples: [{ ...pictures.samples[0], truth: { mask: '0:2,1:2' } }] });
});

test('coco: crowd annotations are kept as crowd regions (not boxes to find); a PNG written here is decoded by the image source', async () => {
  const dir = path.join(tmp, 'coco-crowd');
  fs.mkdirSync(path.join(dir, 'images'), { recursive: true });
  const px = Uint8Array.from({ length: 64 * 64 }, (_, i) => (i * 7) % 256);
  fs.writeFileSync(path.join(dir, 'images', 'a.png'), encodePng({ width: 64, height: 64, channels: 1, data: px }));
  fs.writeFileSync(
    path.join(dir, 'a.json'),
    JSON.stringify({
      images: [{ id: 3, file_name: 'a.png' }],
      categories: [{ id: 1, name: 'one' }],
      annotations: [
        { id: 1, image_id: 3, category_id: 1, bbox: [1, 2, 10, 12], iscrowd: 0 },
        { id: 2, image_id: 3, category_id: 1, bbox: [20, 20, 30, 30], iscrowd: 1 },
      ],
    }),
  );
  const d = openDataset(`coco:${dir}/images@${dir}/a.json`, undefined, { sampleShape: [1, 64, 64] });
  assert.deepEqual(d.boxes, [
    { image: 0, label: 0, x: 1, y: 2, w: 10, h: 12 },
    { image: 0, label: 0, x: 20, y: 20, w: 30, h: 30, crowd: true },
  ]);
  assert.deepEqual(Array.from((await d.read([0])).x), Array.from(px));
});

test("ground-truth boxes are drawn in the model's input pixels: toInput undoes toOriginal (resize 500×375 → 298×224, centre crop 224)", () => {
  const p: Placement = {
    width: 500,
    height: 375,
    resize: { width: 298, height: 224 },
    crop: { left: 37, top: 0, width: 224, height: 224 },
  };
  // Original (100, 75) → resized (59.6, 44.8) → cropped (22.6, 44.8).
  const [x, y] = toInput(p, 100, 75);
  assert.ok(Math.abs(x - 22.6) < 1e-9 && Math.abs(y - 44.8) < 1e-9, `${x}, ${y}`);
  const [ox, oy] = toOriginal(p, x, y);
  assert.ok(Math.abs(ox - 100) < 1e-9 && Math.abs(oy - 75) < 1e-9);
});

test('CLI: simulate --pictures writes them into the JSON and the HTML, spikeport report renders the same page; --pictures out of range is one line', () => {
  const json = path.join(tmp, 'seg.json');
  const html = path.join(tmp, 'seg.html');
  const run = (args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', cwd: tmp });
  const r = run([
    'simulate',
    path.join(MODELS, 'mnist-fcn.onnx'),
    '--data',
    'mnist-seg:test',
    '--limit',
    '6',
    '--T',
    '2,4',
    '--iterations',
    '2',
    '--batch',
    '6',
    '--site-errors',
    '0',
    '--pictures',
    '2',
    '--json',
    json,
    '--report',
    html,
    '-q',
  ]);
  assert.equal(r.status, 0, r.stderr);
  const rec = JSON.parse(fs.readFileSync(json, 'utf8'));
  assert.equal(rec.pictures.samples.length, 2);
  assert.ok(
    rec.pictures.samples.every((s: { ann: unknown }) => s.ann !== null),
    'the ANN is at hand: its masks too',
  );
  const page = fs.readFileSync(html, 'utf8');
  assert.match(page, /<h2>Pictures<\/h2>/);
  // Per sample: the image, the truth, the ANN and two T.
  assert.equal(page.match(/<img class="pic"/g)?.length, 2 * 5);
  const again = path.join(tmp, 'again.html');
  const rr = run(['report', json, '--out', again]);
  assert.equal(rr.status, 0, rr.stderr);
  assert.equal(fs.readFileSync(again, 'utf8'), page);
  const out = path.join(tmp, 'never.json');
  const bad = run([
    'simulate',
    path.join(MODELS, 'mnist-fcn.onnx'),
    '--data',
    'mnist-seg:test',
    '--pictures',
    '17',
    '--json',
    out,
    '-q',
  ]);
  assert.equal(bad.status, 1);
  assert.match(
    bad.stderr.trim(),
    /^spikeport: error: --pictures must be at most 16 \(the pictures are stored in the record\) \(got 17\)$/,
  );
  assert.ok(!fs.existsSync(out));
});
