/**
 * Exact spike and SOP counts for the step engine, as a rewrite of the step graph at run time
 * (the saved file is not changed). The counters as built (counters.ts) read θ-valued spikes
 * through columns 1/θ and fan-out/θ and sum the batch in float32, which rounds: θ·(f/θ) is not
 * always f, and a batch's total passes 2^24 on larger layers. Rewritten, each counter reads the
 * neuron's own 0/1 spikes (the Cast before the multiplication by θ) through whole-number columns
 * (1 and the fan-outs), one row per sample and channel where the fan-outs repeat per channel,
 * and sums the rows in float64. Every product and partial sum is then a whole number below 2^24
 * (so float32 holds it exactly) as long as one row's total stays below 2^24 — true unless a
 * single channel of one sample causes 16.7 M synaptic operations in one step — and the counts
 * equal the fused engine's, which counts in integers.
 */
import type { Graph, Node, Tensor, ValueInfo } from '../graph/ir.js';
import { floatTensor, int64Tensor, numel } from '../graph/ir.js';
import { counterOutputs, type SnnSpec } from './format.js';

/** The step graph with exact counters (unchanged where a counter does not have the shape counters.ts builds). */
export function exactCounters(g: Graph, spec: SnnSpec): Graph {
  const names = new Set(counterOutputs(spec));
  const producer = new Map<string, Node>();
  const readers = new Map<string, Node[]>();
  for (const n of g.nodes) {
    for (const o of n.outputs) producer.set(o, n);
    for (const i of n.inputs) readers.set(i, [...(readers.get(i) ?? []), n]);
  }
  const stateShape = new Map(spec.states.map((s) => [s.output, s.shape]));
  const replaced = new Map<Node, Node[]>();
  const initializers = new Map(g.initializers);
  const doubles = new Set<string>();
  const floatsOf = (name: string): Float32Array | null => {
    const t = g.initializers.get(name);
    return t && t.dtype === 'float32' ? (t.data as Float32Array) : null;
  };

  for (const sum of g.nodes) {
    if (sum.opType !== 'ReduceSum') continue;
    const outs = readers.get(sum.outputs[0]) ?? [];
    if (outs.length === 0 || outs.some((r) => (r.opType !== 'Identity' && r.opType !== 'Gather') || !names.has(r.outputs[0]))) continue;
    const mm = producer.get(sum.inputs[0]);
    const rs = mm && mm.opType === 'MatMul' ? producer.get(mm.inputs[0]) : undefined;
    const W = mm ? g.initializers.get(mm.inputs[1]) : undefined;
    const w = mm ? floatsOf(mm.inputs[1]) : null;
    if (!mm || !rs || rs.opType !== 'Reshape' || !W || !w || W.dims.length !== 2 || (readers.get(mm.outputs[0]) ?? []).length !== 1) continue;
    const [K, cols] = W.dims;
    const plan = spikeSource(rs.inputs[0], w, K, cols);
    if (!plan) continue;
    // Rows of one channel of one sample where every column repeats per channel (convolutions), else one row per sample.
    const shape = plan.shape;
    const L = shape && shape.length >= 2 && numel(shape) === K && repeats(plan.w, K, cols, K / shape[0]) ? K / shape[0] : K;
    const hint = `${mm.name || mm.outputs[0]}_exact`;
    const weights = `${hint}_w`;
    const rowsShape = `${hint}_rows`;
    initializers.set(weights, floatTensor([L, cols], plan.w.subarray(0, L * cols)));
    initializers.set(rowsShape, int64Tensor([2], [-1, L]) as Tensor);
    const rows = `${hint}_r`;
    const dots = `${hint}_d`;
    const wide = `${hint}_f64`;
    replaced.set(rs, [{ ...rs, inputs: [plan.source, rowsShape], outputs: [rows] }]);
    replaced.set(mm, [
      { ...mm, inputs: [rows, weights], outputs: [dots] },
      { name: `${hint}_cast`, opType: 'Cast', domain: '', inputs: [dots], outputs: [wide], attrs: { to: { kind: 'int', value: 11 } } },
    ]);
    replaced.set(sum, [{ ...sum, inputs: [wide, ...sum.inputs.slice(1)] }]);
    outs.forEach((r) => doubles.add(r.outputs[0]));
  }
  if (replaced.size === 0) return g;
  const nodes = g.nodes.flatMap((n) => replaced.get(n) ?? [n]);
  const retype = (v: ValueInfo): ValueInfo => (doubles.has(v.name) ? { ...v, dtype: 'float64' } : v);
  return { ...g, nodes, initializers, outputs: g.outputs.map(retype) };

  /**
   * Where a counter's input comes from: a neuron's θ-valued spikes (Mul of its 0/1 Cast by θ:
   * read the Cast, columns divided back to 1 and the fan-outs), or 0/1 values already (events,
   * or the unit-spike form). Null when the columns would not be whole numbers below 2^24.
   */
  function spikeSource(x: string, w: Float32Array, K: number, cols: number): { source: string; w: Float32Array; shape: readonly number[] | null } | null {
    const mul = producer.get(x);
    const sub = (readers.get(x) ?? []).find((r) => r.opType === 'Sub' && r.inputs[1] === x && stateShape.has(r.outputs[0]));
    const shape = sub ? stateShape.get(sub.outputs[0]) ?? null : null;
    let source = x;
    let out = w;
    if (mul && mul.opType === 'Mul') {
      const castAt = mul.inputs.findIndex((i) => producer.get(i)?.opType === 'Cast');
      if (castAt < 0 || !floatsOf(mul.inputs[1 - castAt])) return null;
      source = mul.inputs[castAt];
      // Column 0 is 1/θ (0 where θ = 0: such a neuron never fires); column j is fan-out/θ.
      out = new Float32Array(K * cols);
      for (let e = 0; e < K; e++) {
        const inv = w[e * cols];
        for (let j = 0; j < cols; j++) out[e * cols + j] = inv > 0 ? (j === 0 ? 1 : Math.round(w[e * cols + j] / inv)) : 0;
      }
    } else if (!mul || (mul.opType !== 'Cast' && mul.opType !== 'Sign')) {
      return null;
    }
    if (out.some((v) => !Number.isInteger(v) || v < 0 || v >= 2 ** 24)) return null;
    return { source, w: out, shape };
  }
}

/** Whether every column of w (K rows) repeats with period L. */
function repeats(w: Float32Array, K: number, cols: number, L: number): boolean {
  if (!Number.isInteger(L) || L < 1 || K % L !== 0) return false;
  for (let e = L; e < K; e++) for (let j = 0; j < cols; j++) if (w[e * cols + j] !== w[(e % L) * cols + j]) return false;
  return true;
}
