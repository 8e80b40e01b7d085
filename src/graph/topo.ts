/** Graph structure: who consumes a tensor, what a tensor depends on, which initializers are read. */
import type { Graph, Node } from './ir.js';

/** Tensor name -> nodes consuming it. */
export function consumers(g: Graph): Map<string, Node[]> {
  const m = new Map<string, Node[]>();
  for (const n of g.nodes) {
    for (const i of n.inputs) {
      if (!i) continue;
      const list = m.get(i);
      if (list) {
        if (!list.includes(n)) list.push(n);
      } else m.set(i, [n]);
    }
  }
  return m;
}

/** Replace every use of tensor `from` by `to` in node inputs. */
export function renameInputs(nodes: readonly Node[], from: string, to: string): Node[] {
  return nodes.map((n) => (n.inputs.includes(from) ? { ...n, inputs: n.inputs.map((i) => (i === from ? to : i)) } : n));
}

/** The nodes that `target` depends on (transitively), in graph order. */
export function ancestors(g: Graph, targets: readonly string[]): Node[] {
  const prod = new Map<string, Node>();
  for (const n of g.nodes) for (const o of n.outputs) if (o) prod.set(o, n);
  const keep = new Set<Node>();
  const stack = [...targets];
  while (stack.length) {
    const t = stack.pop() as string;
    const n = prod.get(t);
    if (!n || keep.has(n)) continue;
    keep.add(n);
    for (const i of n.inputs) if (i) stack.push(i);
  }
  return g.nodes.filter((n) => keep.has(n));
}

/**
 * The initializers (from one or more maps, later ones winning) that `nodes` read. A node with a
 * subgraph spikeport does not decode may read any of them, so then all are kept.
 */
export function usedInitializers<T>(nodes: readonly Node[], ...maps: ReadonlyMap<string, T>[]): Map<string, T> {
  const all = new Map(maps.flatMap((m) => [...m]));
  if (nodes.some((n) => Object.values(n.attrs).some((a) => a.kind === 'opaque' || a.kind === 'subgraph'))) return all;
  const used = new Set<string>();
  const visit = (ns: readonly Node[]): void => {
    for (const n of ns) {
      for (const i of n.inputs) used.add(i);
      for (const a of Object.values(n.attrs)) if (a.kind === 'graph') visit(a.value.nodes);
    }
  };
  visit(nodes);
  return new Map([...all].filter(([k]) => used.has(k)));
}
