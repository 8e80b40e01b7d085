/**
 * Splitting a simulation over machines and runs, and putting it back together exactly.
 *
 * A run's samples are cut into consecutive batches (the data's order, `batchSize` each); shard
 * K of N takes a contiguous range of them. Each shard writes a shard file: its sufficient
 * statistics (tasks/task.ts, evaluate/tally.ts) and a hash of what must be the same for every
 * shard — the model, its thresholds, the data and the options. `mergeShards` checks that all N
 * shards of one run are there and agree, adds their statistics and builds the record: exactly
 * the record of one run over all batches, since batches are simulated independently and every
 * statistic is an integer count or a list concatenated in batch order. A single run is the
 * merge of one shard, so both go through the same code.
 *
 * The same file, written while a shard runs (`checkpoint`), lets a killed run continue: it
 * lists the batches done; the same command reads it and simulates only the rest.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { z } from 'zod';
import type { Snn } from '../snn/network.js';
import type { Dataset, Normalize } from '../data/dataset.js';
import type { Notice } from '../progress.js';
import type { LayerSpec } from '../snn/format.js';
import type { EnergyConstants } from '../energy/energy.js';
import { energyOf } from '../energy/energy.js';
import type { SiteErrors } from '../analysis/site-errors.js';
import { MAX_STEPS, firingRates } from '../evaluate/windows.js';
import { mergeTallies, statsOf, type Tally } from '../evaluate/tally.js';
import {
  METRIC_NAMES,
  TASKS,
  VIDEO_LEVEL_NAMES,
  classOrderNotice,
  mergeStates,
  scoresOf,
  stateProblem,
  type Score,
  type ScorerState,
  type Task,
} from '../tasks/task.js';
import {
  noticeSchema,
  detectionInfoSchema,
  outputInfoSchema,
  picturesSchema,
  predictionSchema,
  type DetectionInfo,
  type OutputInfo,
  type Pictures,
  type SimulateRecord,
  type SimulationResult,
  type SimulationTimes,
} from '../report/record.js';
import { mergePictures, type PictureState } from '../evaluate/pictures.js';
import { SpikeportError, optionError } from '../errors.js';
import { readRegularFile } from '../files.js';

export const SHARD_FORMAT = 'spikeport-shard/1';

/** Which part of a run: shard `index` (0-based) of `count`. */
export interface Shard {
  readonly index: number;
  readonly count: number;
}

/** What every shard of one run must share; its hash is the shard file's `config`. */
export interface RunConfig {
  /** The source ANN's sha256, and the converted network's (its ONNX bytes: thresholds, options, corrections). */
  readonly model: { readonly source: string; readonly snn: string };
  /** sha256 of the thresholds (also inside the network; kept apart to say what differs). */
  readonly thresholds: string;
  /** The data's spec and size, and a hash of its sample shape, labels and boxes (known without reading the samples). */
  readonly data: { readonly name: string; readonly size: number; readonly fingerprint: string };
  /** The simulation options that change results (threads and device do not). */
  readonly options: Readonly<Record<string, unknown>>;
  /** Batches of the data (size ÷ batchSize, rounded up), and into how many shards they are cut. */
  readonly batches: number;
  readonly shards: number;
}

/** What the record needs besides the statistics: known before simulating, the same for every shard. */
export interface RecordContext {
  readonly task: Task;
  readonly model: string;
  readonly data: string;
  readonly method: string;
  readonly iterations: number;
  readonly calibration: Readonly<Record<string, unknown>>;
  readonly maxpool: string;
  readonly delay: { readonly estimated: number; readonly latencies: readonly number[]; readonly rule: string };
  /** The T reported and the delay used at each. */
  readonly T: readonly number[];
  readonly delays: readonly number[];
  readonly sites: readonly { readonly node: string; readonly neurons: number }[];
  readonly layers: readonly LayerSpec[] | null;
  readonly energy: EnergyConstants;
  /** The model's outputs, as scored (names and per-sample shapes; absent in older files). */
  readonly outputs?: readonly OutputInfo[];
  /** Detection: the head used and its thresholds (absent for other tasks and older files). */
  readonly detection?: DetectionInfo;
  /** The input normalisation the samples were read with (null: none; absent in older shard files). */
  readonly normalize?: Normalize | null;
}

