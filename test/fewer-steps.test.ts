/**
 * Fewer steps for the same accuracy (docs/algorithm.md §4.1, §11): the ceiling against a plain
 * JS quantised ANN, groups of K binary neurons against one neuron at K·T steps, the two kinds of
 * group against each other, and what the engines and NIR do with groups.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { floatTensor } from '../src/graph/ir.js';
import { prepareModel, type PreparedModel } from '../src/model/prepare.js';
import { calibrate } from '../src/calibrate/calibrate.js';
import { instrument, quantFeeds } from '../src/calibrate/instrument.js';
import { annReference } from '../src/evaluate/reference.js';
import { buildSnn } from '../src/snn/build.js';
import type { NeuronGroup } from '../src/snn/neuron.js';
import { simulate, type StepBatch } from '../src/runtime/simulate.js';
import { convert } from '../src/api/convert.js';
import { simulate as simulateApi } from '../src/api/simulate.js';
import { asTarget, toNirGraph } from '../src/api/nir.js';
import { snnFromGraph } from '../src/snn/network.js';
import { SpikeportError } from '../src/errors.js';
import { buildGraph, conv, maxpool, memDataset, randn, runGraph, uniform } from './helpers.js';

// x (5) → Gemm → ReLU (site 0, 7 neurons) → Gemm → ReLU (site 1, 6) → Gemm (readout, 4).
const W1 = randn(71, 7 * 5, 0.9);
const B1 = randn(72, 7, 0.3);
const W2 = randn(73, 6 * 7, 0.7);
const B2 = randn(74, 6, 0.2);
const W3 = randn(75, 4 * 6, 0.8);
const B3 = randn(76, 4, 0.1);
// Per neuron (channel-wise on a fully connected site); one θ = 0: that neuron always outputs 0.
const THETA = [Float32Array.of(1.1, 0.7, 0, 1.4, 0.9, 2.0, 0.5), Float32Array.of(0.8, 1.2, 0.6, 1.0, 0.4, 1.5)];
const N = 40;
const X = randn(77, N * 5);
const LABELS = Int32Array.from({ length: N }, (_, i) => i % 4);

function mlp() {
  return buildGraph([5], (b, x) => {
    const dense = (inp: string, w: Float32Array, bias: Float32Array, out: number, fin: number): string =>
      b.op('Gemm', [inp, b.constant('W', floatTensor([out, fin], w)), b.constant('B', floatTensor([out], bias))], {
        transB: 1,
      });
    const h1 = b.op('Relu', [dense(x, W1, B1, 7, 5)]);
    const h2 = b.op('Relu', [dense(h1, W2, B2, 6, 7)]);
    return dense(h2, W3, B3, 4, 6);
  });
}

function denseJs(x: ArrayLike<number>, w: Float32Array, b: Float32Array, out: number, fin: number): Float64Array {
  const y = new Float64Array(out);
  for (let o = 0; o < out; o++) {
    let acc = b[o];
    for (let i = 0; i < fin; i++) acc += w[o * fin + i] * x[i];
    y[o] = acc;
  }
  return y;
}

/** Plain JS: the best an IF neuron starting at θ/2 outputs in L steps, (θ/L)·clip(⌊x·L/θ + ½⌋, 0, L); 0 where θ = 0. */
function quantJs(x: Float64Array, theta: Float32Array, L: number): Float64Array {
  return x.map((v, c) =>
    theta[c] > 0 ? (theta[c] / L) * Math.min(Math.max(Math.floor((v * L) / theta[c] + 0.5), 0), L) : 0,
  );
}

function ceilingReadoutJs(x: Float32Array, L: number): Float64Array {
  const a1 = quantJs(denseJs(x, W1, B1, 7, 5), THETA[0], L);
  const a2 = quantJs(denseJs(a1, W2, B2, 6, 7), THETA[1], L);
  return denseJs(a2, W3, B3, 4, 6);
}

