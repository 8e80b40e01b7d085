/**
 * spikeport as a library. Nothing here prints; errors are `SpikeportError`s that name the
 * option field at fault.
 *
 *   const snn = await convert('model.onnx', 'mnist:train', { iterations: 50 });
 *   const run = await simulate(snn, 'mnist:test', { T: [8, 16, 32], references: true });
 *   snn.save('model.snn.onnx');
 */
/** convert(model, data, options?) → Snn, ConvertOptions and CONVERT_DEFAULTS. */
export * from './api/convert.js';
/** simulate(snn, data, options?) → SimulateRecord, SimulateOptions and SIMULATE_DEFAULTS. */
export * from './api/simulate.js';
/** The converted network in memory: Snn (save, describe, thresholds), loadSnn, attachSource. */
export * from './snn/network.js';
/** The converted file's format: metadata keys, SnnMetadata, SnnSpec, encode / validating decode. */
export * from './snn/format.js';
/** Threshold methods: the ThresholdMethod interface, the built-in methods, fixed thresholds. */
export * from './calibrate/methods.js';
/** Calibration alone: calibrate(preparedModel, data, options?), CalibrateOptions, CALIBRATION_DEFAULTS. */
export * from './calibrate/calibrate.js';
export type { Thresholds, Granularity } from './calibrate/thresholds.js';
/** Models: loadModel, prepareModel, LoadedModel, PreparedModel. */
export * from './model/load.js';
export * from './model/prepare.js';
/** Data sets: openDataset ("mnist:test", "fashion-mnist:train", "npz:FILE", …), Dataset, Normalize. */
export * from './data/sources.js';
export type { Dataset, Normalize, DetectionBox } from './data/dataset.js';
/** Tasks and metrics. */
export { TASKS, METRIC_NAMES, type Task, type Score } from './tasks/task.js';
/** Energy: presets and constants, EnergyReport. */
export * from './energy/energy.js';
/** Records (what simulate and the experiments return) and their HTML / Markdown rendering. */
export * from './report/record.js';
export { reportHtml } from './report/html.js';
export { reportMarkdown } from './report/markdown.js';
/** The paper's experiments: ablation, iterationSweep, delaySweep, energyTable. */
export * from './experiments/experiments.js';
export type { Engine } from './runtime/simulate.js';
export type { SiteErrors, SiteError } from './analysis/site-errors.js';
export * from './errors.js';
export * from './progress.js';