export interface ShardFile {
  readonly format: typeof SHARD_FORMAT;
  /** sha256 of `run`: every shard of a run has the same. */
  readonly config: string;
  readonly run: RunConfig;
  readonly shard: Shard;
  /** This shard's batches: first ≤ b < end. */
  readonly range: { readonly first: number; readonly end: number };
  /** false: a checkpoint of a shard still running (or killed). */
  readonly complete: boolean;
  readonly context: RecordContext;
  /** Windows 2i (the delay) and 2i + 1 (all steps) for the i-th T. */
  readonly tally: Tally;
  /**
   * Scorer states of the ANN and the clipped ANN on this shard's samples, when asked for (and
   * done); `ceiling`: the ceiling at each T (one window per T, quantised to `levels[i]` levels).
   */
  readonly references: {
    readonly ann: ScorerState;
    readonly clipped: ScorerState;
    /** With frozen normalisations: the ANN with them frozen (`ann` is then the original). */
    readonly substitute?: ScorerState;
    readonly ceiling?: { readonly levels: readonly number[]; readonly state: ScorerState };
  } | null;
  /** The per-site error analysis (on the data's first samples): shard 0 only. */
  readonly siteErrors: SiteErrors | null;
  /** The report's pictures among this shard's samples (when asked for; made once the simulation is done). */
  readonly pictures: Pictures | null;
  /** A checkpoint's: what the picture collector has gathered so far. */
  readonly pictureState?: PictureState;
  /** What the user should know about the network this shard ran (not part of the run's identity: said where the run was started). */
  readonly notices?: readonly Notice[];
  /** Not part of the result's identity: when, and how long the conversion took (if in this process). */
  readonly timing: {
    readonly created: string;
    readonly calibrate?: number;
    readonly convert?: number;
    readonly refine?: number;
    /**
     * When this shard's simulation ran (milliseconds since 1970, its last session when it was
     * resumed): a run's wall-clock time is the span of its shards', not their sum.
     */
    readonly simulation?: { readonly start: number; readonly end: number };
    /** Seconds spent on the ANN references. */
    readonly references?: number;
  };
}

/** Shard K of N: its contiguous range of the `batches` batches (sizes differ by at most one). */
export function shardRange(shard: Shard, batches: number): { first: number; end: number } {
  checkShard(shard, batches);
  return {
    first: Math.floor((shard.index * batches) / shard.count),
    end: Math.floor(((shard.index + 1) * batches) / shard.count),
  };
}

/** What is wrong with a shard (index in range, no more shards than batches: each gets one), or null. */
export function shardProblem(shard: Shard, batches?: number): string | null {
  const { index, count } = shard;
  if (!Number.isInteger(count) || count < 1) return `the count must be an integer ≥ 1 (got ${String(count)})`;
  if (count > MAX_SHARDS) return `at most ${MAX_SHARDS} shards (got ${count})`;
  if (!Number.isInteger(index) || index < 0 || index >= count)
    return `the index must be in 0..${count - 1} (got ${String(index)})`;
  if (batches !== undefined && count > batches) {
    return `${count} shards for ${batches} batch${batches === 1 ? '' : 'es'}: every shard needs at least one (use at most ${batches === 1 ? 'one shard' : `${batches} shards`}, or a smaller batch size)`;
  }
  return null;
}

export function checkShard(shard: Shard, batches?: number): void {
  const problem = shardProblem(shard, batches);
  if (problem) throw optionError('shard', `${String(shard.index)}/${String(shard.count)}: ${problem}`);
}

/** "K/N" → a shard (decimal digits only, as every integer the command line reads). */
export function parseShard(v: string): Shard {
  const m = /^(\d{1,9})\/(\d{1,9})$/.exec(v);
  if (!m) throw optionError('shard', `"${v}" is not K/N (shard K of N, K from 0)`);
  const shard = { index: Number(m[1]), count: Number(m[2]) };
  checkShard(shard);
  return shard;
}

