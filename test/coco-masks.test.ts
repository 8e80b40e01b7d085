/**
 * COCO masks: polygons and RLE rasterised as pycocotools does, checked on cases worked out by
 * hand (pixel centres inside a polygon; column-major runs; the compressed string's 6-bit
 * groups); torchvision's merge (overlaps ignored, crowd painted like the rest) and the VOC
 * category subset; a segmentation run on a generated COCO-format set against an mIoU computed
 * here from hand-made masks and the ANN's own outputs; bad annotations as one line, exit 1.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import {
  CATEGORY_PRESETS,
  classMap,
  paintRle,
  parseCategories,
  parseSegmentation,
  rleFromPolygon,
  rleFromString,
  rleToString,
} from '../src/data/coco-masks.js';
import { openDataset } from '../src/data/sources.js';
import { readBatch } from '../src/data/dataset.js';
import { encodeModel } from '../src/onnx/codec.js';
import { convert, simulate } from '../src/index.js';
import { floatTensor, type Graph } from '../src/graph/ir.js';
import { buildGraph, runGraph } from './helpers.js';
import { tempDir } from './temp.js';

const CLI = path.join(process.cwd(), 'dist', 'src', 'cli', 'main.js');

/** A polygon's mask (row-major) on an h × w image. */
function polygonMask(xy: number[], h: number, w: number): number[][] {
  const m = new Uint8Array(h * w);
  paintRle(rleFromPolygon(xy, h, w), h, w, m);
  return Array.from({ length: h }, (_, y) => Array.from(m.subarray(y * w, (y + 1) * w)));
}

test('a polygon covers the pixels whose centres lie inside it (integer corners, fractional corners, a triangle)', () => {
  // Corners on pixel borders: columns 1–3, rows 1–3 (the right and bottom borders excluded).
  assert.deepEqual(polygonMask([1, 1, 4, 1, 4, 4, 1, 4], 5, 6), [
    [0, 0, 0, 0, 0, 0],
    [0, 1, 1, 1, 0, 0],
    [0, 1, 1, 1, 0, 0],
    [0, 1, 1, 1, 0, 0],
    [0, 0, 0, 0, 0, 0],
  ]);
  // From 0.6 to 2.4: only the centre (1.5, 1.5) is inside.
  assert.deepEqual(polygonMask([0.6, 0.6, 2.4, 0.6, 2.4, 2.4, 0.6, 2.4], 3, 3), [
    [0, 0, 0],
    [0, 1, 0],
    [0, 0, 0],
  ]);
  // The triangle (0,0), (4,0), (0,4): centres with x + y < 3; those on the long side (x + y = 3) stay out.
  assert.deepEqual(polygonMask([0, 0, 4, 0, 0, 4], 5, 5), [
    [1, 1, 1, 0, 0],
    [1, 1, 0, 0, 0],
    [1, 0, 0, 0, 0],
    [0, 0, 0, 0, 0],
    [0, 0, 0, 0, 0],
  ]);
  // Centres on a horizontal edge: out on the top edge (row 1, y = 1.5), in on the bottom one (row 2, y = 2.5).
  assert.deepEqual(polygonMask([0, 1.5, 1, 1.5, 1, 2.5, 0, 2.5], 4, 1), [[0], [0], [1], [0]]);
  // Centres on vertical edges: pycocotools rounds a vertex half up on its 5× grid (x = 1.5 → 8,
  // 3.5 → 18) and samples column c at 5c + 2, so of the centres 1.5, 2.5, 3.5 (columns 1–3) the
  // one on the left edge stays out and the one on the right edge is in (truncating: columns 1–2).
  assert.deepEqual(polygonMask([1.5, 0, 3.5, 0, 3.5, 1, 1.5, 1], 1, 5), [[0, 0, 1, 1, 0]]);
  // Clockwise or counter-clockwise: the same pixels.
  assert.deepEqual(polygonMask([1, 4, 4, 4, 4, 1, 1, 1], 5, 6), polygonMask([1, 1, 4, 1, 4, 4, 1, 4], 5, 6));
  // Past the image's edge (within the allowed slack): cut at the border.
  assert.deepEqual(polygonMask([-0.5, -0.5, 3.5, -0.5, 3.5, 2, -0.5, 2], 3, 3), [
    [1, 1, 1],
    [1, 1, 1],
    [0, 0, 0],
  ]);
});

