/**
 * What a simulation is asked: its options with their defaults and checks, which of them define
 * the run's results (OPTION_ROLES: shards of one run must agree on those), and the delay rule's
 * meaning at each T. simulate.ts runs what this describes.
 */
import { isNormalize, type Normalize } from '../data/dataset.js';
import { checkRuntime, defaultThreads, type RuntimeOptions } from '../ort/session.js';
import { definedOnly } from '../options.js';
import type { SnnMetadata } from '../snn/format.js';
import { DEFAULT_ENGINE, ENGINES, type Engine } from '../runtime/engines.js';
import { TASKS, type Task } from '../tasks/task.js';
import { checkDetectionOptions, type DetectionOptions } from '../tasks/heads.js';
import { checkEnergyConstants, energyConstants, type EnergyConstants } from '../energy/energy.js';
import { checkSteps, delayAt } from '../evaluate/windows.js';
import type { OnNotice, OnProgress } from '../progress.js';
import { checkInteger, optionError, field } from '../errors.js';
import { checkShard, type Shard } from './shards.js';
import { checkPreprocess } from './convert.js';
import { checkFrameRate } from '../data/video-files.js';
import { checkTarget, profileWith, type Target } from './nir.js';

export type DelayRule = 'auto' | 'fit' | 'half' | 'off' | number;

export interface SimulateOptions extends RuntimeOptions {
  /** Numbers of time steps to report (default 8, 16, 32, 64, 128, 256); one simulation of the largest. */
  readonly T?: readonly number[];
  /**
   * Where the readout window starts: `auto` (default) uses d = min(d̂, ⌊T/2⌋) with the estimated
   * delay d̂; `fit` the delay fitted per T at conversion (convert's `delayFit`); `half` d = ⌊T/2⌋
   * (the paper's setting for segmentation); `off` averages all steps; a number d averages steps
   * d+1..T (at most T−1 discarded).
   */
  readonly delay?: DelayRule;
  /** Samples per batch (default 100). */
  readonly batchSize?: number;
  /** What the model does and how it is scored; default: from the data (masks → segmentation, boxes → detection, clips → video, else classification). */
  readonly task?: Task;
  /**
   * Detection: the head (`retinanet`, `fcos`, `centernet`; default: recognised from the outputs)
   * and its thresholds (default: torchvision's for RetinaNet and FCOS; tasks/heads.ts).
   */
  readonly detection?: DetectionOptions;
  /**
   * How the step graph is driven: `auto` (default) runs the first batch with `steps` and, when the
   * work left can pay for trying (runtime's `worthTrying`), times `fused` on the next and keeps the
   * faster; `steps` runs the whole step graph in ONNX Runtime, several steps per call; `fused` the
   * layers in ONNX Runtime and each neuron update in WebAssembly (the same spikes as `steps`, bit
   * for bit); `loop` an ONNX Loop per batch (its kernels round differently).
   */
  readonly engine?: Engine;
  /**
   * With `engine` auto: the engine that runs the first batch (default `steps`, then `fused` is
   * tried when the work left can pay). `fused`: every batch with the fused engine, where it can
   * run (else `steps`); the same results. `--workers auto` sets it for its workers on networks
   * with large states (runtime's autoWorkerPlan).
   */
  readonly autoStart?: 'steps' | 'fused';
  /** Also score the source ANN and the clipped ANN on the same samples (default false; needs `snn.source`). */
  readonly references?: boolean;
  /** Samples for the per-site error analysis (default 0: none; needs `snn.source` and a step-form network). */
  readonly siteErrors?: number;
  /**
   * Test images kept in the record for the report (default 0: none). Segmentation and detection:
   * this many images (spread over the data), with the SNN's masks or boxes at the smallest, a
   * middle and the largest T, the ground truth and (with `references`) the ANN's. Classification
   * and video: up to 8 × this many misclassified images at the smallest T. Taken from the same
   * simulation; the ANN runs once more on those images only.
   */
  readonly pictures?: number;
  /** T of the per-site error analysis (default: the largest T). */
  readonly siteErrorsT?: number;
  /** Energy constants: a preset (`paper`, default; `45nm`) or your own. */
  readonly energy?: string | EnergyConstants;
  /**
   * Image data given as a spec: the preprocessing preset (`imagenet`, `resize:H,W`, `none`);
   * default: the one stored in the converted file, else none (images must have the input size).
   */
  readonly preprocess?: string;
  /** Video files given as a spec: resample to this many frames per second; default: the rate stored at conversion, else each video's own. */
  readonly frameRate?: number;
  /** Video files given as a spec: clips per video (default 5); each video is also scored from its clips' averaged softmax. */
  readonly clipsPerVideo?: number;
  /** COCO given as a spec: the category ids by class index (0 = background), e.g. the `voc` preset's. */
  readonly categories?: readonly number[];
  /** The model's name in the record (default: the source ANN's file name). */
  readonly modelName?: string;
  /** Simulate only shard K of N (simulateShard; default: the whole run). */
  readonly shard?: Shard;
  /**
   * Keep progress in this file (a shard file, written atomically as batches finish); if it
   * exists, continue from it: the batches it lists are not simulated again.
   */
  readonly checkpoint?: string;
  /** At most one checkpoint write per this many seconds (default 10; the last batch is always written). */
  readonly checkpointSeconds?: number;
  /**
   * Input normalisation per channel (or one value) instead of the one stored in the network:
   * the samples are read with it, for the SNN and the ANN references alike. Default: the
   * network's (its file's `spikeport.normalize`), else none.
   */
  readonly normalize?: Normalize;
  /**
   * Worker processes (simulate only; default 1: this process): the run is cut into this many
   * shards, each simulated in a process of its own with threads/N threads, and merged: the same
   * record. `auto`: one per thread when the run is long enough for each worker's setup to pay,
   * its layers are small and each worker gets at least two batches, else one. Each worker opens
   * the data itself, so it must come from a spec (a string, or `openDataset`'s result). With
   * `checkpoint`, worker k keeps its own in `<checkpoint>.<k>`.
   */
  readonly workers?: number | 'auto';
  /**
   * Also simulate the network as a neuromorphic target computes it (its neuron, reset and
   * arithmetic; api/nir.ts), on the same samples and windows: the record's `asTarget`. A profile
   * name, or the profile with its weights quantised to `weightBits` bits (0: float weights).
   * Simulate only, in one process.
   */
  readonly asTarget?: Target | AsTargetOptions;
  /** Ends the run: worker processes are stopped, temporary files removed, checkpoints kept; the promise rejects with the signal's reason. */
  readonly signal?: AbortSignal;
  readonly onProgress?: OnProgress;
  /**
   * Told as the run goes what the user should know now (e.g. that it continues from a
   * checkpoint). What bears on the results is in the record's `notices`.
   */
  readonly onNotice?: OnNotice;
}

