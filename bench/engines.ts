/**
 * The simulation engines against each other on one model (issue 14): time per image-step of
 * `steps`, `fused` and `auto` (the default: times both on the first batches, keeps the faster), each ÷ one ANN pass per image, in one run — wall time, and
 * the process's CPU time (threads spinning count as work; less sensitive to other jobs on a
 * shared machine) — and whether
 * they agree (readouts bit for bit, spike and SOP counts per step).
 *
 *   node dist/bench/engines.js fashion-vgg [--images 200] [--T 32] [--batch 100] [--repeat 3]
 *   node dist/bench/engines.js out/torchvision/resnet18-224.onnx --images 16 --batch 16 --T 16
 *   node dist/bench/engines.js fashion-vgg --engines steps,fused,auto   # what auto chose, in brackets
 *
 * A bundled model is converted with CLTB on 1000 training images; an ONNX path (random
 * weights, tools/export_torchvision.py) with MaxNorm on random inputs, simulated on random inputs.
 */
import fs from 'node:fs';
import path from 'node:path';
import { loadModel } from '../src/model/load.js';
import { prepareModel } from '../src/model/prepare.js';
import { instrument } from '../src/calibrate/instrument.js';
import { simulateBatches } from '../src/runtime/batches.js';
import { type Engine } from '../src/runtime/engines.js';
import { Session, defaultThreads } from '../src/ort/session.js';
import { memoryDataset, readBatch, sequentialBatches, type Dataset } from '../src/data/dataset.js';
import { limitDataset, openDataset } from '../src/data/sources.js';
import { convert } from '../src/api/convert.js';
import { fusedPlan } from '../src/runtime/fused.js';
import { ROOT, argv, arg } from './args.js';

const model = argv[0] ?? 'fashion-vgg';
const images = Number(arg('images', '200'));
const T = Number(arg('T', '32'));
const batch = Number(arg('batch', '100'));
const repeat = Number(arg('repeat', '3'));
const threads = Number(arg('threads', String(defaultThreads())));
// An engine, optionally with its steps per call: steps, fused, fused@1 …
const engines = arg('engines', 'steps,fused').split(',');

const bundled = !model.endsWith('.onnx');
const file = bundled ? path.join(ROOT, 'models', `${model}.onnx`) : model;
const loaded = loadModel(file);
const m = await prepareModel(loaded, { threads });
let train: Dataset;
let test: Dataset;
if (bundled) {
  const manifest = JSON.parse(fs.readFileSync(file.replace(/\.onnx$/, '.json'), 'utf8')) as { dataset: string };
  train = limitDataset(openDataset(`${manifest.dataset}:train`), 1000);
  test = limitDataset(openDataset(`${manifest.dataset}:test`), images);
} else {
  const per = m.inputShape.reduce((a, b) => a * b, 1);
  const random = (size: number, seed: number): Dataset =>
    memoryDataset({
      name: 'random',
      size,
      sampleShape: m.inputShape,
      scale: 1,
      labels: null,
      x: Float32Array.from({ length: size * per }, (_, i) => (((i + seed) * 2654435761) % 1000) / 1000),
    });
  train = random(Math.min(batch, 16), 1);
  test = random(images, 7);
}
const snn = await convert(
  loaded,
  train,
  bundled
    ? { method: 'cltb', iterations: Math.ceil(train.size / 100), batchSize: 100, threads, shuffle: false }
    : { method: 'maxnorm', iterations: 1, batchSize: train.size, threads },
);
const norm = bundled ? m.normalize : null;

// One ANN pass over the test images, batch as the simulation.
const inst = instrument(m, { mode: 'ann', granularity: 'channel' });
const ann = await Session.create(inst.graph, { threads });
let annCpu = 0;
const annPass = async (): Promise<number> => {
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  for (const idx of sequentialBatches(test.size, batch)) {
    const b = await readBatch(test, idx, norm);
    await ann.run({ [m.inputName]: { dims: [b.n, ...m.inputShape], data: b.x } }, [inst.readout]);
  }
  const c = process.cpuUsage(c0);
  annCpu = (c.user + c.system) / 1e6 / test.size;
  return (performance.now() - t0) / 1000 / test.size;
};
await annPass();

