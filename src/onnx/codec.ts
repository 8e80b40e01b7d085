/**
 * ModelProto bytes <-> Graph. The only module that touches protobuf.
 */
import pkg from 'onnx-proto';
import type { Attr, DType, Dim, Graph, Node, Tensor, TensorData, ValueInfo } from '../graph/ir.js';
import { DTYPE_OF_ONNX_CODE, ONNX_CODE_OF_DTYPE } from '../graph/ir.js';
import { SpikeportError } from '../errors.js';
import { checkAttributes } from '../graph/attributes.js';

const { onnx } = pkg;
type Long = { toNumber(): number; toString(): string };

function num(v: number | Long | null | undefined): number {
  if (v === null || v === undefined) return 0;
  return typeof v === 'number' ? v : Number(v.toString());
}

function allocate(dtype: DType, n: number): TensorData {
  switch (dtype) {
    case 'float32':
      return new Float32Array(n);
    case 'float64':
      return new Float64Array(n);
    case 'int64':
      return new BigInt64Array(n);
    case 'int32':
      return new Int32Array(n);
    case 'int8':
      return new Int8Array(n);
    case 'uint8':
    case 'bool':
      return new Uint8Array(n);
    case 'float16':
      return new Uint16Array(n);
  }
}

const BYTES: Record<DType, number> = {
  float32: 4,
  float64: 8,
  int64: 8,
  int32: 4,
  int8: 1,
  uint8: 1,
  bool: 1,
  float16: 2,
};

export function decodeTensor(t: pkg.onnx.ITensorProto, where: string): Tensor {
  const code = t.dataType ?? 0;
  const dtype = DTYPE_OF_ONNX_CODE[code];
  if (!dtype) throw new SpikeportError('invalid-file', `unsupported tensor data type ${code} in ${where}`);
  if (usesExternalData(t)) throw externalData(where);
  const dims = (t.dims ?? []).map((d) => num(d as number | Long));
  if (dims.some((d) => !Number.isSafeInteger(d) || d < 0))
    throw new SpikeportError('invalid-file', `tensor ${where}: dims ${dims.join('x')} are not sizes`);
  const n = dims.reduce((a, b) => a * b, 1);
  // Check the claimed size against the data present before allocating anything.
  if (t.rawData && t.rawData.length > 0) {
    if (t.rawData.length !== n * BYTES[dtype]) {
      throw new SpikeportError(
        'invalid-file',
        `tensor ${where}: raw data has ${t.rawData.length} bytes, dims ${dims.join('x')} need ${n * BYTES[dtype]}`,
      );
    }
    const data = allocate(dtype, n);
    // Copy: raw bytes inside the protobuf buffer need not be aligned for a typed-array view.
    new Uint8Array(data.buffer).set(t.rawData);
    return { dtype, dims, data };
  }
  const src: ArrayLike<number | Long> =
    dtype === 'float32'
      ? (t.floatData ?? [])
      : dtype === 'float64'
        ? (t.doubleData ?? [])
        : dtype === 'int64'
          ? ((t.int64Data ?? []) as (number | Long)[])
          : (t.int32Data ?? []);
  if (src.length !== n)
    throw new SpikeportError(
      'invalid-file',
      `tensor ${where}: has ${src.length} values, dims ${dims.join('x')} need ${n}`,
    );
  const data = allocate(dtype, n);
  for (let i = 0; i < n; i++) {
    if (data instanceof BigInt64Array) data[i] = BigInt(src[i].toString());
    else data[i] = num(src[i]);
  }
  return { dtype, dims, data };
}

export function encodeTensor(name: string, t: Tensor): pkg.onnx.ITensorProto {
  const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  return { name, dataType: ONNX_CODE_OF_DTYPE[t.dtype], dims: [...t.dims], rawData: Uint8Array.from(bytes) };
}

