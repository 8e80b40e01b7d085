/**
 * A NIR graph as a spikeport step graph (ONNX, one time step per call), with the IF neurons a
 * target profile says: start at 0, integrate v ← v + r·I, fire (one spike where v > θ, or
 * ⌊v/θ⌋ spikes where v ≥ θ), subtract the threshold or set v_reset, hold the membrane within the
 * profile's floor and range. The same path simulates a file made by `export nir`, a file made
 * by another tool, and `--as-target`; the graph is checked node by node first (a file is
 * untrusted input): one line naming the node for an unknown primitive, inconsistent shapes, or
 * a cycle (NIR's cycles need a delay, which spikeport does not simulate).
 */
import type { Graph } from '../graph/ir.js';
import { floatTensor, numel } from '../graph/ir.js';
import { GraphBuilder, floatInput } from '../onnx/builder.js';
import { SNN_FORMAT, siteState, spikesOutput, type SiteSpec, type SnnSpec, type StateSpec } from '../snn/format.js';
import { SpikeportError } from '../errors.js';
import type { NirGraph, NirNode } from './graph.js';
import type { Profile } from './profiles.js';

export interface NirStep {
  readonly graph: Graph;
  readonly spec: SnnSpec;
  /** The IF node of each site of the spec, in order. */
  readonly ifNodes: readonly string[];
  /** Each node's output tensor in the graph (an IF's: its spikes per neuron). */
  readonly values: ReadonlyMap<string, string>;
}

/** The input and readout names of the step graph built from a NIR file. */
export const NIR_INPUT = 'input';
export const NIR_READOUT = 'output';

/** The most elements one tensor of a NIR graph may hold per sample (2^24: 64 MiB of float32). */
export const NIR_MAX_ELEMENTS = 2 ** 24;

/** Nodes in an order where every node comes after the nodes feeding it; a cycle is refused. */
export function nirOrder(g: NirGraph, where: string): string[] {
  const preds = new Map<string, string[]>([...g.nodes.keys()].map((k) => [k, []]));
  for (const [a, b] of g.edges) {
    if (!g.nodes.has(a) || !g.nodes.has(b))
      throw new SpikeportError('invalid-file', `${where}: edge ${a} → ${b} names a node the graph does not have`);
    (preds.get(b) as string[]).push(a);
  }
  const done: string[] = [];
  const state = new Map<string, 1 | 2>(); // 1: on the path, 2: done
  for (const start of g.nodes.keys()) {
    if (state.has(start)) continue;
    // Iterative depth-first search: a hostile file may chain many nodes.
    const stack: [string, number][] = [[start, 0]];
    state.set(start, 1);
    while (stack.length) {
      const top = stack[stack.length - 1];
      const ps = preds.get(top[0]) as string[];
      if (top[1] < ps.length) {
        const p = ps[top[1]++];
        const s = state.get(p);
        if (s === 1)
          throw new SpikeportError(
            'invalid-file',
            `${where}: the graph has a cycle through "${p}" without a delay (spikeport simulates feed-forward NIR graphs)`,
          );
        if (s === undefined) {
          state.set(p, 1);
          stack.push([p, 0]);
        }
      } else {
        state.set(top[0], 2);
        done.push(top[0]);
        stack.pop();
      }
    }
  }
  return done;
}

const isInt = (v: number, min: number): boolean => Number.isInteger(v) && v >= min && v <= NIR_MAX_ELEMENTS;

