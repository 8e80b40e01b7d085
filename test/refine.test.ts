import { test } from 'node:test';
import assert from 'node:assert/strict';
import { floatTensor } from '../src/graph/ir.js';
import { prepareModel } from '../src/model/prepare.js';
import { calibrate } from '../src/calibrate/calibrate.js';
import { instrument, thetaFeeds } from '../src/calibrate/instrument.js';
import { readBatch } from '../src/data/dataset.js';
import { buildSnn } from '../src/snn/build.js';
import { simulateBatches } from '../src/runtime/batches.js';
import { fitDelays, siteCorrections } from '../src/refine/refine.js';
import { convert } from '../src/api/convert.js';
import { simulate as simulateApi } from '../src/api/simulate.js';
import { delayFor } from '../src/api/simulate-options.js';
import { SpikeportError } from '../src/errors.js';
import { buildGraph, conv, memDataset, randn, runGraph } from './helpers.js';

// x (4) → Gemm → ReLU (site 0, 6 neurons) → Gemm → ReLU (site 1, 5) → Gemm (readout, 3).
const W1 = randn(41, 6 * 4, 0.8);
const B1 = randn(42, 6, 0.3);
const W2 = randn(43, 5 * 6, 0.6);
const B2 = randn(44, 5, 0.2);
const W3 = randn(45, 3 * 5, 0.7);
const B3 = randn(46, 3, 0.1);
const THETA = [1.1, 0.9];
const N = 24;
const X = randn(47, N * 4);

function mlp() {
  return buildGraph([4], (b, x) => {
    const dense = (inp: string, w: Float32Array, bias: Float32Array, out: number, fin: number): string =>
      b.op('Gemm', [inp, b.constant('W', floatTensor([out, fin], w)), b.constant('B', floatTensor([out], bias))], {
        transB: 1,
      });
    const h1 = b.op('Relu', [dense(x, W1, B1, 6, 4)]);
    const h2 = b.op('Relu', [dense(h1, W2, B2, 5, 6)]);
    return dense(h2, W3, B3, 3, 5);
  });
}

function dense(
  x: ArrayLike<number>,
  w: Float32Array,
  b: Float32Array,
  out: number,
  fin: number,
  extra?: ArrayLike<number>,
): Float32Array {
  const y = new Float32Array(out);
  for (let o = 0; o < out; o++) {
    let acc = b[o];
    for (let i = 0; i < fin; i++) acc += w[o * fin + i] * x[i];
    y[o] = acc + (extra ? extra[o] : 0);
  }
  return y;
}

/** Plain JS: the SNN on one sample for T steps with per-site currents β and initial-membrane offsets v0; the average output of each site. */
function snnJs(x: Float32Array, T: number, beta: (Float32Array | null)[], v0: (Float32Array | null)[]): Float64Array[] {
  const sizes = [6, 5];
  const u = sizes.map((c) => new Float64Array(c)); // u = m − θ/2 − v0
  const avg = sizes.map((c) => new Float64Array(c));
  for (let t = 0; t < T; t++) {
    let input: ArrayLike<number> = x;
    [
      [W1, B1, 4],
      [W2, B2, 6],
    ].forEach(([w, b, fin], k) => {
      const cur = dense(input, w as Float32Array, b as Float32Array, sizes[k], fin as number, beta[k] ?? undefined);
      const s = new Float32Array(sizes[k]);
      for (let c = 0; c < sizes[k]; c++) {
        u[k][c] += cur[c];
        if (u[k][c] >= THETA[k] / 2 - (v0[k]?.[c] ?? 0)) s[c] = THETA[k];
        u[k][c] -= s[c];
        avg[k][c] += s[c] / T;
      }
      input = s;
    });
  }
  return avg;
}

function clippedJs(x: Float32Array): Float32Array[] {
  const a0 = dense(x, W1, B1, 6, 4).map((v) => Math.min(Math.max(v, 0), THETA[0]));
  const a1 = dense(a0, W2, B2, 5, 6).map((v) => Math.min(Math.max(v, 0), THETA[1]));
  return [a0, a1];
}

