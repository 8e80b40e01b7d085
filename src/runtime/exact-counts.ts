/**
 * Exact spike and SOP counts for the step engine, as a rewrite of the step graph at run time
 * (the saved file is not changed). The counters as built (counters.ts) read θ-valued spikes
 * through columns 1/θ and fan-out/θ and sum the batch in float32, which rounds: θ·(f/θ) is not
 * always f, and a batch's total passes 2^24 on larger layers. Rewritten, each counter reads the
 * neuron's own 0/1 spikes (the Cast before the multiplication by θ) through whole-number columns
 * (1 and the fan-outs), in rows as short as the fan-outs' period allows (a channel of a
 * convolution's input; one value where the fan-out is constant), and sums the rows in float64.
 * Every product and partial sum of a row is a whole number below 2^24, which float32 holds
 * exactly; where even one period's row could pass 2^24 the MatMul itself runs in float64. The
 * counts then equal the fused engine's, which counts in integers.
 */
import type { Graph, Node, Tensor } from '../graph/ir.js';
import { floatTensor, int64Tensor } from '../graph/ir.js';
import { counterOutputs, type SnnSpec } from '../snn/format.js';
import { usedInitializers } from '../graph/topo.js';

/** The step graph with exact counters (unchanged where a counter does not have the shape counters.ts builds). */
export function exactCounters(g: Graph, spec: SnnSpec): Graph {
  const names = new Set(counterOutputs(spec));
  const producer = new Map<string, Node>();
  const readers = new Map<string, Node[]>();
  for (const n of g.nodes) {
    for (const o of n.outputs) producer.set(o, n);
    for (const i of n.inputs) readers.set(i, [...(readers.get(i) ?? []), n]);
  }
  const replaced = new Map<Node, Node[]>();
  const initializers = new Map(g.initializers);
  const floatsOf = (name: string): Float32Array | null => {
    const t = g.initializers.get(name);
    return t && t.dtype === 'float32' ? (t.data as Float32Array) : null;
  };

  for (const sum of g.nodes) {
    if (sum.opType !== 'ReduceSum') continue;
    const outs = readers.get(sum.outputs[0]) ?? [];
    if (
      outs.length === 0 ||
      outs.some((r) => (r.opType !== 'Identity' && r.opType !== 'Gather') || !names.has(r.outputs[0]))
    )
      continue;
    const mm = producer.get(sum.inputs[0]);
    const rs = mm && mm.opType === 'MatMul' ? producer.get(mm.inputs[0]) : undefined;
    const W = mm ? g.initializers.get(mm.inputs[1]) : undefined;
    const w = mm ? floatsOf(mm.inputs[1]) : null;
    if (
      !mm ||
      !rs ||
      rs.opType !== 'Reshape' ||
      !W ||
      !w ||
      W.dims.length !== 2 ||
      (readers.get(mm.outputs[0]) ?? []).length !== 1
    )
      continue;
    const [K, cols] = W.dims;
    const plan = spikeSource(rs.inputs[0], w, K, cols);
    if (!plan) continue;
    const { L, exactInFloat32 } = rowLength(plan.w, plan.dead, K, cols, plan.top);
    const hint = `${mm.name || mm.outputs[0]}_exact`;
    const weights = `${hint}_w`;
    const rowsShape = `${hint}_rows`;
    const rows = `${hint}_r`;
    const dots = `${hint}_d`;
    const wide = `${hint}_f64`;
    const toDouble = (input: string, output: string, name: string): Node => ({
      name,
      opType: 'Cast',
      domain: '',
      inputs: [input],
      outputs: [output],
      attrs: { to: { kind: 'int', value: 11 } },
    });
    initializers.set(rowsShape, int64Tensor([2], [-1, L]) as Tensor);
    replaced.set(rs, [{ ...rs, inputs: [plan.source, rowsShape], outputs: [rows] }]);
    if (exactInFloat32) {
      // Row sums below 2^24: the float32 MatMul is exact; only the sum over rows needs float64.
      initializers.set(weights, floatTensor([L, cols], plan.w.subarray(0, L * cols)));
      replaced.set(mm, [{ ...mm, inputs: [rows, weights], outputs: [dots] }, toDouble(dots, wide, `${hint}_cast`)]);
    } else {
      // Even one period's row passes 2^24 (a large channel with large fan-outs): the MatMul in float64.
      initializers.set(weights, {
        dtype: 'float64',
        dims: [L, cols],
        data: Float64Array.from(plan.w.subarray(0, L * cols)),
      });
      replaced.set(mm, [toDouble(rows, dots, `${hint}_cast`), { ...mm, inputs: [dots, weights], outputs: [wide] }]);
    }
    // The counts (float64) leave the graph as float32 (high, low) with high + low = the count,
    // exact below 2^47: sessions hand back float32, and one float32 rounds past 2^24. The split
    // is made once for all of a counter's columns; each output gathers its two values.
    const total = `${hint}_total`;
    replaced.set(sum, [{ ...sum, inputs: [wide, ...sum.inputs.slice(1)], outputs: [total] }]);
    const node = (opType: string, inputs: string[], output: string, attrs: Node['attrs'] = {}): Node => ({
      name: output,
      opType,
      domain: '',
      inputs,
      outputs: [output],
      attrs,
    });
    const to = (type: number): Node['attrs'] => ({ to: { kind: 'int', value: type } });
    initializers.set(`${hint}_flat_shape`, int64Tensor([1], [-1]) as Tensor);
    const split = [
      node('Reshape', [total, `${hint}_flat_shape`], `${hint}_flat`),
      node('Cast', [`${hint}_flat`], `${hint}_hi`, to(1)),
      node('Cast', [`${hint}_hi`], `${hint}_hi64`, to(11)),
      node('Sub', [`${hint}_flat`, `${hint}_hi64`], `${hint}_rest`),
      node('Cast', [`${hint}_rest`], `${hint}_lo`, to(1)),
      node('Concat', [`${hint}_hi`, `${hint}_lo`], `${hint}_pair`, { axis: { kind: 'int', value: 0 } }),
    ];
    outs.forEach((r, k) => {
      const index = r.opType === 'Gather' ? g.initializers.get(r.inputs[1]) : undefined;
      const j = index ? Number((index.data as ArrayLike<number | bigint>)[0]) : 0;
      const at = `${hint}_at${k}`;
      initializers.set(at, int64Tensor([2], [j, j + cols]) as Tensor);
      replaced.set(r, [
        ...(k === 0 ? split : []),
        node('Gather', [`${hint}_pair`, at], r.outputs[0], { axis: { kind: 'int', value: 0 } }),
      ]);
    });
  }
  if (replaced.size === 0) return g;
  const nodes = g.nodes.flatMap((n) => replaced.get(n) ?? [n]);
  // The counters' old columns are read no more: dropped, not handed to ONNX Runtime with every session.
  const kept = usedInitializers(nodes, initializers);
  for (const o of g.outputs) if (initializers.has(o.name)) kept.set(o.name, initializers.get(o.name) as Tensor);
  return { ...g, nodes, initializers: kept };

  /**
   * Where a counter's input comes from: a neuron's θ-valued spikes (Mul of its 0/1 Cast by θ:
   * read the Cast, columns divided back to 1 and the fan-outs; or of a group's spike count
   * 0 … K, `top`), or 0/1 values already (events, or the unit-spike form). Null when the
   * columns would not be whole numbers below 2^24.
   */
  function spikeSource(
    x: string,
    w: Float32Array,
    K: number,
    cols: number,
  ): { source: string; w: Float32Array; dead: Uint8Array | null; top: number } | null {
    const mul = producer.get(x);
    let source = x;
    let out = w;
    let dead: Uint8Array | null = null;
    let top = 1;
    if (mul && mul.opType === 'Mul') {
      // The spike count: a neuron's 0/1 Cast, or a shared-reset group's whole number of spikes
      // 0 … K (Min(…, K), neuron.ts), which K times larger rows must still sum exactly.
      const castAt = mul.inputs.findIndex((i) => {
        const p = producer.get(i);
        if (p?.opType === 'Cast') return true;
        const bound = p?.opType === 'Min' ? floatsOf(p.inputs[1]) : null;
        return bound !== null && bound.length === 1 && Number.isInteger(bound[0]) && bound[0] >= 1;
      });
      if (castAt < 0 || !floatsOf(mul.inputs[1 - castAt])) return null;
      source = mul.inputs[castAt];
      const counted = producer.get(source);
      if (counted?.opType === 'Min') top = (floatsOf(counted.inputs[1]) as Float32Array)[0];
      // Column 0 is 1/θ (0 where θ = 0: such a neuron never fires); column j is fan-out/θ.
      out = new Float32Array(K * cols);
      dead = new Uint8Array(K);
      for (let e = 0; e < K; e++) {
        const inv = w[e * cols];
        dead[e] = inv > 0 ? 0 : 1;
        for (let j = 0; j < cols; j++)
          out[e * cols + j] = inv > 0 ? (j === 0 ? 1 : Math.round(w[e * cols + j] / inv)) : 0;
      }
    } else if (!mul || (mul.opType !== 'Cast' && mul.opType !== 'Sign')) {
      return null;
    }
    for (let i = 0; i < out.length; i++) {
      const v = out[i];
      if (!(v >= 0 && v * top < 2 ** 24 && v === Math.floor(v))) return null;
    }
    return { source, w: out, dead, top };
  }
}

