/**
 * Threshold calibration (SPEC 3): CLTB / LTB (the paper's method, in-graph), MaxNorm
 * (layer- or channel-wise), RobustNorm (percentile), and fixed thresholds. Every method runs
 * the ANN on calibration batches; none needs labels or gradients.
 */
import type { PreparedModel } from '../model.js';
import type { Dataset } from '../data/dataset.js';
import { batchesOf, makeBatch, sampleOrder } from '../data/dataset.js';
import { Session, type Array32, type RuntimeOptions } from '../runtime/session.js';
import { instrument, thetaShape, type Granularity, type Instrumented } from './instrument.js';
import { delayFromLatencies, siteLatency, type DelayEstimate } from './delay.js';
import { UserError } from '../errors.js';

export const METHODS = ['cltb', 'ltb', 'maxnorm', 'cmaxnorm', 'robustnorm', 'fixed'] as const;
export type Method = (typeof METHODS)[number];

export function granularityOf(m: Method): Granularity {
  return m === 'cltb' || m === 'cmaxnorm' ? 'channel' : 'layer';
}

export interface Thresholds {
  readonly granularity: Granularity;
  /** Per site: θ per channel (length C) or one value (layer-wise). */
  readonly values: readonly Float32Array[];
}

export interface Progress {
  readonly phase: string;
  readonly done: number;
  readonly total: number;
}

export interface CalibrateOptions extends RuntimeOptions {
  readonly method: Method;
  readonly iterations: number;
  readonly batchSize: number;
  /** LTB step size c. */
  readonly stepSize?: number;
  /** RobustNorm percentile p. */
  readonly percentile?: number;
  readonly seed?: number;
  readonly shuffle?: boolean;
  /** For method "fixed": per site node name, one θ or one per channel. */
  readonly fixed?: Readonly<Record<string, number | readonly number[]>>;
  readonly onProgress?: (p: Progress) => void;
}

export interface Calibration {
  readonly method: Method;
  readonly thresholds: Thresholds;
  readonly delay: DelayEstimate;
  readonly iterations: number;
  readonly batchSize: number;
  readonly samples: number;
  readonly seconds: number;
}

export function siteChannels(m: PreparedModel): number[] {
  return m.plan.sites.map((s) => (m.shapes.get(s.input) as readonly number[])[0]);
}

/** Rank (with batch axis) of each site's input. */
export function siteRanks(m: PreparedModel): number[] {
  return m.plan.sites.map((s) => (m.shapes.get(s.input) as readonly number[]).length + 1);
}

/** Feeds for θ inputs of an instrumented graph. */
export function thetaFeeds(m: PreparedModel, inst: Instrumented, th: Thresholds): Record<string, Array32> {
  const ranks = siteRanks(m);
  const channels = siteChannels(m);
  const feeds: Record<string, Array32> = {};
  inst.thetaInputs.forEach((name, i) => {
    feeds[name] = { dims: thetaShape(ranks[i], channels[i], th.granularity), data: th.values[i] };
  });
  return feeds;
}

function inputFeed(m: PreparedModel, x: Float32Array, n: number): Record<string, Array32> {
  return { [m.inputName]: { dims: [n, ...m.inputShape], data: x } };
}

export async function calibrate(m: PreparedModel, data: Dataset, opts: CalibrateOptions): Promise<Calibration> {
  if (!(opts.iterations >= 1) || !Number.isInteger(opts.iterations)) throw new UserError(`--iterations must be a positive integer (got ${opts.iterations})`);
  if (!(opts.batchSize >= 1) || !Number.isInteger(opts.batchSize)) throw new UserError(`--batch must be a positive integer (got ${opts.batchSize})`);
  const t0 = performance.now();
  const order = sampleOrder(data.size, opts.seed ?? 0, opts.shuffle ?? true);
  const batches = [...batchesOf(order, Math.min(opts.batchSize, data.size), opts.iterations)];
  let thresholds: Thresholds;
  switch (opts.method) {
    case 'cltb': case 'ltb': thresholds = await runLtb(m, data, batches, opts); break;
    case 'maxnorm': case 'cmaxnorm': thresholds = await runMaxNorm(m, data, batches, opts); break;
    case 'robustnorm': thresholds = await runRobustNorm(m, data, batches, opts); break;
    case 'fixed': thresholds = fixedThresholds(m, opts.fixed); break;
    default: throw new UserError(`unknown method "${String(opts.method)}" (known: ${METHODS.join(', ')})`);
  }
  const delay = await estimateDelay(m, data, batches[0], thresholds, opts);
  return {
    method: opts.method, thresholds, delay, iterations: opts.iterations, batchSize: opts.batchSize,
    samples: opts.method === 'fixed' ? 0 : batches.reduce((a, b) => a + b.length, 0),
    seconds: (performance.now() - t0) / 1000,
  };
}

