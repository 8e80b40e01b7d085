import { test } from 'node:test';
import assert from 'node:assert/strict';
import { prepare } from '../src/graph/passes.js';
import { plan } from '../src/graph/plan.js';
import { maxAbsDiff, runGraph, snnVsClipped, uniform } from './helpers.js';
import { ZOO } from './zoo.js';

for (const [name, { graph, shape }] of Object.entries(ZOO)) {
  const per = shape.reduce((a, b) => a * b, 1);

  test(`${name}: BN folding and pre-neuron max pooling leave the ANN output unchanged`, async () => {
    const g = graph();
    const p = prepare(g);
    assert.equal(p.nodes.filter((n) => n.opType === 'BatchNormalization').length, 0, 'every BN after a conv is folded');
    const x = uniform(3, 4 * per, -1, 1);
    const out = g.outputs[0].name;
    const a = (await runGraph(g, { input: { dims: [4, ...shape], data: x } }))[out].data;
    const b = (await runGraph(p, { input: { dims: [4, ...shape], data: x } }))[out].data;
    const scale = Math.max(...Array.from(a, Math.abs));
    assert.ok(maxAbsDiff(a, b) <= 1e-5 * Math.max(1, scale), `max diff ${maxAbsDiff(a, b)}`);
    const pl = plan(p);
    assert.ok(pl.sites.length >= 2);
    // The readout is the last weighted layer, with its bias Add when written as MatMul + Add.
    const readoutNode = p.nodes.find((n) => n.name === pl.readoutNode);
    assert.ok(readoutNode && ['Conv', 'Gemm', 'Add'].includes(readoutNode.opType));
    assert.equal(pl.readout, out);
  });

  test(`${name}: with MaxNorm the SNN readout converges to the clipped ANN (≥4× from T=32 to T=1024)`, async (t) => {
    const [e32, e1024] = await snnVsClipped(graph(), shape, uniform(17, 8 * per), [32, 1024]);
    t.diagnostic(`relative error T=32 ${e32.toFixed(5)}, T=1024 ${e1024.toFixed(5)}`);
    assert.ok(e1024 < e32 / 4, `T=32 ${e32}, T=1024 ${e1024}`);
    assert.ok(e1024 < 0.02, `T=1024 ${e1024}`);
  });
}
