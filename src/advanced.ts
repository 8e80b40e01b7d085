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
/** Runs split over machines and resumed: shard files, merged exactly into one record. */
export { mergeShards } from './api/merge.js';
export { readShardFile, parseShardFile, SHARD_FORMAT, type ShardFile } from './api/shard-file.js';
export { shardRange, type Shard } from './api/shards.js';
export { type RunConfig } from './api/run-config.js';
/** The converted network in memory (Snn: save, describe, thresholds) and loadSnn. */
export * from './snn/network.js';
/** Deploying: NIR export for a neuromorphic target, and the network as that target computes it. */
export {
  TARGETS,
  PROFILES,
  NIR_VERSION,
  toNirGraph,
  exportNir,
  asTarget,
  targetNetwork,
  loadNir,
  readNir,
  simulateNir,
  resetOf,
  profileWith,
  type Target,
  type Profile,
  type TargetNetwork,
  type TargetOptions,
  type NirGraph,
  type NirNode,
  type NirRun,
} from './api/nir.js';
/** What a record holds: SimulateRecord (from simulate) and the experiments' records. */
export * from './report/record.js';
export { SpikeportError, type ErrorCode } from './errors.js';
export type { Progress, OnProgress } from './progress.js';

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
export {
  METHODS,
  BUILT_IN,
  type Method,
  type ThresholdMethod,
  type CalibrationContext,
  type SiteInput,
  type MethodOptions,
  type FixedThresholds,
} from './calibrate/methods.js';
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
/** Models and data. */
export { loadModel, type LoadedModel } from './model/load.js';
export type { PreparedModel } from './model/prepare.js';
export { openDataset, openMemoryDataset, limitDataset, type OpenOptions } from './data/sources.js';
export {
  memoryDataset,
  readBatch,
  type Dataset,
  type MemoryDataset,
  type Samples,
  type Batch,
  type Normalize,
  type DetectionBox,
} from './data/dataset.js';
export { parsePreprocess, formatPreprocess, KINETICS_NORMALIZE, type Preprocess } from './data/preprocess.js';
export { CATEGORY_PRESETS, parseCategories } from './data/coco-masks.js';
export { VIDEO_EXTENSIONS, DEFAULT_CLIPS_PER_VIDEO } from './data/video-files.js';
export { writeLayout, LAYOUTS, type Layout } from './data/layouts.js';
/** Tasks, energy, reports, the paper's experiments. */
export { TASKS, METRIC_NAMES, type Task, type Score, type ModelOutput, type ModelOutputs } from './tasks/task.js';
export {
  HEADS,
  HEAD_DEFAULTS,
  detectionHead,
  type HeadKind,
  type DetectionOptions,
  type DetectionHead,
} from './tasks/heads.js';
export {
  PRESETS,
  energyConstants,
  type EnergyConstants,
  type EnergyReport,
  type CostAtT,
  type LayerEnergy,
} from './energy/energy.js';
export type { Engine } from './runtime/engines.js';
export { engineNotice } from './runtime/engines.js';
export type { SiteErrors, SiteError } from './analysis/site-errors.js';
export { reportHtml } from './report/html.js';
export { reportMarkdown } from './report/markdown.js';
export {
  ablation,
  iterationSweep,
  delaySweep,
  energyTable,
  plugplay,
  type ExperimentOptions,
} from './experiments/experiments.js';
export { GROUP_KINDS, type GroupKind } from './snn/neuron.js';
