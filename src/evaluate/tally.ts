/**
 * A simulation's sufficient statistics over some batches of a data set: the scorer's state
 * (hits, confusion matrices or detections per window) and the spike and SOP counts per step.
 * Tallies of disjoint batch sets add up exactly to the tally of one run over all of them — what
 * shards (one per machine) and resumed runs (a checkpoint plus the rest) rely on.
 */
import { mergeStates, type ScorerState } from '../tasks/task.js';
import type { RunEngine, SimulationStats } from '../runtime/engines.js';

export interface Tally {
  /** The batches counted (indices into the data's consecutive batches), ascending. */
  readonly batches: readonly number[];
  readonly samples: number;
  /** Per site, per step: spikes summed over the samples (integers). */
  readonly spikesPerStep: readonly (readonly number[])[];
  /** Per spiking weighted layer, per step: SOPs summed over the samples (integers). */
  readonly sopsPerStep: readonly (readonly number[])[];
  readonly scores: ScorerState;
  /** Simulation seconds spent on these batches (summed over parts). */
  readonly seconds: number;
  /** Of which setting up the engines, and running the batches (summed over parts; absent in older shard files). */
  readonly setupSeconds?: number;
  readonly stepSeconds?: number;
  /** Batches run by each engine (absent in shard files written before it was counted). */
  readonly engines?: Readonly<Partial<Record<RunEngine, number>>>;
}

/** A tally of the counter sums a simulation reported (copied: the simulation keeps adding to its arrays). */
export function tallyOf(batches: readonly number[], stats: SimulationStats, scores: ScorerState): Tally {
  return {
    batches: [...batches],
    samples: stats.samples,
    spikesPerStep: stats.spikesPerStep.map((a) => Array.from(a)),
    sopsPerStep: stats.sopsPerStep.map((a) => Array.from(a)),
    scores,
    seconds: stats.seconds,
    setupSeconds: stats.setupSeconds,
    stepSeconds: stats.stepSeconds,
    engines: { ...stats.engines },
  };
}

/** Tallies of disjoint batch sets, in batch order, as one; throws if they overlap or do not fit together. */
export function mergeTallies(parts: readonly Tally[]): Tally {
  if (parts.length === 0) throw new Error('no tallies to merge');
  // Parts in batch order, so detections concatenate as one run found them.
  const ordered = [...parts].sort((a, b) => (a.batches[0] ?? Infinity) - (b.batches[0] ?? Infinity));
  return { ...mergeCounts(parts), scores: mergeStates(ordered.map((p) => p.scores)) };
}

/**
 * A resumed run's tally: the counts of the run it continued and of its own batches; the scores
 * are the scorer's, which started from the earlier run's state.
 */
export function continueTally(prior: Tally, part: Tally): Tally {
  return { ...mergeCounts([prior, part]), scores: part.scores };
}

function mergeCounts(parts: readonly Tally[]): Omit<Tally, 'scores'> {
  const batches = parts.flatMap((p) => p.batches).sort((a, b) => a - b);
  const dup = batches.find((b, k) => k > 0 && b === batches[k - 1]);
  if (dup !== undefined) throw new Error(`batch ${dup} is counted twice`);
  const addRows = (rows: readonly (readonly (readonly number[])[])[]): number[][] => {
    const shape = rows[0].map((r) => r.length);
    if (rows.some((x) => x.length !== shape.length || x.some((r, i) => r.length !== shape[i])))
      throw new Error('counter arrays of different shapes');
    return shape.map((len, i) => Array.from({ length: len }, (_, t) => rows.reduce((a, x) => a + x[i][t], 0)));
  };
  return {
    batches,
    samples: parts.reduce((a, p) => a + p.samples, 0),
    spikesPerStep: addRows(parts.map((p) => p.spikesPerStep)),
    sopsPerStep: addRows(parts.map((p) => p.sopsPerStep)),
    seconds: parts.reduce((a, p) => a + p.seconds, 0),
    ...(parts.every((p) => p.setupSeconds !== undefined && p.stepSeconds !== undefined)
      ? {
          setupSeconds: parts.reduce((a, p) => a + (p.setupSeconds ?? 0), 0),
          stepSeconds: parts.reduce((a, p) => a + (p.stepSeconds ?? 0), 0),
        }
      : {}),
    // Unknown for the whole when a part does not say (a checkpoint written before engines were counted).
    ...(parts.every((p) => p.engines) ? { engines: addEngines(parts.map((p) => p.engines ?? {})) } : {}),
  };
}

function addEngines(
  parts: readonly Readonly<Partial<Record<RunEngine, number>>>[],
): Partial<Record<RunEngine, number>> {
  const sum: Partial<Record<RunEngine, number>> = {};
  for (const p of parts) for (const [e, k] of Object.entries(p) as [RunEngine, number][]) sum[e] = (sum[e] ?? 0) + k;
  return sum;
}

/** The tally's counters as the simulation's stats (for firing rates and energy). */
export function statsOf(t: Tally): SimulationStats {
  return {
    samples: t.samples,
    seconds: t.seconds,
    setupSeconds: t.setupSeconds ?? Number.NaN,
    stepSeconds: t.stepSeconds ?? Number.NaN,
    engines: { ...(t.engines ?? {}) },
    spikesPerStep: t.spikesPerStep.map((a) => Float64Array.from(a)),
    sopsPerStep: t.sopsPerStep.map((a) => Float64Array.from(a)),
  };
}
