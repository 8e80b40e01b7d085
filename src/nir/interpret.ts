/**
 * A plain TypeScript simulation of a NIR graph as a target computes it, one time step at a
 * time (no ONNX Runtime): IF neurons start at 0, integrate v ← v + r·I, fire where
 * v > v_threshold, then subtract the threshold or reset to v_reset (the target's reset).
 * For checking an exported file, not for speed.
 */
import { numel } from '../graph/ir.js';
import { SpikeportError } from '../errors.js';
import type { NirGraph, NirNode } from './graph.js';
import type { Profile } from './profiles.js';

/** The neuron a simulation uses: a reset alone (one spike where v > θ), or a target profile's. */
export type NirNeuron = 'subtract' | 'zero' | Pick<Profile, 'reset' | 'spikes' | 'floor' | 'quantisation'>;

export interface NirRun {
  /** The Output node's value at every step, [T][n · outputs]. */
  readonly outputs: Float32Array[];
  /** Spikes per IF node per step, summed over the batch. */
  readonly spikes: ReadonlyMap<string, number[]>;
}

/** Nodes in an order where every node comes after the nodes feeding it. */
function order(g: NirGraph): string[] {
  const preds = new Map<string, string[]>([...g.nodes.keys()].map((k) => [k, []]));
  for (const [a, b] of g.edges) {
    if (!g.nodes.has(a) || !g.nodes.has(b))
      throw new SpikeportError('invalid-file', `NIR edge ${a} → ${b} names a node the graph does not have`);
    (preds.get(b) as string[]).push(a);
  }
  const done: string[] = [];
  const seen = new Set<string>();
  const visit = (k: string, stack: Set<string>): void => {
    if (seen.has(k)) return;
    if (stack.has(k))
      throw new SpikeportError(
        'unsupported-model',
        `NIR graph has a cycle through "${k}"; spikeport simulates feed-forward graphs`,
      );
    stack.add(k);
    for (const p of preds.get(k) as string[]) visit(p, stack);
    stack.delete(k);
    seen.add(k);
    done.push(k);
  };
  for (const k of g.nodes.keys()) visit(k, new Set());
  return done;
}

/** Run `steps` steps on a batch `x` ([n, ...input shape], the same analog input at every step). */
export function simulateNir(g: NirGraph, x: Float32Array, n: number, steps: number, neuron: NirNeuron): NirRun {
  const p = typeof neuron === 'string' ? { reset: neuron, spikes: 'single' as const } : neuron;
  const floor = 'floor' in p ? p.floor : undefined;
  const range = 'quantisation' in p ? p.quantisation?.membrane : undefined;
  const seq = order(g);
  const preds = new Map<string, string[]>(seq.map((k) => [k, []]));
  for (const [a, b] of g.edges) (preds.get(b) as string[]).push(a);
  const state = new Map<string, Float32Array>();
  const spikes = new Map<string, number[]>();
  const outputs: Float32Array[] = [];
  const shapes = new Map<string, number[]>();
  for (let t = 0; t < steps; t++) {
    const value = new Map<string, Float32Array>();
    for (const k of seq) {
      const node = g.nodes.get(k) as NirNode;
      const from = preds.get(k) as string[];
      const ins = from.map((p) => value.get(p) as Float32Array);
      let input: Float32Array;
      if (node.type === 'Input') {
        input = x;
        shapes.set(k, [...node.shape]);
      } else {
        if (ins.length === 0) throw new SpikeportError('invalid-file', `NIR node "${k}" has no input`);
        if (ins.some((v) => v.length !== ins[0].length))
          throw new SpikeportError('invalid-file', `NIR node "${k}" sums inputs of different sizes`);
        input =
          ins.length === 1
            ? ins[0]
            : ins.slice(1).reduce((acc, v) => acc.map((a, i) => a + v[i]), Float32Array.from(ins[0]));
        shapes.set(k, outShape(k, node, shapes.get(from[0]) as number[]));
      }
      value.set(k, step(k, node, input, n, state, spikes, shapes.get(from[0]) ?? []));
    }
    const out = [...g.nodes].find(([, v]) => v.type === 'Output');
    if (!out) throw new SpikeportError('invalid-file', 'NIR graph has no Output node');
    outputs.push(value.get(out[0]) as Float32Array);
  }
  return { outputs, spikes };

  function step(
    k: string,
    node: NirNode,
    x: Float32Array,
    n: number,
    st: Map<string, Float32Array>,
    sp: Map<string, number[]>,
    inShape: readonly number[],
  ): Float32Array {
    switch (node.type) {
      case 'Input':
      case 'Output':
        return x;
      case 'IF': {
        const per = numel(shapes.get(k) as number[]);
        let v = st.get(k);
        if (!v) {
          v = new Float32Array(n * per);
          st.set(k, v);
        }
        const out = new Float32Array(n * per);
        let count = 0;
        const at = (a: Float32Array, j: number): number => (a.length === 1 ? a[0] : a[j]);
        for (let i = 0; i < v.length; i++) {
          const j = i % per;
          const th = at(node.vThreshold.data, j);
          v[i] = v[i] + at(node.r.data, j) * x[i];
          const k = p.spikes === 'multi' ? Math.max(0, Math.floor(Math.fround(v[i] / th))) : v[i] > th ? 1 : 0;
          if (k > 0) {
            out[i] = k;
            count += k;
            v[i] = p.reset === 'subtract' ? v[i] - k * th : at(node.vReset.data, j);
          }
          if (floor !== undefined) v[i] = Math.max(v[i], -floor * th);
          if (range !== undefined) v[i] = Math.min(range, Math.max(-range, v[i]));
        }
        if (!sp.has(k)) sp.set(k, []);
        (sp.get(k) as number[]).push(count);
        return out;
      }
      case 'Affine':
      case 'Linear': {
        const [outN, inN] = node.weight.dims;
        const w = node.weight.data;
        const y = new Float32Array(n * outN);
        for (let s = 0; s < n; s++) {
          for (let o = 0; o < outN; o++) {
            let acc = node.type === 'Affine' ? node.bias.data[o] : 0;
            for (let i = 0; i < inN; i++) acc += w[o * inN + i] * x[s * inN + i];
            y[s * outN + o] = acc;
          }
        }
        return y;
      }
      case 'Flatten':
        return x;
      case 'Scale': {
        const per = node.scale.data.length;
        return x.map((v, i) => v * node.scale.data[i % per]);
      }
      case 'Conv1d':
      case 'Conv2d':
        return conv(node, x, n);
      case 'AvgPool2d':
      case 'SumPool2d':
        return pool(node, x, n, inShape);
    }
  }
}

