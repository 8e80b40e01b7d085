/**
 * Conversion: an ANN (ONNX) and calibration data in, a spiking network out (in memory; save it
 * with `snn.save`). Thresholds are calibrated at the cost of ANN inference and the delay d̂ is
 * estimated once, for every T (docs/algorithm.md §2, §3, §5).
 */
import path from 'node:path';
import { normalizeProblem, readBatch, type Dataset, type Normalize } from '../data/dataset.js';
import { openDataset } from '../data/sources.js';
import {
  KINETICS_NORMALIZE,
  PREPROCESS_PRESETS,
  formatPreprocess,
  parsePreprocess,
  type Preprocess,
} from '../data/preprocess.js';
import { checkFrameRate } from '../data/video-files.js';
import { modelTail } from '../evaluate/tail.js';
import { loadModel, type LoadedModel } from '../model/load.js';
import {
  NORMALIZE_KEY,
  checkDataFits,
  planNorms,
  prepareModel,
  storedFrameRate,
  storedNormalize,
  type PreparedModel,
} from '../model/prepare.js';
import type { Notice } from '../progress.js';
import { measureNorms } from '../calibrate/norms.js';
import type { NormStatistics } from '../graph/norms.js';
import { substituteCost } from '../evaluate/substitute.js';
import { inferTask } from '../tasks/task.js';
import {
  CALIBRATION_DEFAULTS,
  calibrate,
  calibrationSamples,
  resolveCalibrateOptions,
  type CalibrateOptions,
  type ResolvedCalibrateOptions,
} from '../calibrate/calibrate.js';
import { buildSnn, type SiteCorrections } from '../snn/build.js';
import { readoutList } from '../graph/plan.js';
import { thetaPerElement, type Thresholds } from '../calibrate/thresholds.js';
import { numel } from '../graph/ir.js';
import { GROUP_KINDS, type GroupKind, type NeuronGroup } from '../snn/neuron.js';
import {
  MAX_GROUP,
  SPIKE_FORMS,
  isSnnGraph,
  type NormalizationRecord,
  type PoolMode,
  type SnnMetadata,
  type SpikeForm,
} from '../snn/format.js';
import { unitSpikeForm } from '../snn/unit.js';
import { Snn } from '../snn/network.js';
import { MAX_FIT_STEPS, fitDelays, siteCorrections } from '../refine/refine.js';
import { targetCalibration } from '../refine/target.js';
import { checkTarget, profileWith } from '../nir/profiles.js';
import { MAX_STEPS } from '../evaluate/windows.js';
import { delayFromLatencies, type DelayEstimate } from '../calibrate/delay.js';
import { SpikeportError, checkInteger, optionError } from '../errors.js';