/** JSON with keys sorted: the same value always gives the same text (for hashing). */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    return `{${Object.keys(v)
      .sort()
      .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

function sha256(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** The hash every shard of a run shares: of its configuration and of what its record says besides the statistics. */
export function configHash(run: RunConfig, context: RecordContext): string {
  return sha256(canonical({ run, context }));
}

/** Most shards a run may be cut into. */
export const MAX_SHARDS = 65536;
/** Largest shard file read (a JavaScript string's limit). */
const MAX_SHARD_BYTES = 0x1fffffe8;

/** The sample indices of these batches of `batchSize` over `size` samples. */
function samplesOf(batches: readonly number[], batchSize: number, size: number): number[] {
  return batches.flatMap((b) =>
    Array.from({ length: Math.max(0, Math.min(batchSize, size - b * batchSize)) }, (_, k) => b * batchSize + k),
  );
}

/**
 * What in a shard file contradicts itself, or null: the batches against the data and the
 * shard, the statistics against those batches' samples, the record's context against the
 * options. (A file's hash can be recomputed by whoever edits it: its contents are checked.)
 */
function contentProblem(s: ShardFile): string | null {
  const { run, context: ctx, tally } = s;
  const batchSize = run.options.batchSize;
  if (typeof batchSize !== 'number' || !Number.isInteger(batchSize) || batchSize < 1)
    return 'options.batchSize is not a batch size';
  if (run.data.size < 1 || run.data.size > 2 ** 31) return `a data set of ${run.data.size} samples`;
  if (run.batches !== Math.ceil(run.data.size / batchSize))
    return `${run.batches} batches of ${batchSize} for ${run.data.size} samples`;
  if (run.shards > MAX_SHARDS) return `${run.shards} shards (at most ${MAX_SHARDS})`;
  const want = shardRange(s.shard, run.batches);
  if (s.range.first !== want.first || s.range.end !== want.end)
    return `shard ${s.shard.index} of ${s.shard.count} must count batches ${want.first}..${want.end - 1}, it says ${s.range.first}..${s.range.end - 1}`;
  const b = tally.batches;
  if (b.some((x, k) => x < want.first || x >= want.end || (k > 0 && x <= b[k - 1])))
    return `its batches are not ascending within ${want.first}..${want.end - 1}`;
  if (s.complete && b.length !== want.end - want.first)
    return `shard ${s.shard.index} of ${s.shard.count} must count batches ${want.first}..${want.end - 1}, it counts ${b.length ? `${b[0]}..${b[b.length - 1]} (${b.length})` : 'none'}`;
  const samples = samplesOf(b, batchSize, run.data.size);
  if (tally.samples !== samples.length) return `${tally.samples} samples counted, its batches hold ${samples.length}`;
  const byEngine = Object.values(tally.engines ?? {}).reduce((a, k) => a + k, 0);
  if (tally.engines && byEngine !== b.length) return `its engines ran ${byEngine} batches, it counts ${b.length}`;
  // `engines` names the engines with the same results (a shard of an older version: `engine`);
  // a loop-form file runs with loop whatever was asked.
  const asked = String(run.options.engines ?? run.options.engine);
  const allowed = asked === 'loop' ? ['loop'] : ['steps', 'fused', 'loop'];
  const odd = Object.entries(tally.engines ?? {}).find(([e, k]) => k > 0 && !allowed.includes(e));
  if (odd) return `engine ${asked} does not run batches with ${odd[0]}`;
  const same = (x: unknown, y: unknown): boolean => canonical(x) === canonical(y);
  if (!same(ctx.T, run.options.T) || !same(ctx.delays, run.options.delays) || ctx.task !== run.options.task)
    return 'its record context (T, delays, task) does not match its options';
  const Tmax = ctx.T.length ? ctx.T[ctx.T.length - 1] : 0;
  if (
    ctx.delays.length !== ctx.T.length ||
    ctx.T.some((T, i) => T < 1 || T > MAX_STEPS || ctx.delays[i] >= T || (i > 0 && T <= ctx.T[i - 1]))
  )
    return 'its T and delays are not ascending windows';
  if (
    tally.spikesPerStep.length !== ctx.sites.length ||
    [...tally.spikesPerStep, ...tally.sopsPerStep].some((r) => r.length !== Tmax)
  )
    return `its spike and SOP counts are not ${ctx.sites.length} sites × ${Tmax} steps`;
  if (ctx.layers && tally.sopsPerStep.length !== ctx.layers.filter((l) => l.sops !== undefined).length)
    return 'its SOP counts do not match its layers';
  const problems = [
    stateProblem(tally.scores, 2 * ctx.T.length, samples),
    s.references ? stateProblem(s.references.ann, 1, samples) : null,
    s.references ? stateProblem(s.references.clipped, 1, samples) : null,
    s.references?.substitute ? stateProblem(s.references.substitute, 1, samples) : null,
    s.references?.ceiling
      ? s.references.ceiling.levels.length !== ctx.T.length
        ? `its ceiling has ${s.references.ceiling.levels.length} levels for ${ctx.T.length} T`
        : stateProblem(s.references.ceiling.state, ctx.T.length, samples)
      : null,
  ].filter(Boolean);
  return problems.length ? `its statistics do not fit its batches: ${problems[0]}` : null;
}

/** The identity of a run of `snn` on data of this name and size with these options, cut into `shards`. */
export function runConfig(
  snn: Snn,
  data: Dataset,
  options: Record<string, unknown>,
  batchSize: number,
  shards: number,
): RunConfig {
  const th = snn.thresholds();
  return {
    model: { source: snn.meta.source.sha256, snn: sha256(snn.toBytes()) },
    thresholds: sha256(canonical({ granularity: th.granularity, values: th.values.map((v) => Array.from(v)) })),
    data: { name: data.name, size: data.size, fingerprint: dataFingerprint(data) },
    options,
    batches: Math.ceil(data.size / batchSize),
    shards,
  };
}

/**
 * What can be known of a data set without reading its samples: its shape, labels and boxes.
 * Two folders of the same name and size with other labels differ here; images that differ
 * only in their pixels do not (reading them all would cost what a shard is meant to save).
 */
export function dataFingerprint(d: Dataset): string {
  const h = createHash('sha256').update(
    canonical({ sampleShape: d.sampleShape, maskShape: d.maskShape ?? null, scale: d.scale }),
  );
  if (d.labels) h.update(new Uint8Array(d.labels.buffer, d.labels.byteOffset, d.labels.byteLength));
  if (d.boxes) h.update(canonical(d.boxes));
  return h.digest('hex');
}

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

/** All shards of one run, each once, complete, each with the batches its index gives. */
function checkSameRun(files: readonly { readonly name: string; readonly shard: ShardFile }[]): void {
  const [a, ...rest] = files;
  for (const f of files) {
    const s = f.shard;
    if (!s.complete) {
      throw new SpikeportError(
        'invalid-file',
        `${f.name} is the checkpoint of an unfinished shard (${s.tally.batches.length} of ${s.range.end - s.range.first} batches done); run its command again to finish it`,
      );
    }
    if (configHash(s.run, s.context) !== s.config)
      throw new SpikeportError(
        'invalid-file',
        `${f.name}: its configuration does not match its hash (the file was edited)`,
      );
  }
  for (const b of rest) {
    const what = difference(a.shard, b.shard);
    if (what) throw new SpikeportError('invalid-file', `${a.name} and ${b.name} are not shards of one run: ${what}`);
  }
  const count = a.shard.shard.count;
  const seen = new Map<number, string>();
  for (const f of files) {
    const { index } = f.shard.shard;
    const other = seen.get(index);
    if (other !== undefined)
      throw new SpikeportError('invalid-file', `shard ${index} of ${count} is given twice: ${other} and ${f.name}`);
    seen.set(index, f.name);
  }
  const missing = Array.from({ length: count }, (_, k) => k).filter((k) => !seen.has(k));
  if (missing.length) {
    throw new SpikeportError(
      'invalid-file',
      `shard${missing.length > 1 ? 's' : ''} ${missing.join(', ')} of ${count} ${missing.length > 1 ? 'are' : 'is'} missing (given: ${[...seen.keys()].sort((x, y) => x - y).join(', ')})`,
    );
  }
}

/** What differs between two shards' runs, in words; null if nothing. */
function difference(sa: ShardFile, sb: ShardFile): string | null {
  const [a, b] = [sa.run, sb.run];
  if (a.model.source !== b.model.source)
    return `they simulate different models (sha256 ${a.model.source.slice(0, 12)}… and ${b.model.source.slice(0, 12)}…)`;
  if (a.thresholds !== b.thresholds) return 'they simulate the same model with different thresholds';
  if (a.model.snn !== b.model.snn)
    return 'they simulate different conversions of the same model (same thresholds, other conversion options or corrections)';
  if (a.data.name !== b.data.name || a.data.size !== b.data.size)
    return `they read different data (${a.data.name}, ${a.data.size} samples; ${b.data.name}, ${b.data.size} samples)`;
  if (a.data.fingerprint !== b.data.fingerprint)
    return `they read different data under the same name ${a.data.name} (other labels, boxes or sample shape)`;
  const keys = [...new Set([...Object.keys(a.options), ...Object.keys(b.options)])].sort();
  const k = keys.find((key) => canonical(a.options[key]) !== canonical(b.options[key]));
  if (k !== undefined)
    return `they ran with different options: ${k} ${canonical(a.options[k])} and ${canonical(b.options[k])}`;
  if (a.shards !== b.shards) return `one is cut into ${a.shards} shards, the other into ${b.shards}`;
  if (a.batches !== b.batches) return `${a.batches} and ${b.batches} batches`;
  const field = Object.keys(sa.context)
    .sort()
    .find(
      (key) =>
        canonical((sa.context as unknown as Record<string, unknown>)[key]) !==
        canonical((sb.context as unknown as Record<string, unknown>)[key]),
    );
  if (field !== undefined) return `their records would differ in ${field}`;
  return null;
}

// Reading a shard file back: every field checked (a shard file may come from anywhere).
const count = z.number().int().nonnegative();
const finite = z.number().finite();
const counts = z.array(z.array(count));
const box = z.object({ image: count, label: count, x: finite, y: finite, w: finite, h: finite }).passthrough();
const state: z.ZodType<ScorerState> = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('topk'),
    classes: count,
    top1: z.array(count),
    top5: z.array(count),
    seen: z.array(count),
    pairs: z.array(z.tuple([count, count, count])).optional(),
  }),
  z
    .object({ kind: z.literal('confusion'), classes: count, counts: z.array(z.array(count)) })
    .refine(
      (s) => s.counts.every((c) => c.length === 0 || c.length === s.classes * s.classes),
      'each confusion matrix has classes² counts',
    ),
  z
    .object({
      kind: z.literal('detections'),
      classes: count,
      windows: count,
      found: z.array(z.array(finite)),
      images: z.array(count),
      truth: z.array(box),
    })
    .refine(
      (s) => s.found.length === s.windows && s.found.every((f) => f.length % 7 === 0),
      'detections come as 7 numbers each, one list per window',
    ),
  z.object({
    kind: z.literal('videos'),
    classes: count,
    clipsPerVideo: count,
    size: count,
    top1: z.array(count),
    top5: z.array(count),
    seen: z.array(count),
    videoTop1: z.array(count),
    videoTop5: z.array(count),
    videos: z.array(count),
    open: z.array(
      z.array(
        z.object({
          video: count,
          label: count,
          clips: z.array(z.object({ sample: count, probs: z.array(finite) })),
        }),
      ),
    ),
  }),
]);
const latency = z
  .number()
  .nullable()
  .transform((v) => v ?? Infinity);
const layer = z.object({
  node: z.string(),
  opType: z.string(),
  where: z.enum(['input', 'spiking', 'dense', 'tail']),
  macs: finite,
  sops: z.string().optional(),
});
const siteErrors = z.object({
  T: count,
  delay: count,
  samples: count,
  sites: z.array(z.object({ site: z.string(), clipError: finite, snnVsAnn: finite, snnVsClipped: finite })),
});
const hex = z.string().regex(/^[0-9a-f]{64}$/);
const shardSchema = z.object({
  format: z.literal(SHARD_FORMAT),
  config: hex,
  run: z.object({
    model: z.object({ source: z.string(), snn: hex }),
    thresholds: hex,
    data: z.object({ name: z.string(), size: count, fingerprint: hex }),
    options: z.record(z.string(), z.unknown()),
    batches: count,
    shards: count,
  }),
  shard: z.object({ index: count, count: count }),
  range: z.object({ first: count, end: count }),
  complete: z.boolean(),
  context: z.object({
    task: z.enum(TASKS),
    model: z.string(),
    data: z.string(),
    method: z.string(),
    iterations: count,
    calibration: z.record(z.string(), z.unknown()),
    maxpool: z.string(),
    delay: z.object({ estimated: count, latencies: z.array(latency), rule: z.string() }),
    T: z.array(count),
    delays: z.array(count),
    sites: z.array(z.object({ node: z.string(), neurons: count })),
    layers: z.array(layer).nullable(),
    energy: z.object({ name: z.string(), eSop: finite, eMac: finite, note: z.string() }),
    outputs: z.array(outputInfoSchema).optional(),
    detection: detectionInfoSchema.optional(),
    normalize: z
      .object({ mean: z.array(finite).min(1), std: z.array(z.number().positive().finite()).min(1) })
      .nullable()
      .optional(),
  }),
  tally: z.object({
    batches: z.array(count),
    samples: count,
    spikesPerStep: counts,
    sopsPerStep: counts,
    scores: state,
    seconds: finite,
    setupSeconds: finite.optional(),
    stepSeconds: finite.optional(),
    engines: z.object({ steps: count, fused: count, loop: count }).partial().strict().optional(),
  }),
  references: z
    .object({
      ann: state,
      clipped: state,
      substitute: state.optional(),
      ceiling: z.object({ levels: z.array(z.number().int().positive()), state }).optional(),
    })
    .nullable(),
  siteErrors: siteErrors.nullable(),
  pictures: picturesSchema.nullable(),
  pictureState: z
    .object({
      preds: z.array(z.tuple([count, z.array(predictionSchema)])),
      misclassified: count,
      checked: count,
      grid: z.array(count),
      maskSize: z.tuple([count, count]).nullable(),
    })
    .optional(),
  timing: z.object({
    created: z.string(),
    calibrate: finite.optional(),
    convert: finite.optional(),
    refine: finite.optional(),
    simulation: z.object({ start: finite, end: finite }).optional(),
    references: finite.optional(),
  }),
  notices: z.array(noticeSchema).max(64).optional(),
});

/** A shard file's JSON checked field by field; `where` names it in the one-line error. */
export function parseShardFile(json: unknown, where: string): ShardFile {
  if ((json as { format?: unknown } | null)?.format !== SHARD_FORMAT) {
    throw new SpikeportError(
      'invalid-file',
      `${where} is not a spikeport shard file (no "format": "${SHARD_FORMAT}"); make one with simulate --shard K/N --json FILE`,
    );
  }
  const parsed = shardSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new SpikeportError(
      'invalid-file',
      `${where}: a shard file with a bad field ${issue.path.join('.') || '(root)'}: ${issue.message}`,
    );
  }
  const s = parsed.data as ShardFile;
  const bad = shardProblem(s.shard, s.run.batches);
  if (bad) throw new SpikeportError('invalid-file', `${where}: shard ${s.shard.index} of ${s.shard.count}: ${bad}`);
  if (s.shard.count !== s.run.shards)
    throw new SpikeportError(
      'invalid-file',
      `${where}: shard count ${s.shard.count} but the run is cut into ${s.run.shards}`,
    );
  const problem = contentProblem(s);
  if (problem) throw new SpikeportError('invalid-file', `${where}: ${problem}`);
  return s;
}

/** Read a shard file (or a checkpoint). */
export function readShardFile(file: string): ShardFile {
  let size = 0;
  try {
    size = fs.statSync(file).size;
  } catch {
    // readRegularFile says what is wrong
  }
  if (size > MAX_SHARD_BYTES)
    throw new SpikeportError(
      'invalid-file',
      `${file}: ${(size / 2 ** 20).toFixed(0)} MiB is more than a shard file can be (${(MAX_SHARD_BYTES / 2 ** 20).toFixed(0)} MiB); cut the run into more shards`,
    );
  const text = readRegularFile(file).toString('utf8');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new SpikeportError('invalid-file', `${file} is not JSON (${(e as Error).message})`);
  }
  return parseShardFile(json, file);
}

/** A shard file as JSON text (∞ latencies become null, as in records). */
export function shardJson(s: ShardFile): string {
  return JSON.stringify(s) + '\n';
}
