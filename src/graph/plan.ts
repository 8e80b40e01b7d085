/**
 * What the converter will do with a prepared graph: where the neuron sites are, where the
 * spiking part ends (the non-spiking readout), which tensors vary over time steps, and
 * whether every op on the way can carry spikes.
 */
import type { Graph, Node } from './ir.js';
import { attrInt, int64Tensor, numel, type Tensor } from './ir.js';
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

/** One readout: a node whose output is averaged over steps, and that tensor. */
export interface Readout {
  readonly node: string;
  readonly tensor: string;
}

/** The tensor that holds several readouts side by side (each flattened per sample, in order). */
export const PACKED_READOUT = 'spikeport.readouts';

export interface Plan {
  readonly sites: readonly Site[];
  /**
   * The node whose output is the readout, and that tensor. With several readouts (a network with
   * several outputs), the Concat node PACKED_READOUT and its output: every readout flattened per
   * sample and put side by side, so that the simulation averages one tensor; the tail unpacks it.
   */
  readonly readoutNode: string;
  readonly readout: string;
  /** The readouts, in graph order: one, or the parts packed into `readout`. */
  readonly readouts: readonly Readout[];
  /** The nodes that pack several readouts into one (empty for one readout); the last is readoutNode. */
  readonly pack: readonly Node[];
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
  /**
   * End the spiking part at these nodes' outputs (they become the readouts). Default: every
   * weighted layer that leads to a graph output with no weighted layer after it.
   */
  readonly readoutNode?: string | readonly string[];
  /** Node positions in the user's original model, for error messages (default: this graph's). */
  readonly positions?: ReadonlyMap<string, string>;
}

