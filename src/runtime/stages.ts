/**
 * The step graph cut at its state updates, for the layer-by-layer engine (runtime/fused.ts):
 * every op that reads or writes a state (the integrate-and-fire neuron of neuron.ts, the
 * accumulated max pool of maxpool.ts) and every counter of counters.ts is taken out, and the
 * stateless rest is grouped into stages. Stage L holds the ops whose inputs are at most L state
 * updates away from the graph inputs; the state updates of level L run between stage L and L+1.
 *
 * No stateless op depends on an earlier time step, so a stage can compute K steps at once (a
 * batch of K × n samples), and the state updates scan those K steps in order, one pass each.
 * The result is the same arithmetic as the step graph: every stateless op is the same node, and
 * the state updates are the same float32 adds, compares and subtractions.
 */
import type { Graph, Node, Tensor } from '../graph/ir.js';
import { numel } from '../graph/ir.js';
import { usedInitializers } from '../graph/topo.js';
import { floatInput } from '../onnx/builder.js';
import { inferDtypes } from '../graph/dtypes.js';
import type { SnnSpec } from '../snn/format.js';

/** The integrate-and-fire update of one site (neuron.ts), with its counters (counters.ts). */
export interface NeuronUpdate {
  readonly kind: 'neuron';
  readonly site: number;
  /** The input current of this step (already with any bias added by the graph). */
  readonly current: string;
  /** Where the spikes go: θ per spike (0/1 in the unit-spike form). */
  readonly spikes: string;
  readonly state: string;
  /** Per neuron of one sample: the firing level and the spike amplitude θ. */
  readonly level: Float32Array;
  readonly theta: Float32Array;
  /** The spike-count output (spikes.siteK) and, per layer fed by these spikes, its SOP output with each neuron's fan-out. */
  readonly spikeCounter: string | null;
  readonly sops: readonly { readonly output: string; readonly fanout: Float64Array }[];
}

/** A running sum over steps: out_t = out_{t−1} + x_t (the accumulated max pool's A). */
export interface Accumulate {
  readonly kind: 'accumulate';
  readonly input: string;
  readonly output: string;
  readonly state: string;
}

/** The change since the previous step: out_t = x_t − x_{t−1} (the accumulated max pool's P_t − P_{t−1}). */
export interface Difference {
  readonly kind: 'difference';
  readonly input: string;
  readonly output: string;
  readonly state: string;
}

export type StateUpdate = NeuronUpdate | Accumulate | Difference;

/** SOPs of a layer whose input is not a site's spikes: non-zero values of `input` × fan-out. */
export interface EventCounter {
  readonly input: string;
  readonly output: string;
  readonly fanout: Float64Array;
}

export interface Stage {
  /** Stateless ops, as a graph (null when the stage is empty); inputs and outputs are per-step tensors. */
  readonly graph: Graph | null;
  /** The state updates that run after this stage, in graph order. */
  readonly updates: readonly StateUpdate[];
}

export interface Stages {
  readonly stages: readonly Stage[];
  readonly events: readonly EventCounter[];
  /** Per state input name: its per-sample shape. */
  readonly stateShapes: ReadonlyMap<string, readonly number[]>;
}

const floats = (t: Tensor | undefined): Float32Array | null =>
  t && t.dtype === 'float32'
    ? t.data instanceof Float32Array
      ? t.data
      : Float32Array.from(t.data as ArrayLike<number>)
    : null;

/** A constant broadcast to one sample's shape (the leading batch axis of its dims is 1 or absent). */
function perNeuron(t: Tensor, shape: readonly number[]): Float32Array | null {
  const data = floats(t);
  if (!data) return null;
  const full = [1, ...shape];
  if (t.dims.length > full.length) return null;
  const dims = [...new Array<number>(full.length - t.dims.length).fill(1), ...t.dims];
  if (dims.some((d, i) => d !== 1 && d !== full[i]) || dims[0] !== 1) return null;
  const out = new Float32Array(numel(shape));
  const strides = new Array<number>(dims.length).fill(0);
  for (let i = dims.length - 1, s = 1; i >= 0; i--) {
    strides[i] = dims[i] === 1 ? 0 : s;
    s *= dims[i];
  }
  const idx = new Array<number>(shape.length).fill(0);
  for (let e = 0; e < out.length; e++) {
    let src = 0;
    for (let a = 0; a < shape.length; a++) src += idx[a] * strides[a + 1];
    out[e] = data[src];
    for (let a = shape.length - 1; a >= 0; a--) {
      if (++idx[a] < shape[a]) break;
      idx[a] = 0;
    }
  }
  return out;
}