/** `asTarget` with quantised weights. */
export interface AsTargetOptions {
  readonly target: Target;
  /** The weights as integers of this many bits, one scale per neuron node (0: float weights, the profile without its integers). */
  readonly weightBits?: number;
}

/** Most pictures a record holds (option `pictures`). */
export const MAX_PICTURES = 16;

/**
 * Every simulation option, and what it is to a run: `result` options change its numbers, so every
 * shard of one run must agree on them (their values are the run's identity, RunConfig.options,
 * and shards that differ refuse to merge); `label` options change only what the record is called;
 * `process` options say how or where this process runs; `addition` options add a part to a whole
 * run's record without changing the rest (a shard refuses them). The compiler checks that the
 * list names every option, and `RunIdentity` that a value is given for every `result` one: a new
 * option cannot be left out of a run's identity by mistake.
 */
export const OPTION_ROLES = {
  T: 'result',
  delay: 'result',
  batchSize: 'result',
  task: 'result',
  engine: 'result',
  references: 'result',
  siteErrors: 'result',
  siteErrorsT: 'result',
  pictures: 'result',
  energy: 'result',
  preprocess: 'result',
  normalize: 'result',
  frameRate: 'result',
  clipsPerVideo: 'result',
  categories: 'result',
  detection: 'result',
  modelName: 'label',
  shard: 'process',
  checkpoint: 'process',
  checkpointSeconds: 'process',
  onProgress: 'process',
  onNotice: 'process',
  threads: 'process',
  device: 'process',
  workers: 'process',
  signal: 'process',
  autoStart: 'process',
  asTarget: 'addition',
} as const satisfies Record<keyof SimulateOptions, 'result' | 'label' | 'process' | 'addition'>;

type ResultOption = {
  [K in keyof typeof OPTION_ROLES]: (typeof OPTION_ROLES)[K] extends 'result' ? K : never;
}[keyof typeof OPTION_ROLES];

/** The value of every option that changes results, as a run's identity holds it. */
export type RunIdentity = Readonly<Record<ResultOption, unknown>> & Readonly<Record<string, unknown>>;

/** The defaults of every simulation option (the CLI shows these in --help). */
export const SIMULATE_DEFAULTS = {
  T: [8, 16, 32, 64, 128, 256],
  delay: 'auto',
  batchSize: 100,
  engine: DEFAULT_ENGINE,
  references: false,
  siteErrors: 0,
  pictures: 0,
  energy: 'paper',
  checkpointSeconds: 10,
  workers: 1,
} as const;

export interface ResolvedSimulateOptions extends SimulateOptions {
  readonly T: readonly number[];
  readonly delay: DelayRule;
  readonly batchSize: number;
  readonly engine: Engine;
  readonly references: boolean;
  readonly siteErrors: number;
  readonly pictures: number;
  readonly energy: EnergyConstants;
  readonly checkpointSeconds: number;
  readonly workers: number | 'auto';
  readonly asTarget?: { readonly target: Target; readonly weightBits?: number };
}

