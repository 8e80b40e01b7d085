import { test } from 'node:test';
import assert from 'node:assert/strict';
import { prepareModel } from '../src/model/prepare.js';
import { calibrate } from '../src/calibrate/calibrate.js';
import { buildSnn } from '../src/snn/build.js';
import { buildLoop } from '../src/snn/loop.js';
import { loopReadout, loopCounter, LOOP_DELAY_INPUT, LOOP_STEPS_INPUT } from '../src/snn/format.js';
import { DEFAULT_UNROLL, UNROLL_STATE_BYTES, defaultUnroll } from '../src/runtime/steps.js';
import { simulateBatches } from '../src/runtime/batches.js';
import { type StepBatch } from '../src/runtime/engines.js';
import { Session } from '../src/ort/session.js';
import { memDataset, uniform } from './helpers.js';
import { splitConstantPrefix } from '../src/snn/split.js';
import { vgg } from './zoo.js';
import { windowAverages } from '../src/evaluate/windows.js';

test('the ONNX Loop form gives the same per-step readouts and spike counts as the one-step graph called per step', async () => {
  const n = 4;
  const x = uniform(21, n * 256);
  const m = await prepareModel({ path: 'v.onnx', sha256: '', graph: vgg() }, { threads: 1 });
  const data = memDataset(x, [1, 16, 16]);
  const cal = await calibrate(m, data, { method: 'cltb', iterations: 1, batchSize: n, threads: 1 });
  const snn = buildSnn(m, cal.thresholds);
  const T = 24;
  let steps: StepBatch | undefined;
  const stats = await simulateBatches(
    snn.graph,
    snn.spec,
    data,
    { steps: T, batchSize: n, normalize: null, threads: 1, engine: 'steps' },
    (b) => {
      steps = b;
    },
  );
  const s = await Session.create(buildLoop(snn), { threads: 1 });
  const d = 5;
  const out = await s.run({
    input: { dims: [n, 1, 16, 16], data: x },
    [LOOP_STEPS_INPUT]: { dims: [], data: BigInt64Array.of(BigInt(T)) },
    [LOOP_DELAY_INPUT]: { dims: [], data: BigInt64Array.of(BigInt(d)) },
  });
  await s.release();
  const loopReadouts = out[loopReadout(snn.spec.readout)];
  assert.deepEqual(loopReadouts.dims, [T, n, 10]);
  const a = loopReadouts.data;
  const b = (steps as StepBatch).readouts as Float32Array;
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  assert.ok(worst < 1e-4, `max difference ${worst}`);
  // The averaged readout over the window [d+1, T].
  const mean = out[snn.spec.readout].data;
  for (let j = 0; j < n * 10; j++) {
    let sum = 0;
    for (let t = d; t < T; t++) sum += b[t * n * 10 + j];
    assert.ok(Math.abs(mean[j] - sum / (T - d)) < 1e-4);
  }
  snn.spec.sites.forEach((site, i) => {
    assert.deepEqual(Array.from(out[loopCounter(site.spikes)].data), Array.from(stats.spikesPerStep[i]));
  });
});

test('direct coding: the input-only prefix (first conv) is split off and computed once', async () => {
  const m = await prepareModel({ path: 'v.onnx', sha256: '', graph: vgg() }, { threads: 1 });
  const data = memDataset(uniform(22, 2 * 256), [1, 16, 16]);
  const cal = await calibrate(m, data, { method: 'maxnorm', iterations: 1, batchSize: 2, threads: 1 });
  const snn = buildSnn(m, cal.thresholds);
  const split = splitConstantPrefix(snn.graph, snn.spec);
  assert.deepEqual(
    split.prefix?.nodes.map((n) => n.opType),
    ['Conv'],
  );
  assert.equal(split.constants.length, 1);
  assert.equal(split.step.nodes.length, snn.graph.nodes.length - 1);
  assert.equal(
    split.step.inputs.some((i) => i.name === 'input'),
    false,
    'the step no longer needs the raw input',
  );
});

/** The test VGG on `batches` batches of n random 16×16 images (seeded), converted with CLTB on two of them. */
async function vggOnBatches(seed: number, batches: number, n: number) {
  const m = await prepareModel({ path: 'v.onnx', sha256: '', graph: vgg() }, { threads: 1 });
  const data = memDataset(uniform(seed, batches * n * 256), [1, 16, 16]);
  const cal = await calibrate(m, data, { method: 'cltb', iterations: 2, batchSize: n, threads: 1 });
  return { data, snn: buildSnn(m, cal.thresholds) };
}

