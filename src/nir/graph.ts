/**
 * NIR (the Neuromorphic Intermediate Representation) from a converted network in the unit-spike
 * form (docs/algorithm.md §9): Input, Conv1d/Conv2d, Affine/Linear, IF, AvgPool2d, Flatten,
 * Scale, Output, with edges; a node with several incoming edges sums its inputs. Also the
 * target profiles: what each importer makes of NIR's IF (its reset, no initial potential,
 * v > threshold).
 */
import type { Graph, Node, Tensor } from '../graph/ir.js';
import { attrInt, numel } from '../graph/ir.js';
import { siteState, type DecodedSnn, type TargetCalibration } from '../snn/format.js';
import { SpikeportError, field } from '../errors.js';
import { PROFILES, type Target } from './profiles.js';

export { TARGETS, checkTarget, type Target } from './profiles.js';

/** How a target's IF neurons reset after a spike (its profile's). */
export function resetOf(target: Target): 'subtract' | 'zero' {
  return PROFILES[target].reset;
}

export interface Array {
  readonly dims: readonly number[];
  readonly data: Float32Array;
}

export type NirNode =
  | { readonly type: 'Input'; readonly shape: readonly number[] }
  | { readonly type: 'Output'; readonly shape: readonly number[] }
  | {
      readonly type: 'Conv1d' | 'Conv2d';
      readonly weight: Array;
      readonly bias: Array;
      readonly stride: readonly number[];
      readonly padding: readonly number[];
      readonly dilation: readonly number[];
      readonly groups: number;
      readonly inputShape: readonly number[];
    }
  | { readonly type: 'Affine'; readonly weight: Array; readonly bias: Array }
  | { readonly type: 'Linear'; readonly weight: Array }
  | { readonly type: 'IF'; readonly r: Array; readonly vThreshold: Array; readonly vReset: Array }
  | {
      readonly type: 'AvgPool2d' | 'SumPool2d';
      readonly kernelSize: readonly number[];
      readonly stride: readonly number[];
      readonly padding: readonly number[];
    }
  | {
      readonly type: 'Flatten';
      readonly startDim: number;
      readonly endDim: number;
      readonly inputShape: readonly number[];
    }
  | { readonly type: 'Scale'; readonly scale: Array };

export interface NirGraph {
  readonly nodes: ReadonlyMap<string, NirNode>;
  readonly edges: readonly (readonly [string, string])[];
  /** Strings kept in the graph's metadata group (the target, the source file). */
  readonly metadata: Readonly<Record<string, string>>;
}

/**
 * Corrections a target needs that spikeport's own neuron does not (convert --target): per site
 * and channel, a current added at every step (in the unit-spike form's units) and the threshold
 * (1 without correction). Null for a site left as it is.
 */
export type TargetCorrections = Pick<TargetCalibration, 'bias' | 'threshold' | 'start'>;

/**
 * The θ/2 start for a target without initial membranes (reset by subtraction), from a clock IF
 * node of two kinds of neurons with threshold CLOCK: "on" neurons driven by CLOCK + 1 fire at
 * every step from step 1, "late" neurons driven by CLOCK − 1 are silent at step 1 and fire at
 * every step after (their membranes before each spike are CLOCK + t and CLOCK − t, whatever the
 * comparison, ≥ or >, and with several spikes per step allowed). p·(on − late) is a current p at
 * step 1 and exactly 0 after, also when p becomes an integer on the target: the two weights are
 * the same number, so no rounding of a weight against a bias is left to add up over the steps.
 * Exact up to T = CLOCK − 1.
 */
export const CLOCK = 4096;

/** A NIR graph made from a converted network, with the IF node of every neuron site. */
export interface NirExport extends NirGraph {
  /** IF node name → the site index it implements. */
  readonly sites: ReadonlyMap<string, number>;
  /** Nodes added to express max pooling: IF nodes (and their neurons per sample) and weight nodes. */
  readonly maxPools: Added;
  /** Nodes added for the θ/2 start (clock neurons and the layers from them); zero without. */
  readonly clock: Added;
  /** IF neurons per match of the max construction (1, or MATCH_COPIES on a one-spike target with the clock). */
  readonly matchCopies: number;
  /** Where the θ/2 start comes from, for a deployment that spreads it over more clock neurons. */
  readonly clocks: ClockLayout;
}

