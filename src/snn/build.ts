/**
 * The spiking network as an ONNX graph that computes ONE time step (docs/algorithm.md §1, §2):
 *
 *   inputs:  the model input (direct coding: the same analog input at every step) and the
 *            state tensors, all zero at t = 0;
 *   outputs: the readout of this step, the next states, per-site spike counts and per-layer
 *            synaptic operations.
 *
 * Every neuron site becomes an integrate-and-fire neuron (neuron.ts), every max pool on
 * time-varying input pools accumulated current (maxpool.ts, unless the per-step form is asked
 * for), and the counters ride along (counters.ts). Everything else is the ANN's own node.
 */
import type { Graph, Node, Tensor } from '../graph/ir.js';
import { floatTensor, numel } from '../graph/ir.js';
import { WEIGHTED_OPS } from '../graph/ops.js';
import { fanout, macs } from '../graph/fanout.js';
import { usedInitializers } from '../graph/topo.js';
import { GraphBuilder, floatInput } from '../onnx/builder.js';
import { siteChannels, type PreparedModel } from '../model/prepare.js';
import { thetaPerElement, thetaShape, type Thresholds } from '../calibrate/thresholds.js';
import {
  SNN_FORMAT,
  siteState,
  sopsOutput,
  spikesOutput,
  type LayerSpec,
  type PoolMode,
  type SiteSpec,
  type SnnSpec,
  type StateSpec,
} from './format.js';
import { addIfNeuron } from './neuron.js';
import { addAccumulatedMaxPool } from './maxpool.js';
import { addEventCounter, addSiteCounters, planCounters } from './counters.js';

/** The one-step graph and its interface. */
export interface SnnGraph {
  readonly graph: Graph;
  readonly spec: SnnSpec;
}

/** Per-site corrections found after conversion (refine/), each null for a site left as it is. */
export interface SiteCorrections {
  /** A current added at every step, per channel (bias calibration). */
  readonly bias?: readonly (Float32Array | null)[];
  /** The initial membrane's offset from its start, per neuron of one sample (potential calibration). */
  readonly potential?: readonly (Float32Array | null)[];
}

