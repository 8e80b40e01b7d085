/**
 * Per-sample normalisation: GroupNorm (exported as Reshape → InstanceNormalization → Reshape →
 * Mul(γ) → Add(β)), InstanceNorm and LayerNorm. Each divides by statistics of the sample it
 * sees, which no spiking layer can compute from spikes. The substitute spikeport uses: the
 * statistics frozen to their average over calibration samples, which turns the normalisation
 * into a per-channel affine map — a BatchNormalization, folded into the convolution before it
 * like any other. The ANN changes (every sample is now normalised with the same statistics);
 * convert measures how much (api/convert.ts) before any spike runs.
 *
 *   GroupNorm(G), InstanceNorm   y_c = γ_c (x_c − μ_g) / √(σ²_g + ε) + β_c,   g the group of c
 *   LayerNorm (over the last axes) y = γ (x − μ) / √(σ² + ε) + β,           one μ, σ² per tensor
 *
 * μ and σ² are the means over calibration samples (and, for LayerNorm, over the positions it
 * normalises one by one) of each sample's own mean and variance.
 */
import type { Graph, Node, Tensor } from './ir.js';
import { attrFloat, attrInt, floatTensor, withGraph } from './ir.js';
import { WEIGHTED_OPS } from './ops.js';
import { neuronCap } from './passes.js';
import { ancestors, consumers, usedInitializers } from './topo.js';

export interface SampleNorm {
  readonly kind: 'groupnorm' | 'instancenorm' | 'layernorm';
  /** The node that names it (the InstanceNormalization or LayerNormalization node). */
  readonly node: string;
  /** Its nodes, in graph order (GroupNorm: the reshapes and the affine around the normalisation). */
  readonly nodes: readonly Node[];
  /** The tensor normalised, and the one the pattern ends in. */
  readonly input: string;
  readonly output: string;
  /** The tensor whose statistics are taken: [n, G, …] (axis 1 = groups) or, for LayerNorm, [..., normalised axes]. */
  readonly measured: string;
  /** LayerNorm: the first normalised axis of `measured` (statistics over it and after); else 2. */
  readonly axis: number;
  /** Groups (GroupNorm), channels (InstanceNorm) or 1 (LayerNorm). */
  readonly groups: number;
  readonly epsilon: number;
  /** The normalising op's own scale and bias (InstanceNormalization, LayerNormalization), constants. */
  readonly normScale?: string;
  readonly normBias?: string;
  /** A Mul and an Add by constants right after it (GroupNorm's affine; a LayerNorm written out in ops). */
  readonly gamma?: string;
  readonly beta?: string;
}

/** The statistics a norm is frozen with: per group, the mean over samples of each sample's mean and variance. */
export interface NormStatistics {
  readonly node: string;
  readonly mean: readonly number[];
  readonly variance: readonly number[];
}

const isConst = (g: Graph, t: string | undefined): t is string => t !== undefined && t !== '' && g.initializers.has(t);

function floats(t: Tensor): Float32Array {
  return t.data instanceof Float32Array ? t.data : Float32Array.from(t.data as ArrayLike<number>, Number);
}

/**
 * The per-sample normalisations inside the spiking part: those with a neuron before them and a
 * weighted layer after them — or, when the readout nodes are given, before one of those. (One on
 * the input alone is computed once per frame; one after the readouts runs on their average: both
 * stay as they are.)
 */