/**
 * Run a calibration graph over the batches in order, one ONNX Runtime call each; `feeds`
 * gives the extra inputs of each call (θ for LTB), `visit` reads the requested outputs.
 */
async function overBatches(
  m: PreparedModel, data: Dataset, batches: readonly number[][], inst: Instrumented, opts: CalibrateOptions, phase: string,
  outputs: readonly string[], visit: (out: Record<string, Array32>) => void, feeds: () => Record<string, Array32> = () => ({}),
): Promise<void> {
  const s = await Session.create(inst.graph, opts);
  try {
    for (let it = 0; it < batches.length; it++) {
      const b = makeBatch(data, batches[it], m.normalize);
      visit(await s.run({ ...inputFeed(m, b.x, b.n), ...feeds() }, outputs));
      opts.onProgress?.({ phase, done: it + 1, total: batches.length });
    }
  } finally {
    await s.release();
  }
}

async function runLtb(m: PreparedModel, data: Dataset, batches: number[][], opts: CalibrateOptions): Promise<Thresholds> {
  const granularity = granularityOf(opts.method);
  const channels = siteChannels(m);
  const inst = instrument(m.graph, m.plan, channels, { mode: 'ltb', granularity, stepSize: opts.stepSize ?? 1, ranks: siteRanks(m) });
  let th: Thresholds = { granularity, values: channels.map((c) => new Float32Array(granularity === 'channel' ? c : 1)) };
  // Each batch's updated θ is fed back as θ for the next batch.
  await overBatches(m, data, batches, inst, opts, 'calibrate', inst.thetaOutputs, (out) => {
    th = { granularity, values: inst.thetaOutputs.map((o) => Float32Array.from(out[o].data)) };
  }, () => thetaFeeds(m, inst, th));
  return th;
}

async function runMaxNorm(m: PreparedModel, data: Dataset, batches: number[][], opts: CalibrateOptions): Promise<Thresholds> {
  const granularity = granularityOf(opts.method);
  const chanMax = await channelMaxima(m, data, batches, opts, 'calibrate');
  return { granularity, values: chanMax.map((c) => (granularity === 'channel' ? c : Float32Array.of(Math.max(...c)))) };
}

/** max over the calibration set of ReLU(x), per site and channel. */
async function channelMaxima(m: PreparedModel, data: Dataset, batches: number[][], opts: CalibrateOptions, phase: string): Promise<Float32Array[]> {
  const channels = siteChannels(m);
  const inst = instrument(m.graph, m.plan, channels, { mode: 'relu', granularity: 'channel', stats: ['chanMax'], ranks: siteRanks(m) });
  const names = inst.stats.chanMax as readonly string[];
  const best = channels.map((c) => new Float32Array(c)); // zeros: max of ReLU is ≥ 0
  await overBatches(m, data, batches, inst, opts, phase, names, (out) => names.forEach((name, i) => {
    const v = out[name].data;
    for (let k = 0; k < v.length; k++) if (v[k] > best[i][k]) best[i][k] = v[k];
  }));
  return best;
}

const BINS = 1 << 16;

