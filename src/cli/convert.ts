/** spikeport convert: calibrate, build, save. */
import path from 'node:path';
import { Command, Option } from 'commander';
import { convert, declaredInputShape, resolveConvertOptions } from '../api/convert.js';
import { loadModel } from '../model/load.js';
import type { SnnForm } from '../snn/format.js';
import { checkPaths } from '../files.js';
import { calibrationOptions, convertOptionsFrom, imageOptions, inputPaths, type CalibFlags } from './options.js';
import { progressReporter } from './progress.js';
import { outputPaths, table, writeOutputs } from './output.js';
import { openDataset } from '../data/sources.js';

interface ConvertFlags extends CalibFlags { data: string; out: string; json?: string; format: SnnForm }

export function convertCommand(): Command {
  return calibrationOptions(new Command('convert')
    .description('calibrate thresholds on training data and write the spiking network as an ONNX file')
    .argument('<model>', 'the ANN, an ONNX file')
    .requiredOption('--data <spec>', 'calibration data: mnist:train, fashion-mnist:train[@DIR], npz:FILE, imagefolder:DIR, mnist-seg|mnist-det|mnist-video:train')
    .requiredOption('--out <file>', 'where to write the spiking network (.onnx)')
    .addOption(new Option('--format <form>', 'step: one time step per call (you loop, feeding states back); loop: all T steps in one call (ONNX Loop; inputs T and delay, outputs as the ANN)').choices(['step', 'loop']).default('step'))
    .option('--json <file>', 'write a conversion summary as JSON'))
    .action(async (model: string, f: ConvertFlags) => {
      const prog = progressReporter(!f.quiet);
      try {
        checkPaths(inputPaths(model, f), outputPaths(f)); // nothing is read or computed before the files are right
        const opts = resolveConvertOptions(convertOptionsFrom(f, prog.report));
        const loaded = loadModel(model);
        const calib = openDataset(f.data, f.calibLimit, imageOptions(f, declaredInputShape(loaded)));
        const snn = await convert(loaded, calib, opts);
        const bytes = snn.toBytes(f.format);
        prog.stop();
        const d = snn.describe();
        const seconds = snn.timing?.convert ?? 0;
        const summary = {
          model: path.basename(model), out: f.out, form: f.format, method: d.calibration.method, iterations: d.calibration.iterations,
          batchSize: d.calibration.batchSize, samples: d.calibration.samples, sites: d.sites.length,
          delay: snn.meta.delay, seconds,
          thresholds: d.sites.map((s) => ({ site: s.node, mean: s.thetaMean, max: s.thetaMax })),
        };
        // Written last, together: the SNN and its summary, or neither.
        writeOutputs([{ path: f.out, data: bytes }, ...(f.json ? [{ path: f.json, data: JSON.stringify(summary, null, 2) + '\n' }] : [])]);
        process.stdout.write(`${table(['site', 'neurons', 'θ mean', 'θ max', 'latency r'], d.sites.map((s) => [
          s.node, String(s.neurons), s.thetaMean.toFixed(4), s.thetaMax.toFixed(4), s.latency.toFixed(3)]))}\n\n`);
        process.stdout.write(`wrote ${f.out}: ${d.sites.length} neuron sites, ${d.calibration.method} (${d.calibration.iterations} iterations × ${d.calibration.batchSize}), estimated delay d̂ = ${d.delay}, ${seconds.toFixed(1)} s\n`);
      } finally {
        prog.stop();
      }
    });
}
