/** The ANN's and the clipped ANN's (every ReLU replaced by clip(x, 0, θ)) scores on a data set. */
import type { Dataset } from '../data/dataset.js';
import { prefetchBatches, readBatch, sequentialBatches } from '../data/dataset.js';
import { Session, type RuntimeOptions } from '../ort/session.js';
import type { PreparedModel } from '../model/prepare.js';
import { instrument, quantFeeds, thetaFeeds } from '../calibrate/instrument.js';
import type { Thresholds } from '../calibrate/thresholds.js';
import {
  inferTask,
  makeScorer,
  scoresOf,
  type ModelOutputs,
  type Score,
  type ScorerState,
  type Task,
} from '../tasks/task.js';
import type { DetectionOptions } from '../tasks/heads.js';
import { TailRunner, modelTail } from './tail.js';

export interface ReferenceOptions extends RuntimeOptions {
  /** Samples per ONNX Runtime call. */
  readonly batchSize: number;
  /** Default: inferred from the data. */
  readonly task?: Task;
  /** Detection: the head and its thresholds (tasks/heads.ts). */
  readonly detection?: DetectionOptions;
  /** Only these batches (ascending indices into the data's consecutive batches): a shard. Default: all. */
  readonly batches?: readonly number[];
  /**
   * Also score the ceiling (docs/algorithm.md §4.1) at these numbers of levels L (L = T, or K·T
   * for groups of K): the ANN with every site's activation quantised as an IF neuron's best
   * L-level output. One window per entry. Default: none.
   */
  readonly ceiling?: readonly number[];
}

export interface References {
  readonly ann: Score;
  /** The ANN with its neuron sites clipped at θ: what the SNN converges to as T grows. */
  readonly clipped: Score;
  /** With per-sample normalisations frozen (PreparedModel.original): the ANN with them frozen; `ann` is the original. */
  readonly frozen?: Score;
  /** Per entry of `ceiling`: the ANN with its sites quantised to that many levels. */
  readonly ceiling?: readonly Score[];
}

export async function annReference(
  m: PreparedModel,
  data: Dataset,
  th: Thresholds,
  opts: ReferenceOptions,
): Promise<References> {
  const s = await annReferenceStates(m, data, th, opts);
  return {
    ann: scoresOf(s.ann)[0],
    clipped: scoresOf(s.clipped)[0],
    ...(s.substitute ? { frozen: scoresOf(s.substitute)[0] } : {}),
    ...(s.ceiling ? { ceiling: scoresOf(s.ceiling) } : {}),
  };
}

/** The references as scorer states (sufficient statistics), to merge with other shards' (tasks/task.ts). */
export async function annReferenceStates(
  m: PreparedModel,
  data: Dataset,
  th: Thresholds,
  opts: ReferenceOptions,
): Promise<{ ann: ScorerState; clipped: ScorerState; substitute?: ScorerState; ceiling?: ScorerState }> {
  const tail = await TailRunner.create(await modelTail(m, opts), m.plan.readout, opts);
  const task = inferTask(data, opts.task);
  const levels = opts.ceiling ?? [];
  const modes = levels.length > 0 ? (['ann', 'clip', 'quant'] as const) : (['ann', 'clip'] as const);
  const res: ScorerState[] = [];
  const all = sequentialBatches(data.size, opts.batchSize);
  const batches = opts.batches ? opts.batches.map((i) => all[i]) : all;
  let original: ScorerState | null = null;
  try {
    if (m.original) {
      // The original ANN, normalising every sample itself: its own outputs, no tail. Its
      // (label, prediction) pairs tell a wrong class order from a weak model.
      const g = m.original;
      const s = await Session.create(g, opts);
      const scorer = makeScorer(task, 1, data, undefined, { detection: opts.detection, pairs: true });
      const names = g.outputs.map((o) => o.name);
      try {
        for await (const b of prefetchBatches(data, batches.length, (i) => batches[i], m.normalize)) {
          const out = await s.run({ [m.inputName]: { dims: [b.n, ...m.inputShape], data: b.x } }, names);
          scorer.add(
            0,
            names.map((name) => ({ name, dims: out[name].dims, data: out[name].data })),
            b,
          );
        }
      } finally {
        await s.release();
      }
      original = scorer.state();
    }
    for (const mode of modes) {
      const inst = instrument(m, { mode, granularity: th.granularity });
      const s = await Session.create(inst.graph, opts);
      const windows = mode === 'quant' ? levels.length : 1;
      // The ANN's (label, prediction) pairs tell a wrong class order from a weak model.
      const scorer = makeScorer(task, windows, data, undefined, {
        detection: opts.detection,
        pairs: mode === 'ann' && !m.original,
      });
      // The ceiling's graph takes L as an input: one session serves every L (bench/ceiling.ts).
      const feeds =
        mode === 'quant' ? levels.map((L) => quantFeeds(inst, th, L)) : [mode === 'clip' ? thetaFeeds(inst, th) : {}];
      try {
        for await (const b of prefetchBatches(data, batches.length, (i) => batches[i], m.normalize)) {
          const input = { [m.inputName]: { dims: [b.n, ...m.inputShape], data: b.x } };
          for (const [w, f] of feeds.entries()) {
            const readout = (await s.run({ ...input, ...f }, [inst.readout]))[inst.readout];
            scorer.add(w, await tail.apply(readout.data, readout.dims), b);
          }
        }
      } finally {
        await s.release();
      }
      res.push(scorer.state());
    }
  } finally {
    await tail.release();
  }
  const ceiling = res[2] ? { ceiling: res[2] } : {};
  return original
    ? { ann: original, clipped: res[1], substitute: res[0], ...ceiling }
    : { ann: res[0], clipped: res[1], ...ceiling };
}

/** The ANN's outputs (after its tail, as the scorer sees them) for a few samples, in one call: the report's pictures. */
export async function annOutputs(
  m: PreparedModel,
  data: Dataset,
  indices: readonly number[],
  opts: RuntimeOptions,
): Promise<ModelOutputs> {
  const tail = await TailRunner.create(await modelTail(m, opts), m.plan.readout, opts);
  const inst = instrument(m, { mode: 'ann', granularity: 'layer' });
  const s = await Session.create(inst.graph, opts);
  try {
    // One sample per call: each sample's outputs do not depend on which others are asked for
    // (a shard's pictures and the whole run's are the same).
    const outs: ModelOutputs[] = [];
    for (const i of indices) {
      const b = await readBatch(data, [i], m.normalize);
      const readout = (await s.run({ [m.inputName]: { dims: [1, ...m.inputShape], data: b.x } }, [inst.readout]))[
        inst.readout
      ];
      outs.push(await tail.apply(readout.data, readout.dims));
    }
    return tail.outputs.map((name, j) => {
      const per = outs.length ? outs[0][j].data.length : 0;
      const data32 = new Float32Array(per * outs.length);
      outs.forEach((o, k) => data32.set(o[j].data, k * per));
      return { name, dims: [outs.length, ...(outs.length ? outs[0][j].dims.slice(1) : [])], data: data32 };
    });
  } finally {
    await s.release();
    await tail.release();
  }
}
