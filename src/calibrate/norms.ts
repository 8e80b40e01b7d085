/**
 * The statistics per-sample normalisations are frozen with (graph/norms.ts): the ANN run on
 * calibration samples, each normalisation's input reduced in the graph to every sample's mean
 * and variance per group, averaged over the samples here.
 */
import type { Graph } from '../graph/ir.js';
import type { NormStatistics, SampleNorm } from '../graph/norms.js';
import { GraphBuilder, floatInput } from '../onnx/builder.js';
import { Session, type RuntimeOptions } from '../ort/session.js';
import { readBatch, type Dataset, type Normalize } from '../data/dataset.js';
import type { OnProgress } from '../progress.js';

export interface NormMeasureOptions extends RuntimeOptions {
  /** Samples per ONNX Runtime call. */
  readonly batchSize: number;
  readonly onProgress?: OnProgress;
}

/**
 * Each norm's statistics on the samples `indices` of `data` (normalised with `normalize`): per
 * group (LayerNorm: per tensor), the mean over samples (and positions) of the sample's own mean
 * and variance. `ranks`: each measured tensor's rank with the batch axis.
 */
export async function measureNorms(
  g: Graph,
  inputName: string,
  inputShape: readonly number[],
  norms: readonly SampleNorm[],
  ranks: ReadonlyMap<string, number>,
  data: Dataset,
  indices: readonly number[],
  normalize: Normalize | null,
  opts: NormMeasureOptions,
): Promise<NormStatistics[]> {
  const b = new GraphBuilder(Math.max(g.opset, 13), g);
  const outs: { mean: string; variance: string }[] = [];
  for (const s of norms) {
    const r = ranks.get(s.measured) as number;
    const from = s.kind === 'layernorm' ? (s.axis < 0 ? s.axis + r : s.axis) : 2;
    const axes = Array.from({ length: r - from }, (_, k) => from + k);
    const m = b.reduce('ReduceMean', s.measured, axes, true, 'norm_mean');
    const d = b.op('Sub', [s.measured, m]);
    const v = b.reduce('ReduceMean', b.op('Mul', [d, d]), axes, true, 'norm_var');
    outs.push({ mean: m, variance: v });
  }
  const graph: Graph = {
    ...g,
    opset: Math.max(g.opset, 13),
    nodes: [...g.nodes, ...b.nodes],
    initializers: new Map([...g.initializers, ...b.initializers]),
    outputs: outs.flatMap((o) => [floatInput(o.mean, null), floatInput(o.variance, null)]),
  };
  const session = await Session.create(graph, opts);
  // Per norm, per group: sums of means and variances (float64), and how many were summed.
  const sums = norms.map(() => ({ mean: [] as number[], variance: [] as number[], count: 0 }));
  try {
    for (let k = 0; k < indices.length; k += opts.batchSize) {
      const part = indices.slice(k, k + opts.batchSize);
      const batch = await readBatch(data, part, normalize);
      const res = await session.run({ [inputName]: { dims: [batch.n, ...inputShape], data: batch.x } });
      norms.forEach((s, i) => {
        const mean = res[outs[i].mean];
        const variance = res[outs[i].variance];
        // Groups on axis 1 (GroupNorm, InstanceNorm); LayerNorm: one group, every position a sample.
        const groups = s.kind === 'layernorm' ? 1 : mean.dims[1];
        const acc = sums[i];
        if (acc.mean.length === 0) {
          acc.mean = new Array<number>(groups).fill(0);
          acc.variance = new Array<number>(groups).fill(0);
        }
        for (let e = 0; e < mean.data.length; e++) {
          const grp = s.kind === 'layernorm' ? 0 : Math.floor(e / inner(mean.dims)) % groups;
          acc.mean[grp] += mean.data[e];
          acc.variance[grp] += variance.data[e];
        }
        acc.count += mean.data.length / groups;
      });
      opts.onProgress?.({
        phase: 'normalisation',
        done: Math.min(k + part.length, indices.length),
        total: indices.length,
      });
    }
  } finally {
    await session.release();
  }
  return norms.map((s, i) => ({
    node: s.node,
    mean: sums[i].mean.map((v) => v / sums[i].count),
    variance: sums[i].variance.map((v) => v / sums[i].count),
  }));
}

/** Values per index of axis 1 (the axes after it). */
function inner(dims: readonly number[]): number {
  return dims.slice(2).reduce((a, b) => a * b, 1);
}
