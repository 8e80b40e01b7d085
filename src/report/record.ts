/**
 * What a run leaves behind, as JSON: `simulate --json` writes a SimulateRecord, each
 * `experiment` its own record. The report renders any of them (report/html.ts, markdown.ts).
 */
import type { EnergyReport } from '../energy/energy.js';
import type { SiteErrors } from '../analysis/site-errors.js';
import type { Pictures } from '../evaluate/pictures.js';
import { z } from 'zod';
import { TASKS, type Score, type Task } from '../tasks/task.js';
import { SpikeportError, isPrintable } from '../errors.js';
import type { Notice } from '../progress.js';
import { MAX_STEPS } from '../evaluate/windows.js';

/** The SNN's scores at one T. */
export interface SimulationResult {
  readonly T: number;
  /** The delay d used at this T. */
  readonly delay: number;
  /** The task's main metric with the readout averaged over steps delay+1..T, and its second metric. */
  readonly metric: number;
  readonly secondary: number | null;
  /** The same with the readout averaged over all T steps. */
  readonly metricNoDelay: number;
  readonly secondaryNoDelay: number | null;
}

/** The ceiling at one T: the metric of the ANN quantised to `levels` levels per site. */
export interface CeilingResult {
  readonly T: number;
  readonly levels: number;
  readonly metric: number;
  readonly secondary: number | null;
}

export interface RunInfo {
  /** What was scored (absent in records made before tasks: classification). */
  readonly task?: Task;
  /** The names of `metric` and `secondary` when they are not the task's (video-level runs: video top-1, clip top-1). */
  readonly metrics?: readonly [string, string];
  readonly model: string;
  readonly data: string;
  readonly samples: number;
  readonly created: string;
}

export interface SimulateRecord extends RunInfo {
  readonly kind: 'simulate';
  readonly method: string;
  readonly iterations: number;
  readonly calibration: Readonly<Record<string, unknown>>;
  readonly maxpool: string;
  readonly ann: Score | null;
  readonly clippedAnn: Score | null;
  /**
   * With per-sample normalisations frozen (calibration.normalization): the ANN with them frozen,
   * what the SNN converts; `ann` is then the original ANN and `clippedAnn` the frozen one clipped.
   */
  readonly frozenAnn?: Score;
  /**
   * The ceiling at each T (docs/algorithm.md §4.1): the ANN with every site quantised to the
   * `levels` an IF neuron (or group) can output in T steps. With the references only; absent in
   * older records.
   */
  readonly ceiling?: readonly CeilingResult[];
  readonly delay: { readonly estimated: number; readonly latencies: readonly number[]; readonly rule: string };
  readonly results: readonly SimulationResult[];
  readonly firingRates: readonly { readonly site: string; readonly rate: number }[];
  readonly energy: EnergyReport | null;
  readonly siteErrors: SiteErrors | null;
  /**
   * The simulation's wall-clock seconds: setting up the engines and running every time step
   * (not loading, references or reports). Several workers or shards: from the first one's start to
   * the last one's end (`times.workers` has each one's).
   */
  readonly simulationSeconds: number;
  /** Where the time went (absent in older records). */
  readonly times?: SimulationTimes;
  /** Batches simulated by each engine (absent in older records); `auto` runs its first batches with both. */
  readonly engines?: Readonly<Partial<Record<'steps' | 'fused' | 'loop', number>>>;
  /** A few test images with the SNN's (and the ANN's) predictions (simulate's `pictures`; absent in older records). */
  readonly pictures?: Pictures;
  /** The model's outputs that were scored, by name, with their per-sample shapes (absent in older records). */
  readonly outputs?: readonly OutputInfo[];
  /** Detection: the head that decoded the outputs and its thresholds (absent for other tasks and older records). */
  readonly detection?: DetectionInfo;
  /** The input normalisation the samples were read with (null: none; absent in older records). */
  readonly normalize?: { readonly mean: readonly number[]; readonly std: readonly number[] } | null;
  /**
   * What may make these numbers other than meant, one sentence each: no normalisation, no ANN
   * reference, thresholds that clip, labels in another class order than the model's (absent in
   * older records).
   */
  readonly notices?: readonly Notice[];
  /** With simulate's `asTarget`: the same samples and windows as the target computes them (absent otherwise). */
  readonly asTarget?: AsTargetRecord;
}

