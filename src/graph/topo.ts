import type { Graph, Node } from './ir.js';


/** Tensor name -> nodes consuming it. */
export function consumers(g: Graph): Map<string, Node[]> {
  const m = new Map<string, Node[]>();
  for (const n of g.nodes) {
    for (const i of n.inputs) {
      if (!i) continue;
      const list = m.get(i);
      if (list) { if (!list.includes(n)) list.push(n); } else m.set(i, [n]);
    }
  }
  return m;
}

/** Replace every use of tensor `from` by `to` in node inputs. */
export function renameInputs(nodes: readonly Node[], from: string, to: string): Node[] {
  return nodes.map((n) => (n.inputs.includes(from)
    ? { ...n, inputs: n.inputs.map((i) => (i === from ? to : i)) }
    : n));
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