/** The options with defaults filled in, checked before any work starts (T sorted, without repeats). */
export function resolveSimulateOptions(options: SimulateOptions = {}): ResolvedSimulateOptions {
  const o = { ...SIMULATE_DEFAULTS, ...definedOnly(options) };
  const T = checkSteps(o.T);
  if (
    o.delay !== 'auto' &&
    o.delay !== 'fit' &&
    o.delay !== 'half' &&
    o.delay !== 'off' &&
    !(typeof o.delay === 'number' && Number.isInteger(o.delay) && o.delay >= 0)
  ) {
    throw optionError('delay', `must be "auto", "fit", "half", "off" or an integer ≥ 0 (got ${String(o.delay)})`);
  }
  if (typeof o.references !== 'boolean')
    throw optionError('references', `must be true or false (got ${String(o.references)})`);
  checkInteger('batchSize', o.batchSize, 1);
  checkInteger('siteErrors', o.siteErrors, 0);
  checkRuntime(o);
  if (o.shard !== undefined) checkShard(o.shard);
  if (!(typeof o.checkpointSeconds === 'number' && o.checkpointSeconds >= 0 && Number.isFinite(o.checkpointSeconds)))
    throw optionError('checkpointSeconds', `must be a number of seconds ≥ 0 (got ${String(o.checkpointSeconds)})`);
  checkInteger('pictures', o.pictures, 0, MAX_PICTURES, 'the pictures are stored in the record');
  if (o.siteErrorsT !== undefined) checkInteger('siteErrorsT', o.siteErrorsT, 1);
  const detection = o.detection === undefined ? undefined : checkDetectionOptions(definedOnly(o.detection));
  if (o.task !== undefined && !(TASKS as readonly string[]).includes(o.task))
    throw optionError('task', `"${String(o.task)}" is not a task (known: ${TASKS.join(', ')})`);
  if (!(ENGINES as readonly string[]).includes(o.engine))
    throw optionError('engine', `"${String(o.engine)}" is not an engine (known: ${ENGINES.join(', ')})`);
  if (o.autoStart !== undefined && o.autoStart !== 'steps' && o.autoStart !== 'fused')
    throw optionError('autoStart', `must be "steps" or "fused" (got ${String(o.autoStart)})`);
  const energy = typeof o.energy === 'string' ? energyConstants(o.energy) : checkEnergyConstants(o.energy);
  if (o.preprocess !== undefined) checkPreprocess(o.preprocess);
  checkFrameRate(o.frameRate);
  if (o.clipsPerVideo !== undefined) checkInteger('clipsPerVideo', o.clipsPerVideo, 1, 1000);
  if (
    o.categories !== undefined &&
    !(Array.isArray(o.categories) && o.categories.every((c) => Number.isSafeInteger(c) && c >= 0))
  )
    throw optionError('categories', 'must be a list of COCO category ids (integers ≥ 0; 0 = background)');
  if (o.normalize !== undefined && !isNormalize(o.normalize))
    throw optionError('normalize', 'must be { mean, std }: finite values, one or one per channel, every std > 0');
  if (o.workers !== 'auto') {
    checkInteger('workers', o.workers, 1);
    if (o.workers > defaultThreads())
      throw optionError(
        'workers',
        `${o.workers}: more processes than the ${defaultThreads()} cores here only slow the run down`,
      );
  }
  const asTarget = o.asTarget === undefined ? undefined : checkAsTarget(o.asTarget);
  if (asTarget && typeof o.workers === 'number' && o.workers > 1)
    throw optionError('asTarget', `runs in one process, without ${field('workers')}`);
  return { ...o, T, energy, ...(detection ? { detection } : {}), asTarget };
}

/** `asTarget` as a profile and its weight bits, checked. */
export function checkAsTarget(v: Target | AsTargetOptions): { target: Target; weightBits?: number } {
  const given = typeof v === 'string' ? { target: v } : v;
  if (given === null || typeof given !== 'object')
    throw optionError('asTarget', 'must be a target profile or { target, weightBits }');
  const target = checkTarget(String(given.target), 'asTarget');
  profileWith(target, given.weightBits);
  return { target, ...(given.weightBits !== undefined ? { weightBits: given.weightBits } : {}) };
}

/** The delay at T under a rule: d̂'s window rule, the fitted delay, none, or the user's (never ≥ T). */
export function delayFor(rule: DelayRule, T: number, delay: SnnMetadata['delay']): number {
  if (rule === 'auto') return delayAt(T, delay.estimated);
  if (rule === 'off') return 0;
  if (rule === 'half') return Math.floor(T / 2);
  if (rule === 'fit') {
    const fitted = delay.fitted;
    if (!fitted)
      throw optionError('delay', `"fit" needs delays fitted at conversion (convert with ${field('delayFit')} T)`);
    if (T > fitted.length)
      throw optionError(
        'delay',
        `"fit": the network has fitted delays up to T = ${fitted.length}, not ${T} (convert with a larger delayFit)`,
      );
    return fitted[T - 1];
  }
  return delayAt(T, delay.estimated, rule);
}