async function fixedThresholds(m: PreparedModel, theta: readonly Float32Array[]) {
  const data = memDataset(X, m.inputShape, LABELS);
  const cal = await calibrate(m, data, {
    method: 'fixed',
    thresholds: Object.fromEntries(m.plan.sites.map((s, k) => [s.node, Array.from(theta[k])])),
    threads: 1,
  });
  return { data, th: cal.thresholds };
}

test('the ceiling equals a plain JS computation of the quantised ANN on a two-layer net (readouts and top-1)', async () => {
  const m = await prepareModel({ path: 'mlp.onnx', sha256: '', graph: mlp() }, { threads: 1 });
  const { data, th } = await fixedThresholds(m, THETA);
  const levels = [1, 2, 3, 5, 8, 13, 32];
  const inst = instrument(m, { mode: 'quant', granularity: th.granularity });
  const quantized = new Set<number>();
  for (const L of levels) {
    const out = (
      await runGraph(inst.graph, { [m.inputName]: { dims: [N, 5], data: X }, ...quantFeeds(inst, th, L) }, [
        inst.readout,
      ])
    )[inst.readout].data;
    for (let i = 0; i < N; i++) {
      const want = ceilingReadoutJs(X.subarray(i * 5, i * 5 + 5), L);
      for (let o = 0; o < 4; o++)
        assert.ok(
          Math.abs(out[i * 4 + o] - want[o]) < 1e-5,
          `L=${L} sample ${i} output ${o}: ${out[i * 4 + o]} vs ${want[o]}`,
        );
      quantized.add(Math.round(want[0] * 1e4));
    }
  }
  assert.ok(quantized.size > 20, 'the readouts vary with L and the sample: the comparison could tell');
  // The scores next to the references: top-1 of the JS readouts at each L.
  const refs = await annReference(m, data, th, { batchSize: 16, threads: 1, ceiling: levels });
  assert.ok(refs.ceiling);
  levels.forEach((L, k) => {
    let hits = 0;
    for (let i = 0; i < N; i++) {
      const r = ceilingReadoutJs(X.subarray(i * 5, i * 5 + 5), L);
      const best = r.indexOf(Math.max(...r));
      if (best === LABELS[i]) hits++;
    }
    assert.equal(refs.ceiling?.[k].metric, hits / N, `top-1 at L = ${L}`);
  });
});

/** input [N, F] → Gemm(identity) → ReLU (the site) → Gemm(identity): the readout is each step's site output. */
function identityNet(F: number) {
  const eye = new Float32Array(F * F);
  for (let i = 0; i < F; i++) eye[i * F + i] = 1;
  return buildGraph([F], (b, x) => {
    const h = b.op('Gemm', [x, b.constant('I', floatTensor([F, F], eye))], { transB: 1 });
    const s = b.op('Relu', [h]);
    return b.op('Gemm', [s, b.constant('I2', floatTensor([F, F], eye))], { transB: 1 });
  });
}

/** Steps of a network on `input`, every step's readout [T, n, …] and the spike counter per step. */
async function run(
  m: PreparedModel,
  th: Awaited<ReturnType<typeof fixedThresholds>>['th'],
  input: Float32Array,
  T: number,
  group: NeuronGroup | null,
  engine: 'steps' | 'fused' | 'loop' = 'steps',
) {
  const snn = buildSnn(m, th, 'accumulated', {}, group);
  const data = memDataset(input, m.inputShape);
  let got: StepBatch | undefined;
  const stats = await simulate(
    snn.graph,
    snn.spec,
    data,
    { steps: T, batchSize: data.size, normalize: null, threads: 1, engine },
    (b) => {
      got = b;
    },
  );
  return { readouts: (got as StepBatch).readouts as Float32Array, stats };
}

