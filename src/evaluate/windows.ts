/**
 * Delayed evaluation (docs/algorithm.md §5): the readout averaged over a window of steps
 * [d+1, T], every window from one simulation of the longest T, scored by the task.
 */
import type { Dataset } from '../data/dataset.js';
import type { RuntimeOptions } from '../ort/session.js';
import { numel } from '../graph/ir.js';
import { checkDataFits } from '../model/prepare.js';
import type { Snn } from '../snn/network.js';
import { DEFAULT_ENGINE, type Engine, type SimulationStats, type StepBatch } from '../runtime/engines.js';
import { simulateBatches } from '../runtime/batches.js';
import { inferTask, makeScorer, type ModelOutputs, type Score, type Task } from '../tasks/task.js';
import type { DetectionOptions } from '../tasks/heads.js';
import type { OnProgress } from '../progress.js';
import { checkInteger, optionError } from '../errors.js';
import { TailRunner } from './tail.js';
import { continueTally, statsOf, tallyOf, type Tally } from './tally.js';

/** Steps [delay+1, T] of the readout. */
export interface Window {
  readonly T: number;
  readonly delay: number;
}

/** Per-window averages of a batch's readouts, each [n, size], from running sums. */
export function windowAverages(b: StepBatch, windows: readonly Window[]): Float32Array[] {
  const { n, size, steps } = b;
  const stride = n * size;
  if (!b.readouts) {
    const zero = new Float64Array(stride);
    const at = (t: number): Float64Array => {
      const v = t === 0 ? zero : b.sums.get(t);
      if (!v) throw new Error(`no running sum kept at step ${t}`);
      return v;
    };
    return windows.map((w) => {
      if (w.T > steps || w.delay >= w.T || w.delay < 0)
        throw new Error(`window [${w.delay + 1}, ${w.T}] does not fit ${steps} steps`);
      const hi = at(w.T);
      const lo = at(w.delay);
      const inv = 1 / (w.T - w.delay);
      return Float32Array.from(hi, (v, j) => (v - lo[j]) * inv);
    });
  }
  const readouts = b.readouts;
  const cum = new Float64Array((steps + 1) * stride); // cum[t] = sum of steps 1..t
  for (let t = 0; t < steps; t++) {
    const src = t * stride; // readout of step t+1; cum[t] starts at the same offset
    const dst = (t + 1) * stride;
    for (let j = 0; j < stride; j++) cum[dst + j] = cum[src + j] + readouts[src + j];
  }
  return windows.map((w) => {
    if (w.T > steps || w.delay >= w.T || w.delay < 0)
      throw new Error(`window [${w.delay + 1}, ${w.T}] does not fit ${steps} steps`);
    const out = new Float32Array(stride);
    const inv = 1 / (w.T - w.delay);
    const hi = w.T * stride;
    const lo = w.delay * stride;
    for (let j = 0; j < stride; j++) out[j] = (cum[hi + j] - cum[lo + j]) * inv;
    return out;
  });
}

/** The delay used at T: min(d̂, ⌊T/2⌋) by default (never more than half the steps), or the caller's d (never ≥ T). */
export function delayAt(T: number, estimated: number, user?: number): number {
  if (user !== undefined) return Math.min(user, T - 1);
  return Math.min(estimated, Math.floor(T / 2));
}

/** The longest simulation spikeport runs (the paper's longest is 512 steps). */
export const MAX_STEPS = 65536;

/** Check a list of time steps (the `T` option) and return it sorted, without repeats. */
export function checkSteps(Ts: readonly number[]): number[] {
  if (!Array.isArray(Ts))
    throw optionError('T', `must be an array of numbers of time steps (got ${JSON.stringify(Ts)})`);
  if (Ts.length === 0) throw optionError('T', 'must list at least one number of time steps');
  for (const T of Ts)
    if (!Number.isInteger(T) || T < 1) throw optionError('T', `must list integers ≥ 1 (got ${Ts.join(',')})`);
  const big = Ts.find((T) => T > MAX_STEPS);
  if (big !== undefined)
    throw optionError('T', `must list at most ${MAX_STEPS} steps (got ${big}); the readout converges long before`);
  return [...new Set(Ts)].sort((a, b) => a - b);
}

