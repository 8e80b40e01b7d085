/**
 * The fused engine (runtime/fused.ts) against the step engine, step by step: the same readout
 * bits at every step, the same spike and SOP counts, on every bundled model and the generated
 * zoo; and its WebAssembly kernels against their plain-JS twins, bit for bit.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { prepareModel, type PreparedModel } from '../src/model/prepare.js';
import { loadModel } from '../src/model/load.js';
import { calibrate } from '../src/calibrate/calibrate.js';
import { buildSnn, type SnnGraph } from '../src/snn/build.js';
import { unitSpikeForm } from '../src/snn/unit.js';
import { simulateBatches } from '../src/runtime/batches.js';
import { type SimulationStats } from '../src/runtime/engines.js';
import { fusedPlan, fusedSessions } from '../src/runtime/fused.js';
import { createKernels } from '../src/runtime/kernels.js';
import { exactCounters } from '../src/runtime/exact-counts.js';
import { splitConstantPrefix } from '../src/snn/split.js';
import { counterOutputs } from '../src/snn/format.js';
import { KERNELS_WASM } from '../src/runtime/kernels.wasm.js';
import { readBatch, type Dataset } from '../src/data/dataset.js';
import { openDataset } from '../src/data/sources.js';
import { buildGraph, conv, gemm, maxpool, memDataset, uniform } from './helpers.js';
import { ZOO } from './zoo.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

interface Run {
  readonly readouts: Float32Array[];
  readonly stats: SimulationStats;
}

async function run(
  snn: SnnGraph,
  data: Dataset,
  T: number,
  engine: 'steps' | 'fused',
  normalize: PreparedModel['normalize'],
): Promise<Run> {
  const readouts: Float32Array[] = [];
  const stats = await simulateBatches(
    snn.graph,
    snn.spec,
    data,
    { steps: T, batchSize: 3, normalize, threads: 1, engine },
    (b) => {
      readouts.push(Float32Array.from(b.readouts as Float32Array));
    },
  );
  return { readouts, stats };
}

/** Fused against steps: readouts bit for bit at every step, counts per step; returns the spikes seen. */
async function compare(
  snn: SnnGraph,
  data: Dataset,
  T: number,
  normalize: PreparedModel['normalize'],
  what: string,
): Promise<number> {
  assert.ok(
    fusedPlan(snn.graph, snn.spec),
    `${what}: the fused engine must know this step graph (else it would silently run as steps)`,
  );
  const a = await run(snn, data, T, 'steps', normalize);
  const b = await run(snn, data, T, 'fused', normalize);
  assert.deepEqual(a.stats.engines, { steps: a.readouts.length }, `${what}: the steps engine ran every batch`);
  assert.deepEqual(b.stats.engines, { fused: b.readouts.length }, `${what}: the fused engine ran every batch`);
  assert.equal(b.readouts.length, a.readouts.length);
  a.readouts.forEach((r, i) => {
    const j = r.findIndex((v, k) => !Object.is(v, b.readouts[i][k]));
    assert.equal(
      j,
      -1,
      `${what}: batch ${i}, readout value ${j} (step ${Math.floor(j / (r.length / T))}): ${r[j]} vs ${b.readouts[i][j]}`,
    );
  });
  a.stats.spikesPerStep.forEach((s, i) =>
    assert.deepEqual(Array.from(b.stats.spikesPerStep[i]), Array.from(s), `${what}: spikes of site ${i}`),
  );
  // Both count in whole numbers: the step engine's counters are rewritten to read 0/1 spikes and sum in float64 (runtime/exact-counts.ts).
  a.stats.sopsPerStep.forEach((s, i) =>
    assert.deepEqual(Array.from(b.stats.sopsPerStep[i]), Array.from(s), `${what}: SOPs of layer ${i}`),
  );
  return a.stats.spikesPerStep.reduce((acc, s) => acc + s.reduce((x, y) => x + y, 0), 0);
}

const bundled = fs
  .readdirSync(path.join(root, 'models'))
  .filter((f) => f.endsWith('.onnx'))
  .sort();

