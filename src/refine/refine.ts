/**
 * Corrections after conversion (docs/algorithm.md §10), each run on one calibration batch with
 * the SNN simulated and compared with the clipped ANN:
 *
 * - bias calibration: site by site, front to back, a per-channel current −(E[SNN output / T] −
 *   E[clipped ANN output]) added at every step (the mean over samples and positions);
 * - potential calibration: site by site, the initial membrane of every neuron raised by
 *   T·(E[clipped ANN output] − E[SNN output / T]) (the mean over samples);
 * - label-free delay fit: from one simulation of T_max steps, for every T ≤ T_max the delay d
 *   whose window average of the readout agrees best with the clipped ANN's readout (the same
 *   classes, then L2).
 *
 * The first two are tuned for one T and cost one SNN simulation of T steps per site; the fit
 * costs one simulation of T_max steps.
 */
import type { Batch } from '../data/dataset.js';
import { numel } from '../graph/ir.js';
import { Session, type Array32, type RuntimeOptions } from '../ort/session.js';
import type { PreparedModel } from '../model/prepare.js';
import { instrument, thetaFeeds } from '../calibrate/instrument.js';
import type { Thresholds } from '../calibrate/thresholds.js';
import { buildSnn, type SiteCorrections, type SnnGraph } from '../snn/build.js';
import type { PoolMode } from '../snn/format.js';
import type { NeuronGroup } from '../snn/neuron.js';
import { probeSteps, withOutputs } from '../runtime/probe.js';
import type { OnProgress } from '../progress.js';

export interface CorrectionOptions extends RuntimeOptions {
  /** Correct each site's bias for this T. */
  readonly bias?: number;
  /** Correct each site's initial membrane for this T. */
  readonly potential?: number;
  /**
   * Per-channel bias, then per-channel threshold scale (the spikes' amplitude) for this T, as
   * parallel conversion calibrates them: the scale makes the channel's mean output the clipped ANN's.
   */
  readonly scale?: number;
  /** Per-step per-channel biases for steps 1 … this T (FTBC-style): each step's mean output made the clipped ANN's. */
  readonly stepBias?: number;
  /** The neurons are groups (docs/algorithm.md §11): the corrections are found for that network. */
  readonly group?: NeuronGroup | null;
  readonly onProgress?: OnProgress;
}

/** The batch as the model's input feed. */
function inputOf(m: PreparedModel, b: Batch): Array32 {
  return { dims: [b.n, ...m.inputShape], data: b.x };
}

/** The clipped ANN on one batch: every site's output and the readout. */
async function clippedAnn(
  m: PreparedModel,
  th: Thresholds,
  input: Array32,
  opts: RuntimeOptions,
): Promise<Record<string, Array32>> {
  const inst = instrument(m, { mode: 'clip', granularity: th.granularity });
  const s = await Session.create(
    withOutputs(
      inst.graph,
      m.plan.sites.map((site) => site.output),
    ),
    opts,
  );
  try {
    return await s.run({ [m.inputName]: input, ...thetaFeeds(inst, th) });
  } finally {
    await s.release();
  }
}