/**
 * Shortest row worth a MatMul call's rows. The columns are a constant [L, cols] matrix, and ONNX
 * Runtime packs a MatMul's constant matrix once per node when it creates a session, widening
 * its few columns to 16: with rows as long as a sample (mobilenet_v2 at 224: 48 MB of columns,
 * about 0.26 GB packed per copy of the step) that packing was most of the step graph's session
 * creation and of its memory. Rows of about a thousand values keep the MatMul's output small
 * against its input (a thousandth per column).
 */
const MIN_ROW = 1024;

/**
 * Values per row, and whether float32 sums such a row exactly. First the columns' shortest
 * period P, a divisor of K (a neuron that never fires, θ = 0, matches anything and takes its
 * period's values: its spikes are always 0). Then the shortest multiple of P dividing K that is
 * at least MIN_ROW long and whose row sums stay below 2^24 (else the longest that stays below).
 * Convolutions repeat per channel (P ≤ H·W), constant fan-outs with P = 1; K (a whole sample) if
 * nothing repeats.
 */
function rowLength(
  w: Float32Array,
  dead: Uint8Array | null,
  K: number,
  cols: number,
  top = 1,
): { L: number; exactInFloat32: boolean } {
  const divisors: number[] = [];
  for (let d = 1; d * d <= K; d++) if (K % d === 0) divisors.push(d, K / d);
  divisors.sort((a, b) => a - b);
  const P = divisors.find((d) => repeats(w, dead, K, cols, d)) ?? K;
  if (P < K && dead) {
    // Each offset's values from its first neuron that can fire (0 where none can), found in one pass.
    const live = new Float32Array(P * cols);
    const found = new Uint8Array(P);
    for (let e = 0; e < K; e++) {
      const r = e % P;
      if (dead[e] || found[r]) continue;
      found[r] = 1;
      for (let j = 0; j < cols; j++) live[r * cols + j] = w[e * cols + j];
    }
    for (let e = 0; e < K; e++) if (dead[e]) for (let j = 0; j < cols; j++) w[e * cols + j] = live[(e % P) * cols + j];
  }
  let rowSum = 0;
  for (let j = 0; j < cols; j++) {
    let sum = 0;
    for (let e = 0; e < P; e++) sum += w[e * cols + j];
    rowSum = Math.max(rowSum, top * sum);
  }
  const fits = divisors.filter((d) => d % P === 0 && (d / P) * rowSum < 2 ** 24);
  if (!fits.length) return { L: P, exactInFloat32: false };
  return { L: fits.find((d) => d >= MIN_ROW) ?? fits[fits.length - 1], exactInFloat32: true };
}

/** Whether every column of w (K rows) repeats with period L, dead rows matching anything. */
function repeats(w: Float32Array, dead: Uint8Array | null, K: number, cols: number, L: number): boolean {
  // Rows in order, each against the first live row of its offset: a period that fails usually
  // fails near the start (a feature map's borders are in its first rows), not after a whole scan.
  const ref = new Int32Array(L).fill(-1);
  for (let e = 0, r = 0; e < K; e++, r = r + 1 === L ? 0 : r + 1) {
    if (dead?.[e]) continue;
    const f = ref[r];
    if (f < 0) {
      ref[r] = e;
      continue;
    }
    for (let j = 0; j < cols; j++) if (w[e * cols + j] !== w[f * cols + j]) return false;
  }
  return true;
}