/** The run as a neuromorphic target computes it (its neuron, reset and arithmetic), next to spikeport's own. */
export interface AsTargetRecord {
  /** The target profile (api/nir.ts TARGETS). */
  readonly target: string;
  /** The profile's reset: `zero` or `subtract`. */
  readonly reset: string;
  /** Weights quantised to this many bits (0: float weights), when asked for. */
  readonly weightBits?: number;
  /** One line each: what the target cannot express and what was done instead. */
  readonly notes: readonly string[];
  /** The metric at every T, as in the record's `results`. */
  readonly results: readonly SimulationResult[];
}

/** One of the model's outputs: its name and per-sample shape. */
export interface OutputInfo {
  readonly name: string;
  readonly shape: readonly number[];
}

/** The detection head a run used (tasks/heads.ts): its kind, classes and thresholds. */
export interface DetectionInfo {
  readonly head: string;
  readonly classes: number;
  readonly scoreThreshold: number;
  readonly topCandidates: number;
  readonly nmsThreshold: number;
  readonly detectionsPerImage: number;
}

/** An output's axes: ONNX models have a handful; the cap keeps a hostile record small to hold. */
const MAX_AXES = 64;
export const outputInfoSchema = z.object({
  name: z.string(),
  shape: z.array(z.number().int().nonnegative()).max(MAX_AXES, `at most ${MAX_AXES} axes`),
});
export const detectionInfoSchema = z.object({
  head: z.string(),
  classes: z.number().int().positive(),
  scoreThreshold: z.number(),
  topCandidates: z.number().int().nonnegative(),
  nmsThreshold: z.number(),
  detectionsPerImage: z.number().int().positive(),
});

/** The times of one process's simulation, or (`workers`) of each worker's or shard's. */
export interface SimulationTimes {
  /** Seconds of the simulation: setup and steps (a resumed run: all its sessions). */
  readonly seconds?: number;
  /** Building the engines' graphs and ONNX Runtime sessions. */
  readonly setupSeconds?: number;
  /** Running the time steps of every batch. */
  readonly stepSeconds?: number;
  /** The ANN and clipped-ANN references on the same samples. */
  readonly referencesSeconds?: number;
  readonly engines?: Readonly<Partial<Record<'steps' | 'fused' | 'loop', number>>>;
  /** Several workers or shards: each one's times (the wall clock is simulationSeconds). */
  readonly workers?: readonly (SimulationTimes & { readonly shard: number; readonly batches: number })[];
}

export type { Pictures, PictureSample, PicturePrediction, PictureBox } from '../evaluate/pictures.js';

/** One curve of metric against T (a method, an iteration count, ...). */
export interface Curve {
  readonly label: string;
  readonly points: readonly { readonly T: number; readonly metric: number }[];
  readonly seconds?: number;
  readonly delay?: number;
}

export interface CurvesRecord extends RunInfo {
  readonly kind: 'ablation' | 'iterations' | 'plugplay';
  readonly ann: Score | null;
  readonly curves: readonly Curve[];
  readonly notes: readonly string[];
}

export interface DelayRecord extends RunInfo {
  readonly kind: 'delay';
  readonly ann: Score | null;
  readonly estimated: number;
  /** Per T: accuracy at each delay tried; `best` is the delay with the highest accuracy. */
  readonly sweeps: readonly {
    readonly T: number;
    readonly rule: number;
    readonly best: number;
    readonly points: readonly { readonly delay: number; readonly metric: number }[];
  }[];
}

export interface EnergyRow {
  readonly model: string;
  readonly ann: Score | null;
  readonly energy: EnergyReport;
  readonly firingRate: number;
}

export interface EnergyRecord extends RunInfo {
  readonly kind: 'energy';
  readonly rows: readonly EnergyRow[];
  readonly notes: readonly string[];
}

/** One setting of the fewer-steps experiment: its metric, SOPs and energy per sample at each T. */
export interface StepsRow {
  readonly label: string;
  /** A setting the project offered before groups and the timing calibrations. */
  readonly before: boolean;
  /** Conversion cost of the row, seconds (thresholds, plus the fit or every T's calibration). */
  readonly seconds: number;
  readonly points: readonly {
    readonly T: number;
    readonly delay: number;
    readonly metric: number;
    readonly sops: number;
    /** Joules per sample. */
    readonly energy: number;
  }[];
}

/** The fewer-steps experiment (experiments/fewer-steps.ts). */
export interface StepsRecord extends RunInfo {
  readonly kind: 'steps';
  readonly ann: Score | null;
  readonly clippedAnn: Score | null;
  /** The ceiling at each number of levels L (T, and K·T for each group size K). */
  readonly ceiling: readonly { readonly levels: number; readonly metric: number }[];
  readonly T: readonly number[];
  readonly groups: readonly number[];
  readonly energyConstants: { readonly name: string; readonly eSop: number; readonly eMac: number };
  /** MACs of one ANN pass per sample. */
  readonly annMacs: number;
  readonly rows: readonly StepsRow[];
  readonly notes: readonly string[];
}