/** Bias and/or potential calibration, site by site; each step sees the corrections before it. */
export async function siteCorrections(
  m: PreparedModel,
  th: Thresholds,
  maxpool: PoolMode,
  batch: Batch,
  opts: CorrectionOptions,
): Promise<SiteCorrections> {
  const input = inputOf(m, batch);
  const ann = await clippedAnn(m, th, input, opts);
  const sites = m.plan.sites;
  const bias: (Float32Array | null)[] = sites.map(() => null);
  const potential: (Float32Array | null)[] = sites.map(() => null);
  const scale: (Float32Array | null)[] = sites.map(() => null);
  const stepBias: (Float32Array | null)[] = sites.map(() => null);
  const stages = [
    ...(opts.bias ? [['bias', opts.bias] as const] : []),
    ...(opts.scale ? [['scale', opts.scale] as const] : []),
    ...(opts.potential ? [['potential', opts.potential] as const] : []),
    ...(opts.stepBias ? [['stepBias', opts.stepBias] as const] : []),
  ];
  const now = (): SiteCorrections => ({ bias, potential, scale, stepBias });
  let done = 0;
  for (const site of sites) {
    const shape = m.shapes.get(site.input) as readonly number[];
    const per = numel(shape);
    const C = shape[0];
    const spatial = per / C;
    const n = batch.n;
    const target = ann[site.output].data;
    /** The SNN's output at this site summed over T steps, with the corrections so far. */
    const simulated = async (T: number): Promise<Float64Array> => {
      const step = buildSnn(m, th, maxpool, now(), opts.group ?? null);
      const sum = new Float64Array(n * per);
      await probeSteps(
        step.graph,
        step.spec,
        input,
        T,
        [site.output],
        (_, out) => {
          const v = out[site.output].data;
          for (let j = 0; j < sum.length; j++) sum[j] += v[j];
        },
        opts,
      );
      return sum;
    };
    /** Per channel: the mean over samples and positions of ō − a (ō the average output over T steps). */
    const channelGap = (sum: Float64Array, T: number): Float64Array => {
      const delta = new Float64Array(C);
      for (let j = 0; j < sum.length; j++) delta[Math.floor((j % per) / spatial)] += sum[j] / T - target[j];
      return delta.map((d) => d / (n * spatial));
    };
    for (const [kind, T] of stages) {
      if (kind === 'bias') {
        bias[site.index] = Float32Array.from(channelGap(await simulated(T), T), (d) => -d);
      } else if (kind === 'scale') {
        // Parallel conversion's pair: a bias that centres the channel, then an amplitude that matches its mean.
        const shift = channelGap(await simulated(T), T);
        bias[site.index] = Float32Array.from(shift, (d, c) => (bias[site.index]?.[c] ?? 0) - d);
        const sum = await simulated(T);
        const out = new Float64Array(C);
        const want = new Float64Array(C);
        for (let j = 0; j < sum.length; j++) {
          const c = Math.floor((j % per) / spatial);
          out[c] += sum[j] / T;
          want[c] += target[j];
        }
        scale[site.index] = Float32Array.from(out, (o, c) => (o > 0 && want[c] > 0 ? want[c] / o : 1));
      } else if (kind === 'potential') {
        const sum = await simulated(T);
        const v0 = new Float64Array(per);
        for (let j = 0; j < sum.length; j++) v0[j % per] += target[j] - sum[j] / T;
        potential[site.index] = Float32Array.from(v0, (v) => (T * v) / n);
      } else {
        stepBias[site.index] = await perStepBiases(
          m,
          th,
          maxpool,
          now(),
          opts.group ?? null,
          site,
          input,
          target,
          T,
          opts,
        );
      }
      opts.onProgress?.({
        phase: `${kind} calibration`,
        done: ++done,
        total: sites.length * stages.length,
        unit: stages.length > 1 ? 'sites × corrections' : 'sites',
      });
    }
  }
  return {
    bias: opts.bias || opts.scale ? bias : undefined,
    potential: opts.potential ? potential : undefined,
    scale: opts.scale ? scale : undefined,
    stepBias: opts.stepBias ? stepBias : undefined,
  };
}

/** Passes of the per-step bias fit, and the share of each pass's remaining gap it corrects. */
const STEP_BIAS_PASSES = 3;
const STEP_BIAS_RATE = 0.5;

/**
 * Per-step biases of one site (FTBC-style), for steps 1 … T: passes over the batch, each a
 * simulation of T steps with the biases so far, in which every step t moves β_t,c by
 * STEP_BIAS_RATE × the mean over samples and positions of (a − o_t): the clipped ANN's output
 * less this step's output. A step whose outputs already average to the clipped ANN's is left as
 * it is, so with zero gaps nothing changes.
 */
async function perStepBiases(
  m: PreparedModel,
  th: Thresholds,
  maxpool: PoolMode,
  corrections: SiteCorrections,
  group: NeuronGroup | null,
  site: PreparedModel['plan']['sites'][number],
  input: Array32,
  target: Float32Array,
  T: number,
  opts: RuntimeOptions,
): Promise<Float32Array> {
  const shape = m.shapes.get(site.input) as readonly number[];
  const per = numel(shape);
  const C = shape[0];
  const spatial = per / C;
  const n = input.dims[0];
  const beta = new Float32Array(T * C);
  const mine = (): SiteCorrections => ({
    ...corrections,
    stepBias: (corrections.stepBias ?? m.plan.sites.map(() => null)).map((v, k) => (k === site.index ? beta : v)),
  });
  for (let pass = 0; pass < STEP_BIAS_PASSES; pass++) {
    const step = buildSnn(m, th, maxpool, mine(), group);
    const gap = new Float64Array(T * C);
    await probeSteps(
      step.graph,
      step.spec,
      input,
      T,
      [site.output],
      (t, out) => {
        const o = out[site.output].data;
        for (let j = 0; j < o.length; j++) gap[(t - 1) * C + Math.floor((j % per) / spatial)] += target[j] - o[j];
      },
      opts,
    );
    for (let k = 0; k < beta.length; k++) beta[k] += (STEP_BIAS_RATE * gap[k]) / (n * spatial);
  }
  return beta;
}

