/**
 * The calibration graphs: the spiking part of the ANN with every neuron site computing the
 * ANN's own activation (ReLU, Clip or QCFS: mode `ann`), clip(x, 0, θ), the in-graph LTB update
 * (docs/algorithm.md §3.1), or the IF neuron's best L-level quantisation of x (mode `quant`: the
 * ceiling of §4.1), plus per-site statistics as extra outputs.
 */
import type { Graph, Node } from '../graph/ir.js';
import type { Site } from '../graph/plan.js';
import { usedInitializers } from '../graph/topo.js';
import { GraphBuilder, floatInput } from '../onnx/builder.js';
import type { Array32 } from '../ort/session.js';
import { siteChannels, siteRanks, type PreparedModel } from '../model/prepare.js';
import { reducedAxes, thetaShape, type Granularity, type Thresholds } from './thresholds.js';

export type SiteMode = 'ann' | 'clip' | 'ltb' | 'quant';
export type Stat = 'chanMax' | 'chanMeanPos' | 'x';

export interface InstrumentOptions {
  readonly mode: SiteMode;
  readonly granularity: Granularity;
  /** LTB step size c. */
  readonly stepSize?: number;
  readonly stats?: readonly Stat[];
}

export interface Instrumented {
  readonly graph: Graph;
  /** Per site: the θ graph input (clip and ltb modes) and its shape. */
  readonly thetaInputs: readonly string[];
  readonly thetaDims: readonly (readonly number[])[];
  /** Per site: the updated θ output (ltb mode). */
  readonly thetaOutputs: readonly string[];
  /** Quant mode: per site the inputs L/θ and θ/L, and the number of levels L (a scalar). */
  readonly quant?: { readonly scale: readonly string[]; readonly step: readonly string[]; readonly levels: string };
  readonly stats: Partial<Record<Stat, readonly string[]>>;
  readonly readout: string;
}

/**
 * Feeds of a quant-mode graph for L levels (L = T steps, or K·T for groups of K): per site
 * L/θ and θ/L (0 where θ = 0: such a channel outputs 0), and L.
 */
export function quantFeeds(inst: Instrumented, th: Thresholds, levels: number): Record<string, Array32> {
  const q = inst.quant;
  if (!q) throw new Error('not a quant-mode graph');
  const feeds: Record<string, Array32> = { [q.levels]: { dims: [], data: Float32Array.of(levels) } };
  th.values.forEach((theta, i) => {
    feeds[q.scale[i]] = { dims: inst.thetaDims[i], data: theta.map((t) => (t > 0 ? levels / t : 0)) };
    feeds[q.step[i]] = { dims: inst.thetaDims[i], data: theta.map((t) => (t > 0 ? t / levels : 0)) };
  });
  return feeds;
}

/** Feeds for the θ inputs of an instrumented graph. */
export function thetaFeeds(inst: Instrumented, th: Thresholds): Record<string, Array32> {
  return Object.fromEntries(inst.thetaInputs.map((name, i) => [name, { dims: inst.thetaDims[i], data: th.values[i] }]));
}

export function instrument(m: PreparedModel, opts: InstrumentOptions): Instrumented {
  const { graph: g, plan } = m;
  const channels = siteChannels(m);
  const ranks = siteRanks(m);
  const b = new GraphBuilder(g.opset, g);
  const thetaInputs: string[] = [];
  const thetaDims: number[][] = [];
  const thetaOutputs: string[] = [];
  const quant = { scale: [] as string[], step: [] as string[], levels: 'quant_levels' };
  const stats: Partial<Record<Stat, string[]>> = {};
  for (const s of opts.stats ?? []) stats[s] = [];
  const siteByNode = new Map<string, Site>(plan.sites.map((s) => [s.node, s]));
  const nodes: Node[] = [];
  const inputs = [...g.inputs, ...(opts.mode === 'quant' ? [floatInput(quant.levels, [])] : [])];

  for (const n of plan.spiking) {
    const site = siteByNode.get(n.name);
    if (!site) {
      nodes.push(n);
      continue;
    }
    const rank = ranks[site.index];
    const x = site.input;
    const chanAxes = reducedAxes(rank, 'channel');
    const start = b.nodes.length;
    if (opts.stats?.includes('chanMax'))
      stats.chanMax?.push(b.reduce('ReduceMax', x, chanAxes, false, `max_${site.index}`));
    if (opts.stats?.includes('chanMeanPos')) {
      stats.chanMeanPos?.push(b.reduce('ReduceMean', b.op('Relu', [x]), chanAxes, false, `meanpos_${site.index}`));
    }
    if (opts.stats?.includes('x')) stats.x?.push(x);

    if (opts.mode === 'ann') {
      b.nodes.push(...site.ann);
    } else if (opts.mode === 'quant') {
      // The best an IF neuron starting at s·θ can do in L steps on a constant input:
      // q(x) = (θ/L)·clip(⌊x·L/θ + s⌋, 0, L).
      const dims = thetaShape(rank, channels[site.index], opts.granularity);
      const scale = `quant_scale_${site.index}`;
      const step = `quant_step_${site.index}`;
      inputs.push(floatInput(scale, dims), floatInput(step, dims));
      quant.scale.push(scale);
      quant.step.push(step);
      thetaDims.push(dims);
      // clip(·, 0, L) as one Clip (L is a scalar): one pass over the tensor less than Min(Relu(·), L).
      const count = b.op('Floor', [b.op('Add', [b.op('Mul', [x, scale]), b.scalar(site.start, 'start')])]);
      b.add('Mul', [b.op('Clip', [count, b.scalar(0, 'zero'), quant.levels]), step], {}, [site.output]);
    } else {
      const theta = `theta_${site.index}`;
      const dims = thetaShape(rank, channels[site.index], opts.granularity);
      inputs.push(floatInput(theta, dims));
      thetaInputs.push(theta);
      thetaDims.push(dims);
      let clipAt = theta;
      const relu = b.op('Relu', [x]);
      if (opts.mode === 'ltb') {
        // θ ← θ + 2c · mean((x − θ)·1[x > θ]) over the reduced axes; (x−θ)·1[x>θ] = ReLU(x − θ),
        // computed as ReLU(ReLU(x) − θ): the same bits while θ ≥ 0 (it starts at 0 and only
        // grows), and x then feeds one ReLU only, which ONNX Runtime fuses into the convolution
        // that makes x (one memory pass less per site and batch).
        const excess = b.op('Relu', [b.op('Sub', [relu, theta])]);
        const mean = b.reduce('ReduceMean', excess, reducedAxes(rank, opts.granularity), true);
        const step = b.op('Mul', [mean, b.scalar(2 * (opts.stepSize ?? 1), 'two_c')]);
        clipAt = b.add('Add', [theta, step], {}, [`theta_${site.index}_new`])[0];
        thetaOutputs.push(clipAt);
      }
      b.add('Min', [relu, clipAt], {}, [site.output]);
    }
    nodes.push(...b.nodes.slice(start));
    b.nodes.length = start;
  }
  const outputs = [plan.readout, ...thetaOutputs, ...Object.values(stats).flat()];
  return {
    graph: {
      ...g,
      nodes,
      initializers: usedInitializers(nodes, g.initializers, b.initializers),
      inputs,
      outputs: [...new Set(outputs)].map((name) => floatInput(name, null)),
    },
    thetaInputs,
    thetaDims,
    thetaOutputs,
    ...(opts.mode === 'quant' ? { quant } : {}),
    stats,
    readout: plan.readout,
  };
}
