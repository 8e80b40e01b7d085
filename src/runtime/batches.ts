/**
 * Running the SNN for T_max steps over a data set, batch by batch. The readout of every step is
 * handed to a sink (so accuracy at every T ≤ T_max and any delay window comes from one run);
 * states live per batch only. Which engine runs the batches is chosen here (`auto` times the
 * step and fused engines on the first batches and keeps the faster).
 */
import type { Batch, Dataset } from '../data/dataset.js';
import { prefetchBatches, sequentialBatches } from '../data/dataset.js';
import type { Graph } from '../graph/ir.js';
import { numel } from '../graph/ir.js';
import { counterOutputs, type SnnSpec } from '../snn/format.js';
import { buildLoop } from '../snn/loop.js';
import { SpikeportError } from '../errors.js';
import { AUTO_SECOND_ROUND, worthTrying } from './auto.js';
import {
  DEFAULT_ENGINE,
  type BatchOptions,
  type BatchRunner,
  type EngineContext,
  type RunEngine,
  type SimulationStats,
  type StepBatch,
} from './engines.js';
import { fusedRunner } from './fused.js';
import { LOOP_READOUT_BYTES, loopRunner } from './loop.js';
import { stepRunner } from './steps.js';

export async function simulateBatches(
  graph: Graph,
  spec: SnnSpec,
  data: Dataset,
  opts: BatchOptions,
  sink: (b: StepBatch) => void | Promise<void>,
): Promise<SimulationStats> {
  const t0 = performance.now();
  const T = opts.steps;
  const counters = counterOutputs(spec);
  const sums = counters.map(() => new Float64Array(T));
  const all = sequentialBatches(data.size, opts.batchSize);
  const chosen = opts.batches ?? all.map((_, b) => b);
  if (chosen.some((b, k) => !Number.isInteger(b) || b < 0 || b >= all.length || (k > 0 && b <= chosen[k - 1]))) {
    throw new Error(`batches must be ascending indices in 0..${all.length - 1}`);
  }
  const batches = chosen.map((b) => all[b]);
  const ctx: EngineContext = { spec, data, opts, sink, sums, counters, nBatches: batches.length };
  const engine = opts.form === 'loop' ? 'loop' : (opts.engine ?? DEFAULT_ENGINE);
  // A Loop call returns every step's readout of its batch at once.
  const loopBytes = 4 * T * Math.min(opts.batchSize, data.size) * numel(spec.readoutShape);
  if (loopBytes > LOOP_READOUT_BYTES && engine === 'loop') {
    throw new SpikeportError(
      'invalid-option',
      `T ${T} with batches of ${Math.min(opts.batchSize, data.size)}: the Loop ${opts.form === 'loop' ? 'form' : 'engine'} keeps every step's readout, ${(loopBytes / 2 ** 30).toFixed(1)} GiB per batch (the limit is ${LOOP_READOUT_BYTES / 2 ** 30} GiB); use fewer steps, a smaller batch${opts.form === 'loop' ? ' or a step-form file' : ' or engine steps'}`,
      'T',
    );
  }
  const runners: BatchRunner[] = [];
  const used: Partial<Record<RunEngine, number>> = {};
  let ran = 0; // samples simulated
  const clock = { setup: 0, steps: 0 };
  const result = (): SimulationStats => stats(spec, ran, sums, t0, used, clock);
  /** A runner made now, its setup counted as such. */
  const made = async <R>(make: () => Promise<R>): Promise<R> => {
    const s0 = performance.now();
    try {
      return await make();
    } finally {
      clock.setup += performance.now() - s0;
    }
  };
  try {
    if (engine === 'loop') {
      runners.push(await made(() => loopRunner(opts.form === 'loop' ? graph : buildLoop({ graph, spec }), ctx)));
    } else if (engine === 'auto' && opts.autoStart === 'fused') {
      // Told to run fused (a worker of a large-state run): the same results; steps where it cannot.
      runners.push(
        await made(async () => (await fusedRunner(graph, ctx).catch(() => null)) ?? (await stepRunner(graph, ctx))),
      );
    } else if (engine === 'fused') {
      // A graph the fused engine cannot plan runs on steps; `engines` in the stats says so (engineNotice).
      runners.push(await made(async () => (await fusedRunner(graph, ctx)) ?? (await stepRunner(graph, ctx))));
    } else {
      runners.push(await made(() => stepRunner(graph, ctx)));
    }
    let bi = 0;
    /** Run a batch; returns its times per sample-step, after the first call (NaN if one call did it all) and in all. */
    const runBatch = async (runner: BatchRunner, batch: Batch): Promise<{ warm: number; whole: number }> => {
      const b0 = performance.now();
      const t = await runner.run(bi, batch);
      clock.steps += performance.now() - b0;
      used[runner.engine] = (used[runner.engine] ?? 0) + 1;
      ran += batch.n;
      bi++;
      await opts.afterBatch?.(chosen[bi - 1], result());
      return { warm: t.steps > 0 ? t.ms / (t.steps * batch.n) : Number.NaN, whole: t.wholeMs / (opts.steps * batch.n) };
    };
    // Batches are read ahead (a streamed source decodes the next ones while this one runs).
    const stream = prefetchBatches(data, batches.length, (b) => batches[b], opts.normalize);
    const next = async (): Promise<Batch> => (await stream.next()).value as Batch;
    // auto, with batches to choose on: the step engine runs the first; the fused engine (the same
    // results, another speed) is set up and tried only when the work left can pay for that.
    if (engine === 'auto' && opts.autoStart !== 'fused' && batches.length >= 2) {
      const first = await next();
      const steps = await runBatch(runners[0], first);
      const perStep = Number.isNaN(steps.warm) ? steps.whole : steps.warm;
      const trial = opts.autoTrial ?? worthTrying(clock.setup, perStep * opts.steps * first.n, batches.length - 1);
      // If the fused engine cannot be set up (memory, an unusual graph), steps runs alone.
      const fused = trial ? await made(() => fusedRunner(graph, ctx).catch(() => null)) : null;
      if (fused) {
        runners.push(fused);
        // Time a batch with each (without its first call) and keep the faster per sample-step.
        // With batches to spare, a second round times both again and counts. (When one engine
        // does a batch in a single call, e.g. T ≤ 8 steps per call, both compare whole batches.)
        const times = [steps, await runBatch(fused, await next())];
        if (batches.length >= AUTO_SECOND_ROUND)
          for (const [k, r] of runners.entries()) times[k] = await runBatch(r, await next());
        const per = times.some((x) => Number.isNaN(x.warm)) ? times.map((x) => x.whole) : times.map((x) => x.warm);
        const keep = per.indexOf(Math.min(...per));
        const [loser] = runners.splice(1 - keep, 1);
        await loser.release();
      }
    }
    for await (const batch of stream) await runBatch(runners[0], batch);
  } finally {
    for (const r of runners) await r.release();
  }
  return result();
}

function stats(
  spec: SnnSpec,
  samples: number,
  sums: Float64Array[],
  t0: number,
  engines: Partial<Record<RunEngine, number>>,
  clock: { readonly setup: number; readonly steps: number },
): SimulationStats {
  const k = spec.sites.length;
  return {
    samples,
    spikesPerStep: sums.slice(0, k),
    sopsPerStep: sums.slice(k),
    seconds: (performance.now() - t0) / 1000,
    setupSeconds: clock.setup / 1000,
    stepSeconds: clock.steps / 1000,
    engines: { ...engines },
  };
}
