/**
 * A NIR graph as a target profile wants it (profiles.ts): average pooling as a sum where the
 * importer reads only SumPool2d (1/k² folded into the next layer), Linear as Affine, one
 * threshold per IF node where the chip has one register, and weights as the target's integers
 * with one scale per neuron node. Each change is a line of the record (`notes`).
 */
import { SpikeportError } from '../errors.js';
import { numel } from '../graph/ir.js';
import { CLOCK, clockDrive, type Array as NirArray, type ClockLayout, type NirGraph, type NirNode } from './graph.js';
import type { Profile, Quantisation } from './profiles.js';

export interface Deployed {
  readonly graph: NirGraph;
  /** What the target cannot express and what was done instead, one line each. */
  readonly notes: readonly string[];
  /** The weight scale of each quantised neuron node (integer weights = float weights × scale), one number or one per output channel. */
  readonly scales: ReadonlyMap<string, number | readonly number[]>;
}

type Weighted = Extract<NirNode, { type: 'Conv1d' | 'Conv2d' | 'Affine' | 'Linear' }>;
const isWeighted = (n: NirNode | undefined): n is Weighted =>
  !!n && (n.type === 'Conv1d' || n.type === 'Conv2d' || n.type === 'Affine' || n.type === 'Linear');

/** Round half to even, as numpy's and torch's round do. */
export function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** The integer a target makes of a scaled weight. */
export function toInteger(v: number, rounding: Quantisation['rounding']): number {
  return rounding === 'truncate' ? Math.trunc(v) : roundHalfEven(v);
}

/**
 * The scale that fits values into `bits` signed bits as sinabs' DYNAP-CNN discretisation does:
 * the largest value to 2^(bits−1) − 1, unless the most negative one, at −2^(bits−1), is the
 * tighter fit.
 */
export function signedScale(values: readonly number[], bits: number): number {
  const lo = -(2 ** (bits - 1));
  const hi = 2 ** (bits - 1) - 1;
  let min = Infinity;
  let max = -Infinity;
  for (const v of values) {
    min = Math.min(min, v);
    max = Math.max(max, v);
  }
  return Math.abs(min) <= Math.abs(max) * Math.abs(lo / hi) ? Math.abs(hi / max) : Math.abs(lo / min);
}

/** The largest weight integer of `bits` signed bits (the symmetric range, as the importers use). */
export const weightMax = (bits: number): number => 2 ** (bits - 1) - 1;

export interface DeployOptions {
  /**
   * The graph's float weights become integers as the importer makes them (a file from another
   * tool); otherwise spikeport writes the integers (its own rounding where the profile has one).
   */
  readonly byImporter?: boolean;
  /**
   * The graph's θ/2 start (toNir's clocks): on an integer target spikeport spreads a start whose
   * weights are larger than the layer's own over more clock neurons, so that the layer's weights
   * set the population's scale.
   */
  readonly clocks?: ClockLayout;
}

/** A Scale's factors as one per channel (C of them, outermost axis), or null when they vary within a channel. */
function channelScale(scale: NirArray, C: number): number[] | null {
  if (scale.data.length % C !== 0) return null;
  const per = scale.data.length / C;
  const c = Array.from({ length: C }, (_, k) => scale.data[k * per]);
  return scale.data.every((v, i) => v === c[Math.floor(i / per)]) ? c : null;
}