for (const f of bundled) {
  test(`fused engine = steps engine, step by step: bundled ${f}`, async () => {
    const manifest = JSON.parse(fs.readFileSync(path.join(root, 'models', f.replace(/\.onnx$/, '.json')), 'utf8')) as {
      dataset: string;
    };
    const m = await prepareModel(loadModel(path.join(root, 'models', f)), { threads: 1 });
    const train = openDataset(`${manifest.dataset}:train`, 6);
    const test = openDataset(`${manifest.dataset}:test`, 5);
    const cal = await calibrate(m, train, {
      method: 'maxnorm',
      iterations: 1,
      batchSize: 6,
      threads: 1,
      shuffle: false,
    });
    const spikes = await compare(buildSnn(m, cal.thresholds), test, 6, m.normalize, f);
    assert.ok(spikes > 0, `${f}: the network must spike`);
  });
}

for (const [name, { graph, shape }] of Object.entries(ZOO)) {
  test(`fused engine = steps engine, step by step: zoo ${name} (both max-pool forms, unit spikes)`, async () => {
    const per = shape.reduce((a, b) => a * b, 1);
    const m = await prepareModel({ path: `${name}.onnx`, sha256: '', graph: graph() }, { threads: 1 });
    const data = memDataset(uniform(31, 5 * per), shape);
    const cal = await calibrate(m, data, { method: 'cltb', iterations: 2, batchSize: 5, threads: 1 });
    let spikes = 0;
    for (const pool of ['accumulated', 'per-step'] as const)
      spikes += await compare(buildSnn(m, cal.thresholds, pool), data, 12, null, `${name} ${pool}`);
    assert.ok(spikes > 0, `${name}: the network must spike`);
    let unit: Awaited<ReturnType<typeof unitSpikeForm>> | null = null;
    try {
      unit = await unitSpikeForm(m, cal.thresholds, { threads: 1 });
    } catch {
      return; // no exact folding for this architecture (unit-spikes.test.ts covers which)
    }
    await compare(buildSnn(unit.model, unit.thresholds), data, 12, null, `${name} unit`);
  });
}

test("fused engine: bias currents (bias calibration) and a per-neuron firing level (potential calibration) give the steps engine's spikes", async () => {
  const { graph, shape } = ZOO.vgg;
  const per = shape.reduce((a, b) => a * b, 1);
  const m = await prepareModel({ path: 'v.onnx', sha256: '', graph: graph() }, { threads: 1 });
  const data = memDataset(uniform(32, 4 * per), shape);
  const cal = await calibrate(m, data, { method: 'maxnorm', iterations: 1, batchSize: 4, threads: 1 });
  const sites = m.plan.sites;
  const bias = sites.map((s, i) =>
    i % 2 === 0 ? uniform(40 + i, (m.shapes.get(s.input) as number[])[0], -0.05, 0.05) : null,
  );
  const potential = sites.map((s, i) =>
    i === 1
      ? uniform(
          50,
          (m.shapes.get(s.input) as number[]).reduce((a, b) => a * b, 1),
          -0.2,
          0.2,
        )
      : null,
  );
  const spikes = await compare(
    buildSnn(m, cal.thresholds, 'accumulated', { bias, potential }),
    data,
    10,
    null,
    'vgg corrected',
  );
  assert.ok(spikes > 0);
});