/** p-th percentile of the positive activations of each site, layer-wise (two passes: max, then histogram). */
async function runRobustNorm(m: PreparedModel, data: Dataset, batches: number[][], opts: CalibrateOptions): Promise<Thresholds> {
  const p = opts.percentile ?? 99.9;
  if (!(p > 0 && p <= 100)) throw new UserError(`--percentile must be in (0, 100] (got ${p})`);
  const maxima = (await channelMaxima(m, data, batches, opts, 'calibrate (max)')).map((c) => Math.max(...c));
  const inst = instrument(m.graph, m.plan, siteChannels(m), { mode: 'relu', granularity: 'layer', stats: ['x'], ranks: siteRanks(m) });
  const names = inst.stats.x as readonly string[];
  const hist = names.map(() => new Float64Array(BINS));
  await overBatches(m, data, batches, inst, opts, 'calibrate (percentile)', names, (out) => names.forEach((name, i) => {
    const v = out[name].data;
    const h = hist[i];
    const scale = maxima[i] > 0 ? BINS / maxima[i] : 0;
    for (let k = 0; k < v.length; k++) if (v[k] > 0) h[Math.min(BINS - 1, Math.floor(v[k] * scale))]++;
  }));
  return { granularity: 'layer', values: hist.map((h, i) => Float32Array.of(percentileFromHistogram(h, maxima[i], p))) };
}

/** The p-th percentile of values binned uniformly over (0, max], interpolated within a bin. */
export function percentileFromHistogram(h: ArrayLike<number>, max: number, p: number): number {
  let total = 0;
  for (let i = 0; i < h.length; i++) total += h[i];
  if (total === 0 || max <= 0) return 0;
  const target = (p / 100) * total;
  let acc = 0;
  for (let i = 0; i < h.length; i++) {
    if (acc + h[i] >= target && h[i] > 0) {
      const frac = (target - acc) / h[i];
      return ((i + frac) / h.length) * max;
    }
    acc += h[i];
  }
  return max;
}

function fixedThresholds(m: PreparedModel, fixed: CalibrateOptions['fixed']): Thresholds {
  if (!fixed) throw new UserError('method "fixed" needs thresholds (--thresholds FILE)');
  const channels = siteChannels(m);
  const perChannel = Object.values(fixed).some((v) => Array.isArray(v) && v.length > 1);
  const values = m.plan.sites.map((s, i) => {
    const v = fixed[s.node];
    if (v === undefined) throw new UserError(`thresholds file: no value for neuron site "${s.node}" (sites: ${m.plan.sites.map((t) => t.node).join(', ')})`);
    const arr = typeof v === 'number' ? [v] : [...v];
    if (arr.some((a) => typeof a !== 'number' || !Number.isFinite(a) || a < 0)) throw new UserError(`thresholds file: site "${s.node}" has a value that is not a finite number ≥ 0`);
    if (perChannel) {
      if (arr.length === 1) return new Float32Array(channels[i]).fill(arr[0]);
      if (arr.length !== channels[i]) throw new UserError(`thresholds file: site "${s.node}" has ${arr.length} values, expected 1 or ${channels[i]}`);
    } else if (arr.length !== 1) {
      throw new UserError(`thresholds file: site "${s.node}" has ${arr.length} values, expected 1`);
    }
    return Float32Array.from(arr);
  });
  return { granularity: perChannel ? 'channel' : 'layer', values };
}

/** d̂ on the first calibration batch, in clip mode with the final thresholds (SPEC 5). */
export async function estimateDelay(m: PreparedModel, data: Dataset, batch: number[], th: Thresholds, opts: RuntimeOptions): Promise<DelayEstimate> {
  const inst = instrument(m.graph, m.plan, siteChannels(m), { mode: 'clip', granularity: th.granularity, stats: ['chanMeanPos'], ranks: siteRanks(m) });
  const names = inst.stats.chanMeanPos as readonly string[];
  const b = makeBatch(data, batch, m.normalize);
  const s = await Session.create(inst.graph, opts);
  const out = await s.run({ ...inputFeed(m, b.x, b.n), ...thetaFeeds(m, inst, th) }, names).finally(() => s.release());
  const latencies = names.map((n, i) => siteLatency(out[n].data, th.values[i]));
  return delayFromLatencies(m.plan, latencies, [m.inputName]);
}
