/**
 * Networks with several outputs: a small RetinaNet-shaped detector (a pyramid of five levels,
 * one head shared by the levels, outputs cls_logits [n, HWA, C] and bbox_regression [n, HWA, 4]
 * made as torchvision's heads make them) is converted with every output read out, and its
 * detections are scored with the RetinaNet decoder against the ANN's own detections.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import type { Graph } from '../src/graph/ir.js';
import { floatTensor, int64Tensor } from '../src/graph/ir.js';
import { GraphBuilder, floatInput } from '../src/onnx/builder.js';
import { encodeModel } from '../src/onnx/codec.js';
import { prepareModel } from '../src/model/prepare.js';
import { PACKED_READOUT, tailGraph } from '../src/graph/plan.js';
import { memoryDataset, type DetectionBox } from '../src/data/dataset.js';
import { convert, loadSnn, simulate, toNirGraph } from '../src/advanced.js';
import { detectionHead } from '../src/tasks/heads.js';
import { SpikeportError } from '../src/errors.js';
import { writeFileAtomic } from '../src/files.js';
import { conv as convLayer, randn, runGraph, uniform } from './helpers.js';
import { tempDir } from './temp.js';

const [H, W, C] = [40, 56, 2];
const SHAPE = [3, H, W];

/** A RetinaNet-shaped detector: P3 (stride 8) … P7 from a small trunk, one head on every level. */
function detector(): Graph {
  const b = new GraphBuilder(13);
  let seed = 300;
  const weight = (cout: number, cin: number, k: number, scale = Math.sqrt(2 / (cin * k * k))): string =>
    b.constant('W', floatTensor([cout, cin, k, k], randn(seed++, cout * cin * k * k, scale)));
  const bias = (n: number, v?: number): string =>
    b.constant('B', floatTensor([n], v === undefined ? randn(seed++, n, 0.1) : new Array<number>(n).fill(v)));
  const conv = (x: string, w: string, bb: string, k: number, stride = 1, pad = Math.floor(k / 2)): string =>
    b.op('Conv', [x, w, bb], { kernel_shape: [k, k], pads: [pad, pad, pad, pad], strides: [stride, stride] });
  const relu = (x: string): string => b.op('Relu', [x]);
  const c = relu(conv('input', weight(8, 3, 3), bias(8), 3));
  const levels = [conv(c, weight(8, 8, 8, 0.1), bias(8), 8, 8, 0)];
  for (let l = 1; l < 5; l++) levels.push(conv(relu(levels[l - 1]), weight(8, 8, 3), bias(8), 3, 2, 1));
  // The head's weights are shared by the levels, as torchvision's.
  const [hw, hb] = [weight(8, 8, 3), bias(8)];
  const [cw, cb] = [weight(9 * C, 8, 3, 0.15), bias(9 * C, -3)];
  const [rw, rb] = [weight(36, 8, 3, 0.01), bias(36, 0)];
  const grids = [
    [5, 7],
    [3, 4],
    [2, 2],
    [1, 1],
    [1, 1],
  ];
  const perLevel = (x: string, k: number, [h, w]: number[]): string => {
    const five = b.op('Reshape', [x, b.constant('shape', int64Tensor([5], [0, 9, k, h, w]))]);
    const t = b.op('Transpose', [five], { perm: [0, 3, 4, 1, 2] });
    return b.op('Reshape', [t, b.constant('shape', int64Tensor([3], [0, -1, k]))]);
  };
  const cls: string[] = [];
  const reg: string[] = [];
  levels.forEach((p, l) => {
    const h = relu(conv(p, hw, hb, 3));
    cls.push(perLevel(conv(h, cw, cb, 3), C, grids[l]));
    reg.push(perLevel(conv(h, rw, rb, 3), 4, grids[l]));
  });
  b.add('Concat', cls, { axis: 1 }, ['cls_logits']);
  b.add('Concat', reg, { axis: 1 }, ['bbox_regression']);
  return {
    name: 'retinanet-like',
    nodes: b.nodes,
    initializers: b.initializers,
    inputs: [floatInput('input', ['N', ...SHAPE])],
    outputs: [floatInput('cls_logits', null), floatInput('bbox_regression', null)],
    opset: 13,
    irVersion: 8,
    metadata: {},
  };
}

const images = (seed: number, n: number): Float32Array => uniform(seed, n * 3 * H * W, 0, 1);

/** The ANN's own outputs for these images, straight from ONNX Runtime. */
async function annOutputs(
  g: Graph,
  x: Float32Array,
  n: number,
): Promise<{ name: string; dims: readonly number[]; data: Float32Array }[]> {
  const out = await runGraph(g, { input: { dims: [n, ...SHAPE], data: x } });
  return ['cls_logits', 'bbox_regression'].map((name) => ({ name, ...out[name] }));
}