/** The output shape (one sample) of `node` given its input's, every field checked against it. */
function outputShape(name: string, node: NirNode, s: readonly number[], where: string): number[] {
  const bad = (what: string): never => {
    throw new SpikeportError('invalid-file', `${where}: node "${name}" (${node.type}): ${what}`);
  };
  const shape = (v: readonly number[]): string => `[${v.join(', ')}]`;
  const ints = (k: string, v: readonly number[], n: number, min: number): void => {
    if (v.length !== n || v.some((x) => !isInt(x, min))) bad(`${k} must be ${n} integers ≥ ${min}, not ${shape(v)}`);
  };
  const params = (k: string, a: { dims: readonly number[]; data: Float32Array }, per: number): void => {
    if (a.data.length !== per && a.data.length !== 1)
      bad(`${k} has ${a.data.length} values for an input of ${per} (${shape(s)})`);
    if (a.data.some((v) => !Number.isFinite(v))) bad(`${k} has a value that is not finite`);
  };
  switch (node.type) {
    case 'Input':
      return [...s];
    case 'Output':
      if (node.shape.length && numel(node.shape) !== numel(s))
        bad(`its shape ${shape(node.shape)} does not fit its input ${shape(s)}`);
      return [...s];
    case 'IF': {
      const per = numel(s);
      params('r', node.r, per);
      params('v_threshold', node.vThreshold, per);
      params('v_reset', node.vReset, per);
      if (node.vThreshold.data.some((v) => v <= 0)) bad('v_threshold must be > 0');
      return [...s];
    }
    case 'Scale':
      if (node.scale.data.length !== numel(s) && node.scale.data.length !== 1)
        bad(`scale has ${node.scale.data.length} values for an input of ${numel(s)} (${shape(s)})`);
      if (node.scale.data.some((v) => !Number.isFinite(v))) bad('scale has a value that is not finite');
      return [...s];
    case 'Affine':
    case 'Linear': {
      const [out, inn] = node.weight.dims;
      if (node.weight.dims.length !== 2 || !isInt(out, 1) || !isInt(inn, 1)) bad('weight must be a matrix');
      if (s.length !== 1 || s[0] !== inn) bad(`weight takes ${inn} inputs, its input is ${shape(s)}`);
      if (node.type === 'Affine' && node.bias.data.length !== out)
        bad(`bias has ${node.bias.data.length} values for ${out} outputs`);
      if (node.weight.data.some((v) => !Number.isFinite(v))) bad('weight has a value that is not finite');
      return [out];
    }
    case 'Flatten':
      if (!((node.startDim === 0 || node.startDim === 1) && node.endDim === -1))
        bad(
          `only flattening every axis of a sample is read (start_dim 0 or 1, end_dim −1), not ${node.startDim}..${node.endDim}`,
        );
      return [numel(s)];
    case 'Conv1d':
    case 'Conv2d': {
      const sp = node.type === 'Conv2d' ? 2 : 1;
      const w = node.weight.dims;
      if (w.length !== sp + 2 || w.some((d) => !isInt(d, 1))) bad(`weight must have ${sp + 2} axes, not ${shape(w)}`);
      ints('stride', node.stride, sp, 1);
      ints('padding', node.padding, sp, 0);
      ints('dilation', node.dilation, sp, 1);
      const groups = node.groups;
      if (!isInt(groups, 1) || w[0] % groups !== 0) bad(`groups ${groups} does not divide ${w[0]} output channels`);
      if (s.length !== sp + 1) bad(`its input ${shape(s)} is not [channels, ${sp === 2 ? 'height, width' : 'length'}]`);
      if (s[0] !== w[1] * groups) bad(`weight takes ${w[1] * groups} channels, its input has ${s[0]}`);
      if (node.inputShape.length && node.inputShape.join() !== s.slice(1).join())
        bad(`input_shape ${shape(node.inputShape)} is not its input's ${shape(s.slice(1))}`);
      if (node.bias.data.length !== w[0]) bad(`bias has ${node.bias.data.length} values for ${w[0]} channels`);
      if (node.weight.data.some((v) => !Number.isFinite(v)) || node.bias.data.some((v) => !Number.isFinite(v)))
        bad('a weight or bias is not finite');
      const out = s
        .slice(1)
        .map(
          (d, i) => Math.floor((d + 2 * node.padding[i] - node.dilation[i] * (w[2 + i] - 1) - 1) / node.stride[i]) + 1,
        );
      if (out.some((d) => d < 1)) bad(`its output would be empty (input ${shape(s)})`);
      return [w[0], ...out];
    }
    case 'AvgPool2d':
    case 'SumPool2d': {
      if (s.length !== 3) bad(`its input ${shape(s)} is not [channels, height, width]`);
      ints('kernel_size', node.kernelSize, 2, 1);
      ints('stride', node.stride, 2, 1);
      ints('padding', node.padding, 2, 0);
      const out = s
        .slice(1)
        .map((d, i) => Math.floor((d + 2 * node.padding[i] - node.kernelSize[i]) / node.stride[i]) + 1);
      if (out.some((d) => d < 1)) bad(`its output would be empty (input ${shape(s)})`);
      return [s[0], ...out];
    }
  }
}

