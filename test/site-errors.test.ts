import { test } from 'node:test';
import assert from 'node:assert/strict';
import { prepareModel } from '../src/model/prepare.js';
import { calibrate } from '../src/calibrate/calibrate.js';
import { buildSnn } from '../src/snn/build.js';
import { siteErrors } from '../src/analysis/site-errors.js';
import { buildGraph, conv, gemm, memDataset, runGraph, uniform } from './helpers.js';

test('site errors: ε_l equals a JS computation of ‖ReLU(x) − clip(x, 0, θ)‖/‖ReLU(x)‖; the SNN approaches the clipped ANN site by site', async () => {
  const graph = buildGraph([1, 6, 6], (b, x) => {
    const h = b.op('Relu', [conv(b, x, 1, 3, 3, { seed: 11 })], {}, 'r1');
    const f = b.op('Flatten', [h], { axis: 1 });
    const h2 = b.op('Relu', [gemm(b, f, 108, 8, 12)], {}, 'r2');
    return gemm(b, h2, 8, 4, 13);
  });
  const m = await prepareModel({ path: 's.onnx', sha256: '', graph }, { threads: 1 });
  const x = uniform(3, 20 * 36, 0, 1);
  const data = memDataset(x, [1, 6, 6]);
  // Layer-wise thresholds at 60 % of each site's max: a known, non-zero clip error.
  const max = await calibrate(m, data, { method: 'maxnorm', iterations: 1, batchSize: 20, threads: 1 });
  const fixed = Object.fromEntries(m.plan.sites.map((s, i) => [s.node, 0.6 * max.thresholds.values[i][0]]));
  const th = (
    await calibrate(m, data, { method: 'fixed', thresholds: fixed, iterations: 1, batchSize: 20, threads: 1 })
  ).thresholds;
  const snn = buildSnn(m, th);
  const r = await siteErrors(m, snn.graph, snn.spec, th, data, { T: 600, delay: 0, samples: 20, threads: 1 });
  const acts = await runGraph(
    { ...m.graph, outputs: m.plan.sites.map((s) => ({ name: s.input, dtype: 'float32' as const, shape: null })) },
    { input: { dims: [20, 1, 6, 6], data: x } },
  );
  m.plan.sites.forEach((s, i) => {
    const v = acts[s.input].data;
    const t = th.values[i][0];
    let num = 0;
    let den = 0;
    for (const a of v) {
      const relu = Math.max(0, a);
      num += (relu - Math.min(relu, t)) ** 2;
      den += relu ** 2;
    }
    assert.ok(
      Math.abs(r.sites[i].clipError - Math.sqrt(num / den)) < 1e-5,
      `site ${i}: ${r.sites[i].clipError} vs ${Math.sqrt(num / den)}`,
    );
    assert.ok(r.sites[i].clipError > 0.01);
    assert.ok(r.sites[i].snnVsClipped < 0.02, `site ${i} SNN vs clipped ${r.sites[i].snnVsClipped}`);
    assert.ok(r.sites[i].snnVsAnn > r.sites[i].snnVsClipped, 'against the unclipped ANN the clip error shows');
  });
  assert.equal(r.samples, 20);
});