/**
 * The clock IF nodes (each with the layer driving it: a constant per neuron, CLOCK + 1 for its
 * "on" channels, then CLOCK − 1 for as many "late" ones) and the start layers reading them.
 */
export interface ClockLayout {
  /** Clock IF node → the layer that drives it. */
  readonly drives: ReadonlyMap<string, string>;
  /** Start layer → the clock IF node it reads (its weights: +p on the on channels, −p on the late ones). */
  readonly pulses: ReadonlyMap<string, string>;
}

/** The drive of a clock of k on and k late neurons per position: CLOCK + 1, then CLOCK − 1. */
export function clockDrive(k: number): Float32Array {
  return Float32Array.from({ length: 2 * k }, (_, i) => (i < k ? CLOCK + 1 : CLOCK - 1));
}

export interface Added {
  readonly ifNodes: number;
  readonly neurons: number;
  readonly weightNodes: number;
}

const MAXPOOL_PER_STEP = `max pooling of each step's current has no NIR form (an IF neuron integrates); convert with ${field('maxpool')} accumulated (the default)`;

/** IF neurons per match of the max construction on a target that fires once per step (with the θ/2 start's clock). */
export const MATCH_COPIES = 4;

/** The threshold of the IF neurons that build a max (max(a, b) = b + θ·IF(a − b)), in the unit-spike form's units. */
export const MAX_THRESHOLD = 1;

/**
 * The threshold of those IF neurons where the target resets to 0: a spike still stands for
 * MAX_THRESHOLD, but the reset throws away the charge above the threshold, on average about half
 * the step's input; firing that much earlier pays it back. With MAX_THRESHOLD the matches of a
 * max lose a third and more of what they carry, and the pooled current with them.
 */
export const MAX_THRESHOLD_ZERO = 0.6;

const floats = (t: Tensor): Float32Array =>
  t.data instanceof Float32Array ? t.data : Float32Array.from(t.data as ArrayLike<number>);

/**
 * The NIR graph of a converted network in the unit-spike form. Max pooling is built from IF
 * neurons and fixed-weight convolutions; anything else NIR cannot express is refused, naming
 * the node. `corrections` (default: the file's own, from convert --target) are folded in: the
 * bias into the layer that feeds the site, the threshold into the IF node.
 */
