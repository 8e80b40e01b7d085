/**
 * `spikeport/advanced`: everything the front door (index.ts) exports, and the parts it is built
 * from, for callers who build their own pipeline (the options resolved with their defaults, the
 * file format's keys, the calibration graphs, shard arithmetic, NIR graphs). These names may
 * change between minor versions; the front door's do not.
 */
export * from './index.js';

/** convert(model, data, options?) → Snn; ConvertOptions (every field documented) and CONVERT_DEFAULTS. */
export * from './api/convert.js';
/** simulate(snn, data, options?) → SimulateRecord; SimulateOptions and SIMULATE_DEFAULTS. */
export * from './api/simulate.js';
export * from './api/simulate-options.js';

export { parseShardFile, SHARD_FORMAT } from './api/shard-file.js';
export { shardRange } from './api/shards.js';
/** simulate's `workers`: how many `auto` means, worker k's checkpoint file, the run in worker processes. */
export { workerPlan, workerCheckpoints, simulateInWorkers, type WorkerRun } from './api/workers.js';
export { type RunConfig } from './api/run-config.js';
/** The converted network in memory (Snn: save, describe, thresholds) and loadSnn. */
export * from './snn/network.js';
/** Deploying: NIR export for a neuromorphic target, and the network as that target computes it. */
export {
  PROFILES,
  NIR_VERSION,
  toNirGraph,
  targetNetwork,
  readNir,
  simulateNir,
  resetOf,
  profileWith,
  type Profile,
  type TargetNetwork,
  type NirGraph,
  type NirNode,
  type NirRun,
} from './api/nir.js';
/** What a record holds: SimulateRecord (from simulate) and the experiments' records. */
export * from './report/record.js';

/** The converted file's format: metadata keys, the spec of the step graph, the Loop form's names. */
export {
  KEYS,
  SNN_FORMAT,
  LOOP_STEPS_INPUT,
  LOOP_DELAY_INPUT,
  loopReadout,
  loopCounter,
  SPIKE_FORMS,
  type SpikeForm,
  type UnitSpikes,
  type SnnMetadata,
  type SnnSpec,
  type SiteSpec,
  type StateSpec,
  type LayerSpec,
  type SnnForm,
  type PoolMode,
} from './snn/format.js';
/** Threshold methods: the built-in ones and the interface for your own. */
export { BUILT_IN, type FixedThresholds } from './calibrate/methods.js';
export type { CalibrateOptions } from './calibrate/calibrate.js';
/** For a ThresholdMethod that runs graphs of its own (CalibrationContext.run): the calibration graphs and ONNX Runtime's arrays. */
export {
  instrument,
  thetaFeeds,
  type Instrumented,
  type InstrumentOptions,
  type SiteMode,
  type Stat,
} from './calibrate/instrument.js';
export type { Array32, RuntimeOptions } from './ort/session.js';
export type { Thresholds, Granularity } from './calibrate/thresholds.js';

export type { PreparedModel } from './model/prepare.js';

export { readBatch, type Samples, type Normalize, type DetectionBox } from './data/dataset.js';
export { parsePreprocess, formatPreprocess, KINETICS_NORMALIZE, type Preprocess } from './data/preprocess.js';
export { CATEGORY_PRESETS, parseCategories } from './data/coco-masks.js';
export { VIDEO_EXTENSIONS, DEFAULT_CLIPS_PER_VIDEO } from './data/video-files.js';
export { writeLayout, LAYOUTS, type Layout } from './data/layouts.js';
/** Tasks, energy, reports, the paper's experiments. */
export { METRIC_NAMES, type Score, type ModelOutput, type ModelOutputs } from './tasks/task.js';
export {
  HEADS,
  HEAD_DEFAULTS,
  detectionHead,
  type HeadKind,
  type DetectionOptions,
  type DetectionHead,
} from './tasks/heads.js';
export { energyConstants, type EnergyReport, type CostAtT, type LayerEnergy } from './energy/energy.js';
export type { Engine } from './runtime/engines.js';
export { engineNotice } from './runtime/engines.js';
export type { SiteErrors, SiteError } from './analysis/site-errors.js';

export { GROUP_KINDS, type GroupKind } from './snn/neuron.js';