export function buildSnn(
  m: PreparedModel,
  th: Thresholds,
  maxpool: PoolMode = 'accumulated',
  corrections: SiteCorrections = {},
): SnnGraph {
  const g = m.graph;
  const b = new GraphBuilder(Math.max(g.opset, 9), g);
  const states: StateSpec[] = [];
  const sites: SiteSpec[] = [];
  const layers: LayerSpec[] = [];
  const siteByNode = new Map(m.plan.sites.map((s) => [s.node, s]));
  const channels = siteChannels(m);
  const counters = planCounters(m);
  const nodes: Node[] = [];
  const shapeOf = (t: string): readonly number[] => m.shapes.get(t) as readonly number[];
  const state = (input: string, shape: readonly number[]): StateSpec => {
    const s = { input, output: `${input}.next`, shape };
    states.push(s);
    return s;
  };
  const fanoutOf = (n: Node): Float32Array => fanout(g, n, shapeOf(n.inputs[0]), shapeOf(n.outputs[0]));
  const layerCost = (n: Node): number => macs(g, n, shapeOf(n.inputs[0]), shapeOf(n.outputs[0]));

  for (const n of m.plan.spiking) {
    const site = siteByNode.get(n.name);
    const start = b.nodes.length;
    if (WEIGHTED_OPS.has(n.opType)) {
      const index = counters.layerIndex.get(n.name);
      const where = index !== undefined ? 'spiking' : n.inputs.some((i) => m.plan.varying.has(i)) ? 'dense' : 'input';
      const sops = index !== undefined ? sopsOutput(index) : undefined;
      if (sops && !counters.countedAtSite.has(n.name))
        addEventCounter(b, n.inputs[0], fanoutOf(n), sops, `fanout_${index}`);
      layers.push({ node: n.name, opType: n.opType, where, macs: layerCost(n), ...(sops ? { sops } : {}) });
    }
    if (site) {
      const shape = shapeOf(site.input);
      const theta = th.values[site.index];
      const u = state(siteState(site.index), shape);
      const dims = thetaShape(shape.length + 1, channels[site.index], th.granularity);
      const bias = corrections.bias?.[site.index] ?? null;
      const potential = corrections.potential?.[site.index] ?? null;
      addIfNeuron(b, { current: site.input, spikes: site.output, state: u }, theta, dims, String(site.index), {
        fireLevel: fireLevel(theta, dims, shape, channels[site.index], site.start, potential),
        bias: bias ? floatTensor(thetaShape(shape.length + 1, channels[site.index], 'channel'), bias) : undefined,
      });
      const invTheta = thetaPerElement(theta, numel(shape), channels[site.index]).map((t) => (t > 0 ? 1 / t : 0));
      const fed = (counters.fedBySite.get(site.node) ?? []).map((l) => ({
        fanout: fanoutOf(l),
        output: sopsOutput(counters.layerIndex.get(l.name) as number),
      }));
      const spikes = spikesOutput(site.index);
      addSiteCounters(b, site.output, invTheta, fed, spikes, `counts_${site.index}`);
      sites.push({
        node: site.node,
        spikes,
        neurons: numel(shape),
        theta: Array.from(theta),
        ...(site.start !== 0.5 ? { start: site.start } : {}),
        ...(bias ? { bias: Array.from(bias) } : {}),
        ...(potential ? { potential: true } : {}),
      });
    } else if (n.opType === 'MaxPool' && m.plan.varying.has(n.inputs[0]) && maxpool === 'accumulated') {
      const i = states.length;
      addAccumulatedMaxPool(
        b,
        n,
        state(`state.pool${i}.acc`, shapeOf(n.inputs[0])),
        state(`state.pool${i}.max`, shapeOf(n.outputs[0])),
      );
    } else {
      b.nodes.push(n);
    }
    nodes.push(...b.nodes.slice(start));
    b.nodes.length = start;
  }

  const spikingNodes = new Set(m.plan.spiking.map((n) => n.name));
  for (const n of g.nodes) {
    if (WEIGHTED_OPS.has(n.opType) && !spikingNodes.has(n.name))
      layers.push({ node: n.name, opType: n.opType, where: 'tail', macs: layerCost(n) });
  }

  const graph: Graph = {
    ...g,
    opset: Math.max(g.opset, 9),
    nodes,
    initializers: usedInitializers(nodes, g.initializers, b.initializers),
    inputs: [
      floatInput(m.inputName, ['N', ...m.inputShape]),
      ...states.map((s) => floatInput(s.input, ['N', ...s.shape])),
    ],
    outputs: [
      floatInput(m.plan.readout, ['N', ...shapeOf(m.plan.readout)]),
      ...states.map((s) => floatInput(s.output, ['N', ...s.shape])),
      ...sites.map((s) => floatInput(s.spikes, [])),
      ...layers.flatMap((l) => (l.sops ? [floatInput(l.sops, [])] : [])),
    ],
  };
  const spec: SnnSpec = {
    format: SNN_FORMAT,
    input: m.inputName,
    inputShape: m.inputShape,
    readout: m.plan.readout,
    readoutShape: shapeOf(m.plan.readout),
    ...(m.plan.pack.length
      ? { readouts: m.plan.readouts.map((r) => ({ name: r.tensor, shape: shapeOf(r.tensor) })) }
      : {}),
    states,
    sites,
    granularity: th.granularity,
    maxpool,
    layers,
  };
  return { graph, spec };
}

/**
 * The firing level θ − m₀ with m₀ = start·θ (+ a per-neuron offset from potential calibration);
 * undefined for the default θ/2. +∞ where θ = 0: such a neuron never fires.
 */
function fireLevel(
  theta: Float32Array,
  dims: readonly number[],
  shape: readonly number[],
  channels: number,
  start: number,
  potential: Float32Array | null,
): Tensor | undefined {
  if (!potential && start === 0.5) return undefined;
  const level = (t: number, offset: number): number => (t > 0 ? t * (1 - start) - offset : Infinity);
  if (!potential)
    return floatTensor(
      dims,
      Array.from(theta, (t) => level(t, 0)),
    );
  const perNeuron = thetaPerElement(theta, numel(shape), channels);
  return floatTensor(
    [1, ...shape],
    Array.from(perNeuron, (t, k) => level(t, potential[k])),
  );
}
