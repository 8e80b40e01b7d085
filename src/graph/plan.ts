/**
 * What the converter will do with a prepared graph: where the neuron sites are, where the
 * spiking part ends (the non-spiking readout), which tensors vary over time steps, and
 * whether every op on the way can carry spikes.
 */
import type { Graph, Node } from './ir.js';
import { neuronCap } from './passes.js';
import { findQcfs, type QcfsChain } from './qcfs.js';
import { ancestors, consumers, usedInitializers } from './topo.js';
import { LINEAR_IF_ONE_VARYING_OPS, LINEAR_OPS, SHAPE_ONLY_OPS, STRUCTURAL_OPS, WEIGHTED_OPS } from './ops.js';
import { SpikeportError, optionError } from '../errors.js';

export interface Site {
  /** Position among the sites, front to back. */
  readonly index: number;
  readonly node: string;
  /** The pre-activation x (after BN folding, residual add, pre-neuron pool). */
  readonly input: string;
  readonly output: string;
  /** Infinity for ReLU; c for Clip(0, c); λ for QCFS. The calibrated θ replaces it. */
  readonly cap: number;
  /** The ANN's activation: `relu` (ReLU), `clip` (Clip(0, c)) or `qcfs` (a QCFS chain, graph/qcfs.ts). */
  readonly activation: 'relu' | 'clip' | 'qcfs';
  /** The neuron's membrane at t = 0, as a fraction of θ: ½, or QCFS's shift φ. */
  readonly start: number;
  /** The ANN nodes that compute the activation from `input` to `output` (one, or a QCFS chain). */
  readonly ann: readonly Node[];
}

export interface Plan {
  readonly sites: readonly Site[];
  /** The node whose output is the readout, and that tensor. */
  readonly readoutNode: string;
  readonly readout: string;
  /**
   * Nodes of the spiking part (the readout's ancestors), in graph order. A site is one node
   * here: its ANN node, or for a QCFS chain a node standing for the chain (input x, output h(x);
   * the chain's own nodes are in the site's `ann`).
   */
  readonly spiking: readonly Node[];
  /** Tensors that change from step to step (downstream of a neuron). */
  readonly varying: ReadonlySet<string>;
}

function position(g: Graph, n: Node, positions?: ReadonlyMap<string, string>): string {
  return positions?.get(n.name) ?? `node ${g.nodes.indexOf(n) + 1} of ${g.nodes.length}`;
}

/** "node i of n" for every node of a graph, 1-based. */
export function nodePositions(g: Graph): Map<string, string> {
  return new Map(g.nodes.map((n, i) => [n.name, `node ${i + 1} of ${g.nodes.length}`]));
}

export interface PlanOptions {
  /** End the spiking part at this node's output (it becomes the readout). */
  readonly readoutNode?: string;
  /** Node positions in the user's original model, for error messages (default: this graph's). */
  readonly positions?: ReadonlyMap<string, string>;
}

export function plan(g: Graph, opts: PlanOptions = {}): Plan {
  // A subgraph reads outer tensors that no edge shows: spikeport cannot follow it through time.
  const flow = g.nodes.find((n) => Object.values(n.attrs).some((a) => a.kind === 'subgraph'));
  if (flow) {
    throw new SpikeportError('unsupported-model', `cannot convert node "${flow.name}" (${flow.opType}, ${position(g, flow, opts.positions)}): it holds a subgraph (control flow), which spikeport does not convert; export the model without it (e.g. without post-processing)`);
  }
  // A QCFS chain is one site, named after its last node; its inner Clip(0, 1) is not a site of its own.
  const chains = findQcfs(g);
  const chainOf = new Map(chains.flatMap((c) => c.nodes.map((n) => [n, c] as const)));
  const sitesAll: Site[] = [];
  for (const n of g.nodes) {
    const chain = chainOf.get(n);
    if (chain) {
      if (n !== chain.nodes[chain.nodes.length - 1]) continue;
      sitesAll.push({ index: sitesAll.length, node: n.name, input: chain.input, output: chain.output, cap: chain.lambda, activation: 'qcfs', start: chain.shift, ann: chain.nodes });
      continue;
    }
    const cap = neuronCap(g, n);
    if (cap !== null) sitesAll.push({ index: sitesAll.length, node: n.name, input: n.inputs[0], output: n.outputs[0], cap, activation: n.opType === 'Relu' ? 'relu' : 'clip', start: 0.5, ann: [n] });
  }
  if (sitesAll.length === 0) {
    const nonlinear = [...new Set(g.nodes.map((n) => n.opType))]
      .filter((op) => !LINEAR_OPS.has(op) && !LINEAR_IF_ONE_VARYING_OPS.has(op) && !SHAPE_ONLY_OPS.has(op) && !STRUCTURAL_OPS.has(op));
    throw new SpikeportError('unsupported-model', `the model has no ReLU (or Clip(0, c)) activation to turn into spiking neurons${nonlinear.length ? ` (its other ops: ${nonlinear.join(', ')})` : ''}`);
  }

  let readoutNode: Node | undefined;
  if (opts.readoutNode !== undefined) {
    readoutNode = g.nodes.find((n) => n.name === opts.readoutNode);
    if (!readoutNode) throw optionError('readoutNode', `"${opts.readoutNode}" is not a node of the model`);
  } else {
    readoutNode = findReadout(g, sitesAll);
  }
  let readout = readoutNode.outputs[0];
  // MatMul + Add(bias): the bias belongs to the readout layer.
  const cons = consumers(g);
  const next = cons.get(readout) ?? [];
  if (readoutNode.opType === 'MatMul' && next.length === 1 && next[0].opType === 'Add'
    && next[0].inputs.some((i) => g.initializers.has(i))) {
    readoutNode = next[0];
    readout = next[0].outputs[0];
  }
  // A QCFS chain wholly before the readout becomes one node standing for it, at its last node's place.
  const before = ancestors(g, [readout]);
  const last = (c: QcfsChain): Node => c.nodes[c.nodes.length - 1];
  const whole = new Set(chains.filter((c) => before.includes(last(c))));
  const spiking = before.flatMap((n): Node[] => {
    const chain = chainOf.get(n);
    if (!chain || !whole.has(chain)) return [n];
    return n === last(chain) ? [{ name: n.name, opType: 'QCFS', domain: 'spikeport', inputs: [chain.input], outputs: [chain.output], attrs: {} }] : [];
  });
  const sites = sitesAll.filter((s) => spiking.some((n) => n.name === s.node))
    .filter((s) => s.node !== readoutNode?.name)
    .map((s, index) => ({ ...s, index }));
  if (sites.length === 0) throw new SpikeportError('unsupported-model', `no ReLU lies before the readout "${readoutNode.name}", so there is nothing to convert`);

  const siteNodes = new Set(sites.map((s) => s.node));
  const varying = new Set<string>();
  for (const n of spiking) {
    if (siteNodes.has(n.name)) {
      n.outputs.forEach((o) => varying.add(o));
      continue;
    }
    if (!n.inputs.some((i) => i && varying.has(i))) continue;
    // A tensor's shape does not change from step to step, only its values.
    if (SHAPE_ONLY_OPS.has(n.opType)) continue;
    checkCarriesSpikes(g, n, varying, n === readoutNode, opts.positions);
    n.outputs.forEach((o) => varying.add(o));
  }
  return { sites, readoutNode: readoutNode.name, readout, spiking, varying };
}