export function deployFor(input: NirGraph, profile: Profile, opts: DeployOptions = {}): Deployed {
  const nodes = new Map(input.nodes);
  let edges = input.edges.map(([a, b]) => [a, b] as [string, string]);
  const notes: string[] = [];
  const scales = new Map<string, number | readonly number[]>();
  const into = (name: string): string[] => edges.filter(([, b]) => b === name).map(([a]) => a);
  const from = (name: string): string[] => edges.filter(([a]) => a === name).map(([, b]) => b);
  const q = profile.quantisation;

  // Average pooling as a sum pool, its 1/k² in the weights that read it (through a Flatten).
  if (profile.pool === 'SumPool2d' || q) {
    for (const [name, n] of input.nodes) {
      if (n.type !== 'AvgPool2d') continue;
      const k = n.kernelSize[0] * n.kernelSize[1];
      const readers: string[] = [];
      const walk = (x: string): boolean =>
        from(x).every((c) => {
          const cn = nodes.get(c);
          if (cn?.type === 'Flatten') return walk(c);
          if (isWeighted(cn) && into(c).length === 1) {
            readers.push(c);
            return true;
          }
          return false;
        });
      if (!walk(name)) {
        notes.push(`${name}: average pooling kept (what reads it is not a layer with weights of its own)`);
        continue;
      }
      nodes.set(name, { ...n, type: 'SumPool2d' });
      for (const r of readers) {
        const w = nodes.get(r) as Weighted;
        nodes.set(r, { ...w, weight: { dims: w.weight.dims, data: w.weight.data.map((v) => v / k) } });
      }
      notes.push(`${name}: AvgPool2d written as SumPool2d, its 1/${k} folded into ${readers.join(', ')}`);
    }
  }

  if (profile.affineOnly) {
    let count = 0;
    for (const [name, n] of nodes) {
      if (n.type !== 'Linear') continue;
      nodes.set(name, {
        type: 'Affine',
        weight: n.weight,
        bias: { dims: [n.weight.dims[0]], data: new Float32Array(n.weight.dims[0]) },
      });
      count++;
    }
    if (count)
      notes.push(
        `${count} Linear node${count > 1 ? 's' : ''} written as Affine with zero bias (${profile.name} reads Affine)`,
      );
  }

  // A Scale node (a residual branch brought to another θ) for an importer that reads none: folded
  // into the layer with weights that feeds it (its output channels scaled), or else written as a
  // 1×1 convolution (a diagonal Affine for a vector) with the scale on its diagonal: the same
  // numbers from nodes the importer reads.
  if (!profile.readsScale) {
    for (const [name, n] of [...nodes]) {
      if (n.type !== 'Scale') continue;
      // A Scale read only by the graph's Output is the host's (a readout scaled back), not the importer's.
      if (from(name).every((c) => nodes.get(c)?.type === 'Output')) continue;
      const shape = n.scale.dims;
      const srcs = into(name);
      const src = srcs.length === 1 ? srcs[0] : null;
      const w = src === null ? undefined : nodes.get(src);
      const folded =
        isWeighted(w) && src !== null && from(src).length === 1 ? channelScale(n.scale, w.weight.dims[0]) : null;
      if (folded && isWeighted(w) && src !== null) {
        const each = w.weight.data.length / w.weight.dims[0];
        const weight = { dims: w.weight.dims, data: w.weight.data.map((v, i) => v * folded[Math.floor(i / each)]) };
        nodes.set(
          src,
          w.type === 'Linear'
            ? { ...w, weight }
            : { ...w, weight, bias: { dims: w.bias.dims, data: w.bias.data.map((v, c) => v * folded[c]) } },
        );
        nodes.delete(name);
        edges = edges.filter(([, b]) => b !== name).map(([a, b]) => (a === name ? [src, b] : [a, b]));
        notes.push(`${name}: Scale folded into ${src} (${profile.name}'s importer reads no Scale node)`);
        continue;
      }
      const C = shape[0];
      const perChannel = shape.length >= 1 && shape.length <= 3 ? channelScale(n.scale, C) : null;
      if (!perChannel)
        throw new SpikeportError(
          'unsupported-model',
          `${name}: ${profile.name}'s importer reads no Scale node, and this one's factors vary within a channel: the network has no ${profile.name} form (the generic profile writes the Scale)`,
        );
      const k = shape.length - 1; // spatial axes: 0 (a vector), 1 or 2
      const weight = new Float32Array(C * C);
      for (let c = 0; c < C; c++) weight[c * C + c] = perChannel[c];
      const bias = { dims: [C], data: new Float32Array(C) };
      nodes.set(
        name,
        k === 0
          ? { type: 'Affine', weight: { dims: [C, C], data: weight }, bias }
          : {
              type: k === 1 ? 'Conv1d' : 'Conv2d',
              weight: { dims: [C, C, ...Array<number>(k).fill(1)], data: weight },
              bias,
              stride: Array<number>(k).fill(1),
              padding: Array<number>(k).fill(0),
              dilation: Array<number>(k).fill(1),
              groups: 1,
              inputShape: shape.slice(1),
            },
      );
      notes.push(
        `${name}: Scale written as a ${k === 0 ? 'diagonal Affine' : `1×1 ${k === 1 ? 'Conv1d' : 'Conv2d'}`} of ${C} channels (${profile.name}'s importer reads no Scale node)`,
      );
    }
  }

  // One threshold per IF node: per-channel thresholds into the weights of the layers feeding it.
  const weightsOf = (ifName: string): string[] | null => {
    const srcs = into(ifName);
    return srcs.every((s) => isWeighted(nodes.get(s)) && from(s).length === 1) ? srcs : null;
  };
  if (profile.scalarThreshold) {
    for (const [name, n] of nodes) {
      if (n.type !== 'IF') continue;
      const th = n.vThreshold.data;
      if (th.every((v) => v === th[0])) continue;
      const srcs = weightsOf(name);
      const C = n.vThreshold.dims[0] ?? 1;
      const per = th.length / C;
      const perChannel = Array.from({ length: C }, (_, c) => th[c * per]);
      const channelWise = th.every((v, i) => v === perChannel[Math.floor(i / per)]);
      if (!srcs || !channelWise) {
        notes.push(`${name}: per-neuron thresholds kept (its input is not only weighted layers of its own)`);
        continue;
      }
      for (const s of srcs) {
        const w = nodes.get(s) as Weighted;
        const out = w.weight.dims[0];
        const each = w.weight.data.length / out;
        const weight = { dims: w.weight.dims, data: w.weight.data.map((v, i) => v / perChannel[Math.floor(i / each)]) };
        const bias =
          w.type === 'Linear' ? null : { dims: w.bias.dims, data: w.bias.data.map((v, c) => v / perChannel[c]) };
        nodes.set(s, bias && w.type !== 'Linear' ? { ...w, weight, bias } : { ...w, weight });
      }
      const ones = (a: NirArray): NirArray => ({ dims: a.dims, data: new Float32Array(a.data.length).fill(1) });
      nodes.set(name, {
        ...n,
        vThreshold: ones(n.vThreshold),
        vReset: { dims: n.vReset.dims, data: n.vReset.data.map((v, i) => v / th[i]) },
      });
      notes.push(
        `${name}: per-channel thresholds folded into ${srcs.join(', ')} (${profile.name} has one threshold per layer)`,
      );
    }
  }

  if (q && opts.clocks && !opts.byImporter) {
    const spread = spreadStart(nodes, into, from, opts.clocks);
    if (spread.populations)
      notes.push(
        `θ/2 start spread over up to ${spread.pairs} on/late clock pairs per position in ${spread.populations} population${spread.populations > 1 ? 's' : ''} (+${spread.neurons} clock neurons per sample): its weights, p/k each, are no larger than the layer's own, which set the integer scale`,
      );
  }

  if (q) {
    const max = weightMax(q.bits);
    const rounding = opts.byImporter ? q.rounding : (q.written ?? q.rounding);
    let skipped = 0;
    for (const [name, n] of [...nodes]) {
      if (n.type !== 'IF' && n.type !== 'Output') continue;
      const srcs = into(name);
      if (srcs.length === 0 || !srcs.every((s) => isWeighted(nodes.get(s)))) {
        if (n.type === 'IF') skipped++;
        continue;
      }
      const ws = srcs.map((s) => nodes.get(s) as Weighted);
      let wMax = 0;
      for (const w of ws) for (const v of w.weight.data) wMax = Math.max(wMax, Math.abs(v));
      let bMax = 0;
      for (const w of ws) if (w.type !== 'Linear') for (const v of w.bias.data) bMax = Math.max(bMax, Math.abs(v));
      if (wMax === 0) continue;
      let scale = max / wMax;
      // Speck (sinabs' discretize): one scale for weights and bias, each fitted to the signed range.
      if (q.bias === 'bits') {
        scale = signedScale(
          ws.flatMap((w) => [...w.weight.data]),
          q.bits,
        );
        const b = ws.flatMap((w) => (w.type === 'Linear' ? [] : [...w.bias.data]));
        if (bMax > 0) scale = Math.min(scale, signedScale(b, q.bits));
      }
      // One scale per output channel where the profile allows it: a channel of small weights keeps all its steps.
      const C = ws[0].weight.dims[0];
      const neurons = n.type === 'IF' ? n.vThreshold.data.length : numel(n.shape);
      const channel =
        q.per === 'channel' &&
        q.threshold === 'float' &&
        ws.every((w) => w.weight.dims[0] === C) &&
        neurons % C === 0 &&
        (n.type !== 'IF' || n.vReset.data.length === neurons)
          ? Array.from({ length: C }, (_, c) => {
              let m = 0;
              for (const w of ws) {
                const each = w.weight.data.length / C;
                for (let i = c * each; i < (c + 1) * each; i++) m = Math.max(m, Math.abs(w.weight.data[i]));
              }
              return m > 0 ? max / m : scale;
            })
          : null;
      const at = (c: number): number => (channel ? channel[c] : scale);
      const perNeuron = neurons / C;
      const bias = (v: number, c: number): number => (q.bias === 'float' ? v * at(c) : roundHalfEven(v * at(c)));
      for (const [j, s] of srcs.entries()) {
        const w = ws[j];
        const each = w.weight.data.length / w.weight.dims[0];
        const weight = {
          dims: w.weight.dims,
          data: w.weight.data.map((v, i) => toInteger(v * at(Math.floor(i / each)), rounding)),
        };
        nodes.set(
          s,
          w.type === 'Linear'
            ? { ...w, weight }
            : { ...w, weight, bias: { dims: w.bias.dims, data: w.bias.data.map(bias) } },
        );
      }
      scales.set(name, channel ?? scale);
      if (n.type === 'IF') {
        const th = (v: number, i: number): number =>
          q.threshold === 'integer' ? Math.max(1, roundHalfEven(v * scale)) : v * at(Math.floor(i / perNeuron));
        nodes.set(name, {
          ...n,
          vThreshold: { dims: n.vThreshold.dims, data: n.vThreshold.data.map(th) },
          vReset: { dims: n.vReset.dims, data: n.vReset.data.map((v, i) => v * at(Math.floor(i / perNeuron))) },
        });
      } else {
        // The readout in the target's integers, scaled back on the host.
        const back = 'readout_scale';
        nodes.set(back, {
          type: 'Scale',
          scale: {
            dims: n.shape,
            data: Float32Array.from({ length: numel(n.shape) }, (_, i) => 1 / at(Math.floor(i / perNeuron))),
          },
        });
        edges = edges.map(([a, b]) => (b === name ? [a, back] : [a, b]));
        edges.push([back, name]);
        notes.push(
          `readout: ${q.bits}-bit weights, the output scaled back by ${channel ? "each channel's 1/scale" : `1/${fmt(scale)}`} on the host`,
        );
      }
    }
    notes.push(
      `weights as ${q.bits}-bit integers (${rounding === 'truncate' ? 'cast toward zero' : rounding !== q.rounding ? `rounded to nearest by spikeport; the largest is ±${max}, so the importer's scale is 1 and its cast toward zero keeps them` : 'rounded to nearest'}), ${q.per === 'channel' && q.threshold === 'float' ? `one scale per output channel (${max}/max |w| of the channel's incoming weights, per node where a node's thresholds are not per neuron)` : `one scale per neuron node (${max}/max |w|${q.bias === 'bits' ? ', or the bias if larger' : ''})`}; thresholds ${q.threshold === 'integer' ? 'as integers' : 'scaled alike, float'}; bias ${q.bias === 'float' ? 'scaled, float' : 'as integers'}${q.membrane ? `; membrane held within ±${fmt(q.membrane)}` : ''}`,
    );
    if (skipped)
      notes.push(
        `${skipped} IF node${skipped > 1 ? 's' : ''} left in float: an input that is not a weighted layer (a skip connection or a scale node)`,
      );
  }

  const metadata: Record<string, string> = { ...input.metadata };
  for (const [k, v] of scales) metadata[`spikeport.scale.${k}`] = typeof v === 'number' ? String(v) : JSON.stringify(v);
  if (q) metadata['spikeport.weight_bits'] = String(q.bits);
  if (notes.length) metadata['spikeport.notes'] = JSON.stringify(notes);
  return { graph: { nodes, edges, metadata }, notes, scales };
}

