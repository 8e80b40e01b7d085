/**
 * The network as plain data: what an ONNX graph says, with tensors as typed arrays.
 * Passes never mutate a Graph; they return a new one.
 */

export type DType = 'float32' | 'float64' | 'int64' | 'int32' | 'int8' | 'uint8' | 'bool' | 'float16';

/** ONNX's TensorProto.DataType code of each element type. */
export const ONNX_CODE_OF_DTYPE: Readonly<Record<DType, number>> = {
  float32: 1,
  uint8: 2,
  int8: 3,
  int32: 6,
  int64: 7,
  bool: 9,
  float16: 10,
  float64: 11,
};

/** The element type of an ONNX TensorProto.DataType code (undefined: one spikeport does not hold). */
export const DTYPE_OF_ONNX_CODE: Readonly<Record<number, DType>> = Object.fromEntries(
  Object.entries(ONNX_CODE_OF_DTYPE).map(([d, c]) => [c, d as DType]),
);

export type TensorData =
  Float32Array | Float64Array | BigInt64Array | Int32Array | Int8Array | Uint8Array | Uint16Array;

export interface Tensor {
  readonly dtype: DType;
  readonly dims: readonly number[];
  readonly data: TensorData;
}

export type Attr =
  | { readonly kind: 'float'; readonly value: number }
  | { readonly kind: 'int'; readonly value: number }
  | { readonly kind: 'string'; readonly value: string }
  | { readonly kind: 'floats'; readonly value: readonly number[] }
  | { readonly kind: 'ints'; readonly value: readonly number[] }
  | { readonly kind: 'strings'; readonly value: readonly string[] }
  | { readonly kind: 'tensor'; readonly value: Tensor }
  /** A subgraph written by spikeport (Loop bodies). */
  | { readonly kind: 'graph'; readonly value: Graph }
  /** A subgraph of the model's own (If, Loop, Scan): carried through untouched, never interpreted. */
  | { readonly kind: 'subgraph'; readonly value: unknown }
  /** Other rare kinds are carried through untouched. */
  | { readonly kind: 'opaque'; readonly value: unknown };

export interface Node {
  readonly name: string;
  readonly opType: string;
  readonly domain: string;
  /** '' marks an omitted optional input, as in ONNX. */
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly attrs: Readonly<Record<string, Attr>>;
}

export type Dim = number | string;

export interface ValueInfo {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly Dim[] | null;
}

export interface Graph {
  readonly name: string;
  readonly nodes: readonly Node[];
  readonly initializers: ReadonlyMap<string, Tensor>;
  readonly inputs: readonly ValueInfo[];
  readonly outputs: readonly ValueInfo[];
  /** The default-domain opset the graph's nodes are written for. */
  readonly opset: number;
  readonly irVersion: number;
  readonly metadata: Readonly<Record<string, string>>;
}

export function withGraph(g: Graph, change: Partial<Graph>): Graph {
  return { ...g, ...change };
}

export function attrInt(node: Node, name: string, fallback: number): number {
  const a = node.attrs[name];
  return a && a.kind === 'int' ? a.value : fallback;
}

export function attrFloat(node: Node, name: string, fallback: number): number {
  const a = node.attrs[name];
  return a && a.kind === 'float' ? a.value : fallback;
}

export function numel(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

export function floatTensor(dims: readonly number[], data: ArrayLike<number>): Tensor {
  if (data.length !== numel(dims)) throw new Error(`tensor data has ${data.length} values, dims ${dims.join('x')}`);
  return { dtype: 'float32', dims: [...dims], data: Float32Array.from(data) };
}

export function int64Tensor(dims: readonly number[], data: readonly number[]): Tensor {
  return { dtype: 'int64', dims: [...dims], data: BigInt64Array.from(data.map((v) => BigInt(v))) };
}
