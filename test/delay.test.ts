import { test } from 'node:test';
import assert from 'node:assert/strict';
import { floatTensor } from '../src/graph/ir.js';
import { prepareModel } from '../src/model/prepare.js';
import { prepare } from '../src/graph/passes.js';
import { plan } from '../src/graph/plan.js';
import { calibrate } from '../src/calibrate/calibrate.js';
import { delayFromLatencies, siteLatency } from '../src/calibrate/delay.js';
import { buildGraph, gemm, memDataset } from './helpers.js';
import { delayFor, resolveSimulateOptions } from '../src/api/simulate-options.js';

test('site latency r = 1 / (2 · mean_k E[x_k⁺]/θ_k), channels with θ = 0 left out', () => {
  // ρ = [0.5, 0.25] (third channel has θ = 0): mean 0.375, r = 1/0.75.
  assert.ok(Math.abs(siteLatency([0.5, 0.5, 9], [1, 2, 0]) - 1 / 0.75) < 1e-12);
  // layer-wise θ broadcasts.
  assert.ok(Math.abs(siteLatency([1, 3], [4]) - 1) < 1e-12);
  assert.equal(siteLatency([0, 0], [1, 1]), Infinity);
});

function chain() {
  return buildGraph([4], (b, x) => {
    let h = x;
    for (let i = 0; i < 3; i++) h = b.op('Relu', [gemm(b, h, 4, 4)]);
    return gemm(b, h, 4, 2);
  });
}

test('d̂ on a chain is ⌈Σ r_l⌉', () => {
  const p = plan(prepare(chain()));
  const d = delayFromLatencies(p, [0.5, 1.2, 2.1], ['input']);
  assert.ok(Math.abs(d.arrival - 3.8) < 1e-12);
  assert.equal(d.estimated, 4);
});

test('d̂ through a residual Add takes the earlier branch', () => {
  const g = buildGraph([4], (b, x) => {
    const s0 = b.op('Relu', [gemm(b, x, 4, 4)]);
    const branch = gemm(b, b.op('Relu', [gemm(b, s0, 4, 4)]), 4, 4);
    const s2 = b.op('Relu', [b.op('Add', [branch, s0])]);
    return gemm(b, s2, 4, 2);
  });
  const p = plan(prepare(g));
  assert.equal(p.sites.length, 3);
  // arrival at the Add = min(1.5 + 10, 1.5); readout input = 1.5 + 0.7.
  const d = delayFromLatencies(p, [1.5, 10, 0.7], ['input']);
  assert.ok(Math.abs(d.arrival - 2.2) < 1e-12);
  assert.equal(d.estimated, 3);
});

test('d̂ end to end: known activations through identity layers give r = [4/3, 16/3], d̂ = 7', async () => {
  const eye = Float32Array.of(1, 0, 0, 1);
  const g = buildGraph([2], (b, x) => {
    const s0 = b.op('Relu', [b.op('Gemm', [x, b.constant('I', floatTensor([2, 2], eye))], { transB: 1 })]);
    const s1 = b.op('Relu', [b.op('Gemm', [s0, b.constant('I', floatTensor([2, 2], eye))], { transB: 1 })]);
    return b.op('Gemm', [s1, b.constant('I', floatTensor([2, 2], eye))], { transB: 1 });
  });
  const m = await prepareModel({ path: 'd.onnx', sha256: '', graph: g }, { threads: 1 });
  const [a, c] = m.plan.sites.map((s) => s.node);
  // the first calibration batch: two samples whose mean is [0.5, 0.25].
  const data = memDataset(Float32Array.of(0.75, 0.5, 0.25, 0), [2]);
  const cal = await calibrate(m, data, {
    method: 'fixed',
    thresholds: { [a]: [1, 1], [c]: [4, 4] },
    iterations: 1,
    batchSize: 2,
    shuffle: false,
    threads: 1,
  });
  // site 0: ρ = [0.5, 0.25] → r = 1/(2·0.375) = 4/3; site 1 sees clip(x, 0, 1) = same x, θ = 4: r = 16/3.
  assert.ok(Math.abs(cal.delay.latencies[0] - 4 / 3) < 1e-6);
  assert.ok(Math.abs(cal.delay.latencies[1] - 16 / 3) < 1e-6);
  assert.equal(cal.delay.estimated, 7);
});

test("delay 'half' discards ⌊T/2⌋ steps at every T whatever d̂ (the paper's segmentation setting)", () => {
  const meta = { estimated: 22, latencies: [] };
  assert.deepEqual(
    [1, 7, 8, 32, 256].map((T) => delayFor('half', T, meta)),
    [0, 3, 4, 16, 128],
  );
  // auto stops at d̂.
  assert.deepEqual(
    [32, 256].map((T) => delayFor('auto', T, meta)),
    [16, 22],
  );
  assert.throws(() => resolveSimulateOptions({ delay: 'halve' as 'half' }), /"half"/);
});