export function plan(g: Graph, opts: PlanOptions = {}): Plan {
  // A subgraph reads outer tensors that no edge shows: spikeport cannot follow it through time.
  const flow = g.nodes.find((n) => Object.values(n.attrs).some((a) => a.kind === 'subgraph'));
  if (flow) {
    throw new SpikeportError(
      'unsupported-model',
      `cannot convert node "${flow.name}" (${flow.opType}, ${position(g, flow, opts.positions)}): it holds a subgraph (control flow), which spikeport does not convert; export the model without it (e.g. without post-processing)`,
    );
  }
  // A QCFS chain is one site, named after its last node; its inner Clip(0, 1) is not a site of its own.
  const chains = findQcfs(g);
  const chainOf = new Map(chains.flatMap((c) => c.nodes.map((n) => [n, c] as const)));
  const sitesAll: Site[] = [];
  for (const n of g.nodes) {
    const chain = chainOf.get(n);
    if (chain) {
      if (n !== chain.nodes[chain.nodes.length - 1]) continue;
      sitesAll.push({
        index: sitesAll.length,
        node: n.name,
        input: chain.input,
        output: chain.output,
        cap: chain.lambda,
        activation: 'qcfs',
        start: chain.shift,
        ann: chain.nodes,
      });
      continue;
    }
    const cap = neuronCap(g, n);
    if (cap !== null)
      sitesAll.push({
        index: sitesAll.length,
        node: n.name,
        input: n.inputs[0],
        output: n.outputs[0],
        cap,
        activation: n.opType === 'Relu' ? 'relu' : 'clip',
        start: 0.5,
        ann: [n],
      });
  }
  if (sitesAll.length === 0) {
    const nonlinear = [...new Set(g.nodes.map((n) => n.opType))].filter(
      (op) =>
        !LINEAR_OPS.has(op) && !LINEAR_IF_ONE_VARYING_OPS.has(op) && !SHAPE_ONLY_OPS.has(op) && !STRUCTURAL_OPS.has(op),
    );
    throw new SpikeportError(
      'unsupported-model',
      `the model has no ReLU (or Clip(0, c)) activation to turn into spiking neurons${nonlinear.length ? ` (its other ops: ${nonlinear.join(', ')})` : ''}`,
    );
  }

  const chosen = opts.readoutNode === undefined ? undefined : readoutList(opts.readoutNode);
  const found = chosen
    ? chosen.map((name) => {
        const n = g.nodes.find((m) => m.name === name);
        if (!n) throw optionError('readoutNode', `"${name}" is not a node of the model`);
        return n;
      })
    : findReadouts(g);
  // MatMul + Add(bias): the bias belongs to the readout layer.
  const cons = consumers(g);
  const readoutNodes = [
    ...new Set(
      found.map((n) => {
        const next = cons.get(n.outputs[0]) ?? [];
        return n.opType === 'MatMul' &&
          next.length === 1 &&
          next[0].opType === 'Add' &&
          next[0].inputs.some((i) => g.initializers.has(i))
          ? next[0]
          : n;
      }),
    ),
  ].sort((a, b) => g.nodes.indexOf(a) - g.nodes.indexOf(b));
  const readouts = readoutNodes.map((n) => ({ node: n.name, tensor: n.outputs[0] }));
  const pack = packNodes(readouts);
  const readoutNode = pack.length ? pack[pack.length - 1] : readoutNodes[0];
  const readout = readoutNode.outputs[0];
  const isReadout = new Set(readouts.map((r) => r.node));
  // A QCFS chain wholly before the readouts becomes one node standing for it, at its last node's place.
  const before = [
    ...ancestors(
      g,
      readouts.map((r) => r.tensor),
    ),
    ...pack,
  ];
  const last = (c: QcfsChain): Node => c.nodes[c.nodes.length - 1];
  const whole = new Set(chains.filter((c) => before.includes(last(c))));
  const spiking = before.flatMap((n): Node[] => {
    const chain = chainOf.get(n);
    if (!chain || !whole.has(chain)) return [n];
    return n === last(chain)
      ? [
          {
            name: n.name,
            opType: 'QCFS',
            domain: 'spikeport',
            inputs: [chain.input],
            outputs: [chain.output],
            attrs: {},
          },
        ]
      : [];
  });
  const sites = sitesAll
    .filter((s) => spiking.some((n) => n.name === s.node))
    .filter((s) => !isReadout.has(s.node))
    .map((s, index) => ({ ...s, index }));
  if (sites.length === 0)
    throw new SpikeportError(
      'unsupported-model',
      `no ReLU lies before the readout ${readouts.map((r) => `"${r.node}"`).join(', ')}, so there is nothing to convert`,
    );

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
    checkCarriesSpikes(g, n, varying, isReadout.has(n.name), opts.positions);
    n.outputs.forEach((o) => varying.add(o));
  }
  return { sites, readoutNode: readoutNode.name, readout, readouts, pack, spiking, varying };
}

/** The readoutNode option as a list of node names (one name, or several). */
export function readoutList(v: string | readonly string[]): string[] {
  const list = typeof v === 'string' ? [v] : [...v];
  if (list.length === 0) throw optionError('readoutNode', 'must name at least one node');
  const bad = list.find((x) => typeof x !== 'string' || x === '');
  if (bad !== undefined) throw optionError('readoutNode', 'must be node names');
  const dup = list.find((x, i) => list.indexOf(x) !== i);
  if (dup !== undefined) throw optionError('readoutNode', `names "${dup}" twice`);
  return list;
}

/**
 * Several readouts as one tensor: each flattened per sample ([n, k_i]) and concatenated along
 * axis 1 ([n, Σk_i]), in order. Flatten and Concat are linear, so averaging the packed tensor over
 * steps averages every readout; the tail (tailGraph) cuts it back into the readouts.
 */
function packNodes(readouts: readonly Readout[]): Node[] {
  if (readouts.length < 2) return [];
  const flat = readouts.map((r, i): Node => ({
    name: `${PACKED_READOUT}.flatten${i}`,
    opType: 'Flatten',
    domain: '',
    inputs: [r.tensor],
    outputs: [`${PACKED_READOUT}.part${i}`],
    attrs: { axis: { kind: 'int', value: 1 } },
  }));
  return [
    ...flat,
    {
      name: PACKED_READOUT,
      opType: 'Concat',
      domain: '',
      inputs: flat.map((n) => n.outputs[0]),
      outputs: [PACKED_READOUT],
      attrs: { axis: { kind: 'int', value: 1 } },
    },
  ];
}

