/**
 * Shard files merged into one record, exactly: a single run is the merge of its one shard. The
 * record (results at every T, firing rates, energy, references, the notices) is built here.
 */
import type { Notice } from '../progress.js';
import { energyOf } from '../energy/energy.js';
import { firingRates } from '../evaluate/windows.js';
import { mergeTallies, statsOf, type Tally } from '../evaluate/tally.js';
import {
  METRIC_NAMES,
  VIDEO_LEVEL_NAMES,
  classOrderNotice,
  mergeStates,
  scoresOf,
  type Score,
  type ScorerState,
} from '../tasks/task.js';
import type { Pictures, SimulateRecord, SimulationResult, SimulationTimes } from '../report/record.js';
import { mergePictures } from '../evaluate/pictures.js';
import { SpikeportError } from '../errors.js';

import { type RecordContext, type ShardFile, checkSameRun } from './shard-file.js';

/** The record of a run from its shards (one for a run that was not split), after checking that they fit together. */
export function mergeShards(
  files: readonly { readonly name: string; readonly shard: ShardFile }[],
  overrides: {
    readonly model?: string;
    readonly timing?: Partial<ShardFile['timing']>;
    /** Said where the run was started, about the network the shards ran (e.g. why it has no ANN). */
    readonly notices?: readonly Notice[];
  } = {},
): SimulateRecord {
  if (files.length === 0) throw new SpikeportError('invalid-option', 'no shard files to merge');
  checkSameRun(files);
  const ordered = [...files].sort((a, b) => a.shard.shard.index - b.shard.shard.index);
  const first = ordered[0].shard;
  const ctx = first.context;
  let tally: Tally;
  let refs: { ann: ScorerState; clipped: ScorerState; substitute?: ScorerState; ceiling: ScorerState | null } | null =
    null;
  let levels: readonly number[] | null = null;
  try {
    tally = mergeTallies(ordered.map((f) => f.shard.tally));
    if (ordered.every((f) => f.shard.references)) {
      const r = ordered.map((f) => f.shard.references as NonNullable<ShardFile['references']>);
      const subs = r.map((x) => x.substitute);
      levels = r[0].ceiling?.levels ?? null;
      const ceilings = r.map((x) => x.ceiling?.state ?? null);
      if (ceilings.some((c) => !c) && ceilings.some((c) => c))
        throw new Error('some shards have the ceiling, others not');
      if (r.some((x) => JSON.stringify(x.ceiling?.levels ?? null) !== JSON.stringify(levels)))
        throw new Error("the shards' ceilings have other levels");
      refs = {
        ann: mergeStates(r.map((x) => x.ann)),
        clipped: mergeStates(r.map((x) => x.clipped)),
        ...(subs.every((x) => x !== undefined) ? { substitute: mergeStates(subs) } : {}),
        ceiling: levels ? mergeStates(ceilings as ScorerState[]) : null,
      };
    }
  } catch (e) {
    throw new SpikeportError(
      'invalid-file',
      `${ordered.map((f) => f.name).join(', ')}: the statistics do not fit together (${(e as Error).message})`,
    );
  }
  const withPictures = ordered.filter((f) => f.shard.pictures);
  if (withPictures.length && withPictures.length < ordered.length)
    throw new SpikeportError(
      'invalid-file',
      `${ordered.find((f) => !f.shard.pictures)?.name ?? ''} has no pictures, other shards have`,
    );
  const count = Number(first.run.options.pictures ?? 0);
  const pictures = withPictures.length
    ? mergePictures(
        ordered.map((f) => f.shard.pictures as Pictures),
        count,
      )
    : null;
  const windows = 2 * ctx.T.length;
  const scores = scoresOf(tally.scores);
  if (scores.length !== windows)
    throw new SpikeportError(
      'invalid-file',
      `${ordered[0].name}: ${scores.length} readout windows scored, the options ask for ${windows}`,
    );
  const results: SimulationResult[] = ctx.T.map((T, i) => ({
    T,
    delay: ctx.delays[i],
    metric: scores[2 * i].metric,
    secondary: scores[2 * i].secondary,
    metricNoDelay: scores[2 * i + 1].metric,
    secondaryNoDelay: scores[2 * i + 1].secondary,
  }));
  const ann = refs ? scoresOf(refs.ann)[0] : null;
  const clipped = refs ? scoresOf(refs.clipped)[0] : null;
  const substitute = refs?.substitute ? scoresOf(refs.substitute)[0] : null;
  const ceilingScores = refs?.ceiling ? scoresOf(refs.ceiling) : null;
  const ceiling =
    ceilingScores && levels
      ? ctx.T.map((T, i) => ({
          T,
          levels: levels[i],
          metric: ceilingScores[i].metric,
          secondary: ceilingScores[i].secondary,
        }))
      : null;
  const stats = statsOf(tally);
  const timing = { ...first.timing, ...overrides.timing };
  const Tmax = ctx.T[ctx.T.length - 1];
  const names = tally.scores.kind === 'videos' ? VIDEO_LEVEL_NAMES : METRIC_NAMES[ctx.task];
  return {
    kind: 'simulate',
    task: ctx.task,
    ...(tally.scores.kind === 'videos' ? { metrics: names } : {}),
    model: overrides.model ?? ctx.model,
    data: ctx.data,
    samples: tally.samples,
    created: new Date().toISOString(),
    method: ctx.method,
    iterations: ctx.iterations,
    calibration: {
      ...ctx.calibration,
      ...(timing.calibrate !== undefined ? { seconds: timing.calibrate } : {}),
      ...(timing.convert !== undefined ? { convertSeconds: timing.convert } : {}),
      ...(timing.refine !== undefined ? { refineSeconds: timing.refine } : {}),
    },
    maxpool: ctx.maxpool,
    ann,
    clippedAnn: clipped,
    ...(ceiling ? { ceiling } : {}),
    delay: ctx.delay,
    results,
    firingRates: firingRates(ctx, stats, Tmax),
    energy: energyOf(
      { layers: ctx.layers ?? undefined },
      stats,
      results.map((r) => ({ T: r.T, metric: r.metric })),
      ann ? ann.metric : null,
      ctx.energy,
    ),
    siteErrors: first.siteErrors,
    simulationSeconds: wallClock(ordered.map((f) => f.shard)),
    ...timesOf(ordered.map((f) => f.shard)),
    ...(tally.engines ? { engines: tally.engines } : {}),
    ...(pictures ? { pictures } : {}),
    ...(ctx.outputs ? { outputs: ctx.outputs } : {}),
    ...(substitute ? { frozenAnn: substitute } : {}),
    ...(ctx.detection ? { detection: ctx.detection } : {}),
    ...(ctx.normalize !== undefined ? { normalize: ctx.normalize } : {}),
    notices: [
      ...uniqueNotices([...(overrides.notices ?? []), ...ordered.flatMap((f) => f.shard.notices ?? [])]),
      ...(ann && clipped ? [clippingNotice(ann, clipped, ctx, names[0])] : []),
      ...(refs ? [classOrderNotice(refs.ann, ctx.data, names[0])] : []),
    ].filter((n): n is Notice => n !== null),
  };
}