export function toNir(
  snn: DecodedSnn,
  target: Target,
  where: string,
  corrections: TargetCorrections | null = snn.meta.target ?? null,
  opts: { readonly matchCopies?: number; readonly matchStep?: number } = {},
): NirExport {
  if (snn.form !== 'step')
    throw new SpikeportError(
      'invalid-file',
      `${where}: NIR export reads the step form (convert with ${field('form')} step, the default)`,
    );
  if (!snn.meta.unit)
    throw new SpikeportError(
      'invalid-file',
      `${where}: NIR wants neurons with threshold 1 and 0/1 spikes; convert the ANN with ${field('spikes')} unit`,
    );
  const g: Graph = snn.graph;
  const { spec } = snn.meta;
  const prod = new Map<string, Node>();
  for (const n of g.nodes) for (const o of n.outputs) prod.set(o, n);
  // Each site's neuron: the Sub that writes its next state reads (membrane, spikes); the Add before it reads (state, current).
  const siteBySpikes = new Map<string, { k: number; current: string }>();
  spec.sites.forEach((_, k) => {
    const sub = prod.get(`${siteState(k)}.next`);
    const add = sub ? prod.get(sub.inputs[0]) : undefined;
    if (!sub || !add || add.inputs[0] !== siteState(k))
      throw new SpikeportError('invalid-file', `${where}: site ${k}'s neuron is not in the form spikeport writes`);
    siteBySpikes.set(sub.inputs[1], { k, current: add.inputs[1] });
  });

  const nodes = new Map<string, NirNode>();
  const edges: [string, string][] = [];
  const used = new Set<string>();
  const sites = new Map<string, number>();
  const maxPools = { ifNodes: 0, neurons: 0, weightNodes: 0 };
  const clock = { ifNodes: 0, neurons: 0, weightNodes: 0 };
  let matchCopies = 1;
  const clocks = new Map<string, string>();
  const drives = new Map<string, string>();
  const pulses = new Map<string, string>();
  /** The clock IF node at this shape (built once): an on neuron and a late one per position. */
  const clockAt = (shape: readonly number[]): string | null => {
    const key = shape.join('x');
    const hit = clocks.get(key);
    if (hit) return hit;
    const inShape = spec.inputShape;
    let drive: string;
    if (shape.length === 3 && inShape.length === 3 && inShape[1] >= shape[1] && inShape[2] >= shape[2]) {
      // A convolution of the input with zero weights whose output has the site's height and width: only its bias counts.
      const [cin, H, W] = inShape;
      const [kh, kw] = [H - shape[1] + 1, W - shape[2] + 1];
      drive = nameFor(`clock_drive_${key}`);
      nodes.set(drive, {
        type: 'Conv2d',
        weight: { dims: [2, cin, kh, kw], data: new Float32Array(2 * cin * kh * kw) },
        bias: { dims: [2], data: clockDrive(1) },
        stride: [1, 1],
        padding: [0, 0],
        dilation: [1, 1],
        groups: 1,
        inputShape: [H, W],
      });
      nodes.set('input', { type: 'Input', shape: inShape });
      edges.push(['input', drive]);
    } else if (shape.length === 1) {
      const flat = inShape.length === 1 ? 'input' : nameFor('clock_flatten');
      if (flat !== 'input') {
        nodes.set(flat, { type: 'Flatten', startDim: 0, endDim: -1, inputShape: inShape });
        edges.push(['input', flat]);
      }
      nodes.set('input', { type: 'Input', shape: inShape });
      drive = nameFor(`clock_drive_${key}`);
      nodes.set(drive, {
        type: 'Affine',
        weight: { dims: [2, numel(inShape)], data: new Float32Array(2 * numel(inShape)) },
        bias: { dims: [2], data: clockDrive(1) },
      });
      edges.push([flat, drive]);
    } else return null;
    const ifShape = shape.length === 3 ? [2, shape[1], shape[2]] : [2];
    const one = (v: number): Array => ({ dims: ifShape, data: new Float32Array(numel(ifShape)).fill(v) });
    const name = nameFor(`clock_${key}`);
    nodes.set(name, { type: 'IF', r: one(1), vThreshold: one(CLOCK), vReset: one(0) });
    edges.push([drive, name]);
    clocks.set(key, name);
    drives.set(name, drive);
    clock.ifNodes++;
    clock.neurons += numel(ifShape);
    clock.weightNodes++;
    return name;
  };
  const nameFor = (base: string): string => {
    const clean = base.replace(/[/\\.\s]+/g, '_').replace(/^_+/, '') || 'node';
    let name = clean;
    for (let i = 1; used.has(name) || name === 'input' || name === 'output'; i++) name = `${clean}_${i}`;
    used.add(name);
    return name;
  };
  // The clock fires at every step only where the threshold is subtracted; a reset to 0 gets no start.
  const clocked = !!corrections?.start && resetOf(target) === 'subtract';
  /**
   * A layer from the clock giving `p` per channel at step 1 and nothing after, for the IF node
   * `ifName` of shape `shape` (name of the layer; null where there is no clock).
   */
  const startPulse = (ifName: string, shape: readonly number[], p: Float32Array): string | null => {
    const tick = clocked ? clockAt(shape) : null;
    if (!tick) return null;
    const C = shape[0];
    const w = new Float32Array(2 * C);
    for (let c = 0; c < C; c++) [w[2 * c], w[2 * c + 1]] = [p[c], -p[c]];
    const pulse = nameFor(`${ifName}_start`);
    const bias = { dims: [C], data: new Float32Array(C) };
    nodes.set(
      pulse,
      shape.length === 3
        ? {
            type: 'Conv2d',
            weight: { dims: [C, 2, 1, 1], data: w },
            bias,
            stride: [1, 1],
            padding: [0, 0],
            dilation: [1, 1],
            groups: 1,
            inputShape: shape.slice(1),
          }
        : { type: 'Affine', weight: { dims: [C, 2], data: w }, bias },
    );
    edges.push([tick, pulse]);
    pulses.set(pulse, tick);
    clock.weightNodes++;
    return pulse;
  };
  const refuse = (n: Node, why: string): never => {
    throw new SpikeportError('unsupported-model', `cannot export node "${n.name}" (${n.opType}) to NIR: ${why}`);
  };
  const init = (name: string | undefined): Tensor | undefined => (name ? g.initializers.get(name) : undefined);

  interface Resolved {
    readonly sources: readonly string[];
    readonly shape: readonly number[];
    /** Whether the value changes from step to step (an IF upstream). */
    readonly varying: boolean;
  }
  const memo = new Map<string, Resolved>();
  const add = (name: string, node: NirNode, from: Resolved): Resolved['sources'] => {
    nodes.set(name, node);
    for (const s of from.sources) edges.push([s, name]);
    return [name];
  };
  const readers = (name: string): number => edges.filter(([a]) => a === name).length;

  /**
   * Add a constant per channel to a value: into the bias of its first weighted source when that
   * source feeds nothing else (adding to one term of a sum adds to the sum), else refused.
   */
  const addBias = (n: Node, x: Resolved, perChannel: Float32Array): void => {
    const C = x.shape[0];
    for (const s of x.sources) {
      const src = nodes.get(s);
      if (!src || readers(s) > 1) continue;
      if (src.type === 'Conv1d' || src.type === 'Conv2d' || src.type === 'Affine' || src.type === 'Linear') {
        const out = src.weight.dims[0];
        if (out !== C) continue;
        const old = src.type === 'Linear' ? new Float32Array(out) : src.bias.data;
        const bias = { dims: [out], data: Float32Array.from(old, (b, c) => b + perChannel[c]) };
        nodes.set(s, src.type === 'Linear' ? { type: 'Affine', weight: src.weight, bias } : { ...src, bias });
        return;
      }
    }
    refuse(n, 'a constant is added to a value no weighted layer alone computes');
  };

  /**
   * Max pooling from NIR primitives: a tournament over the window's taps, each match
   * max(a, b) = b + θ·s with s the spikes of an IF neuron fed a − b. The IF's spike count is
   * the positive part of the accumulated difference to within θ, so the pooled current adds up
   * to the max of the accumulated inputs to within θ per match (exact in the limit of T). Each
   * value is a sum of taps (a fixed-weight depthwise convolution of the pooled input) and of
   * earlier IF nodes (1×1 depthwise convolutions).
   */
  const maxPool = (n: Node, x: Resolved): Resolved => {
    if (x.shape.length !== 3) return refuse(n, 'NIR pools in 2-d only');
    const [C, H, W] = x.shape;
    const kernel = attr(n, 'kernel_shape') ?? [];
    if (kernel.length !== 2) return refuse(n, 'NIR pools in 2-d only');
    const stride = attr(n, 'strides') ?? [1, 1];
    const pads = attr(n, 'pads') ?? [0, 0, 0, 0];
    const dil = attr(n, 'dilations') ?? [1, 1];
    if (dil.some((d) => d !== 1)) refuse(n, 'dilated max pooling is not exported');
    if (attrInt(n, 'ceil_mode', 0) === 1) refuse(n, 'ceil_mode is not exported');
    if (n.attrs.auto_pad && n.attrs.auto_pad.kind === 'string' && n.attrs.auto_pad.value !== 'NOTSET')
      refuse(n, 'auto_pad is not exported; export the model with explicit pads');
    if (pads[0] !== pads[2] || pads[1] !== pads[3])
      refuse(n, 'NIR pads both sides alike; this pool pads them differently');
    const [kh, kw] = kernel;
    const K = kh * kw;
    const OH = Math.floor((H + 2 * pads[0] - kh) / stride[0]) + 1;
    const OW = Math.floor((W + 2 * pads[1] - kw) / stride[1]) + 1;
    const outShape = [C, OH, OW];
    const base = nameFor(n.name);
    // A linear form: coefficients of the K taps and of earlier IF nodes.
    interface Form {
      readonly taps: Float64Array;
      readonly ifs: ReadonlyMap<string, number>;
    }
    const combine = (a: Form, b: Form, sa: number, sb: number): Form => {
      const ifs = new Map<string, number>();
      for (const [k, v] of a.ifs) ifs.set(k, (ifs.get(k) ?? 0) + sa * v);
      for (const [k, v] of b.ifs) ifs.set(k, (ifs.get(k) ?? 0) + sb * v);
      for (const [k, v] of ifs) if (v === 0) ifs.delete(k);
      return { taps: a.taps.map((t, i) => sa * t + sb * b.taps[i]), ifs };
    };
    let count = 0;
    // A match of one IF neuron of threshold θ counts the accumulated difference in whole θ, one
    // θ per step at most where the target fires once per step: at T = 8 that coarse a max costs
    // several points (fashion-vgg). Where the target fires once per step, each match is `copies`
    // IF neurons of threshold copies·u with starts 0, u, …, (copies − 1)·u (from the clock), each
    // spike worth u = θ/copies: their spikes add up to ⌊accumulated difference / u⌋ (Hermite's
    // identity), so the max is counted in steps of θ/copies, still up to θ per step.
    const copies = clocked && PROFILES[target].spikes === 'single' ? (opts.matchCopies ?? MATCH_COPIES) : 1;
    matchCopies = copies;
    // The value of a form as a NIR sum (the nodes returned) with `m` channels per pooled channel:
    // one tap convolution of x, one 1×1 convolution per IF (summing its copies).
    const realise = (f: Form, m: number): string[] => {
      const terms: string[] = [];
      if (f.taps.some((t) => t !== 0)) {
        const w = new Float32Array(m * C * K);
        for (let c = 0; c < m * C; c++) for (let j = 0; j < K; j++) w[c * K + j] = f.taps[j];
        const conv = `${base}_taps${count++}`;
        used.add(conv);
        nodes.set(conv, {
          type: 'Conv2d',
          weight: { dims: [m * C, 1, kh, kw], data: w },
          bias: { dims: [m * C], data: new Float32Array(m * C) },
          stride,
          padding: pads.slice(0, 2),
          dilation: [1, 1],
          groups: C,
          inputShape: [H, W],
        });
        for (const s of x.sources) edges.push([s, conv]);
        terms.push(conv);
        maxPools.weightNodes++;
      }
      for (const [ifName, coeff] of f.ifs) {
        const conv = `${base}_w${count++}`;
        used.add(conv);
        nodes.set(conv, {
          type: 'Conv2d',
          weight: { dims: [m * C, copies, 1, 1], data: new Float32Array(m * C * copies).fill(coeff) },
          bias: { dims: [m * C], data: new Float32Array(m * C) },
          stride: [1, 1],
          padding: [0, 0],
          dilation: [1, 1],
          groups: C,
          inputShape: [OH, OW],
        });
        edges.push([ifName, conv]);
        terms.push(conv);
        maxPools.weightNodes++;
      }
      return terms;
    };
    let level: Form[] = Array.from({ length: K }, (_, j) => ({
      taps: Float64Array.from({ length: K }, (_, i) => (i === j ? 1 : 0)),
      ifs: new Map(),
    }));
    const matchShape = [copies * C, OH, OW];
    const unit = copies > 1 ? (opts.matchStep ?? MAX_THRESHOLD / copies) : MAX_THRESHOLD;
    const neurons = numel(matchShape);
    const full = (v: number): Array => ({ dims: matchShape, data: new Float32Array(neurons).fill(v) });
    const matchThreshold = resetOf(target) === 'zero' ? MAX_THRESHOLD_ZERO : copies * unit;
    while (level.length > 1) {
      const next: Form[] = [];
      for (let i = 0; i + 1 < level.length; i += 2) {
        const [a, b] = [level[i], level[i + 1]];
        const d = `${base}_max${count++}`;
        used.add(d);
        nodes.set(d, { type: 'IF', r: full(1), vThreshold: full(matchThreshold), vReset: full(0) });
        for (const term of realise(combine(a, b, 1, -1), copies)) edges.push([term, d]);
        if (copies > 1) {
          const starts = Float32Array.from({ length: copies * C }, (_, j) => (j % copies) * unit);
          const pulse = startPulse(d, matchShape, starts);
          if (pulse) edges.push([pulse, d]);
        }
        maxPools.ifNodes++;
        maxPools.neurons += neurons;
        next.push(combine(b, { taps: new Float64Array(K), ifs: new Map([[d, unit]]) }, 1, 1));
      }
      if (level.length % 2 === 1) next.push(level[level.length - 1]);
      level = next;
    }
    // The pooled value is the sum of its terms: whatever reads it takes them all as inputs.
    return { sources: realise(level[0], 1), shape: outShape, varying: true };
  };

  const resolve = (t: string): Resolved => {
    const hit = memo.get(t);
    if (hit) return hit;
    let r: Resolved;
    const site = siteBySpikes.get(t);
    if (t === spec.input) {
      nodes.set('input', { type: 'Input', shape: spec.inputShape });
      r = { sources: ['input'], shape: spec.inputShape, varying: false };
    } else if (site) {
      const x = resolve(site.current);
      const n = numel(x.shape);
      const C = x.shape[0];
      const per = n / C;
      const name = nameFor(spec.sites[site.k].node);
      const bias = corrections?.bias[site.k];
      if (bias)
        addBias(
          prod.get(site.current) ?? ({ name: spec.sites[site.k].node, opType: 'IF' } as Node),
          x,
          Float32Array.from(bias),
        );
      const th = corrections?.threshold[site.k];
      const perNeuron = (v: readonly number[] | null | undefined, fill: number): Array => ({
        dims: x.shape,
        data: Float32Array.from({ length: n }, (_, i) => (v ? v[Math.floor(i / per) % v.length] : fill)),
      });
      sites.set(name, site.k);
      // The θ/2 start (a QCFS site's own start) as a current at step 1, from the clock.
      const startAt = spec.sites[site.k].potential ? null : (spec.sites[site.k].start ?? 0.5);
      const pulse =
        startAt === null
          ? null
          : startPulse(
              name,
              x.shape,
              Float32Array.from({ length: C }, (_, c) => startAt * (th ? th[c % th.length] : 1)),
            );
      const sources = pulse ? [...x.sources, pulse] : x.sources;
      r = {
        sources: add(
          name,
          { type: 'IF', r: perNeuron(null, 1), vThreshold: perNeuron(th, 1), vReset: perNeuron(null, 0) },
          { ...x, sources },
        ),
        shape: x.shape,
        varying: true,
      };
    } else {
      const n = prod.get(t);
      if (!n) throw new SpikeportError('invalid-file', `${where}: no node computes "${t}"`);
      r = resolveNode(n);
    }
    memo.set(t, r);
    return r;
  };

  const resolveNode = (n: Node): Resolved => {
    switch (n.opType) {
      case 'Identity':
      case 'Dropout':
        return resolve(n.inputs[0]);
      case 'Pad': {
        // Exporters write average pooling as Pad (often of zero width) + AveragePool: a zero pad is nothing.
        const p = init(n.inputs[1]);
        const pads = p ? Array.from(p.data as ArrayLike<number | bigint>, Number) : attr(n, 'pads');
        if (!pads || pads.some((v) => v !== 0))
          refuse(n, 'NIR has no padding node (pad inside the convolution or pooling instead)');
        return resolve(n.inputs[0]);
      }
      case 'Conv': {
        const x = resolve(n.inputs[0]);
        const W = init(n.inputs[1]);
        if (!W) refuse(n, 'its weights are not constants');
        const w = W as Tensor;
        const spatial = w.dims.length - 2;
        if (spatial !== 1 && spatial !== 2) refuse(n, `NIR has Conv1d and Conv2d, not ${spatial}-d convolution`);
        const pads = attr(n, 'pads') ?? new Array<number>(2 * spatial).fill(0);
        if (pads.slice(0, spatial).some((p, i) => p !== pads[spatial + i]))
          refuse(n, 'NIR pads both sides alike; this convolution pads them differently');
        if (n.attrs.auto_pad && n.attrs.auto_pad.kind === 'string' && n.attrs.auto_pad.value !== 'NOTSET')
          refuse(n, 'auto_pad is not exported; export the model with explicit pads');
        const stride = attr(n, 'strides') ?? new Array<number>(spatial).fill(1);
        const dilation = attr(n, 'dilations') ?? new Array<number>(spatial).fill(1);
        const groups = attrInt(n, 'group', 1);
        const B = init(n.inputs[2]);
        const cout = w.dims[0];
        const bias = B ? floats(B) : new Float32Array(cout);
        const inSpatial = x.shape.slice(1);
        if (x.shape[0] !== w.dims[1] * groups || cout % groups !== 0)
          refuse(n, `weights ${w.dims.join('x')} in ${groups} groups do not fit an input of ${x.shape[0]} channels`);
        const outSpatial = inSpatial.map(
          (d, i) => Math.floor((d + 2 * pads[i] - dilation[i] * (w.dims[2 + i] - 1) - 1) / stride[i]) + 1,
        );
        if (outSpatial.length !== spatial || outSpatial.some((d) => !(d >= 1)))
          refuse(n, `its window does not fit its input ${inSpatial.join('x')} (output ${outSpatial.join('x')})`);
        const node: NirNode = {
          type: spatial === 2 ? 'Conv2d' : 'Conv1d',
          weight: { dims: w.dims, data: floats(w) },
          bias: { dims: [cout], data: Float32Array.from(bias) },
          stride,
          padding: pads.slice(0, spatial),
          dilation,
          groups,
          inputShape: inSpatial,
        };
        return { sources: add(nameFor(n.name), node, x), shape: [cout, ...outSpatial], varying: x.varying };
      }
      case 'Gemm':
      case 'MatMul': {
        const x = resolve(n.inputs[0]);
        if (x.shape.length !== 1)
          refuse(n, 'a dense layer on a tensor with more than one axis per sample (flatten it first)');
        const W = init(n.inputs[1]);
        if (!W || W.dims.length !== 2) return refuse(n, 'its weights are not a constant matrix');
        if (n.opType === 'Gemm' && attrInt(n, 'transA', 0) === 1) refuse(n, 'transA is not exported');
        const transB = n.opType === 'Gemm' && attrInt(n, 'transB', 0) === 1;
        const alpha = n.opType === 'Gemm' ? attrNum(n, 'alpha', 1) : 1;
        const [r, c] = W.dims;
        const [out, inn] = transB ? [r, c] : [c, r];
        const w = floats(W);
        const weight = new Float32Array(out * inn);
        for (let o = 0; o < out; o++)
          for (let i = 0; i < inn; i++) weight[o * inn + i] = alpha * (transB ? w[o * c + i] : w[i * c + o]);
        const C = n.opType === 'Gemm' ? init(n.inputs[2]) : undefined;
        if (n.opType === 'Gemm' && n.inputs[2] && !C) refuse(n, 'its bias is not a constant');
        const beta = attrNum(n, 'beta', 1);
        const bias = C ? broadcast(floats(C), out).map((v) => v * beta) : null;
        const node: NirNode = bias
          ? { type: 'Affine', weight: { dims: [out, inn], data: weight }, bias: { dims: [out], data: bias } }
          : { type: 'Linear', weight: { dims: [out, inn], data: weight } };
        return { sources: add(nameFor(n.name), node, x), shape: [out], varying: x.varying };
      }
      case 'Add': {
        const [a, b] = n.inputs;
        const ca = init(a);
        const cb = init(b);
        if (ca || cb) {
          // A bias after a layer (MatMul + Add, or a bias correction before a neuron): into that layer's bias.
          const [xName, c] = ca ? [b, ca] : [a, cb as Tensor];
          const x = resolve(xName);
          const C = x.shape[0];
          const per = expandPerChannel(floats(c), c.dims, x.shape);
          if (!per) return refuse(n, 'its constant does not broadcast per channel');
          const perChannel = Float32Array.from({ length: C }, (_, k) => per[k * (per.length / C)]);
          addBias(n, x, perChannel);
          return x;
        }
        const ra = resolve(a);
        const rb = resolve(b);
        if (ra.sources.some((s) => rb.sources.includes(s))) refuse(n, 'it adds a signal to itself');
        return { sources: [...ra.sources, ...rb.sources], shape: ra.shape, varying: ra.varying || rb.varying };
      }
      case 'Flatten': {
        const x = resolve(n.inputs[0]);
        if (attrInt(n, 'axis', 1) !== 1) refuse(n, 'only Flatten from axis 1 (all but the batch axis) is exported');
        return {
          sources: add(nameFor(n.name), { type: 'Flatten', startDim: 0, endDim: -1, inputShape: x.shape }, x),
          shape: [numel(x.shape)],
          varying: x.varying,
        };
      }
      case 'AveragePool':
      case 'GlobalAveragePool': {
        const x = resolve(n.inputs[0]);
        if (x.shape.length !== 3) refuse(n, 'NIR pools in 2-d only');
        const global = n.opType === 'GlobalAveragePool';
        const kernel = global ? x.shape.slice(1) : (attr(n, 'kernel_shape') ?? []);
        const stride = global ? kernel : (attr(n, 'strides') ?? [1, 1]);
        const pads = global ? [0, 0, 0, 0] : (attr(n, 'pads') ?? [0, 0, 0, 0]);
        if (pads.some((p) => p !== 0))
          refuse(n, "NIR's average pooling with padding is ambiguous (which zeros count); pool without padding");
        if (attrInt(n, 'ceil_mode', 0) === 1) refuse(n, 'ceil_mode is not exported');
        const out = [x.shape[0], ...x.shape.slice(1).map((d, i) => Math.floor((d - kernel[i]) / stride[i]) + 1)];
        if (kernel.length !== 2 || stride.length !== 2 || out.some((d) => !(d >= 1)))
          refuse(n, `its window does not fit its input ${x.shape.slice(1).join('x')}`);
        return {
          sources: add(nameFor(n.name), { type: 'AvgPool2d', kernelSize: kernel, stride, padding: [0, 0] }, x),
          shape: out,
          varying: x.varying,
        };
      }
      case 'Mul': {
        const [a, b] = n.inputs;
        const c = init(b) ?? init(a);
        if (!c) return refuse(n, 'it multiplies two signals');
        const x = resolve(init(b) ? a : b);
        const scale = expandPerChannel(floats(c), c.dims, x.shape);
        if (!scale) refuse(n, 'its factor does not broadcast per channel');
        return {
          sources: add(nameFor(n.name), { type: 'Scale', scale: { dims: x.shape, data: scale as Float32Array } }, x),
          shape: x.shape,
          varying: x.varying,
        };
      }
      case 'Sub': {
        // Max pooling on accumulated current: Sub(MaxPool(Add(acc, z)), previous max).
        const pool = prod.get(n.inputs[0]);
        const acc = pool?.opType === 'MaxPool' ? prod.get(pool.inputs[0]) : undefined;
        if (!pool || !acc || acc.opType !== 'Add' || !acc.inputs[0].startsWith('state.pool'))
          return refuse(n, 'NIR has no subtraction of two signals');
        return maxPool(pool, resolve(acc.inputs[1]));
      }
      case 'MaxPool': {
        const x = resolve(n.inputs[0]);
        if (x.varying) return refuse(n, MAXPOOL_PER_STEP);
        // On the input alone (constant from step to step) the accumulated and per-step forms agree.
        return maxPool(n, x);
      }
      default:
        return refuse(n, 'NIR has no such node');
    }
  };
  if (spec.readouts)
    throw new SpikeportError(
      'unsupported-model',
      `cannot export to NIR: the network has ${spec.readouts.length} readouts (${spec.readouts
        .slice(0, 3)
        .map((r) => r.name)
        .join(', ')}${spec.readouts.length > 3 ? ', …' : ''}), and spikeport writes NIR graphs with one output`,
    );
  const out = resolve(spec.readout);
  nodes.set('output', { type: 'Output', shape: out.shape });
  for (const s of out.sources) edges.push([s, 'output']);
  return {
    nodes,
    edges,
    metadata: {
      'spikeport.target': target,
      'spikeport.reset': resetOf(target),
      'spikeport.source': snn.meta.source.file,
    },
    sites,
    maxPools,
    clock,
    matchCopies,
    clocks: { drives, pulses },
  };
}

