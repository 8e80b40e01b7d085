/**
 * Graph rewrites. Each is a pure function Graph -> Graph that leaves the network's output
 * unchanged (up to float rounding).
 */
import type { Graph, Node, Tensor } from './ir.js';
import { attrFloat, attrInt, withGraph } from './ir.js';
import { consumers, renameInputs, usedInitializers } from './topo.js';

const graphOutputs = (g: Graph): Set<string> => new Set(g.outputs.map((o) => o.name));

/** Constant nodes with a tensor value become initializers, so later passes see one form. */
export function constantsToInitializers(g: Graph): Graph {
  const initializers = new Map(g.initializers);
  const nodes: Node[] = [];
  for (const n of g.nodes) {
    const v = n.attrs.value;
    if (n.opType === 'Constant' && v && v.kind === 'tensor' && !graphOutputs(g).has(n.outputs[0])) {
      initializers.set(n.outputs[0], v.value);
    } else nodes.push(n);
  }
  return withGraph(g, { nodes, initializers });
}

/**
 * Cast of a constant to float becomes a float initializer (PyTorch writes Clip's bounds as
 * Cast(Constant)), so later passes read one form.
 */
export function foldConstantCasts(g: Graph): Graph {
  const initializers = new Map(g.initializers);
  const outs = graphOutputs(g);
  const nodes = g.nodes.filter((n) => {
    const t = n.opType === 'Cast' && attrInt(n, 'to', 0) === 1 ? initializers.get(n.inputs[0]) : undefined;
    if (!t || t.dtype === 'bool' || t.dtype === 'float16' || outs.has(n.outputs[0])) return true;
    initializers.set(n.outputs[0], {
      dtype: 'float32',
      dims: [...t.dims],
      data: Float32Array.from(t.data as ArrayLike<number>, Number),
    });
    return false;
  });
  return withGraph(g, { nodes, initializers: usedInitializers(nodes, initializers) });
}

/** Drop Identity and inference-time Dropout (a no-op in an exported eval model). */
export function removeIdentityAndDropout(g: Graph): Graph {
  let nodes = [...g.nodes];
  const outs = graphOutputs(g);
  for (const original of g.nodes) {
    if (original.opType !== 'Identity' && original.opType !== 'Dropout') continue;
    // The node as it is now: an earlier removal may have renamed its input (Identity of an Identity).
    const n = nodes.find((m) => m.name === original.name && m.outputs[0] === original.outputs[0]) as Node;
    const maskUsed = n.outputs.length > 1 && n.outputs[1] !== '' && nodes.some((m) => m.inputs.includes(n.outputs[1]));
    if (maskUsed || outs.has(n.outputs[0])) continue;
    nodes = renameInputs(
      nodes.filter((m) => m !== n),
      n.outputs[0],
      n.inputs[0],
    );
  }
  return withGraph(g, { nodes });
}

function floats(t: Tensor): Float32Array {
  return t.data instanceof Float32Array ? t.data : Float32Array.from(t.data as ArrayLike<number>);
}

/**
 * Fold a BatchNormalization that directly follows a Conv or Gemm (and is that layer's only
 * consumer) into the layer: W' = W·γ/√(σ²+ε), b' = γ(b−μ)/√(σ²+ε) + β.
 */
