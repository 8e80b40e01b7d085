/**
 * A whole run at the user's cost: the rules that choose engines and workers for a run from what
 * its setup and work cost, the step engine's counter columns (small enough for ONNX Runtime to
 * pack cheaply), and the record's times (the wall clock of shards side by side is their span,
 * not their sum; setup and time steps are said apart). No test here reads a clock to judge speed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { convert } from '../src/api/convert.js';
import { simulateShard } from '../src/api/simulate.js';
import { mergeShards } from '../src/api/merge.js';
import { type ShardFile } from '../src/api/shard-file.js';
import { openDataset } from '../src/data/sources.js';
import {
  AUTO_TRIAL_SHARE,
  WORKERS_MEMORY_SHARE,
  WORKERS_MIN_SECONDS,
  autoWorkerCount,
  autoWorkerPlan,
  workerPeakBytes,
  estimateStepSeconds,
  worthTrying,
} from '../src/runtime/auto.js';
import { DEFAULT_UNROLL, defaultUnroll } from '../src/runtime/steps.js';
import { exactCounters } from '../src/runtime/exact-counts.js';
import { splitConstantPrefix } from '../src/snn/split.js';
import { counterOutputs } from '../src/snn/format.js';
import type { Snn } from '../src/snn/network.js';
import { tempDir } from './temp.js';
import { loadModel } from '../src/model/load.js';
import { Session, probeShapes } from '../src/ort/session.js';
import { floatInput } from '../src/onnx/builder.js';

const root = process.cwd();
const CLI = path.join(root, 'dist', 'src', 'cli', 'main.js');
const tmp = tempDir('spikeport-whole-run-');

let vgg: Snn | null = null;
/** fashion-vgg with thresholds from one MaxNorm batch: the layers and sites are what the rules read. */
async function fashionVgg(): Promise<Snn> {
  vgg ??= await convert(path.join(root, 'models', 'fashion-vgg.onnx'), openDataset('fashion-mnist:train', 100), {
    method: 'maxnorm',
    iterations: 1,
    batchSize: 100,
    threads: 1,
  });
  return vgg;
}

test('auto tries the fused engine only when its setup and a slower batch are a small share of the work left', () => {
  // The step engine's setup 300 ms and 1100 ms per batch (fashion-vgg, batch 100, T = 32): a trial
  // costs about 300 + 550 ms; it pays from 850 / (0.03 × 1100) ≈ 26 batches left.
  assert.equal(AUTO_TRIAL_SHARE, 0.03);
  assert.equal(worthTrying(300, 1100, 9), false, '1000 images: 9 batches left');
  assert.equal(worthTrying(300, 1100, 25), false);
  assert.equal(worthTrying(300, 1100, 26), true);
  assert.equal(worthTrying(300, 1100, 99), true, '10 000 images');
  // mobilenet_v2 at 224: ~2 s of setup, ~2.4 s per batch of 16 × 8 steps, 3 batches left.
  assert.equal(worthTrying(2000, 2400, 3), false);
  assert.equal(worthTrying(0, 1000, 0), false, 'nothing left to run');
});

test('the work a run is estimated at: 2 × MACs of the layers run at every step at 50 GFLOP/s, plus 2 ns per neuron-step', async () => {
  const snn = await fashionVgg();
  const everyStep = (snn.spec.layers ?? [])
    .filter((l) => l.where === 'spiking' || l.where === 'dense')
    .reduce((a, l) => a + l.macs, 0);
  const neurons = snn.spec.sites.reduce((a, s) => a + s.neurons, 0);
  assert.ok(everyStep > 1e6 && neurons > 1e4, `${everyStep} MACs, ${neurons} neurons per sample`);
  const want = 1000 * 32 * ((2 * everyStep) / 50e9 + neurons * 2e-9);
  assert.ok(Math.abs(estimateStepSeconds(snn.spec, 1000 * 32) - want) < 1e-9 * want);
  // About what a quiet 2-core machine measures for it (0.33 ms per sample-step, docs/benchmarks.md).
  const perStep = estimateStepSeconds(snn.spec, 1);
  assert.ok(perStep > 0.2e-3 && perStep < 0.5e-3, `${perStep} s per sample-step`);
});