function attr(n: Node, name: string): number[] | undefined {
  const a = n.attrs[name];
  return a && a.kind === 'ints' ? [...a.value] : undefined;
}

function attrNum(n: Node, name: string, fallback: number): number {
  const a = n.attrs[name];
  return a && (a.kind === 'float' || a.kind === 'int') ? a.value : fallback;
}

function broadcast(v: Float32Array, n: number): Float32Array {
  if (v.length === n) return Float32Array.from(v);
  if (v.length === 1) return new Float32Array(n).fill(v[0]);
  throw new SpikeportError('unsupported-model', `a bias of ${v.length} values for ${n} outputs`);
}

/** A constant factor (ONNX broadcasting against [N, ...shape]) spelled out per element, or null unless it is scalar or per channel. */
function expandPerChannel(c: Float32Array, dims: readonly number[], shape: readonly number[]): Float32Array | null {
  const n = numel(shape);
  if (c.length === 1) return new Float32Array(n).fill(c[0]);
  const full = [...new Array<number>(Math.max(0, shape.length + 1 - dims.length)).fill(1), ...dims];
  if (full.length !== shape.length + 1 || full[0] !== 1 || full[1] !== shape[0] || full.slice(2).some((d) => d !== 1))
    return null;
  const per = n / shape[0];
  return Float32Array.from({ length: n }, (_, k) => c[Math.floor(k / per)]);
}
