import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { openDataset } from '../src/data/sources.js';
import { readBatch, type Normalize } from '../src/data/dataset.js';
import { makeScorer } from '../src/tasks/task.js';
import { tempDir } from './temp.js';

const CLI = path.join(process.cwd(), 'dist', 'src', 'cli', 'main.js');
const tmp = tempDir('spikeport-tasks-');

/** The bundled task models: the SNN's task metric approaches the clipped ANN's as T grows. */
const CASES = [
  { model: 'mnist-deeplab', data: 'mnist-seg', task: 'segmentation', limit: 30, tol: 0.03 },
  { model: 'mnist-centernet', data: 'mnist-det', task: 'detection', limit: 60, tol: 0.05 },
  { model: 'mnist-r3d', data: 'mnist-video', task: 'video', limit: 100, tol: 0.03 },
];

/**
 * The ANN's main metric on the first `limit` test samples: the model run by onnxruntime-node
 * directly, then clip top-1 (video) or mIoU over the classes present (segmentation: per-pixel
 * argmax, label 255 ignored) worked out here; detection decodes and scores with the COCO scorer
 * that test/tasks.test.ts checks against hand-worked COCOeval cases.
 */
async function annMetric(c: (typeof CASES)[number], file: string): Promise<number> {
  const data = openDataset(`${c.data}:test`, c.limit);
  const manifest = JSON.parse(fs.readFileSync(file.replace(/\.onnx$/, '.json'), 'utf8')) as { normalize: Normalize };
  const batch = await readBatch(
    data,
    Array.from({ length: data.size }, (_, i) => i),
    manifest.normalize,
  );
  const session = await ort.InferenceSession.create(file, { intraOpNumThreads: 1 });
  const out = (await session.run({ input: new ort.Tensor('float32', batch.x, [batch.n, ...data.sampleShape]) })).output;
  await session.release();
  const y = out.data as Float32Array;
  const dims = out.dims.map(Number);
  if (c.task === 'video') {
    const k = dims[1];
    let hits = 0;
    for (let i = 0; i < batch.n; i++) {
      const row = Array.from(y.subarray(i * k, (i + 1) * k));
      if (row.indexOf(Math.max(...row)) === batch.y?.[i]) hits++;
    }
    return hits / batch.n;
  }
  if (c.task === 'segmentation') {
    const C = dims[1];
    const plane = dims[2] * dims[3];
    const counts = new Float64Array(C * C);
    const masks = batch.masks as Uint8Array;
    for (let i = 0; i < batch.n; i++)
      for (let p = 0; p < plane; p++) {
        const truth = masks[i * plane + p];
        if (truth === 255) continue;
        let best = 0;
        for (let k = 1; k < C; k++) if (y[(i * C + k) * plane + p] > y[(i * C + best) * plane + p]) best = k;
        counts[truth * C + best]++;
      }
    const ious: number[] = [];
    for (let k = 0; k < C; k++) {
      let row = 0;
      let col = 0;
      for (let j = 0; j < C; j++) {
        row += counts[k * C + j];
        col += counts[j * C + k];
      }
      const union = row + col - counts[k * C + k];
      if (union > 0) ious.push(counts[k * C + k] / union);
    }
    return ious.reduce((a, b) => a + b, 0) / ious.length;
  }
  const scorer = makeScorer('detection', 1, data);
  scorer.add(0, [{ name: 'output', dims, data: y }], batch);
  return scorer.scores()[0].metric;
}

for (const c of CASES) {
  const file = path.join(process.cwd(), 'models', `${c.model}.onnx`);
  test(
    `${c.model} (${c.task}): the SNN's metric approaches the clipped ANN's as T grows; the ANN's metric equals one computed from onnxruntime-node's outputs here`,
    { skip: !fs.existsSync(file) && `${c.model} is not trained yet` },
    async () => {
      const json = path.join(tmp, `${c.model}.json`);
      const r = spawnSync(
        process.execPath,
        [
          CLI,
          'simulate',
          file,
          '--data',
          `${c.data}:test`,
          '--limit',
          String(c.limit),
          '--T',
          '16,128',
          '--site-errors',
          '0',
          '--json',
          json,
          '-q',
        ],
        { encoding: 'utf8' },
      );
      assert.equal(r.status, 0, r.stderr);
      const rec = JSON.parse(fs.readFileSync(json, 'utf8'));
      assert.equal(rec.task, c.task, 'the task is inferred from the data');
      // The ANN's metric on these samples, from onnxruntime-node's outputs scored here.
      const ann = await annMetric(c, file);
      assert.ok(Math.abs(rec.ann.metric - ann) < 1e-9, `ANN ${rec.ann.metric} vs ${ann} computed here`);
      assert.ok(ann > 0.3, `the ANN works (${ann})`);
      const [t16, t128] = rec.results;
      assert.ok(
        Math.abs(t128.metric - rec.clippedAnn.metric) <= c.tol,
        `T=128 ${t128.metric} vs clipped ANN ${rec.clippedAnn.metric}`,
      );
      assert.ok(
        Math.abs(t128.metric - rec.clippedAnn.metric) <= Math.abs(t16.metric - rec.clippedAnn.metric) + 0.01,
        `closer at T=128 (${t128.metric}) than at T=16 (${t16.metric})`,
      );
      for (const x of rec.results) assert.ok(x.metric >= 0 && x.metric <= 1 && x.secondary >= 0 && x.secondary <= 1);
    },
  );
}
