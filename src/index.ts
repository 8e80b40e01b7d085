/**
 * spikeport as a library: convert an ANN, simulate the spiking network, save or load it, export
 * it for a neuromorphic target. Nothing here prints; errors are `SpikeportError`s that name the
 * option field at fault.
 *
 *   const snn = await convert('model.onnx', 'mnist:train', { iterations: 50 });
 *   const run = await simulate(snn, 'mnist:test', { T: [8, 16, 32], references: true });
 *   snn.save('model.snn.onnx');
 *
 * This is the front door: the names a user of the tool needs, kept stable. The parts they are
 * built from are in `spikeport/advanced` (advanced.ts).
 */

/** Convert: convert(model, data, options?) → Snn; every option documented on ConvertOptions. */
export { convert, CONVERT_DEFAULTS, type ConvertOptions } from './api/convert.js';
/**
 * Simulate: simulate(snn, data, options?) → SimulateRecord, in this process or in `workers`
 * processes, with `asTarget` also as a neuromorphic target computes it; simulateShard runs one shard of a run.
 */
export { simulate, simulateShard } from './api/simulate.js';
export {
  SIMULATE_DEFAULTS,
  type SimulateOptions,
  type AsTargetOptions,
  type DelayRule,
} from './api/simulate-options.js';
/** The converted network: save, describe, thresholds; loadSnn reads a converted file. */
export { Snn, loadSnn, type LoadSnnOptions, type SaveOptions, type SnnDescription } from './snn/network.js';
/** Runs split over machines or resumed: shard files merged exactly into one record. */
export { mergeShards } from './api/merge.js';
export { readShardFile, type ShardFile } from './api/shard-file.js';
export { type Shard } from './api/shards.js';
/** Deploying: NIR export for a neuromorphic target, the network as that target computes it, NIR import. */
export { TARGETS, exportNir, asTarget, loadNir, type Target, type TargetOptions } from './api/nir.js';
/** What a run leaves behind (simulate's and the experiments' records), and reading one back. */
export {
  parseRecord,
  type SimulateRecord,
  type SimulationResult,
  type AsTargetRecord,
  type RunRecord,
  type CurvesRecord,
  type DelayRecord,
  type EnergyRecord,
} from './report/record.js';
export { reportHtml } from './report/html.js';
export { reportMarkdown } from './report/markdown.js';
/** Models and data sets. */
export { loadModel, type LoadedModel } from './model/load.js';
export { openDataset, openMemoryDataset, limitDataset, type OpenOptions } from './data/sources.js';
export { memoryDataset, type Dataset, type MemoryDataset, type Batch } from './data/dataset.js';
/** Threshold methods: the built-in ones and the interface for your own. */
export {
  METHODS,
  type Method,
  type ThresholdMethod,
  type CalibrationContext,
  type SiteInput,
  type MethodOptions,
} from './calibrate/methods.js';
/** Tasks and energy presets. */
export { TASKS, type Task } from './tasks/task.js';
export { PRESETS, type EnergyConstants } from './energy/energy.js';
/** The paper's experiments. */
export {
  ablation,
  iterationSweep,
  delaySweep,
  energyTable,
  plugplay,
  type ExperimentOptions,
} from './experiments/experiments.js';
export {
  fewerSteps,
  STEP_CALIBRATIONS,
  type FewerStepsOptions,
  type StepCalibration,
} from './experiments/fewer-steps.js';
export { SpikeportError, type ErrorCode } from './errors.js';
export type { Progress, OnProgress } from './progress.js';
