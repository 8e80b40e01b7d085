/**
 * The RetinaNet and FCOS decoders against torchvision 0.14's own postprocess_detections on the
 * same head outputs (test/fixtures/detection-heads.json, made by tools/detection_fixture.py):
 * the same boxes (within 1e-4), scores, labels, in the same order. And how a head is chosen.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  HEAD_DEFAULTS,
  batchedNms,
  cellAnchors,
  detectionHead,
  pyramidLevels,
  retinanetSizes,
  type HeadKind,
} from '../src/tasks/heads.js';
import { SpikeportError } from '../src/errors.js';

const here = path.dirname(fileURLToPath(import.meta.url));
// dist/test → the source tree's fixture.
const FIXTURE = path.resolve(here, '..', '..', 'test', 'fixtures', 'detection-heads.json');

interface Case {
  options: { scoreThreshold: number; topCandidates: number; nmsThreshold: number; detectionsPerImage: number };
  detections: { boxes: number[]; scores: number[]; labels: number[] }[];
}
interface ModelFixture {
  grids: [number, number][];
  outputs: Record<string, { dims: number[]; data: number[] }>;
  cases: Case[];
}
const fixture = JSON.parse(fs.readFileSync(FIXTURE, 'utf8')) as {
  input: [number, number];
  classes: number;
  retinanet: ModelFixture;
  fcos: ModelFixture;
};
const [H, W] = fixture.input;

function outputsOf(m: ModelFixture): { name: string; dims: number[]; data: Float32Array }[] {
  return Object.entries(m.outputs).map(([name, o]) => ({ name, dims: o.dims, data: Float32Array.from(o.data) }));
}

test('the pyramid levels are the grids torchvision ResNet-FPN makes of a 40×56 input', () => {
  for (const kind of ['retinanet', 'fcos'] as const) {
    assert.deepEqual(
      pyramidLevels(H, W).map((l) => [l.gridH, l.gridW]),
      fixture[kind].grids,
    );
  }
  // The anchor generator's strides: ⌊H / grid⌋, not powers of two here.
  assert.deepEqual(
    pyramidLevels(H, W).map((l) => [l.strideH, l.strideW]),
    [
      [8, 8],
      [13, 14],
      [20, 28],
      [40, 56],
      [40, 56],
    ],
  );
});

test("RetinaNet's cell anchors: torchvision's sizes and rounding", () => {
  assert.deepEqual(retinanetSizes()[0], [32, 40, 50]);
  assert.deepEqual(retinanetSizes()[4], [512, 645, 812]);
  // Size 32, aspect 0.5 (h/w): w = 32/√0.5 = 45.25 → ±22.63 → ±23; h = 22.63 → ±11.31 → ±11.
  assert.deepEqual(Array.from(cellAnchors([32], [0.5])), [-23, -11, 23, 11]);
  // A half rounds to even, as torch.round: size 45 square → ±22.5 → ±22.
  assert.deepEqual(Array.from(cellAnchors([45], [1])), [-22, -22, 22, 22]);
});

for (const kind of ['retinanet', 'fcos'] as const) {
  test(`${kind}: the decoder gives torchvision's detections (boxes ≤ 1e-4, scores, labels, order)`, () => {
    const m = fixture[kind];
    const outputs = outputsOf(m);
    for (const c of m.cases) {
      const head = detectionHead(outputs, H, W, c.options);
      assert.equal(head.kind, kind);
      assert.equal(head.classes, fixture.classes);
      const dets = head.decode(outputs, [10, 11]);
      c.detections.forEach((want, i) => {
        const got = dets.filter((d) => d.image === 10 + i);
        const where = `${kind} ${JSON.stringify(c.options)} image ${i}`;
        assert.ok(want.labels.length > 0, `${where}: the fixture has detections`);
        assert.equal(got.length, want.labels.length, `${where}: count`);
        assert.deepEqual(
          got.map((d) => d.label),
          want.labels,
          `${where}: labels in order`,
        );
        got.forEach((d, k) => {
          assert.ok(
            Math.abs(d.score - want.scores[k]) <= 1e-6,
            `${where} #${k}: score ${d.score} vs ${want.scores[k]}`,
          );
          const box = [d.x, d.y, d.x + d.w, d.y + d.h];
          box.forEach((v, j) =>
            assert.ok(
              Math.abs(v - want.boxes[4 * k + j]) <= 1e-4,
              `${where} #${k}: box ${box} vs ${want.boxes.slice(4 * k, 4 * k + 4)}`,
            ),
          );
        });
      });
    }
  });
}

test('the fixture exercises what it should: top-k cuts, the detection cap, the log-size clip', () => {
  const r = fixture.retinanet;
  const [full, cut] = r.cases;
  assert.ok(full.detections.every((d) => d.labels.length > 50));
  assert.ok(cut.detections.every((d) => d.labels.length === cut.options.detectionsPerImage));
  // With the defaults but 20 candidates per level, fewer detections are found (top-k matters).
  const outputs = outputsOf(r);
  const fewer = detectionHead(outputs, H, W, { ...full.options, topCandidates: 20 }).decode(outputs, [0, 1]);
  assert.ok(fewer.length < full.detections.reduce((a, d) => a + d.labels.length, 0));
  // The fixture has log-size deltas past the clip; on a 40×56 input such a box covers the image
  // with or without it, so the next test shows the clip where it shows.
  const reg = r.outputs.bbox_regression.data;
  assert.ok(reg.some((v) => v > Math.log(1000 / 16)));
});

test("RetinaNet's log-size clip, hand-worked: a box centred far outside the image ends where log(1000/16) puts it", () => {
  // One class; every anchor scores sigmoid(-10) but the first (P3, position (0, 0), aspect ratio
  // 0.5, size 32: torchvision's anchor [-23, -11, 23, 11], so w = 46, h = 22, centre (0, 0)).
  const rows = 9 * pyramidLevels(H, W).reduce((a, l) => a + l.gridH * l.gridW, 0);
  const cls = new Float32Array(rows).fill(-10);
  cls[0] = 5;
  const box = new Float32Array(rows * 4);
  // dy = -30 moves the centre to y = -660; dh = 6 is clipped to log(62.5): height 22 · 62.5 = 1375,
  // so the box ends at -660 + 687.5 = 27.5 (unclipped: e^6 · 11 - 660 ≈ 3778, the image's 40).
  box.set([0, -30, 0, 6], 0);
  const outputs = [
    { name: 'cls_logits', dims: [1, rows, 1], data: cls },
    { name: 'bbox_regression', dims: [1, rows, 4], data: box },
  ];
  const found = detectionHead(outputs, H, W).decode(outputs, [0]);
  assert.equal(found.length, 1);
  const d = found[0];
  assert.ok(Math.abs(d.score - 1 / (1 + Math.exp(-5))) < 1e-6);
  // x: [-23, 23] clamped to [0, 23]; y: [-1347.5, 27.5] clamped to [0, 27.5].
  for (const [got, want] of [
    [d.x, 0],
    [d.y, 0],
    [d.w, 23],
    [d.h, 27.5],
  ])
    assert.ok(Math.abs(got - want) < 1e-3, `${got} vs ${want}`);
});

test('batched NMS is class-wise and keeps the higher score', () => {
  const boxes = [0, 0, 10, 10, 1, 1, 11, 11, 0, 0, 10, 10, 50, 50, 60, 60];
  // Box 1 overlaps box 0 (IoU 0.68) in the same class: dropped; box 2 is the same box in another class: kept.
  assert.deepEqual(batchedNms(boxes, [0.9, 0.8, 0.7, 0.95], [0, 0, 1, 0], 0.5), [3, 0, 2]);
  assert.deepEqual(batchedNms(boxes, [0.9, 0.8, 0.7, 0.95], [0, 0, 1, 0], 0.7), [3, 0, 1, 2]);
});

test('a head is recognised from the outputs, or refused in one line', () => {
  const r = outputsOf(fixture.retinanet);
  const f = outputsOf(fixture.fcos);
  assert.equal(detectionHead(r, H, W).kind, 'retinanet');
  assert.equal(detectionHead(f, H, W).kind, 'fcos');
  assert.equal(detectionHead([{ name: 'out', dims: [1, 7, 8, 8] }], 32, 32).kind, 'centernet');
  // Outputs in another order, without torchvision's names: recognised by their channels.
  const renamed = [f[2], f[0], f[1]].map((o, i) => ({ ...o, name: `output${i}` }));
  assert.equal(detectionHead(renamed, H, W).classes, 3);
  const defaults = (kind: HeadKind): number => HEAD_DEFAULTS[kind].detectionsPerImage;
  assert.equal(detectionHead(r, H, W).options.detectionsPerImage, defaults('retinanet'));
  assert.equal(detectionHead(f, H, W).options.scoreThreshold, 0.2);
  const oneLine = (fn: () => unknown, pattern: RegExp, field?: string): void =>
    assert.throws(fn, (e: unknown) => {
      assert.ok(e instanceof SpikeportError);
      assert.match(e.message, pattern);
      assert.ok(!e.message.includes('\n'));
      assert.equal(e.field, field);
      return true;
    });
  // A RetinaNet head exported for another input size: its rows fit no anchors of this one.
  oneLine(
    () => detectionHead(r, 64, 64),
    /fit no detection head for a 64×64 input.*retinanet: 774 rows \(9 anchors × 86 positions/,
  );
  // A box head with 5 channels fits nothing.
  const five = [r[0], { name: 'bbox_regression', dims: [2, 477, 5] }];
  oneLine(() => detectionHead(five, H, W), /fit no detection head.*4 channels/);
  // A centernet-like output whose channels cannot hold classes + 4.
  oneLine(() => detectionHead([{ name: 'out', dims: [1, 4, 8, 8] }], 32, 32), /C ≥ 1/);
  // Asked for one head, the outputs are another's: the option is named.
  oneLine(() => detectionHead(r, H, W, { head: 'fcos' }), /fit no fcos head/, 'head');
});