/** Gap between the ANN and the clipped ANN (in the metric's units, 1 = 100 %) beyond which the thresholds are said to clip. */
export const CLIPPING_GAP = 0.05;

/**
 * The SNN converges to the clipped ANN, not to the ANN: when that is far below the ANN, the
 * thresholds cut off activations the network needs, and no T will close the gap.
 */
export function clippingNotice(
  ann: Score,
  clipped: Score,
  ctx: RecordContext,
  m1 = METRIC_NAMES[ctx.task][0],
): Notice | null {
  if (!(ann.metric - clipped.metric >= CLIPPING_GAP)) return null;
  const pct = (v: number): string => (100 * v).toFixed(1);
  const method = ctx.method;
  const change: { what: string; field?: string } =
    method === 'cltb' || method === 'ltb'
      ? { what: `more iterations (${ctx.iterations} now) raise them`, field: 'iterations' }
      : method === 'robustnorm'
        ? { what: 'a higher percentile raises them', field: 'percentile' }
        : method === 'fixed'
          ? { what: 'larger fixed thresholds', field: 'thresholds' }
          : { what: 'another method, or more calibration data, raises them', field: 'method' };
  return {
    code: 'clipping',
    message: `the thresholds clip the activations: the clipped ANN scores ${m1} ${pct(clipped.metric)} % against the ANN's ${pct(ann.metric)} %, and the SNN approaches the clipped ANN as T grows, not the ANN; ${change.what} (method ${method})`,
    ...(change.field ? { field: change.field } : {}),
  };
}

/** Notices from several shards, each once, in order. */
function uniqueNotices(all: readonly Notice[]): Notice[] {
  const seen = new Set<string>();
  return all.filter((n) => {
    const key = `${n.code}\n${n.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/**
 * The run's simulation time on the wall clock. One shard: its seconds (summed over the sessions of
 * a resumed run). Several: from the first one's start to the last one's end — shards running side
 * by side (`--workers`) take as long as the slowest, not the sum; a shard's start is taken as its
 * end minus its seconds, so a resumed shard counts its sessions, not the pause between them.
 * Shard files without times (older ones): the longest shard's seconds.
 */
function wallClock(shards: readonly ShardFile[]): number {
  if (shards.length === 1) return shards[0].tally.seconds;
  const spans = shards.map((s) => s.timing.simulation);
  if (spans.some((x) => !x)) return Math.max(...shards.map((s) => s.tally.seconds));
  const ends = spans.map((x) => (x as { end: number }).end);
  const starts = shards.map((s, i) => ends[i] - 1000 * s.tally.seconds);
  return (Math.max(...ends) - Math.min(...starts)) / 1000;
}

/** The record's times besides the wall clock: setup and steps, references, and each shard's when there are several. */
function timesOf(shards: readonly ShardFile[]): Pick<SimulateRecord, 'times'> {
  const one = (s: ShardFile): SimulationTimes => ({
    seconds: s.tally.seconds,
    ...(s.tally.setupSeconds !== undefined ? { setupSeconds: s.tally.setupSeconds } : {}),
    ...(s.tally.stepSeconds !== undefined ? { stepSeconds: s.tally.stepSeconds } : {}),
    ...(s.timing.references !== undefined ? { referencesSeconds: s.timing.references } : {}),
    ...(s.tally.engines ? { engines: s.tally.engines } : {}),
  });
  if (shards.length === 1) return { times: one(shards[0]) };
  return {
    times: { workers: shards.map((s) => ({ shard: s.shard.index, batches: s.tally.batches.length, ...one(s) })) },
  };
}