type IfNode = Extract<NirNode, { type: 'IF' }>;

/** The most on/late clock pairs a start is spread over (clock neurons per position: twice that). */
export const MAX_START_PAIRS = 8;

/**
 * A start layer whose weights (±p) are larger than its IF node's other weights sets the
 * population's integer scale (one per population: largest |w| → the largest integer), leaving
 * the layer's own weights fewer steps. Given as k on/late pairs of weight p/k each, with k the
 * smallest that keeps p/k within the layer's largest weight, it delivers the same p at step 1
 * and nothing after (k at most MAX_START_PAIRS). The clock grows to the most pairs any of its
 * readers needs.
 */
function spreadStart(
  nodes: Map<string, NirNode>,
  into: (name: string) => string[],
  from: (name: string) => string[],
  clocks: ClockLayout,
): { populations: number; pairs: number; neurons: number } {
  const largest = (names: readonly string[]): number => {
    let m = 0;
    for (const s of names) for (const v of (nodes.get(s) as Weighted).weight.data) m = Math.max(m, Math.abs(v));
    return m;
  };
  const pairs = new Map<string, number>();
  for (const [name, n] of nodes) {
    if (n.type !== 'IF') continue;
    const srcs = into(name);
    if (!srcs.every((s) => isWeighted(nodes.get(s)))) continue;
    const starts = srcs.filter((s) => clocks.pulses.has(s) && nodes.has(clocks.pulses.get(s) as string));
    const own = largest(srcs.filter((s) => !clocks.pulses.has(s)));
    const start = largest(starts);
    if (!starts.length || own === 0 || start <= own) continue;
    for (const s of starts) pairs.set(s, Math.min(MAX_START_PAIRS, Math.ceil(start / own)));
  }
  const perClock = new Map<string, number>();
  for (const [pulse, k] of pairs) {
    const c = clocks.pulses.get(pulse) as string;
    perClock.set(c, Math.max(perClock.get(c) ?? 1, k));
  }
  let neurons = 0;
  for (const [clock, K] of perClock) {
    const driveName = clocks.drives.get(clock);
    const drive = driveName === undefined ? undefined : nodes.get(driveName);
    const ifNode = nodes.get(clock);
    if (!isWeighted(drive) || drive.type === 'Linear' || ifNode?.type !== 'IF' || driveName === undefined) continue;
    const old = ifNode.vThreshold.dims[0];
    const at = ifNode.vThreshold.data.length / old;
    const rest = drive.weight.dims.slice(1);
    const each = drive.weight.data.length / drive.weight.dims[0];
    nodes.set(driveName, {
      ...drive,
      weight: { dims: [2 * K, ...rest], data: new Float32Array(2 * K * each) },
      bias: { dims: [2 * K], data: clockDrive(K) },
    } as Weighted);
    const dims = [2 * K, ...ifNode.vThreshold.dims.slice(1)];
    const fill = (v: number): NirArray => ({ dims, data: new Float32Array(2 * K * at).fill(v) });
    nodes.set(clock, { type: 'IF', r: fill(1), vThreshold: fill(CLOCK), vReset: fill(0) } satisfies IfNode);
    neurons += (2 * K - old) * at;
    for (const pulse of from(clock)) {
      const w = nodes.get(pulse);
      if (!isWeighted(w) || clocks.pulses.get(pulse) !== clock) continue;
      const [C, cin] = w.weight.dims;
      const k = pairs.get(pulse) ?? 1;
      const data = new Float32Array(C * 2 * K);
      for (let c = 0; c < C; c++) {
        // The on weight of the clock as built (cin/2 on channels first, then as many late ones).
        const p = w.weight.data[c * cin];
        for (let j = 0; j < k; j++) {
          data[c * 2 * K + j] = p / k;
          data[c * 2 * K + K + j] = -p / k;
        }
      }
      nodes.set(pulse, { ...w, weight: { dims: [C, 2 * K, ...w.weight.dims.slice(2)], data } } as Weighted);
    }
  }
  const populations = new Set([...pairs.keys()].map((p) => from(p)).flat()).size;
  return { populations, pairs: Math.max(1, ...perClock.values()), neurons };
}

const fmt = (v: number): string => (Number.isInteger(v) ? String(v) : v.toPrecision(4));
