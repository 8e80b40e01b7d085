/**
 * A loaded model made ready for conversion: the graph passes run, the spiking part planned,
 * and the shapes the later stages need read off one ONNX Runtime pass.
 */
import path from 'node:path';
import type { Graph, ValueInfo } from '../graph/ir.js';
import { findSampleNorms, freezeSampleNorms, normName, type NormStatistics, type SampleNorm } from '../graph/norms.js';
import { numel } from '../graph/ir.js';
import { prepare } from '../graph/passes.js';
import { nodePositions, plan as makePlan, withPack, type Plan } from '../graph/plan.js';
import { WEIGHTED_OPS } from '../graph/ops.js';
import { probeShapes, type RuntimeOptions } from '../ort/session.js';
import { isNormalize, type Dataset, type Normalize } from '../data/dataset.js';
import { SpikeportError } from '../errors.js';
import type { LoadedModel } from './load.js';

export interface PreparedModel {
  readonly source: { readonly path: string; readonly sha256: string };
  readonly graph: Graph;
  readonly plan: Plan;
  readonly inputName: string;
  /** One sample's input shape (without the batch axis). */
  readonly inputShape: readonly number[];
  /** One sample's shape of every tensor the converter needs (site inputs, pools, readout). */
  readonly shapes: ReadonlyMap<string, readonly number[]>;
  readonly normalize: Normalize | null;
  /**
   * When per-sample normalisations were frozen (graph/norms.ts): the prepared graph before, the
   * original ANN; the normalisations' names; the statistics they were frozen with.
   */
  readonly original?: Graph;
  readonly norms?: readonly string[];
  readonly frozen?: readonly NormStatistics[];
}

export interface PrepareOptions extends RuntimeOptions {
  /** The readout node, or one per output (default: found, graph/plan.ts). */
  readonly readoutNode?: string | readonly string[];
  /** Overrides the model's stored normalisation. */
  readonly normalize?: Normalize;
  /** Statistics to freeze the model's per-sample normalisations with (calibrate/norms.ts measures them). */
  readonly frozenNorms?: readonly NormStatistics[];
}

/** The most values one input sample may have (a 3×1024×1024 image has 3·2²⁰; a 16-frame 3×224×224 clip 2.4·10⁶). */
export const MAX_INPUT_VALUES = 2 ** 26;

/** The oldest default-domain opset spikeport converts (the calibration graphs need broadcasting Min). */
export const MIN_OPSET = 8;

/** A model's graph checked for conversion, with its batch axis made dynamic, and its input. */
function checkedGraph(m: LoadedModel): { graph: Graph; input: ValueInfo; inputShape: number[] } {
  if (m.graph.opset < MIN_OPSET) {
    throw new SpikeportError(
      'unsupported-model',
      `${path.basename(m.path)} uses opset ${m.graph.opset}; spikeport converts opset ${MIN_OPSET} and newer (export it again, e.g. torch.onnx.export(..., opset_version=13))`,
    );
  }
  const floatInputs = m.graph.inputs.filter((i) => i.dtype === 'float32');
  if (floatInputs.length !== 1 || m.graph.inputs.length !== 1) {
    throw new SpikeportError(
      'unsupported-model',
      `${path.basename(m.path)} has ${m.graph.inputs.length} inputs (${m.graph.inputs.map((i) => i.name).join(', ')}); spikeport converts models with one float input`,
    );
  }
  const input = floatInputs[0];
  if (!input.shape || input.shape.length < 2)
    throw new SpikeportError(
      'unsupported-model',
      `input "${input.name}" has no known shape; export the model with a fixed input shape (batch may be dynamic)`,
    );
  const inputShape = input.shape.slice(1).map((d, i) => {
    if (typeof d !== 'number')
      throw new SpikeportError(
        'unsupported-model',
        `input "${input.name}" has a symbolic dimension ${i + 1} (${d}); only the batch axis may be dynamic`,
      );
    return d;
  });
  const values = numel(inputShape);
  if (values === 0 || values > MAX_INPUT_VALUES) {
    throw new SpikeportError(
      'unsupported-model',
      `input "${input.name}" has ${inputShape.join('x')} = ${values} values per sample; spikeport takes 1 to ${MAX_INPUT_VALUES}`,
    );
  }
  // Let the batch axis vary.
  return { graph: { ...m.graph, inputs: [{ ...input, shape: ['N', ...inputShape] }] }, input, inputShape };
}

const readoutNames = (v: string | readonly string[] | undefined): string[] | undefined =>
  v === undefined ? undefined : typeof v === 'string' ? [v] : [...v];

