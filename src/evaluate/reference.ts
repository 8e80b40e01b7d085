/** The ANN's and the clipped ANN's (every ReLU replaced by clip(x, 0, θ)) scores on a data set. */
import type { Dataset } from '../data/dataset.js';
import { prefetchBatches, readBatch, sequentialBatches } from '../data/dataset.js';
import { Session, type Array32, type RuntimeOptions } from '../ort/session.js';
import type { PreparedModel } from '../model/prepare.js';
import { instrument, thetaFeeds } from '../calibrate/instrument.js';
import type { Thresholds } from '../calibrate/thresholds.js';
import { inferTask, makeScorer, type Score, type Task } from '../tasks/task.js';
import { TailRunner, modelTail } from './tail.js';

export interface ReferenceOptions extends RuntimeOptions {
  /** Samples per ONNX Runtime call. */
  readonly batchSize: number;
  /** Default: inferred from the data. */
  readonly task?: Task;
}

export interface References {
  readonly ann: Score;
  /** The ANN with its neuron sites clipped at θ: what the SNN converges to as T grows. */
  readonly clipped: Score;
}

export async function annReference(m: PreparedModel, data: Dataset, th: Thresholds, opts: ReferenceOptions): Promise<References> {
  const tail = await TailRunner.create(await modelTail(m, opts), m.plan.readout, opts);
  const task = inferTask(data, opts.task);
  const res: Score[] = [];
  try {
    for (const mode of ['ann', 'clip'] as const) {
      const inst = instrument(m, { mode, granularity: th.granularity });
      const s = await Session.create(inst.graph, opts);
      const scorer = makeScorer(task, 1, data);
      try {
        const batches = sequentialBatches(data.size, opts.batchSize);
        for await (const b of prefetchBatches(data, batches.length, (i) => batches[i], m.normalize)) {
          const feeds = { [m.inputName]: { dims: [b.n, ...m.inputShape], data: b.x }, ...(mode === 'clip' ? thetaFeeds(inst, th) : {}) };
          const readout = (await s.run(feeds, [inst.readout]))[inst.readout];
          const out = await tail.apply(readout.data, readout.dims);
          scorer.add(0, out.data, out.dims, b);
        }
      } finally {
        await s.release();
      }
      res.push(scorer.scores()[0]);
    }
  } finally {
    await tail.release();
  }
  return { ann: res[0], clipped: res[1] };
}

/** The ANN's outputs (after its tail, as the scorer sees them) for a few samples, in one call: the report's pictures. */
export async function annOutputs(m: PreparedModel, data: Dataset, indices: readonly number[], opts: RuntimeOptions): Promise<Array32> {
  const tail = await TailRunner.create(await modelTail(m, opts), m.plan.readout, opts);
  const inst = instrument(m, { mode: 'ann', granularity: 'layer' });
  const s = await Session.create(inst.graph, opts);
  try {
    const b = await readBatch(data, indices, m.normalize);
    const readout = (await s.run({ [m.inputName]: { dims: [b.n, ...m.inputShape], data: b.x } }, [inst.readout]))[inst.readout];
    return await tail.apply(readout.data, readout.dims);
  } finally {
    await s.release();
    await tail.release();
  }
}
