import { test } from 'node:test';
import assert from 'node:assert/strict';
import { floatTensor, type Graph } from '../src/graph/ir.js';
import { GraphBuilder, floatInput } from '../src/onnx/builder.js';
import { Session } from '../src/ort/session.js';
import { instrument } from '../src/calibrate/instrument.js';
import { prepareModel } from '../src/model/prepare.js';
import { calibrate } from '../src/calibrate/calibrate.js';
import { percentileFromHistogram, type Method } from '../src/calibrate/methods.js';
import { buildGraph, memDataset, randn } from './helpers.js';

// A tiny CNN with known weights, and a plain JS forward pass to check calibration against.
const N = 8;
const CIN = 2;
const C1 = 3;
const C2 = 2;
const H = 5;
const W1 = randn(11, C1 * CIN * 9, 0.5);
const B1 = randn(12, C1, 0.2);
const W2 = randn(13, C2 * C1 * 9, 0.5);
const X = randn(14, N * CIN * H * H);

function net(opset = 13) {
  return buildGraph(
    [CIN, H, H],
    (b, x) => {
      const c = (inp: string, w: Float32Array, cout: number, cin: number, bias?: Float32Array) =>
        b.op(
          'Conv',
          [
            inp,
            b.constant('W', floatTensor([cout, cin, 3, 3], w)),
            ...(bias ? [b.constant('B', floatTensor([cout], bias))] : []),
          ],
          { kernel_shape: [3, 3], pads: [1, 1, 1, 1] },
        );
      const h1 = b.op('Relu', [c(x, W1, C1, CIN, B1)]);
      const h2 = b.op('Relu', [c(h1, W2, C2, C1)]);
      const g = b.op('Flatten', [b.op('GlobalAveragePool', [h2])], { axis: 1 });
      return b.op(
        'Gemm',
        [
          g,
          b.constant('Wf', floatTensor([3, C2], randn(15, 3 * C2))),
          b.constant('Bf', floatTensor([3], randn(16, 3))),
        ],
        { transB: 1 },
      );
    },
    opset,
  );
}

/** Naive 3×3 conv, padding 1, on samples [n0, n1). */
function convJs(
  x: Float64Array | Float32Array,
  n: number,
  cin: number,
  cout: number,
  w: Float32Array,
  bias?: Float32Array,
): Float64Array {
  const out = new Float64Array(n * cout * H * H);
  for (let s = 0; s < n; s++)
    for (let o = 0; o < cout; o++)
      for (let i = 0; i < H; i++)
        for (let j = 0; j < H; j++) {
          let acc = bias ? bias[o] : 0;
          for (let c = 0; c < cin; c++)
            for (let di = -1; di <= 1; di++)
              for (let dj = -1; dj <= 1; dj++) {
                const ii = i + di;
                const jj = j + dj;
                if (ii < 0 || jj < 0 || ii >= H || jj >= H) continue;
                acc += x[((s * cin + c) * H + ii) * H + jj] * w[((o * cin + c) * 3 + di + 1) * 3 + dj + 1];
              }
          out[((s * cout + o) * H + i) * H + j] = acc;
        }
  return out;
}

/** One LTB step at a site: θ_k + 2c·mean over (n, h, w) of (x − θ_k)·1[x > θ_k]; then clip with the new θ. */
function ltbSiteJs(
  x: Float64Array,
  n: number,
  C: number,
  theta: number[],
  c: number,
  layer: boolean,
): { theta: number[]; y: Float64Array } {
  const plane = H * H;
  const next = [...theta];
  if (layer) {
    let sum = 0;
    for (const v of x) sum += v > theta[0] ? v - theta[0] : 0;
    next[0] = theta[0] + 2 * c * (sum / x.length);
  } else {
    for (let k = 0; k < C; k++) {
      let sum = 0;
      for (let s = 0; s < n; s++)
        for (let p = 0; p < plane; p++) {
          const v = x[(s * C + k) * plane + p];
          if (v > theta[k]) sum += v - theta[k];
        }
      next[k] = theta[k] + 2 * c * (sum / (n * plane));
    }
  }
  const y = x.map((v, i) => Math.min(Math.max(v, 0), next[layer ? 0 : Math.floor(i / plane) % C]));
  return { theta: next, y };
}