/** A node's output shape (one sample) from its input's. */
function outShape(k: string, node: NirNode, s: readonly number[]): number[] {
  switch (node.type) {
    case 'Input':
    case 'Output':
    case 'IF':
    case 'Scale':
      return [...s];
    case 'Affine':
    case 'Linear':
      return [node.weight.dims[0]];
    case 'Flatten':
      return [numel(s)];
    case 'Conv1d':
    case 'Conv2d':
      return [
        node.weight.dims[0],
        ...s
          .slice(1)
          .map(
            (d, i) =>
              Math.floor(
                (d + 2 * node.padding[i] - node.dilation[i] * (node.weight.dims[2 + i] - 1) - 1) / node.stride[i],
              ) + 1,
          ),
      ];
    case 'AvgPool2d':
    case 'SumPool2d':
      if (s.length !== 3)
        throw new SpikeportError('invalid-file', `NIR node "${k}" pools a tensor of shape ${s.join('x')}`);
      return [
        s[0],
        ...s.slice(1).map((d, i) => Math.floor((d + 2 * node.padding[i] - node.kernelSize[i]) / node.stride[i]) + 1),
      ];
  }
}

function pool(
  node: Extract<NirNode, { type: 'AvgPool2d' | 'SumPool2d' }>,
  x: Float32Array,
  n: number,
  s: readonly number[],
): Float32Array {
  const [C, H, W] = s;
  const [kh, kw] = node.kernelSize;
  const [sh, sw] = node.stride;
  const [ph, pw] = node.padding;
  const OH = Math.floor((H + 2 * ph - kh) / sh) + 1;
  const OW = Math.floor((W + 2 * pw - kw) / sw) + 1;
  const y = new Float32Array(n * C * OH * OW);
  const div = node.type === 'AvgPool2d' ? kh * kw : 1;
  for (let b = 0; b < n * C; b++) {
    for (let oy = 0; oy < OH; oy++) {
      for (let ox = 0; ox < OW; ox++) {
        let acc = 0;
        for (let ky = 0; ky < kh; ky++) {
          const iy = oy * sh - ph + ky;
          if (iy < 0 || iy >= H) continue;
          for (let kx = 0; kx < kw; kx++) {
            const ix = ox * sw - pw + kx;
            if (ix >= 0 && ix < W) acc += x[(b * H + iy) * W + ix];
          }
        }
        y[(b * OH + oy) * OW + ox] = acc / div;
      }
    }
  }
  return y;
}

function conv(node: Extract<NirNode, { type: 'Conv1d' | 'Conv2d' }>, x: Float32Array, n: number): Float32Array {
  const two = node.type === 'Conv2d';
  const [cout, cinG, kh, kw = 1] = node.weight.dims;
  const [H, W = 1] = node.inputShape;
  const [sh, sw = 1] = node.stride;
  const [ph, pw = 0] = node.padding;
  const [dh, dw = 1] = node.dilation;
  const groups = node.groups;
  const cin = cinG * groups;
  const OH = Math.floor((H + 2 * ph - dh * (kh - 1) - 1) / sh) + 1;
  const OW = two ? Math.floor((W + 2 * pw - dw * (kw - 1) - 1) / sw) + 1 : 1;
  const y = new Float32Array(n * cout * OH * OW);
  const w = node.weight.data;
  const coutG = cout / groups;
  for (let s = 0; s < n; s++) {
    for (let o = 0; o < cout; o++) {
      const g = Math.floor(o / coutG);
      for (let oy = 0; oy < OH; oy++) {
        for (let ox = 0; ox < OW; ox++) {
          let acc = node.bias.data[o];
          for (let i = 0; i < cinG; i++) {
            const c = g * cinG + i;
            for (let ky = 0; ky < kh; ky++) {
              const iy = oy * sh - ph + ky * dh;
              if (iy < 0 || iy >= H) continue;
              for (let kx = 0; kx < kw; kx++) {
                const ix = ox * sw - pw + kx * dw;
                if (ix < 0 || ix >= W) continue;
                acc += w[((o * cinG + i) * kh + ky) * kw + kx] * x[((s * cin + c) * H + iy) * W + ix];
              }
            }
          }
          y[((s * cout + o) * OH + oy) * OW + ox] = acc;
        }
      }
    }
  }
  return y;
}