test("engine auto (steps and fused timed on the first batches, then the faster) gives exactly the step engine's readouts, spike and SOP counts", async () => {
  const n = 3;
  const { data, snn } = await vggOnBatches(23, 5, n);
  const run = async (engine: 'steps' | 'auto') => {
    const sums: number[][] = [];
    const stats = await simulateBatches(
      snn.graph,
      snn.spec,
      data,
      // (autoTrial: always try fused here, whatever the costs measured; the rule is tested on its own.)
      { steps: 12, batchSize: n, normalize: null, threads: 1, engine, checkpoints: [5, 12], autoTrial: true },
      (b) => {
        sums.push(
          windowAverages(b, [
            { T: 12, delay: 5 },
            { T: 5, delay: 0 },
          ]).flatMap((w) => Array.from(w)),
        );
      },
    );
    return { sums, stats };
  };
  const a = await run('steps');
  const b = await run('auto');
  assert.deepEqual(a.stats.engines, { steps: 5 });
  // One batch timed with each (5 batches < AUTO_SECOND_ROUND), then the faster runs the other three.
  const { steps = 0, fused = 0 } = b.stats.engines;
  assert.equal(steps + fused, 5, 'every batch is run once');
  assert.ok(
    Math.min(steps, fused) === 1 && Math.max(steps, fused) === 4,
    `both engines timed on one batch: ${JSON.stringify(b.stats.engines)}`,
  );
  assert.equal(b.sums.length, 5, 'every batch reaches the sink once');
  assert.deepEqual(b.sums, a.sums, 'the same readouts, bit for bit');
  a.stats.spikesPerStep.forEach((v, i) => assert.deepEqual(Array.from(b.stats.spikesPerStep[i]), Array.from(v)));
  a.stats.sopsPerStep.forEach((v, i) => assert.deepEqual(Array.from(b.stats.sopsPerStep[i]), Array.from(v)));
  // 20 batches (≥ AUTO_SECOND_ROUND): each engine timed twice, the faster runs the last 16.
  const twenty = await simulateBatches(
    snn.graph,
    snn.spec,
    memDataset(uniform(24, 20 * 256), [1, 16, 16]),
    { steps: 4, batchSize: 1, normalize: null, threads: 1, engine: 'auto', checkpoints: [4], autoTrial: true },
    () => {},
  );
  const counts = [twenty.engines.steps ?? 0, twenty.engines.fused ?? 0].sort((p, q) => p - q);
  assert.deepEqual(counts, [2, 18], JSON.stringify(twenty.engines));
  // One batch: nothing to choose between, the step engine runs it.
  const one = await simulateBatches(
    snn.graph,
    snn.spec,
    data,
    { steps: 4, batchSize: 5 * n, normalize: null, threads: 1, engine: 'auto', checkpoints: [4] },
    () => {},
  );
  assert.deepEqual(one.engines, { steps: 1 });
});

test('steps per call: 1, 3, 4 and 8 steps per ONNX Runtime call give the same readouts, spike and SOP counts; the default halves 8 only for large states', async () => {
  const n = 3;
  const { data, snn } = await vggOnBatches(25, 2, n);
  // T = 13: with K > 1 the last T mod K steps run on the one-step session.
  const run = async (unroll: number) => {
    const sums: number[][] = [];
    const stats = await simulateBatches(
      snn.graph,
      snn.spec,
      data,
      { steps: 13, batchSize: n, normalize: null, threads: 1, engine: 'steps', unroll, checkpoints: [6, 13] },
      (b) => {
        sums.push(
          windowAverages(b, [
            { T: 13, delay: 6 },
            { T: 6, delay: 0 },
          ]).flatMap((w) => Array.from(w)),
        );
      },
    );
    return { sums, stats };
  };
  const one = await run(1);
  assert.ok(
    one.stats.spikesPerStep.some((v) => v.some((c) => c > 0)),
    'neurons fire (the comparison can fail)',
  );
  for (const K of [3, 4, 8]) {
    const r = await run(K);
    assert.deepEqual(r.sums, one.sums, `${K} steps per call: the same readouts, bit for bit`);
    one.stats.spikesPerStep.forEach((v, i) =>
      assert.deepEqual(Array.from(r.stats.spikesPerStep[i]), Array.from(v), `${K}: spikes of site ${i}`),
    );
    one.stats.sopsPerStep.forEach((v, i) =>
      assert.deepEqual(Array.from(r.stats.sopsPerStep[i]), Array.from(v), `${K}: SOPs of layer ${i}`),
    );
  }
  // The default: 8 steps unless 8 steps' states of a batch pass UNROLL_STATE_BYTES.
  const perSample = snn.spec.states.reduce((a, s) => a + s.shape.reduce((p, q) => p * q, 1), 0);
  const fits = Math.floor(UNROLL_STATE_BYTES / (8 * 4 * perSample));
  assert.equal(defaultUnroll(snn.spec, fits), DEFAULT_UNROLL);
  assert.equal(defaultUnroll(snn.spec, fits + 1), DEFAULT_UNROLL / 2);
  assert.equal(defaultUnroll(snn.spec, 1000 * fits), DEFAULT_UNROLL / 2, 'never fewer than 4: 2 per call ran slower');
});