/** The graph with the plan's packing nodes added (they read the readouts; nothing reads them but the simulation). */
export function withPack(g: Graph, p: Plan): Graph {
  return p.pack.length ? { ...g, nodes: [...g.nodes, ...p.pack] } : g;
}

function checkCarriesSpikes(
  g: Graph,
  n: Node,
  varying: ReadonlySet<string>,
  isReadout: boolean,
  positions?: ReadonlyMap<string, string>,
): void {
  if (n.opType === 'MaxPool') return; // pooled on accumulated current in the SNN
  const varIn = n.inputs.map((i) => i !== '' && varying.has(i));
  const count = varIn.filter(Boolean).length;
  let ok: boolean;
  if (n.domain && n.domain !== 'ai.onnx') ok = false;
  else if (n.opType === 'Div') ok = count === 1 && varIn[0];
  else if (LINEAR_IF_ONE_VARYING_OPS.has(n.opType)) ok = count === 1;
  else ok = LINEAR_OPS.has(n.opType);
  if (ok) return;
  const why =
    LINEAR_IF_ONE_VARYING_OPS.has(n.opType) && count > 1
      ? 'it multiplies two time-varying signals, which spikes cannot do'
      : `${n.opType} is not linear, so spikes cannot pass through it`;
  const hint = isReadout
    ? ''
    : '; to end the spiking part before it, set readoutNode to a node before it (everything after the readout runs as ANN on the averaged readout)';
  throw new SpikeportError(
    'unsupported-model',
    `cannot convert node "${n.name}" (${n.domain ? n.domain + '.' : ''}${n.opType}, ${position(g, n, positions)}): ${why}${hint}`,
    isReadout ? undefined : 'readoutNode',
  );
}

/**
 * The readouts: every weighted layer (Conv, ConvTranspose, Gemm, MatMul) that a graph output
 * depends on and after which no other weighted layer comes. A network with one head has one; a
 * detector has one per head and pyramid level. Activations after them (a final ReLU) run in the
 * tail, on the averaged readout.
 */
function findReadouts(g: Graph): Node[] {
  const cons = consumers(g);
  const feeds = ancestors(
    g,
    g.outputs.map((o) => o.name),
  );
  // Whether a weighted layer lies downstream of each node (memoised over the DAG).
  const memo = new Map<Node, boolean>();
  const weightedAfter = (n: Node): boolean => {
    const known = memo.get(n);
    if (known !== undefined) return known;
    memo.set(n, false);
    let v = false;
    for (const o of n.outputs)
      for (const m of cons.get(o) ?? []) if (WEIGHTED_OPS.has(m.opType) || weightedAfter(m)) v = true;
    memo.set(n, v);
    return v;
  };
  const found = feeds.filter((n) => WEIGHTED_OPS.has(n.opType) && !weightedAfter(n));
  if (found.length === 0)
    throw new SpikeportError(
      'unsupported-model',
      'the model has no weighted layer (Conv, Gemm, MatMul) after its last ReLU to serve as the non-spiking readout',
    );
  return found;
}

/**
 * The packed readout cut back into its parts (the tail's first nodes): part i is
 * Slice(packed, [o_i, o_i + k_i) on axis 1) reshaped to [n, …its per-sample shape].
 */
function unpackNodes(p: Plan, shapeOf: ShapeOf, initializers: Map<string, Tensor>): Node[] {
  if (p.pack.length === 0) return [];
  const nodes: Node[] = [];
  let offset = 0;
  p.readouts.forEach((r, i) => {
    const dims = shapeOf(r.tensor);
    if (!dims) throw new Error(`the per-sample shape of readout "${r.tensor}" is not known`);
    const k = numel(dims);
    const name = (what: string): string => `${PACKED_READOUT}.${what}${i}`;
    initializers.set(name('starts'), int64Tensor([1], [offset]));
    initializers.set(name('ends'), int64Tensor([1], [offset + k]));
    initializers.set(name('axes'), int64Tensor([1], [1]));
    initializers.set(name('shape'), int64Tensor([dims.length + 1], [-1, ...dims]));
    nodes.push(
      {
        name: name('slice'),
        opType: 'Slice',
        domain: '',
        inputs: [p.readout, name('starts'), name('ends'), name('axes')],
        outputs: [name('flat')],
        attrs: {},
      },
      {
        name: name('reshape'),
        opType: 'Reshape',
        domain: '',
        inputs: [name('flat'), name('shape')],
        outputs: [r.tensor],
        attrs: {},
      },
    );
    offset += k;
  });
  return nodes;
}

