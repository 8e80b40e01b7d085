/** spikeport convert: calibrate, build, save. */
import path from 'node:path';
import { Command, Option } from 'commander';
import { CONVERT_DEFAULTS, convert, declaredInputShape, resolveConvertOptions } from '../api/convert.js';
import { loadModel } from '../model/load.js';
import { SPIKE_FORMS, type SnnForm, type SpikeForm } from '../snn/format.js';
import { checkPaths } from '../files.js';
import { calibrationOptions, convertOptionsFrom, imageOptions, inputPaths, type CalibFlags } from './options.js';
import { progressReporter } from './progress.js';
import { normalizationLine, outputPaths, table, writeOutputs } from './output.js';
import { openDataset } from '../data/sources.js';

interface ConvertFlags extends CalibFlags {
  data: string;
  out: string;
  json?: string;
  format: SnnForm;
  spikes: SpikeForm;
}

export function convertCommand(): Command {
  return calibrationOptions(
    new Command('convert')
      .description('calibrate thresholds on training data and write the spiking network as an ONNX file')
      .argument('<model>', 'the ANN, an ONNX file')
      .requiredOption(
        '--data <spec>',
        'calibration data: mnist:train, fashion-mnist:train[@DIR], npz:FILE, imagefolder:DIR, mnist-seg|mnist-det|mnist-video:train',
      )
      .requiredOption('--out <file>', 'where to write the spiking network (.onnx)')
      .addOption(
        new Option(
          '--format <form>',
          'step: one time step per call (you loop, feeding states back); loop: all T steps in one call (ONNX Loop; inputs T and delay, outputs as the ANN)',
        )
          .choices(['step', 'loop'])
          .default('step'),
      )
      .addOption(
        new Option(
          '--spikes <form>',
          'amplitude: a spike carries its threshold θ; unit: θ folded into the weights, every neuron has threshold 1 and emits 0/1 (for hardware and NIR export; same readout)',
        )
          .choices([...SPIKE_FORMS])
          .default(CONVERT_DEFAULTS.spikes),
      )
      .option('--json <file>', 'write a conversion summary as JSON'),
  ).action(async (model: string, f: ConvertFlags) => {
    const prog = progressReporter(!f.quiet);
    try {
      checkPaths(inputPaths(model, f), outputPaths(f)); // nothing is read or computed before the files are right
      const opts = resolveConvertOptions({ ...convertOptionsFrom(f, prog.report), spikes: f.spikes });
      const loaded = loadModel(model);
      const calib = openDataset(f.data, f.calibLimit, imageOptions(f, declaredInputShape(loaded)));
      const snn = await convert(loaded, calib, opts);
      const bytes = snn.toBytes(f.format);
      prog.stop();
      const d = snn.describe();
      const seconds = snn.timing?.convert ?? 0;
      const summary = {
        model: path.basename(model),
        out: f.out,
        form: f.format,
        method: d.calibration.method,
        iterations: d.calibration.iterations,
        batchSize: d.calibration.batchSize,
        samples: d.calibration.samples,
        sites: d.sites.length,
        spikes: d.spikes,
        scaleNodes: d.scaleNodes,
        delay: snn.meta.delay,
        seconds,
        ...(snn.meta.corrections ? { corrections: snn.meta.corrections, refineSeconds: snn.timing?.refine } : {}),
        thresholds: d.sites.map((s) => ({ site: s.node, mean: s.thetaMean, max: s.thetaMax })),
        ...(snn.meta.normalization
          ? {
              normalization: {
                norms: snn.meta.normalization.norms,
                samples: snn.meta.normalization.samples,
                cost: snn.meta.normalization.cost,
              },
            }
          : {}),
      };
      // Written last, together: the SNN and its summary, or neither.
      writeOutputs([
        { path: f.out, data: bytes },
        ...(f.json ? [{ path: f.json, data: JSON.stringify(summary, null, 2) + '\n' }] : []),
      ]);
      process.stdout.write(
        `${table(
          ['site', 'neurons', 'θ mean', 'θ max', 'latency r'],
          d.sites.map((s) => [
            s.node,
            String(s.neurons),
            s.thetaMean.toFixed(4),
            s.thetaMax.toFixed(4),
            s.latency.toFixed(3),
          ]),
        )}\n\n`,
      );
      const c = snn.meta.corrections;
      const extra = [
        ...(c?.biasT ? [`bias calibration for T = ${c.biasT} on ${c.samples} samples`] : []),
        ...(c?.potentialT ? [`potential calibration for T = ${c.potentialT} on ${c.samples} samples`] : []),
        ...(snn.meta.delay.fitted
          ? [
              `delays fitted for T ≤ ${snn.meta.delay.fitted.length} on ${c?.delayFitSamples} samples (simulate --delay fit)`,
            ]
          : []),
        ...(d.spikes === 'unit'
          ? [
              `unit spikes (θ folded into the weights${d.scaleNodes.length ? `, ${d.scaleNodes.length} scale node${d.scaleNodes.length > 1 ? 's' : ''} where branches meet: ${d.scaleNodes.join(', ')}` : ''})`,
            ]
          : []),
      ];
      if (snn.meta.normalization) process.stdout.write(normalizationLine(snn.meta.normalization));
      process.stdout.write(
        `wrote ${f.out}: ${d.sites.length} neuron sites, ${d.calibration.method} (${d.calibration.iterations} iterations × ${d.calibration.batchSize}), estimated delay d̂ = ${d.delay}, ${seconds.toFixed(1)} s${extra.length ? `; ${extra.join('; ')}` : ''}\n`,
      );
    } finally {
      prog.stop();
    }
  });
}
