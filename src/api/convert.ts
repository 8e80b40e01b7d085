/**
 * Conversion: an ANN (ONNX) and calibration data in, a spiking network out (in memory; save it
 * with `snn.save`). Thresholds are calibrated at the cost of ANN inference and the delay d̂ is
 * estimated once, for every T (docs/algorithm.md §2, §3, §5).
 */
import path from 'node:path';
import { isNormalize, type Dataset, type Normalize } from '../data/dataset.js';
import { openDataset } from '../data/sources.js';
import { PREPROCESS_PRESETS, formatPreprocess, parsePreprocess, type Preprocess } from '../data/preprocess.js';
import { modelTail } from '../evaluate/tail.js';
import { loadModel, type LoadedModel } from '../model/load.js';
import { checkDataFits, prepareModel } from '../model/prepare.js';
import { CALIBRATION_DEFAULTS, calibrate, resolveCalibrateOptions, type CalibrateOptions, type ResolvedCalibrateOptions } from '../calibrate/calibrate.js';
import { buildSnn } from '../snn/build.js';
import { isSnnGraph, type PoolMode, type SnnMetadata } from '../snn/format.js';
import { Snn } from '../snn/network.js';
import { SpikeportError, optionError } from '../errors.js';

export interface ConvertOptions extends CalibrateOptions {
  /**
   * Max pooling on time-varying input: `accumulated` (default) pools the accumulated current,
   * which is exact; `per-step` pools each step's current, as the paper's code does (biased after
   * spiking layers; for comparison).
   */
  readonly maxpool?: PoolMode;
  /**
   * End the spiking part at this node: its output is the readout, averaged over steps, and
   * everything after it runs as ANN on that average. Default: the last weighted layer with no
   * neuron after it.
   */
  readonly readoutNode?: string;
  /** Input normalisation per channel; default: the model's `spikeport.normalize` metadata, else none. */
  readonly normalize?: Normalize;
  /**
   * Image data: the preprocessing preset (`imagenet`, `resize:H,W`, `none`; default none given:
   * images must have the model's input size). Stored in the converted file; `simulate` repeats it.
   */
  readonly preprocess?: string;
}

/** The defaults of every conversion option (the CLI shows these in --help). */
export const CONVERT_DEFAULTS = { ...CALIBRATION_DEFAULTS, maxpool: 'accumulated' } as const;

/** The options with defaults filled in, checked before any work starts. */
export interface ResolvedConvertOptions extends ResolvedCalibrateOptions, Omit<ConvertOptions, keyof ResolvedCalibrateOptions> {
  readonly maxpool: PoolMode;
}

export function resolveConvertOptions(options: ConvertOptions = {}): ResolvedConvertOptions {
  const o = { ...options, ...resolveCalibrateOptions(options), maxpool: options.maxpool ?? CONVERT_DEFAULTS.maxpool };
  if (o.maxpool !== 'accumulated' && o.maxpool !== 'per-step') throw optionError('maxpool', `"${String(o.maxpool)}" is not a pooling form (known: accumulated, per-step)`);
  if (o.normalize !== undefined && !isNormalize(o.normalize)) throw optionError('normalize', 'must be { mean, std }: finite values, one or one per channel, every std > 0');
  if (o.readoutNode !== undefined && (typeof o.readoutNode !== 'string' || o.readoutNode === '')) throw optionError('readoutNode', 'must be a node name');
  if (o.preprocess !== undefined) checkPreprocess(o.preprocess);
  return o;
}

/** A preprocessing preset, parsed; a one-line option error naming the presets otherwise. */
export function checkPreprocess(text: unknown): Preprocess {
  const p = typeof text === 'string' ? parsePreprocess(text) : null;
  if (!p) throw optionError('preprocess', `"${String(text)}" is not a preprocessing (known: ${PREPROCESS_PRESETS})`);
  return p;
}

/**
 * The per-sample input shape a model declares (its first input without the batch axis), for
 * opening image data before the model is prepared; undefined when it is not all numbers.
 */
export function declaredInputShape(m: LoadedModel): number[] | undefined {
  const shape = m.graph.inputs[0]?.shape?.slice(1);
  return shape && shape.length > 0 && shape.every((d) => typeof d === 'number') ? (shape as number[]) : undefined;
}

/**
 * Convert an ANN: `model` is an ONNX file (or one loaded with `loadModel`), `data` the
 * calibration data (a data set or its spec, e.g. "mnist:train"). The result keeps the prepared
 * ANN as its source, for ANN references in `simulate`.
 */
export async function convert(model: string | LoadedModel, data: string | Dataset, options: ConvertOptions = {}): Promise<Snn> {
  const t0 = performance.now();
  const opts = resolveConvertOptions(options);
  const loaded = typeof model === 'string' ? loadModel(model) : model;
  const name = path.basename(loaded.path);
  if (isSnnGraph(loaded.graph)) throw new SpikeportError('invalid-file', `${name} is already a spiking network; convert takes the ANN`);
  const prepared = await prepareModel(loaded, opts);
  const preprocess = opts.preprocess === undefined ? null : checkPreprocess(opts.preprocess);
  const calib = typeof data === 'string' ? openDataset(data, undefined, { sampleShape: prepared.inputShape, preprocess }) : data;
  if (preprocess && (calib.preprocess ?? 'none') !== formatPreprocess(preprocess)) {
    throw optionError('preprocess', `is ${formatPreprocess(preprocess)} but the data set ${calib.name} was opened with ${calib.preprocess ?? 'none'} (the preprocessing applies to image data: imagefolder, voc, coco, videofolder)`);
  }
  checkDataFits(calib, prepared.inputName, prepared.inputShape);
  const tail = await modelTail(prepared, opts); // refuses a bad readout node before calibrating
  const calibration = await calibrate(prepared, calib, opts);
  const step = buildSnn(prepared, calibration.thresholds, opts.maxpool);
  const meta: SnnMetadata = {
    spec: step.spec,
    source: { file: name, sha256: loaded.sha256 },
    normalize: prepared.normalize,
    calibration: {
      method: calibration.method, iterations: calibration.iterations, batchSize: calibration.batchSize,
      samples: calibration.samples, data: calib.name,
    },
    delay: { estimated: calibration.delay.estimated, latencies: calibration.delay.latencies.map((r) => round(r, 4)) },
    ...(opts.readoutNode ? { readoutNode: opts.readoutNode } : {}),
    ...(calib.preprocess ? { preprocess: calib.preprocess } : {}),
  };
  const timing = { calibrate: round(calibration.seconds, 3), convert: round((performance.now() - t0) / 1000, 3) };
  return new Snn({ form: 'step', graph: step.graph, meta, tail, source: prepared, timing });
}

function round(v: number, digits: number): number {
  const f = 10 ** digits;
  return Number.isFinite(v) ? Math.round(v * f) / f : v;
}
