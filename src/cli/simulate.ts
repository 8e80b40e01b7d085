/** spikeport simulate (and the demo): a converted file, or an ANN converted on the fly, simulated and scored. */
import path from 'node:path';
import { Command, Option } from 'commander';
import { TARGETS, asTarget, checkTarget, resetOf } from '../api/nir.js';
import { convert, declaredInputShape, resolveConvertOptions } from '../api/convert.js';
import { resolveSimulateOptions, simulate } from '../api/simulate.js';
import { loadModel } from '../model/load.js';
import { isSnnGraph } from '../snn/format.js';
import { attachSource, snnFromGraph, type Snn } from '../snn/network.js';
import { dataFiles, openDataset } from '../data/sources.js';
import { checkPaths } from '../files.js';
import { SpikeportError } from '../errors.js';
import {
  CONVERSION_ONLY, calibrationOptions, calibrationSpec, convertOptionsFrom, energyOptions, flagOf, imageOptions, inputPaths, outputOptions, simulateOptions,
  simulateOptionsFrom, type SimFlags,
} from './options.js';
import { progressReporter } from './progress.js';
import { energySummary, outputPaths, pct, recordFiles, resultsTable, table, writeOutputs } from './output.js';
import { METRIC_NAMES } from '../tasks/task.js';

export interface RunContext {
  /** The flags set on the command line (not by default), for refusing those that would be ignored. */
  readonly given?: readonly string[];
  /** Print a line naming the model, data and calibration first (the demo). */
  readonly header?: boolean;
}

export async function runSimulate(modelFile: string, f: SimFlags & { asTarget?: string }, ctx: RunContext = {}): Promise<void> {
  const { given = [], header = false } = ctx;
  const prog = progressReporter(!f.quiet);
  try {
    // Bad files and options fail before any reading or calibration.
    const inputs = inputPaths(modelFile, f);
    const outputs = outputPaths(f);
    checkPaths(inputs, outputs);
    resolveSimulateOptions(simulateOptionsFrom(f, undefined));
    const target = f.asTarget === undefined ? null : checkTarget(f.asTarget, 'asTarget');
    const loaded = loadModel(modelFile);
    const converted = isSnnGraph(loaded.graph);
    let snn: Snn;
    if (converted) {
      const ignored = given.filter((flag) => CONVERSION_ONLY.has(flag));
      if (ignored.length) throw new SpikeportError('invalid-option', `${ignored.join(', ')}: ${path.basename(modelFile)} is already converted; these options apply when MODEL is an ANN`);
      snn = await attachSource(snnFromGraph(loaded.graph, path.basename(modelFile)), modelFile, { ann: f.ann, threads: f.threads });
      // The ANN found next to the SNN is an input too.
      if (snn.source) checkPaths([...inputs, { path: snn.source.source.path, role: 'the source ANN' }], outputs);
    } else {
      const convertOptions = resolveConvertOptions(convertOptionsFrom(f, prog.report));
      const calibSpec = calibrationSpec(f.data, f.calib);
      checkPaths([...inputs, ...dataFiles(calibSpec).map((p) => ({ path: p, role: 'the calibration data' }))], outputs);
      snn = await convert(loaded, openDataset(calibSpec, f.calibLimit, imageOptions(f, declaredInputShape(loaded))), convertOptions);
    }
    const data = openDataset(f.data, f.limit, imageOptions(f, snn.spec.inputShape, f.preprocess ?? snn.meta.preprocess));
    const record = await simulate(snn, data, {
      // The per-site analysis reads θ-amplitude spikes: a unit-spike file skips it (as a loop-form file does).
      ...simulateOptionsFrom(f, prog.report, snn.source !== null, snn.form === 'step' && !snn.meta.unit), modelName: path.basename(modelFile),
    });
    // The same network as the NIR target computes it (start 0, v > θ, its reset), on the same samples and windows.
    const onTarget = target ? await simulate(asTarget(snn, target), data, {
      ...simulateOptionsFrom(f, prog.report, false, false), modelName: path.basename(modelFile), energy: undefined, pictures: 0,
    }) : null;
    prog.stop();
    const files = await recordFiles(record, f);
    if (target && onTarget && f.json) {
      const withTarget = { ...record, asTarget: { target, reset: resetOf(target), results: onTarget.results } };
      files.splice(0, 1, { path: f.json, data: JSON.stringify(withTarget, null, 2) + '\n' });
    }
    // Written last, together: --save, --json, --report, --markdown, or none of them.
    writeOutputs([...(f.save && !converted ? [{ path: f.save, data: snn.toBytes() }] : []), ...files]);
    const cal = snn.meta.calibration;
    if (header) process.stdout.write(`${path.basename(modelFile)} on ${data.name} (${record.samples} samples), ${cal.method}, ${cal.iterations} iterations × batch ${cal.batchSize}\n\n`);
    process.stdout.write(resultsTable(record));
    if (record.energy) process.stdout.write(energySummary(record.energy));
    if (target && onTarget) {
      const [m1] = METRIC_NAMES[record.task ?? 'classification'];
      process.stdout.write(`\nas ${target} computes it (NIR IF: start 0, fires at v > threshold, ${resetOf(target) === 'subtract' ? 'subtracts the threshold' : 'resets to 0'}):\n`);
      process.stdout.write(`${table(['T', 'delay', `spikeport ${m1} %`, `${target} ${m1} %`, `${target} no delay %`], record.results.map((r, i) => [
        String(r.T), String(r.delay), pct(r.metric), pct(onTarget.results[i].metric), pct(onTarget.results[i].metricNoDelay)]))}\n`);
    }
  } finally {
    prog.stop();
  }
}

/** The flags the user set on the command line. */
export function givenFlags(cmd: Command): string[] {
  return Object.keys(cmd.opts()).filter((k) => cmd.getOptionValueSource(k) === 'cli').map((k) => flagOf(cmd, k));
}

export function simulateCommand(): Command {
  return calibrationOptions(outputOptions(energyOptions(simulateOptions(new Command('simulate')
    .description('simulate a spiking network for T steps and report accuracy against T, with and without delayed evaluation')
    .argument('<model>', 'an SNN from spikeport convert, or an ANN (converted on the fly with the calibration options)')))))
    .addOption(new Option('--as-target <profile>', 'also simulate the network as a NIR target computes it (no θ/2 start, v > threshold, its reset) and print both accuracies').choices([...TARGETS]))
    .action(async (model: string, f: SimFlags & { asTarget?: string }, c: Command) => runSimulate(model, f, { given: givenFlags(c) }));
}
