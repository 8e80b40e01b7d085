import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decode, iou, meanAveragePrecision, nms, type Detection } from '../src/tasks/detection.js';
import { ConfusionMatrix } from '../src/tasks/segmentation.js';
import { openMemoryDataset } from '../src/data/sources.js';
import { CANVAS, IGNORE } from '../src/data/synth.js';
import type { DetectionBox } from '../src/data/dataset.js';

const gt = (image: number, label: number, x: number, y: number, w: number, h: number): DetectionBox => ({
  image,
  label,
  x,
  y,
  w,
  h,
});
const det = (image: number, label: number, score: number, x: number, y: number, w: number, h: number): Detection => ({
  image,
  label,
  score,
  x,
  y,
  w,
  h,
});
const close = (a: number, b: number, eps = 1e-9): void => assert.ok(Math.abs(a - b) < eps, `${a} vs ${b}`);

test('mAP: a perfect detector scores 1.0; a box at IoU 0.6 counts at thresholds 0.50–0.60 only (3 of 10)', () => {
  const gts = [gt(0, 0, 10, 10, 20, 20), gt(0, 1, 40, 40, 10, 10), gt(1, 0, 5, 5, 8, 8)];
  const perfect = gts.map((g, i) => det(g.image, g.label, 0.9 - i * 0.1, g.x, g.y, g.w, g.h));
  const r = meanAveragePrecision(perfect, gts, 3);
  close(r.map, 1);
  close(r.map50, 1);
  assert.equal(r.perClass[2], null, 'a class without ground truth is left out');
  // Shift a 20×20 box by 5 px in x: IoU = 15·20 / (2·400 − 300) = 0.6.
  const shifted = det(0, 0, 0.9, 15, 10, 20, 20);
  close(iou(shifted, gts[0]), 0.6);
  const one = meanAveragePrecision([shifted], [gts[0]], 1);
  close(one.map, 3 / 10);
  close(one.map50, 1);
  close(one.map75, 0);
});

test('mAP: duplicates are false positives; a higher-scored false positive halves the precision; a class with no detections scores 0', () => {
  const g = [gt(0, 0, 0, 0, 10, 10)];
  // The duplicate scores lower than the match: recall reaches 1 at precision 1 first → AP 1.
  close(meanAveragePrecision([det(0, 0, 0.9, 0, 0, 10, 10), det(0, 0, 0.8, 0, 0, 10, 10)], g, 1).map, 1);
  // A false positive ranked first: precision 1/2 at recall 1 → AP 0.5 at every threshold.
  close(meanAveragePrecision([det(0, 0, 0.9, 50, 50, 10, 10), det(0, 0, 0.8, 0, 0, 10, 10)], g, 1).map, 0.5);
  // Two classes with ground truth, detections for one only: mean of 1 and 0.
  const two = [gt(0, 0, 0, 0, 10, 10), gt(0, 1, 20, 20, 10, 10)];
  close(meanAveragePrecision([det(0, 0, 0.9, 0, 0, 10, 10)], two, 2).map, 0.5);
  // Two ground truths, one found: recall stops at 0.5 → 51 of 101 recall points at precision 1.
  const pair = [gt(0, 0, 0, 0, 10, 10), gt(1, 0, 0, 0, 10, 10)];
  close(meanAveragePrecision([det(0, 0, 0.9, 0, 0, 10, 10)], pair, 1).map, 51 / 101);
  // maxDets: only the best-scoring detection per image counts.
  close(meanAveragePrecision([det(0, 0, 0.9, 50, 50, 10, 10), det(0, 0, 0.8, 0, 0, 10, 10)], g, 1, 1).map, 0);
});

