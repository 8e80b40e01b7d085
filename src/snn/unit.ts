/**
 * The unit-spike form (docs/algorithm.md §9): θ folded into the neighbouring weights, so that
 * every neuron has threshold 1 and emits 0/1 — the form neuromorphic hardware and NIR want.
 *
 * Every tensor of the spiking part gets a scale σ per channel (axis 1; per feature after a
 * Flatten): the folded network carries x/σ where the θ-amplitude network carries x. A site's
 * input must be carried at σ = θ (the neuron then integrates x/θ and fires at 1/2 of the unit
 * threshold), its spikes are 0/1 at σ = θ, and a weighted layer absorbs both sides:
 * W'[o, i] = W[o, i] · σ_in[i] / σ_out[o], b'[o] = b[o] / σ_out[o]. Pools, Pad, Resize and a
 * Flatten commute with a positive per-channel scale. Where branches with different scales meet
 * (a residual Add, an op that mixes channels) a Mul node converts one of them: exact, but an
 * extra operation on hardware, so the names of those nodes are reported.
 *
 * σ_c = 0 means "this channel carries 0": the output of a never-firing neuron (θ_c = 0) — its
 * outgoing weights become 0 — or an input that only a never-firing neuron reads.
 */
import type { Graph, Node, Tensor } from '../graph/ir.js';
import { attrInt, floatTensor, numel } from '../graph/ir.js';
import { consumers } from '../graph/topo.js';
import { plan as makePlan, withPack } from '../graph/plan.js';
import { probeShapes, type RuntimeOptions } from '../ort/session.js';
import type { PreparedModel } from '../model/prepare.js';
import type { Thresholds } from '../calibrate/thresholds.js';
import { SpikeportError } from '../errors.js';

export interface UnitForm {
  /** The ANN with θ folded in, planned again (same sites, same readout). */
  readonly model: PreparedModel;
  /** Threshold 1 at every neuron (the same granularity as the θ it replaces). */
  readonly thresholds: Thresholds;
  /** The Mul nodes added where tensors of different scales meet (empty when all of θ folded into weights). */
  readonly scaleNodes: readonly string[];
}

/** Ops that commute with a positive scale per channel and keep the channel axis. */
const COMMUTING = new Set([
  'AveragePool',
  'MaxPool',
  'GlobalAveragePool',
  'GlobalMaxPool',
  'Identity',
  'Dropout',
  'Resize',
  'Upsample',
]);

type Scale = Float32Array;

const inv = (v: number): number => (v > 0 ? 1 / v : 0);

/** Per-sample scales a and b mean the same values (a channel carrying 0 fits any scale). */
function fits(from: Scale, to: Scale): boolean {
  return from.every((v, c) => v === to[c] || v === 0);
}

/**
 * Fold the thresholds `th` of a prepared model into its weights. Throws a one-line
 * unsupported-model error naming the node where no exact folding exists.
 */
