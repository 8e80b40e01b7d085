/**
 * Where the ANN references of a `simulate` go: per graph (the ANN, the clipped ANN, the ceiling's
 * quantised ANN), session creation, the first batch and the other batches, CPU time of this
 * process (wall in brackets), against the ANN pass alone.
 *
 *   node dist/bench/reference-parts.js SNN.onnx --data npz:FILE [--batch 16] [--rounds 2]
 */
import { loadSnn } from '../src/snn/network.js';
import { openDataset } from '../src/data/sources.js';
import { readBatch, sequentialBatches } from '../src/data/dataset.js';
import { instrument, quantFeeds, thetaFeeds } from '../src/calibrate/instrument.js';
import { Session, defaultThreads } from '../src/ort/session.js';
import { annReferenceStates } from '../src/evaluate/reference.js';
import { argv, arg } from './args.js';

const threads = defaultThreads();
const batch = Number(arg('batch', '16'));
const rounds = Number(arg('rounds', '2'));
const snn = await loadSnn(argv[0], { threads });
const m = snn.source;
if (!m) throw new Error('no source ANN next to the SNN');
const data = openDataset(arg('data', ''));
const th = snn.thresholds();
const batches = await Promise.all(sequentialBatches(data.size, batch).map((i) => readBatch(data, i, m.normalize)));
const clock = (): [number, number] => {
  const c = process.cpuUsage();
  return [(c.user + c.system) / 1e6, performance.now() / 1000];
};
const since = (t: [number, number]): string => {
  const n = clock();
  return `${(n[0] - t[0]).toFixed(2)} (${(n[1] - t[1]).toFixed(2)})`;
};
process.stdout.write(
  `${argv[0]}: ${data.size} samples, batch ${batch}, ${threads} threads; CPU s (wall s)\n\n| round | graph | create | first batch | other batches |\n|---|---|---|---|---|\n`,
);
for (let r = 1; r <= rounds; r++) {
  for (const mode of ['ann', 'clip', 'quant'] as const) {
    const inst = instrument(m, { mode, granularity: th.granularity });
    let t = clock();
    const s = await Session.create(inst.graph, { threads });
    const create = since(t);
    const f = mode === 'quant' ? quantFeeds(inst, th, 8) : mode === 'clip' ? thetaFeeds(inst, th) : {};
    const cells: string[] = [];
    for (const [k, b] of batches.entries()) {
      if (k <= 1) t = clock();
      await s.run({ [m.inputName]: { dims: [b.n, ...m.inputShape], data: b.x }, ...f }, [inst.readout]);
      if (k === 0) cells.push(since(t));
    }
    cells.push(since(t));
    await s.release();
    process.stdout.write(`| ${r} | ${mode} | ${create} | ${cells.join(' | ')} |\n`);
  }
  const t = clock();
  await annReferenceStates(m, data, th, { batchSize: batch, threads, ceiling: [8] });
  process.stdout.write(`| ${r} | annReferenceStates (all) | | | ${since(t)} |\n`);
}
