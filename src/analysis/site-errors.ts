/**
 * Where the conversion error comes from (docs/algorithm.md §4): per neuron site, the clip error ε_l that the
 * thresholds cause in the ANN, and the measured error of the SNN's average output at that site
 * against the ANN and the clipped ANN, at one T. All errors are relative L2 norms over the
 * samples given: ‖a − b‖ / ‖b‖.
 */
import type { Dataset } from '../data/dataset.js';
import { readBatch } from '../data/dataset.js';
import type { Graph } from '../graph/ir.js';
import { numel } from '../graph/ir.js';
import { Session, type Array32, type RuntimeOptions } from '../ort/session.js';
import { siteChannels, type PreparedModel } from '../model/prepare.js';
import { instrument, thetaFeeds } from '../calibrate/instrument.js';
import { thetaPerElement, type Thresholds } from '../calibrate/thresholds.js';
import type { SnnSpec } from '../snn/format.js';
import { probeSteps, withOutputs } from '../runtime/probe.js';
import type { OnProgress } from '../progress.js';

export interface SiteError {
  readonly site: string;
  /** ‖ReLU(x) − clip(x, 0, θ)‖ / ‖ReLU(x)‖ on the ANN's own pre-activations. */
  readonly clipError: number;
  /** SNN average output over the window vs the ANN's ReLU output at this site. */
  readonly snnVsAnn: number;
  /** ... vs the clipped ANN's output at this site. */
  readonly snnVsClipped: number;
}

export interface SiteErrors {
  readonly T: number;
  readonly delay: number;
  readonly samples: number;
  readonly sites: readonly SiteError[];
}

function relErr(a: Float32Array, b: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return den > 0 ? Math.sqrt(num / den) : Math.sqrt(num);
}

/**
 * Runs the ANN (ReLU and clipped) and T steps of the SNN on the first `samples` of `data`
 * (one batch) and compares every site.
 */
export async function siteErrors(
  m: PreparedModel,
  snnGraph: Graph,
  spec: SnnSpec,
  th: Thresholds,
  data: Dataset,
  opts: RuntimeOptions & { T: number; delay: number; samples: number; onProgress?: OnProgress },
): Promise<SiteErrors> {
  const n = Math.min(opts.samples, data.size);
  const batch = await readBatch(
    data,
    Array.from({ length: n }, (_, i) => i),
    m.normalize,
  );
  const input: Array32 = { dims: [n, ...m.inputShape], data: batch.x };
  const channels = siteChannels(m);
  const sites = m.plan.sites;

  // ANN: site inputs x (the clip error) and ReLU outputs; clipped ANN: its site outputs.
  const relu = instrument(m, { mode: 'ann', granularity: th.granularity });
  const clip = instrument(m, { mode: 'clip', granularity: th.granularity });
  const annOut = await runOnce(
    withOutputs(
      relu.graph,
      sites.flatMap((s) => [s.input, s.output]),
    ),
    { [m.inputName]: input },
    opts,
  );
  const clipOut = await runOnce(
    withOutputs(
      clip.graph,
      sites.map((s) => s.output),
    ),
    { [m.inputName]: input, ...thetaFeeds(clip, th) },
    opts,
  );

  // SNN: average of each site's output (spikes · θ) over steps delay+1..T.
  const sums = sites.map((s) => new Float32Array(n * numel(m.shapes.get(s.input) as number[])));
  await probeSteps(
    snnGraph,
    spec,
    input,
    opts.T,
    sites.map((s) => s.output),
    (t, out) => {
      opts.onProgress?.({ phase: 'site errors', done: t, total: opts.T, unit: `time steps of ${n} samples` });
      if (t <= opts.delay) return;
      sites.forEach((s, i) => {
        const v = out[s.output].data;
        const acc = sums[i];
        for (let j = 0; j < acc.length; j++) acc[j] += v[j];
      });
    },
    opts,
  );
  const steps = opts.T - opts.delay;
  const result = sites.map((s, i): SiteError => {
    const x = annOut[s.input];
    const perSample = numel(m.shapes.get(s.input) as number[]);
    const theta = thetaPerElement(th.values[i], perSample, channels[i]);
    const reluX = new Float32Array(x.length);
    const clipX = new Float32Array(x.length);
    for (let j = 0; j < x.length; j++) {
      reluX[j] = Math.max(0, x[j]);
      clipX[j] = Math.min(reluX[j], theta[j % perSample]);
    }
    const avg = sums[i].map((v) => v / steps);
    return {
      site: s.node,
      clipError: relErr(clipX, reluX),
      snnVsAnn: relErr(avg, annOut[s.output]),
      snnVsClipped: relErr(avg, clipOut[s.output]),
    };
  });
  return { T: opts.T, delay: opts.delay, samples: n, sites: result };
}

async function runOnce(
  g: Graph,
  feeds: Record<string, Array32>,
  opts: RuntimeOptions,
): Promise<Record<string, Float32Array>> {
  const s = await Session.create(g, opts);
  try {
    const out = await s.run(feeds);
    return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.data]));
  } finally {
    await s.release();
  }
}