export async function unitSpikeForm(m: PreparedModel, th: Thresholds, opts: RuntimeOptions = {}): Promise<UnitForm> {
  const g = m.graph;
  const p = m.plan;
  const spikingNames = new Set(p.spiking.map((n) => n.name));
  const siteByNode = new Map(p.sites.map((s) => [s.node, s]));
  // A site's input is read by its first ANN node: the site's own node, or a QCFS chain's first op.
  const siteByEntry = new Map(p.sites.map((s) => [s.ann[0].name, s]));
  const cons = consumers(g);

  // Per-sample shapes of every float tensor the spiking part computes (one probe run).
  const wanted = new Set<string>();
  for (const n of p.spiking) {
    if (
      siteByNode.has(n.name) ||
      p.varying.has(n.outputs[0]) ||
      n.outputs.some((o) => cons.get(o)?.some((c) => siteByNode.has(c.name)))
    )
      n.outputs.forEach((o) => o && wanted.add(o));
  }
  const probed = await probeShapes(
    g,
    m.inputName,
    { dims: [1, ...m.inputShape], data: new Float32Array(numel(m.inputShape)) },
    [...wanted],
    opts,
  );
  const shapes = new Map<string, number[]>(m.shapes as Map<string, number[]>);
  for (const [k, d] of probed) shapes.set(k, d.slice(1));
  const channels = (t: string): number => (shapes.get(t) as number[])[0] ?? 1;
  const ones = (t: string): Scale => new Float32Array(channels(t)).fill(1);

  const thetaOf = (k: number, t: string): Scale => {
    const v = th.values[k];
    return v.length === 1 ? new Float32Array(channels(t)).fill(v[0]) : Float32Array.from(v);
  };

  const scale = new Map<string, Scale>();
  const scaleOf = (t: string): Scale => scale.get(t) ?? ones(t);

  // What the consumers of t would like it carried at: null when they do not care.
  const wantMemo = new Map<string, Scale | null>();
  const want = (t: string): Scale | null => {
    if (wantMemo.has(t)) return wantMemo.get(t) as Scale | null;
    wantMemo.set(t, null); // cycles cannot happen in a DAG; this only guards re-entry
    let w: Scale | null;
    if (t === p.readout) w = ones(t);
    else {
      const users = cons.get(t) ?? [];
      const each = users.map((c) => wantThrough(c, t));
      w =
        each.length > 0 &&
        each.every((e) => e !== null && e.length === each[0]?.length && e.every((v, i) => v === (each[0] as Scale)[i]))
          ? each[0]
          : null;
    }
    wantMemo.set(t, w);
    return w;
  };
  const wantThrough = (c: Node, t: string): Scale | null => {
    const site = siteByEntry.get(c.name);
    if (site && c.inputs[0] === site.input) return thetaOf(site.index, t);
    if (!spikingNames.has(c.name)) return null;
    if (COMMUTING.has(c.opType) && c.inputs[0] === t && sameChannels(t, c.outputs[0])) return want(c.outputs[0]);
    if (c.opType === 'Add' && c.inputs.length === 2) {
      const other = c.inputs[0] === t ? c.inputs[1] : c.inputs[0];
      if (other === t) return want(c.outputs[0]);
      if (!p.varying.has(other) && !siteOutput(other)) return constPerChannel(other, t) ? want(c.outputs[0]) : null;
      const w = want(c.outputs[0]);
      if (w) return w;
      // The other branch's scale, if already fixed (a site's output): match it (a silent channel's 0 fits anything).
      const known = scale.get(other);
      return known ? known.map((v) => (v === 0 ? 1 : v)) : null;
    }
    if (c.opType === 'Concat' && attrInt(c, 'axis', 0) === 1 && c.inputs.filter((i) => i === t).length === 1) {
      const w = want(c.outputs[0]);
      if (!w) return null;
      let off = 0;
      for (const i of c.inputs) {
        if (i === t) return w.slice(off, off + channels(t));
        off += channels(i);
      }
    }
    return null;
  };
  const sameChannels = (a: string, b: string): boolean => shapes.has(a) && shapes.has(b) && channels(a) === channels(b);
  const siteOutputs = new Set(p.sites.map((s) => s.output));
  const siteOutput = (t: string): boolean => siteOutputs.has(t);

  /** A constant that broadcasts against t per channel: its values per channel, else null. */
  const constPerChannel = (name: string, t: string): Float32Array | null => {
    const c = g.initializers.get(name);
    if (!c || c.dtype !== 'float32' || !shapes.has(t)) return null;
    const rank = (shapes.get(t) as number[]).length + 1;
    const C = channels(t);
    const data = c.data as Float32Array;
    if (numel(c.dims) === 1) return new Float32Array(C).fill(data[0]);
    const dims = [...new Array<number>(Math.max(0, rank - c.dims.length)).fill(1), ...c.dims];
    if (dims.length !== rank || dims[0] !== 1 || dims[1] !== C || dims.slice(2).some((d) => d !== 1)) return null;
    return Float32Array.from(data);
  };

  const initializers = new Map<string, Tensor>(g.initializers);
  const nodes: Node[] = [];
  const scaleNodes: string[] = [];
  const fresh = (base: string): string => {
    let k = 0;
    while (shapes.has(`${base}/unit${k}`) || initializers.has(`${base}/unit${k}`)) k++;
    return `${base}/unit${k}`;
  };

  /** The tensor t (carried at `from`) carried at `to`: itself, or a Mul node's output. */
  const convert = (t: string, to: Scale): string => {
    const from = scaleOf(t);
    if (fits(from, to)) return t;
    const rank = (shapes.get(t) as number[]).length;
    const out = fresh(t);
    const factor = fresh(`${t}.factor`);
    initializers.set(
      factor,
      floatTensor(
        [to.length, ...new Array<number>(rank - 1).fill(1)],
        Array.from(from, (v, c) => v * inv(to[c])),
      ),
    );
    const name = `unit_scale_${scaleNodes.length}`;
    nodes.push({ name, opType: 'Mul', domain: '', inputs: [t, factor], outputs: [out], attrs: {} });
    scaleNodes.push(name);
    shapes.set(out, shapes.get(t) as number[]);
    scale.set(out, to);
    return out;
  };

  /** Run n on inputs carried at scale 1; its output is at scale 1. */
  const restore = (n: Node): void => {
    const inputs = n.inputs.map((i) => (i && scale.has(i) ? convert(i, ones(i)) : i));
    nodes.push({ ...n, inputs });
  };

  for (const n of g.nodes) {
    // A site reads its input at θ (its first ANN node is where it reads it) and emits at θ.
    const entered = siteByEntry.get(n.name);
    if (entered && spikingNames.has(entered.node)) {
      nodes.push({ ...n, inputs: [convert(n.inputs[0], thetaOf(entered.index, entered.input)), ...n.inputs.slice(1)] });
      if (n.name !== entered.node) continue;
    }
    const site = siteByNode.get(n.name);
    if (site && spikingNames.has(n.name)) {
      if (n.name !== site.ann[0].name) nodes.push(n); // the last op of a QCFS chain
      scale.set(site.output, thetaOf(site.index, site.input));
      continue;
    }
    if (!spikingNames.has(n.name)) {
      nodes.push(n);
      continue;
    }
    const out = n.outputs[0];
    const anyScaled = n.inputs.some((i) => i && scale.has(i));
    const isReadout = n.outputs.includes(p.readout);
    if (['Conv', 'ConvTranspose', 'Gemm', 'MatMul'].includes(n.opType)) {
      const folded = foldWeighted(n, anyScaled ? scaleOf(n.inputs[0]) : null, want(out), initializers, shapes);
      if (folded) {
        nodes.push(folded.node);
        if (folded.out) scale.set(out, folded.out);
        continue;
      }
      restore(n);
      continue;
    }
    if (!anyScaled) {
      nodes.push(n);
      continue;
    }
    if (isReadout) {
      restore(n);
      continue;
    }
    const x = n.inputs[0];
    if (COMMUTING.has(n.opType) && sameChannels(x, out) && n.inputs.slice(1).every((i) => !i || !scale.has(i))) {
      nodes.push(n);
      scale.set(out, scaleOf(x));
    } else if (n.opType === 'Add' && n.inputs.length === 2 && n.inputs.every((i) => scale.has(i) || p.varying.has(i))) {
      const [a, b] = n.inputs;
      const sa = scaleOf(a);
      const b2 = fitsEither(sa, scaleOf(b)) ? b : convert(b, sa);
      const sb = scaleOf(b2);
      nodes.push({ ...n, inputs: [a, b2] });
      scale.set(
        out,
        sa.map((v, c) => (v !== 0 ? v : sb[c])),
      );
    } else if (n.opType === 'Add' && n.inputs.length === 2) {
      const [vi, ci] = scale.has(n.inputs[0]) ? [0, 1] : [1, 0];
      const s = scaleOf(n.inputs[vi]);
      const cv = constPerChannel(n.inputs[ci], n.inputs[vi]);
      if (!cv) {
        restore(n);
        continue;
      }
      const cname = fresh(`${n.inputs[ci]}.scaled`);
      const rank = (shapes.get(n.inputs[vi]) as number[]).length;
      initializers.set(
        cname,
        floatTensor(
          [s.length, ...new Array<number>(rank - 1).fill(1)],
          Array.from(cv, (v, c) => v * inv(s[c])),
        ),
      );
      const inputs = [...n.inputs];
      inputs[ci] = cname;
      nodes.push({ ...n, inputs });
      scale.set(out, s);
    } else if (n.opType === 'Concat' && attrInt(n, 'axis', 0) === 1 && n.inputs.every((i) => shapes.has(i))) {
      nodes.push(n);
      const parts = n.inputs.map((i) => scaleOf(i));
      const all = new Float32Array(parts.reduce((a, s) => a + s.length, 0));
      let off = 0;
      for (const s of parts) {
        all.set(s, off);
        off += s.length;
      }
      scale.set(out, all);
    } else if (n.opType === 'Flatten' && attrInt(n, 'axis', 1) === 1 && shapes.has(x) && shapes.has(out)) {
      nodes.push(n);
      const s = scaleOf(x);
      const per = numel(shapes.get(x) as number[]) / s.length;
      scale.set(
        out,
        Float32Array.from({ length: s.length * per }, (_, k) => s[Math.floor(k / per)]),
      );
    } else if (
      n.opType === 'Pad' &&
      n.inputs.length <= 2 &&
      (n.attrs.mode === undefined || (n.attrs.mode.kind === 'string' && n.attrs.mode.value === 'constant')) &&
      sameChannels(x, out)
    ) {
      nodes.push(n);
      scale.set(out, scaleOf(x));
    } else {
      restore(n);
    }
  }
  if (scale.has(p.readout) && !fits(scaleOf(p.readout), ones(p.readout))) {
    throw new SpikeportError('unsupported-model', `cannot fold θ into the readout "${p.readoutNode}"`);
  }

  // Planned again on the folded graph, with the same readouts (packed again when there are several).
  const packing = new Set(p.pack.map((n) => n.name));
  const bare: Graph = { ...g, nodes: nodes.filter((n) => !packing.has(n.name)), initializers };
  const plan = makePlan(bare, { readoutNode: p.readouts.map((r) => r.node) });
  const graph = withPack(bare, plan);
  if (plan.sites.length !== p.sites.length || plan.readout !== p.readout) {
    throw new SpikeportError(
      'unsupported-model',
      "folding θ changed the network's neuron sites; the unit-spike form is not available for this model",
    );
  }
  return {
    model: { ...m, graph, plan, shapes },
    thresholds: { granularity: th.granularity, values: th.values.map((v) => new Float32Array(v.length).fill(1)) },
    scaleNodes,
  };
}