/** The longest simulation the delay fit runs (it compares all T²/2 windows). */
export const MAX_FIT_STEPS = 4096;

/** Most float64 values the delay fit keeps (running sums of the readout at every step): 128 MiB. */
const FIT_VALUES = 2 ** 24;

export interface DelayFit {
  /** The chosen delay for T = 1 … T_max (index T − 1). */
  readonly delays: readonly number[];
  /** Its relative error ‖window average − clipped ANN‖ / ‖clipped ANN‖, per T. */
  readonly errors: readonly number[];
  /** Classification: the share of samples whose class agrees with the clipped ANN's, per T; null otherwise. */
  readonly agreement: readonly number[] | null;
  /** Samples the fit used. */
  readonly samples: number;
}

/**
 * For every T ≤ `steps`, the delay d < T whose window average of the readout (steps d+1..T)
 * comes closest to the clipped ANN's readout on the samples of `batch`: for a classifier
 * (a readout of one axis) the d whose predicted classes agree with the clipped ANN's on the most
 * samples, then the smallest L2 distance; otherwise the smallest L2 distance; then the
 * smallest d. Takes as many samples of the batch as fit in FIT_VALUES.
 */
export async function fitDelays(
  snn: SnnGraph,
  m: PreparedModel,
  th: Thresholds,
  batch: Batch,
  steps: number,
  opts: RuntimeOptions,
): Promise<DelayFit> {
  const R = numel(snn.spec.readoutShape);
  const n = Math.max(1, Math.min(batch.n, Math.floor(FIT_VALUES / (R * (steps + 1)))));
  const per = numel(m.inputShape);
  const input: Array32 = { dims: [n, ...m.inputShape], data: batch.x.subarray(0, n * per) };
  const target = (await clippedAnn(m, th, input, opts))[m.plan.readout].data;
  const size = n * R;
  // cum[t·size + j] = sum of steps 1..t of readout value j.
  const cum = new Float64Array((steps + 1) * size);
  await probeSteps(
    snn.graph,
    snn.spec,
    input,
    steps,
    [snn.spec.readout],
    (t, out) => {
      const r = out[snn.spec.readout].data;
      const at = t * size;
      for (let j = 0; j < size; j++) cum[at + j] = cum[at - size + j] + r[j];
    },
    opts,
  );
  const classify = snn.spec.readoutShape.length === 1 && R > 1;
  const argmax = (v: ArrayLike<number>, i: number): number => {
    let best = 0;
    for (let c = 1; c < R; c++) if (v[i * R + c] > v[i * R + best]) best = c;
    return best;
  };
  const want = classify ? Int32Array.from({ length: n }, (_, i) => argmax(target, i)) : null;
  let norm = 0;
  for (let j = 0; j < size; j++) norm += target[j] ** 2;
  const delays: number[] = [];
  const errors: number[] = [];
  const agreement: number[] = [];
  const window = new Float64Array(size);
  for (let T = 1; T <= steps; T++) {
    let best = { d: 0, agree: -1, err: Infinity };
    for (let d = 0; d < T; d++) {
      const inv = 1 / (T - d);
      let err = 0;
      for (let j = 0, hi = T * size, lo = d * size; j < size; j++) {
        window[j] = (cum[hi + j] - cum[lo + j]) * inv;
        err += (window[j] - target[j]) ** 2;
      }
      let agree = 0;
      if (want) for (let i = 0; i < n; i++) if (argmax(window, i) === want[i]) agree++;
      if (agree > best.agree || (agree === best.agree && err < best.err)) best = { d, agree, err };
    }
    delays.push(best.d);
    errors.push(norm > 0 ? Math.sqrt(best.err / norm) : Math.sqrt(best.err));
    agreement.push(best.agree / n);
  }
  return { delays, errors, agreement: want ? agreement : null, samples: n };
}