export function foldBatchNorm(g: Graph): Graph {
  const initializers = new Map(g.initializers);
  let nodes = [...g.nodes];
  const cons = consumers(g);
  const outs = graphOutputs(g);
  for (const bn of g.nodes) {
    if (bn.opType !== 'BatchNormalization') continue;
    const layer = nodes.find((n) => n.outputs[0] === bn.inputs[0]);
    if (!layer || (layer.opType !== 'Conv' && layer.opType !== 'Gemm')) continue;
    if ((cons.get(layer.outputs[0]) ?? []).length !== 1 || outs.has(layer.outputs[0])) continue;
    const [, sName, bName, mName, vName] = bn.inputs;
    const params = [sName, bName, mName, vName].map((k) => initializers.get(k));
    const W = initializers.get(layer.inputs[1]);
    if (params.some((p) => !p) || !W || W.dtype !== 'float32') continue;
    const [gamma, beta, mean, variance] = params.map((p) => floats(p as Tensor));
    const eps = attrFloat(bn, 'epsilon', 1e-5);
    const C = gamma.length;
    const scale = new Float32Array(C);
    for (let k = 0; k < C; k++) scale[k] = gamma[k] / Math.sqrt(variance[k] + eps);

    const w = floats(W);
    const newW = new Float32Array(w.length);
    let alpha = 1;
    let beta0 = 1;
    if (layer.opType === 'Conv') {
      const per = w.length / C; // weights are [C_out, C_in/groups, k...]
      for (let i = 0; i < w.length; i++) newW[i] = w[i] * scale[Math.floor(i / per)];
    } else {
      alpha = attrFloat(layer, 'alpha', 1);
      beta0 = attrFloat(layer, 'beta', 1);
      const transB = attrInt(layer, 'transB', 0) === 1;
      const [r, c] = W.dims; // transB: [out, in]; else [in, out]
      for (let i = 0; i < r; i++) {
        for (let j = 0; j < c; j++) {
          const k = transB ? i : j;
          newW[i * c + j] = alpha * w[i * c + j] * scale[k];
        }
      }
    }
    const oldB = layer.inputs[2] ? initializers.get(layer.inputs[2]) : undefined;
    if (layer.inputs[2] && !oldB) continue;
    const b = oldB ? floats(oldB) : new Float32Array(C);
    if (b.length !== C && b.length !== 1) continue;
    const newB = new Float32Array(C);
    for (let k = 0; k < C; k++) {
      const bk = (b.length === 1 ? b[0] : b[k]) * beta0;
      newB[k] = scale[k] * (bk - mean[k]) + beta[k];
    }
    const wName = `${layer.inputs[1]}_bnfold_${layer.name}`;
    const bName2 = `${layer.name}_bnfold_bias`;
    initializers.set(wName, { dtype: 'float32', dims: [...W.dims], data: newW });
    initializers.set(bName2, { dtype: 'float32', dims: [C], data: newB });
    const attrs = { ...layer.attrs };
    if (layer.opType === 'Gemm') {
      attrs.alpha = { kind: 'float', value: 1 };
      attrs.beta = { kind: 'float', value: 1 };
    }
    const folded: Node = { ...layer, inputs: [layer.inputs[0], wName, bName2], outputs: [bn.outputs[0]], attrs };
    nodes = nodes.filter((n) => n !== bn).map((n) => (n === layer ? folded : n));
  }
  // Drop initializers nothing uses any more.
  return withGraph(g, { nodes, initializers: usedInitializers(nodes, initializers) });
}

/** A one-element initializer's value; undefined for anything else. */
export function scalarOf(g: Graph, name: string | undefined): number | undefined {
  if (!name) return undefined;
  const t = g.initializers.get(name);
  if (!t || t.data.length !== 1 || t.dtype === 'bool') return undefined;
  return Number(t.data[0]);
}

/** Clip's bounds, from attributes (opset < 11) or inputs; NaN where a bound is not a constant. */
export function clipBounds(g: Graph, n: Node): [number, number] {
  let lo = -Infinity;
  let hi = Infinity;
  if (g.opset < 11 || n.inputs.length === 1) {
    lo = attrFloat(n, 'min', lo);
    hi = attrFloat(n, 'max', hi);
  }
  const read = (name: string | undefined): number | undefined => (name ? (scalarOf(g, name) ?? NaN) : undefined);
  const a = read(n.inputs[1]);
  const b = read(n.inputs[2]);
  if (a !== undefined) lo = a;
  if (b !== undefined) hi = b;
  return [lo, hi];
}

/** Relu, or Clip whose lower bound is 0 (ReLU6, Clip(0, c)). Returns the cap, Infinity for none. */
export function neuronCap(g: Graph, n: Node): number | null {
  if (n.opType === 'Relu') return Infinity;
  if (n.opType !== 'Clip') return null;
  const [lo, hi] = clipBounds(g, n);
  if (Number.isNaN(lo) || Number.isNaN(hi) || lo !== 0) return null;
  return hi;
}

/**
 * Pre-neuron max pooling: MaxPool(ReLU(x)) = ReLU(MaxPool(x)) (and likewise for Clip(0, c)),
 * so the pool is moved in front of the neuron. The ANN is unchanged; in the SNN the neuron
 * then follows the pool.
 */
export function movePoolsBeforeNeurons(g: Graph): Graph {
  const nodes = [...g.nodes];
  const outs = graphOutputs(g);
  const cons = consumers(g);
  for (let i = 0; i < nodes.length; i++) {
    const site = nodes[i];
    if (neuronCap(g, site) === null) continue;
    const y = site.outputs[0];
    const users = cons.get(y) ?? [];
    if (users.length !== 1 || outs.has(y)) continue;
    const pool = users[0];
    if (pool.opType !== 'MaxPool' || pool.inputs[0] !== y) continue;
    if (pool.outputs.length > 1 && pool.outputs[1] && (cons.get(pool.outputs[1]) ?? []).length > 0) continue;
    const j = nodes.indexOf(pool);
    const p = pool.outputs[0];
    nodes[i] = { ...pool, inputs: [site.inputs[0]], outputs: [y] };
    nodes[j] = { ...site, inputs: [y, ...site.inputs.slice(1)], outputs: [p] };
  }
  return withGraph(g, { nodes });
}

/** The standard preparation, in order. */
export function prepare(g: Graph): Graph {
  return movePoolsBeforeNeurons(foldBatchNorm(removeIdentityAndDropout(foldConstantCasts(constantsToInitializers(g)))));
}