test('RLE: counts run down the columns from a run of 0s; the compressed string decodes by hand', () => {
  // 3 rows × 4 columns; counts 2, 3, 7: pixels 2, 3, 4 in column-major order are set.
  const m = new Uint8Array(12);
  paintRle([2, 3, 7], 3, 4, m);
  assert.deepEqual(Array.from(m), [0, 1, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0]);
  // One character per small count ('3' = 3); from the fourth count on, a difference to the count
  // two before: 1 − 2 = −1 is 31 with the sign bit, 'O'.
  assert.deepEqual(rleFromString('324O', 'test'), [3, 2, 4, 1]);
  // 40 needs two groups: 8 with the continue bit ('X'), then 1 ('1'); 1 − 40 = −39 is 'i', 'N'.
  assert.deepEqual(rleFromString('5X13iN', 'test'), [5, 40, 3, 1]);
  assert.equal(rleToString([5, 40, 3, 1]), '5X13iN');
  // Round trips, long runs included.
  let s = 1;
  for (let k = 0; k < 50; k++) {
    const counts = Array.from({ length: 1 + (k % 9) }, () => {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      return (s >>> 8) % (k % 2 ? 70_000 : 40);
    });
    assert.deepEqual(rleFromString(rleToString(counts), 'test'), counts);
  }
});

test('segmentations are checked: counts that do not sum to the image, polygons outside it, a wrong size', () => {
  const ok = parseSegmentation({ counts: [2, 3, 7], size: [3, 4] }, 3, 4, 'seg');
  assert.equal(ok.kind, 'rle');
  assert.equal(parseSegmentation({ counts: '324O', size: [2, 5] }, 2, 5, 'seg').kind, 'rle');
  const refuse = (seg: unknown, re: RegExp): void => assert.throws(() => parseSegmentation(seg, 3, 4, 'seg'), re);
  refuse({ counts: [2, 3, 6], size: [3, 4] }, /sum to 11, but the 4×3 image has 12 pixels/);
  refuse({ counts: '324O', size: [3, 4] }, /sum to 10/);
  refuse({ counts: [2, -3, 13], size: [3, 4] }, /count -3/);
  refuse({ counts: [12], size: [4, 3] }, /RLE of 3×4 pixels, but its image is 4×3/);
  refuse({ counts: 'ab~', size: [3, 4] }, /character "~"/);
  refuse([[0, 0, 9, 0, 9, 2]], /vertex \(9, 0\) outside the 4×3 image/);
  refuse([[0, 0, 2, 0, 2, Number.NaN]], /not a list of numbers|finite/);
  refuse([[0, 0, 2, 0]], /2 vertices; a polygon needs at least 3/);
  refuse([[0, 0, 2, 0, 2]], /5 numbers/);
  refuse([], /empty list/);
  refuse('polygon', /neither/);
});

test("objects merge as torchvision's reference merges them: overlaps are 255, crowd regions are painted", () => {
  const rect = (x0: number, y0: number, x1: number, y1: number): number[] => [x0, y0, x1, y0, x1, y1, x0, y1];
  const objects = [
    { label: 3, segmentation: parseSegmentation([rect(0, 0, 3, 2)], 4, 5, 'a') },
    { label: 7, segmentation: parseSegmentation([rect(2, 1, 5, 3)], 4, 5, 'b') },
    // A crowd region as uncompressed RLE: column 0, rows 3 (column-major position 3).
    { label: 9, segmentation: parseSegmentation({ counts: [3, 1, 16], size: [4, 5] }, 4, 5, 'crowd') },
  ];
  assert.deepEqual(Array.from(classMap(objects, 4, 5)), [
    ...[3, 3, 3, 0, 0],
    ...[3, 3, 255, 7, 7],
    ...[0, 0, 7, 7, 7],
    ...[9, 0, 0, 0, 0],
  ]);
  // An object's own polygons overlapping each other is one object, not an overlap.
  const twice = [{ label: 4, segmentation: parseSegmentation([rect(0, 0, 2, 2), rect(1, 1, 3, 3)], 3, 3, 'c') }];
  assert.deepEqual(Array.from(classMap(twice, 3, 3)), [4, 4, 0, 4, 4, 4, 0, 4, 4]);
});

