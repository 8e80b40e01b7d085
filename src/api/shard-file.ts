/**
 * The shard file: what one shard of a run leaves behind (its statistics, references and context),
 * its schema, reading and writing it, and the checks that its numbers fit its batches and that
 * several files belong to one run.
 */
import fs from 'node:fs';
import { z } from 'zod';
import type { Normalize } from '../data/dataset.js';
import type { Notice } from '../progress.js';
import type { LayerSpec } from '../snn/format.js';
import type { EnergyConstants } from '../energy/energy.js';
import type { SiteErrors } from '../analysis/site-errors.js';
import { MAX_STEPS } from '../evaluate/windows.js';
import type { Tally } from '../evaluate/tally.js';
import { TASKS, stateProblem, type ScorerState, type Task } from '../tasks/task.js';
import {
  noticeSchema,
  detectionInfoSchema,
  outputInfoSchema,
  picturesSchema,
  predictionSchema,
  type DetectionInfo,
  type OutputInfo,
  type Pictures,
} from '../report/record.js';
import type { PictureState } from '../evaluate/pictures.js';
import { SpikeportError, field } from '../errors.js';
import { readRegularFile } from '../files.js';
import { type Shard, shardRange, shardProblem, MAX_SHARDS } from './shards.js';
import { type RunConfig, canonical, configHash } from './run-config.js';

export const SHARD_FORMAT = 'spikeport-shard/1';

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

/** All shards of one run, each once, complete, each with the batches its index gives. */
export function checkSameRun(files: readonly { readonly name: string; readonly shard: ShardFile }[]): void {
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
    pairs: z.array(z.tuple([count, count, count])).optional(),
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

const shardSchema: z.ZodType<ShardFile> = z.object({
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
      `${where} is not a spikeport shard file (no "format": "${SHARD_FORMAT}"); simulate writes one for each shard of a run (${field('shard')})`,
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
  const s = parsed.data;
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
