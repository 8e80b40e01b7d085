/**
 * Conversion for a target (convert --target, docs/nir.md): the target's neurons start at 0 and
 * may reset to 0, which spikeport's neuron does not; what the target can represent instead is
 * a current per channel (folded into the bias of the layer feeding the neuron) and a threshold
 * per channel (folded into that layer's weights where the chip has one threshold). Both are
 * calibrated with the target's own neuron in the loop: site by site, front to back, the NIR
 * graph the target gets is simulated for T steps on a calibration batch and each channel's
 * mean spike rate is brought to the clipped ANN's mean output / θ.
 *
 * - Reset by subtraction: no charge is lost, only the θ/2 head start, which costs up to one
 *   spike per neuron over the run (a rate error up to 1/T): a bias per channel, tuned for T.
 * - Reset to 0: every spike throws away the charge above threshold, a loss that grows with the
 *   rate and does not shrink with T; the threshold per channel is scaled by the ratio of the
 *   rates a few times (lower threshold, more spikes), then a bias takes the rest.
 */
import type { Batch } from '../data/dataset.js';
import { numel } from '../graph/ir.js';
import { Session, type Array32, type RuntimeOptions } from '../ort/session.js';
import type { PreparedModel } from '../model/prepare.js';
import { instrument, thetaFeeds } from '../calibrate/instrument.js';
import type { Thresholds } from '../calibrate/thresholds.js';
import type { DecodedSnn, TargetCalibration } from '../snn/format.js';
import { CLOCK, toNir, type TargetCorrections } from '../nir/graph.js';
import { deployFor } from '../nir/deploy.js';
import { nirStepGraph } from '../nir/onnx.js';
import type { Profile } from '../nir/profiles.js';
import { probeSteps, withOutputs } from '../runtime/probe.js';
import type { OnProgress } from '../progress.js';

export interface TargetCalibrationOptions extends RuntimeOptions {
  readonly onProgress?: OnProgress;
  /** Rounds of the threshold update per site under a reset to 0 (default 3). */
  readonly thresholdRounds?: number;
  /** Rounds of the bias update per site (default 2). */
  readonly biasRounds?: number;
}

/** How far a channel's threshold may move from 1 (a bound against channels with almost no input). */
const THRESHOLD_RANGE: readonly [number, number] = [0.2, 2];

/**
 * Corrections for `profile` at T steps, found on `batch` (the unit-spike network `snn`,
 * converted from `m` with thresholds `th`).
 */