test('a group of K binary neurons fires in T steps what one neuron fires in K·T steps on constant inputs (both kinds; neuron by neuron and in the counters)', async () => {
  const F = 48;
  // Constant currents across the whole range: silent (< 0), every fraction of θ, saturating (> θ).
  const input = uniform(81, F, -0.6, 1.6);
  const theta = Float32Array.from({ length: F }, (_, i) => [1, 0.8, 1.3][i % 3]);
  const m = await prepareModel({ path: 'id.onnx', sha256: '', graph: identityNet(F) }, { threads: 1 });
  const { th } = await fixedThresholds(m, [theta]);
  const counts = (readouts: Float32Array, steps: number, K: number): number[] =>
    Array.from({ length: F }, (_, c) => {
      let s = 0;
      for (let t = 0; t < steps; t++) s += readouts[t * F + c];
      return Math.round((s * K) / theta[c]);
    });
  let spread = 0;
  for (const K of [2, 3, 4, 7])
    for (const T of [1, 2, 3, 5, 8]) {
      const single = await run(m, th, input, K * T, null);
      const want = counts(single.readouts, K * T, 1);
      spread = Math.max(spread, new Set(want).size);
      for (const kind of ['shared', 'population'] as const) {
        const g = await run(m, th, input, T, { size: K, kind });
        assert.deepEqual(counts(g.readouts, T, K), want, `K=${K} T=${T} ${kind}`);
        const total = g.stats.spikesPerStep[0].reduce((a, b) => a + b, 0);
        assert.equal(
          total,
          want.reduce((a, b) => a + b, 0),
          `K=${K} T=${T} ${kind}: the spike counter`,
        );
      }
    }
  assert.ok(spread > 5, 'the counts differ from neuron to neuron: the comparison could tell');
});

test('a shared-reset group and a population give the same spikes at every step on a two-layer net (time-varying input to the second layer)', async () => {
  const m = await prepareModel({ path: 'mlp.onnx', sha256: '', graph: mlp() }, { threads: 1 });
  const { th } = await fixedThresholds(m, THETA);
  for (const K of [2, 3, 5]) {
    const a = await run(m, th, X, 12, { size: K, kind: 'shared' });
    const b = await run(m, th, X, 12, { size: K, kind: 'population' });
    const diff = a.readouts.reduce((w, v, i) => Math.max(w, Math.abs(v - b.readouts[i])), 0);
    assert.ok(diff < 1e-4, `K=${K}: readouts differ by ${diff}`);
    assert.deepEqual(a.stats.spikesPerStep, b.stats.spikesPerStep, `K=${K}: spikes per step`);
    assert.deepEqual(a.stats.sopsPerStep, b.stats.sopsPerStep, `K=${K}: SOPs per step`);
  }
});

test('at T = 1 a group of K is the ceiling at L = K exactly (a conv net with an accumulated max pool)', async () => {
  const graph = buildGraph([2, 8, 8], (b, x) => {
    const c1 = b.op('Relu', [conv(b, x, 2, 4, 3, { seed: 91 })]);
    const p = b.op('Relu', [maxpool(b, conv(b, c1, 4, 6, 3, { seed: 92 }))]);
    const f = b.op('Flatten', [p]);
    return b.op('Gemm', [f, b.constant('W', floatTensor([3, 96], randn(93, 288, 0.2)))], { transB: 1 });
  });
  const m = await prepareModel({ path: 'cnn.onnx', sha256: '', graph }, { threads: 1 });
  const x = randn(94, 6 * 2 * 64);
  const data = memDataset(x, [2, 8, 8]);
  const th = (await calibrate(m, data, { iterations: 2, batchSize: 3, threads: 1 })).thresholds;
  const inst = instrument(m, { mode: 'quant', granularity: th.granularity });
  for (const K of [1, 3, 4]) {
    const want = (
      await runGraph(inst.graph, { [m.inputName]: { dims: [6, 2, 8, 8], data: x }, ...quantFeeds(inst, th, K) }, [
        inst.readout,
      ])
    )[inst.readout].data;
    const got = await run(m, th, x, 1, K > 1 ? { size: K, kind: 'shared' } : null);
    const diff = want.reduce((w, v, i) => Math.max(w, Math.abs(v - got.readouts[i])), 0);
    assert.ok(diff < 1e-4, `K=${K}: the SNN's first step is ${diff} from the ceiling`);
  }
});

