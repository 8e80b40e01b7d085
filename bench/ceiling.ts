/**
 * The ceiling (docs/algorithm.md §4.1) for many T: one quant-mode graph with the number of
 * levels L as an input (what spikeport runs) against one graph per L with everything baked in as
 * constants (ONNX Runtime may fold them). Both score the same outputs; this prints seconds and
 * their ratio, and checks that the readouts agree.
 *
 *   node dist/bench/ceiling.js [--model models/fashion-vgg.onnx] [--data fashion-mnist:train] [--samples 1000] [--T 32]
 */
import path from 'node:path';
import { arg, ROOT } from './args.js';
import { loadModel } from '../src/model/load.js';
import { prepareModel } from '../src/model/prepare.js';
import { openDataset, readBatch } from '../src/advanced.js';
import type { Batch } from '../src/data/dataset.js';
import { calibrate } from '../src/calibrate/calibrate.js';
import { instrument, quantFeeds } from '../src/calibrate/instrument.js';
import { Session, type Array32 } from '../src/ort/session.js';
import type { Graph } from '../src/graph/ir.js';

const model = arg('model', path.join(ROOT, 'models', 'fashion-vgg.onnx'));
const data = arg('data', 'fashion-mnist:train');
const samples = Number(arg('samples', '1000'));
const Tmax = Number(arg('T', '32'));
const batch = 100;

const m = await prepareModel(loadModel(model), {});
const calib = openDataset(data, samples);
const th = (await calibrate(m, calib, { iterations: 20 })).thresholds;
const inst = instrument(m, { mode: 'quant', granularity: th.granularity });
const batches: Batch[] = [];
for (let i = 0; i < samples; i += batch)
  batches.push(
    await readBatch(
      calib,
      Array.from({ length: Math.min(batch, samples - i) }, (_, k) => i + k),
      m.normalize,
    ),
  );
const input = (b: Batch): Record<string, Array32> => ({
  [m.inputName]: { dims: [b.n, ...m.inputShape], data: b.x },
});
const Ls = Array.from({ length: Tmax }, (_, i) => i + 1);

/** The graph with the feeds of L levels as initializers. */
function baked(L: number): Graph {
  const feeds = quantFeeds(inst, th, L);
  const initializers = new Map(inst.graph.initializers);
  for (const [name, v] of Object.entries(feeds))
    initializers.set(name, { dims: v.dims, dtype: 'float32', data: Float32Array.from(v.data) });
  return { ...inst.graph, initializers, inputs: inst.graph.inputs.filter((i) => !(i.name in feeds)) };
}

const sums = { input: 0, baked: 0 };
let worst = 0;
let differ = 0;
let compared = 0;
for (let round = 0; round < 2; round++) {
  // One session, L fed.
  let t0 = performance.now();
  const s = await Session.create(inst.graph, { threads: 2 });
  const first: Float32Array[] = [];
  for (const L of Ls) {
    const f = quantFeeds(inst, th, L);
    for (const b of batches) first.push((await s.run({ ...input(b), ...f }, [inst.readout]))[inst.readout].data);
  }
  await s.release();
  const tInput = (performance.now() - t0) / 1000;
  // One session per L, L baked in.
  t0 = performance.now();
  let k = 0;
  for (const L of Ls) {
    const sl = await Session.create(baked(L), { threads: 2 });
    for (const b of batches) {
      const r = (await sl.run(input(b), [inst.readout]))[inst.readout].data;
      const a = first[k++];
      for (let j = 0; j < r.length; j++) worst = Math.max(worst, Math.abs(r[j] - a[j]));
      // Samples whose readout differs at all (a level rounded the other way in some site).
      const per = r.length / b.n;
      for (let i = 0; i < b.n; i++) {
        compared++;
        for (let j = i * per; j < (i + 1) * per; j++)
          if (Math.abs(r[j] - a[j]) > 1e-4 * (1 + Math.abs(a[j]))) {
            differ++;
            break;
          }
      }
    }
    await sl.release();
  }
  const tBaked = (performance.now() - t0) / 1000;
  if (round > 0) {
    sums.input += tInput;
    sums.baked += tBaked;
  }
}
console.log(
  `${path.basename(model)}, ${samples} samples, L = 1..${Tmax}: L as an input ${sums.input.toFixed(2)} s, one graph per L ${sums.baked.toFixed(2)} s (ratio ${(sums.baked / sums.input).toFixed(2)}); largest readout difference ${worst.toExponential(2)}, samples whose readout differs ${differ} of ${compared} (a level rounded the other way: constants folded into the layers round differently)`,
);