test('category lists: the voc preset is torchvision’s 21, ids and ranges parse', () => {
  assert.deepEqual(CATEGORY_PRESETS.voc, [0, 5, 2, 16, 9, 44, 6, 3, 17, 62, 21, 67, 18, 19, 4, 1, 64, 20, 63, 7, 72]);
  assert.deepEqual(parseCategories('voc'), CATEGORY_PRESETS.voc);
  assert.deepEqual(parseCategories('0,5,2'), [0, 5, 2]);
  assert.deepEqual(parseCategories('0-3,9'), [0, 1, 2, 3, 9]);
  assert.equal(parseCategories('3-1'), null);
  assert.equal(parseCategories('x'), null);
  assert.equal(parseCategories('9007199254740993'), null); // past exact integers: refused, not looped over
});

/** The COCO categories of a generated set: the 20 VOC ones plus "stop sign" (13), which VOC has not. */
const CATEGORIES = [
  [1, 'person'],
  [2, 'bicycle'],
  [3, 'car'],
  [4, 'motorcycle'],
  [5, 'airplane'],
  [6, 'bus'],
  [7, 'train'],
  [9, 'boat'],
  [13, 'stop sign'],
  [16, 'bird'],
  [17, 'cat'],
  [18, 'dog'],
  [19, 'horse'],
  [20, 'sheep'],
  [21, 'cow'],
  [44, 'bottle'],
  [62, 'chair'],
  [63, 'couch'],
  [64, 'potted plant'],
  [67, 'dining table'],
  [72, 'tv'],
].map(([id, name]) => ({ id, name, supercategory: 'x' }));

/** Class colours: VOC class k is drawn in colour k (background black). */
const colour = (k: number): [number, number, number] =>
  k === 0 ? [0, 0, 0] : [(k * 53) % 256, (k * 97) % 256, (k * 151) % 256];

interface Scene {
  /** Rectangles [x0, y0, x1, y1] with integer corners, their COCO category, crowd or not. */
  readonly objects: readonly { readonly box: readonly number[]; readonly category: number; readonly crowd?: boolean }[];
}

/**
 * A COCO-format set of S × S PNG images: each object a filled rectangle in its VOC class's
 * colour, annotated as a polygon (a crowd one as uncompressed RLE); "stop sign" objects are drawn
 * grey and should be left out. Returns the class maps expected (by hand: rectangles cover
 * [x0, x1) × [y0, y1); two objects over a pixel make it 255).
 */
async function writeScenes(dir: string, scenes: readonly Scene[], S: number): Promise<Uint8Array[]> {
  fs.mkdirSync(path.join(dir, 'images'), { recursive: true });
  const voc = CATEGORY_PRESETS.voc;
  const annotations: unknown[] = [];
  const expected: Uint8Array[] = [];
  for (const [i, scene] of scenes.entries()) {
    const px = new Uint8Array(S * S * 3);
    const truth = new Uint8Array(S * S);
    const covered = new Uint8Array(S * S);
    for (const o of scene.objects) {
      const k = voc.indexOf(o.category);
      const [x0, y0, x1, y1] = o.box;
      for (let y = y0; y < y1; y++)
        for (let x = x0; x < x1; x++) {
          px.set(k > 0 ? colour(k) : [128, 128, 128], (y * S + x) * 3);
          if (k > 0) {
            truth[y * S + x] = covered[y * S + x]++ ? 255 : k;
          }
        }
      const counts: number[] = [];
      if (o.crowd) {
        // Column-major runs of the rectangle, written out.
        let last = 0;
        for (let x = x0; x < x1; x++) {
          counts.push(x * S + y0 - last, y1 - y0);
          last = x * S + y1;
        }
        counts.push(S * S - last);
      }
      annotations.push({
        id: annotations.length + 1,
        image_id: 100 + i,
        category_id: o.category,
        iscrowd: o.crowd ? 1 : 0,
        bbox: [x0, y0, x1 - x0, y1 - y0],
        area: (x1 - x0) * (y1 - y0),
        segmentation: o.crowd ? { counts, size: [S, S] } : [[x0, y0, x1, y0, x1, y1, x0, y1]],
      });
    }
    await sharp(px, { raw: { width: S, height: S, channels: 3 } })
      .png()
      .toFile(path.join(dir, 'images', `${i}.png`));
    expected.push(truth);
  }
  fs.writeFileSync(
    path.join(dir, 'annotations.json'),
    JSON.stringify({
      // Listed out of id order: the set is read in id order.
      images: scenes.map((_, i) => ({ id: 100 + i, file_name: `${i}.png`, width: S, height: S })).reverse(),
      annotations,
      categories: CATEGORIES,
    }),
  );
  return expected;
}

