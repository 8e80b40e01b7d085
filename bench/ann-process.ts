/**
 * The ANN's inference over calibration-sized data as a whole process: what a user's own script
 * pays to run the ANN over the images `convert` calibrates on (start Node, load ONNX Runtime and
 * the model, read and normalise the data, one session, every batch). bench/whole-run.ts runs it
 * as a child next to `convert`, so that whole process compares with whole process.
 *
 *   node dist/bench/ann-process.js MODEL.onnx DATA_SPEC [--images 10000] [--batch 100]
 */
import { loadModel } from '../src/model/load.js';
import { prepareModel } from '../src/model/prepare.js';
import { instrument } from '../src/calibrate/instrument.js';
import { Session, defaultThreads } from '../src/ort/session.js';
import { limitDataset, openDataset } from '../src/data/sources.js';
import { prefetchBatches, sequentialBatches } from '../src/data/dataset.js';
import { argv, arg } from './args.js';

const threads = defaultThreads();
const m = await prepareModel(loadModel(argv[0]), { threads });
const data = limitDataset(openDataset(argv[1]), Number(arg('images', '10000')));
const batches = sequentialBatches(data.size, Number(arg('batch', '100')));
const inst = instrument(m, { mode: 'ann', granularity: 'channel' });
const s = await Session.create(inst.graph, { threads });
for await (const b of prefetchBatches(data, batches.length, (i) => batches[i], m.normalize))
  await s.run({ [m.inputName]: { dims: [b.n, ...m.inputShape], data: b.x } }, [inst.readout]);
await s.release();
