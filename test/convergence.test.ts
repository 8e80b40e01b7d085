import { test } from 'node:test';
import assert from 'node:assert/strict';
import { prepareModel, type PreparedModel } from '../src/model.js';
import { calibrate, thetaFeeds, siteChannels, type Thresholds } from '../src/calibrate/methods.js';
import { instrument } from '../src/calibrate/instrument.js';
import { buildSnn, type PoolMode } from '../src/snn/build.js';
import { simulate } from '../src/runtime/simulate.js';
import { buildGraph, conv, gemm, maxpool, memDataset, runGraph, uniform } from './helpers.js';

/** VGG-like: max pools after spiking layers (where per-step pooling is biased). */
function vggLike() {
  return buildGraph([1, 8, 8], (b, x) => {
    let h = b.op('Relu', [conv(b, x, 1, 6, 3, { seed: 1 })]);
    h = maxpool(b, b.op('Relu', [conv(b, h, 6, 6, 3, { seed: 2 })]));
    h = maxpool(b, b.op('Relu', [conv(b, h, 6, 8, 3, { seed: 3 })]));
    h = b.op('Relu', [gemm(b, b.op('Flatten', [h], { axis: 1 }), 32, 16, 4)]);
    return gemm(b, h, 16, 5, 5);
  });
}

async function clippedReadout(m: PreparedModel, th: Thresholds, x: Float32Array, n: number): Promise<Float32Array> {
  const inst = instrument(m.graph, m.plan, siteChannels(m), {
    mode: 'clip', granularity: th.granularity, ranks: m.plan.sites.map((s) => (m.shapes.get(s.input) as number[]).length + 1),
  });
  const out = await runGraph(inst.graph, { input: { dims: [n, 1, 8, 8], data: x }, ...thetaFeeds(m, inst, th) }, [inst.readout]);
  return out[inst.readout].data;
}

/** Relative error of the readout averaged over steps 1..T against the clipped ANN, for each T. */
async function errors(maxpoolMode: PoolMode, Ts: number[]): Promise<number[]> {
  const n = 16;
  const x = uniform(99, n * 64);
  const m = await prepareModel({ path: 'v.onnx', sha256: '', graph: vggLike() }, { threads: 1 });
  const data = memDataset(x, [1, 8, 8]);
  const cal = await calibrate(m, data, { method: 'maxnorm', iterations: 1, batchSize: n, threads: 1 });
  const ref = await clippedReadout(m, cal.thresholds, x, n);
  const snn = buildSnn(m, cal.thresholds, maxpoolMode);
  const Tmax = Math.max(...Ts);
  let readouts: Float32Array = new Float32Array(0);
  await simulate(snn.graph, snn.spec, data, { steps: Tmax, batchSize: n, normalize: null, threads: 1 }, (b) => { readouts = b.readouts; });
  const size = ref.length;
  const refScale = ref.reduce((a, v) => a + Math.abs(v), 0) / size;
  return Ts.map((T) => {
    let err = 0;
    for (let j = 0; j < size; j++) {
      let sum = 0;
      for (let t = 0; t < T; t++) sum += readouts[t * size + j];
      err += Math.abs(sum / T - ref[j]);
    }
    return err / size / refScale;
  });
}

test('MaxNorm SNN readout converges to the clipped ANN as T grows (accumulated max pooling)', async (t) => {
  const [e32, e1024] = await errors('accumulated', [32, 1024]);
  t.diagnostic(`relative error T=32 ${e32.toFixed(5)}, T=1024 ${e1024.toFixed(5)}`);
  assert.ok(e1024 < e32 / 4, `error should fall ≥4× from T=32 (${e32}) to T=1024 (${e1024})`);
  assert.ok(e1024 < 0.01, `error at T=1024 is small (${e1024})`);
});

test('per-step max pooling (the paper\'s code) does not converge after spiking layers', async (t) => {
  const [acc] = await errors('accumulated', [1024]);
  const [p32, p1024] = await errors('per-step', [32, 1024]);
  t.diagnostic(`per-step relative error T=32 ${p32.toFixed(5)}, T=1024 ${p1024.toFixed(5)}; accumulated T=1024 ${acc.toFixed(5)}`);
  assert.ok(p1024 > 5 * acc, `per-step error at T=1024 (${p1024}) stays far above the accumulated form's (${acc})`);
  assert.ok(p1024 > p32 / 4, `per-step error does not fall 4× (${p32} -> ${p1024})`);
});