/** A model's per-sample normalisations inside its spiking part (graph/norms.ts), before they are frozen. */
export interface NormPlan {
  /** The prepared graph with the normalisations as they are (the original ANN). */
  readonly graph: Graph;
  readonly norms: readonly SampleNorm[];
  readonly inputName: string;
  readonly inputShape: readonly number[];
  /** Rank (with the batch axis) of every tensor the statistics are taken of. */
  readonly ranks: ReadonlyMap<string, number>;
}

/** The model's per-sample normalisations to freeze, or null when it has none in its spiking part. */
export async function planNorms(
  m: LoadedModel,
  opts: RuntimeOptions & { readonly readoutNode?: string | readonly string[] } = {},
): Promise<NormPlan | null> {
  const { graph: graph0, input, inputShape } = checkedGraph(m);
  const graph = prepare(graph0);
  const norms = findSampleNorms(graph, readoutNames(opts.readoutNode));
  if (norms.length === 0) return null;
  checkWeightsFinite(graph); // before any statistics are measured with them
  const shapes = await probeShapes(
    graph,
    input.name,
    { dims: [2, ...inputShape], data: new Float32Array(2 * numel(inputShape)) },
    norms.map((s) => s.measured),
    opts,
  );
  return {
    graph,
    norms,
    inputName: input.name,
    inputShape,
    ranks: new Map([...shapes].map(([k, d]) => [k, d.length])),
  };
}

export async function prepareModel(m: LoadedModel, opts: PrepareOptions = {}): Promise<PreparedModel> {
  const { graph: graph0, input, inputShape } = checkedGraph(m);
  let prepared = prepare(graph0);
  checkWeightsFinite(prepared);
  const norms = findSampleNorms(prepared, readoutNames(opts.readoutNode));
  if (norms.length > 0 && !opts.frozenNorms)
    throw new SpikeportError(
      'unsupported-model',
      `${norms.length === 1 ? normName(norms[0]) : `${norms.length} normalisations (${normName(norms[0])}, …)`} normalise${norms.length === 1 ? 's' : ''} each sample inside the spiking part, which spikes cannot do; convert freezes their statistics on calibration data (or set readoutNode before them)`,
    );
  const original = norms.length > 0 ? prepared : null;
  if (original && opts.frozenNorms) {
    const inputs = await probeShapes(
      prepared,
      input.name,
      { dims: [2, ...inputShape], data: new Float32Array(2 * numel(inputShape)) },
      norms.map((s) => s.input),
      opts,
    );
    const perSample = new Map([...inputs].map(([k, d]) => [k, d.slice(1)]));
    prepared = prepare(freezeSampleNorms(prepared, norms, opts.frozenNorms, perSample));
  }
  const plan = makePlan(prepared, { readoutNode: opts.readoutNode, positions: nodePositions(m.graph) });
  // Several readouts are packed into one tensor by nodes the graph now holds (the ANN's outputs are unchanged).
  const graph = withPack(prepared, plan);
  const pools = plan.spiking.filter((n) => n.opType === 'MaxPool' && plan.varying.has(n.inputs[0]));
  const weighted = graph.nodes.filter((n) => WEIGHTED_OPS.has(n.opType));
  const names = [
    ...plan.sites.map((s) => s.input),
    ...pools.flatMap((p) => [p.inputs[0], p.outputs[0]]),
    plan.readout,
    ...plan.readouts.map((r) => r.tensor),
    ...weighted.flatMap((n) => [n.inputs[0], n.outputs[0]]),
  ];
  let shapes: Map<string, number[]>;
  const probe = (batch: number): Promise<Map<string, number[]>> =>
    probeShapes(
      graph,
      input.name,
      { dims: [batch, ...inputShape], data: new Float32Array(batch * numel(inputShape)) },
      names,
      opts,
    );
  try {
    // Batch 2 catches models exported with a fixed batch size.
    shapes = await probe(2);
  } catch (e) {
    if (!(e instanceof SpikeportError) || e.code !== 'runtime') throw e;
    // The hint only when it is the cause: the same graph runs one sample at a time.
    const fixedBatch = await probe(1).then(
      () => true,
      () => false,
    );
    if (!fixedBatch) throw e;
    throw new SpikeportError(
      'runtime',
      `${e.message} (the model runs one sample at a time: it was exported with a fixed batch size; export it again with a dynamic batch axis)`,
    );
  }
  const normalize = opts.normalize ?? storedNormalize(m.graph);
  if (normalize) checkNormalizeFits(normalize, inputShape, opts.normalize !== undefined);
  const perSample = new Map<string, number[]>();
  for (const [k, dims] of shapes) perSample.set(k, dims.slice(1));
  return {
    source: { path: m.path, sha256: m.sha256 },
    graph,
    plan,
    ...(original ? { original, norms: norms.map(normName), frozen: opts.frozenNorms } : {}),
    inputName: input.name,
    inputShape,
    shapes: perSample,
    normalize,
  };
}