test('fused kernels: WebAssembly SIMD and plain JS give the same bits (edge cases: ties, θ = 0, lengths not a multiple of 4)', () => {
  const wasm = createKernels('wasm');
  const js = createKernels('js');
  assert.equal(wasm.kind, 'wasm', 'Node has WebAssembly SIMD: the fast kernels must load');
  // [neurons per sample, values of level and θ]: per neuron, or per channel.
  for (const [per, C] of [
    [1, 1],
    [3, 3],
    [4, 4],
    [7, 7],
    [33, 33],
    [15, 3],
    [40, 5],
    [18, 2],
  ]) {
    const n = 3;
    const level = uniform(per, C, 0.1, 1).map((v, i) => (i % 5 === 4 ? Infinity : v));
    const theta = level.map((v) => (v === Infinity ? 0 : 2 * v));
    const fan = Int32Array.from({ length: per }, (_, i) => 1 + (i % 9));
    const run = (k: typeof js) => {
      k.reserve(20 * n * per + 10 * per);
      const u = k.f32(n * per).fill(0);
      const lv = k.f32(C);
      lv.set(level);
      const th = k.f32(C);
      th.set(theta);
      const f = k.i32(per);
      f.set(fan);
      const cur = k.f32(n * per);
      const out = k.f32(n * per);
      const acc = k.f32(n * per).fill(0);
      const accOut = k.f32(n * per);
      const prev = k.f32(n * per).fill(0);
      const diff = k.f32(n * per);
      const trace: number[] = [];
      for (let t = 0; t < 6; t++) {
        cur.set(uniform(100 * per + t, n * per, -0.5, 1.5));
        // A tie: the membrane lands exactly on the firing level.
        if (t === 0) cur[0] = level[0];
        const c = k.neuron(u, cur, out, lv, th, t % 2 ? f : null, n);
        trace.push(c.fired, c.sops, k.events(out, f, n), ...out, ...u);
        k.accumulate(acc, cur, accOut);
        k.difference(prev, accOut, diff);
        trace.push(...accOut, ...diff, ...acc);
      }
      return trace;
    };
    const a = run(wasm);
    const b = run(js);
    assert.equal(a.length, b.length);
    a.forEach((v, i) => assert.ok(Object.is(v, b[i]), `per ${per} (${C} levels), value ${i}: wasm ${v}, js ${b[i]}`));
    assert.ok(a[0] > 0, 'neurons fire (the tie at the firing level counts as firing)');
  }
});

test('fused kernels: src/runtime/kernels.wasm.ts is src/runtime/kernels.wat assembled (npm run wasm)', async () => {
  const tool = path.join(root, 'tools', 'wasm.mjs');
  const mod = (await import(tool)) as { assemble(): Promise<string> };
  assert.equal(await mod.assemble(), KERNELS_WASM, 'kernels.wat changed: run npm run wasm');
});

test("fused engine: fits(n) says whether a batch of n fits WebAssembly's 4 GiB (auto leaves larger batches to steps)", async () => {
  // The arena takes 4 bytes per value plus 64 KiB for alignment, and a wasm32 memory ends at 2^32 bytes.
  const wasm = createKernels('wasm');
  assert.equal(wasm.fits(2 ** 30 - 16384), true);
  assert.equal(wasm.fits(2 ** 30 - 16383), false);
  assert.equal(createKernels('js').fits(2 ** 40), true, 'plain JS arrays have no such limit');
  const m = await prepareModel(loadModel(path.join(root, 'models', 'mnist-cnn.onnx')), { threads: 1 });
  const train = openDataset('mnist:train', 6);
  const cal = await calibrate(m, train, { method: 'maxnorm', iterations: 1, batchSize: 6, threads: 1 });
  const snn = buildSnn(m, cal.thresholds);
  const plan = fusedPlan(snn.graph, snn.spec);
  assert.ok(plan);
  const eng = await fusedSessions(plan, snn.spec, { threads: 1 });
  try {
    // mnist-cnn keeps tens of thousands of values per sample: 100 fit, a million (≥ 10 GB) do not.
    assert.equal(eng.fits(100), true);
    assert.equal(eng.fits(1_000_000), false);
    // What fits also runs: a batch of 6 through 2 steps.
    let steps = 0;
    await eng.run(await readBatch(train, [0, 1, 2, 3, 4, 5], m.normalize), 2, (_t, K) => {
      steps += K;
    });
    assert.equal(steps, 2);
  } finally {
    await eng.release();
  }
});

