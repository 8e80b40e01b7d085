/**
 * The calibration graphs: the spiking part of the ANN with every neuron site computing the
 * ANN's own activation (ReLU, Clip or QCFS: mode `ann`), clip(x, 0, θ), or the in-graph LTB update (docs/algorithm.md §3.1), plus
 * per-site statistics as extra outputs.
 */
import type { Graph, Node } from '../graph/ir.js';
import type { Site } from '../graph/plan.js';
import { usedInitializers } from '../graph/topo.js';
import { GraphBuilder, floatInput } from '../onnx/builder.js';
import type { Array32 } from '../ort/session.js';
import { siteChannels, siteRanks, type PreparedModel } from '../model/prepare.js';
import { reducedAxes, thetaShape, type Granularity, type Thresholds } from './thresholds.js';

export type SiteMode = 'ann' | 'clip' | 'ltb';
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
  readonly stats: Partial<Record<Stat, readonly string[]>>;
  readonly readout: string;
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
  const stats: Partial<Record<Stat, string[]>> = {};
  for (const s of opts.stats ?? []) stats[s] = [];
  const siteByNode = new Map<string, Site>(plan.sites.map((s) => [s.node, s]));
  const nodes: Node[] = [];
  const inputs = [...g.inputs];

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
    stats,
    readout: plan.readout,
  };
}