test('auto workers: one per thread for a long run of a small net, one process for a short run, a single batch per worker or large states', async () => {
  const snn = await fashionVgg();
  const long = { samples: 1000, steps: 32, batchSize: 100, threads: 2 };
  assert.ok(estimateStepSeconds(snn.spec, 1000 * 32) >= WORKERS_MIN_SECONDS);
  assert.equal(autoWorkerCount(snn.spec, long), 2);
  assert.equal(autoWorkerCount(snn.spec, { ...long, threads: 1 }), 1, 'one thread: one process');
  assert.equal(autoWorkerCount(snn.spec, { ...long, steps: 8 }), 2, 'T = 8: about 2.5 s of work');
  assert.equal(autoWorkerCount(snn.spec, { ...long, steps: 4 }), 1, 'T = 4: about 1.3 s of work');
  assert.equal(autoWorkerCount(snn.spec, { ...long, samples: 300, steps: 256 }), 1, '3 batches: one each at most');
  assert.equal(autoWorkerCount(snn.spec, { ...long, samples: 10000, steps: 256, threads: 4 }), 4);
  // Batches of 2000: 8 steps' states pass the memory line (4 steps per call), as at 224: one process.
  assert.equal(defaultUnroll(snn.spec, 2000) < DEFAULT_UNROLL, true);
  assert.equal(autoWorkerCount(snn.spec, { samples: 40000, steps: 32, batchSize: 2000, threads: 2 }), 1);
});

test('auto workers with the engine: large states run one fused worker per thread when all their peaks fit in the memory available, else one process', async () => {
  const snn = await fashionVgg();
  const spec = snn.spec;
  // Batches of 2000: 8 steps' states pass the memory line, as at 224.
  const large = { samples: 40000, steps: 32, batchSize: 2000, threads: 2 };
  const states = 4 * 2000 * spec.states.reduce((a, s) => a + s.shape.reduce((p, q) => p * q, 1), 0);
  assert.equal(workerPeakBytes(spec, 2000), 14 * states + 2 ** 29);
  const need = 2 * workerPeakBytes(spec, 2000);
  const ample = need / WORKERS_MEMORY_SHARE + 1;
  assert.deepEqual(autoWorkerPlan(spec, large, ample), { workers: 2, autoStart: 'fused' });
  assert.deepEqual(autoWorkerPlan(spec, large, ample - 2), { workers: 1 }, 'two peaks do not fit');
  assert.deepEqual(autoWorkerPlan(spec, { ...large, samples: 6000 }, ample), { workers: 1 }, '3 batches');
  assert.deepEqual(autoWorkerPlan(spec, { ...large, threads: 1 }, ample), { workers: 1 }, 'one thread');
  const sharedGroup = {
    ...spec,
    sites: spec.sites.map((s, i) => (i === 0 ? { ...s, group: { kind: 'shared' as const, size: 2 } } : s)),
  };
  assert.deepEqual(
    autoWorkerPlan(sharedGroup, large, ample),
    { workers: 1 },
    'the fused engine runs no shared-reset group',
  );
  // Small states: the rule of autoWorkerCount, whatever the memory.
  const small = { samples: 1000, steps: 32, batchSize: 100, threads: 2 };
  assert.deepEqual(autoWorkerPlan(spec, small, 0), { workers: autoWorkerCount(spec, small) });
  assert.deepEqual(autoWorkerPlan(spec, { ...small, steps: 4 }, 0), { workers: 1 });
});

test('auto told to start with fused runs every batch fused, no trial, with the results of steps', async () => {
  const snn = await fashionVgg();
  const data = openDataset('fashion-mnist:test', 60);
  const opts = { T: [4, 6], batchSize: 20, threads: 1 } as const;
  const fused = await simulateShard(snn, data, { ...opts, engine: 'auto', autoStart: 'fused' });
  const steps = await simulateShard(snn, data, { ...opts, engine: 'steps' });
  assert.deepEqual(fused.tally.engines, { fused: 3 });
  assert.deepEqual(steps.tally.engines, { steps: 3 });
  assert.deepEqual(fused.tally.scores, steps.tally.scores);
  assert.deepEqual(fused.tally.spikesPerStep, steps.tally.spikesPerStep);
  assert.equal(fused.config, steps.config, 'the same run: autoStart changes how, not what');
});

