/**
 * The paper's experiments (src/experiments/): each curve, sweep point and energy row equals what
 * the front door (convert, then simulate with that method, iteration count or delay) gives for
 * the same setting; the delay grid and the firing-rate average are worked out here.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import {
  PRESETS,
  ablation,
  convert,
  delaySweep,
  energyTable,
  iterationSweep,
  loadModel,
  openDataset,
  simulate,
  type ConvertOptions,
  type SimulateOptions,
} from '../src/index.js';
import { delayGrid } from '../src/experiments/experiments.js';

const model = loadModel(path.join(process.cwd(), 'models', 'mnist-cnn.onnx'));
const calib = openDataset('mnist:train', 100);
const testSet = openDataset('mnist:test', 40);
const T = [4, 8];
const conv: ConvertOptions = { iterations: 2, batchSize: 50, threads: 1 };
const sim: SimulateOptions = { T, batchSize: 50, threads: 1, engine: 'steps', siteErrors: 0 };
const opts = { ...conv, T, engine: 'steps' } as const;

/** Top-1 at each T from the front door, for a conversion setting and a delay rule. */
async function curve(c: ConvertOptions, delay: SimulateOptions['delay']): Promise<number[]> {
  const snn = await convert(model, calib, { ...conv, ...c });
  return (await simulate(snn, testSet, { ...sim, delay })).results.map((r) => r.metric);
}

test('ablation: RobustNorm, LTB and CLTB without delay, CLTB with the delay rule, each as convert + simulate give it', async () => {
  const r = await ablation(model, calib, testSet, opts);
  assert.deepEqual(
    r.curves.map((c) => c.label),
    ['RobustNorm', 'LTB', 'CLTB', 'CLTB + delayed evaluation'],
  );
  const want = [
    await curve({ method: 'robustnorm' }, 'off'),
    await curve({ method: 'ltb' }, 'off'),
    await curve({ method: 'cltb' }, 'off'),
    await curve({ method: 'cltb' }, 'auto'),
  ];
  assert.deepEqual(
    r.curves.map((c) => c.points.map((p) => p.metric)),
    want,
  );
  assert.ok(new Set(want.map((w) => w.join())).size >= 3, `the settings score differently: ${JSON.stringify(want)}`);
  assert.deepEqual(
    r.curves.map((c) => c.points.map((p) => p.T)),
    [T, T, T, T],
  );
  const cltb = await convert(model, calib, { ...conv, method: 'cltb' });
  const refs = await simulate(cltb, testSet, { ...sim, references: true });
  assert.deepEqual(r.ann, refs.ann);
  assert.equal(r.curves[3].delay, cltb.meta.delay.estimated);
  assert.equal(r.samples, 40);
});

test('iteration sweep: each count is CLTB with that many iterations and the delay rule; the label carries its d̂', async () => {
  const r = await iterationSweep(model, calib, testSet, [1, 3], opts);
  for (const [k, its] of [1, 3].entries()) {
    const snn = await convert(model, calib, { ...conv, method: 'cltb', iterations: its });
    const d = snn.meta.delay.estimated;
    assert.equal(r.curves[k].label, `${its} iterations (d̂ = ${d})`);
    assert.deepEqual(
      r.curves[k].points.map((p) => p.metric),
      (await simulate(snn, testSet, sim)).results.map((x) => x.metric),
    );
  }
  await assert.rejects(iterationSweep(model, calib, testSet, [0], opts), /counts must list iteration counts/);
});

test('delay grid: every d in [0, T) in steps of ⌊T/24⌋, plus 0, d̂, the rule’s d and T − 1', () => {
  assert.deepEqual(delayGrid(8, 5), [0, 1, 2, 3, 4, 5, 6, 7]);
  // T = 64, d̂ = 5: steps of 2 (0, 2, …, 62), d̂ = 5, rule min(5, 32) = 5, and 63.
  assert.deepEqual(delayGrid(64, 5), [
    ...Array.from({ length: 32 }, (_, i) => 2 * i).slice(0, 3),
    5,
    ...Array.from({ length: 29 }, (_, i) => 6 + 2 * i),
    63,
  ]);
  // d̂ beyond T: capped at T − 1, and the rule's ⌊T/2⌋.
  assert.deepEqual(delayGrid(48, 100), [...Array.from({ length: 24 }, (_, i) => 2 * i), 47]);
});

test('delay sweep: each point is simulate with that delay; best is the first delay with the highest metric', async () => {
  const r = await delaySweep(model, calib, testSet, opts);
  const snn = await convert(model, calib, { ...conv, method: 'cltb' });
  assert.equal(r.estimated, snn.meta.delay.estimated);
  for (const s of r.sweeps) {
    assert.deepEqual(
      s.points.map((p) => p.delay),
      delayGrid(s.T, r.estimated),
    );
    assert.equal(s.rule, Math.min(r.estimated, Math.floor(s.T / 2)));
    for (const p of s.points) {
      const got = await simulate(snn, testSet, { ...sim, T: [s.T], delay: p.delay });
      assert.equal(got.results[0].delay, p.delay);
      assert.equal(p.metric, got.results[0].metric, `T=${s.T}, d=${p.delay}`);
    }
    assert.ok(new Set(s.points.map((p) => p.metric)).size > 1, `T=${s.T}: the delay matters here`);
    const top = Math.max(...s.points.map((p) => p.metric));
    assert.equal(s.best, s.points.find((p) => p.metric === top)?.delay);
  }
});

test('energy table: a row is the energy simulate reports for CLTB with the delay rule; its firing rate is the sites’ rates weighted by their neurons', async () => {
  const r = await energyTable([{ model, calib, test: testSet }], PRESETS.paper, opts);
  const snn = await convert(model, calib, { ...conv, method: 'cltb' });
  const rec = await simulate(snn, testSet, { ...sim, references: true, energy: 'paper' });
  assert.equal(r.rows.length, 1);
  const row = r.rows[0];
  assert.equal(row.model, 'mnist-cnn.onnx');
  assert.deepEqual(row.ann, rec.ann);
  assert.deepEqual(row.energy, rec.energy);
  const neurons = snn.spec.sites.map((s) => s.neurons);
  const weighted = rec.firingRates.reduce((a, f, i) => a + f.rate * neurons[i], 0) / neurons.reduce((a, b) => a + b, 0);
  assert.ok(Math.abs(row.firingRate - weighted) <= 1e-12, `${row.firingRate} vs ${weighted}`);
  assert.ok(row.firingRate > 0 && row.firingRate < 1);
});
