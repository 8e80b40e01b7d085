/**
 * Threshold methods behind one interface (docs/algorithm.md §3): CLTB / LTB (the paper's
 * local threshold balancing, in-graph), MaxNorm (layer- or channel-wise), RobustNorm (a
 * percentile), fixed thresholds — and any method a caller writes. Every method sees the ANN's
 * calibration batches through a `CalibrationContext`; none needs labels or gradients.
 */
import type { Array32 } from '../ort/session.js';
import type { PreparedModel } from '../model/prepare.js';
import { siteChannels } from '../model/prepare.js';
import { optionError } from '../errors.js';
import { instrument, thetaFeeds, type Instrumented } from './instrument.js';
import type { Granularity, Thresholds } from './thresholds.js';

/** A site's pre-activation input for one calibration batch: [n, C, …] (or [n, F]). */
export interface SiteInput {
  readonly dims: readonly number[];
  readonly data: Float32Array;
}

/** What a threshold method may use: the prepared ANN, the batches, and ways to run the ANN over them. */
export interface CalibrationContext {
  readonly model: PreparedModel;
  /** Channels of each site (axis 1), front to back. */
  readonly channels: readonly number[];
  /** The calibration batches, in order; each is one iteration. */
  readonly batches: number;
  /** The resolved calibration options (step size, percentile, fixed thresholds, …). */
  readonly options: MethodOptions;
  /**
   * Run the ANN (its own activations) over every batch in order and hand each site's pre-activation
   * input x to `visit` (one array per site, front to back).
   */
  forEachBatch(visit: (inputs: readonly SiteInput[]) => void, phase?: string): Promise<void>;
  /**
   * Run an instrumented graph (instrument.ts) over every batch in order: `feeds` gives each
   * call's extra inputs (e.g. θ), `visit` reads the outputs named.
   */
  run(
    inst: Instrumented,
    outputs: readonly string[],
    visit: (out: Record<string, Array32>) => void,
    feeds?: () => Record<string, Array32>,
    phase?: string,
  ): Promise<void>;
}

export interface MethodOptions {
  readonly stepSize: number;
  readonly percentile: number;
  readonly thresholds?: FixedThresholds;
}

/** A way to choose thresholds. */
export interface ThresholdMethod {
  /** Its name in records and file metadata. */
  readonly name: string;
  /** Whether it looks at data (false for fixed thresholds: no samples are counted). */
  readonly usesData?: boolean;
  thresholds(ctx: CalibrationContext): Promise<Thresholds>;
}

/** Thresholds for method "fixed": per site node name, one θ or one θ per channel. */
export type FixedThresholds = Readonly<Record<string, number | readonly number[]>>;

export const METHODS = ['cltb', 'ltb', 'maxnorm', 'cmaxnorm', 'robustnorm', 'qcfs', 'fixed'] as const;
/**
 * `cltb`: channel-wise local threshold balancing (the paper's method); `ltb`: layer-wise;
 * `maxnorm` / `cmaxnorm`: the maximum activation, layer- / channel-wise; `robustnorm`: a
 * percentile of the positive activations, layer-wise; `qcfs`: the clip level the ANN was trained
 * with (λ of a QCFS activation, c of Clip(0, c)), no data; `fixed`: thresholds given by the caller.
 */
export type Method = (typeof METHODS)[number];

/** LTB: θ ← θ + 2c · mean((x − θ)⁺) once per batch, computed in the graph (θ in, updated θ out). */
function ltb(granularity: Granularity, name: string): ThresholdMethod {
  return {
    name,
    usesData: true,
    async thresholds(ctx) {
      const inst = instrument(ctx.model, { mode: 'ltb', granularity, stepSize: ctx.options.stepSize });
      let th: Thresholds = {
        granularity,
        values: ctx.channels.map((c) => new Float32Array(granularity === 'channel' ? c : 1)),
      };
      // Each batch's updated θ is fed back as θ for the next batch.
      await ctx.run(
        inst,
        inst.thetaOutputs,
        (out) => {
          th = { granularity, values: inst.thetaOutputs.map((o) => Float32Array.from(out[o].data)) };
        },
        () => thetaFeeds(inst, th),
      );
      return th;
    },
  };
}

/** max over the calibration set of ReLU(x), per site and channel (a reduction in the graph). */
async function channelMaxima(ctx: CalibrationContext, phase: string): Promise<Float32Array[]> {
  const inst = instrument(ctx.model, { mode: 'ann', granularity: 'channel', stats: ['chanMax'] });
  const names = inst.stats.chanMax as readonly string[];
  const best = ctx.channels.map((c) => new Float32Array(c)); // zeros: max of ReLU is ≥ 0
  await ctx.run(
    inst,
    names,
    (out) =>
      names.forEach((name, i) => {
        const v = out[name].data;
        for (let k = 0; k < v.length; k++) if (v[k] > best[i][k]) best[i][k] = v[k];
      }),
    undefined,
    phase,
  );
  return best;
}