/** The nearest class colour for every pixel: 1×1 convolutions, logits w_k·x − |w_k|²/2 (21 classes). */
function colourNet(S: number): Graph {
  return buildGraph([3, S, S], (b, x) => {
    const eye = b.constant('I', floatTensor([3, 3, 1, 1], [1, 0, 0, 0, 1, 0, 0, 0, 1]));
    const h = b.op('Relu', [b.op('Conv', [x, eye], { kernel_shape: [1, 1] })]);
    const w: number[] = [];
    const bias: number[] = [];
    for (let k = 0; k < 21; k++) {
      const c = colour(k).map((v) => v / 255);
      w.push(...c);
      bias.push(-c.reduce((a, v) => a + v * v, 0) / 2);
    }
    return b.op('Conv', [h, b.constant('W', floatTensor([21, 3, 1, 1], w)), b.constant('B', floatTensor([21], bias))], {
      kernel_shape: [1, 1],
    });
  });
}

const SCENES: Scene[] = [
  {
    objects: [
      { box: [2, 2, 10, 9], category: 1 },
      { box: [12, 3, 15, 14], category: 18 },
    ],
  },
  {
    objects: [
      { box: [0, 0, 6, 6], category: 3 },
      { box: [4, 4, 12, 10], category: 72 },
    ],
  }, // overlap → 255
  {
    objects: [
      { box: [5, 1, 9, 15], category: 13 },
      { box: [1, 8, 14, 12], category: 62, crowd: true },
    ],
  },
  { objects: [] },
];

test('coco with masks and the voc categories: class maps as drawn, the ANN scored as computed here', async (t) => {
  const dir = tempDir('spikeport-cocoseg-', t);
  const S = 16;
  const expected = await writeScenes(dir, SCENES, S);
  const spec = `coco:${path.join(dir, 'images')}@${path.join(dir, 'annotations.json')}`;
  const d = openDataset(spec, undefined, {
    sampleShape: [3, S, S],
    preprocess: { kind: 'none' },
    masks: true,
    categories: CATEGORY_PRESETS.voc,
  });
  assert.deepEqual(d.maskShape, [S, S]);
  assert.equal(d.classes?.length, 21);
  assert.equal(d.classes?.[15], 'person');
  const batch = await readBatch(d, [0, 1, 2, 3], null);
  expected.forEach((m, i) =>
    assert.deepEqual(
      Array.from((batch.masks as Uint8Array).subarray(i * S * S, (i + 1) * S * S)),
      Array.from(m),
      `image ${i}`,
    ),
  );
  // The model and an mIoU computed here from the ANN's outputs and the hand-made maps.
  const model = path.join(dir, 'colours.onnx');
  fs.writeFileSync(model, encodeModel(colourNet(S)));
  const out = await runGraph(colourNet(S), { input: { dims: [4, 3, S, S], data: batch.x } });
  const logits = Object.values(out)[0].data;
  const inter = new Float64Array(21);
  const union = new Float64Array(21);
  for (let i = 0; i < 4; i++)
    for (let p = 0; p < S * S; p++) {
      const truth = expected[i][p];
      if (truth === 255) continue;
      let best = 0;
      for (let k = 1; k < 21; k++) if (logits[(i * 21 + k) * S * S + p] > logits[(i * 21 + best) * S * S + p]) best = k;
      if (best === truth) inter[truth]++;
      union[truth]++;
      if (best !== truth) union[best]++;
    }
  const present = [...union.keys()].filter((k) => union[k] > 0);
  const miou = present.reduce((a, k) => a + inter[k] / union[k], 0) / present.length;
  const snn = await convert(model, d, { iterations: 2, batchSize: 4 });
  const record = await simulate(snn, d, { T: [8], batchSize: 2, references: true, task: 'segmentation' });
  assert.ok(record.ann);
  assert.ok(Math.abs(record.ann.metric - miou) < 1e-12, `ANN mIoU ${record.ann.metric}, computed here ${miou}`);
  // The grey stop sign is not a class: it is background in the maps and predicted as such.
  assert.ok(miou > 0.5 && miou <= 1);
});