/** The step graph that computes one time step of `g` as `profile`'s target does. */
export function nirStepGraph(g: NirGraph, profile: Profile, where: string): NirStep {
  const seq = nirOrder(g, where);
  const preds = new Map<string, string[]>(seq.map((k) => [k, []]));
  for (const [a, b] of g.edges) (preds.get(b) as string[]).push(a);
  const inputs = seq.filter((k) => g.nodes.get(k)?.type === 'Input');
  const outputs = seq.filter((k) => g.nodes.get(k)?.type === 'Output');
  if (inputs.length !== 1 || outputs.length !== 1)
    throw new SpikeportError(
      'invalid-file',
      `${where}: spikeport simulates graphs with one Input and one Output node (this one has ${inputs.length} and ${outputs.length})`,
    );
  const b = new GraphBuilder(17);
  const shapes = new Map<string, number[]>();
  const value = new Map<string, string>();
  const states: StateSpec[] = [];
  const sites: SiteSpec[] = [];
  const ifNodes: string[] = [];
  const full = (name: string, data: Float32Array, s: readonly number[]): string =>
    b.constant(name, data.length === 1 ? floatTensor([], data) : floatTensor([1, ...s], data));
  for (const k of seq) {
    const node = g.nodes.get(k) as NirNode;
    const from = preds.get(k) as string[];
    let s: number[];
    let x: string;
    if (node.type === 'Input') {
      if (from.length) throw new SpikeportError('invalid-file', `${where}: the Input node "${k}" has an input`);
      if (!node.shape.length || node.shape.some((d) => !isInt(d, 1)) || numel(node.shape) > NIR_MAX_ELEMENTS)
        throw new SpikeportError(
          'invalid-file',
          `${where}: the Input node's shape [${node.shape.join(', ')}] is not a shape`,
        );
      s = [...node.shape];
      x = NIR_INPUT;
    } else {
      if (from.length === 0)
        throw new SpikeportError('invalid-file', `${where}: node "${k}" (${node.type}) has no input`);
      s = shapes.get(from[0]) as number[];
      for (const p of from.slice(1)) {
        const o = shapes.get(p) as number[];
        if (o.join() !== s.join())
          throw new SpikeportError(
            'invalid-file',
            `${where}: node "${k}" sums inputs of inconsistent shapes ([${s.join(', ')}] from "${from[0]}", [${o.join(', ')}] from "${p}")`,
          );
      }
      x = value.get(from[0]) as string;
      for (const p of from.slice(1)) x = b.op('Add', [x, value.get(p) as string]);
    }
    const out = outputShape(k, node, s, where);
    if (numel(out) > NIR_MAX_ELEMENTS)
      throw new SpikeportError('invalid-file', `${where}: node "${k}" would hold ${numel(out)} values per sample`);
    shapes.set(k, out);
    let y: string;
    switch (node.type) {
      case 'Input':
        y = x;
        break;
      case 'Output':
        y = b.add('Identity', [x], {}, [NIR_READOUT])[0];
        break;
      case 'Conv1d':
      case 'Conv2d': {
        const W = b.constant('w', floatTensor(node.weight.dims, node.weight.data));
        const B = b.constant('b', floatTensor([node.weight.dims[0]], node.bias.data));
        y = b.op('Conv', [x, W, B], {
          kernel_shape: node.weight.dims.slice(2),
          strides: [...node.stride],
          pads: [...node.padding, ...node.padding],
          dilations: [...node.dilation],
          group: node.groups,
        });
        break;
      }
      case 'Affine':
      case 'Linear': {
        const W = b.constant('w', floatTensor(node.weight.dims, node.weight.data));
        const ins =
          node.type === 'Affine' ? [x, W, b.constant('b', floatTensor([node.weight.dims[0]], node.bias.data))] : [x, W];
        y = b.op('Gemm', ins, { transB: 1 });
        break;
      }
      case 'Flatten':
        y = b.op('Flatten', [x], { axis: 1 });
        break;
      case 'Scale':
        y = b.op('Mul', [x, full('scale', node.scale.data, s)]);
        break;
      case 'AvgPool2d':
        y = b.op('AveragePool', [x], {
          kernel_shape: [...node.kernelSize],
          strides: [...node.stride],
          pads: [...node.padding, ...node.padding],
          count_include_pad: 1,
        });
        break;
      case 'SumPool2d': {
        // A sum of spikes, exact: a depthwise convolution with ones.
        const [C] = s;
        const [kh, kw] = node.kernelSize;
        const ones = b.constant('ones', floatTensor([C, 1, kh, kw], new Float32Array(C * kh * kw).fill(1)));
        y = b.op('Conv', [x, ones], {
          kernel_shape: [kh, kw],
          strides: [...node.stride],
          pads: [...node.padding, ...node.padding],
          group: C,
        });
        break;
      }
      case 'IF': {
        const i = sites.length;
        const state: StateSpec = { input: siteState(i), output: `${siteState(i)}.next`, shape: s };
        states.push(state);
        y = ifNeuron(b, profile, node, x, state, s, spikesOutput(i));
        sites.push({ node: k, spikes: spikesOutput(i), neurons: numel(s), theta: [1] });
        ifNodes.push(k);
        break;
      }
    }
    value.set(k, y);
  }
  const readoutShape = shapes.get(outputs[0]) as number[];
  const inputShape = shapes.get(inputs[0]) as number[];
  const graph: Graph = {
    name: 'nir',
    nodes: b.nodes,
    initializers: b.initializers,
    inputs: [
      floatInput(NIR_INPUT, ['N', ...inputShape]),
      ...states.map((st) => floatInput(st.input, ['N', ...st.shape])),
    ],
    outputs: [
      floatInput(NIR_READOUT, ['N', ...readoutShape]),
      ...states.map((st) => floatInput(st.output, ['N', ...st.shape])),
      ...sites.map((st) => floatInput(st.spikes, [])),
    ],
    opset: 17,
    irVersion: 8,
    metadata: {},
  };
  const spec: SnnSpec = {
    format: SNN_FORMAT,
    input: NIR_INPUT,
    inputShape,
    readout: NIR_READOUT,
    readoutShape,
    states,
    sites,
    granularity: 'layer',
    maxpool: 'accumulated',
  };
  return { graph, spec, ifNodes, values: value };
}

