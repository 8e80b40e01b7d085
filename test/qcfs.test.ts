import { test } from 'node:test';
import assert from 'node:assert/strict';
import { floatTensor } from '../src/graph/ir.js';
import type { GraphBuilder } from '../src/onnx/builder.js';
import { prepareModel } from '../src/model/prepare.js';
import { calibrate } from '../src/calibrate/calibrate.js';
import { instrument } from '../src/calibrate/instrument.js';
import { buildSnn } from '../src/snn/build.js';
import { simulateBatches } from '../src/runtime/batches.js';
import { SpikeportError } from '../src/errors.js';
import { buildGraph, conv, gemm, maxAbsDiff, memDataset, randn, runGraph } from './helpers.js';

interface Chain {
  readonly order: 'paper' | 'clip-first';
  readonly lambda: number;
  readonly levels: number;
  readonly shift?: number;
  /** Divide by a different L at the end (not QCFS). */
  readonly badLevels?: number;
  /** Clip's upper bound (1 for QCFS). */
  readonly clipHi?: number;
  /** Clip bounds as Cast(Constant) nodes, as PyTorch writes them. */
  readonly castBounds?: boolean;
}

/** h(x) = λ·clip(⌊x·L/λ + φ⌋ / L, 0, 1) written as ONNX ops in one of the two orders. */
function qcfs(b: GraphBuilder, x: string, c: Chain, hint: string): string {
  const lam = b.constant(`${hint}.lam`, floatTensor([], [c.lambda]));
  const k = (v: number): string => b.scalar(v);
  const bound = (v: number): string =>
    c.castBounds
      ? b.op('Cast', [b.constant('bound', { dtype: 'int64', dims: [], data: BigInt64Array.of(BigInt(v)) })], { to: 1 })
      : k(v);
  const clip = (t: string): string =>
    b.opset >= 11
      ? b.op('Clip', [t, bound(0), bound(c.clipHi ?? 1)])
      : b.op('Clip', [t], { min: 0, max: c.clipHi ?? 1 });
  const quantise = (t: string): string =>
    b.op('Div', [
      b.op('Floor', [b.op('Add', [b.op('Mul', [t, k(c.levels)]), k(c.shift ?? 0.5)])]),
      k(c.badLevels ?? c.levels),
    ]);
  const scaled = b.op('Div', [x, lam]);
  const unit = c.order === 'paper' ? clip(quantise(scaled)) : quantise(clip(scaled));
  return b.op('Mul', [unit, lam]);
}

function qcfsNet(c: Chain, opset = 13) {
  return buildGraph(
    [2, 6, 6],
    (b, x) => {
      const h1 = qcfs(b, conv(b, x, 2, 4, 3, { seed: 1 }), c, 'q1');
      const pooled = b.op('AveragePool', [h1], { kernel_shape: [2, 2], strides: [2, 2] });
      const h2 = qcfs(b, conv(b, pooled, 4, 4, 3, { seed: 2 }), { ...c, lambda: c.lambda * 0.75 }, 'q2');
      return gemm(b, b.op('Flatten', [h2], { axis: 1 }), 36, 3, 3);
    },
    opset,
  );
}

const load = (graph: ReturnType<typeof qcfsNet>) =>
  prepareModel({ path: 'qcfs.onnx', sha256: '', graph }, { threads: 1 });

for (const opset of [13, 17]) {
  for (const order of ['paper', 'clip-first'] as const) {
    test(`QCFS chain (${order}, opset ${opset}) is one neuron site with θ = λ and start φ`, async () => {
      const m = await load(qcfsNet({ order, lambda: 2, levels: 4, shift: 0.25, castBounds: opset === 17 }, opset));
      assert.equal(m.plan.sites.length, 2);
      assert.deepEqual(
        m.plan.sites.map((s) => s.activation),
        ['qcfs', 'qcfs'],
      );
      assert.deepEqual(
        m.plan.sites.map((s) => s.cap),
        [2, 1.5],
      );
      assert.deepEqual(
        m.plan.sites.map((s) => s.start),
        [0.25, 0.25],
      );
      assert.deepEqual(
        m.plan.sites.map((s) => s.ann.length),
        [7, 7],
      );
      // The site reads the conv's output and stands for the whole chain.
      assert.ok(m.plan.sites.every((s) => m.graph.nodes.find((n) => n.outputs.includes(s.input))?.opType === 'Conv'));
      assert.ok(!m.plan.spiking.some((n) => n.opType === 'Floor'));
    });
  }
}

