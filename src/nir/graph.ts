/**
 * NIR (the Neuromorphic Intermediate Representation) from a converted network in the unit-spike
 * form (docs/algorithm.md §9): Input, Conv1d/Conv2d, Affine/Linear, IF, AvgPool2d, Flatten,
 * Scale, Output, with edges; a node with several incoming edges sums its inputs. Also the
 * target profiles: what each importer makes of NIR's IF (its reset, no initial potential,
 * v > threshold).
 */
import type { Graph, Node, Tensor } from '../graph/ir.js';
import { attrInt, numel } from '../graph/ir.js';
import { siteState, type DecodedSnn } from '../snn/format.js';
import { SpikeportError } from '../errors.js';

/** Where the exported file will run, and so how its IF neurons reset. */
export const TARGETS = ['sinabs', 'spinnaker2', 'norse', 'generic'] as const;
export type Target = (typeof TARGETS)[number];

/** sinabs (IAF, MembraneSubtract) and SpiNNaker2 (ResetMethod.SUBTRACT) subtract the threshold; Norse and NIR's own IF reset to v_reset = 0. */
export function resetOf(target: Target): 'subtract' | 'zero' {
  return target === 'sinabs' || target === 'spinnaker2' ? 'subtract' : 'zero';
}

export function checkTarget(target: string, field = 'target'): Target {
  if (!(TARGETS as readonly string[]).includes(target)) {
    throw new SpikeportError(
      'invalid-option',
      `${field}: unknown target "${target}" (known: ${TARGETS.join(', ')})`,
      field,
    );
  }
  return target as Target;
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

const MAXPOOL =
  'NIR has no max pooling (no NIR neuron computes a max over accumulated input); retrain with average pooling, or end the spiking part before it with convert --readout';

const floats = (t: Tensor): Float32Array =>
  t.data instanceof Float32Array ? t.data : Float32Array.from(t.data as ArrayLike<number>);

/**
 * The NIR graph of a converted network in the unit-spike form. Refuses, naming the node,
 * anything NIR cannot express (max pooling above all).
 */
export function toNir(snn: DecodedSnn, target: Target, where: string): NirGraph {
  if (snn.form !== 'step')
    throw new SpikeportError(
      'invalid-file',
      `${where}: NIR export reads the step form (convert with --format step, the default)`,
    );
  if (!snn.meta.unit)
    throw new SpikeportError(
      'invalid-file',
      `${where}: NIR wants neurons with threshold 1 and 0/1 spikes; convert the ANN with --spikes unit`,
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
  const nameFor = (base: string): string => {
    const clean = base.replace(/[/\\.\s]+/g, '_').replace(/^_+/, '') || 'node';
    let name = clean;
    for (let i = 1; used.has(name) || name === 'input' || name === 'output'; i++) name = `${clean}_${i}`;
    used.add(name);
    return name;
  };
  const refuse = (n: Node, why: string): never => {
    throw new SpikeportError('unsupported-model', `cannot export node "${n.name}" (${n.opType}) to NIR: ${why}`);
  };
  const init = (name: string | undefined): Tensor | undefined => (name ? g.initializers.get(name) : undefined);

  interface Resolved {
    readonly sources: readonly string[];
    readonly shape: readonly number[];
  }
  const memo = new Map<string, Resolved>();
  const add = (name: string, node: NirNode, from: Resolved): Resolved['sources'] => {
    nodes.set(name, node);
    for (const s of from.sources) edges.push([s, name]);
    return [name];
  };

  const resolve = (t: string): Resolved => {
    const hit = memo.get(t);
    if (hit) return hit;
    let r: Resolved;
    const site = siteBySpikes.get(t);
    if (t === spec.input) {
      nodes.set('input', { type: 'Input', shape: spec.inputShape });
      r = { sources: ['input'], shape: spec.inputShape };
    } else if (site) {
      const x = resolve(site.current);
      const n = numel(x.shape);
      const full = (v: number): Array => ({ dims: x.shape, data: new Float32Array(n).fill(v) });
      r = {
        sources: add(
          nameFor(spec.sites[site.k].node),
          { type: 'IF', r: full(1), vThreshold: full(1), vReset: full(0) },
          x,
        ),
        shape: x.shape,
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
        const outSpatial = inSpatial.map(
          (d, i) => Math.floor((d + 2 * pads[i] - dilation[i] * (w.dims[2 + i] - 1) - 1) / stride[i]) + 1,
        );
        const node: NirNode = {
          type: spatial === 2 ? 'Conv2d' : 'Conv1d',
          weight: { dims: w.dims, data: floats(w) },
          bias: { dims: [cout], data: bias },
          stride,
          padding: pads.slice(0, spatial),
          dilation,
          groups,
          inputShape: inSpatial,
        };
        return { sources: add(nameFor(n.name), node, x), shape: [cout, ...outSpatial] };
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
        return { sources: add(nameFor(n.name), node, x), shape: [out] };
      }
      case 'Add': {
        const [a, b] = n.inputs;
        const ca = init(a);
        const cb = init(b);
        if (ca || cb) {
          // A bias after a Linear (MatMul + Add): one Affine.
          const [xName, c] = ca ? [b, ca] : [a, cb as Tensor];
          const p = prod.get(xName);
          const x = p && p.opType === 'MatMul' ? resolve(p.inputs[0]) : null;
          const lin = p ? memo.get(xName) : undefined;
          if (!p || !x || lin) refuse(n, 'NIR adds a constant only as the bias of a layer');
          const linNode = resolveNode(p as Node);
          const name = linNode.sources[0];
          const old = nodes.get(name) as Extract<NirNode, { type: 'Linear' }>;
          nodes.set(name, {
            type: 'Affine',
            weight: old.weight,
            bias: { dims: [old.weight.dims[0]], data: broadcast(floats(c), old.weight.dims[0]) },
          });
          return linNode;
        }
        const ra = resolve(a);
        const rb = resolve(b);
        if (ra.sources.some((s) => rb.sources.includes(s))) refuse(n, 'it adds a signal to itself');
        return { sources: [...ra.sources, ...rb.sources], shape: ra.shape };
      }
      case 'Flatten': {
        const x = resolve(n.inputs[0]);
        if (attrInt(n, 'axis', 1) !== 1) refuse(n, 'only Flatten from axis 1 (all but the batch axis) is exported');
        return {
          sources: add(nameFor(n.name), { type: 'Flatten', startDim: 0, endDim: -1, inputShape: x.shape }, x),
          shape: [numel(x.shape)],
        };
      }
      case 'AveragePool':
      case 'GlobalAveragePool': {
        const x = resolve(n.inputs[0]);
        if (x.shape.length !== 3) refuse(n, 'NIR pools in 2-d only');
        const global = n.opType === 'GlobalAveragePool';
        const kernel = global ? x.shape.slice(1) : (attr(n, 'kernel_shape') as number[]);
        const stride = global ? kernel : (attr(n, 'strides') ?? [1, 1]);
        const pads = global ? [0, 0, 0, 0] : (attr(n, 'pads') ?? [0, 0, 0, 0]);
        if (pads.some((p) => p !== 0))
          refuse(n, "NIR's average pooling with padding is ambiguous (which zeros count); pool without padding");
        if (attrInt(n, 'ceil_mode', 0) === 1) refuse(n, 'ceil_mode is not exported');
        const out = [x.shape[0], ...x.shape.slice(1).map((d, i) => Math.floor((d - kernel[i]) / stride[i]) + 1)];
        return {
          sources: add(nameFor(n.name), { type: 'AvgPool2d', kernelSize: kernel, stride, padding: [0, 0] }, x),
          shape: out,
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
        };
      }
      case 'MaxPool':
        return refuse(n, MAXPOOL);
      default: {
        // Max pooling on spikes is written as MaxPool over accumulated input, then a Sub: name the MaxPool.
        const pool = n.inputs.map((i) => prod.get(i)).find((p) => p?.opType === 'MaxPool');
        if (pool) refuse(pool, MAXPOOL);
        return refuse(n, 'NIR has no such node');
      }
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
