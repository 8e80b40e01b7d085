/**
 * The calibration graphs: the spiking part of the ANN with every neuron site replaced by
 * ReLU (the original), clip(x, 0, θ), or the in-graph LTB update (SPEC 3.1), plus per-site
 * statistics as extra outputs.
 */
import type { Graph, Node } from '../graph/ir.js';
import type { Plan, Site } from '../graph/plan.js';
import { GraphBuilder, floatInput } from '../onnx/builder.js';

export type SiteMode = 'relu' | 'clip' | 'ltb';
export type Granularity = 'channel' | 'layer';
export type Stat = 'chanMax' | 'chanMeanPos' | 'x';

export interface InstrumentOptions {
  readonly mode: SiteMode;
  readonly granularity: Granularity;
  /** LTB step size c. */
  readonly stepSize?: number;
  readonly stats?: readonly Stat[];
  /** Rank of each site's input tensor (with batch axis). */
  readonly ranks: readonly number[];
}

export interface Instrumented {
  readonly graph: Graph;
  /** Per site: the θ graph input (clip and ltb modes). */
  readonly thetaInputs: readonly string[];
  /** Per site: the updated θ output (ltb mode). */
  readonly thetaOutputs: readonly string[];
  readonly stats: Partial<Record<Stat, readonly string[]>>;
  readonly readout: string;
}

/** θ's shape for a site input of this rank: [1, C, 1, ...] channel-wise, all ones layer-wise. */
export function thetaShape(rank: number, channels: number, g: Granularity): number[] {
  const s = new Array(rank).fill(1);
  if (g === 'channel') s[1] = channels;
  return s;
}

/** Every axis but the channel axis (1), or all axes for layer-wise. */
export function reducedAxes(rank: number, g: Granularity): number[] {
  return Array.from({ length: rank }, (_, i) => i).filter((i) => g === 'layer' || i !== 1);
}

export function instrument(g: Graph, plan: Plan, channels: readonly number[], opts: InstrumentOptions): Instrumented {
  const b = new GraphBuilder(g.opset, g);
  const thetaInputs: string[] = [];
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
    const rank = opts.ranks[site.index];
    const x = site.input;
    const chanAxes = reducedAxes(rank, 'channel');
    const start = b.nodes.length;
    if (opts.stats?.includes('chanMax')) stats.chanMax?.push(b.reduce('ReduceMax', x, chanAxes, false, `max_${site.index}`));
    if (opts.stats?.includes('chanMeanPos')) {
      stats.chanMeanPos?.push(b.reduce('ReduceMean', b.op('Relu', [x]), chanAxes, false, `meanpos_${site.index}`));
    }
    if (opts.stats?.includes('x')) stats.x?.push(x);

    if (opts.mode === 'relu') {
      b.nodes.push(n);
    } else {
      const theta = `theta_${site.index}`;
      inputs.push(floatInput(theta, thetaShape(rank, channels[site.index], opts.granularity)));
      thetaInputs.push(theta);
      let clipAt = theta;
      if (opts.mode === 'ltb') {
        // θ ← θ + 2c · mean((x − θ)·1[x > θ]) over the reduced axes; (x−θ)·1[x>θ] = ReLU(x − θ).
        const excess = b.op('Relu', [b.op('Sub', [x, theta])]);
        const mean = b.reduce('ReduceMean', excess, reducedAxes(rank, opts.granularity), true);
        const step = b.op('Mul', [mean, b.scalar(2 * (opts.stepSize ?? 1), 'two_c')]);
        clipAt = b.add('Add', [theta, step], {}, [`theta_${site.index}_new`])[0];
        thetaOutputs.push(clipAt);
      }
      b.add('Min', [b.op('Relu', [x]), clipAt], {}, [site.output]);
    }
    nodes.push(...b.nodes.slice(start));
    b.nodes.length = start;
  }
  const outputs = [plan.readout, ...thetaOutputs, ...Object.values(stats).flat()];
  const used = new Set(nodes.flatMap((n) => n.inputs));
  const initializers = new Map([...g.initializers, ...b.initializers].filter(([k]) => used.has(k)));
  return {
    graph: {
      ...g, nodes, initializers, inputs,
      outputs: [...new Set(outputs)].map((name) => floatInput(name, null)),
    },
    thetaInputs, thetaOutputs, stats, readout: plan.readout,
  };
}