export type RunRecord = SimulateRecord | CurvesRecord | DelayRecord | EnergyRecord | StepsRecord;

export const RECORD_KINDS = ['simulate', 'ablation', 'iterations', 'plugplay', 'delay', 'energy', 'steps'] as const;

// The schema of a record read back from JSON (spikeport report FILE). JSON has no ∞ or NaN: a
// non-finite number was written as null, and reads back as NaN where the type says number.
const num = z
  .number()
  .nullable()
  .transform((v) => v ?? Number.NaN);
const str = z.string();
/**
 * Rows of a record: every list is capped (a record of 400 000 rows took 4 GB to render), and the
 * lists indexed by T hold each T once, ascending, within the steps spikeport simulates.
 */
export const MAX_RECORD_ROWS = 100_000;
const rows = <T extends z.ZodType>(item: T) =>
  z.array(item).max(MAX_RECORD_ROWS, `at most ${MAX_RECORD_ROWS} rows (a record from spikeport has far fewer)`);
const step = z.number().int().min(1).max(MAX_STEPS);
const byT = <T extends z.ZodType<{ T: number }>>(item: T) =>
  rows(item).refine(
    (xs) => xs.every((x, i) => i === 0 || x.T > xs[i - 1].T),
    'each T once, in ascending order (as spikeport writes them)',
  );
