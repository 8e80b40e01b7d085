/**
 * Real exports: convert every ONNX file in a folder (from tools/export_torchvision.py) and
 * simulate a few random inputs with MaxNorm thresholds; print a Markdown table.
 *
 *   /usr/bin/python3 tools/export_torchvision.py out/torchvision
 *   node dist/bench/real-exports.js out/torchvision [--T 256] [--samples 1]
 *
 * Max |SNN − clipped ANN| is over the readout averaged over steps 1..T; "rel." divides it by
 * the largest |clipped ANN readout|.
 */
import './args.js'; // --help prints the header above and stops
import fs from 'node:fs';
import path from 'node:path';
import { loadModel } from '../src/model/load.js';
import { prepareModel } from '../src/model/prepare.js';
import { calibrate } from '../src/calibrate/calibrate.js';
import { thetaFeeds } from '../src/calibrate/instrument.js';
import { instrument } from '../src/calibrate/instrument.js';
import { buildSnn } from '../src/snn/build.js';
import { simulateBatches } from '../src/runtime/batches.js';
import { Session } from '../src/ort/session.js';
import { SpikeportError } from '../src/errors.js';
import { memoryDataset, type Dataset } from '../src/data/dataset.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

const dir = process.argv[2] ?? 'out/torchvision';
const T = Number(arg('T', '256'));
const n = Number(arg('samples', '1'));
const only = arg('only', '');
const files = fs
  .readdirSync(dir)
  .filter((f) => f.endsWith('.onnx') && (!only || f.startsWith(only)))
  .sort();
const rows: string[][] = [];

for (const f of files) {
  const t0 = performance.now();
  const loaded = loadModel(path.join(dir, f));
  const row = [f.replace(/\.onnx$/, ''), String(loaded.graph.nodes.length)];
  try {
    const m = await prepareModel(loaded);
    const per = m.inputShape.reduce((a, b) => a * b, 1);
    const x = Float32Array.from({ length: n * per }, (_, i) => ((i * 2654435761) % 1000) / 1000);
    const data: Dataset = memoryDataset({
      name: 'random',
      size: n,
      sampleShape: m.inputShape,
      x,
      scale: 1,
      labels: null,
    });
    const cal = await calibrate(m, data, { method: 'maxnorm', iterations: 1, batchSize: n });
    const snn = buildSnn(m, cal.thresholds);
    const convertSeconds = (performance.now() - t0) / 1000;
    const inst = instrument(m, {
      mode: 'clip',
      granularity: cal.thresholds.granularity,
    });
    const s = await Session.create(inst.graph);
    const ref = (
      await s.run({ [m.inputName]: { dims: [n, ...m.inputShape], data: x }, ...thetaFeeds(inst, cal.thresholds) }, [
        inst.readout,
      ])
    )[inst.readout].data;
    await s.release();
    const sum = new Float64Array(ref.length);
    const sim = await simulateBatches(
      snn.graph,
      snn.spec,
      data,
      { steps: T, batchSize: n, normalize: null, checkpoints: [T] },
      (b) => {
        (b.sums.get(T) as Float64Array).forEach((v, j) => {
          sum[j] += v;
        });
      },
    );
    let maxDiff = 0;
    let maxRef = 0;
    for (let j = 0; j < ref.length; j++) {
      maxDiff = Math.max(maxDiff, Math.abs(sum[j] / T - ref[j]));
      maxRef = Math.max(maxRef, Math.abs(ref[j]));
    }
    row.push(
      String(m.plan.sites.length),
      convertSeconds.toFixed(1),
      'converted',
      maxDiff.toExponential(2),
      (maxDiff / maxRef).toExponential(2),
      sim.seconds.toFixed(1),
    );
  } catch (e) {
    if (!(e instanceof SpikeportError)) throw e;
    row.push('-', ((performance.now() - t0) / 1000).toFixed(1), `refused: ${e.message}`, '-', '-', '-');
  }
  rows.push(row);
  process.stderr.write(`${row.join(' | ')}\n`);
}

const header = [
  'model',
  'nodes',
  'neuron sites',
  'convert s',
  'result',
  `max abs SNN−clipped ANN (T=${T})`,
  'rel.',
  `simulate s (${n} × ${T} steps)`,
];
process.stdout.write(
  [
    `| ${header.join(' | ')} |`,
    `|${header.map(() => '---').join('|')}|`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n') + '\n',
);
