/**
 * Simulation: a spiking network and test data in, a record out — the task's metric at every T
 * (with and without delayed evaluation), firing rates, operations and energy, and, when asked,
 * the ANN and clipped-ANN references and the per-site errors. One simulation of the largest T
 * gives every T and window (docs/algorithm.md §5).
 */
import path from 'node:path';
import type { Dataset } from '../data/dataset.js';
import { openDataset } from '../data/sources.js';
import { checkThreads, type RuntimeOptions } from '../ort/session.js';
import { definedOnly } from '../calibrate/calibrate.js';
import type { Snn } from '../snn/network.js';
import type { SnnMetadata } from '../snn/format.js';
import { DEFAULT_ENGINE, ENGINES, type Engine } from '../runtime/simulate.js';
import { TASKS, type Task } from '../tasks/task.js';
import { checkEnergyConstants, energyConstants, energyOf, type EnergyConstants } from '../energy/energy.js';
import { siteErrors as measureSiteErrors, type SiteErrors } from '../analysis/site-errors.js';
import { annReference, type References } from '../evaluate/reference.js';
import { checkSteps, delayAt, firingRates, simulateWindows, type Window } from '../evaluate/windows.js';
import type { SimulateRecord, SimulationResult } from '../report/record.js';
import type { OnProgress } from '../progress.js';
import { checkInteger, optionError } from '../errors.js';
import { checkPreprocess } from './convert.js';

export type DelayRule = 'auto' | 'fit' | 'off' | number;

export interface SimulateOptions extends RuntimeOptions {
  /** Numbers of time steps to report (default 8, 16, 32, 64, 128, 256); one simulation of the largest. */
  readonly T?: readonly number[];
  /**
   * Where the readout window starts: `auto` (default) uses d = min(d̂, ⌊T/2⌋) with the estimated
   * delay d̂; `fit` the delay fitted per T at conversion (convert's `delayFit`); `off` averages
   * all steps; a number d averages steps d+1..T (at most T−1 discarded).
   */
  readonly delay?: DelayRule;
  /** Samples per batch (default 100). */
  readonly batchSize?: number;
  /** What the model does and how it is scored; default: from the data (masks → segmentation, boxes → detection, clips → video, else classification). */
  readonly task?: Task;
  /**
   * How the step graph is driven: `steps` (default) calls it from JS, several steps per call;
   * `loop` runs an ONNX Loop per batch; `auto` times both on the first batches and keeps the
   * faster. Their kernels round differently, so `auto` can differ from run to run by a spike
   * (one image in 2000 on fashion-vgg at T = 8): the default is the reproducible one.
   */
  readonly engine?: Engine;
  /** Also score the source ANN and the clipped ANN on the same samples (default false; needs `snn.source`). */
  readonly references?: boolean;
  /** Samples for the per-site error analysis (default 0: none; needs `snn.source` and a step-form network). */
  readonly siteErrors?: number;
  /** T of the per-site error analysis (default: the largest T). */
  readonly siteErrorsT?: number;
  /** Energy constants: a preset (`paper`, default; `45nm`) or your own. */
  readonly energy?: string | EnergyConstants;
  /**
   * Image data given as a spec: the preprocessing preset (`imagenet`, `resize:H,W`, `none`);
   * default: the one stored in the converted file, else none (images must have the input size).
   */
  readonly preprocess?: string;
  /** The model's name in the record (default: the source ANN's file name). */
  readonly modelName?: string;
  readonly onProgress?: OnProgress;
}

/** The defaults of every simulation option (the CLI shows these in --help). */
export const SIMULATE_DEFAULTS = {
  T: [8, 16, 32, 64, 128, 256], delay: 'auto', batchSize: 100, engine: DEFAULT_ENGINE, references: false, siteErrors: 0, energy: 'paper',
} as const;

export interface ResolvedSimulateOptions extends SimulateOptions {
  readonly T: readonly number[];
  readonly delay: DelayRule;
  readonly batchSize: number;
  readonly engine: Engine;
  readonly references: boolean;
  readonly siteErrors: number;
  readonly energy: EnergyConstants;
}

/** The options with defaults filled in, checked before any work starts (T sorted, without repeats). */
export function resolveSimulateOptions(options: SimulateOptions = {}): ResolvedSimulateOptions {
  const o = { ...SIMULATE_DEFAULTS, ...definedOnly(options) };
  const T = checkSteps(o.T);
  if (o.delay !== 'auto' && o.delay !== 'fit' && o.delay !== 'off' && !(typeof o.delay === 'number' && Number.isInteger(o.delay) && o.delay >= 0)) {
    throw optionError('delay', `must be "auto", "fit", "off" or an integer ≥ 0 (got ${String(o.delay)})`);
  }
  if (typeof o.references !== 'boolean') throw optionError('references', `must be true or false (got ${String(o.references)})`);
  checkInteger('batchSize', o.batchSize, 1);
  checkInteger('siteErrors', o.siteErrors, 0);
  checkThreads(o.threads);
  if (o.siteErrorsT !== undefined) checkInteger('siteErrorsT', o.siteErrorsT, 1);
  if (o.task !== undefined && !(TASKS as readonly string[]).includes(o.task)) throw optionError('task', `"${String(o.task)}" is not a task (known: ${TASKS.join(', ')})`);
  if (!(ENGINES as readonly string[]).includes(o.engine)) throw optionError('engine', `"${String(o.engine)}" is not an engine (known: ${ENGINES.join(', ')})`);
  const energy = typeof o.energy === 'string' ? energyConstants(o.energy) : checkEnergyConstants(o.energy);
  if (o.preprocess !== undefined) checkPreprocess(o.preprocess);
  return { ...o, T, energy };
}