/** The metadata key of a video model's frame rate (frames per second its clips are sampled at), a number. */
export const FRAME_RATE_KEY = 'spikeport.frameRate';

/** A video model's frame rate from its metadata; undefined when it has none. */
export function storedFrameRate(g: Graph): number | undefined {
  const text = g.metadata[FRAME_RATE_KEY];
  if (text === undefined) return undefined;
  const v = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text.trim()) || !(v > 0 && v <= 1000))
    throw new SpikeportError(
      'invalid-file',
      `the model metadata ${FRAME_RATE_KEY} is "${text}", not a frame rate (frames per second in (0, 1000])`,
    );
  return v;
}

/**
 * Weights that are NaN (anywhere) or infinite (in a layer's weights or bias), found before any
 * calibration runs: they would otherwise surface only as a NaN threshold at its end.
 */
function checkWeightsFinite(g: Graph): void {
  const weightsOf = new Map<string, string>();
  for (const n of g.nodes) if (WEIGHTED_OPS.has(n.opType)) for (const i of n.inputs.slice(1)) weightsOf.set(i, n.name);
  for (const [name, t] of g.initializers) {
    if (t.dtype !== 'float32' && t.dtype !== 'float64') continue;
    const layer = weightsOf.get(name);
    const data = t.data as Float32Array | Float64Array;
    const at = data.findIndex((v) => Number.isNaN(v) || (layer !== undefined && !Number.isFinite(v)));
    if (at < 0) continue;
    const user = layer ?? g.nodes.find((n) => n.inputs.includes(name))?.name;
    throw new SpikeportError(
      'unsupported-model',
      `the weights "${name}"${user ? ` of node "${user}"` : ''} hold ${data[at]} (value ${at} of ${data.length}); the model's weights must be finite numbers`,
    );
  }
}

/** The metadata key of an ONNX model's input normalisation, JSON {"mean": [...], "std": [...]}. */
export const NORMALIZE_KEY = 'spikeport.normalize';

export function storedNormalize(g: Graph): Normalize | null {
  const text = g.metadata[NORMALIZE_KEY];
  if (!text) return null;
  try {
    const v: unknown = JSON.parse(text);
    if (isNormalize(v)) return v;
  } catch {
    /* fall through */
  }
  throw new SpikeportError(
    'invalid-file',
    `the model metadata ${NORMALIZE_KEY} is not {"mean":[..],"std":[..]} with finite values, |mean| ≤ 1e10 and 1e-10 ≤ std ≤ 1e10`,
  );
}

/** Mean and std: one value, or one per input channel (axis 0 of a sample of rank ≥ 3, as batches are read). */
export function checkNormalizeFits(n: Normalize, inputShape: readonly number[], fromOptions: boolean): void {
  const C = inputShape.length >= 3 ? inputShape[0] : 1;
  const fits = (xs: readonly number[]): boolean => xs.length === 1 || xs.length === C;
  if (fits(n.mean) && fits(n.std)) return;
  const what = `has ${n.mean.length} mean and ${n.std.length} std values for an input with ${C} channel${C > 1 ? 's' : ''} (give 1 or ${C} of each)`;
  if (fromOptions) throw new SpikeportError('invalid-option', `normalize ${what}`, 'normalize');
  throw new SpikeportError('invalid-file', `the model metadata ${NORMALIZE_KEY} ${what}`);
}

/** Check that a data set's samples fit the model input (same number of values). */
export function checkDataFits(d: Dataset, inputName: string, inputShape: readonly number[]): void {
  const want = numel(inputShape);
  const have = numel(d.sampleShape);
  if (want !== have) {
    throw new SpikeportError(
      'invalid-data',
      `data set ${d.name} gives samples of shape ${d.sampleShape.join('x')} (${have} values) but the model input "${inputName}" expects ${inputShape.join('x')} (${want} values)`,
    );
  }
}

/** Channels of each site's input (axis 1 with the batch axis). */
export function siteChannels(m: PreparedModel): number[] {
  return m.plan.sites.map((s) => (m.shapes.get(s.input) as readonly number[])[0]);
}

/** Rank (with batch axis) of each site's input. */
export function siteRanks(m: PreparedModel): number[] {
  return m.plan.sites.map((s) => (m.shapes.get(s.input) as readonly number[]).length + 1);
}