test('every output is read out: ten readouts packed into one, cut apart again by the tail', async () => {
  const g = detector();
  const m = await prepareModel({ path: 'det.onnx', sha256: '', graph: g }, { threads: 1 });
  // One classification and one box layer per level.
  assert.equal(m.plan.readouts.length, 10);
  assert.equal(m.plan.readout, PACKED_READOUT);
  const n = 2;
  const x = images(1, n);
  const withPacked = { ...m.graph, outputs: [...m.graph.outputs, floatInput(PACKED_READOUT, null)] };
  const packed = (await runGraph(withPacked, { input: { dims: [n, ...SHAPE], data: x } }, [PACKED_READOUT]))[
    PACKED_READOUT
  ];
  assert.deepEqual(packed.dims, [n, (9 * C + 36) * (35 + 12 + 4 + 1 + 1)]);
  const tail = tailGraph(m.graph, m.plan, (t) => m.shapes.get(t));
  assert.ok(tail);
  const viaTail = await runGraph(tail, { [PACKED_READOUT]: packed });
  for (const want of await annOutputs(g, x, n)) {
    assert.deepEqual(viaTail[want.name].dims, want.dims);
    assert.deepEqual(Array.from(viaTail[want.name].data), Array.from(want.data), want.name);
  }
});

test('readoutNode may list the readouts; a list that leaves an output out is refused in one line', async () => {
  const g = detector();
  const m = await prepareModel({ path: 'det.onnx', sha256: '', graph: g }, { threads: 1 });
  const clsOnly = m.plan.readouts.filter((_, i) => i % 2 === 0).map((r) => r.node);
  const same = await prepareModel(
    { path: 'det.onnx', sha256: '', graph: g },
    { threads: 1, readoutNode: m.plan.readouts.map((r) => r.node) },
  );
  assert.deepEqual(same.plan.readouts, m.plan.readouts);
  const half = await prepareModel({ path: 'det.onnx', sha256: '', graph: g }, { threads: 1, readoutNode: clsOnly });
  assert.throws(
    () => tailGraph(half.graph, half.plan, (t) => half.shapes.get(t)),
    (e: unknown) =>
      e instanceof SpikeportError &&
      e.field === 'readoutNode' &&
      !e.message.includes('\n') &&
      /after the readouts .* also reads/.test(e.message),
  );
});

test('a multi-output detector converts and simulates: RetinaNet decoding, scored against the ANN’s own detections', async () => {
  const g = detector();
  const n = 6;
  const x = images(2, n);
  // Ground truth: the ANN's own detections scoring at least 0.3, as torchvision decodes them.
  const outs = await annOutputs(g, x, n);
  const head = detectionHead(outs, H, W);
  assert.equal(head.kind, 'retinanet');
  const boxes: DetectionBox[] = head
    .decode(outs, [0, 1, 2, 3, 4, 5])
    .filter((d) => d.score >= 0.3)
    .map((d) => ({ image: d.image, label: d.label, x: d.x, y: d.y, w: d.w, h: d.h }));
  assert.ok(boxes.length >= 6, `the ANN finds boxes to find (${boxes.length})`);
  assert.ok(new Set(boxes.map((b) => b.label)).size === C, 'both classes');
  const test = memoryDataset({ name: 'det', size: n, sampleShape: SHAPE, x, scale: 1, labels: null, boxes });
  const calib = memoryDataset({
    name: 'calib',
    size: 12,
    sampleShape: SHAPE,
    x: images(3, 12),
    scale: 1,
    labels: null,
  });
  const dir = tempDir('outputs');
  const file = path.join(dir, 'det.onnx');
  writeFileAtomic(file, encodeModel(g));
  const snn = await convert(file, calib, { iterations: 30, batchSize: 6, threads: 1 });
  assert.equal(snn.spec.readouts?.length, 10);
  const rec = await simulate(snn, test, { T: [16, 256], batchSize: 3, references: true, threads: 1 });
  assert.deepEqual(
    rec.outputs?.map((o) => o.name),
    ['cls_logits', 'bbox_regression'],
  );
  assert.equal(rec.detection?.head, 'retinanet');
  assert.equal(rec.detection?.detectionsPerImage, 300);
  // The ANN scored against its own detections finds them all, first.
  assert.ok(rec.ann && rec.ann.metric > 0.999, `ANN mAP ${rec.ann?.metric}`);
  const clipped = rec.clippedAnn?.metric ?? NaN;
  const last = rec.results[rec.results.length - 1];
  assert.ok(last.metric > 0.5, `SNN mAP at T=256: ${last.metric}`);
  assert.ok(Math.abs(last.metric - clipped) < 0.05, `SNN ${last.metric} vs clipped ANN ${clipped}`);
  assert.ok(last.metric > rec.results[0].metric, 'better with more steps');
  // The saved file keeps the readouts' names; read back, it simulates to the same record.
  snn.save(path.join(dir, 'det.snn.onnx'));
  const again = await loadSnn(path.join(dir, 'det.snn.onnx'), { threads: 1 });
  assert.deepEqual(again.spec.readouts, snn.spec.readouts);
  const rec2 = await simulate(again, test, { T: [16, 256], batchSize: 3, references: true, threads: 1 });
  assert.deepEqual(
    rec2.results.map((r) => r.metric),
    rec.results.map((r) => r.metric),
  );
  assert.equal(rec2.clippedAnn?.metric, clipped);
  // The unit-spike form folds θ into every readout layer alike: the same detections, to a spike.
  const unit = await convert(file, calib, { iterations: 30, batchSize: 6, threads: 1, spikes: 'unit' });
  assert.deepEqual(unit.spec.readouts, snn.spec.readouts);
  const ru = await simulate(unit, test, { T: [16, 256], batchSize: 3, threads: 1 });
  ru.results.forEach((r, i) => assert.ok(Math.abs(r.metric - rec.results[i].metric) < 0.02, `unit form at T=${r.T}`));
  // NIR graphs have one output: refused in one line.
  assert.throws(
    () => toNirGraph(unit, 'sinabs'),
    (e: unknown) => e instanceof SpikeportError && /10 readouts .* one output/.test(e.message),
  );
  // A head asked for that the outputs are not: one line, naming the option.
  await assert.rejects(
    simulate(snn, test, { T: [4], batchSize: 3, threads: 1, detection: { head: 'fcos' } }),
    (e: unknown) => e instanceof SpikeportError && e.field === 'head' && /fit no fcos head/.test(e.message),
  );
});