test('a Floor/Clip chain that is not QCFS is not matched (and Floor is refused)', async () => {
  for (const c of [
    { order: 'paper', lambda: 2, levels: 4, badLevels: 3 },
    { order: 'paper', lambda: 2, levels: 4, clipHi: 2 },
    { order: 'clip-first', lambda: 2, levels: 4, shift: 1.5 },
  ] as const) {
    await assert.rejects(
      load(qcfsNet(c)),
      (e: unknown) =>
        e instanceof SpikeportError && e.code === 'unsupported-model' && /Floor is not linear/.test(e.message),
      JSON.stringify(c),
    );
  }
});

test('the ANN reference of a QCFS model computes the QCFS chain itself', async () => {
  const graph = qcfsNet({ order: 'paper', lambda: 1.5, levels: 4 });
  const m = await load(graph);
  const x = randn(5, 7 * 72);
  const feeds = { input: { dims: [7, 2, 6, 6], data: x } };
  const out = graph.outputs[0].name;
  const want = (await runGraph(graph, feeds, [out]))[out].data;
  const inst = instrument(m, { mode: 'ann', granularity: 'layer' });
  const got = (await runGraph(inst.graph, feeds, [inst.readout]))[inst.readout].data;
  assert.equal(maxAbsDiff(got, want), 0);
});

// A neuron with start φ·θ, constant input x ∈ [0, θ] and reset by subtraction fires ⌊T·x/θ + φ⌋
// times in T steps: at T = L its average output is exactly QCFS with L levels.
for (const shift of [0.5, 0.25]) {
  test(`method qcfs: at T = L the SNN's first layer equals the QCFS ANN (φ = ${shift})`, async () => {
    const L = 4;
    const lambda = 1.25;
    const graph = buildGraph([3], (b, x) =>
      gemm(b, qcfs(b, gemm(b, x, 3, 5, 21), { order: 'paper', lambda, levels: L, shift }, 'q'), 5, 2, 22),
    );
    const m = await load(graph);
    const n = 64;
    const x = randn(23, n * 3);
    const data = memDataset(x, [3]);
    const cal = await calibrate(m, data, { method: 'qcfs', threads: 1 });
    assert.deepEqual(Array.from(cal.thresholds.values[0]), [lambda]);
    assert.equal(cal.samples, 0);
    const snn = buildSnn(m, cal.thresholds);
    assert.equal(snn.spec.sites[0].start, shift === 0.5 ? undefined : shift);
    let readouts: Float32Array = new Float32Array(0);
    await simulateBatches(snn.graph, snn.spec, data, { steps: L, batchSize: n, normalize: null, threads: 1 }, (b) => {
      readouts = b.readouts as Float32Array;
    });
    const avg = new Float32Array(n * 2);
    for (let t = 0; t < L; t++) for (let j = 0; j < avg.length; j++) avg[j] += readouts[t * avg.length + j] / L;
    const out = graph.outputs[0].name;
    const ann = (await runGraph(graph, { input: { dims: [n, 3], data: x } }, [out]))[out].data;
    assert.ok(maxAbsDiff(avg, ann) < 1e-5, `max |Δ| ${maxAbsDiff(avg, ann)}`);
    // One step more or less and it is not the QCFS output any more: the test can tell.
    const avg3 = new Float32Array(n * 2);
    for (let t = 0; t < L - 1; t++)
      for (let j = 0; j < avg3.length; j++) avg3[j] += readouts[t * avg3.length + j] / (L - 1);
    assert.ok(maxAbsDiff(avg3, ann) > 1e-2);
  });
}

test('method qcfs refuses a plain ReLU site', async () => {
  const graph = buildGraph([3], (b, x) => gemm(b, b.op('Relu', [gemm(b, x, 3, 4, 31)]), 4, 2, 32));
  const m = await load(graph);
  await assert.rejects(
    calibrate(m, memDataset(randn(1, 12), [3]), { method: 'qcfs', threads: 1 }),
    /ReLU without one; use cltb/,
  );
});

test('the bundled fashion-qcfs (a real PyTorch export) has every QCFS activation as a site, θ = its λ', async () => {
  const { loadModel } = await import('../src/model/load.js');
  const loaded = loadModel('models/fashion-qcfs.onnx');
  const lambdas = [...loaded.graph.initializers].filter(([k]) => k.endsWith('.lam')).map(([, t]) => Number(t.data[0]));
  assert.equal(lambdas.length, 8);
  const m = await prepareModel(loaded, { threads: 1 });
  assert.deepEqual(
    m.plan.sites.map((s) => s.activation),
    new Array(8).fill('qcfs'),
  );
  assert.deepEqual(m.plan.sites.map((s) => s.cap).sort(), lambdas.sort());
  assert.ok(!m.plan.spiking.some((n) => n.opType === 'Floor' || n.opType === 'Clip'));
});
