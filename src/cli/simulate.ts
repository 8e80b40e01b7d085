/** spikeport simulate (and the demo): a converted file, or an ANN converted on the fly, simulated and scored. */
import path from 'node:path';
import { Command } from 'commander';
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
import { energySummary, outputPaths, recordFiles, resultsTable, writeOutputs } from './output.js';

export interface RunContext {
  /** The flags set on the command line (not by default), for refusing those that would be ignored. */
  readonly given?: readonly string[];
  /** Print a line naming the model, data and calibration first (the demo). */
  readonly header?: boolean;
}

export async function runSimulate(modelFile: string, f: SimFlags, ctx: RunContext = {}): Promise<void> {
  const { given = [], header = false } = ctx;
  const prog = progressReporter(!f.quiet);
  try {
    // Bad files and options fail before any reading or calibration.
    const inputs = inputPaths(modelFile, f);
    const outputs = outputPaths(f);
    checkPaths(inputs, outputs);
    resolveSimulateOptions(simulateOptionsFrom(f, undefined));
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
      ...simulateOptionsFrom(f, prog.report, snn.source !== null, snn.form === 'step'), modelName: path.basename(modelFile),
    });
    prog.stop();
    // Written last, together: --save, --json, --report, --markdown, or none of them.
    writeOutputs([...(f.save && !converted ? [{ path: f.save, data: snn.toBytes() }] : []), ...(await recordFiles(record, f))]);
    const cal = snn.meta.calibration;
    if (header) process.stdout.write(`${path.basename(modelFile)} on ${data.name} (${record.samples} samples), ${cal.method}, ${cal.iterations} iterations × batch ${cal.batchSize}\n\n`);
    process.stdout.write(resultsTable(record));
    if (record.energy) process.stdout.write(energySummary(record.energy));
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
    .action(async (model: string, f: SimFlags, c: Command) => runSimulate(model, f, { given: givenFlags(c) }));
}