function checkCarriesSpikes(g: Graph, n: Node, varying: ReadonlySet<string>, isReadout: boolean, positions?: ReadonlyMap<string, string>): void {
  if (n.opType === 'MaxPool') return; // pooled on accumulated current in the SNN
  const varIn = n.inputs.map((i) => i !== '' && varying.has(i));
  const count = varIn.filter(Boolean).length;
  let ok: boolean;
  if (n.domain && n.domain !== 'ai.onnx') ok = false;
  else if (n.opType === 'Div') ok = count === 1 && varIn[0];
  else if (LINEAR_IF_ONE_VARYING_OPS.has(n.opType)) ok = count === 1;
  else ok = LINEAR_OPS.has(n.opType);
  if (ok) return;
  const why = LINEAR_IF_ONE_VARYING_OPS.has(n.opType) && count > 1
    ? 'it multiplies two time-varying signals, which spikes cannot do'
    : `${n.opType} is not linear, so spikes cannot pass through it`;
  const hint = isReadout ? '' : '; to end the spiking part before it, set readoutNode to a node before it (everything after the readout runs as ANN on the averaged readout)';
  throw new SpikeportError('unsupported-model', `cannot convert node "${n.name}" (${n.domain ? n.domain + '.' : ''}${n.opType}, ${position(g, n, positions)}): ${why}${hint}`, isReadout ? undefined : 'readoutNode');
}

/** The last weighted layer with no neuron after it. */
function findReadout(g: Graph, sites: readonly Site[]): Node {
  const cons = consumers(g);
  const siteNodes = new Set(sites.map((s) => s.node));
  const downstreamHasSite = (n: Node): boolean => {
    const seen = new Set<Node>();
    const stack = [...n.outputs.flatMap((o) => cons.get(o) ?? [])];
    while (stack.length) {
      const m = stack.pop() as Node;
      if (seen.has(m)) continue;
      seen.add(m);
      if (siteNodes.has(m.name)) return true;
      stack.push(...m.outputs.flatMap((o) => cons.get(o) ?? []));
    }
    return false;
  };
  for (let i = g.nodes.length - 1; i >= 0; i--) {
    const n = g.nodes[i];
    if (WEIGHTED_OPS.has(n.opType) && !downstreamHasSite(n)) return n;
  }
  throw new SpikeportError('unsupported-model', 'the model has no weighted layer (Conv, Gemm, MatMul) after its last ReLU to serve as the non-spiking readout');
}

/**
 * What runs after the readout, as ANN on the averaged readout (softmax, upsampling, anything
 * after --readout NODE): a graph from the readout tensor to the model's outputs, or null when
 * the readout is the output.
 */
export function tailGraph(g: Graph, p: Plan): Graph | null {
  const outs = g.outputs.map((o) => o.name);
  if (outs.length === 1 && outs[0] === p.readout) return null;
  const spiking = new Set([...p.spiking, ...p.sites.flatMap((s) => s.ann)]);
  const nodes = ancestors(g, outs).filter((n) => !spiking.has(n));
  if (nodes.length === 0) return null;
  const produced = new Set([p.readout, ...nodes.flatMap((n) => n.outputs)]);
  for (const n of nodes) {
    const foreign = n.inputs.find((i) => i && !produced.has(i) && !g.initializers.has(i));
    if (foreign) {
      throw new SpikeportError('unsupported-model', `node "${n.name}" (${n.opType}) after the readout "${p.readoutNode}" also reads "${foreign}" from before it; set readoutNode to a later node`, 'readoutNode');
    }
  }
  return {
    ...g,
    name: 'tail',
    nodes,
    initializers: usedInitializers(nodes, g.initializers),
    inputs: [{ name: p.readout, dtype: 'float32', shape: null }],
    outputs: g.outputs.filter((o) => produced.has(o.name)),
    metadata: {},
  };
}
