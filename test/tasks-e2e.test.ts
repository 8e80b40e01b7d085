import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { tempDir } from './temp.js';

const CLI = path.join(process.cwd(), 'dist', 'src', 'cli', 'main.js');
const tmp = tempDir('spikeport-tasks-');

/** The bundled task models: the SNN's task metric approaches the clipped ANN's as T grows. */
const CASES = [
  { model: 'mnist-deeplab', data: 'mnist-seg', task: 'segmentation', limit: 30, tol: 0.03 },
  { model: 'mnist-centernet', data: 'mnist-det', task: 'detection', limit: 60, tol: 0.05 },
  { model: 'mnist-r3d', data: 'mnist-video', task: 'video', limit: 100, tol: 0.03 },
];

for (const c of CASES) {
  const file = path.join(process.cwd(), 'models', `${c.model}.onnx`);
  test(
    `${c.model} (${c.task}): the SNN's metric approaches the clipped ANN's as T grows; the ANN scores as its manifest says`,
    { skip: !fs.existsSync(file) && `${c.model} is not trained yet` },
    () => {
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
      const manifest = JSON.parse(fs.readFileSync(file.replace(/\.onnx$/, '.json'), 'utf8'));
      assert.ok(
        rec.ann.metric > 0.5 * manifest.ann.value,
        `ANN ${rec.ann.metric} on ${c.limit} samples vs ${manifest.ann.value} on 1000`,
      );
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