async function checkLtb(method: Method, c: number, opset = 13): Promise<void> {
  const layer = method === 'ltb';
  const m = await prepareModel({ path: 't.onnx', sha256: '', graph: net(opset) }, { threads: 1 });
  const data = memDataset(X, [CIN, H, H]);
  const batch = N / 2;
  const cal = await calibrate(m, data, {
    method,
    iterations: 2,
    batchSize: batch,
    stepSize: c,
    shuffle: false,
    threads: 1,
  });
  let th1 = Array(layer ? 1 : C1).fill(0);
  let th2 = Array(layer ? 1 : C2).fill(0);
  for (let it = 0; it < 2; it++) {
    const xb = X.subarray(it * batch * CIN * H * H, (it + 1) * batch * CIN * H * H);
    const s1 = ltbSiteJs(convJs(xb, batch, CIN, C1, W1, B1), batch, C1, th1, c, layer);
    const s2 = ltbSiteJs(convJs(s1.y, batch, C1, C2, W2), batch, C2, th2, c, layer);
    th1 = s1.theta;
    th2 = s2.theta;
  }
  assert.equal(cal.thresholds.granularity, layer ? 'layer' : 'channel');
  const got = cal.thresholds.values.map((v) => Array.from(v));
  const want = [th1, th2];
  for (let s = 0; s < 2; s++) {
    assert.equal(got[s].length, want[s].length);
    for (let k = 0; k < want[s].length; k++) {
      assert.ok(want[s][k] > 0.01, 'a threshold that moved');
      assert.ok(
        Math.abs(got[s][k] - want[s][k]) < 1e-5 * Math.max(1, want[s][k]),
        `site ${s} channel ${k}: ${got[s][k]} vs ${want[s][k]}`,
      );
    }
  }
}

test('CLTB: two in-graph iterations equal a plain JS evaluation of the update (channel-wise, greedy front to back)', async () => {
  await checkLtb('cltb', 1);
  await checkLtb('cltb', 0.5);
});

test('LTB: layer-wise update equals the JS reference', async () => {
  await checkLtb('ltb', 1);
});

test('the in-graph update is written correctly for opsets 11 and 18 (reduction axes as attribute / input)', async () => {
  await checkLtb('cltb', 1, 11);
  await checkLtb('cltb', 1, 18);
  await checkLtb('ltb', 1, 18);
});

test('MaxNorm: θ is the max of ReLU(x) per channel (cmaxnorm) or per layer (maxnorm)', async () => {
  const m = await prepareModel({ path: 't.onnx', sha256: '', graph: net() }, { threads: 1 });
  const data = memDataset(X, [CIN, H, H]);
  const x1 = convJs(X, N, CIN, C1, W1, B1);
  const chanMax = Array.from({ length: C1 }, (_, k) => {
    let best = 0;
    for (let s = 0; s < N; s++) for (let p = 0; p < H * H; p++) best = Math.max(best, x1[(s * C1 + k) * H * H + p]);
    return best;
  });
  const ch = await calibrate(m, data, {
    method: 'cmaxnorm',
    iterations: 2,
    batchSize: N / 2,
    shuffle: false,
    threads: 1,
  });
  Array.from(ch.thresholds.values[0]).forEach((v, k) => assert.ok(Math.abs(v - chanMax[k]) < 1e-5));
  const ly = await calibrate(m, data, {
    method: 'maxnorm',
    iterations: 2,
    batchSize: N / 2,
    shuffle: false,
    threads: 1,
  });
  assert.ok(Math.abs(ly.thresholds.values[0][0] - Math.max(...chanMax)) < 1e-5);
});