export async function targetCalibration(
  snn: DecodedSnn,
  m: PreparedModel,
  th: Thresholds,
  batch: Batch,
  profile: Profile,
  T: number,
  opts: TargetCalibrationOptions,
): Promise<TargetCalibration> {
  // What the target cannot take at all is refused here, naming the node, before any simulation.
  toNir(snn, profile.name, snn.meta.source.file, null);
  const sites = m.plan.sites;
  const input: Array32 = { dims: [batch.n, ...m.inputShape], data: batch.x };
  // The clipped ANN's output of every site, divided by θ: the rate each unit-spike neuron should have.
  const inst = instrument(m, { mode: 'clip', granularity: th.granularity });
  const s = await Session.create(
    withOutputs(
      inst.graph,
      sites.map((site) => site.output),
    ),
    opts,
  );
  let ann: Record<string, Array32>;
  try {
    ann = await s.run({ [m.inputName]: input, ...thetaFeeds(inst, th) });
  } finally {
    await s.release();
  }
  const bias: (number[] | null)[] = sites.map(() => null);
  const threshold: (number[] | null)[] = sites.map(() => null);
  const zero = profile.reset === 'zero';
  const thresholdRounds = zero ? (opts.thresholdRounds ?? 3) : 0;
  // Subtracting targets get the θ/2 start itself (a clock neuron, nir/graph.ts): exact at every T, nothing to tune.
  const start = !zero;
  const biasRounds = opts.biasRounds ?? (zero ? 2 : 0);
  const rounds = thresholdRounds + biasRounds;
  let done = 0;
  for (const site of sites) {
    const k = site.index;
    const shape = m.shapes.get(site.input) as readonly number[];
    const C = shape[0];
    const per = numel(shape) / C;
    const theta = th.values[k];
    const thetaOf = (c: number): number => (theta.length === 1 ? theta[0] : theta[c]);
    const want = new Float64Array(C);
    const a = ann[site.output].data;
    for (let j = 0; j < a.length; j++) {
      const c = Math.floor((j % (C * per)) / per);
      const t = thetaOf(c);
      if (t > 0) want[c] += a[j] / t;
    }
    for (let c = 0; c < C; c++) want[c] /= batch.n * per;
    const h = new Array<number>(C).fill(1);
    const b = new Array<number>(C).fill(0);
    for (let round = 0; round < rounds; round++) {
      const corrections: TargetCorrections = {
        bias: bias.map((v, j) => (j === k ? b : v)),
        threshold: threshold.map((v, j) => (j === k ? h : v)),
        start,
      };
      const rate = await siteRate(snn, profile, corrections, k, input, T, opts);
      for (let c = 0; c < C; c++) {
        if (thetaOf(c) <= 0) continue;
        if (round < thresholdRounds) {
          if (rate[c] > 0 && want[c] > 0)
            h[c] = Math.min(THRESHOLD_RANGE[1], Math.max(THRESHOLD_RANGE[0], (h[c] * rate[c]) / want[c]));
        } else {
          // A rate short by δ spikes per step needs δ·h more current per step.
          b[c] += (want[c] - rate[c]) * h[c];
        }
      }
      opts.onProgress?.({ phase: `calibration for ${profile.name}`, done: ++done, total: sites.length * rounds });
    }
    bias[k] = biasRounds ? b : null;
    threshold[k] = zero ? h : null;
  }
  return {
    profile: profile.name,
    T,
    samples: batch.n,
    bias,
    threshold,
    start,
    notes: [
      zero
        ? `reset to 0 and no initial membrane: a threshold (${thresholdRounds} rounds) and a bias (${biasRounds} rounds) per channel, calibrated with ${profile.name}'s neuron at T = ${T}`
        : `no initial membrane: the θ/2 start given at step 1 by clock IF neurons (threshold ${CLOCK}; driven by ${CLOCK + 1}: a spike at every step; by ${CLOCK - 1}: silent at step 1, a spike at every step after; exact up to T = ${CLOCK - 1}) through a fixed-weight layer per site, weights +θ/2 and −θ/2${biasRounds ? `; a bias per channel (${biasRounds} rounds) calibrated with ${profile.name}'s neuron at T = ${T}` : ''}`,
    ],
  };
}

/** Site k's mean spike rate per channel (spikes per neuron and step) on the target, with `corrections`. */
async function siteRate(
  snn: DecodedSnn,
  profile: Profile,
  corrections: TargetCorrections,
  k: number,
  input: Array32,
  T: number,
  opts: RuntimeOptions,
): Promise<Float64Array> {
  const exported = toNir(snn, profile.name, snn.meta.source.file, corrections);
  // Deployed as export deploys it (the start spread where the profile has integers).
  const deployed = deployFor(exported, profile, { clocks: exported.clocks });
  const step = nirStepGraph(deployed.graph, profile, snn.meta.source.file);
  const ifName = [...exported.sites].find(([, j]) => j === k)?.[0] as string;
  const spikes = step.values.get(ifName) as string;
  const shape = step.spec.states[step.ifNodes.indexOf(ifName)].shape;
  const C = shape[0];
  const per = numel(shape) / C;
  const sum = new Float64Array(C);
  await probeSteps(
    step.graph,
    step.spec,
    input,
    T,
    [spikes],
    (_, out) => {
      const v = out[spikes].data;
      for (let j = 0; j < v.length; j++) sum[Math.floor((j % (C * per)) / per)] += v[j];
    },
    opts,
  );
  const n = input.dims[0];
  return sum.map((v) => v / (n * per * T));
}