/** The delay at T under a rule: d̂'s window rule, the fitted delay, none, or the user's (never ≥ T). */
export function delayFor(rule: DelayRule, T: number, delay: SnnMetadata['delay']): number {
  if (rule === 'auto') return delayAt(T, delay.estimated);
  if (rule === 'off') return 0;
  if (rule === 'fit') {
    const fitted = delay.fitted;
    if (!fitted) throw optionError('delay', '"fit" needs delays fitted at conversion (convert with delayFit, --delay-fit T)');
    if (T > fitted.length) throw optionError('delay', `"fit": the network has fitted delays up to T = ${fitted.length}, not ${T} (convert with a larger delayFit)`);
    return fitted[T - 1];
  }
  return delayAt(T, delay.estimated, rule);
}

function ruleText(rule: DelayRule): string {
  if (rule === 'auto') return 'min(estimated, floor(T/2))';
  if (rule === 'fit') return 'fitted (label-free)';
  return `fixed ${rule === 'off' ? 0 : rule}`;
}

/**
 * Open test data for a spiking network: image sources decode to its input shape with the given
 * preprocessing, else the one stored in the file.
 */
export function openSimulationData(snn: Snn, spec: string, limit?: number, preprocess?: string): Dataset {
  const p = preprocess ?? snn.meta.preprocess;
  return openDataset(spec, limit, { sampleShape: snn.spec.inputShape, preprocess: p === undefined ? null : checkPreprocess(p) });
}

/** Simulate `snn` on `data` (a data set or its spec, e.g. "mnist:test") for the largest T and score every T. */
export async function simulate(snn: Snn, data: string | Dataset, options: SimulateOptions = {}): Promise<SimulateRecord> {
  const o = resolveSimulateOptions(options);
  if (o.references && !snn.source) throw optionError('references', 'needs the source ANN (convert keeps it; loadSnn finds it next to the file or takes it as the ann option)');
  if (o.siteErrors > 0 && !snn.source) throw optionError('siteErrors', 'needs the source ANN (convert keeps it; loadSnn finds it next to the file or takes it as the ann option)');
  if (o.siteErrors > 0 && snn.meta.unit) throw optionError('siteErrors', 'needs the θ-amplitude form (this network is in the unit-spike form; its sites emit 0/1)');
  if (o.siteErrors > 0 && snn.form !== 'step') throw optionError('siteErrors', 'needs a step-form network (a loop-form file hides the sites\' outputs)');
  const dhat = snn.meta.delay.estimated;
  const Tmax = o.T[o.T.length - 1];
  // Each T twice: with the delay and over all steps.
  const windows: Window[] = o.T.flatMap((T) => [{ T, delay: delayFor(o.delay, T, snn.meta.delay) }, { T, delay: 0 }]);
  const test = typeof data === 'string' ? openSimulationData(snn, data, undefined, o.preprocess) : data;
  const run = await simulateWindows(snn, test, windows, o);
  const results: SimulationResult[] = o.T.map((T, i) => ({
    T, delay: windows[2 * i].delay,
    metric: run.scores[2 * i].metric, secondary: run.scores[2 * i].secondary,
    metricNoDelay: run.scores[2 * i + 1].metric, secondaryNoDelay: run.scores[2 * i + 1].secondary,
  }));

  const { spec } = snn;
  const th = snn.thresholds();
  let refs: References | null = null;
  let errors: SiteErrors | null = null;
  if (snn.source && o.references) refs = await annReference(snn.source, test, th, { batchSize: o.batchSize, threads: o.threads, task: run.task });
  if (snn.source && o.siteErrors > 0) {
    const T = o.siteErrorsT ?? Tmax;
    errors = await measureSiteErrors(snn.source, snn.graph, spec, th, test, { T, delay: delayFor(o.delay, T, snn.meta.delay), samples: o.siteErrors, threads: o.threads });
  }
  const cal = snn.meta.calibration;
  return {
    kind: 'simulate',
    task: run.task,
    model: o.modelName ?? path.basename(snn.meta.source.file),
    data: test.name,
    samples: run.samples,
    created: new Date().toISOString(),
    method: cal.method,
    iterations: cal.iterations,
    calibration: {
      ...cal, ...(snn.meta.corrections ? { corrections: snn.meta.corrections } : {}),
      ...(snn.timing ? { seconds: snn.timing.calibrate, convertSeconds: snn.timing.convert, ...(snn.timing.refine !== undefined ? { refineSeconds: snn.timing.refine } : {}) } : {}),
    },
    maxpool: spec.maxpool,
    ann: refs ? refs.ann : null,
    clippedAnn: refs ? refs.clipped : null,
    delay: { estimated: dhat, latencies: snn.meta.delay.latencies, rule: ruleText(o.delay) },
    results,
    firingRates: firingRates(spec, run.stats, Tmax),
    energy: energyOf(spec, { samples: run.samples, sopsPerStep: run.stats.sopsPerStep }, results.map((r) => ({ T: r.T, metric: r.metric })), refs ? refs.ann.metric : null, o.energy),
    siteErrors: errors,
    simulationSeconds: run.stats.seconds,
  };
}