test('RobustNorm: the percentile of positive activations matches a sort-based JS percentile', async () => {
  const m = await prepareModel({ path: 't.onnx', sha256: '', graph: net() }, { threads: 1 });
  const data = memDataset(X, [CIN, H, H]);
  const pos = Array.from(convJs(X, N, CIN, C1, W1, B1))
    .filter((v) => v > 0)
    .sort((a, b) => a - b);
  for (const p of [50, 99]) {
    const cal = await calibrate(m, data, {
      method: 'robustnorm',
      percentile: p,
      iterations: 2,
      batchSize: N / 2,
      shuffle: false,
      threads: 1,
    });
    const want = pos[Math.ceil((p / 100) * pos.length) - 1];
    const tol =
      (pos[pos.length - 1] * 2) / 65536 +
      (pos[Math.ceil((p / 100) * pos.length)] - pos[Math.ceil((p / 100) * pos.length) - 2]);
    assert.ok(Math.abs(cal.thresholds.values[0][0] - want) <= tol, `p=${p}: ${cal.thresholds.values[0][0]} vs ${want}`);
  }
  // The histogram percentile itself, on a known histogram: values uniform in bins 0..9 of 10 over (0, 10].
  assert.equal(percentileFromHistogram([1, 1, 1, 1, 1, 1, 1, 1, 1, 1], 10, 50), 5);
  assert.equal(percentileFromHistogram([0, 0, 4, 0], 8, 25), 4.5);
});

test("LTB in the graph: the excess taken from ReLU(x) is mean((x − θ)⁺) bit for bit while θ ≥ 0 (ONNX Runtime's own kernels), and x feeds one ReLU only", async () => {
  const C = 4;
  const n = 3;
  const hw = 7;
  // Two graphs on the same x and θ: the textbook form and the one the calibration graph uses.
  const excess = (fromRelu: boolean): Graph => {
    const b = new GraphBuilder(13);
    const src = fromRelu ? b.op('Relu', ['input']) : 'input';
    const out = b.reduce('ReduceMean', b.op('Relu', [b.op('Sub', [src, 'theta'])]), [0, 2, 3], true);
    return {
      name: 'excess',
      nodes: b.nodes,
      initializers: b.initializers,
      opset: 13,
      irVersion: 8,
      metadata: {},
      inputs: [floatInput('input', [n, C, hw, hw]), floatInput('theta', [1, C, 1, 1])],
      outputs: [floatInput(out, null)],
    };
  };
  const [plain, viaRelu] = await Promise.all(
    [excess(false), excess(true)].map((g) => Session.create(g, { threads: 1 })),
  );
  try {
    const x = randn(21, n * C * hw * hw, 2); // about half negative
    const out = async (s: Session, theta: number[]): Promise<Float32Array> =>
      Object.values(
        await s.run({
          input: { dims: [n, C, hw, hw], data: x },
          theta: { dims: [1, C, 1, 1], data: Float32Array.from(theta) },
        }),
      )[0].data;
    for (const theta of [
      [0, 0, 0, 0],
      [0, 0.001, 0.7, 3],
      [1e-30, 0.5, 1.9999, 10],
    ]) {
      const a = await out(plain, theta);
      const c = await out(viaRelu, theta);
      assert.ok(
        Array.from(a).every((v, k) => Object.is(v, c[k])),
        `θ = ${theta}: ${Array.from(a)} vs ${Array.from(c)}`,
      );
      assert.ok(
        a.some((v) => v > 0),
        'some x exceed θ',
      );
    }
    // The identity needs θ ≥ 0 (LTB's θ starts at 0 and only grows): below 0 the forms differ.
    const a = await out(plain, [-1, 0, 0, 0]);
    const c = await out(viaRelu, [-1, 0, 0, 0]);
    assert.notEqual(a[0], c[0]);
  } finally {
    await plain.release();
    await viaRelu.release();
  }
  // In the calibration graph every site's x is read by one node, a ReLU (ONNX Runtime fuses it into the convolution).
  const m = await prepareModel({ path: 't.onnx', sha256: '', graph: net() }, { threads: 1 });
  const inst = instrument(m, { mode: 'ltb', granularity: 'channel', stepSize: 1 });
  for (const site of m.plan.sites) {
    const readers = inst.graph.nodes.filter((node) => node.inputs.includes(site.input));
    assert.deepEqual(
      readers.map((r) => r.opType),
      ['Relu'],
      `site ${site.node}`,
    );
  }
});
