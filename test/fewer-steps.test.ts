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
import { siteCorrections } from '../src/refine/refine.js';
import { readBatch } from '../src/data/dataset.js';
import type { NeuronGroup } from '../src/snn/neuron.js';
import { simulateBatches } from '../src/runtime/batches.js';
import { type StepBatch } from '../src/runtime/engines.js';
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
  const stats = await simulateBatches(
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

test('a shared-reset group and a population give the same spikes and SOPs at every step on a two-layer net (time-varying input to the second layer; steps and fused engines)', async () => {
  const m = await prepareModel({ path: 'mlp.onnx', sha256: '', graph: mlp() }, { threads: 1 });
  const { th } = await fixedThresholds(m, THETA);
  for (const K of [2, 3, 5]) {
    // The shared group on the step engine (counted exactly in the graph), the population on the fused one (counted in integers).
    const a = await run(m, th, X, 12, { size: K, kind: 'shared' }, 'steps');
    const b = await run(m, th, X, 12, { size: K, kind: 'population' }, 'fused');
    assert.ok(
      a.stats.spikesPerStep.every((xs) => xs.every(Number.isInteger)),
      'whole spike counts',
    );
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

/**
 * Plain JS: the MLP's SNN on one sample for T steps, with per-site corrections (a bias per
 * channel, an amplitude scale per channel, a bias per step and channel); each site's output per step.
 */
function mlpSnnJs(
  x: Float32Array,
  T: number,
  c: { bias?: (Float32Array | null)[]; scale?: (Float32Array | null)[]; stepBias?: (Float32Array | null)[] },
): Float64Array[][] {
  const sizes = [7, 6];
  const u = sizes.map((n) => new Float64Array(n));
  const out: Float64Array[][] = [[], []];
  for (let t = 0; t < T; t++) {
    let input: ArrayLike<number> = x;
    (
      [
        [W1, B1, 5],
        [W2, B2, 7],
      ] as const
    ).forEach(([w, b, fin], k) => {
      const cur = denseJs(input, w, b, sizes[k], fin);
      const o = new Float64Array(sizes[k]);
      for (let i = 0; i < sizes[k]; i++) {
        const th = THETA[k][i];
        u[k][i] += cur[i] + (c.bias?.[k]?.[i] ?? 0) + (c.stepBias?.[k]?.[t * sizes[k] + i] ?? 0);
        const fired = th > 0 && u[k][i] >= th / 2 ? th : 0;
        u[k][i] -= fired;
        o[i] = fired * (c.scale?.[k]?.[i] ?? 1);
      }
      out[k].push(o);
      input = o;
    });
  }
  return out;
}

function clippedMlpJs(x: Float32Array): Float64Array[] {
  const a1 = denseJs(x, W1, B1, 7, 5).map((v, i) => Math.min(Math.max(v, 0), THETA[0][i]));
  const a2 = denseJs(a1, W2, B2, 6, 7).map((v, i) => Math.min(Math.max(v, 0), THETA[1][i]));
  return [a1, a2];
}

test('threshold-scale and per-step bias calibration equal plain JS computations of their rules on a two-layer net', async () => {
  const T = 5;
  const m = await prepareModel({ path: 'mlp.onnx', sha256: '', graph: mlp() }, { threads: 1 });
  const { data, th } = await fixedThresholds(m, THETA);
  const batch = await readBatch(
    data,
    Array.from({ length: N }, (_, i) => i),
    null,
  );
  const samples = Array.from({ length: N }, (_, i) => X.subarray(i * 5, i * 5 + 5));
  const targets = samples.map(clippedMlpJs);
  const sizes = [7, 6];
  // Parallel conversion's pair, site by site: the bias that centres each channel, then the amplitude matching its mean.
  const bias: (Float32Array | null)[] = [null, null];
  const scale: (Float32Array | null)[] = [null, null];
  const mean = (k: number, c: Parameters<typeof mlpSnnJs>[2]): Float64Array => {
    const avg = new Float64Array(sizes[k]);
    samples.forEach((x) => mlpSnnJs(x, T, c)[k].forEach((o) => o.forEach((v, i) => (avg[i] += v / (T * N)))));
    return avg;
  };
  const want = (k: number): Float64Array => {
    const w = new Float64Array(sizes[k]);
    targets.forEach((a) => a[k].forEach((v, i) => (w[i] += v / N)));
    return w;
  };
  for (let k = 0; k < 2; k++) {
    const gap = mean(k, { bias, scale }).map((v, i) => v - want(k)[i]);
    bias[k] = Float32Array.from(gap, (d) => -d);
    const out = mean(k, { bias, scale });
    scale[k] = Float32Array.from(out, (o, i) => (o > 0 && want(k)[i] > 0 ? want(k)[i] / o : 1));
  }
  const got = await siteCorrections(m, th, 'accumulated', batch, { scale: T, threads: 1 });
  for (let k = 0; k < 2; k++) {
    (bias[k] as Float32Array).forEach((v, i) =>
      assert.ok(Math.abs(v - (got.bias?.[k]?.[i] ?? NaN)) < 1e-4, `bias ${k}.${i}`),
    );
    (scale[k] as Float32Array).forEach((v, i) =>
      assert.ok(Math.abs(v - (got.scale?.[k]?.[i] ?? NaN)) < 1e-4, `scale ${k}.${i}: ${got.scale?.[k]?.[i]} vs ${v}`),
    );
  }
  assert.ok(
    scale.some((s) => s?.some((v) => Math.abs(v - 1) > 1e-2)),
    'some amplitude moved: the test could tell',
  );

  // Per-step biases: three passes, each moving β_t by half the mean gap a − o_t of that step.
  const stepBias: (Float32Array | null)[] = [null, null];
  for (let k = 0; k < 2; k++) {
    const beta = new Float32Array(T * sizes[k]);
    for (let pass = 0; pass < 3; pass++) {
      const gap = new Float64Array(T * sizes[k]);
      samples.forEach((x, s) => {
        const trial = stepBias.map((b, j) => (j === k ? beta : b));
        mlpSnnJs(x, T, { stepBias: trial })[k].forEach((o, t) =>
          o.forEach((v, i) => (gap[t * sizes[k] + i] += targets[s][k][i] - v)),
        );
      });
      for (let j = 0; j < beta.length; j++) beta[j] += (0.5 * gap[j]) / N;
    }
    stepBias[k] = beta;
  }
  const steps = await siteCorrections(m, th, 'accumulated', batch, { stepBias: T, threads: 1 });
  for (let k = 0; k < 2; k++)
    (stepBias[k] as Float32Array).forEach((v, j) =>
      assert.ok(
        Math.abs(v - (steps.stepBias?.[k]?.[j] ?? NaN)) < 1e-4,
        `step bias ${k}.${j}: ${steps.stepBias?.[k]?.[j]} vs ${v}`,
      ),
    );
  assert.ok(
    stepBias.some((b) => b?.some((v) => Math.abs(v) > 1e-2)),
    'some step bias moved: the test could tell',
  );
});

test('a calibration whose correction is zero changes nothing: bias, potential, threshold-scale and per-step bias on a net the SNN already matches', async () => {
  // Every current is ≥ θ (fires at every step: θ, as the clip) or < 0 (silent: 0, as the clip).
  const F = 6;
  const x = Float32Array.from({ length: 4 * F }, (_, i) => [2, -1, 3, -0.5, 1.5, -2][(i + Math.floor(i / F)) % F]);
  const graph = buildGraph([F], (b, inp) => {
    const eye = new Float32Array(F * F);
    for (let i = 0; i < F; i++) eye[i * F + i] = 1;
    const h = b.op('Relu', [b.op('Gemm', [inp, b.constant('I', floatTensor([F, F], eye))], { transB: 1 })]);
    const h2 = b.op('Relu', [b.op('Gemm', [h, b.constant('I2', floatTensor([F, F], eye))], { transB: 1 })]);
    return b.op('Gemm', [h2, b.constant('W', floatTensor([3, F], randn(97, 3 * F)))], { transB: 1 });
  });
  const data = memDataset(x, [F], Int32Array.of(0, 1, 2, 0));
  const model = { path: 'id.onnx', sha256: '0'.repeat(64), graph };
  const base = { method: 'fixed', iterations: 1, batchSize: 4, threads: 1 } as const;
  const m = await prepareModel(model, { threads: 1 });
  const thresholds = Object.fromEntries(m.plan.sites.map((s) => [s.node, 1]));
  const plain = await convert(model, data, { ...base, thresholds });
  const T = 6;
  const readouts = async (snn: typeof plain): Promise<Float32Array> => {
    let got: Float32Array | null = null;
    await simulateBatches(snn.graph, snn.spec, data, { steps: T, batchSize: 4, normalize: null, threads: 1 }, (b) => {
      got = b.readouts;
    });
    return got as unknown as Float32Array;
  };
  const want = await readouts(plain);
  for (const option of [
    'biasCalibration',
    'potentialCalibration',
    'scaleCalibration',
    'stepBiasCalibration',
  ] as const) {
    const snn = await convert(model, data, { ...base, thresholds, [option]: T });
    const sites = snn.spec.sites;
    if (option === 'scaleCalibration') sites.forEach((s) => assert.ok(s.scale?.every((v) => v === 1)));
    if (option === 'biasCalibration') sites.forEach((s) => assert.ok(s.bias?.every((v) => v === 0)));
    assert.deepEqual(await readouts(snn), want, option);
  }
});