interface Result {
  seconds: number;
  cpu: number;
  readouts: Float32Array[];
  spikes: readonly Float64Array[];
  sops: readonly Float64Array[];
  engines: string;
}
const run = async (spec: string): Promise<Result> => {
  const [engine, unroll] = spec.split('@');
  const readouts: Float32Array[] = [];
  const c0 = process.cpuUsage();
  const stats = await simulateBatches(
    snn.graph,
    snn.spec,
    test,
    {
      steps: T,
      batchSize: batch,
      normalize: norm,
      threads,
      engine: engine as Engine,
      ...(unroll ? { unroll: Number(unroll) } : {}),
    },
    (b) => {
      readouts.push(b.readouts as Float32Array);
    },
  );
  const c = process.cpuUsage(c0);
  // Which engine ran how many batches (what `auto` chose).
  const ran = Object.entries(stats.engines)
    .map(([k, v]) => `${k} ${v}`)
    .join(' + ');
  return {
    seconds: stats.seconds,
    cpu: (c.user + c.system) / 1e6,
    readouts,
    spikes: stats.spikesPerStep,
    sops: stats.sopsPerStep,
    engines: ran,
  };
};

const plan = fusedPlan(snn.graph, snn.spec);
if (!plan) process.stdout.write('note: the fused engine does not know this step graph (it runs as steps)\n');
else
  process.stdout.write(
    `fused: ${plan.stages.stages.filter((s) => s.graph).length} ONNX Runtime stages, ${plan.stages.stages.reduce((a, s) => a + s.updates.length, 0)} state updates\n`,
  );
process.stdout.write(
  `${path.basename(file)}: ${test.size} images × ${T} steps, batch ${batch}, ${threads} threads; ratios are image-step ÷ ANN image, measured in the same round\n`,
);
const first = new Map<string, Result>();
for (let r = 0; r < repeat; r++) {
  const annSec = await annPass();
  const cells: string[] = [`ANN ${(annSec * 1e3).toFixed(2)} ms/image`];
  const cpuCells: string[] = [];
  for (const e of engines) {
    const res = await run(e);
    if (!first.has(e)) first.set(e, res);
    cells.push(
      `${e} ${(res.seconds / (test.size * T) / annSec).toFixed(2)}${e.startsWith('auto') ? ` (${res.engines} batches)` : ''}`,
    );
    cpuCells.push(`${e} ${(res.cpu / (test.size * T) / annCpu).toFixed(2)}`);
  }
  process.stdout.write(`round ${r + 1}: wall ${cells.join(', ')}; CPU time ${cpuCells.join(', ')}\n`);
}
await ann.release();

// Agreement with the first engine.
const base = first.get(engines[0]) as Result;
for (const e of engines.slice(1)) {
  const o = first.get(e) as Result;
  let diff = 0;
  let worst = 0;
  base.readouts.forEach((a, i) =>
    a.forEach((v, j) => {
      if (v !== o.readouts[i][j]) {
        diff++;
        worst = Math.max(worst, Math.abs(v - o.readouts[i][j]));
      }
    }),
  );
  const cmp = (a: readonly Float64Array[], b: readonly Float64Array[]): string => {
    let same = 0;
    let total = 0;
    let rel = 0;
    a.forEach((x, i) =>
      x.forEach((v, t) => {
        total++;
        if (v === b[i][t]) same++;
        else rel = Math.max(rel, Math.abs(v - b[i][t]) / Math.max(1, Math.abs(v)));
      }),
    );
    return `${same}/${total} equal (max rel. diff ${rel.toExponential(1)})`;
  };
  process.stdout.write(
    `${e} vs ${engines[0]}: readout values differing ${diff} (max ${worst}); spike counts ${cmp(base.spikes, o.spikes)}; SOP counts ${cmp(base.sops, o.sops)}\n`,
  );
}