test('probeShapes reads shapes without fetching the tensors: the same dims as the tensors themselves, also where it falls back to fetching them', async () => {
  const m = loadModel(path.join(root, 'models', 'fashion-resnet.onnx'));
  const input = m.graph.inputs[0];
  const x = { dims: [2, 1, 28, 28], data: new Float32Array(2 * 28 * 28).map((_, i) => Math.sin(i)) };
  const FLOAT_OPS = new Set(['Conv', 'Relu', 'Add', 'MaxPool', 'GlobalAveragePool', 'Gemm', 'BatchNormalization']);
  const names = [input.name, ...m.graph.nodes.filter((n) => FLOAT_OPS.has(n.opType)).map((n) => n.outputs[0])];
  assert.ok(names.length > 10, `${names.length} tensors`);
  // Independently: a session with every tensor as an output, the tensors fetched whole.
  const whole = await Session.create(
    {
      ...m.graph,
      outputs: [...new Set([...m.graph.outputs.map((o) => o.name), ...names])].map((name) => floatInput(name, null)),
    },
    { threads: 1 },
  );
  const fetched = await whole.run({ [input.name]: x }, names);
  await whole.release();
  const want = names.map((n) => fetched[n].dims.join('x'));
  assert.ok(new Set(want).size > 3, `shapes: ${[...new Set(want)].join(', ')}`);
  for (const exactBelow of [2 ** 24, 2]) {
    const got = await probeShapes(m.graph, input.name, x, names, { threads: 1 }, exactBelow);
    assert.deepEqual(
      names.map((n) => got.get(n)?.join('x')),
      want,
      exactBelow === 2 ? 'fetched whole (dims from 2 on)' : 'from the Shape nodes',
    );
  }
});

test("the step engine's exact counters keep short columns: no constant as long as a sample's neurons, none of the saved counters' left", async () => {
  const snn = await fashionVgg();
  const step = splitConstantPrefix(snn.graph, snn.spec).step;
  const exact = exactCounters(step, snn.spec);
  const floats = (g: typeof step, pick: (name: string) => boolean): number =>
    [...g.initializers].filter(([name]) => pick(name)).reduce((a, [, t]) => a + t.dims.reduce((p, q) => p * q, 1), 0);
  // The counters as saved: one [neurons, columns] matrix each, a MatMul's constant summed by a ReduceSum.
  const summed = new Set(step.nodes.filter((n) => n.opType === 'ReduceSum').map((n) => n.inputs[0]));
  const saved = new Set(
    step.nodes
      .filter((n) => n.opType === 'MatMul' && summed.has(n.outputs[0]) && step.initializers.has(n.inputs[1]))
      .map((n) => n.inputs[1]),
  );
  assert.ok(saved.size >= counterOutputs(snn.spec).length / 2, `${saved.size} counter matrices`);
  const before = floats(step, (n) => saved.has(n));
  const after = floats(exact, (n) => n.endsWith('_exact_w'));
  assert.ok(after > 0);
  assert.ok(after * 2 < before, `exact columns ${after} floats against ${before} as saved`);
  assert.equal(
    floats(exact, (n) => saved.has(n)),
    0,
    "the saved counters' columns are not handed to ONNX Runtime",
  );
  // Rows as short as the fan-outs' period allows from 1024 values on (a whole sample's when it is
  // shorter): here the smallest multiple of a 28×28, 14×14 or 7×7 map that is at least 1024 long and
  // divides the layer, 1568 at most (whole samples' rows, as before, are up to 32 × 28 × 28 = 25 088).
  for (const [name, t] of exact.initializers)
    if (name.endsWith('_exact_w')) assert.ok(t.dims[0] <= 1568, `${name}: ${t.dims.join('×')}`);
});