export interface WindowOptions extends RuntimeOptions {
  /** Samples per batch. */
  readonly batchSize: number;
  /** Default: inferred from the data. */
  readonly task?: Task;
  /** Detection: the head and its thresholds (tasks/heads.ts). */
  readonly detection?: DetectionOptions;
  readonly engine?: Engine;
  /** `auto` only: the engine of the first batch (runtime's EngineOptions.autoStart). */
  readonly autoStart?: 'steps' | 'fused';
  /** Only these batches (ascending indices into the data's consecutive batches): a shard. Default: all. */
  readonly batches?: readonly number[];
  /** Continue a run: this tally's batches are not simulated again, its counts are added. */
  readonly resume?: Tally;
  /** Called after every batch with the tally so far (a checkpoint). */
  readonly afterBatch?: (tally: Tally) => void | Promise<void>;
  readonly onProgress?: OnProgress;
  /** Sees each window's model outputs (after the tail) of every batch, as the scorer does (the report's pictures). */
  readonly onOutputs?: (window: number, outputs: ModelOutputs, batch: StepBatch) => void;
}

export interface WindowedRun {
  readonly task: Task;
  /** Samples scored (those of the batches run, and of the resumed tally). */
  readonly samples: number;
  /** The task's scores per window, in the order given. */
  readonly scores: readonly Score[];
  readonly stats: SimulationStats;
  /** The same as sufficient statistics, to merge with other parts or to continue from. */
  readonly tally: Tally;
}

/** One simulation of the longest window's T, scored at every window [d+1, T]. */
export async function simulateWindows(
  snn: Snn,
  data: Dataset,
  windows: readonly Window[],
  opts: WindowOptions,
): Promise<WindowedRun> {
  const { spec } = snn;
  checkInteger('batchSize', opts.batchSize, 1);
  checkDataFits(data, spec.input, spec.inputShape);
  const Tmax = Math.max(...windows.map((w) => w.T));
  const task = inferTask(data, opts.task);
  const scorer = makeScorer(task, windows.length, data, opts.resume?.scores, { detection: opts.detection });
  const nBatches = Math.ceil(data.size / opts.batchSize);
  const wanted = opts.batches ?? Array.from({ length: nBatches }, (_, b) => b);
  const done = new Set(opts.resume?.batches ?? []);
  const stray = [...done].find((b) => !wanted.includes(b));
  if (stray !== undefined)
    throw new Error(`the run to resume counted batch ${stray}, which is not among the batches asked for`);
  const todo = wanted.filter((b) => !done.has(b));
  const ran: number[] = [];
  const tallyNow = (s: SimulationStats): Tally => {
    const part = tallyOf(ran, s, scorer.state());
    return opts.resume ? continueTally(opts.resume, part) : part;
  };
  const tail = await TailRunner.create(snn.tail, spec.readout, opts);
  let stats: SimulationStats;
  try {
    // The outputs' layout, checked on a zero readout before any step runs (a head no decoder fits).
    scorer.check(await tail.apply(new Float32Array(numel(spec.readoutShape)), [1, ...spec.readoutShape]));
    const checkpoints = [...new Set(windows.flatMap((w) => [w.T, w.delay]))].filter((t) => t > 0);
    stats = await simulateBatches(
      snn.graph,
      spec,
      data,
      {
        threads: opts.threads,
        device: opts.device,
        batchSize: opts.batchSize,
        onProgress: opts.onProgress,
        engine: opts.engine ?? DEFAULT_ENGINE,
        ...(opts.autoStart ? { autoStart: opts.autoStart } : {}),
        steps: Tmax,
        normalize: snn.meta.normalize,
        form: snn.form,
        checkpoints,
        batches: todo,
        afterBatch: async (b, s) => {
          ran.push(b);
          await opts.afterBatch?.(tallyNow(s));
        },
      },
      async (b) => {
        const averages = windowAverages(b, windows);
        for (let w = 0; w < windows.length; w++) {
          const out = await tail.apply(averages[w], [b.n, ...spec.readoutShape]);
          scorer.add(w, out, b);
          opts.onOutputs?.(w, out, b);
        }
      },
    );
  } finally {
    await tail.release();
  }
  const tally = tallyNow(stats);
  return { task, samples: tally.samples, scores: scorer.scores(), stats: statsOf(tally), tally };
}

/** Spikes per neuron per step of each site, over all samples and T steps. */
export function firingRates(
  spec: { readonly sites: readonly { readonly node: string; readonly neurons: number }[] },
  stats: SimulationStats,
  T: number,
): { site: string; rate: number }[] {
  return spec.sites.map((s, i) => ({
    site: s.node,
    rate: stats.spikesPerStep[i].reduce((a, b) => a + b, 0) / (s.neurons * stats.samples * T),
  }));
}
