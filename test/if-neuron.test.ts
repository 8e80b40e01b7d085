import { test } from 'node:test';
import assert from 'node:assert/strict';
import { floatTensor } from '../src/graph/ir.js';
import { prepareModel } from '../src/model/prepare.js';
import { calibrate } from '../src/calibrate/calibrate.js';
import { buildSnn } from '../src/snn/build.js';
import { simulateBatches } from '../src/runtime/batches.js';
import { type StepBatch } from '../src/runtime/engines.js';
import { buildGraph, memDataset, uniform } from './helpers.js';

/** input [N, F] -> Gemm(identity) -> Relu -> Gemm(identity) readout: the readout shows each step's spikes·θ. */
function identityNet(F: number) {
  const eye = new Float32Array(F * F);
  for (let i = 0; i < F; i++) eye[i * F + i] = 1;
  return buildGraph([F], (b, x) => {
    const h = b.op('Gemm', [x, b.constant('I', floatTensor([F, F], eye))], { transB: 1 });
    const s = b.op('Relu', [h], {}, 'site');
    return b.op('Gemm', [s, b.constant('I2', floatTensor([F, F], eye))], { transB: 1 }, 'readout');
  });
}

async function runSteps(
  F: number,
  input: Float32Array,
  theta: number[],
  T: number,
  engine: 'loop' | 'steps' | 'fused',
) {
  const graph = identityNet(F);
  const m = await prepareModel({ path: 'if.onnx', sha256: '', graph }, { threads: 1 });
  const data = memDataset(input, [F]);
  const site = m.plan.sites[0].node;
  const cal = await calibrate(m, data, {
    method: 'fixed',
    thresholds: { [site]: theta },
    iterations: 1,
    batchSize: 1,
    threads: 1,
  });
  const snn = buildSnn(m, cal.thresholds);
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
  // The engine asked for must be the one that ran (the fused engine falls back to steps on a graph it cannot plan).
  assert.deepEqual(stats.engines, { [engine]: 1 }, `${engine} engine ran the batch`);
  return { readouts: (got as StepBatch).readouts as Float32Array, spikes: stats.spikesPerStep[0] };
}

for (const engine of ['loop', 'steps', 'fused'] as const)
  test(`IF neuron (${engine} engine): hand-worked spike trains (θ/2 start, fire at m ≥ θ, spikes carry θ, reset by subtraction)`, async () => {
    const T = 10;
    // Six neurons: the fused engine's kernels update four at a time and the rest one by one, so an
    // overshooting neuron sits in each part (channels 3 and 5).
    const { readouts, spikes } = await runSteps(
      6,
      Float32Array.of(0.25, 0.75, 1.5, 1.5, -0.5, 0.75),
      [1, 0.5, 0, 2, 1, 1],
      T,
      engine,
    );
    const channel = (c: number) => Array.from({ length: T }, (_, t) => readouts[t * 6 + c]);
    // θ=1, z=0.25, m0=0.5: m = 0.75, 1.0 (fire, -> 0), 0.25, 0.5, 0.75, 1.0 (fire), ...
    assert.deepEqual(channel(0), [0, 1, 0, 0, 0, 1, 0, 0, 0, 1]);
    // θ=0.5, z=0.75 > θ: fires every step, output capped at θ.
    assert.deepEqual(channel(1), Array(T).fill(0.5));
    // θ=0: never fires, even though m0 = 0 ≥ θ.
    assert.deepEqual(channel(2), Array(T).fill(0));
    // θ=2, z=1.5 overshoots θ, so the reset matters: m0=1; m = 2.5 (fire, -> 0.5), 2.0 (fire, -> 0), 1.5,
    // 3.0 (fire, -> 1), 2.5 (fire, -> 0.5), 2.0 (fire, -> 0), 1.5, ...: 8 spikes of 2 (Σ out = Σ z + m0 − m_T = 15 + 1 − 0).
    // Reset to zero would give 2, 0, 2, 0, …; a start at 0 would give 0, 2, 2, 2, 0, …; firing at m > θ 2, 0, 2, 2, 2, 0, ….
    assert.deepEqual(channel(3), [2, 2, 0, 2, 2, 2, 0, 2, 2, 2]);
    // negative current: never fires.
    assert.deepEqual(channel(4), Array(T).fill(0));
    // θ=1, z=0.75: channel 3 at half the scale.
    assert.deepEqual(channel(5), [1, 1, 0, 1, 1, 1, 0, 1, 1, 1]);
    assert.deepEqual(Array.from(spikes), [3, 4, 1, 3, 3, 4, 1, 3, 3, 4]);
  });

for (const engine of ['loop', 'steps', 'fused'] as const)
  test(`IF neuron (${engine} engine): matches a plain JS reference of the dynamics on random currents and thresholds`, async () => {
    const F = 64;
    const T = 40;
    const z = uniform(7, F, -0.5, 1.5);
    const theta = Array.from(uniform(8, F, 0.2, 1.2));
    theta[3] = 0;
    const { readouts, spikes } = await runSteps(F, z, theta, T, engine);
    let mismatches = 0;
    const m = theta.map((t) => t / 2);
    for (let t = 0; t < T; t++) {
      let count = 0;
      for (let k = 0; k < F; k++) {
        m[k] += z[k];
        const s = theta[k] > 0 && m[k] >= theta[k] ? 1 : 0;
        m[k] -= s * theta[k];
        count += s;
        if (Math.abs(readouts[t * F + k] - s * Math.fround(theta[k])) > 1e-6) mismatches++;
      }
      assert.equal(spikes[t], count, `spike count at step ${t + 1}`);
    }
    assert.equal(mismatches, 0);
  });