function maxNorm(granularity: Granularity, name: string): ThresholdMethod {
  return {
    name,
    usesData: true,
    async thresholds(ctx) {
      const chanMax = await channelMaxima(ctx, 'calibrate');
      return {
        granularity,
        values: chanMax.map((c) => (granularity === 'channel' ? c : Float32Array.of(Math.max(...c)))),
      };
    },
  };
}

const BINS = 1 << 16;

/** p-th percentile of the positive activations of each site, layer-wise (two passes: max, then a histogram). */
const robustNorm: ThresholdMethod = {
  name: 'robustnorm',
  usesData: true,
  async thresholds(ctx) {
    const p = ctx.options.percentile;
    const maxima = (await channelMaxima(ctx, 'calibrate (max)')).map((c) => Math.max(...c));
    const hist = maxima.map(() => new Float64Array(BINS));
    await ctx.forEachBatch(
      (inputs) =>
        inputs.forEach(({ data: v }, i) => {
          const h = hist[i];
          const scale = maxima[i] > 0 ? BINS / maxima[i] : 0;
          for (let k = 0; k < v.length; k++) if (v[k] > 0) h[Math.min(BINS - 1, Math.floor(v[k] * scale))]++;
        }),
      'calibrate (percentile)',
    );
    return {
      granularity: 'layer',
      values: hist.map((h, i) => Float32Array.of(percentileFromHistogram(h, maxima[i], p))),
    };
  },
};

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

/** θ = the activation's own clip level: λ of QCFS (trained for conversion), c of Clip(0, c). */
const qcfs: ThresholdMethod = {
  name: 'qcfs',
  usesData: false,
  async thresholds(ctx) {
    const relu = ctx.model.plan.sites.find((s) => !Number.isFinite(s.cap));
    if (relu)
      throw optionError(
        'method',
        `"qcfs" keeps the clip levels of QCFS (or Clip(0, c)) activations, but site "${relu.node}" is a ReLU without one; use cltb`,
      );
    return { granularity: 'layer', values: ctx.model.plan.sites.map((s) => Float32Array.of(s.cap)) };
  },
};

const fixed: ThresholdMethod = {
  name: 'fixed',
  usesData: false,
  async thresholds(ctx) {
    return fixedThresholds(ctx.model, ctx.options.thresholds);
  },
};

/** Check fixed thresholds against the model's sites and shape them as Thresholds. */
export function fixedThresholds(m: PreparedModel, given: FixedThresholds | undefined): Thresholds {
  if (!given || typeof given !== 'object' || Array.isArray(given))
    throw optionError(
      'thresholds',
      'must be given for method "fixed" as an object: per site node, θ or one θ per channel',
    );
  const channels = siteChannels(m);
  const names = m.plan.sites.map((t) => t.node);
  const unknown = Object.keys(given).filter((k) => !names.includes(k));
  if (unknown.length)
    throw optionError(
      'thresholds',
      `names ${unknown.map((k) => `"${k}"`).join(', ')}, which ${unknown.length > 1 ? 'are not neuron sites' : 'is not a neuron site'} (sites: ${names.join(', ')})`,
    );
  const perChannel = Object.values(given).some((v) => Array.isArray(v) && v.length > 1);
  const values = m.plan.sites.map((s, i) => {
    const v: unknown = given[s.node];
    if (v === undefined)
      throw optionError('thresholds', `has no value for neuron site "${s.node}" (sites: ${names.join(', ')})`);
    if (typeof v !== 'number' && !Array.isArray(v))
      throw optionError('thresholds', `for site "${s.node}": expected a number or an array of numbers`);
    const arr: unknown[] = typeof v === 'number' ? [v] : [...(v as unknown[])];
    if (arr.length === 0 || arr.some((a) => typeof a !== 'number' || !Number.isFinite(a) || a < 0))
      throw optionError('thresholds', `for site "${s.node}": a value is not a finite number ≥ 0`);
    if (perChannel) {
      if (arr.length === 1) return new Float32Array(channels[i]).fill(arr[0] as number);
      if (arr.length !== channels[i])
        throw optionError('thresholds', `for site "${s.node}": ${arr.length} values, expected 1 or ${channels[i]}`);
    } else if (arr.length !== 1) {
      throw optionError('thresholds', `for site "${s.node}": ${arr.length} values, expected 1`);
    }
    return Float32Array.from(arr as number[]);
  });
  return { granularity: perChannel ? 'channel' : 'layer', values };
}

/** The built-in methods by name. */
export const BUILT_IN: Readonly<Record<Method, ThresholdMethod>> = {
  cltb: ltb('channel', 'cltb'),
  ltb: ltb('layer', 'ltb'),
  maxnorm: maxNorm('layer', 'maxnorm'),
  cmaxnorm: maxNorm('channel', 'cmaxnorm'),
  robustnorm: robustNorm,
  qcfs,
  fixed,
};
