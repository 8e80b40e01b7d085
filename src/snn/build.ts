/**
 * The spiking network as an ONNX graph that computes ONE time step (SPEC 1, 2):
 *
 *   inputs:  the model input (direct coding: the same analog input at every step) and the
 *            state tensors, all zero at t = 0;
 *   outputs: the readout of this step, the next states, and per-site spike counts.
 *
 * Integrate-and-fire with reset by subtraction. The membrane is stored as u = m − θ/2, so the
 * θ/2 initialisation becomes an all-zero initial state: fire when u ≥ θ/2, then u −= θ. A
 * spike carries θ as its amplitude. A channel with θ = 0 never fires (its firing level is +∞).
 *
 * A MaxPool on time-varying input pools accumulated current (SPEC 2): A_t = A_{t−1} + z_t,
 * P_t = maxpool(A_t), output P_t − P_{t−1}; or per step (the paper's code) when asked.
 */
import type { Graph, Node } from '../graph/ir.js';
import { floatTensor, int64Tensor, numel } from '../graph/ir.js';
import { GraphBuilder, floatInput } from '../onnx/builder.js';
import type { PreparedModel } from '../model.js';
import type { Thresholds } from '../calibrate/methods.js';
import { siteChannels } from '../calibrate/methods.js';
import { thetaShape } from '../calibrate/instrument.js';
import { WEIGHTED_OPS, fanout, macs } from '../graph/fanout.js';

export type PoolMode = 'accumulated' | 'per-step';

/** Ops that keep element order, so a layer behind them reads its input site's spikes as they are. */
const RESHAPES = new Set(['Flatten', 'Reshape', 'Identity', 'Squeeze', 'Unsqueeze']);

export interface StateSpec {
  readonly input: string;
  readonly output: string;
  /** One sample's shape; the state tensor is [N, ...shape]. */
  readonly shape: readonly number[];
}

export interface SiteSpec {
  readonly node: string;
  /** Output with this step's spike count over the batch (a scalar). */
  readonly spikes: string;
  /** Neurons per sample. */
  readonly neurons: number;
  readonly theta: readonly number[];
}

/**
 * A weighted layer and what it costs per frame (SPEC 6). Where its input comes from decides
 * how it is counted: 'input' — from the analog input only (computed once per frame, MACs);
 * 'spiking' — spikes (synaptic operations, counted per step by the `sops` output);
 * 'dense' — time-varying but not through its data input (MACs at every step);
 * 'tail' — after the readout, on the averaged readout (MACs once).
 */
export interface LayerSpec {
  readonly node: string;
  readonly opType: string;
  readonly where: 'input' | 'spiking' | 'dense' | 'tail';
  /** Multiply-accumulates per sample (one ANN pass). */
  readonly macs: number;
  /** Output with this step's synaptic operations over the batch (a scalar), for 'spiking'. */
  readonly sops?: string;
}

export interface SnnSpec {
  readonly format: 'spikeport-step/1';
  readonly input: string;
  readonly inputShape: readonly number[];
  readonly readout: string;
  readonly readoutShape: readonly number[];
  readonly states: readonly StateSpec[];
  readonly sites: readonly SiteSpec[];
  readonly granularity: Thresholds['granularity'];
  readonly maxpool: PoolMode;
  /** Weighted layers in graph order (absent in files written before SOP counting). */
  readonly layers?: readonly LayerSpec[];
}

/** The scalar per-step counters a step graph outputs: spikes per site, then SOPs per layer. */
export function counterOutputs(spec: SnnSpec): string[] {
  return [...spec.sites.map((s) => s.spikes), ...(spec.layers ?? []).flatMap((l) => (l.sops ? [l.sops] : []))];
}

export interface Snn {
  readonly graph: Graph;
  readonly spec: SnnSpec;
}