/** Per-sample shape (no batch axis) of a tensor from before the readout, when known. */
export type ShapeOf = (tensor: string) => readonly number[] | undefined;

/**
 * The tensors whose shapes the tail reads from before the readout (inputs of Shape nodes that
 * the tail needs); tailGraph needs their per-sample shapes.
 */
export function tailShapeInputs(g: Graph, p: Plan): string[] {
  return staticPart(g, p).shapes.map((n) => n.inputs[0]);
}

/** Tail nodes and the static nodes (shapes, and what is computed from shapes and constants only) they pull in from before the readout. */
function staticPart(
  g: Graph,
  p: Plan,
): { nodes: Node[]; shapes: Node[]; foreign: { node: Node; input: string } | null } {
  const outs = g.outputs.map((o) => o.name);
  const spiking = new Set([...p.spiking, ...p.sites.flatMap((s) => s.ann)]);
  const tail = ancestors(g, outs).filter((n) => !spiking.has(n));
  const prod = new Map<string, Node>();
  for (const n of g.nodes) for (const o of n.outputs) if (o) prod.set(o, n);
  const inTail = new Set(tail);
  const produced = new Set([p.readout, ...p.readouts.map((r) => r.tensor), ...tail.flatMap((n) => n.outputs)]);
  const shapes: Node[] = [];
  const pulled = new Set<Node>();
  // A tensor is static when it is a constant, a shape (which does not change from step to step)
  // or computed from those only; such a tensor from before the readout may be read by the tail.
  const isStatic = (t: string, seen: Set<string>): boolean => {
    if (!t || g.initializers.has(t) || produced.has(t)) return true;
    if (seen.has(t)) return true;
    seen.add(t);
    const n = prod.get(t);
    if (!n) return false;
    if (n.opType === 'Shape' && (!n.domain || n.domain === 'ai.onnx')) return true;
    if (n.opType === 'Size' || (n.domain && n.domain !== 'ai.onnx')) return false;
    if (Object.values(n.attrs).some((a) => a.kind === 'subgraph' || a.kind === 'opaque')) return false;
    return n.inputs.length > 0 ? n.inputs.every((i) => isStatic(i, seen)) : n.opType === 'Constant';
  };
  const pull = (t: string): void => {
    if (!t || g.initializers.has(t) || produced.has(t)) return;
    const n = prod.get(t) as Node;
    if (pulled.has(n) || inTail.has(n)) return;
    pulled.add(n);
    if (n.opType === 'Shape') {
      if (!produced.has(n.inputs[0])) shapes.push(n);
      else pull(n.inputs[0]);
      return;
    }
    n.inputs.forEach(pull);
  };
  let foreign: { node: Node; input: string } | null = null;
  for (const n of tail) {
    const readsFromBefore = n.opType === 'Shape' ? [] : n.inputs;
    for (const i of readsFromBefore) {
      if (!i || produced.has(i) || g.initializers.has(i)) continue;
      if (isStatic(i, new Set())) pull(i);
      else foreign ??= { node: n, input: i };
    }
    if (n.opType === 'Shape' && !produced.has(n.inputs[0])) shapes.push(n);
  }
  const keep = new Set([...tail, ...pulled]);
  return { nodes: g.nodes.filter((n) => keep.has(n)), shapes: [...new Set(shapes)], foreign };
}

/**
 * What runs after the readout, as ANN on the averaged readout (softmax, upsampling, anything
 * after --readout NODE): a graph from the readout tensor to the model's outputs, or null when
 * the readout is the output. The tail may read shapes of tensors from before the readout, and
 * anything computed only from shapes and constants (a final Resize to Shape(input)): a shape
 * does not change from step to step. Each such Shape(x) becomes [batch of the readout,
 * …per-sample shape of x] (`shapeOf`), so the tail needs nothing but the readout.
 */
