/**
 * The clipped ANN (every ReLU replaced by clip(x, 0, θ)) is what the SNN converges to as T
 * grows. This prints its top-1 for several CLTB iteration counts (the method's regulariser),
 * next to the ANN, on a bundled model's full test set. No simulation: ANN inference only.
 *
 *   node dist/bench/clip-sweep.js [--model fashion-vgg] [--iterations 25,50,100,200,400,800]
 */
import './args.js'; // --help prints the header above and stops
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadModel } from '../src/model/load.js';
import { prepareModel } from '../src/model/prepare.js';
import { calibrate } from '../src/calibrate/calibrate.js';
import type { Method } from '../src/calibrate/methods.js';
import { annReference } from '../src/evaluate/reference.js';
import { openDataset } from '../src/data/sources.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}
const modelName = arg('model', 'fashion-vgg');
const method = arg('method', 'cltb') as Method;
const its = arg('iterations', '25,50,100,200,400,800').split(',').map(Number);
const ds = modelName.startsWith('fashion') ? 'fashion-mnist' : 'mnist';
const m = await prepareModel(loadModel(path.join(ROOT, 'models', `${modelName}.onnx`)));
const train = openDataset(`${ds}:train`);
const test = openDataset(`${ds}:test`);
const lines = ['| iterations | clipped ANN top-1 % | ANN top-1 % |', '|---|---|---|'];
for (const iterations of its) {
  const cal = await calibrate(m, train, { method, iterations, batchSize: 100 });
  const ref = await annReference(m, test, cal.thresholds, { batchSize: 500 });
  lines.push(`| ${iterations} | ${(100 * ref.clipped.metric).toFixed(2)} | ${(100 * ref.ann.metric).toFixed(2)} |`);
  process.stderr.write(`${lines[lines.length - 1]}\n`);
}
process.stdout.write(`${modelName}, ${method}, batch 100, ${test.size} test images\n\n${lines.join('\n')}\n`);