const score = z.object({ metric: num, secondary: num.nullable() }).nullable();
const info = {
  task: z.enum(TASKS).optional(),
  metrics: z.tuple([str, str]).optional(),
  model: str,
  data: str,
  samples: num,
  created: str,
};
const cost = z.object({
  T: step,
  sops: num,
  macs: num,
  energy: num,
  fpsPerW: num,
  fpsPerWSopsOnly: num.nullable(),
  metric: num.nullable(),
});
const energy = z.object({
  constants: z.object({ name: str, eSop: num, eMac: num, note: str }),
  ann: z.object({ macs: num, energy: num, fpsPerW: num, metric: num.nullable() }),
  perT: byT(cost),
  sops90: cost.nullable(),
  sops95: cost.nullable(),
  layers: rows(
    z.object({
      node: str,
      opType: str,
      where: z.enum(['input', 'spiking', 'dense', 'tail']),
      macs: num,
      sops: num.nullable(),
      density: num.nullable(),
    }),
  ),
});
const siteErrors = z.object({
  T: num,
  delay: num,
  samples: num,
  sites: rows(z.object({ site: str, clipError: num, snnVsAnn: num, snnVsClipped: num })),
});
const pictureBox = z.object({
  label: num,
  x: num,
  y: num,
  w: num,
  h: num,
  score: num.optional(),
  crowd: z.boolean().optional(),
});
export const predictionSchema = z.object({
  label: num.optional(),
  mask: z
    .string()
    .regex(/^\d{1,3}:\d+( \d{1,3}:\d+)*$/, 'runs "class:count …"')
    .optional(),
  boxes: rows(pictureBox).optional(),
});
/** The record's pictures, checked (also read back from shard files). */
export const picturesSchema = z.object({
  task: z.enum(TASKS),
  width: z.number().int().positive(),
  height: z.number().int().positive(),
  maskWidth: z.number().int().positive().optional(),
  maskHeight: z.number().int().positive().optional(),
  windows: rows(z.object({ T: num, delay: num })),
  classes: rows(str).optional(),
  minScore: num.optional(),
  misclassified: num.optional(),
  checked: num.optional(),
  // Only PNG data URIs: the report puts them in an <img> as they are.
  samples: rows(
    z.object({
      index: num,
      image: z.string().regex(/^data:image\/png;base64,[A-Za-z0-9+/]*={0,2}$/, 'a PNG data URI'),
      truth: predictionSchema,
      ann: predictionSchema.nullable(),
      snn: rows(predictionSchema),
    }),
  ),
});
/** A notice, as read back from a file: it is printed and rendered, so no control characters. */
export const noticeSchema = z.object({
  code: z.string().max(64),
  message: z.string().max(4096).refine(isPrintable, 'must not hold control characters'),
  field: z.string().max(64).optional(),
});
/** A number of batches. */
const batches = z.number().int().nonnegative();
const engineBatches = z.object({ steps: batches, fused: batches, loop: batches }).partial().strict();
const ownTimes = {
  seconds: num.optional(),
  setupSeconds: num.optional(),
  stepSeconds: num.optional(),
  referencesSeconds: num.optional(),
  engines: engineBatches.optional(),
};
const times = z.object({
  ...ownTimes,
  workers: rows(z.object({ ...ownTimes, shard: batches, batches })).optional(),
});
const simulationResult = z.object({
  T: step,
  delay: num,
  metric: num,
  secondary: num.nullable(),
  metricNoDelay: num,
  secondaryNoDelay: num.nullable(),
});
const recordSchema: z.ZodType<RunRecord> = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('simulate'),
    ...info,
    method: str,
    iterations: num,
    calibration: z.record(z.string(), z.unknown()),
    maxpool: str,
    ann: score,
    clippedAnn: score,
    frozenAnn: score.unwrap().optional(),
    ceiling: byT(z.object({ T: num, levels: num, metric: num, secondary: num.nullable() })).optional(),
    delay: z.object({ estimated: num, latencies: rows(num), rule: str }),
    results: byT(simulationResult),
    firingRates: rows(z.object({ site: str, rate: num })),
    energy: energy.nullable(),
    siteErrors: siteErrors.nullable(),
    simulationSeconds: num,
    times: times.optional(),
    engines: z.object({ steps: batches, fused: batches, loop: batches }).partial().strict().optional(),
    pictures: picturesSchema.optional(),
    outputs: rows(outputInfoSchema).optional(),
    detection: detectionInfoSchema.optional(),
    normalize: z
      .object({ mean: z.array(num), std: z.array(num) })
      .nullable()
      .optional(),
    notices: z.array(noticeSchema).optional(),
    asTarget: z
      .object({
        target: str,
        reset: str,
        weightBits: num.optional(),
        notes: rows(str),
        results: byT(simulationResult),
      })
      .optional(),
  }),
  z.object({
    kind: z.enum(['ablation', 'iterations', 'plugplay']),
    ...info,
    ann: score,
    notes: rows(str),
    curves: rows(
      z.object({
        label: str,
        points: byT(z.object({ T: step, metric: num })),
        seconds: num.optional(),
        delay: num.optional(),
      }),
    ),
  }),
  z.object({
    kind: z.literal('delay'),
    ...info,
    ann: score,
    estimated: num,
    sweeps: byT(
      z.object({
        T: step,
        rule: num,
        best: num,
        points: rows(z.object({ delay: num, metric: num })).refine(
          (xs) => xs.every((x, i) => i === 0 || x.delay > xs[i - 1].delay),
          'each delay once, in ascending order',
        ),
      }),
    ),
  }),
  z.object({
    kind: z.literal('steps'),
    ...info,
    ann: score,
    clippedAnn: score,
    ceiling: z.array(z.object({ levels: num, metric: num })),
    T: z.array(num),
    groups: z.array(num),
    energyConstants: z.object({ name: str, eSop: num, eMac: num }),
    annMacs: num,
    rows: z.array(
      z.object({
        label: str,
        before: z.boolean(),
        seconds: num,
        points: z.array(z.object({ T: num, delay: num, metric: num, sops: num, energy: num })),
      }),
    ),
    notes: z.array(str),
  }),
  z.object({
    kind: z.literal('energy'),
    ...info,
    notes: rows(str),
    rows: rows(z.object({ model: str, ann: score, energy, firingRate: num })),
  }),
]);

/** A record from JSON, every field checked; `where` names it in the one-line error. */
export function parseRecord(json: unknown, where: string): RunRecord {
  const kind = (json as { kind?: unknown } | null)?.kind;
  if (
    typeof (json as { format?: unknown } | null)?.format === 'string' &&
    String((json as { format: string }).format).startsWith('spikeport-shard/')
  ) {
    throw new SpikeportError(
      'invalid-file',
      `${where} is a shard file: merge the shards of its run into a record (spikeport merge, or mergeShards)`,
    );
  }
  if (!(RECORD_KINDS as readonly unknown[]).includes(kind)) {
    throw new SpikeportError(
      'invalid-file',
      `${where} is not a spikeport record (no "kind" among ${RECORD_KINDS.join(', ')}); records are what simulate and the experiments write as JSON`,
    );
  }
  const parsed = recordSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new SpikeportError(
      'invalid-file',
      `${where}: a ${String(kind)} record with a bad field ${issue.path.join('.') || '(root)'}: ${issue.message}`,
    );
  }
  return parsed.data;
}