/** One step of an IF node as the profile's target computes it; returns its spikes (a count per neuron). */
function ifNeuron(
  b: GraphBuilder,
  p: Profile,
  node: Extract<NirNode, { type: 'IF' }>,
  x: string,
  state: StateSpec,
  s: readonly number[],
  count: string,
): string {
  const c = (hint: string, a: { data: Float32Array }): string =>
    b.constant(hint, a.data.length === 1 ? floatTensor([], a.data) : floatTensor([1, ...s], a.data));
  const th = c('v_threshold', node.vThreshold);
  const current = node.r.data.every((v) => v === 1) ? x : b.op('Mul', [x, c('r', node.r)]);
  const v1 = b.op('Add', [state.input, current]);
  let spikes: string;
  let v2: string;
  if (p.spikes === 'multi') {
    spikes = b.op('Relu', [b.op('Floor', [b.op('Div', [v1, th])])]);
    v2 = b.op('Sub', [v1, b.op('Mul', [spikes, th])]);
  } else {
    const fired = b.op('Greater', [v1, th]);
    spikes = b.op('Cast', [fired], { to: 1 });
    v2 =
      p.reset === 'subtract'
        ? b.op('Sub', [v1, b.op('Mul', [spikes, th])])
        : b.op('Where', [fired, c('v_reset', node.vReset), v1]);
  }
  if (p.spikes === 'multi' && p.reset === 'zero')
    v2 = b.op('Where', [b.op('Greater', [spikes, b.scalar(0)]), c('v_reset', node.vReset), v1]);
  if (p.floor !== undefined) v2 = b.op('Max', [v2, b.op('Mul', [th, b.scalar(-p.floor)])]);
  const m = p.quantisation?.membrane;
  if (m !== undefined) v2 = b.op('Clip', [v2, b.scalar(-m), b.scalar(m)]);
  b.add('Identity', [v2], {}, [state.output]);
  b.reduce('ReduceSum', spikes, undefined, false, 'count', count);
  return spikes;
}