export function findSampleNorms(g: Graph, readoutNodes?: readonly string[]): SampleNorm[] {
  const cons = consumers(g);
  const prod = new Map<string, Node>();
  for (const n of g.nodes) for (const o of n.outputs) prod.set(o, n);
  const only = (t: string): Node | null => {
    const c = cons.get(t) ?? [];
    return c.length === 1 && !g.outputs.some((o) => o.name === t) ? c[0] : null;
  };
  const found: SampleNorm[] = [];
  const constOf = (n: Node, t: string): string | undefined => n.inputs.find((i) => i !== t && isConst(g, i));
  // A Mul and then an Add by constants after `t` (the affine), as far as they go.
  const affineAfter = (t: string): { nodes: Node[]; output: string; gamma?: string; beta?: string } => {
    const nodes: Node[] = [];
    let output = t;
    let gamma: string | undefined;
    let beta: string | undefined;
    const mul = only(output);
    if (mul?.opType === 'Mul' && mul.inputs.length === 2 && constOf(mul, output)) {
      gamma = constOf(mul, output);
      nodes.push(mul);
      output = mul.outputs[0];
    }
    const add = only(output);
    if (add?.opType === 'Add' && add.inputs.length === 2 && constOf(add, output)) {
      beta = constOf(add, output);
      nodes.push(add);
      output = add.outputs[0];
    }
    return { nodes, output, gamma, beta };
  };
  const own = (n: Node): { normScale?: string; normBias?: string } => ({
    ...(isConst(g, n.inputs[1]) ? { normScale: n.inputs[1] } : {}),
    ...(isConst(g, n.inputs[2]) ? { normBias: n.inputs[2] } : {}),
  });
  const reduceAxes = (n: Node): number[] | null => {
    if (n.opType !== 'ReduceMean' || attrInt(n, 'keepdims', 1) !== 1) return null;
    const a = n.attrs.axes;
    if (a?.kind === 'ints') return [...a.value];
    const t = n.inputs[1] ? g.initializers.get(n.inputs[1]) : undefined;
    return t ? Array.from(t.data as ArrayLike<number | bigint>, Number) : null;
  };
  for (const n of g.nodes) {
    if (n.domain && n.domain !== 'ai.onnx') continue;
    if (n.opType === 'InstanceNormalization') {
      const eps = attrFloat(n, 'epsilon', 1e-5);
      const r1 = prod.get(n.inputs[0]);
      const r2 = only(n.outputs[0]);
      // GroupNorm: Reshape(x, [0, G, -1]) → IN → Reshape(·, Shape(x)) [→ Mul(γ) → Add(β)].
      if (
        r1?.opType === 'Reshape' &&
        r2?.opType === 'Reshape' &&
        only(r1.outputs[0]) === n &&
        isConst(g, r1.inputs[1])
      ) {
        const target = floats(g.initializers.get(r1.inputs[1]) as Tensor);
        const shapeNode = prod.get(r2.inputs[1]);
        const x = r1.inputs[0];
        if (
          target.length === 3 &&
          target[2] === -1 &&
          target[1] >= 1 &&
          shapeNode?.opType === 'Shape' &&
          shapeNode.inputs[0] === x &&
          attrInt(shapeNode, 'start', 0) === 0 &&
          shapeNode.attrs.end === undefined
        ) {
          const a = affineAfter(r2.outputs[0]);
          const nodes = [r1, n, r2, ...a.nodes];
          if ((cons.get(shapeNode.outputs[0]) ?? []).length === 1) nodes.push(shapeNode);
          found.push({
            kind: 'groupnorm',
            node: n.name,
            nodes: g.nodes.filter((m) => nodes.includes(m)),
            input: x,
            output: a.output,
            measured: r1.outputs[0],
            axis: 2,
            groups: target[1],
            epsilon: eps,
            ...own(n),
            ...(a.gamma ? { gamma: a.gamma } : {}),
            ...(a.beta ? { beta: a.beta } : {}),
          });
          continue;
        }
      }
      found.push({
        kind: 'instancenorm',
        node: n.name,
        nodes: [n],
        input: n.inputs[0],
        output: n.outputs[0],
        measured: n.inputs[0],
        axis: 2,
        groups: 0,
        epsilon: eps,
        ...own(n),
      });
    } else if (n.opType === 'LayerNormalization') {
      found.push({
        kind: 'layernorm',
        node: n.name,
        nodes: [n],
        input: n.inputs[0],
        output: n.outputs[0],
        measured: n.inputs[0],
        axis: attrInt(n, 'axis', -1),
        groups: 1,
        epsilon: attrFloat(n, 'epsilon', 1e-5),
        ...own(n),
      });
    } else if (n.opType === 'Div') {
      // LayerNorm written out (opset < 17): d = x − ReduceMean(x); d / √(ReduceMean(d²) + ε) [· γ + β].
      const sub = prod.get(n.inputs[0]);
      const sqrt = prod.get(n.inputs[1]);
      const mean = sub?.opType === 'Sub' ? prod.get(sub.inputs[1]) : undefined;
      const addEps = sqrt?.opType === 'Sqrt' ? prod.get(sqrt.inputs[0]) : undefined;
      const vMean = addEps?.opType === 'Add' ? prod.get(addEps.inputs.find((i) => !isConst(g, i)) ?? '') : undefined;
      const pow = vMean ? prod.get(vMean.inputs[0]) : undefined;
      if (!sub || !mean || !addEps || !vMean || !pow || !sqrt) continue;
      const x = sub.inputs[0];
      const axes = reduceAxes(mean);
      const eps = constOf(addEps, vMean.outputs[0]);
      const two =
        pow.opType === 'Pow' && pow.inputs[0] === sub.outputs[0] ? g.initializers.get(pow.inputs[1]) : undefined;
      const twoSquared = pow.opType === 'Mul' && pow.inputs[0] === sub.outputs[0] && pow.inputs[1] === sub.outputs[0];
      const vAxes = reduceAxes(vMean);
      if (
        mean.inputs[0] !== x ||
        !axes ||
        !vAxes ||
        axes.join() !== vAxes.join() ||
        !eps ||
        !(twoSquared || (two && Number(two.data[0]) === 2 && two.data.length === 1)) ||
        (cons.get(sub.outputs[0]) ?? []).length !== 2
      )
        continue;
      // Statistics over the trailing axes only (as LayerNorm): negative axes ending at −1.
      const sorted = [...axes].sort((p, q) => p - q);
      if (sorted.some((v, k) => v >= 0 || v !== -sorted.length + k)) continue;
      const a = affineAfter(n.outputs[0]);
      const nodes = [mean, sub, pow, vMean, addEps, sqrt, n, ...a.nodes];
      const epsT = g.initializers.get(eps) as Tensor;
      found.push({
        kind: 'layernorm',
        node: n.name,
        nodes: g.nodes.filter((m) => nodes.includes(m)),
        input: x,
        output: a.output,
        measured: x,
        axis: sorted[0],
        groups: 1,
        epsilon: Number(epsT.data[0]),
        ...(a.gamma ? { gamma: a.gamma } : {}),
        ...(a.beta ? { beta: a.beta } : {}),
      });
    }
  }
  // Inside the spiking part only: a neuron before, a weighted layer after.
  const siteTensors = new Set(g.nodes.filter((n) => neuronCap(g, n) !== null).map((n) => n.outputs[0]));
  const weightedAfter = (t: string, seen = new Set<string>()): boolean => {
    if (seen.has(t)) return false;
    seen.add(t);
    return (cons.get(t) ?? []).some((m) => WEIGHTED_OPS.has(m.opType) || m.outputs.some((o) => weightedAfter(o, seen)));
  };
  const beforeReadouts = readoutNodes
    ? new Set(
        ancestors(
          g,
          g.nodes.filter((n) => readoutNodes.includes(n.name)).flatMap((n) => n.outputs),
        ).flatMap((n) => n.outputs),
      )
    : null;
  return found.filter(
    (s) =>
      ancestors(g, [s.input]).some((a) => a.outputs.some((o) => siteTensors.has(o))) &&
      (beforeReadouts ? beforeReadouts.has(s.output) : weightedAfter(s.output)),
  );
}