test("merged shards: the wall clock is the span from the first shard's start to the last one's end, each shard's times are kept", async () => {
  const snn = await fashionVgg();
  const data = openDataset('fashion-mnist:test', 60);
  const opts = { T: [4], batchSize: 20, threads: 1, engine: 'steps' } as const;
  const shards: ShardFile[] = [];
  for (let index = 0; index < 2; index++)
    shards.push(await simulateShard(snn, data, { ...opts, shard: { index, count: 2 } }));
  for (const s of shards) {
    assert.ok(s.timing.simulation, 'each shard says when its simulation ran');
    const { setupSeconds = -1, stepSeconds = -1, seconds } = s.tally;
    assert.ok(setupSeconds >= 0 && stepSeconds > 0 && setupSeconds + stepSeconds <= seconds + 1e-9);
  }
  // Side by side (as two workers run): both 5 s long, ending together → 5 s on the wall clock, not 10.
  const at = (s: ShardFile, end: number, seconds: number): ShardFile => ({
    ...s,
    tally: { ...s.tally, seconds },
    timing: { ...s.timing, simulation: { start: end - 1000 * seconds, end } },
  });
  const end = Date.parse('2026-01-01T00:00:00Z');
  const side = mergeShards([
    { name: 'a', shard: at(shards[0], end, 5) },
    { name: 'b', shard: at(shards[1], end, 5) },
  ]);
  assert.equal(side.simulationSeconds, 5);
  // One after the other, 2 s apart: 3 + 2 + 4 s.
  const apart = mergeShards([
    { name: 'a', shard: at(shards[0], end, 3) },
    { name: 'b', shard: at(shards[1], end + 6000, 4) },
  ]);
  assert.equal(apart.simulationSeconds, 9);
  assert.deepEqual(
    apart.times?.workers?.map((w) => [w.shard, w.batches, w.seconds]),
    [
      [0, 1, 3],
      [1, 2, 4],
    ],
  );
  // Shard files without times (older ones): the longest shard, a lower bound, not the sum.
  const old = (s: ShardFile, seconds: number): ShardFile => {
    const { simulation: _, ...timing } = s.timing;
    return { ...s, tally: { ...s.tally, seconds }, timing };
  };
  assert.equal(
    mergeShards([
      { name: 'a', shard: old(shards[0], 5) },
      { name: 'b', shard: old(shards[1], 7) },
    ]).simulationSeconds,
    7,
  );
  // One shard: its own seconds, setup and time steps at the top level.
  const one = await simulateShard(snn, data, opts);
  const whole = mergeShards([{ name: 'the run', shard: one }]);
  assert.equal(whole.simulationSeconds, one.tally.seconds);
  assert.equal(whole.times?.setupSeconds, one.tally.setupSeconds);
  assert.equal(whole.times?.stepSeconds, one.tally.stepSeconds);
  assert.equal(whole.times?.workers, undefined);
});

test('simulate prints how long setup and the time steps took, per worker with --workers 2; the JSON keeps the same', () => {
  const snnFile = path.join(tmp, 'cnn.snn.onnx');
  const conv = spawnSync(
    process.execPath,
    [
      CLI,
      'convert',
      path.join(root, 'models', 'mnist-cnn.onnx'),
      '--data',
      'mnist:train',
      '--calib-limit',
      '200',
      '--iterations',
      '2',
      '--out',
      snnFile,
      '-q',
    ],
    { encoding: 'utf8', cwd: tmp },
  );
  assert.equal(conv.status, 0, conv.stderr);
  for (const workers of ['1', '2']) {
    const json = path.join(tmp, `w${workers}.json`);
    const r = spawnSync(
      process.execPath,
      [
        CLI,
        'simulate',
        snnFile,
        '--data',
        'mnist:test',
        '--limit',
        '200',
        '--batch',
        '50',
        '--T',
        '4',
        '--workers',
        workers,
        '--site-errors',
        '0',
        '--json',
        json,
        '-q',
      ],
      { encoding: 'utf8', cwd: tmp },
    );
    assert.equal(r.status, 0, r.stderr);
    const line = r.stdout.split('\n').find((l) => l.startsWith('time: ')) ?? '';
    const record = JSON.parse(fs.readFileSync(json, 'utf8')) as {
      simulationSeconds: number;
      times: {
        setupSeconds?: number;
        stepSeconds?: number;
        workers?: { setupSeconds: number; stepSeconds: number; seconds: number }[];
      };
    };
    if (workers === '1') {
      assert.match(
        line,
        /^time: simulation [\d.]+ s: setup [\d.]+ s \(graphs and sessions\), time steps [\d.]+ s, [\d.]+ ms per sample-step; the whole command [\d.]+ s$/,
      );
      assert.ok((record.times.setupSeconds ?? -1) >= 0 && (record.times.stepSeconds ?? -1) > 0);
    } else {
      assert.match(
        line,
        /^time: simulation [\d.]+ s on the wall clock in 2 workers \(each: setup [\d.–]+ s, time steps [\d.–]+ s\); the whole command [\d.]+ s$/,
      );
      const w = record.times.workers ?? [];
      assert.equal(w.length, 2);
      // Side by side: the wall clock is at most the sum of the workers' times (equal only if they ran one after the other).
      assert.ok(record.simulationSeconds <= w[0].seconds + w[1].seconds + 0.5);
      assert.ok(record.simulationSeconds >= Math.max(w[0].seconds, w[1].seconds) - 1e-6);
    }
  }
});