test('bad COCO segmentations and video files: one line, exit 1, nothing written', async (t) => {
  const dir = tempDir('spikeport-cocobad-', t);
  const S = 16;
  await writeScenes(dir, SCENES.slice(0, 1), S);
  const model = path.join(dir, 'colours.onnx');
  fs.writeFileSync(model, encodeModel(colourNet(S)));
  const ann = path.join(dir, 'annotations.json');
  const good = JSON.parse(fs.readFileSync(ann, 'utf8')) as { annotations: { segmentation: unknown }[] };
  const run = (segmentation: unknown): { status: number | null; stderr: string; left: boolean } => {
    good.annotations[0].segmentation = segmentation;
    fs.writeFileSync(ann, JSON.stringify(good));
    const json = path.join(dir, 'out.json');
    const r = spawnSync(
      process.execPath,
      [
        CLI,
        'simulate',
        model,
        '--data',
        `coco:${path.join(dir, 'images')}@${ann}`,
        '--calib',
        `coco:${path.join(dir, 'images')}@${ann}`,
        '--task',
        'segmentation',
        '--categories',
        'voc',
        '--iterations',
        '1',
        '--T',
        '4',
        '--json',
        json,
        '-q',
      ],
      { encoding: 'utf8' },
    );
    return { status: r.status, stderr: r.stderr, left: fs.existsSync(json) };
  };
  for (const [seg, re] of [
    [
      { counts: [2, 3, 7], size: [S, S] },
      /segmentation has RLE counts that sum to 12, but the 16×16 image has 256 pixels/,
    ],
    [[[0, 0, 40, 0, 40, 5]], /segmentation\[0\] has the vertex \(40, 0\) outside the 16×16 image/],
    [{ counts: 'z0z0', size: [S, S] }, /compressed RLE string/],
  ] as const) {
    const r = run(seg);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, re);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.ok(!r.left);
  }
});

test('voc: the SBD-augmented list (train_aug) finds its masks in SegmentationClassAug', async (t) => {
  const dir = tempDir('spikeport-vocaug-', t);
  for (const f of ['JPEGImages', 'SegmentationClassAug', path.join('ImageSets', 'Segmentation')])
    fs.mkdirSync(path.join(dir, f), { recursive: true });
  const [W, H] = [5, 4];
  const mask = Uint8Array.from({ length: W * H }, (_, i) => (i % 7 === 0 ? 255 : i % 21));
  await sharp(new Uint8Array(W * H * 3).fill(90), { raw: { width: W, height: H, channels: 3 } })
    .png()
    .toFile(path.join(dir, 'JPEGImages', '2008_000001.png'));
  await sharp(mask, { raw: { width: W, height: H, channels: 1 } })
    .toColourspace('b-w')
    .png()
    .toFile(path.join(dir, 'SegmentationClassAug', '2008_000001.png'));
  fs.writeFileSync(path.join(dir, 'ImageSets', 'Segmentation', 'train_aug.txt'), '2008_000001\n');
  const d = openDataset(`voc:${dir}:train_aug`, undefined, { sampleShape: [3, H, W], preprocess: { kind: 'none' } });
  const { masks } = await d.read([0]);
  assert.deepEqual(Array.from(masks as Uint8Array), Array.from(mask));
});

test('minArea keeps the images whose kept objects cover more than that many pixels (both COCO openers)', async (t) => {
  const dir = tempDir('spikeport-cocoarea-', t);
  const S = 16;
  await writeScenes(dir, SCENES, S);
  const spec = `coco:${path.join(dir, 'images')}@${path.join(dir, 'annotations.json')}`;
  // Object areas per image, VOC categories only: 56 + 33, 36 + 48, 52 (the stop sign left out), none.
  for (const masks of [true, false]) {
    const open = (minArea: number) =>
      openDataset(spec, undefined, {
        sampleShape: [3, S, S],
        preprocess: { kind: 'none' },
        masks,
        categories: CATEGORY_PRESETS.voc,
        minArea,
      });
    assert.equal(open(0).size, 3, 'images with objects');
    assert.equal(open(60).size, 2);
    assert.equal(open(85).size, 1);
    if (!masks) assert.deepEqual([...new Set(open(60).boxes?.map((b) => b.image))], [0, 1]);
    assert.throws(() => open(89), /no image has objects of more than 89 pixels/);
  }
  // The second image (id 101), read from the set that keeps two: its map, not the first image's.
  const two = openDataset(spec, undefined, {
    sampleShape: [3, S, S],
    preprocess: { kind: 'none' },
    masks: true,
    categories: CATEGORY_PRESETS.voc,
    minArea: 60,
  });
  const { masks } = await two.read([1]);
  assert.equal((masks as Uint8Array)[5 * S + 5], 255); // the car and the tv overlap there
});