test('CLI: a detector whose box output has 5 channels fits no head: one line, exit 1, nothing written', () => {
  // The generated detection canvases (1×64×64): levels P3–P7 (strides 8 … 128: 8×8 … 1×1),
  // 9 anchors per position, two classes, as RetinaNet's rows are; but the box layer gives 5
  // numbers per anchor where RetinaNet and FCOS give 4.
  const b = new GraphBuilder(13);
  const levels = [b.op('Relu', [convLayer(b, 'input', 1, 4, 8, { stride: 8, pad: 0 })])];
  for (let l = 1; l < 5; l++) levels.push(b.op('Relu', [convLayer(b, levels[l - 1], 4, 4, 3, { stride: 2, pad: 1 })]));
  const rows = (k: number, name: string): void => {
    const per = levels.map((x) => {
      const t = b.op('Transpose', [convLayer(b, x, 4, 9 * k, 3, { pad: 1 })], { perm: [0, 2, 3, 1] });
      return b.op('Reshape', [t, b.constant('shape', int64Tensor([3], [0, -1, k]))]);
    });
    b.add('Concat', per, { axis: 1 }, [name]);
  };
  rows(2, 'cls_logits');
  rows(5, 'bbox_regression');
  const g: Graph = {
    name: 'five-channel-boxes',
    nodes: b.nodes,
    initializers: b.initializers,
    inputs: [floatInput('input', ['N', 1, 64, 64])],
    outputs: [floatInput('cls_logits', null), floatInput('bbox_regression', null)],
    opset: 13,
    irVersion: 8,
    metadata: {},
  };
  const dir = tempDir('outputs-cli');
  writeFileAtomic(path.join(dir, 'five.onnx'), encodeModel(g));
  const cli = path.join(process.cwd(), 'dist', 'src', 'cli', 'main.js');
  const r = spawnSync(
    process.execPath,
    [
      cli,
      'simulate',
      'five.onnx',
      '--data',
      'mnist-det:test',
      '--limit',
      '4',
      '--calib',
      'mnist-det:train',
      '--calib-limit',
      '8',
      '--iterations',
      '1',
      '--batch',
      '4',
      '--T',
      '4',
      '--save',
      'five.snn.onnx',
      '--json',
      'five.json',
      '--markdown',
      'five.md',
      '-q',
    ],
    { encoding: 'utf8', cwd: dir },
  );
  assert.equal(r.status, 1, r.stderr);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], /fit no detection head.*4 channels/);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
  assert.deepEqual(fs.readdirSync(dir).sort(), ['five.onnx']);
});
