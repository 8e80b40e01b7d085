/**
 * Benchmarks (not tests): ratios measured in one run on a bundled model.
 *
 *   node dist/bench/run.js [--model mnist-cnn|fashion-vgg] [--samples N] [--batch B] [--steps T] [--threads K]
 *
 * - calibration (CLTB, N samples) ÷ ANN inference on the same N samples (the paper's
 *   "inference-scale" claim);
 * - SNN time per image-step ÷ ANN time per image;
 * - the default engine (the one-step graph called per step) against one ONNX Loop call per batch.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadModel, prepareModel } from '../src/model.js';
import { calibrate, siteChannels, siteRanks } from '../src/calibrate/methods.js';
import { instrument } from '../src/calibrate/instrument.js';
import { buildSnn } from '../src/snn/build.js';
import { simulate } from '../src/runtime/simulate.js';
import { Session, defaultThreads } from '../src/runtime/session.js';
import { openDataset, limitDataset } from '../src/data/sources.js';
import { batchesOf, makeBatch, sampleOrder } from '../src/data/dataset.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

const modelName = arg('model', 'mnist-cnn');
const samples = Number(arg('samples', '2000'));
const batch = Number(arg('batch', '100'));
const steps = Number(arg('steps', '32'));
const threads = Number(arg('threads', String(defaultThreads())));
const dataset = modelName.startsWith('fashion') ? 'fashion-mnist' : 'mnist';

const loaded = loadModel(path.join(ROOT, 'models', `${modelName}.onnx`));
const m = await prepareModel(loaded, { threads });
const train = openDataset(`${dataset}:train`);
const iterations = Math.ceil(samples / batch);
const order = sampleOrder(train.size, 0, true);
const batches = [...batchesOf(order, batch, iterations)];

// ANN inference on the same batches (session creation included, as in calibration).
const inst = instrument(m.graph, m.plan, siteChannels(m), { mode: 'relu', granularity: 'channel', ranks: siteRanks(m) });
async function annPass(): Promise<number> {
  const t0 = performance.now();
  const s = await Session.create(inst.graph, { threads });
  for (const idx of batches) {
    const b = makeBatch(train, idx, m.normalize);
    await s.run({ [m.inputName]: { dims: [b.n, ...m.inputShape], data: b.x } }, [inst.readout]);
  }
  await s.release();
  return (performance.now() - t0) / 1000;
}
await annPass(); // warm-up
const annSeconds = await annPass();

const t0 = performance.now();
const cal = await calibrate(m, train, { method: 'cltb', iterations, batchSize: batch, threads });
const calSeconds = (performance.now() - t0) / 1000;

// SNN: `steps` steps over `batch`-sized batches of test data.
const test = limitDataset(openDataset(`${dataset}:test`), Math.min(samples, 1000));
const snn = buildSnn(m, cal.thresholds);
// The default engine: the one-step graph called from JS at every step.
const sim = await simulate(snn.graph, snn.spec, test, { steps, batchSize: batch, normalize: m.normalize, threads }, () => {});
// The alternative: all steps in one ONNX Loop call per batch (states stay in ONNX Runtime).
const loopSim = await simulate(snn.graph, snn.spec, test, { steps, batchSize: batch, normalize: m.normalize, threads, engine: 'loop' }, () => {});
const annPerImage = annSeconds / (iterations * batch);
const snnPerImageStep = sim.seconds / (test.size * steps);

const rows = [
  ['model', modelName],
  ['threads', String(threads)],
  ['calibration samples', `${iterations * batch} (${iterations} × ${batch})`],
  ['ANN inference, same samples', `${annSeconds.toFixed(3)} s`],
  ['CLTB calibration (incl. d̂)', `${calSeconds.toFixed(3)} s`],
  ['calibration ÷ ANN inference', (calSeconds / annSeconds).toFixed(3)],
  ['ANN time per image', `${(annPerImage * 1e6).toFixed(1)} µs`],
  ['SNN time per image-step', `${(snnPerImageStep * 1e6).toFixed(1)} µs (${test.size} images × ${steps} steps)`],
  ['SNN per image-step ÷ ANN per image', (snnPerImageStep / annPerImage).toFixed(3)],
  ['SNN as one ONNX Loop call per batch', `${(loopSim.seconds / (test.size * steps) * 1e6).toFixed(1)} µs per image-step (${(loopSim.seconds / sim.seconds).toFixed(3)} × per step)`],
];
const w = Math.max(...rows.map((r) => r[0].length));
process.stdout.write(rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n') + '\n');