/**
 * Cut the step graph (after splitConstantPrefix) into stages; null when it holds a state or
 * counter written in a way this engine does not know (the caller then uses the step engine).
 */
export function planStages(step: Graph, spec: SnnSpec): Stages | null {
  const producer = new Map<string, Node>();
  const readers = new Map<string, Node[]>();
  for (const n of step.nodes) {
    n.outputs.forEach((o) => producer.set(o, n));
    n.inputs.forEach((i) => readers.set(i, [...(readers.get(i) ?? []), n]));
  }
  const only = (t: string): Node | null => {
    const r = readers.get(t) ?? [];
    return r.length === 1 ? r[0] : null;
  };
  const init = (name: string): Tensor | undefined => step.initializers.get(name);
  const taken = new Set<Node>();
  const updates = new Map<Node, StateUpdate>(); // keyed by the node the update replaces in graph order
  const stateShapes = new Map(spec.states.map((s) => [s.input, s.shape]));
  const stateOut = new Map(spec.states.map((s) => [s.output, s.input]));
  const counterNames = new Set([
    ...spec.sites.map((s) => s.spikes),
    ...(spec.layers ?? []).flatMap((l) => (l.sops ? [l.sops] : [])),
  ]);

  /** Reshape → MatMul(W) → ReduceSum → Identity | Gather(j): the counter outputs and W's columns. */
  const counter = (x: string): Counter | null => {
    // The model itself may reshape the same tensor: the counter's Reshape is the one that parses as a counter.
    const found = (readers.get(x) ?? [])
      .filter((n) => n.opType === 'Reshape' && n.inputs[0] === x)
      .map(counterFrom)
      .filter((c) => c !== null);
    return found.length === 1 ? found[0] : null;
  };
  type Counter = { outputs: Map<string, number>; w: Float32Array; cols: number; nodes: Node[] };
  const counterFrom = (rs: Node): Counter | null => {
    const mm = only(rs.outputs[0]);
    if (!mm || mm.opType !== 'MatMul' || mm.inputs[0] !== rs.outputs[0]) return null;
    const W = init(mm.inputs[1]);
    const w = floats(W);
    if (!W || !w || W.dims.length !== 2) return null;
    const sum = only(mm.outputs[0]);
    if (!sum || sum.opType !== 'ReduceSum') return null;
    const outputs = new Map<string, number>();
    const nodes = [rs, mm, sum];
    for (const r of readers.get(sum.outputs[0]) ?? []) {
      if (r.opType === 'Identity') outputs.set(r.outputs[0], 0);
      else if (r.opType === 'Gather') {
        const j = init(r.inputs[1]);
        if (!j || numel(j.dims) !== 1) return null;
        outputs.set(r.outputs[0], Number((j.data as ArrayLike<number | bigint>)[0]));
      } else return null;
      nodes.push(r);
    }
    if ([...outputs.keys()].some((o) => !counterNames.has(o))) return null;
    return { outputs, w, cols: W.dims[1], nodes };
  };

  const events: EventCounter[] = [];
  for (const s of spec.states) {
    const users = readers.get(s.input) ?? [];
    const shape = s.shape;
    const per = numel(shape);
    const site = spec.sites.findIndex((_, k) => s.input === `state.site${k}`);
    if (site >= 0) {
      // Add(u, current) → GreaterOrEqual(u1, level) → Cast → Mul(·, θ) = spikes; Sub(u1, spikes) = next u.
      const add = users.length === 1 && users[0].opType === 'Add' ? users[0] : null;
      if (!add) return null;
      const current = add.inputs[0] === s.input ? add.inputs[1] : add.inputs[0];
      const u1 = add.outputs[0];
      const r = readers.get(u1) ?? [];
      let cmp = r.find((n) => n.opType === 'GreaterOrEqual' && n.inputs[0] === u1);
      let fired: string | undefined = cmp?.outputs[0];
      const cmpNodes: Node[] = [];
      if (cmp) cmpNodes.push(cmp);
      else {
        cmp = r.find((n) => n.opType === 'Less' && n.inputs[0] === u1);
        const not = cmp ? only(cmp.outputs[0]) : null;
        if (!cmp || !not || not.opType !== 'Not') return null;
        cmpNodes.push(cmp, not);
        fired = not.outputs[0];
      }
      const sub = r.find((n) => n.opType === 'Sub' && n.inputs[0] === u1);
      if (r.length !== 2 || !sub || sub.outputs[0] !== s.output || !fired) return null;
      const cast = only(fired);
      const mul = cast?.opType === 'Cast' ? only(cast.outputs[0]) : null;
      if (!cast || !mul || mul.opType !== 'Mul' || mul.outputs[0] !== sub.inputs[1]) return null;
      const levelT = init(cmp.inputs[1]);
      const thetaT = init(mul.inputs[0] === cast.outputs[0] ? mul.inputs[1] : mul.inputs[0]);
      const level = levelT ? perNeuron(levelT, shape) : null;
      const theta = thetaT ? perNeuron(thetaT, shape) : null;
      if (!level || !theta) return null;
      const spikes = mul.outputs[0];
      // The counters read the spikes: Reshape → MatMul against [1/θ, fan-out/θ, …] → ReduceSum.
      const c = (readers.get(spikes) ?? []).some((n) => n.opType === 'Reshape') ? counter(spikes) : null;
      let spikeCounter: string | null = null;
      const sops: { output: string; fanout: Float64Array }[] = [];
      if (c) {
        if (c.w.length !== per * c.cols) return null;
        for (const [out, j] of c.outputs) {
          if (j === 0) {
            spikeCounter = out;
            continue;
          }
          // Column j is fan-out/θ; fan-outs are whole numbers, θ the site's: recover them exactly.
          const f = new Float64Array(per);
          for (let e = 0; e < per; e++) {
            const inv = c.w[e * c.cols];
            f[e] = inv > 0 ? Math.round(c.w[e * c.cols + j] / inv) : 0;
          }
          sops.push({ output: out, fanout: f });
        }
        c.nodes.forEach((n) => taken.add(n));
      }
      [add, ...cmpNodes, cast, mul, sub].forEach((n) => taken.add(n));
      updates.set(add, { kind: 'neuron', site, current, spikes, state: s.input, level, theta, spikeCounter, sops });
      continue;
    }
    // Accumulated max pool: Add(acc, x) = next acc; Sub(P, P_prev) reads the previous max.
    if (users.length !== 1) return null;
    const u = users[0];
    if (u.opType === 'Add' && u.outputs[0] === s.output) {
      updates.set(u, {
        kind: 'accumulate',
        input: u.inputs[0] === s.input ? u.inputs[1] : u.inputs[0],
        output: s.output,
        state: s.input,
      });
      taken.add(u);
    } else if (u.opType === 'Sub' && u.inputs[1] === s.input && stateOut.get(u.inputs[0]) === s.input) {
      updates.set(u, { kind: 'difference', input: u.inputs[0], output: u.outputs[0], state: s.input });
      taken.add(u);
    } else return null;
  }
  // Event counters: Sign(Abs(x)) → Reshape → MatMul(fan-out) → ReduceSum → Identity.
  for (const n of step.nodes) {
    if (n.opType !== 'Abs' || taken.has(n)) continue;
    const sign = only(n.outputs[0]);
    if (!sign || sign.opType !== 'Sign') continue;
    const c = counter(sign.outputs[0]);
    if (!c || c.cols !== 1 || c.outputs.size !== 1) continue;
    const [output] = c.outputs.keys();
    events.push({ input: n.inputs[0], output, fanout: Float64Array.from(c.w) });
    [n, sign, ...c.nodes].forEach((x) => taken.add(x));
  }
  // Every counter output must now be accounted for.
  const counted = new Set([
    ...events.map((e) => e.output),
    ...[...updates.values()].flatMap((u) =>
      u.kind === 'neuron' ? [...(u.spikeCounter ? [u.spikeCounter] : []), ...u.sops.map((x) => x.output)] : [],
    ),
  ]);
  if ([...counterNames].some((c) => !counted.has(c))) return null;

  const types = inferDtypes(step);
  // Levels: a tensor written by a state update is one level above that update's inputs.
  const level = new Map<string, number>();
  const lv = (t: string): number => level.get(t) ?? 0;
  const stageNodes: Node[][] = [];
  const stageUpdates: StateUpdate[][] = [];
  for (const n of step.nodes) {
    const upd = updates.get(n);
    if (upd) {
      const ins = upd.kind === 'neuron' ? [upd.current] : [upd.input];
      const L = Math.max(0, ...ins.map(lv));
      (stageUpdates[L] ??= []).push(upd);
      const outs = upd.kind === 'neuron' ? [upd.spikes, `${upd.state}.next`] : [upd.output];
      outs.forEach((o) => level.set(o, L + 1));
      continue;
    }
    if (taken.has(n)) continue;
    const L = Math.max(0, ...n.inputs.filter((i) => i !== '').map(lv));
    n.outputs.forEach((o) => level.set(o, L));
    // Shape arithmetic is copied into every stage that reads it (below), not handed across.
    if (n.outputs.some((o) => types.get(o) !== 'float32')) continue;
    (stageNodes[L] ??= []).push(n);
  }
  const order = new Map(step.nodes.map((n, i) => [n, i]));
  for (const ns of stageNodes) {
    if (!ns) continue;
    for (let grew = true; grew;) {
      grew = false;
      const have = new Set(ns.flatMap((n) => n.outputs));
      for (const n of [...ns]) {
        for (const i of n.inputs) {
          const p = producer.get(i);
          if (p && !have.has(i) && !taken.has(p) && !updates.has(p) && types.get(i) !== 'float32') {
            ns.push(p);
            p.outputs.forEach((o) => have.add(o));
            grew = true;
          }
        }
      }
    }
    ns.sort((a, b) => (order.get(a) as number) - (order.get(b) as number));
  }
  // Everything JS reads and the readout must come from a stage, an update or a graph input.
  const available = new Set([
    ...step.inputs.map((i) => i.name),
    ...stageNodes.flatMap((ns) => (ns ?? []).flatMap((n) => n.outputs)),
    ...[...updates.values()].map((u) => (u.kind === 'neuron' ? u.spikes : u.output)),
  ]);
  const read = [
    ...[...updates.values()].map((u) => (u.kind === 'neuron' ? u.current : u.input)),
    ...events.map((e) => e.input),
    spec.readout,
  ];
  if (read.some((t) => !available.has(t))) return null;
  const graphOutputs = new Set(step.outputs.map((o) => o.name).filter((o) => !counterNames.has(o) && !stateOut.has(o)));
  const count = Math.max(stageNodes.length, stageUpdates.length);
  const stages: Stage[] = [];
  // What is read outside each stage: by updates, event counters, other stages, graph outputs.
  const readElsewhere = (t: string, stage: number): boolean =>
    graphOutputs.has(t) ||
    events.some((e) => e.input === t) ||
    [...updates.values()].some((u) => (u.kind === 'neuron' ? u.current : u.input) === t) ||
    stageNodes.some((ns, i) => i !== stage && ns.some((n) => n.inputs.includes(t)));
  for (let L = 0; L < count; L++) {
    const nodes = stageNodes[L] ?? [];
    let graph: Graph | null = null;
    if (nodes.length > 0) {
      const produced = new Set(nodes.flatMap((n) => n.outputs));
      const inputs = [
        ...new Set(
          nodes.flatMap((n) => n.inputs.filter((i) => i !== '' && !produced.has(i) && !step.initializers.has(i))),
        ),
      ];
      const outputs = [...produced].filter((t) => readElsewhere(t, L));
      // Only float tensors cross stages (shape arithmetic stays with its consumers).
      if ([...inputs, ...outputs].some((t) => types.get(t) !== 'float32')) return null;
      graph = {
        ...step,
        name: `stage${L}`,
        nodes,
        initializers: usedInitializers(nodes, step.initializers),
        inputs: inputs.map((i) => floatInput(i, null)),
        outputs: outputs.map((o) => floatInput(o, null)),
      };
    }
    stages.push({ graph, updates: stageUpdates[L] ?? [] });
  }
  return { stages, events, stateShapes };
}