export interface ConvertOptions extends CalibrateOptions {
  /**
   * Max pooling on time-varying input: `accumulated` (default) pools the accumulated current,
   * which is exact; `per-step` pools each step's current, as the paper's code does (biased after
   * spiking layers; for comparison).
   */
  readonly maxpool?: PoolMode;
  /**
   * End the spiking part at this node, or these nodes (one per output of a network with several):
   * their outputs are the readouts, averaged over steps, and everything after them runs as ANN
   * on those averages. Default: every weighted layer that leads to an output with no weighted
   * layer after it (one per head and pyramid level of a detector).
   */
  readonly readoutNode?: string | readonly string[];
  /** Input normalisation per channel; default: the model's `spikeport.normalize` metadata, else none. */
  readonly normalize?: Normalize;
  /**
   * Bias calibration for this T (default off): after the thresholds, each site gets a per-channel
   * current that cancels the mean gap between the SNN's average output at T and the clipped ANN,
   * site by site on the first calibration batch. Costs one T-step simulation per site.
   */
  readonly biasCalibration?: number;
  /** Potential calibration for this T (default off): each neuron's initial membrane corrected likewise (after bias calibration if both). */
  readonly potentialCalibration?: number;
  /**
   * Bias and threshold-scale calibration for this T (default off; parallel conversion's pair):
   * per channel a bias as bias calibration finds it, then the spikes' amplitude scaled so that the
   * channel's mean output is the clipped ANN's. Two T-step simulations per site.
   */
  readonly scaleCalibration?: number;
  /**
   * Per-step bias calibration for this T (default off; FTBC-style): per channel a current for
   * each of steps 1 … T, fitted so that each step's mean output is the clipped ANN's.
   * Three T-step simulations per site.
   */
  readonly stepBiasCalibration?: number;
  /**
   * Fit the delay for every T up to this (default off): from one simulation of calibration
   * samples, the delay whose readout window agrees best with the clipped ANN (docs/algorithm.md
   * §10.3); `simulate` uses it with `delay: 'fit'`. No labels needed.
   */
  readonly delayFit?: number;
  /** Calibration samples the delay fit simulates (default 500, the first of calibration's order). */
  readonly delayFitSamples?: number;
  /**
   * `amplitude` (default): a spike carries θ; `unit`: θ folded into the weights, every neuron
   * has threshold 1 and emits 0/1 (the form hardware and NIR take; same readout to float
   * precision). Refused with the reason where θ cannot be folded exactly.
   */
  readonly spikes?: SpikeForm;
  /**
   * Image data: the preprocessing preset (`imagenet`, `resize:H,W`, `none`; default none given:
   * images must have the model's input size). Stored in the converted file; `simulate` repeats it.
   */
  readonly preprocess?: string;
  /**
   * Video files (`videofiles:` given as a spec): resample every video to this many frames per
   * second; default: the model's `spikeport.frameRate` metadata, else each video's own rate.
   * Stored in the converted file; `simulate` repeats it.
   */
  readonly frameRate?: number;
  /** Video files given as a spec: clips taken from each video (default 5). */
  readonly clipsPerVideo?: number;
  /**
   * Per-sample normalisations inside the spiking part (GroupNorm, InstanceNorm, LayerNorm) are
   * frozen: their statistics averaged over this many calibration samples (default 64), and what
   * that costs the ANN measured on as many others (graph/norms.ts, the converted network's
   * `normalization`).
   */
  readonly normSamples?: number;
  /**
   * Binary IF neurons per ANN neuron (default 1): each neuron becomes a group of this many, so a
   * step carries up to K + 1 levels (docs/algorithm.md §11). A group at T steps resolves what
   * one neuron resolves at K·T; it costs K× the neurons and about as many SOPs as one neuron at
   * K·T steps.
   */
  readonly group?: number;
  /** How a group is made (default `shared`): `shared` (one membrane, K levels) or `population` (K IF neurons with staggered starts). */
  readonly groupKind?: GroupKind;
  /**
   * Convert for a NIR target profile (docs/nir.md; implies `spikes: 'unit'`): corrections for
   * what the target's neuron computes (no θ/2 start; a reset to 0 on some) calibrated with that
   * neuron in the loop at `targetT` steps, kept in the file for `export nir` and `--as-target`.
   */
  readonly target?: string;
  /** The T the target corrections are calibrated for (default 16). */
  readonly targetT?: number;
  /** Weight bits of the target's arithmetic during that calibration (default: the profile's). */
  readonly weightBits?: number;
}

/** The defaults of every conversion option (the CLI shows these in --help). */
export const CONVERT_DEFAULTS = {
  ...CALIBRATION_DEFAULTS,
  maxpool: 'accumulated',
  spikes: 'amplitude',
  delayFitSamples: 500,
  normSamples: 64,
  group: 1,
  groupKind: 'shared',
  targetT: 16,
} as const;

/** The options with defaults filled in, checked before any work starts. */
export interface ResolvedConvertOptions
  extends ResolvedCalibrateOptions, Omit<ConvertOptions, keyof ResolvedCalibrateOptions> {
  readonly maxpool: PoolMode;
  readonly delayFitSamples: number;
  readonly spikes: SpikeForm;
  readonly normSamples: number;
  readonly group: number;
  readonly groupKind: GroupKind;
}

