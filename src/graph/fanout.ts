/**
 * What a weighted layer costs (docs/algorithm.md §6): multiply-accumulates per sample for the ANN, and per
 * input element its fan-out — how many multiply-accumulates that element takes part in — so
 * that a spike arriving there costs exactly that many synaptic operations (accumulates).
 * Borders, strides, dilations and groups are counted exactly: Σ fan-out = MACs.
 */
import type { Graph, Node } from './ir.js';
import { attrInt, numel } from './ir.js';
import { SpikeportError } from '../errors.js';

function ints(n: Node, name: string): readonly number[] | null {
  const a = n.attrs[name];
  return a && a.kind === 'ints' ? a.value : null;
}

function autoPad(n: Node): string {
  const a = n.attrs.auto_pad;
  return a && a.kind === 'string' ? a.value : 'NOTSET';
}

interface ConvGeometry {
  readonly groups: number;
  readonly cin: number;
  readonly cout: number;
  readonly inSpatial: readonly number[];
  readonly outSpatial: readonly number[];
  readonly kernel: readonly number[];
  readonly strides: readonly number[];
  readonly dilations: readonly number[];
  /** Padding before each spatial axis. */
  readonly padBegin: readonly number[];
}

function convGeometry(g: Graph, n: Node, inShape: readonly number[], outShape: readonly number[]): ConvGeometry {
  const w = g.initializers.get(n.inputs[1]);
  const rank = inShape.length - 1;
  const kernel = ints(n, 'kernel_shape') ?? (w ? w.dims.slice(2) : null);
  if (!kernel)
    throw new SpikeportError(
      'unsupported-model',
      `${n.opType} node "${n.name}": its kernel shape is unknown (no kernel_shape attribute and the weights are not a constant)`,
    );
  const strides = ints(n, 'strides') ?? new Array<number>(rank).fill(1);
  const dilations = ints(n, 'dilations') ?? new Array<number>(rank).fill(1);
  const inSpatial = inShape.slice(1);
  const outSpatial = outShape.slice(1);
  const pads = ints(n, 'pads');
  const mode = autoPad(n);
  const padBegin = inSpatial.map((I, a) => {
    if (mode === 'NOTSET') return pads ? pads[a] : 0;
    if (mode === 'VALID') return 0;
    const span = (kernel[a] - 1) * dilations[a] + 1;
    const total =
      n.opType === 'Conv'
        ? Math.max(0, (outSpatial[a] - 1) * strides[a] + span - I)
        : Math.max(0, (I - 1) * strides[a] + span - outSpatial[a]);
    return mode === 'SAME_LOWER' ? Math.ceil(total / 2) : Math.floor(total / 2);
  });
  return {
    groups: attrInt(n, 'group', 1),
    cin: inShape[0],
    cout: outShape[0],
    inSpatial,
    outSpatial,
    kernel,
    strides,
    dilations,
    padBegin,
  };
}

/** Per spatial axis: how many (output, kernel tap) pairs read each input position. */
function axisCounts(c: ConvGeometry, transposed: boolean): Float64Array[] {
  return c.inSpatial.map((I, a) => {
    const counts = new Float64Array(I);
    const O = c.outSpatial[a];
    for (let k = 0; k < c.kernel[a]; k++) {
      const off = k * c.dilations[a] - c.padBegin[a];
      if (transposed) {
        // input i writes output i·s + k·d − p
        for (let i = 0; i < I; i++) {
          const o = i * c.strides[a] + off;
          if (o >= 0 && o < O) counts[i]++;
        }
      } else {
        // output o reads input o·s + k·d − p
        for (let o = 0; o < O; o++) {
          const i = o * c.strides[a] + off;
          if (i >= 0 && i < I) counts[i]++;
        }
      }
    }
    return counts;
  });
}

/** Outer product of per-axis counts, repeated over channels and scaled by `perChannel`. */
function expand(counts: readonly Float64Array[], channels: number, perChannel: number): Float32Array {
  let plane = Float64Array.of(1);
  for (const c of counts) {
    const next = new Float64Array(plane.length * c.length);
    for (let i = 0; i < plane.length; i++) for (let j = 0; j < c.length; j++) next[i * c.length + j] = plane[i] * c[j];
    plane = next;
  }
  const out = new Float32Array(channels * plane.length);
  for (let ch = 0; ch < channels; ch++)
    for (let i = 0; i < plane.length; i++) out[ch * plane.length + i] = plane[i] * perChannel;
  return out;
}

/**
 * Fan-out of every input element of one sample (input 0 of the layer), as a flat array of the
 * input's per-sample shape. Shapes are per sample (no batch axis).
 */
export function fanout(g: Graph, n: Node, inShape: readonly number[], outShape: readonly number[]): Float32Array {
  switch (n.opType) {
    case 'Conv': {
      const c = convGeometry(g, n, inShape, outShape);
      return expand(axisCounts(c, false), c.cin, c.cout / c.groups);
    }
    case 'ConvTranspose': {
      const c = convGeometry(g, n, inShape, outShape);
      return expand(axisCounts(c, true), c.cin, c.cout / c.groups);
    }
    case 'Gemm':
    case 'MatMul':
      // Each input value meets every column of the weight: the output's last axis.
      return new Float32Array(numel(inShape)).fill(outShape[outShape.length - 1] ?? 1);
    default:
      throw new Error(`fanout: ${n.opType} is not a weighted layer`);
  }
}

/** Multiply-accumulates of one sample through the layer (= Σ fan-out; taps on padding cost nothing). */
export function macs(g: Graph, n: Node, inShape: readonly number[], outShape: readonly number[]): number {
  if (n.opType === 'Gemm' || n.opType === 'MatMul') return numel(outShape) * (inShape[inShape.length - 1] ?? 1);
  return fanout(g, n, inShape, outShape).reduce((a, b) => a + b, 0);
}
