/**
 * The tail after the readout may read shapes of earlier tensors (and what is computed from
 * shapes and constants only), as torchvision's segmentation models do with their final
 * Resize to Shape(input): the tail then gives exactly the model's output from the readout, at
 * any batch size.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { int64Tensor, type Graph } from '../src/graph/ir.js';
import { prepareModel } from '../src/model/prepare.js';
import { modelTail } from '../src/evaluate/tail.js';
import { buildGraph, conv, maxAbsDiff, runGraph, uniform } from './helpers.js';

/** conv → ReLU → pool → conv → ReLU → conv (readout) → Resize to sizes built from shapes of earlier tensors. */
function segmenter(
  shapeOf: 'input' | 'hidden',
  extra?: (b: Parameters<Parameters<typeof buildGraph>[1]>[0], h: string, logits: string) => string,
): Graph {
  return buildGraph([3, 12, 16], (b, x) => {
    const h = b.op('Relu', [conv(b, x, 3, 4, 3)]);
    const p = b.op('MaxPool', [h], { kernel_shape: [2, 2], strides: [2, 2] });
    const logits = conv(b, b.op('Relu', [conv(b, p, 4, 4, 3)]), 4, 5, 1);
    if (extra) return extra(b, h, logits);
    // sizes = [N, C of the logits, H, W of `input` (or of the full-resolution hidden tensor)]
    const nc = b.op('Slice', [
      b.op('Shape', [logits]),
      b.constant('s0', int64Tensor([1], [0])),
      b.constant('s2', int64Tensor([1], [2])),
    ]);
    const hw = b.op('Slice', [
      b.op('Shape', [shapeOf === 'input' ? x : h]),
      b.constant('h0', int64Tensor([1], [2])),
      b.constant('h2', int64Tensor([1], [4])),
    ]);
    const sizes = b.op('Concat', [nc, b.op('Cast', [hw], { to: 7 })], { axis: 0 });
    return b.op('Resize', [logits, '', '', sizes], { mode: 'linear' });
  });
}

for (const shapeOf of ['input', 'hidden'] as const) {
  test(`a final Resize to the shape of ${shapeOf === 'input' ? 'the input' : 'an earlier hidden tensor'}: the tail gives the model's output from the readout, at batch 3`, async () => {
    const g = segmenter(shapeOf);
    const m = await prepareModel({ path: 'seg.onnx', sha256: '', graph: g }, { threads: 1 });
    const tail = await modelTail(m, { threads: 1 });
    assert.ok(tail, 'a tail');
    assert.deepEqual(
      tail.inputs.map((i) => i.name),
      [m.plan.readout],
      'the tail reads the readout only',
    );
    const n = 3;
    const x = uniform(5, n * 3 * 12 * 16);
    const outName = g.outputs[0].name;
    const full = await runGraph(
      { ...m.graph, outputs: [...m.graph.outputs, { name: m.plan.readout, dtype: 'float32', shape: null }] },
      { input: { dims: [n, 3, 12, 16], data: x } },
    );
    const viaTail = await runGraph(tail, { [m.plan.readout]: full[m.plan.readout] });
    const out = Object.values(viaTail)[0];
    assert.deepEqual(out.dims, [n, 5, 12, 16]);
    assert.deepEqual(full[outName].dims, [n, 5, 12, 16]);
    assert.ok(maxAbsDiff(out.data, full[outName].data) === 0, 'the same values');
  });
}

test('a tail that reads values (not only shapes) from before the readout is still refused', async () => {
  const g = segmenter('input', (b, h, logits) => {
    const up = b.op(
      'Resize',
      [logits, '', b.constant('sc', { dtype: 'float32', dims: [4], data: Float32Array.of(1, 1, 2, 2) })],
      { mode: 'nearest' },
    );
    // Adds a time-varying hidden tensor after the readout: not a shape.
    return b.op('Add', [
      b.op('ReduceMean', [up], { axes: [1], keepdims: 1 }),
      b.op('ReduceMean', [h], { axes: [1], keepdims: 1 }),
    ]);
  });
  const m = await prepareModel({ path: 'seg.onnx', sha256: '', graph: g }, { threads: 1 }).catch((e: Error) => e);
  const err =
    m instanceof Error
      ? m
      : await modelTail(m, { threads: 1 }).then(
          () => null,
          (e: Error) => e,
        );
  assert.match(String(err), /after the readout .* also reads ".*" from before it/);
});