export function tailGraph(g: Graph, p: Plan, shapeOf: ShapeOf = () => undefined): Graph | null {
  const outs = g.outputs.map((o) => o.name);
  if (outs.length === 1 && outs[0] === p.readout) return null;
  const { nodes: found, shapes, foreign } = staticPart(g, p);
  if (found.length === 0 && p.pack.length === 0) return null;
  if (foreign) {
    const what =
      p.readouts.length > 1
        ? `the readouts ${p.readouts.map((r) => `"${r.node}"`).join(', ')}`
        : `the readout "${p.readoutNode}"`;
    throw new SpikeportError(
      'unsupported-model',
      `node "${foreign.node.name}" (${foreign.node.opType}) after ${what} also reads "${foreign.input}" from before it; set readoutNode to later nodes (a list: every output's last weighted layer)`,
      'readoutNode',
    );
  }
  const initializers = new Map(usedInitializers(found, g.initializers));
  const nodes: Node[] = unpackNodes(p, shapeOf, initializers);
  const batchOf = `${p.readout}__batch`;
  const rewritten = new Set(shapes);
  if (shapes.length > 0) {
    initializers.set(`${batchOf}__0`, int64Tensor([1], [0]));
    initializers.set(`${batchOf}__1`, int64Tensor([1], [1]));
    nodes.push(
      {
        name: `${batchOf}__shape`,
        opType: 'Shape',
        domain: '',
        inputs: [p.readout],
        outputs: [`${batchOf}__shape`],
        attrs: {},
      },
      {
        name: batchOf,
        opType: 'Slice',
        domain: '',
        inputs: [`${batchOf}__shape`, `${batchOf}__0`, `${batchOf}__1`],
        outputs: [batchOf],
        attrs: {},
      },
    );
  }
  for (const n of found) {
    if (!rewritten.has(n)) {
      nodes.push(n);
      continue;
    }
    const x = n.inputs[0];
    const dims = shapeOf(x);
    if (!dims)
      throw new SpikeportError(
        'unsupported-model',
        `node "${n.name}" (Shape) after the readout "${p.readoutNode}" reads the shape of "${x}", which is not known; set readoutNode to a later node`,
        'readoutNode',
      );
    const rank = dims.length + 1;
    const start = attrInt(n, 'start', 0);
    const end = attrInt(n, 'end', rank);
    const lo = Math.max(0, Math.min(rank, start < 0 ? start + rank : start));
    const hi = Math.max(0, Math.min(rank, end < 0 ? end + rank : end));
    const full = [-1, ...dims];
    const part = full.slice(lo, Math.max(lo, hi));
    const per = `${n.outputs[0]}__per_sample`;
    if (part[0] === -1) {
      // [batch, …]: the batch is the readout's (the same samples), the rest is fixed.
      initializers.set(per, int64Tensor([part.length - 1], part.slice(1)));
      nodes.push({
        name: n.name,
        opType: 'Concat',
        domain: '',
        inputs: [batchOf, per],
        outputs: n.outputs,
        attrs: { axis: { kind: 'int', value: 0 } },
      });
    } else {
      initializers.set(per, int64Tensor([part.length], part));
      nodes.push({ name: n.name, opType: 'Identity', domain: '', inputs: [per], outputs: n.outputs, attrs: {} });
    }
  }
  const produced = new Set(nodes.flatMap((n) => n.outputs));
  const missing = g.outputs.find((o) => !produced.has(o.name));
  if (missing)
    throw new SpikeportError(
      'unsupported-model',
      `the model's output "${missing.name}" does not come from the readout${p.readouts.length > 1 ? 's' : ''} ${p.readouts.map((r) => `"${r.node}"`).join(', ')}; set readoutNode to nodes it depends on`,
      'readoutNode',
    );
  return {
    ...g,
    name: 'tail',
    nodes,
    initializers,
    inputs: [{ name: p.readout, dtype: 'float32', shape: null }],
    outputs: g.outputs.filter((o) => produced.has(o.name)),
    metadata: {},
  };
}
