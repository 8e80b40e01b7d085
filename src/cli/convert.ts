/** spikeport convert: calibrate, build, save. */
import path from 'node:path';
import { Command, Option } from 'commander';
import { CONVERT_DEFAULTS, convert, declaredInputShape, resolveConvertOptions } from '../api/convert.js';
import { loadModel } from '../model/load.js';
import { SPIKE_FORMS, normalizationSummary, type SnnForm, type SpikeForm } from '../snn/format.js';
import { checkPaths } from '../files.js';
import {
  calibrationOptions,
  convertOptionsFrom,
  dataSpecs,
  imageOptions,
  inputPaths,
  int,
  type CalibFlags,
} from './options.js';
import { progressReporter } from './progress.js';
import { normalizationLine, outputPaths, printNotices, table, writeOutputs } from './output.js';
import { openDataset } from '../data/sources.js';
import { storedFrameRate } from '../model/prepare.js';
import { SpikeportError } from '../errors.js';
import { TARGETS, toNirGraph } from '../api/nir.js';

interface ConvertFlags extends CalibFlags {
  data: string;
  out: string;
  json?: string;
  format: SnnForm;
  spikes?: SpikeForm;
  target?: string;
  targetT?: number;
  weightBits?: number;
}

export function convertCommand(): Command {
  return calibrationOptions(
    new Command('convert')
      .description('calibrate thresholds on training data and write the spiking network as an ONNX file')
      .argument('<model>', 'the ANN, an ONNX file')
      .requiredOption('--data <spec>', `calibration data: ${dataSpecs('train')}`)
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
        ).choices([...SPIKE_FORMS]),
      )
      .addOption(
        new Option(
          '--target <profile>',
          'calibrate for what this NIR target computes (no θ/2 start, its reset, its arithmetic; docs/nir.md): corrections kept in the file for export nir and --as-target; implies --spikes unit',
        ).choices([...TARGETS]),
      )
      .option(
        '--target-T <n>',
        `the T the target corrections are tuned for (default ${CONVERT_DEFAULTS.targetT})`,
        int(1),
      )
      .option('--weight-bits <n>', 'with --target: calibrate with N-bit integer weights on the target', int(0))
      .option('--json <file>', 'write a conversion summary as JSON'),
  ).action(async (model: string, f: ConvertFlags) => {
    const prog = progressReporter(!f.quiet);
    try {
      if (f.classes !== undefined)
        throw new SpikeportError(
          'invalid-option',
          '--classes: convert reads no labels (calibration needs none); give the class names to simulate',
        );
      checkPaths(inputPaths(model, f), outputPaths(f)); // nothing is read or computed before the files are right
      const opts = resolveConvertOptions({
        ...convertOptionsFrom(f, prog.report),
        ...(f.spikes ? { spikes: f.spikes } : {}),
        ...(f.target ? { target: f.target } : {}),
        ...(f.targetT !== undefined ? { targetT: f.targetT } : {}),
        ...(f.weightBits !== undefined ? { weightBits: f.weightBits } : {}),
      });
      const loaded = loadModel(model);
      const calib = openDataset(
        f.data,
        f.calibLimit,
        imageOptions(f, declaredInputShape(loaded), f.preprocess, false, storedFrameRate(loaded.graph)),
      );
      const snn = await convert(loaded, calib, opts);
      const bytes = snn.toBytes(f.format, f.out);
      const targetNotes = snn.meta.target ? toNirGraph(snn, snn.meta.target.profile).notes : [];
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
        ...(d.group ? { group: d.group } : {}),
        delay: snn.meta.delay,
        seconds,
        ...(snn.meta.corrections ? { corrections: snn.meta.corrections, refineSeconds: snn.timing?.refine } : {}),
        ...(snn.meta.target ? { target: snn.meta.target } : {}),
        thresholds: d.sites.map((s) => ({ site: s.node, mean: s.thetaMean, max: s.thetaMax })),
        ...(snn.meta.normalization ? { normalization: normalizationSummary(snn.meta.normalization) } : {}),
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
        ...(d.group
          ? [
              `${d.group.kind} groups of ${d.group.size} binary neurons per ANN neuron (neurons counts them all; d̂ and latencies in steps of the group)`,
            ]
          : []),
        ...(snn.meta.delay.fitted
          ? [
              `delays fitted for T ≤ ${snn.meta.delay.fitted.length} on ${c?.delayFitSamples} samples (simulate --delay fit)`,
            ]
          : []),
        ...(snn.meta.target ? [`converted for ${snn.meta.target.profile}`] : []),
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
      if (snn.meta.target)
        process.stdout.write(
          `for ${snn.meta.target.profile} (export nir --target ${snn.meta.target.profile} writes them):\n${targetNotes.map((n) => `  - ${n}\n`).join('')}`,
        );
      printNotices(snn.notices);
    } finally {
      prog.stop();
    }
  });
}
