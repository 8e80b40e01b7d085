/**
 * Peak memory of one simulation, for bench/all.ts (run in a child so each T gets a fresh process):
 *
 *   node dist/bench/memory.js MODEL T SAMPLES THREADS   → prints max RSS in MB
 *
 * Thresholds: CLTB, 10 iterations (the cost does not depend on them). As `simulate` does, only the
 * running sums of the readout at the window end are kept, so memory must not grow with T.
 */
import './args.js'; // --help prints the header above and stops
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadModel } from '../src/model/load.js';
import { prepareModel } from '../src/model/prepare.js';
import { calibrate } from '../src/calibrate/calibrate.js';
import { buildSnn } from '../src/snn/build.js';
import { simulateBatches } from '../src/runtime/batches.js';
import { openDataset, limitDataset } from '../src/data/sources.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const [name, T, samples, threads] = process.argv.slice(2);
const file = path.join(ROOT, 'models', `${name}.onnx`);
const dataset = (JSON.parse(fs.readFileSync(file.replace(/\.onnx$/, '.json'), 'utf8')) as { dataset: string }).dataset;
const m = await prepareModel(loadModel(file), { threads: Number(threads) });
const cal = await calibrate(m, openDataset(`${dataset}:train`), {
  method: 'cltb',
  iterations: 10,
  batchSize: 100,
  threads: Number(threads),
});
const snn = buildSnn(m, cal.thresholds);
await simulateBatches(
  snn.graph,
  snn.spec,
  limitDataset(openDataset(`${dataset}:test`), Number(samples)),
  { steps: Number(T), batchSize: 100, normalize: m.normalize, threads: Number(threads), checkpoints: [Number(T)] },
  () => {},
);
process.stdout.write(`${(process.resourceUsage().maxRSS / 1024).toFixed(0)}\n`);
