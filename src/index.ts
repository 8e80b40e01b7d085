/** spikeport as a library: convert, save, load, simulate and score. Nothing here prints. */
export { UserError } from './errors.js';
export type { Graph, Node, Tensor } from './graph/ir.js';
export { decodeModel, encodeModel } from './onnx/codec.js';
export { prepare } from './graph/passes.js';
export { plan, type Plan, type Site } from './graph/plan.js';
export { loadModel, prepareModel, type LoadedModel, type PreparedModel } from './model.js';
export { calibrate, METHODS, type Method, type Calibration, type Thresholds } from './calibrate/methods.js';
export { buildSnn, type Snn, type SnnSpec } from './snn/build.js';
export { buildLoop } from './snn/loop.js';
export { simulate } from './runtime/simulate.js';
export { openDataset } from './data/sources.js';
export {
  convert, withMetadata, saveSnn, loadSnn, simulateAndScore, simulateWindows, simulateRecord, annReference, delayAt, energyOf,
  type Converted, type SimulationReport, type SimulationResult, type RunOptions, type Engine,
} from './pipeline.js';
export { energyReport, energyConstants, PRESETS, type EnergyReport, type EnergyConstants } from './energy/energy.js';
export { siteErrors, type SiteErrors } from './analysis/site-errors.js';
export { TASKS, METRIC_NAMES, type Task } from './tasks/task.js';
export { meanAveragePrecision, decode as decodeDetections, nms } from './tasks/detection.js';
export { ConfusionMatrix } from './tasks/segmentation.js';
export { reportHtml } from './report/html.js';
export { reportMarkdown } from './report/markdown.js';
export type { RunRecord, SimulateRecord } from './report/record.js';
export { ablation, iterationSweep, delaySweep, energyTable } from './experiments/experiments.js';
