/**
 * Element types of a graph's tensors, from declared inputs, initializers and a few op rules
 * (enough to tell float activations from int64 shape arithmetic). Unknown stays unknown.
 */
import { DTYPE_OF_ONNX_CODE, type DType, type Graph } from './ir.js';

const BOOL_OPS = new Set([
  'Equal',
  'Less',
  'Greater',
  'LessOrEqual',
  'GreaterOrEqual',
  'Not',
  'And',
  'Or',
  'Xor',
  'IsNaN',
  'IsInf',
]);
const INT64_OPS = new Set(['Shape', 'Size', 'NonZero', 'ArgMax', 'ArgMin']);

export function inferDtypes(g: Graph): Map<string, DType> {
  const types = new Map<string, DType>();
  for (const i of g.inputs) types.set(i.name, i.dtype);
  for (const [k, t] of g.initializers) types.set(k, t.dtype);
  for (const n of g.nodes) {
    let t: DType | undefined;
    const a = n.attrs;
    if (BOOL_OPS.has(n.opType)) t = 'bool';
    else if (INT64_OPS.has(n.opType)) t = 'int64';
    else if (n.opType === 'Cast') t = a.to?.kind === 'int' ? DTYPE_OF_ONNX_CODE[a.to.value] : undefined;
    else if (n.opType === 'Constant' || n.opType === 'ConstantOfShape') {
      const v = a.value;
      if (v?.kind === 'tensor') t = v.value.dtype;
      else if (a.value_int || a.value_ints) t = 'int64';
      else t = 'float32';
    } else if (n.opType === 'Where') t = types.get(n.inputs[1]);
    else t = n.inputs.map((i) => types.get(i)).find((x) => x !== undefined);
    if (t) for (const o of n.outputs) types.set(o, t);
  }
  return types;
}