function fitsEither(a: Scale, b: Scale): boolean {
  return a.length === b.length && a.every((v, c) => v === b[c] || v === 0 || b[c] === 0);
}

function floats(t: Tensor): Float32Array {
  return t.data instanceof Float32Array ? t.data : Float32Array.from(t.data as ArrayLike<number>);
}

/**
 * A weighted layer with its input scale (null: 1) and the output scale its consumers want
 * (null: 1) folded into its weights and bias; null when its weights are not constants in a
 * layout spikeport folds (the caller then converts its input to scale 1 instead).
 */
function foldWeighted(
  n: Node,
  sIn: Scale | null,
  sOut: Scale | null,
  inits: Map<string, Tensor>,
  shapes: ReadonlyMap<string, readonly number[]>,
): { node: Node; out: Scale | null } | null {
  const W = inits.get(n.inputs[1]);
  if (!W || W.dtype !== 'float32') return null;
  const w = floats(W);
  const B = n.inputs[2] ? inits.get(n.inputs[2]) : undefined;
  if (n.inputs[2] && (!B || B.dtype !== 'float32')) return null;
  const newW = new Float32Array(w.length);
  let outIndex: (k: number) => number;
  let inIndex: (k: number) => number;
  let outCount: number;
  let inCount: number;
  if (n.opType === 'Conv' || n.opType === 'ConvTranspose') {
    const group = attrInt(n, 'group', 1);
    const [d0, d1] = W.dims;
    const per = w.length / (d0 * d1);
    if (n.opType === 'Conv') {
      // [C_out, C_in/g, k...]: input channel of (o, i) is group(o)·(C_in/g) + i.
      const outPerGroup = d0 / group;
      outCount = d0;
      inCount = d1 * group;
      outIndex = (k) => Math.floor(k / (d1 * per));
      inIndex = (k) => Math.floor(outIndex(k) / outPerGroup) * d1 + (Math.floor(k / per) % d1);
    } else {
      // [C_in, C_out/g, k...]: output channel of (i, o) is group(i)·(C_out/g) + o.
      const inPerGroup = d0 / group;
      outCount = d1 * group;
      inCount = d0;
      inIndex = (k) => Math.floor(k / (d1 * per));
      outIndex = (k) => Math.floor(inIndex(k) / inPerGroup) * d1 + (Math.floor(k / per) % d1);
    }
  } else {
    if (W.dims.length !== 2) return null;
    const xShape = shapes.get(n.inputs[0]);
    if (!xShape || xShape.length !== 1) return null; // only [N, F] inputs: features are axis 1
    const transB = n.opType === 'Gemm' && attrInt(n, 'transB', 0) === 1;
    if (n.opType === 'Gemm' && attrInt(n, 'transA', 0) === 1) return null;
    const [r, c] = W.dims;
    outCount = transB ? r : c;
    inCount = transB ? c : r;
    outIndex = (k) => (transB ? Math.floor(k / c) : k % c);
    inIndex = (k) => (transB ? k % c : Math.floor(k / c));
  }
  if (sIn && sIn.length !== inCount) return null;
  if (sOut && sOut.length !== outCount) return null;
  for (let k = 0; k < w.length; k++) {
    newW[k] = w[k] * (sIn ? sIn[inIndex(k)] : 1) * (sOut ? inv(sOut[outIndex(k)]) : 1);
  }
  const name = `${n.name}/${n.inputs[1]}.unit`;
  inits.set(name, { dtype: 'float32', dims: [...W.dims], data: newW });
  const inputs = [...n.inputs];
  inputs[1] = name;
  if (B && sOut) {
    const b = floats(B);
    let newB: Float32Array;
    if (b.length === outCount) newB = b.map((v, o) => v * inv(sOut[o]));
    else if (b.length === 1) newB = Float32Array.from(sOut, (s) => b[0] * inv(s));
    else return null;
    const bName = `${n.name}/${n.inputs[2]}.unit`;
    inits.set(bName, { dtype: 'float32', dims: b.length === outCount ? [...B.dims] : [outCount], data: newB });
    inputs[2] = bName;
  }
  return { node: { ...n, inputs }, out: sOut };
}