test("step engine: exact counts where a batch's float32 sum would round (mnist-fcn, batch 100: totals past 2^24), equal to the fused engine's integers", async () => {
  const m = await prepareModel(loadModel(path.join(root, 'models', 'mnist-fcn.onnx')), { threads: 1 });
  const cal = await calibrate(m, openDataset('mnist-seg:train', 100), {
    method: 'maxnorm',
    iterations: 1,
    batchSize: 100,
    threads: 1,
  });
  const snn = buildSnn(m, cal.thresholds);
  const data = openDataset('mnist-seg:test', 100);
  const counts = async (engine: 'steps' | 'fused'): Promise<number[][]> => {
    const s = await simulateBatches(
      snn.graph,
      snn.spec,
      data,
      { steps: 4, batchSize: 100, normalize: m.normalize, threads: 1, engine, checkpoints: [4] },
      () => {},
    );
    assert.deepEqual(s.engines, { [engine]: 1 });
    return [...s.spikesPerStep, ...s.sopsPerStep].map((a) => Array.from(a));
  };
  const a = await counts('steps');
  const b = await counts('fused');
  assert.ok(
    a.flat().some((v) => v > 2 ** 24),
    "some step's total passes 2^24 (where float32 sums round)",
  );
  assert.deepEqual(a, b);
  // And the rewrite reaches every counter of this graph: each one is now a float64 count handed out as float32 [high, low].
  const rewritten = exactCounters(splitConstantPrefix(snn.graph, snn.spec).step, snn.spec);
  const made = new Map(rewritten.nodes.flatMap((n) => n.outputs.map((o) => [o, n] as const)));
  assert.ok(
    counterOutputs(snn.spec).every(
      (c) => made.get(c)?.opType === 'Gather' && made.get(made.get(c)?.inputs[0] ?? '')?.opType === 'Concat',
    ),
  );
});

test("step engine: exact counts for layers after a max pool (event counters), per channel in float32, and in float64 where one channel's row passes 2^24", async () => {
  // conv(3→16) at 256² → pool → [16, 128, 128]: conv(16→33) reads 16 384 events per channel × fan-out ≤ 297
  // (< 2^24 per channel, > 2^24 per sample), conv(16→129) × fan-out ≤ 1161 (> 2^24 even per channel).
  const graph = buildGraph([3, 256, 256], (b, x) => {
    const p = maxpool(b, b.op('Relu', [conv(b, x, 3, 16, 3, { seed: 71 })]));
    const a = b.op('GlobalAveragePool', [b.op('Relu', [conv(b, p, 16, 33, 3, { seed: 72 })])]);
    const c = b.op('GlobalAveragePool', [b.op('Relu', [conv(b, p, 16, 129, 3, { seed: 73 })])]);
    return gemm(b, b.op('Flatten', [b.op('Concat', [a, c], { axis: 1 })], { axis: 1 }), 162, 4, 74);
  });
  const m = await prepareModel({ path: 'wide.onnx', sha256: '', graph }, { threads: 2 });
  const data = memDataset(uniform(75, 2 * 3 * 256 * 256), [3, 256, 256]);
  const cal = await calibrate(m, data, { method: 'maxnorm', iterations: 1, batchSize: 2, threads: 2 });
  const snn = buildSnn(m, cal.thresholds);
  const rewritten = exactCounters(splitConstantPrefix(snn.graph, snn.spec).step, snn.spec);
  const doubleWeights = rewritten.nodes.filter(
    (n) => n.opType === 'MatMul' && rewritten.initializers.get(n.inputs[1])?.dtype === 'float64',
  );
  assert.equal(doubleWeights.length, 1, 'the 129-channel layer is counted in float64, the others in float32 rows');
  const counts = async (engine: 'steps' | 'fused'): Promise<number[][]> => {
    const s = await simulateBatches(
      snn.graph,
      snn.spec,
      data,
      { steps: 3, batchSize: 2, normalize: null, threads: 2, engine, checkpoints: [3] },
      () => {},
    );
    assert.deepEqual(s.engines, { [engine]: 1 });
    return s.sopsPerStep.map((a) => Array.from(a));
  };
  const a = await counts('steps');
  assert.ok(
    a.flat().some((v) => v / 2 > 2 ** 24),
    "one sample's SOPs in a step pass 2^24",
  );
  assert.deepEqual(a, await counts('fused'));
});