test("mAP with COCO crowd regions (hand-worked, COCOeval's rules): detections in a crowd are left out, a crowd takes many, overlap = intersection / detection area, boxes to find win over crowds", () => {
  const crowd = (image: number, label: number, x: number, y: number, w: number, h: number): DetectionBox => ({
    ...gt(image, label, x, y, w, h),
    crowd: true,
  });
  const A = gt(0, 0, 0, 0, 10, 10);
  const C = crowd(0, 0, 20, 0, 20, 20);
  // Two detections inside the crowd score above the true one: left out, AP 1. (As false positives: precision 1/3 at recall 1.)
  const inCrowd = [det(0, 0, 0.95, 22, 2, 5, 5), det(0, 0, 0.9, 30, 5, 5, 5), det(0, 0, 0.8, 0, 0, 10, 10)];
  close(meanAveragePrecision(inCrowd, [A, C], 1).map, 1);
  close(meanAveragePrecision(inCrowd, [A], 1).map, 1 / 3);
  // Half of a 10×10 detection inside the crowd: overlap 50/100 = 0.5 (its IoU would be 50/450), left out at 0.50 only;
  // at 0.55..0.95 it is a false positive ranked first: precision 1/2 at recall 1 → mAP (1 + 9·0.5)/10.
  const half = [det(0, 0, 0.9, 35, 0, 10, 10), det(0, 0, 0.8, 0, 0, 10, 10)];
  const r = meanAveragePrecision(half, [A, C], 1);
  close(r.map50, 1);
  close(r.map75, 0.5);
  close(r.map, 0.55);
  // A detection with IoU 80/120 = 2/3 with the box and overlap 1 with a crowd covering both: matched to the box
  // while 2/3 ≥ threshold (0.50..0.65: AP 1), else left out in the crowd (0.70..0.95: no detection counts, AP 0).
  const big = crowd(0, 0, 0, 0, 40, 40);
  close(meanAveragePrecision([det(0, 0, 0.9, 2, 0, 10, 10)], [A, big], 1).map, 0.4);
  // Crowds are not ground truth to find: a class with only a crowd is left out of the mean; recall counts boxes only.
  const two = meanAveragePrecision([det(0, 0, 0.9, 0, 0, 10, 10)], [A, crowd(0, 1, 50, 50, 10, 10)], 2);
  assert.equal(two.perClass[1], null);
  close(two.map, 1);
  close(meanAveragePrecision([det(0, 0, 0.9, 0, 0, 10, 10)], [A, crowd(1, 0, 0, 0, 10, 10)], 1).map, 1, 1e-9);
});

test('NMS keeps the best box per overlapping group and class; decode finds heat-map peaks and places boxes', () => {
  const kept = nms(
    [
      det(0, 0, 0.5, 0, 0, 10, 10),
      det(0, 0, 0.9, 1, 0, 10, 10),
      det(0, 1, 0.4, 0, 0, 10, 10),
      det(0, 0, 0.3, 30, 30, 5, 5),
    ],
    0.5,
  );
  assert.deepEqual(
    kept.map((d) => d.score),
    [0.9, 0.4, 0.3],
  );
  // One image, 2 classes, 4×4 cells, stride 8: a peak of class 1 at (x=2, y=1), w=1.5, h=2 cells, offset (0.5, 0.25).
  const C = 2;
  const h = 4;
  const w = 4;
  const head = new Float32Array((C + 4) * h * w).fill(0);
  head.fill(-10, 0, C * h * w); // low heat everywhere
  const cell = 1 * w + 2;
  head[1 * h * w + cell] = 3;
  head[1 * h * w + cell + 1] = 1; // a neighbour, not a peak
  head[(C + 0) * h * w + cell] = 1.5;
  head[(C + 1) * h * w + cell] = 2;
  head[(C + 2) * h * w + cell] = 0.5;
  head[(C + 3) * h * w + cell] = 0.25;
  const d = decode(head, 1, h, w, [7], { classes: C, stride: 8, minScore: 0.3 });
  assert.equal(d.length, 1);
  assert.equal(d[0].image, 7);
  assert.equal(d[0].label, 1);
  close(d[0].score, 1 / (1 + Math.exp(-3)));
  close(d[0].w, 12);
  close(d[0].h, 16);
  close(d[0].x + d[0].w / 2, (2 + 0.5) * 8);
  close(d[0].y + d[0].h / 2, (1 + 0.25) * 8);
});

