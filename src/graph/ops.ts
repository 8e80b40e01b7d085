/**
 * Op classes: what an ONNX op does to spikes. The converter (plan.ts), the cost model
 * (fanout.ts) and the SNN builder read these; nothing else lists op types.
 */

/** Layers with weights: they cost MACs in the ANN and synaptic operations in the SNN. */
export const WEIGHTED_OPS: ReadonlySet<string> = new Set(['Conv', 'ConvTranspose', 'Gemm', 'MatMul']);

/** Ops that are linear in their time-varying inputs, so they pass spikes on unchanged. */
export const LINEAR_OPS: ReadonlySet<string> = new Set([
  'Conv',
  'ConvTranspose',
  'Gemm',
  'MatMul',
  'Add',
  'Sub',
  'Concat',
  'Flatten',
  'Reshape',
  'Squeeze',
  'Unsqueeze',
  'Transpose',
  'Identity',
  'Dropout',
  'Pad',
  'AveragePool',
  'GlobalAveragePool',
  'Resize',
  'Upsample',
  'BatchNormalization',
  'ReduceMean',
  'ReduceSum',
  'Slice',
  'Split',
  'Gather',
  'Neg',
  'Expand',
  'Tile',
  'DepthToSpace',
  'SpaceToDepth',
]);

/** Linear only when at most one input varies (the other being a constant factor). */
export const LINEAR_IF_ONE_VARYING_OPS: ReadonlySet<string> = new Set([
  'Mul',
  'MatMul',
  'Gemm',
  'Conv',
  'ConvTranspose',
]);

/** Ops that compute shapes and indices, not activations (named in no error). */
export const STRUCTURAL_OPS: ReadonlySet<string> = new Set([
  'Constant',
  'ConstantOfShape',
  'Range',
  'Cast',
  'Equal',
  'Where',
  'Div',
  'MaxPool',
]);

/** Ops that read only the shape of their input. */
export const SHAPE_ONLY_OPS: ReadonlySet<string> = new Set(['Shape', 'Size']);

/** Ops that keep element order, so a layer behind them reads its input's elements as they are. */
export const ORDER_PRESERVING_OPS: ReadonlySet<string> = new Set([
  'Flatten',
  'Reshape',
  'Identity',
  'Squeeze',
  'Unsqueeze',
]);