function decodeAttr(a: pkg.onnx.IAttributeProto, where: string): Attr {
  const T = onnx.AttributeProto.AttributeType;
  switch (a.type) {
    case T.FLOAT:
      return { kind: 'float', value: a.f ?? 0 };
    case T.INT:
      return { kind: 'int', value: num(a.i as number | Long) };
    case T.STRING:
      return { kind: 'string', value: new TextDecoder().decode(a.s ?? new Uint8Array()) };
    case T.FLOATS:
      return { kind: 'floats', value: [...(a.floats ?? [])] };
    case T.INTS:
      return { kind: 'ints', value: (a.ints ?? []).map((v) => num(v as number | Long)) };
    case T.STRINGS:
      return { kind: 'strings', value: (a.strings ?? []).map((s) => new TextDecoder().decode(s)) };
    case T.TENSOR:
      return { kind: 'tensor', value: decodeTensor(a.t ?? {}, `${where} attribute ${a.name}`) };
    case T.GRAPH:
    case T.GRAPHS:
      return { kind: 'subgraph', value: a };
    default:
      return { kind: 'opaque', value: a };
  }
}

function encodeAttr(name: string, a: Attr): pkg.onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  switch (a.kind) {
    case 'float':
      return { name, type: T.FLOAT, f: a.value };
    case 'int':
      return { name, type: T.INT, i: a.value };
    case 'string':
      return { name, type: T.STRING, s: new TextEncoder().encode(a.value) };
    case 'floats':
      return { name, type: T.FLOATS, floats: [...a.value] };
    case 'ints':
      return { name, type: T.INTS, ints: [...a.value] };
    case 'strings':
      return { name, type: T.STRINGS, strings: a.value.map((s) => new TextEncoder().encode(s)) };
    case 'tensor':
      return { name, type: T.TENSOR, t: encodeTensor('', a.value) };
    case 'graph':
      return { name, type: T.GRAPH, g: encodeGraph(a.value) };
    case 'subgraph':
    case 'opaque':
      return a.value as pkg.onnx.IAttributeProto;
  }
}

function decodeValueInfo(v: pkg.onnx.IValueInfoProto): ValueInfo {
  const tt = v.type?.tensorType;
  const dtype = DTYPE_OF_ONNX_CODE[tt?.elemType ?? 1] ?? 'float32';
  const shape: Dim[] | null = tt?.shape
    ? (tt.shape.dim ?? []).map((d, i) =>
        d.dimValue !== null && d.dimValue !== undefined && num(d.dimValue as number | Long) > 0
          ? num(d.dimValue as number | Long)
          : d.dimParam || `?${i}`,
      )
    : null;
  return { name: v.name ?? '', dtype, shape };
}

function encodeValueInfo(v: ValueInfo): pkg.onnx.IValueInfoProto {
  const shape =
    v.shape === null
      ? undefined
      : {
          dim: v.shape.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })),
        };
  return { name: v.name, type: { tensorType: { elemType: ONNX_CODE_OF_DTYPE[v.dtype], shape } } };
}

function usesExternalData(t: pkg.onnx.ITensorProto): boolean {
  return t.dataLocation === 1 || (t.externalData ?? []).length > 0;
}

function externalData(where: string): SpikeportError {
  return new SpikeportError(
    'invalid-file',
    `tensor ${where} uses external data, which spikeport does not read (a location names a file outside the model); save the model with all tensors inside the file`,
  );
}

/**
 * External data anywhere a tensor can be stored is refused before anything else reads the
 * model: ONNX Runtime gets the model as bytes and would resolve a location against the working
 * directory. That is initializers and sparse initializers, and attributes of type TENSOR,
 * TENSORS, SPARSE_TENSOR and SPARSE_TENSORS (a Constant's value and sparse_value among them), in
 * the graph, in every subgraph (If/Loop/Scan bodies), in the model's functions and in its
 * training info.
 */
function refuseExternalData(g: pkg.onnx.IGraphProto, where: string): void {
  for (const t of [...(g.initializer ?? []), ...sparseParts(g.sparseInitializer)])
    if (t && usesExternalData(t)) throw externalData(`"${t.name ?? ''}" in ${where}`);
  refuseInNodes(g.node, where);
}

function sparseParts(ts: readonly (pkg.onnx.ISparseTensorProto | null | undefined)[] | null | undefined) {
  return (ts ?? []).flatMap((s) => (s ? [s.values, s.indices] : []));
}