test('mIoU: confusion matrix over all pixels, ignore index skipped, classes that never occur left out', () => {
  const cm = new ConfusionMatrix(3, 255);
  // 1 image, 2×3 pixels; scores [3 classes, 6 pixels] with argmax pred = [0, 0, 1, 1, 2, 0].
  const pred = [0, 0, 1, 1, 2, 0];
  const labels = [0, 1, 1, 1, 255, 0];
  const scores = new Float32Array(3 * 6);
  pred.forEach((p, i) => {
    scores[p * 6 + i] = 1;
  });
  cm.add(scores, labels, 1);
  // class 0: tp 2, fp 1 (pixel 1), fn 0 → 2/3; class 1: tp 2, fn 1 → 2/3; class 2: only predicted on an ignored pixel → never occurs.
  const per = cm.iou();
  close(per[0], 2 / 3);
  close(per[1], 2 / 3);
  assert.ok(Number.isNaN(per[2]));
  close(cm.miou(), 2 / 3);
  close(cm.pixelAccuracy(), 4 / 5);
});

test('synthetic data: seeded and reproducible; masks, boxes and clips are consistent with the digits', () => {
  const a = openMemoryDataset('mnist-seg:test', 20);
  const b = openMemoryDataset('mnist-seg:test', 50);
  assert.deepEqual(Array.from(a.x), Array.from(b.x.subarray(0, a.x.length)), 'the first N samples do not depend on N');
  assert.deepEqual(a.sampleShape, [1, CANVAS, CANVAS]);
  const det = openMemoryDataset('mnist-det:test', 20);
  assert.deepEqual(Array.from(det.x), Array.from(a.x), 'detection and segmentation share canvases');
  const masks = a.masks?.data as Uint8Array;
  const boxes = det.boxes ?? [];
  assert.ok(boxes.length >= 20 && boxes.length <= 80);
  for (let i = 0; i < 20; i++) {
    const mine = boxes.filter((bx) => bx.image === i);
    assert.ok(mine.length >= 1 && mine.length <= 4);
    // Every labelled pixel lies inside a box of its class; ink ≥ 128 is labelled, faint ink ignored.
    for (let p = 0; p < CANVAS * CANVAS; p++) {
      const m = masks[i * CANVAS * CANVAS + p];
      const v = a.x[i * CANVAS * CANVAS + p];
      if (v === 0) assert.equal(m, 0);
      if (m === 0 || m === IGNORE) continue;
      const x = p % CANVAS;
      const y = Math.floor(p / CANVAS);
      assert.ok(
        mine.some((bx) => bx.label === m - 1 && x >= bx.x && x < bx.x + bx.w && y >= bx.y && y < bx.y + bx.h),
        `pixel ${x},${y} of image ${i}`,
      );
    }
  }
  const train = openMemoryDataset('mnist-seg:train', 5);
  assert.notDeepEqual(
    Array.from(train.x.subarray(0, 4096)),
    Array.from(a.x.subarray(0, 4096)),
    'train and test differ',
  );
  const v = openMemoryDataset('mnist-video:test', 10);
  assert.deepEqual(v.sampleShape, [1, 16, 32, 32]);
  // The digit moves: consecutive frames differ, and each frame has the same ink (it never leaves the canvas).
  const frame = (i: number, f: number): Uint8Array =>
    v.x.subarray(i * 16384 + f * 1024, i * 16384 + (f + 1) * 1024) as Uint8Array;
  const ink = (u: Uint8Array): number => u.reduce((s, x) => s + x, 0);
  for (let i = 0; i < 10; i++) {
    assert.notDeepEqual(Array.from(frame(i, 0)), Array.from(frame(i, 15)));
    assert.equal(ink(frame(i, 7)), ink(frame(i, 0)));
  }
  assert.ok(v.labels && v.labels.every((l) => l >= 0 && l <= 9));
});
