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
import { floatTensor, int64Tensor, numel } from '../graph/ir.js';
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
import { addIfNeuron, addPopulation, addSharedGroup, type NeuronGroup } from './neuron.js';
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
  /** The spikes' amplitude as a multiple of θ, per channel (threshold-scale calibration); the reset stays θ. */
  readonly scale?: readonly (Float32Array | null)[];
  /**
   * A current added at step t only, per channel: [t·C + c] for t < T (per-step bias calibration);
   * nothing from step T + 1 on. The graph counts steps in the state `state.clock`.
   */
  readonly stepBias?: readonly (Float32Array | null)[];
}

/** The state that counts steps (0 at the first step) for per-step biases. */
export const CLOCK_STATE = 'state.clock';

export function buildSnn(
  m: PreparedModel,
  th: Thresholds,
  maxpool: PoolMode = 'accumulated',
  corrections: SiteCorrections = {},
  group: NeuronGroup | null = null,
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
  // Per-step biases read the step number t from a clock state: row min(t, T) of a [T + 1, C] table (last row 0).
  let clock: string | null = null;
  const stepIndex = (): string => {
    if (clock) return clock;
    const st = state(CLOCK_STATE, [1]);
    b.add('Add', [st.input, b.scalar(1, 'one')], {}, [st.output]);
    clock = st.input;
    return clock;
  };

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
      const C = channels[site.index];
      const K = group?.size ?? 1;
      const population = group?.kind === 'population';
      // A population keeps K membranes per neuron: member i of channel c at channel i·C + c.
      const u = state(siteState(site.index), population ? [K * shape[0], ...shape.slice(1)] : shape);
      const dims = thetaShape(shape.length + 1, C, th.granularity);
      const bias = corrections.bias?.[site.index] ?? null;
      const potential = corrections.potential?.[site.index] ?? null;
      const biasTensor = bias ? floatTensor(thetaShape(shape.length + 1, C, 'channel'), bias) : undefined;
      const stepBias = corrections.stepBias?.[site.index] ?? null;
      const scale = corrections.scale?.[site.index] ?? null;
      const current = stepBias
        ? b.op('Add', [site.input, addStepBias(b, stepIndex(), stepBias, shape, String(site.index))])
        : site.input;
      // With a threshold scale the neuron's spikes (θ each: what it subtracts) are scaled on the way out.
      const raw = scale ? b.fresh(`unscaled_${site.index}`) : site.output;
      const ports = { current, spikes: raw, state: u };
      const perElement = thetaPerElement(theta, numel(shape), C);
      let counted = raw;
      let invTheta: Float32Array = perElement.map((t) => (t > 0 ? 1 / t : 0));
      let fanoutOf2 = (f: Float32Array): Float32Array => f;
      if (group && population) {
        const levels = populationLevels(theta, shape, C, K, site.start, potential);
        const thetaK = floatTensor(
          thetaShape(shape.length + 1, K * C, 'channel'),
          Array.from({ length: K * C }, (_, j) => (theta.length === 1 ? theta[0] : theta[j % C])),
        );
        counted = addPopulation(b, ports, thetaK, levels, K, shape, String(site.index), biasTensor);
        invTheta = tile(invTheta, K);
        fanoutOf2 = (f) => tile(f, K);
      } else if (group) {
        addSharedGroup(
          b,
          ports,
          theta,
          dims,
          K,
          sharedStart(theta, dims, shape, C, K, site.start, potential),
          String(site.index),
          biasTensor,
        );
        // n = output·K/θ spikes per neuron.
        invTheta = invTheta.map((v) => v * K);
      } else {
        addIfNeuron(b, ports, theta, dims, String(site.index), {
          fireLevel: fireLevel(theta, dims, shape, C, site.start, potential),
          bias: biasTensor,
        });
      }
      if (scale)
        b.add(
          'Mul',
          [raw, b.constant(`scale_${site.index}`, floatTensor(thetaShape(shape.length + 1, C, 'channel'), scale))],
          {},
          [site.output],
        );
      const fed = (counters.fedBySite.get(site.node) ?? []).map((l) => ({
        fanout: fanoutOf2(fanoutOf(l)),
        output: sopsOutput(counters.layerIndex.get(l.name) as number),
      }));
      const spikes = spikesOutput(site.index);
      addSiteCounters(b, counted, invTheta, fed, spikes, `counts_${site.index}`);
      sites.push({
        node: site.node,
        spikes,
        neurons: K * numel(shape),
        theta: Array.from(theta),
        ...(site.start !== 0.5 ? { start: site.start } : {}),
        ...(bias ? { bias: Array.from(bias) } : {}),
        ...(potential ? { potential: true } : {}),
        ...(scale ? { scale: Array.from(scale) } : {}),
        ...(stepBias ? { stepBias: stepBias.length / C } : {}),
        ...(group ? { group: { size: group.size, kind: group.kind } } : {}),
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

/** K copies of a per-neuron vector, one after the other (a population's members, member-major). */
function tile(v: Float32Array, K: number): Float32Array {
  const out = new Float32Array(K * v.length);
  for (let i = 0; i < K; i++) out.set(v, i * v.length);
  return out;
}

/**
 * A population's firing levels θ − m₀ with member i starting at m₀ = θ(i + start)/K, less the
 * neuron's offset from potential calibration (the same for every member): [1, K·C, 1, …], or per
 * neuron [1, K·C, …] with an offset. +∞ where θ = 0.
 */
function populationLevels(
  theta: Float32Array,
  shape: readonly number[],
  channels: number,
  K: number,
  start: number,
  potential: Float32Array | null,
): Tensor {
  const level = (t: number, i: number, offset: number): number =>
    t > 0 ? t * (1 - (i + start) / K) - offset : Infinity;
  const th = (c: number): number => (theta.length === 1 ? theta[0] : theta[c]);
  if (!potential)
    return floatTensor(
      thetaShape(shape.length + 1, K * channels, 'channel'),
      Array.from({ length: K * channels }, (_, j) => level(th(j % channels), Math.floor(j / channels), 0)),
    );
  const per = numel(shape);
  const perNeuron = thetaPerElement(theta, per, channels);
  return floatTensor(
    [1, K * shape[0], ...shape.slice(1)],
    Array.from({ length: K * per }, (_, j) => level(perNeuron[j % per], Math.floor(j / per), potential[j % per])),
  );
}

/** A shared-reset group's start m₀ = start·θ/K (+ the neuron's offset from potential calibration), shaped like θ or per neuron. */
function sharedStart(
  theta: Float32Array,
  dims: readonly number[],
  shape: readonly number[],
  channels: number,
  K: number,
  start: number,
  potential: Float32Array | null,
): Tensor {
  if (!potential)
    return floatTensor(
      dims,
      Array.from(theta, (t) => (t * start) / K),
    );
  const perNeuron = thetaPerElement(theta, numel(shape), channels);
  return floatTensor(
    [1, ...shape],
    Array.from(perNeuron, (t, k) => (t * start) / K + potential[k]),
  );
}

/** This step's bias, [N, C, 1, …]: row min(t, T) of the table [T + 1, C] (t from the clock; row T is 0). */
function addStepBias(
  b: GraphBuilder,
  clock: string,
  perStep: Float32Array,
  shape: readonly number[],
  hint: string,
): string {
  const C = shape[0];
  const T = perStep.length / C;
  const table = new Float32Array((T + 1) * C);
  table.set(perStep);
  const row = b.op('Cast', [b.op('Min', [clock, b.scalar(T, `last_step_${hint}`)])], { to: 7 });
  const rows = b.op('Gather', [b.constant(`step_bias_${hint}`, floatTensor([T + 1, C], table)), row], { axis: 0 });
  // [N, 1, C] → [N, C, 1, …]
  return b.op('Reshape', [
    rows,
    b.constant(`step_bias_shape_${hint}`, int64Tensor([shape.length + 1], [-1, C, ...shape.slice(1).map(() => 1)])),
  ]);
}