async function setup() {
  const m = await prepareModel({ path: 'mlp.onnx', sha256: '', graph: mlp() }, { threads: 1 });
  const data = memDataset(X, [4]);
  const cal = await calibrate(m, data, {
    method: 'fixed',
    thresholds: { [m.plan.sites[0].node]: THETA[0], [m.plan.sites[1].node]: THETA[1] },
    threads: 1,
  });
  const batch = await readBatch(
    data,
    Array.from({ length: N }, (_, i) => i),
    null,
  );
  return { m, data, cal, batch };
}

for (const which of ['bias', 'potential'] as const) {
  test(`${which} calibration equals a plain JS computation of the formula on a two-layer net`, async () => {
    const T = 6;
    const { m, cal, batch } = await setup();
    const got = await siteCorrections(m, cal.thresholds, 'accumulated', batch, { [which]: T, threads: 1 });
    const samples = Array.from({ length: N }, (_, i) => X.subarray(i * 4, i * 4 + 4));
    const beta: (Float32Array | null)[] = [null, null];
    const v0: (Float32Array | null)[] = [null, null];
    for (let k = 0; k < 2; k++) {
      const size = [6, 5][k];
      const mean = new Float64Array(size); // E_n[SNN output / T − clipped ANN]
      for (const x of samples) {
        const snn = snnJs(x, T, beta, v0)[k];
        const ann = clippedJs(x)[k];
        for (let c = 0; c < size; c++) mean[c] += (snn[c] - ann[c]) / N;
      }
      if (which === 'bias') beta[k] = Float32Array.from(mean, (d) => -d);
      else v0[k] = Float32Array.from(mean, (d) => -T * d);
    }
    const want = which === 'bias' ? beta : v0;
    const have = which === 'bias' ? got.bias : got.potential;
    assert.ok(have);
    for (let k = 0; k < 2; k++) {
      const w = want[k] as Float32Array;
      const h = have[k] as Float32Array;
      assert.equal(h.length, w.length);
      w.forEach((v, c) => assert.ok(Math.abs(v - h[c]) < 1e-4, `site ${k} channel ${c}: ${h[c]} vs ${v}`));
      // The correction is not trivially zero: the test could tell.
      assert.ok(w.some((v) => Math.abs(v) > 1e-3));
    }
  });
}

/** Brute force: every step's readout from the simulator, every window summed afresh; most samples agreeing with the clipped ANN's class (classifiers), then L2, then the smaller d. */
async function bruteForceDelays(
  graph: ReturnType<typeof mlp>,
  shape: readonly number[],
  x: Float32Array,
  steps: number,
  classify: boolean,
): Promise<{ fit: readonly number[]; want: number[] }> {
  const per = shape.reduce((a, b) => a * b, 1);
  const n = x.length / per;
  const m = await prepareModel({ path: 'net.onnx', sha256: '', graph }, { threads: 1 });
  const data = memDataset(x, shape);
  const cal = await calibrate(m, data, { method: 'cltb', iterations: 3, batchSize: 8, threads: 1 });
  const step = buildSnn(m, cal.thresholds);
  const fit = await fitDelays(
    step,
    m,
    cal.thresholds,
    await readBatch(
      data,
      Array.from({ length: n }, (_, i) => i),
      null,
    ),
    steps,
    { threads: 1 },
  );
  assert.equal(fit.agreement !== null, classify);
  let readouts: Float32Array = new Float32Array(0);
  await simulateBatches(
    step.graph,
    step.spec,
    data,
    { steps, batchSize: n, normalize: null, threads: 1, engine: 'loop' },
    (b) => {
      readouts = b.readouts as Float32Array;
    },
  );
  const inst = instrument(m, { mode: 'clip', granularity: cal.thresholds.granularity });
  const target = (
    await runGraph(inst.graph, { input: { dims: [n, ...shape], data: x }, ...thetaFeeds(inst, cal.thresholds) }, [
      inst.readout,
    ])
  )[inst.readout].data;
  const size = target.length;
  const R = size / n;
  const cls = (v: ArrayLike<number>, i: number): number => {
    const row = Array.from({ length: R }, (_, c) => v[i * R + c]);
    return row.indexOf(Math.max(...row));
  };
  const want: number[] = [];
  for (let T = 1; T <= steps; T++) {
    const scored = Array.from({ length: T }, (_, d) => {
      const w = new Float64Array(size);
      let err = 0;
      for (let j = 0; j < size; j++) {
        for (let t = d; t < T; t++) w[j] += readouts[t * size + j];
        w[j] /= T - d;
        err += (w[j] - target[j]) ** 2;
      }
      const agree = classify
        ? Array.from({ length: n }, (_, i) => cls(w, i) === cls(target, i)).filter(Boolean).length
        : 0;
      return { d, agree, err };
    });
    scored.sort((a, b) => b.agree - a.agree || a.err - b.err || a.d - b.d);
    want.push(scored[0].d);
  }
  return { fit: fit.delays, want };
}