/**
 * The graph with each norm replaced by its frozen form: GroupNorm and InstanceNorm by a
 * BatchNormalization (per channel: γ·s_g as scale, γ·b_g + β as bias, the group's mean and
 * variance; s_g, b_g the InstanceNormalization's own scale and bias), which graph/passes.ts then
 * folds into the convolution before it; LayerNorm by Mul and Add with constants. `shapes` gives
 * each norm input's per-sample shape.
 */
export function freezeSampleNorms(
  g: Graph,
  norms: readonly SampleNorm[],
  stats: readonly NormStatistics[],
  shapes: ReadonlyMap<string, readonly number[]>,
): Graph {
  const initializers = new Map(g.initializers);
  const replace = new Map<Node, Node[]>();
  const drop = new Set<Node>();
  for (const s of norms) {
    const st = stats.find((x) => x.node === s.node);
    if (!st) throw new Error(`no statistics for the normalisation "${s.node}"`);
    const shape = shapes.get(s.input);
    if (!shape) throw new Error(`the shape of "${s.input}" is not known`);
    const norm = s.nodes.find((n) => n.name === s.node) as Node;
    s.nodes.forEach((n) => drop.add(n));
    const name = (what: string): string => `${s.node}.frozen.${what}`;
    const constant = (t: string | undefined): Float32Array | null => (t ? floats(initializers.get(t) as Tensor) : null);
    const [gamma, beta, normScale, normBias] = [s.gamma, s.beta, s.normScale, s.normBias].map(constant);
    // A constant broadcast over the last axes: element k of a tensor of `size` values.
    const at = (v: Float32Array | null, k: number, fallback: number): number => (!v ? fallback : v[k % v.length]);
    if (s.kind === 'layernorm') {
      const axis = s.axis < 0 ? s.axis + shape.length + 1 : s.axis;
      const inner = shape.slice(axis - 1);
      const size = inner.reduce((a, b) => a * b, 1);
      const inv = 1 / Math.sqrt(st.variance[0] + s.epsilon);
      // y = γ·(scale·(x − μ)/s + bias) + β = x·A + B
      const A = Float32Array.from({ length: size }, (_, k) => at(gamma, k, 1) * at(normScale, k, 1) * inv);
      const B = Float32Array.from(
        { length: size },
        (_, k) => at(gamma, k, 1) * at(normBias, k, 0) + at(beta, k, 0) - A[k] * st.mean[0],
      );
      initializers.set(name('scale'), floatTensor(inner, A));
      initializers.set(name('shift'), floatTensor(inner, B));
      replace.set(norm, [
        {
          name: name('mul'),
          opType: 'Mul',
          domain: '',
          inputs: [s.input, name('scale')],
          outputs: [name('scaled')],
          attrs: {},
        },
        {
          name: name('add'),
          opType: 'Add',
          domain: '',
          inputs: [name('scaled'), name('shift')],
          outputs: [s.output],
          attrs: {},
        },
      ]);
      continue;
    }
    const C = shape[0];
    const G = s.kind === 'groupnorm' ? s.groups : C;
    const per = C / G;
    if (!Number.isInteger(per)) throw new Error(`"${s.node}": ${C} channels in ${G} groups`);
    // The affine after a GroupNorm is per channel ([C, 1, 1] or [C], or one value).
    if ([gamma, beta].some((v) => v && v.length !== 1 && v.length !== C))
      throw new Error(`"${s.node}": its affine is not per channel`);
    const scale = new Float32Array(C);
    const bias = new Float32Array(C);
    const mean = new Float32Array(C);
    const variance = new Float32Array(C);
    for (let c = 0; c < C; c++) {
      const grp = Math.floor(c / per);
      const gm = at(gamma, c, 1);
      scale[c] = gm * at(normScale, grp, 1);
      bias[c] = gm * at(normBias, grp, 0) + at(beta, c, 0);
      mean[c] = st.mean[grp];
      variance[c] = st.variance[grp];
    }
    for (const [k, v] of [
      ['scale', scale],
      ['bias', bias],
      ['mean', mean],
      ['var', variance],
    ] as const)
      initializers.set(name(k), floatTensor([C], v));
    replace.set(norm, [
      {
        name: name('bn'),
        opType: 'BatchNormalization',
        domain: '',
        inputs: [s.input, name('scale'), name('bias'), name('mean'), name('var')],
        outputs: [s.output],
        attrs: { epsilon: { kind: 'float', value: s.epsilon } },
      },
    ]);
  }
  const nodes = g.nodes.flatMap((n) => replace.get(n) ?? (drop.has(n) ? [] : [n]));
  return withGraph(g, { nodes, initializers: usedInitializers(nodes, initializers) });
}

/** How a norm is named in messages: its kind and node. */
export function normName(s: SampleNorm): string {
  const kind = { groupnorm: 'GroupNorm', instancenorm: 'InstanceNorm', layernorm: 'LayerNorm' }[s.kind];
  return `${kind}${s.kind === 'groupnorm' ? `(${s.groups})` : ''} "${s.node}"`;
}
