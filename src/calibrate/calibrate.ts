/**
 * Calibration (docs/algorithm.md §3, §5): the options and their defaults, the batches in a
 * seeded order, one threshold method run over them, then the delay estimate d̂ with the final
 * thresholds.
 */
import { definedOnly } from '../options.js';
import type { Dataset } from '../data/dataset.js';
import { batchAt, prefetchBatches, readBatch, sampleOrder } from '../data/dataset.js';
import { Session, checkRuntime, type Array32, type RuntimeOptions } from '../ort/session.js';
import { siteChannels, type PreparedModel } from '../model/prepare.js';
import type { OnProgress } from '../progress.js';
import { SpikeportError, checkInteger, optionError } from '../errors.js';
import { instrument, thetaFeeds, type Instrumented } from './instrument.js';
import { delayFromLatencies, siteLatency, type DelayEstimate } from './delay.js';
import type { Thresholds } from './thresholds.js';
import {
  BUILT_IN,
  METHODS,
  type CalibrationContext,
  type FixedThresholds,
  type Method,
  type ThresholdMethod,
} from './methods.js';

export interface CalibrateOptions extends RuntimeOptions {
  /** Threshold method: a built-in name (default `cltb`) or your own `ThresholdMethod`. */
  readonly method?: Method | ThresholdMethod;
  /**
   * Calibration batches (default 100). For LTB each is one update step, and the count is the
   * method's regulariser: few give low thresholds (best at small T), many give thresholds near
   * the maximum (best at large T). MaxNorm and RobustNorm look at this many batches.
   */
  readonly iterations?: number;
  /** Samples per calibration batch (default 100). */
  readonly batchSize?: number;
  /** LTB step size c in θ ← θ + 2c·mean((x − θ)⁺) (default 1). */
  readonly stepSize?: number;
  /** RobustNorm: the percentile p of the positive activations, in (0, 100] (default 99.9). */
  readonly percentile?: number;
  /** Seed of the calibration sample order (default 0). */
  readonly seed?: number;
  /** Shuffle the calibration samples (default true); false takes them in data set order. */
  readonly shuffle?: boolean;
  /** Method `fixed`: the thresholds, per site node name (one θ, or one per channel). */
  readonly thresholds?: FixedThresholds;
  readonly onProgress?: OnProgress;
}

/** The defaults of every calibration option (the CLI shows these in --help). */
export const CALIBRATION_DEFAULTS = {
  method: 'cltb',
  iterations: 100,
  batchSize: 100,
  stepSize: 1,
  percentile: 99.9,
  seed: 0,
  shuffle: true,
} as const;

export interface ResolvedCalibrateOptions extends CalibrateOptions {
  readonly method: ThresholdMethod;
  readonly iterations: number;
  readonly batchSize: number;
  readonly stepSize: number;
  readonly percentile: number;
  readonly seed: number;
  readonly shuffle: boolean;
}

function methodOf(m: Method | ThresholdMethod): ThresholdMethod {
  if (typeof m === 'string') {
    if (!Object.hasOwn(BUILT_IN, m))
      throw optionError('method', `"${m}" is not a method (known: ${METHODS.join(', ')}, or a ThresholdMethod object)`);
    return BUILT_IN[m];
  }
  if (
    typeof m !== 'object' ||
    m === null ||
    typeof m.thresholds !== 'function' ||
    typeof m.name !== 'string' ||
    m.name === ''
  ) {
    throw optionError('method', 'must be a method name or an object with a name and a thresholds(context) function');
  }
  if (Object.hasOwn(BUILT_IN, m.name) && BUILT_IN[m.name as Method] !== m)
    throw optionError('method', `"${m.name}" is the name of a built-in method; give yours another name`);
  return m;
}

/** The options with defaults filled in, checked before any work starts. */
export function resolveCalibrateOptions(opts: CalibrateOptions = {}): ResolvedCalibrateOptions {
  const o = { ...CALIBRATION_DEFAULTS, ...definedOnly(opts) };
  const method = methodOf(o.method);
  checkInteger('iterations', o.iterations, 1);
  checkInteger('batchSize', o.batchSize, 1);
  checkInteger('seed', o.seed, 0, 2 ** 32 - 1, 'a 32-bit seed');
  checkRuntime(o);
  if (!(Number.isFinite(o.stepSize) && o.stepSize > 0))
    throw optionError('stepSize', `must be a finite number > 0 (got ${o.stepSize})`);
  if (!(o.percentile > 0 && o.percentile <= 100))
    throw optionError('percentile', `must be in (0, 100] (got ${o.percentile})`);
  if (typeof o.shuffle !== 'boolean') throw optionError('shuffle', `must be true or false (got ${String(o.shuffle)})`);
  if (method === BUILT_IN.fixed && !o.thresholds)
    throw optionError('thresholds', 'must be given for method "fixed" (per site node: θ or one θ per channel)');
  if (method !== BUILT_IN.fixed && o.thresholds)
    throw optionError('thresholds', `are only used by method "fixed" (the method is "${method.name}")`);
  return { ...o, method };
}

export interface Calibration {
  /** The method's name. */
  readonly method: string;
  readonly thresholds: Thresholds;
  readonly delay: DelayEstimate;
  readonly iterations: number;
  readonly batchSize: number;
  /** Samples seen (batches × batch size; 0 for fixed thresholds). */
  readonly samples: number;
  /** The first calibration batch's sample indices: d̂ is estimated on it (and the corrections after conversion run on it). */
  readonly firstBatch: readonly number[];
  readonly seconds: number;
}