test('engines and exports with groups: steps, loop and fused (population) agree; fused refuses a shared group; NIR refuses both', async () => {
  const m = await prepareModel({ path: 'mlp.onnx', sha256: '', graph: mlp() }, { threads: 1 });
  const { th } = await fixedThresholds(m, THETA);
  const group: NeuronGroup = { size: 3, kind: 'population' };
  const steps = await run(m, th, X, 9, group, 'steps');
  const fused = await run(m, th, X, 9, group, 'fused');
  const loop = await run(m, th, X, 9, group, 'loop');
  assert.equal(fused.stats.engines.fused, 1, 'the fused engine ran the population itself');
  assert.deepEqual(fused.readouts, steps.readouts);
  assert.deepEqual(fused.stats.spikesPerStep, steps.stats.spikesPerStep);
  assert.ok(loop.readouts.every((v, i) => Math.abs(v - steps.readouts[i]) < 1e-4));

  const data = memDataset(X, [5], LABELS);
  for (const kind of ['shared', 'population'] as const) {
    const snn = await convert({ path: 'mlp.onnx', sha256: '0'.repeat(64), graph: mlp() }, data, {
      iterations: 2,
      batchSize: 8,
      group: 4,
      groupKind: kind,
      threads: 1,
    });
    // The file says what it is, and reads back.
    const again = snnFromGraph(snn.toGraph('step'), 'mlp.snn.onnx');
    assert.deepEqual(again.spec.sites[0].group, { size: 4, kind });
    assert.equal(again.spec.sites[0].neurons, 4 * 7);
    const record = await simulateApi(snn, data, {
      T: [2, 4],
      engine: kind === 'shared' ? 'auto' : 'fused',
      threads: 1,
    });
    assert.equal(record.results.length, 2);
    if (kind === 'shared')
      await assert.rejects(
        simulateApi(snn, data, { T: [2], engine: 'fused', threads: 1 }),
        (e: unknown) => e instanceof SpikeportError && e.field === 'engine' && /shared-reset group/.test(e.message),
      );
    const unit = await convert({ path: 'mlp.onnx', sha256: '0'.repeat(64), graph: mlp() }, data, {
      iterations: 2,
      batchSize: 8,
      group: 4,
      groupKind: kind,
      spikes: 'unit',
      threads: 1,
    });
    assert.throws(
      () => toNirGraph(unit, 'sinabs'),
      (e: unknown) =>
        e instanceof SpikeportError && /group of 4 binary neurons, which NIR cannot express/.test(e.message),
    );
    assert.throws(
      () => asTarget(unit, 'sinabs'),
      (e: unknown) => e instanceof SpikeportError && e.field === 'asTarget',
    );
  }
});

test('d̂ of a group network is the one-neuron network’s latencies divided by K, added again', async () => {
  const data = memDataset(X, [5], LABELS);
  const model = { path: 'mlp.onnx', sha256: '0'.repeat(64), graph: mlp() };
  const one = await convert(model, data, { iterations: 3, batchSize: 8, threads: 1 });
  const four = await convert(model, data, { iterations: 3, batchSize: 8, group: 4, threads: 1 });
  const r1 = one.meta.delay.latencies;
  const r4 = four.meta.delay.latencies;
  r1.forEach((r, k) => assert.ok(Math.abs(r4[k] - r / 4) < 1e-3, `site ${k}: ${r4[k]} vs ${r}/4`));
  assert.equal(four.meta.delay.estimated, Math.ceil(r4.reduce((a, b) => a + b, 0) - 1e-9));
});