export function buildSnn(m: PreparedModel, th: Thresholds, maxpool: PoolMode = 'accumulated'): Snn {
  const g = m.graph;
  const b = new GraphBuilder(Math.max(g.opset, 9), g);
  const states: StateSpec[] = [];
  const sites: SiteSpec[] = [];
  const siteByNode = new Map(m.plan.sites.map((s) => [s.node, s]));
  const channels = siteChannels(m);
  const nodes: Node[] = [];
  const shapeOf = (t: string): readonly number[] => m.shapes.get(t) as readonly number[];
  const state = (hint: string, shape: readonly number[]): { input: string; output: string } => {
    const s = { input: `state.${hint}`, output: `state.${hint}.next`, shape };
    states.push(s);
    return s;
  };

  const layers: LayerSpec[] = [];
  const spikingNodes = new Set(m.plan.spiking.map((n) => n.name));
  const layerCost = (n: Node): number => macs(g, n, shapeOf(n.inputs[0]), shapeOf(n.outputs[0]));
  // Weighted layers fed by spikes, numbered in graph order; those whose input is a site's output
  // (through order-preserving reshapes only) are counted at the site, in the same pass as its spikes.
  const spikingLayers = m.plan.spiking.filter((n) => WEIGHTED_OPS.has(n.opType) && m.plan.varying.has(n.inputs[0]));
  const layerIndex = new Map(spikingLayers.map((n, i) => [n.name, i]));
  const siteOutputs = new Map(m.plan.sites.map((s) => [s.output, s]));
  const producer = new Map(g.nodes.flatMap((n) => n.outputs.map((o) => [o, n] as const)));
  const fedBySite = new Map<string, Node[]>();
  for (const n of spikingLayers) {
    let t = n.inputs[0];
    for (let p = producer.get(t); p && RESHAPES.has(p.opType) && !siteOutputs.has(t); p = producer.get(t)) t = p.inputs[0];
    const site = siteOutputs.get(t);
    if (site) fedBySite.set(site.node, [...(fedBySite.get(site.node) ?? []), n]);
  }
  const countedAtSite = new Set([...fedBySite.values()].flat().map((n) => n.name));
  const fanoutOf = (n: Node): Float32Array => fanout(g, n, shapeOf(n.inputs[0]), shapeOf(n.outputs[0]));
  /** Per-sample dot products of x with each column of w [K, c], summed over the batch: [c] (scalar if c = 1). */
  const countColumns = (x: string, K: number, columns: readonly Float32Array[], hint: string): string => {
    const w = new Float32Array(K * columns.length);
    columns.forEach((col, j) => { for (let k = 0; k < K; k++) w[k * columns.length + j] = col[k]; });
    const rows = b.op('Reshape', [x, b.constant('rows', int64Tensor([2], [-1, K]))]);
    const dots = b.op('MatMul', [rows, b.constant(`${hint}_weights`, floatTensor([K, columns.length], w))]);
    return columns.length === 1 ? b.reduce('ReduceSum', dots, undefined, false) : b.reduce('ReduceSum', dots, [0], false);
  };
  const pick = (vec: string, j: number, output: string): void => {
    b.add('Gather', [vec, b.constant('index', int64Tensor([], [j]))], { axis: 0 }, [output]);
  };

  for (const n of m.plan.spiking) {
    const site = siteByNode.get(n.name);
    const start = b.nodes.length;
    if (WEIGHTED_OPS.has(n.opType)) {
      const spiking = layerIndex.has(n.name);
      const where = spiking ? 'spiking' : n.inputs.some((i) => m.plan.varying.has(i)) ? 'dense' : 'input';
      const sops = spiking ? `sops.layer${layerIndex.get(n.name)}` : undefined;
      if (sops && !countedAtSite.has(n.name)) {
        // SOPs this step = Σ over input events (non-zero values) of their fan-out.
        const events = b.op('Sign', [b.op('Abs', [n.inputs[0]])]);
        b.add('Identity', [countColumns(events, numel(shapeOf(n.inputs[0])), [fanoutOf(n)], `fanout_${layerIndex.get(n.name)}`)], {}, [sops]);
      }
      layers.push({ node: n.name, opType: n.opType, where, macs: layerCost(n), ...(sops ? { sops } : {}) });
    }
    if (site) {
      const shape = shapeOf(site.input);
      const theta = th.values[site.index];
      const dims = thetaShape(shape.length + 1, channels[site.index], th.granularity);
      const half = Array.from(theta, (v) => (v > 0 ? v / 2 : Infinity));
      const thetaName = b.constant(`theta_${site.index}`, floatTensor(dims, theta));
      const halfName = b.constant(`fire_level_${site.index}`, floatTensor(dims, half));
      const u = state(`site${site.index}`, shape);
      // Five passes over the membrane: integrate, compare, cast, emit θ, reset by subtraction.
      // (Where(fired, θ, 0) saves a pass but runs 3× slower in ONNX Runtime than Cast + Mul: profiled.)
      const u1 = b.op('Add', [u.input, site.input]);
      const fired = b.opset >= 12 ? b.op('GreaterOrEqual', [u1, halfName]) : b.op('Not', [b.op('Less', [u1, halfName])]);
      b.add('Mul', [b.op('Cast', [fired], { to: 1 }), thetaName], {}, [site.output]);
      b.add('Sub', [u1, site.output], {}, [u.output]);
      // Counters in one more pass: the output is θ per spike, so spikes = Σ out/θ and the SOPs of
      // each layer it feeds = Σ out·fan-out/θ (θ = 0 channels never fire).
      const K = numel(shape);
      const spatial = K / channels[site.index];
      const invTheta = new Float32Array(K);
      for (let k = 0; k < K; k++) {
        const t = theta.length === 1 ? theta[0] : theta[Math.floor(k / spatial)];
        invTheta[k] = t > 0 ? 1 / t : 0;
      }
      const fed = fedBySite.get(site.node) ?? [];
      const columns = [invTheta, ...fed.map((l) => fanoutOf(l).map((f, k) => f * invTheta[k]))];
      const counts = countColumns(site.output, K, columns, `counts_${site.index}`);
      const spikes = `spikes.site${site.index}`;
      if (columns.length === 1) b.add('Identity', [counts], {}, [spikes]);
      else {
        pick(counts, 0, spikes);
        fed.forEach((l, j) => pick(counts, j + 1, `sops.layer${layerIndex.get(l.name)}`));
      }
      sites.push({ node: site.node, spikes, neurons: numel(shape), theta: Array.from(theta) });
    } else if (n.opType === 'MaxPool' && m.plan.varying.has(n.inputs[0]) && maxpool === 'accumulated') {
      const i = states.length;
      const acc = state(`pool${i}.acc`, shapeOf(n.inputs[0]));
      const prev = state(`pool${i}.max`, shapeOf(n.outputs[0]));
      b.add('Add', [acc.input, n.inputs[0]], {}, [acc.output]);
      b.nodes.push({ ...n, inputs: [acc.output], outputs: [prev.output] });
      b.add('Sub', [prev.output, prev.input], {}, [n.outputs[0]]);
    } else {
      b.nodes.push(n);
    }
    nodes.push(...b.nodes.slice(start));
    b.nodes.length = start;
  }

  for (const n of g.nodes) {
    if (WEIGHTED_OPS.has(n.opType) && !spikingNodes.has(n.name)) layers.push({ node: n.name, opType: n.opType, where: 'tail', macs: layerCost(n) });
  }

  const graph: Graph = {
    ...g,
    opset: Math.max(g.opset, 9),
    nodes,
    initializers: pruneInitializers(new Map([...g.initializers, ...b.initializers]), nodes),
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
    format: 'spikeport-step/1',
    input: m.inputName,
    inputShape: m.inputShape,
    readout: m.plan.readout,
    readoutShape: shapeOf(m.plan.readout),
    states, sites, granularity: th.granularity, maxpool, layers,
  };
  return { graph, spec };
}

function pruneInitializers<T>(inits: Map<string, T>, nodes: readonly Node[]): Map<string, T> {
  const used = new Set(nodes.flatMap((n) => n.inputs));
  return new Map([...inits].filter(([k]) => used.has(k)));
}
