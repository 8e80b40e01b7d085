/**
 * QCFS activations (quantization-clip-floor-shift, docs/algorithm.md §10.1): the chain of ops a
 * PyTorch export writes for h(x) = λ·clip(⌊x·L/λ + φ⌋ / L, 0, 1), recognised so the whole chain
 * becomes one neuron site with θ = λ and membrane start φ·θ.
 *
 * Two orders are matched, λ one scalar initializer used at both ends:
 *   Div(λ) → Mul(L) → Add(φ) → Floor → Div(L) → Clip(0, 1) → Mul(λ)
 *   Div(λ) → Clip(0, 1) → Mul(L) → Add(φ) → Floor → Div(L) → Mul(λ)
 */
import type { Graph, Node } from './ir.js';
import { clipBounds, scalarOf } from './passes.js';
import { consumers } from './topo.js';

export interface QcfsChain {
  /** The chain's nodes, front to back. */
  readonly nodes: readonly Node[];
  /** The pre-activation x and the activation h(x). */
  readonly input: string;
  readonly output: string;
  /** λ: the clip level, which becomes θ. */
  readonly lambda: number;
  /** L: quantisation levels. */
  readonly levels: number;
  /** φ: the shift, which becomes the membrane start as a fraction of θ. */
  readonly shift: number;
}

/** One op of the pattern: its type, and for binary ops a test on the constant operand. */
interface Step {
  readonly op: string;
  /** For Mul/Add (either operand order) and Div (divisor only): the constant's name and value pass. */
  readonly constant?: (name: string, value: number) => boolean;
}

export function findQcfs(g: Graph): QcfsChain[] {
  const cons = consumers(g);
  const outputs = new Set(g.outputs.map((o) => o.name));
  const chains: QcfsChain[] = [];
  const used = new Set<Node>();
  for (const first of g.nodes) {
    if (first.opType !== 'Div' || used.has(first)) continue;
    const lambdaName = first.inputs[1];
    const lambda = scalarOf(g, lambdaName);
    if (lambda === undefined || !(lambda > 0) || !Number.isFinite(lambda)) continue;
    for (const order of ORDERS) {
      const chain = follow(g, first, order(lambdaName, lambda), cons, outputs);
      if (!chain) continue;
      const levels = scalarOf(g, constantOf(g, chain[order === ORDERS[0] ? 1 : 2])) as number;
      const shift = scalarOf(g, constantOf(g, chain[order === ORDERS[0] ? 2 : 3])) as number;
      chain.forEach((n) => used.add(n));
      chains.push({
        nodes: chain,
        input: first.inputs[0],
        output: chain[chain.length - 1].outputs[0],
        lambda,
        levels,
        shift,
      });
      break;
    }
  }
  return chains;
}

function constantOf(g: Graph, n: Node): string {
  return n.inputs.find((i, k) => (n.opType === 'Div' ? k === 1 : g.initializers.has(i))) as string;
}

const positive = (_: string, v: number): boolean => v > 0 && Number.isFinite(v);
const isShift = (_: string, v: number): boolean => v >= 0 && v < 1;

/** The two orders, as step lists after the first Div(λ). */
const ORDERS: readonly ((lambdaName: string, lambda: number) => Step[])[] = [
  (lambdaName, lambda) => [
    { op: 'Mul', constant: positive },
    { op: 'Add', constant: isShift },
    { op: 'Floor' },
    { op: 'Div', constant: positive },
    { op: 'Clip' },
    { op: 'Mul', constant: (name, v) => name === lambdaName || v === lambda },
  ],
  (lambdaName, lambda) => [
    { op: 'Clip' },
    { op: 'Mul', constant: positive },
    { op: 'Add', constant: isShift },
    { op: 'Floor' },
    { op: 'Div', constant: positive },
    { op: 'Mul', constant: (name, v) => name === lambdaName || v === lambda },
  ],
];

/** Follow single-consumer edges from `first` through the steps; the chain's nodes, or null. */
function follow(
  g: Graph,
  first: Node,
  steps: readonly Step[],
  cons: ReadonlyMap<string, Node[]>,
  outputs: ReadonlySet<string>,
): Node[] | null {
  const chain = [first];
  let levels: number | undefined;
  for (const step of steps) {
    const prev = chain[chain.length - 1];
    const t = prev.outputs[0];
    const next = cons.get(t) ?? [];
    if (next.length !== 1 || outputs.has(t)) return null;
    const n = next[0];
    if (n.opType !== step.op || (n.domain && n.domain !== 'ai.onnx')) return null;
    if (step.op === 'Clip') {
      const [lo, hi] = clipBounds(g, n);
      if (n.inputs[0] !== t || lo !== 0 || hi !== 1) return null;
    } else if (step.constant) {
      const k = step.op === 'Div' ? 1 : n.inputs.findIndex((i) => i !== t);
      if (k < 0 || n.inputs.length !== 2 || n.inputs[1 - k] !== t) return null;
      const v = scalarOf(g, n.inputs[k]);
      if (v === undefined || !step.constant(n.inputs[k], v)) return null;
      // Mul(L) … Div(L): the same number of levels both ways.
      if (step.op === 'Mul' && levels === undefined && chain.length < 4) levels = v;
      else if (step.op === 'Div' && v !== levels) return null;
    } else if (n.inputs[0] !== t) {
      return null;
    }
    chain.push(n);
  }
  return chain;
}