export function resolveConvertOptions(options: ConvertOptions = {}): ResolvedConvertOptions {
  const o = {
    ...options,
    ...resolveCalibrateOptions(options),
    maxpool: options.maxpool ?? CONVERT_DEFAULTS.maxpool,
    delayFitSamples: options.delayFitSamples ?? CONVERT_DEFAULTS.delayFitSamples,
    spikes: options.spikes ?? (options.target !== undefined ? 'unit' : CONVERT_DEFAULTS.spikes),
    normSamples: options.normSamples ?? CONVERT_DEFAULTS.normSamples,
    group: options.group ?? CONVERT_DEFAULTS.group,
    groupKind: options.groupKind ?? CONVERT_DEFAULTS.groupKind,
  };
  checkInteger('normSamples', o.normSamples, 1);
  checkInteger('group', o.group, 1, MAX_GROUP);
  if (!(GROUP_KINDS as readonly string[]).includes(o.groupKind))
    throw optionError(
      'groupKind',
      `"${String(o.groupKind)}" is not a kind of group (known: ${GROUP_KINDS.join(', ')})`,
    );
  if (o.target !== undefined) {
    checkTarget(o.target, 'target');
    if (o.spikes !== 'unit') throw optionError('spikes', 'a target takes the unit-spike form (spikes: "unit")');
    if (o.group > 1)
      throw optionError('group', 'a target takes plain IF neurons: NIR cannot express groups of binary neurons');
    checkInteger('targetT', o.targetT ?? CONVERT_DEFAULTS.targetT, 1, MAX_STEPS);
    profileWith(checkTarget(o.target, 'target'), o.weightBits);
  } else if (o.targetT !== undefined || o.weightBits !== undefined)
    throw optionError(o.targetT !== undefined ? 'targetT' : 'weightBits', 'applies with a target only');
  if (!SPIKE_FORMS.includes(o.spikes))
    throw optionError('spikes', `"${String(o.spikes)}" is not a spike form (known: ${SPIKE_FORMS.join(', ')})`);
  if (o.maxpool !== 'accumulated' && o.maxpool !== 'per-step')
    throw optionError('maxpool', `"${String(o.maxpool)}" is not a pooling form (known: accumulated, per-step)`);
  const badNormalize = o.normalize === undefined ? null : normalizeProblem(o.normalize);
  if (badNormalize) throw optionError('normalize', `${badNormalize}; give one value or one per channel`);
  if (o.readoutNode !== undefined) readoutList(o.readoutNode);
  for (const k of ['biasCalibration', 'potentialCalibration', 'scaleCalibration', 'stepBiasCalibration'] as const)
    if (o[k] !== undefined) checkInteger(k, o[k], 1, MAX_STEPS);
  if (o.delayFit !== undefined)
    checkInteger('delayFit', o.delayFit, 1, MAX_FIT_STEPS, 'the fit compares every window, T² of them');
  checkInteger('delayFitSamples', o.delayFitSamples, 1);
  if (o.preprocess !== undefined) checkPreprocess(o.preprocess);
  checkFrameRate(o.frameRate);
  if (o.clipsPerVideo !== undefined) checkInteger('clipsPerVideo', o.clipsPerVideo, 1, 1000);
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
export async function convert(
  model: string | LoadedModel,
  data: string | Dataset,
  options: ConvertOptions = {},
): Promise<Snn> {
  const t0 = performance.now();
  const opts = resolveConvertOptions(options);
  const loaded = typeof model === 'string' ? loadModel(model) : model;
  const name = path.basename(loaded.path);
  if (isSnnGraph(loaded.graph))
    throw new SpikeportError('invalid-file', `${name} is already a spiking network; convert takes the ANN`);
  const preprocess = opts.preprocess === undefined ? null : checkPreprocess(opts.preprocess);
  // Per-sample normalisations in the spiking part: statistics frozen from calibration samples.
  const norms = await planNorms(loaded, opts);
  const frameRate = opts.frameRate ?? storedFrameRate(loaded.graph);
  const open = (shape: readonly number[]): Dataset =>
    typeof data === 'string'
      ? openDataset(data, undefined, {
          sampleShape: shape,
          preprocess,
          ...(frameRate !== undefined ? { frameRate } : {}),
          ...(opts.clipsPerVideo !== undefined ? { clipsPerVideo: opts.clipsPerVideo } : {}),
        })
      : data;
  let calib = norms ? open(norms.inputShape) : null;
  let frozen: FrozenNorms | null = null;
  if (norms && calib) {
    checkDataFits(calib, norms.inputName, norms.inputShape);
    const count = Math.min(opts.normSamples, calib.size);
    const order = calibrationSamples(calib.size, opts, Math.min(2 * count, calib.size));
    const normalize = opts.normalize ?? storedNormalize(loaded.graph);
    const statistics = await measureNorms(
      norms.graph,
      norms.inputName,
      norms.inputShape,
      norms.norms,
      norms.ranks,
      calib,
      order.slice(0, count),
      normalize,
      {
        batchSize: Math.min(opts.batchSize, NORM_BATCH),
        threads: opts.threads,
        device: opts.device,
        onProgress: opts.onProgress,
      },
    );
    // The cost on other samples when there are enough, else on the same.
    const heldOut = order.length > count;
    frozen = { statistics, samples: count, check: heldOut ? order.slice(count) : order, heldOut };
  }
  let prepared = await prepareModel(loaded, { ...opts, ...(frozen ? { frozenNorms: frozen.statistics } : {}) });
  calib ??= open(prepared.inputShape);
  if (preprocess && (calib.preprocess ?? 'none') !== formatPreprocess(preprocess)) {
    throw optionError(
      'preprocess',
      `is ${formatPreprocess(preprocess)} but the data set ${calib.name} was opened with ${calib.preprocess ?? 'none'} (the preprocessing applies to image data: imagefolder, voc, coco, videofolder)`,
    );
  }
  checkDataFits(calib, prepared.inputName, prepared.inputShape);
  // The kinetics preset brings Kinetics' mean and std (RGB), for a model that says nothing of its own.
  if (!prepared.normalize && calib.preprocess === 'kinetics' && prepared.inputShape[0] === 3)
    prepared = { ...prepared, normalize: { mean: [...KINETICS_NORMALIZE.mean], std: [...KINETICS_NORMALIZE.std] } };
  const tail = await modelTail(prepared, opts); // refuses a bad readout node before calibrating
  const normalization = frozen
    ? {
        norms: prepared.norms ?? [],
        samples: frozen.samples,
        statistics: frozen.statistics,
        cost: {
          ...(await substituteCost(prepared, calib, frozen.check, inferTask(calib), {
            batchSize: Math.min(opts.batchSize, NORM_BATCH),
            threads: opts.threads,
            device: opts.device,
          })),
          heldOut: frozen.heldOut,
        },
      }
    : null;
  const calibration = await calibrate(prepared, calib, opts);
  const th = calibration.thresholds;
  const group: NeuronGroup | null = opts.group > 1 ? { size: opts.group, kind: opts.groupKind } : null;
  // A group's first spike comes K times sooner (it fires at θ/K above its start): latencies scale by 1/K.
  const delay = group ? groupDelay(prepared, calibration.delay, group.size) : calibration.delay;
  const t1 = performance.now();
  // Bias / potential calibration on the first calibration batch; the delay fit on its own sample.
  const batch =
    opts.biasCalibration || opts.potentialCalibration || opts.scaleCalibration || opts.stepBiasCalibration
      ? await readBatch(calib, calibration.firstBatch, prepared.normalize)
      : null;
  const corrections = batch
    ? await siteCorrections(prepared, th, opts.maxpool, batch, {
        bias: opts.biasCalibration,
        potential: opts.potentialCalibration,
        scale: opts.scaleCalibration,
        stepBias: opts.stepBiasCalibration,
        group,
        threads: opts.threads,
        device: opts.device,
        onProgress: opts.onProgress,
      })
    : {};
  const t2 = performance.now();
  const unit = opts.spikes === 'unit' ? await unitSpikeForm(prepared, th, opts) : null;
  const step = unit
    ? buildSnn(unit.model, unit.thresholds, opts.maxpool, correctionsInUnits(prepared, th, corrections), group)
    : buildSnn(prepared, th, opts.maxpool, corrections, group);
  const tt = performance.now();
  const profile = opts.target ? profileWith(checkTarget(opts.target, 'target'), opts.weightBits) : null;
  const targetT = opts.targetT ?? CONVERT_DEFAULTS.targetT;
  const targetBatch = profile ? (batch ?? (await readBatch(calib, calibration.firstBatch, prepared.normalize))) : null;
  const forTarget =
    profile && targetBatch
      ? await targetCalibration(
          {
            form: 'step',
            graph: step.graph,
            meta: draftMeta(step.spec, name, th.values),
            tail: null,
          },
          prepared,
          th,
          targetBatch,
          profile,
          targetT,
          opts,
        )
      : null;
  const t3 = performance.now();
  const fit = opts.delayFit
    ? await fitDelays(
        step,
        prepared,
        th,
        await readBatch(
          calib,
          calibrationSamples(calib.size, opts, Math.min(opts.delayFitSamples, calib.size)),
          prepared.normalize,
        ),
        opts.delayFit,
        opts,
      )
    : null;
  // The corrections and the fit, without the unit-spike folding and the build between them.
  const refineSeconds = (t2 - t1 + t3 - tt + performance.now() - t3) / 1000;
  const meta: SnnMetadata = {
    spec: step.spec,
    source: { file: name, sha256: loaded.sha256, path: loaded.path },
    normalize: prepared.normalize,
    calibration: {
      method: calibration.method,
      iterations: calibration.iterations,
      batchSize: calibration.batchSize,
      samples: calibration.samples,
      data: calib.name,
    },
    delay: {
      estimated: delay.estimated,
      latencies: delay.latencies.map((r) => round(r, 4)),
      ...(fit ? { fitted: fit.delays } : {}),
    },
    ...(opts.readoutNode !== undefined
      ? { readoutNode: typeof opts.readoutNode === 'string' ? opts.readoutNode : [...opts.readoutNode] }
      : {}),
    ...(batch || fit
      ? {
          corrections: {
            ...(opts.biasCalibration ? { biasT: opts.biasCalibration } : {}),
            ...(opts.potentialCalibration ? { potentialT: opts.potentialCalibration } : {}),
            ...(opts.scaleCalibration ? { scaleT: opts.scaleCalibration } : {}),
            ...(opts.stepBiasCalibration ? { stepBiasT: opts.stepBiasCalibration } : {}),
            ...(batch ? { samples: batch.n } : {}),
            ...(fit ? { delayFitSamples: fit.samples } : {}),
          },
        }
      : {}),
    ...(unit ? { unit: { theta: th.values.map((v) => Array.from(v)), scaleNodes: unit.scaleNodes } } : {}),
    ...(normalization ? { normalization: roundCost(normalization) } : {}),
    ...(calib.preprocess ? { preprocess: calib.preprocess } : {}),
    ...(calib.frameRate !== undefined ? { frameRate: calib.frameRate } : {}),
    ...(forTarget ? { target: forTarget } : {}),
  };
  const timing = {
    calibrate: round(calibration.seconds, 3),
    convert: round((performance.now() - t0) / 1000, 3),
    ...(batch || fit || forTarget ? { refine: round(refineSeconds, 3) } : {}),
  };
  const notices = prepared.normalize ? [] : [noNormalization(name)];
  return new Snn({ form: 'step', graph: step.graph, meta, tail, source: prepared, timing, notices });
}

/** The notice that inputs go to a model as they are read, without normalisation. */
export function noNormalization(model: string): Notice {
  return {
    code: 'no-normalization',
    message: `no input normalisation: ${model} has no ${NORMALIZE_KEY} metadata and none was given, so samples reach it as read (images scaled to 0..1); if it was trained on normalised inputs, give its mean and std as normalize`,
    field: 'normalize',
  };
}

/** The metadata toNir needs while a unit-spike network is calibrated for a target. */
function draftMeta(spec: SnnMetadata['spec'], file: string, theta: readonly Float32Array[]): SnnMetadata {
  return {
    spec,
    source: { file, sha256: '0'.repeat(64) },
    normalize: null,
    calibration: { method: '', iterations: 1, batchSize: 1, samples: 1, data: '' },
    delay: { estimated: 0, latencies: [] },
    unit: { theta: theta.map((v) => Array.from(v)), scaleNodes: [] },
  };
}

/**
 * Corrections found on the θ-amplitude network, for its unit-spike form: a site's input is
 * carried divided by θ there, so a bias current and a membrane offset are divided by θ too.
 */
function correctionsInUnits(m: PreparedModel, th: Thresholds, c: SiteCorrections): SiteCorrections {
  const perElement = (k: number): Float32Array => {
    const shape = m.shapes.get(m.plan.sites[k].input) as readonly number[];
    return thetaPerElement(th.values[k], numel(shape), shape[0]);
  };
  const divide = (v: Float32Array, theta: ArrayLike<number>): Float32Array =>
    v.map((x, i) => (theta[i] > 0 ? x / theta[i] : 0));
  const perChannel = (k: number, length: number): ArrayLike<number> =>
    th.values[k].length === 1 ? new Float32Array(length).fill(th.values[k][0]) : th.values[k];
  return {
    bias: c.bias?.map((b, k) => (b ? divide(b, perChannel(k, b.length)) : null)),
    potential: c.potential?.map((v, k) => (v ? divide(v, perElement(k)) : null)),
    // A multiple of θ stays one; a per-step current [t·C + c] is divided by channel c's θ.
    scale: c.scale,
    stepBias: c.stepBias?.map((v, k) => {
      if (!v) return null;
      const C = (m.shapes.get(m.plan.sites[k].input) as readonly number[])[0];
      const theta = perChannel(k, C);
      return v.map((x, i) => (theta[i % C] > 0 ? x / theta[i % C] : 0));
    }),
  };
}

/** Samples per call when measuring normalisation statistics (ImageNet-size networks: memory). */
const NORM_BATCH = 8;

interface FrozenNorms {
  readonly statistics: readonly NormStatistics[];
  readonly samples: number;
  readonly check: readonly number[];
  readonly heldOut: boolean;
}

/** The normalisation record with its cost rounded (a file's bytes do not depend on float noise in the last digits). */
function roundCost(n: NormalizationRecord): NormalizationRecord {
  return {
    ...n,
    cost: {
      ...n.cost,
      outputs: n.cost.outputs.map((o) => ({ name: o.name, error: round(o.error, 6) })),
      agreement: n.cost.agreement ? { ...n.cost.agreement, value: round(n.cost.agreement.value, 6) } : null,
    },
  };
}

/** d̂ for groups of K: every site's latency divided by K, added along the graph again. */
function groupDelay(m: PreparedModel, d: DelayEstimate, K: number): DelayEstimate {
  return delayFromLatencies(
    m.plan,
    d.latencies.map((r) => r / K),
    [m.inputName],
  );
}

function round(v: number, digits: number): number {
  const f = 10 ** digits;
  return Number.isFinite(v) ? Math.round(v * f) / f : v;
}
