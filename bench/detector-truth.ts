/**
 * Ground truth for a detector whose weights are random: the ANN's own detections. Runs the
 * ANN (the ONNX file as it is, per-sample normalisations included) on a COCO-format image set,
 * decodes its outputs as torchvision does (tasks/heads.ts, the head's default thresholds),
 * and writes a COCO annotation file with the same images and, as the boxes to find, every
 * detection scoring at least --score (in the original images' pixels). Simulating the SNN
 * against that file scores how well it reproduces its ANN; the ANN itself then scores 100 %
 * (its boxes are its highest-scoring detections), and an ANN with its normalisations frozen
 * scores what freezing costs it.
 *
 *   node dist/bench/detector-truth.js MODEL.onnx IMAGES_DIR ANNOTATIONS.json --out TRUTH.json
 *       [--preprocess resize:256,256] [--score 0.3] [--limit N] [--batch 4]
 */
import fs from 'node:fs';
import path from 'node:path';
import { loadModel } from '../src/model/load.js';
import { storedNormalize } from '../src/model/prepare.js';
import { openDataset } from '../src/data/sources.js';
import { parsePreprocess, toOriginal } from '../src/data/preprocess.js';
import { prefetchBatches, sequentialBatches } from '../src/data/dataset.js';
import { Session } from '../src/ort/session.js';
import { detectionHead } from '../src/tasks/heads.js';
import { writeFileAtomic } from '../src/files.js';
import { arg, argv } from './args.js';

const [modelFile, imagesDir, annotations] = argv;
const out = arg('out', '');
if (!modelFile || !imagesDir || !annotations || !out) {
  console.error('usage: detector-truth MODEL.onnx IMAGES_DIR ANNOTATIONS.json --out TRUTH.json [--score 0.3]');
  process.exit(1);
}
const minScore = Number(arg('score', '0.3'));
const limit = arg('limit', '') ? Number(arg('limit', '')) : undefined;
const batchSize = Number(arg('batch', '4'));
const preprocess = parsePreprocess(arg('preprocess', 'none'));

const loaded = loadModel(modelFile);
const input = loaded.graph.inputs[0];
const sampleShape = (input.shape ?? []).slice(1) as number[];
const data = openDataset(`coco:${imagesDir}@${annotations}`, limit, { sampleShape, preprocess });
const g = { ...loaded.graph, inputs: [{ ...input, shape: ['N', ...sampleShape] }] };
const session = await Session.create(g, { threads: Number(arg('threads', '2')) });
const names = g.outputs.map((o) => o.name);
const [H, W] = sampleShape.slice(-2);
const source = JSON.parse(fs.readFileSync(annotations, 'utf8')) as { images: { id: number }[] };
// The data set lists images in id order (as torchvision's CocoDetection): index k → the k-th id.
const ids = [...source.images.map((im) => im.id)].sort((a, b) => a - b);
const boxes: { image_id: number; category_id: number; bbox: number[]; area: number; iscrowd: 0; id: number }[] = [];
let classes = 0;
let found = 0;
const t0 = performance.now();
const batches = sequentialBatches(data.size, batchSize);
for await (const b of prefetchBatches(data, batches.length, (i) => batches[i], storedNormalize(loaded.graph))) {
  const res = await session.run({ [input.name]: { dims: [b.n, ...sampleShape], data: b.x } }, names);
  const outputs = names.map((name) => ({ name, dims: res[name].dims, data: res[name].data }));
  const head = detectionHead(outputs, H, W);
  classes = head.classes;
  for (const d of head.decode(outputs, b.indices)) {
    found++;
    if (d.score < minScore || !(d.w > 0 && d.h > 0)) continue;
    const p = b.placements?.[b.indices.indexOf(d.image)];
    const [x0, y0] = p ? toOriginal(p, d.x, d.y) : [d.x, d.y];
    const [x1, y1] = p ? toOriginal(p, d.x + d.w, d.y + d.h) : [d.x + d.w, d.y + d.h];
    const bbox = [x0, y0, x1 - x0, y1 - y0].map((v) => Number(v.toFixed(3)));
    boxes.push({
      image_id: ids[d.image],
      category_id: d.label + 1,
      bbox,
      area: bbox[2] * bbox[3],
      iscrowd: 0,
      id: boxes.length + 1,
    });
  }
}
await session.release();
const truth = {
  ...source,
  images: source.images.filter((im) => ids.indexOf(im.id) < data.size),
  categories: Array.from({ length: classes }, (_, c) => ({ id: c + 1, name: `class${c}` })),
  annotations: boxes,
};
writeFileAtomic(out, JSON.stringify(truth));
console.log(
  `${path.basename(modelFile)}: ${data.size} images, ${found} detections, ${boxes.length} scoring ≥ ${minScore} written to ${out} as the boxes to find (${((performance.now() - t0) / 1000).toFixed(1)} s)`,
);