function refuseInNodes(nodes: readonly pkg.onnx.INodeProto[] | null | undefined, where: string): void {
  for (const n of nodes ?? []) {
    for (const a of n.attribute ?? []) {
      const tensors = [a.t, ...(a.tensors ?? []), ...sparseParts([a.sparseTensor]), ...sparseParts(a.sparseTensors)];
      for (const t of tensors)
        if (t && usesExternalData(t))
          throw externalData(`of attribute ${a.name} of node "${n.name ?? ''}" in ${where}`);
      for (const sub of [a.g, ...(a.graphs ?? [])])
        if (sub) refuseExternalData(sub, `the subgraph ${a.name} of node "${n.name ?? ''}"`);
    }
  }
}

function refuseExternalDataInModel(model: pkg.onnx.IModelProto, source: string): void {
  if (model.graph) refuseExternalData(model.graph, source);
  for (const f of model.functions ?? []) refuseInNodes(f.node, `the function "${f.name ?? ''}" of ${source}`);
  for (const t of model.trainingInfo ?? []) {
    if (t.initialization) refuseExternalData(t.initialization, `the training initialization of ${source}`);
    if (t.algorithm) refuseExternalData(t.algorithm, `the training algorithm of ${source}`);
  }
}

/** Decode an ONNX file's bytes. `source` names the file in error messages. */
export function decodeModel(bytes: Uint8Array, source: string): Graph {
  let model: pkg.onnx.ModelProto;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (e) {
    throw new SpikeportError('invalid-file', `${source} is not a valid ONNX model (${(e as Error).message})`);
  }
  const g = model.graph;
  if (!g || (g.node ?? []).length === 0)
    throw new SpikeportError('invalid-file', `${source} is not a valid ONNX model (it has no graph nodes)`);
  refuseExternalDataInModel(model, source);
  const opsetEntry = (model.opsetImport ?? []).find((o) => !o.domain || o.domain === 'ai.onnx');
  const opset = num(opsetEntry?.version as number | Long | undefined);
  if (!opset) throw new SpikeportError('invalid-file', `${source} declares no default-domain opset`);
  const initializers = new Map<string, Tensor>();
  for (const t of g.initializer ?? []) initializers.set(t.name ?? '', decodeTensor(t, `initializer "${t.name}"`));
  const nodes: Node[] = (g.node ?? []).map((n, i) => {
    const name = n.name || `${n.opType}_${i}`;
    const attrs: Record<string, Attr> = {};
    for (const a of n.attribute ?? []) attrs[a.name ?? ''] = decodeAttr(a, `node "${name}"`);
    return {
      name,
      opType: n.opType ?? '',
      domain: n.domain ?? '',
      inputs: [...(n.input ?? [])],
      outputs: [...(n.output ?? [])],
      attrs,
    };
  });
  checkAttributes(nodes, source);
  const metadata: Record<string, string> = {};
  for (const p of model.metadataProps ?? []) metadata[p.key ?? ''] = p.value ?? '';
  return {
    name: g.name ?? 'graph',
    nodes,
    initializers,
    // Old exporters list initializers among the inputs too; they are not real inputs.
    inputs: (g.input ?? []).filter((v) => !initializers.has(v.name ?? '')).map(decodeValueInfo),
    outputs: (g.output ?? []).map(decodeValueInfo),
    opset,
    irVersion: num(model.irVersion as number | Long | undefined) || 7,
    metadata,
  };
}

function encodeGraph(g: Graph): pkg.onnx.IGraphProto {
  return {
    name: g.name,
    node: g.nodes.map((n) => ({
      name: n.name,
      opType: n.opType,
      domain: n.domain,
      input: [...n.inputs],
      output: [...n.outputs],
      attribute: Object.entries(n.attrs).map(([k, a]) => encodeAttr(k, a)),
    })),
    initializer: [...g.initializers].map(([name, t]) => encodeTensor(name, t)),
    input: g.inputs.map(encodeValueInfo),
    output: g.outputs.map(encodeValueInfo),
  };
}

export function encodeModel(g: Graph): Uint8Array {
  const model: pkg.onnx.IModelProto = {
    irVersion: g.irVersion,
    producerName: 'spikeport',
    opsetImport: [{ domain: '', version: g.opset }],
    metadataProps: Object.entries(g.metadata).map(([key, value]) => ({ key, value })),
    graph: encodeGraph(g),
  };
  return onnx.ModelProto.encode(model).finish();
}
