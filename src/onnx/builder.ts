/**
 * A small mutable helper for writing graphs: fresh names, constants, and the ops whose
 * signature changed between opsets (reductions take `axes` as an input from opset 18,
 * ReduceSum from 13).
 */
import type { Attr, Graph, Node, Tensor, ValueInfo } from '../graph/ir.js';
import { floatTensor, int64Tensor } from '../graph/ir.js';

export type AttrInput = number | readonly number[] | string | Tensor;

function toAttr(v: AttrInput, isFloat: boolean): Attr {
  if (typeof v === 'string') return { kind: 'string', value: v };
  if (typeof v === 'number') return isFloat ? { kind: 'float', value: v } : { kind: 'int', value: v };
  if (Array.isArray(v)) return isFloat ? { kind: 'floats', value: v } : { kind: 'ints', value: v };
  return { kind: 'tensor', value: v as Tensor };
}

const FLOAT_ATTRS = new Set(['alpha', 'beta', 'epsilon', 'momentum', 'value_float', 'value_floats']);

export class GraphBuilder {
  readonly nodes: Node[] = [];
  readonly initializers = new Map<string, Tensor>();
  private counter = 0;
  private readonly taken = new Set<string>();

  constructor(
    readonly opset: number,
    existing?: Graph,
  ) {
    if (existing) {
      for (const n of existing.nodes) {
        this.taken.add(n.name);
        for (const o of n.outputs) this.taken.add(o);
      }
      for (const k of existing.initializers.keys()) this.taken.add(k);
      for (const v of existing.inputs) this.taken.add(v.name);
    }
  }

  fresh(hint: string): string {
    let name: string;
    do name = `${hint}_${this.counter++}`;
    while (this.taken.has(name));
    this.taken.add(name);
    return name;
  }

  /** Add a node; returns its output names (one fresh name per output unless given). */
  add(
    opType: string,
    inputs: readonly string[],
    attrs: Record<string, AttrInput> = {},
    outputs: number | readonly string[] = 1,
    hint?: string,
  ): string[] {
    let name: string;
    let outs: string[];
    do {
      name = this.fresh(hint ?? opType);
      const base = name;
      outs =
        typeof outputs === 'number'
          ? Array.from({ length: outputs }, (_, i) => (outputs === 1 ? `${base}_out` : `${base}_out${i}`))
          : [...outputs];
    } while (typeof outputs === 'number' && outs.some((o) => this.taken.has(o)));
    for (const o of outs) this.taken.add(o);
    const a: Record<string, Attr> = {};
    for (const [k, v] of Object.entries(attrs)) a[k] = toAttr(v, FLOAT_ATTRS.has(k));
    this.nodes.push({ name, opType, domain: '', inputs: [...inputs], outputs: outs, attrs: a });
    return outs;
  }

  /** Add one node and return its only output. */
  op(opType: string, inputs: readonly string[], attrs: Record<string, AttrInput> = {}, hint?: string): string {
    return this.add(opType, inputs, attrs, 1, hint)[0];
  }

  constant(hint: string, t: Tensor): string {
    const name = this.fresh(hint);
    this.initializers.set(name, t);
    return name;
  }

  scalar(value: number, hint = 'const'): string {
    return this.constant(hint, floatTensor([], [value]));
  }

  /** ReduceMean / ReduceMax / ReduceSum over `axes` (all axes when undefined), for this opset. */
  reduce(
    op: 'ReduceMean' | 'ReduceMax' | 'ReduceSum',
    x: string,
    axes: readonly number[] | undefined,
    keepdims: boolean,
    hint?: string,
    output?: string,
  ): string {
    const axesAsInput = op === 'ReduceSum' ? this.opset >= 13 : this.opset >= 18;
    const keep = { keepdims: keepdims ? 1 : 0 };
    const outs = output ? [output] : 1;
    if (axes === undefined) return this.add(op, [x], keep, outs, hint)[0];
    if (axesAsInput)
      return this.add(op, [x, this.constant('axes', int64Tensor([axes.length], [...axes]))], keep, outs, hint)[0];
    return this.add(op, [x], { axes, ...keep }, outs, hint)[0];
  }
}

export function floatInput(name: string, shape: ValueInfo['shape']): ValueInfo {
  return { name, dtype: 'float32', shape };
}