function inputFeed(m: PreparedModel, x: Float32Array, n: number): Record<string, Array32> {
  return { [m.inputName]: { dims: [n, ...m.inputShape], data: x } };
}

/** The first `count` samples of calibration's seeded order (wrapping around a small data set). */
export function calibrationSamples(size: number, options: CalibrateOptions, count: number): number[] {
  const opts = { ...CALIBRATION_DEFAULTS, ...definedOnly(options) };
  return batchAt(sampleOrder(size, opts.seed, opts.shuffle), count, 0);
}

/** Calibrate thresholds on `data` and estimate the delay d̂. */
export async function calibrate(m: PreparedModel, data: Dataset, options: CalibrateOptions = {}): Promise<Calibration> {
  const opts = resolveCalibrateOptions(options);
  const t0 = performance.now();
  const order = sampleOrder(data.size, opts.seed, opts.shuffle);
  const size = Math.min(opts.batchSize, data.size);
  const batch = (b: number): number[] => batchAt(order, size, b);
  const thresholds = await opts.method.thresholds(context(m, data, { count: opts.iterations, batch }, opts));
  checkResult(m, thresholds, opts.method);
  const firstBatch = batch(0);
  const delay = await estimateDelay(m, data, firstBatch, thresholds, opts);
  const usesData = opts.method.usesData !== false;
  return {
    method: opts.method.name,
    thresholds,
    delay,
    iterations: usesData ? opts.iterations : 0,
    batchSize: size,
    samples: usesData ? opts.iterations * size : 0,
    firstBatch,
    seconds: (performance.now() - t0) / 1000,
  };
}

/**
 * A method's result must have one θ, or one per channel, for every site, each finite and ≥ 0.
 * From a built-in method anything else comes from the model (NaN weights) or the step size.
 */
function checkResult(m: PreparedModel, th: Thresholds, method: ThresholdMethod): void {
  const channels = siteChannels(m);
  const ok =
    th &&
    Array.isArray(th.values) &&
    th.values.length === channels.length &&
    (th.granularity === 'channel' || th.granularity === 'layer') &&
    th.values.every(
      (v, i) => v instanceof Float32Array && v.length === (th.granularity === 'channel' ? channels[i] : 1),
    );
  if (!ok)
    throw optionError(
      'method',
      `"${method.name}" returned thresholds of the wrong shape (expected, per site, ${channels.join(', ')} values channel-wise or 1 layer-wise)`,
    );
  th.values.forEach((v, i) => {
    const bad = v.find((x: number) => !(Number.isFinite(x) && x >= 0));
    if (bad === undefined) return;
    const site = m.plan.sites[i].node;
    if (Object.values(BUILT_IN).includes(method)) {
      throw new SpikeportError(
        'unsupported-model',
        `calibration gave the threshold ${bad} at neuron site "${site}": the activations overflowed (check the input normalisation, normalize, and stepSize)`,
      );
    }
    throw optionError(
      'method',
      `"${method.name}" returned the threshold ${bad} at neuron site "${site}" (thresholds must be finite and ≥ 0)`,
    );
  });
}

interface Batches {
  readonly count: number;
  batch(b: number): number[];
}

function context(
  m: PreparedModel,
  data: Dataset,
  batches: Batches,
  opts: ResolvedCalibrateOptions,
): CalibrationContext {
  const run: CalibrationContext['run'] = async (inst, outputs, visit, feeds = () => ({}), phase = 'calibrate') => {
    const s = await Session.create(inst.graph, opts);
    try {
      let it = 0;
      for await (const b of prefetchBatches(data, batches.count, (i) => batches.batch(i), m.normalize)) {
        visit(await s.run({ ...inputFeed(m, b.x, b.n), ...feeds() }, outputs));
        opts.onProgress?.({ phase, done: ++it, total: batches.count, unit: 'batches' });
      }
    } finally {
      await s.release();
    }
  };
  let sitesInst: Instrumented | null = null;
  return {
    model: m,
    channels: siteChannels(m),
    batches: batches.count,
    options: { stepSize: opts.stepSize, percentile: opts.percentile, thresholds: opts.thresholds },
    run,
    async forEachBatch(visit, phase) {
      sitesInst ??= instrument(m, { mode: 'ann', granularity: 'layer', stats: ['x'] });
      const names = sitesInst.stats.x as readonly string[];
      await run(sitesInst, names, (out) => visit(names.map((n) => out[n])), undefined, phase);
    },
  };
}

/** d̂ on the first calibration batch, in clip mode with the final thresholds (docs/algorithm.md §5). */
export async function estimateDelay(
  m: PreparedModel,
  data: Dataset,
  batch: number[],
  th: Thresholds,
  opts: RuntimeOptions,
): Promise<DelayEstimate> {
  const inst = instrument(m, { mode: 'clip', granularity: th.granularity, stats: ['chanMeanPos'] });
  const names = inst.stats.chanMeanPos as readonly string[];
  const b = await readBatch(data, batch, m.normalize);
  const s = await Session.create(inst.graph, opts);
  const out = await s.run({ ...inputFeed(m, b.x, b.n), ...thetaFeeds(inst, th) }, names).finally(() => s.release());
  const latencies = names.map((n, i) => siteLatency(out[n].data, th.values[i]));
  return delayFromLatencies(m.plan, latencies, [m.inputName]);
}