test('the delay fit picks the d a brute-force search over windows picks (classifier: agreement, then L2)', async () => {
  const { fit, want } = await bruteForceDelays(mlp(), [4], X, 24, true);
  assert.deepEqual(fit, want);
  assert.ok(
    want.some((d) => d > 0),
    'some T prefers a delay',
  );
});

test('the delay fit picks the d a brute-force search picks (spatial readout: L2)', async () => {
  const net = buildGraph([2, 5, 5], (b, x) => {
    let h = x;
    [
      [2, 4],
      [4, 4],
      [4, 4],
      [4, 4],
    ].forEach(([cin, cout], k) => {
      h = b.op('Relu', [conv(b, h, cin, cout, 3, { seed: 51 + k })]);
    });
    return conv(b, h, 4, 3, 3, { seed: 59 });
  });
  const { fit, want } = await bruteForceDelays(net, [2, 5, 5], randn(54, 12 * 50), 32, false);
  assert.deepEqual(fit, want);
  assert.ok(
    want.some((d) => d > 0),
    'some T prefers a delay',
  );
});

test('convert --delay-fit stores the delays; simulate delay "fit" uses them, and refuses a T beyond them', async () => {
  const data = memDataset(
    X,
    [4],
    Int32Array.from({ length: N }, (_, i) => i % 3),
  );
  const snn = await convert({ path: 'mlp.onnx', sha256: '0'.repeat(64), graph: mlp() }, data, {
    method: 'cltb',
    iterations: 2,
    batchSize: 12,
    delayFit: 16,
    biasCalibration: 4,
    threads: 1,
  });
  const fitted = snn.meta.delay.fitted as readonly number[];
  assert.equal(fitted.length, 16);
  assert.deepEqual(snn.meta.corrections, { biasT: 4, samples: 12, delayFitSamples: N });
  assert.ok(snn.spec.sites.every((s) => s.bias?.length === 6 || s.bias?.length === 5));
  // Saved and read back, the metadata is the same.
  const { snnFromGraph } = await import('../src/snn/network.js');
  const back = snnFromGraph(snn.toGraph('step'), 'mlp.snn.onnx');
  assert.deepEqual(back.meta.delay.fitted, fitted);
  const rec = await simulateApi(snn, data, { T: [5, 16], delay: 'fit', threads: 1 });
  assert.deepEqual(
    rec.results.map((r) => r.delay),
    [fitted[4], fitted[15]],
  );
  assert.equal(rec.delay.rule, 'fitted (label-free)');
  assert.throws(
    () => delayFor('fit', 17, snn.meta.delay),
    (e: unknown) => e instanceof SpikeportError && /up to T = 16/.test(e.message),
  );
  await assert.rejects(simulateApi(snn, data, { T: [32], delay: 'fit', threads: 1 }), /up to T = 16/);
});
