import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { floatTensor, type Graph } from '../src/graph/ir.js';
import type { GraphBuilder } from '../src/onnx/builder.js';
import { foldBatchNorm, movePoolsBeforeNeurons, prepare, removeIdentityAndDropout } from '../src/graph/passes.js';
import { plan } from '../src/graph/plan.js';
import { decodeModel, encodeModel } from '../src/onnx/codec.js';
import { buildGraph, conv, gemm, maxAbsDiff, maxpool, randn, runGraph, uniform } from './helpers.js';

function bn(b: GraphBuilder, x: string, C: number, seed: number): string {
  const gamma = b.constant('g', floatTensor([C], uniform(seed, C, 0.5, 1.5)));
  const beta = b.constant('b', floatTensor([C], randn(seed + 1, C, 0.3)));
  const mean = b.constant('m', floatTensor([C], randn(seed + 2, C, 0.3)));
  const v = b.constant('v', floatTensor([C], uniform(seed + 3, C, 0.2, 2)));
  return b.op('BatchNormalization', [x, gamma, beta, mean, v], { epsilon: 1e-3 });
}

function bnNet(): Graph {
  return buildGraph([3, 8, 8], (b, x) => {
    let h = b.op('Relu', [bn(b, conv(b, x, 3, 6, 3), 6, 10)]);
    h = b.op('Relu', [bn(b, conv(b, h, 6, 4, 3, { bias: false }), 4, 20)]);
    h = b.op('Flatten', [h], { axis: 1 });
    h = b.op('Relu', [bn(b, gemm(b, h, 4 * 64, 16), 16, 30)]);
    h = b.op('Dropout', [h]);
    return gemm(b, h, 16, 5);
  });
}

async function outputOf(g: Graph, x: Float32Array, n: number, shape: number[]) {
  const out = await runGraph(g, { input: { dims: [n, ...shape], data: x } });
  return Object.values(out)[0].data;
}

test('BN folding into Conv and Gemm is exact to 1e-5 against the unfolded model', async () => {
  const g = bnNet();
  const folded = foldBatchNorm(g);
  assert.equal(folded.nodes.filter((n) => n.opType === 'BatchNormalization').length, 0, 'every BN folded');
  assert.equal(g.nodes.filter((n) => n.opType === 'BatchNormalization').length, 3);
  const x = randn(1, 4 * 3 * 64);
  const a = await outputOf(g, x, 4, [3, 8, 8]);
  const b = await outputOf(folded, x, 4, [3, 8, 8]);
  const scale = Math.max(...Array.from(a, Math.abs));
  assert.ok(scale > 0.1, 'the network output is not trivially zero');
  assert.ok(maxAbsDiff(a, b) <= 1e-5 * Math.max(1, scale), `max diff ${maxAbsDiff(a, b)}`);
});

test('Dropout and Identity are removed without changing the output', async () => {
  const g = bnNet();
  const r = removeIdentityAndDropout(g);
  assert.equal(
    r.nodes.some((n) => n.opType === 'Dropout'),
    false,
  );
  const x = randn(2, 2 * 3 * 64);
  assert.ok(maxAbsDiff(await outputOf(g, x, 2, [3, 8, 8]), await outputOf(r, x, 2, [3, 8, 8])) === 0);
});

function poolNet(): Graph {
  return buildGraph([1, 8, 8], (b, x) => {
    let h = maxpool(b, b.op('Relu', [conv(b, x, 1, 4, 3)]));
    h = b.op('Relu', [conv(b, h, 4, 4, 3)]);
    // Clip(0, 6) site followed by a pool: moves too.
    h = maxpool(b, b.op('Clip', [h, b.scalar(0), b.scalar(6)]));
    return gemm(b, b.op('Flatten', [h], { axis: 1 }), 16, 3);
  });
}

test('pre-neuron max pooling: pools move in front of ReLU and Clip(0,c), and the ANN output is unchanged', async () => {
  const g = poolNet();
  const moved = movePoolsBeforeNeurons(g);
  const ops = moved.nodes.map((n) => n.opType);
  assert.deepEqual(
    ops.filter((o) => o === 'MaxPool' || o === 'Relu' || o === 'Clip'),
    ['MaxPool', 'Relu', 'Relu', 'MaxPool', 'Clip'],
  );
  const x = randn(3, 5 * 64);
  assert.equal(maxAbsDiff(await outputOf(g, x, 5, [1, 8, 8]), await outputOf(moved, x, 5, [1, 8, 8])), 0);
  // The site's pre-activation is now the pool's output.
  const p = plan(prepare(g));
  const poolOut = prepare(g)
    .nodes.filter((n) => n.opType === 'MaxPool')
    .map((n) => n.outputs[0]);
  assert.equal(p.sites[0].input, poolOut[0]);
  assert.equal(p.sites[2].input, poolOut[1]);
  assert.equal(p.sites[2].cap, 6);
});

test('ONNX codec: a PyTorch export survives decode -> encode -> decode and computes the same', async () => {
  const file = path.join(process.cwd(), 'models', 'mnist-cnn.onnx');
  const g = decodeModel(fs.readFileSync(file), 'mnist-cnn.onnx');
  assert.deepEqual(
    g.nodes.map((n) => n.opType),
    ['Conv', 'Relu', 'MaxPool', 'Conv', 'Relu', 'MaxPool', 'Flatten', 'Gemm', 'Relu', 'Gemm'],
  );
  assert.equal(g.opset, 13);
  assert.ok(g.metadata['spikeport.normalize']);
  const g2 = decodeModel(encodeModel(g), 'roundtrip');
  assert.deepEqual(g2.nodes, g.nodes);
  for (const [k, t] of g.initializers) assert.deepEqual(g2.initializers.get(k), t);
  const x = uniform(4, 3 * 784);
  const a = await runGraph(g, { input: { dims: [3, 1, 28, 28], data: x } });
  const b = await runGraph(prepare(g2), { input: { dims: [3, 1, 28, 28], data: x } });
  assert.ok(maxAbsDiff(a.logits.data, b.logits.data) < 1e-5);
});

test('a chain of Identity nodes is removed whole (PyTorch passes shared weights through Identity, sometimes twice)', async () => {
  const g = buildGraph([3, 8, 8], (b, x) => {
    const w = b.constant('W', floatTensor([4, 3, 3, 3], randn(5, 108, 0.3)));
    const w1 = b.op('Identity', [w]);
    const w2 = b.op('Identity', [w1]);
    const h = b.op('Relu', [b.op('Conv', [x, w2], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] })]);
    return b.op('Identity', [b.op('Identity', [conv(b, h, 4, 2, 3)])]);
  });
  // (the graph's output is the last Identity's: that one stays)
  const r = removeIdentityAndDropout(g);
  assert.equal(r.nodes.filter((n) => n.opType === 'Identity').length, 1);
  const x = uniform(6, 2 * 192, -1, 1);
  assert.deepEqual(Array.from(await outputOf(r, x, 2, [3, 8, 8])), Array.from(await outputOf(g, x, 2, [3, 8, 8])));
});
