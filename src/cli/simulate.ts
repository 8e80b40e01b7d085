/** spikeport simulate (and the demo): a converted file, or an ANN converted on the fly, simulated and scored. */
import path from 'node:path';
import { Command } from 'commander';
import { convert, resolveConvertOptions } from '../api/convert.js';
import { resolveSimulateOptions, simulate } from '../api/simulate.js';
import { loadModel } from '../model/load.js';
import { isSnnGraph } from '../snn/format.js';
import { attachSource, snnFromGraph, type Snn } from '../snn/network.js';
import { openDataset } from '../data/sources.js';
import {
  calibrationOptions, calibrationSpec, convertOptionsFrom, energyOptions, outputOptions, simulateOptions, simulateOptionsFrom, type SimFlags,
} from './options.js';
import { progressReporter } from './progress.js';
import { energySummary, resultsTable, writeOutputs } from './output.js';

export async function runSimulate(modelFile: string, f: SimFlags, header = false): Promise<void> {
  const prog = progressReporter(!f.quiet);
  try {
    // Bad options fail before any reading or calibration.
    resolveSimulateOptions(simulateOptionsFrom(f, undefined));
    const convertOptions = resolveConvertOptions(convertOptionsFrom(f, prog.report));
    const loaded = loadModel(modelFile);
    let snn: Snn;
    if (isSnnGraph(loaded.graph)) {
      snn = await attachSource(snnFromGraph(loaded.graph, path.basename(modelFile)), modelFile, { ann: f.ann, threads: f.threads });
    } else {
      const calib = openDataset(calibrationSpec(f.data, f.calib), f.calibLimit);
      snn = await convert(loaded, calib, convertOptions);
      if (f.save) snn.save(f.save);
    }
    const data = openDataset(f.data, f.limit);
    const record = await simulate(snn, data, {
      ...simulateOptionsFrom(f, prog.report, snn.source !== null, snn.form === 'step'), modelName: path.basename(modelFile),
    });
    prog.stop();
    await writeOutputs(record, f);
    const cal = snn.meta.calibration;
    if (header) process.stdout.write(`${path.basename(modelFile)} on ${data.name} (${record.samples} samples), ${cal.method}, ${cal.iterations} iterations × batch ${cal.batchSize}\n\n`);
    process.stdout.write(resultsTable(record));
    if (record.energy) process.stdout.write(energySummary(record.energy));
  } finally {
    prog.stop();
  }
}

export function simulateCommand(): Command {
  return calibrationOptions(outputOptions(energyOptions(simulateOptions(new Command('simulate')
    .description('simulate a spiking network for T steps and report accuracy against T, with and without delayed evaluation')
    .argument('<model>', 'an SNN from spikeport convert, or an ANN (converted on the fly with the calibration options)')))))
    .action(async (model: string, f: SimFlags) => runSimulate(model, f));
}
