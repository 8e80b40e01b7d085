#!/usr/bin/env node
/**
 * The spikeport command line: parses options, calls the library, prints.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, InvalidArgumentError, Option } from 'commander';
import { UserError } from '../errors.js';
import { METHODS, type Method } from '../calibrate/methods.js';
import { openDataset } from '../data/sources.js';
import { encodeDatasetNpz } from '../data/npz.js';
import type { Normalize } from '../data/dataset.js';
import { loadModel, type LoadedModel, type PreparedModel } from '../model.js';
import {
  convert, findSourceAnn, isSnnGraph, prepareModel, saveSnn, simulateRecord,
  snnFromGraph, withMetadata, writeFileAtomic, type Engine, type LoadedSnn, type SimulationReport, type SnnForm,
} from '../pipeline.js';
import { progressReporter } from './progress.js';
import { pct, table } from './format.js';
import { defaultThreads } from '../runtime/session.js';
import { PRESETS, energyConstants, type EnergyConstants, type EnergyReport } from '../energy/energy.js';
import { isRunRecord, RECORD_KINDS, type RunRecord } from '../report/record.js';
import { reportHtml } from '../report/html.js';
import { reportMarkdown } from '../report/markdown.js';
import { si } from '../report/sections.js';
import { ablation, delaySweep, energyTable, iterationSweep, type ExperimentOptions } from '../experiments/experiments.js';
import type { Dataset } from '../data/dataset.js';
import { METRIC_NAMES, TASKS, type Task } from '../tasks/task.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const MODELS_DIR = path.join(ROOT, 'models');

function int(name: string, min = 0) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be an integer ≥ ${min}`);
    return n;
  };
}

function positive(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a number > 0`);
    return n;
  };
}

function stepList(v: string): number[] {
  const Ts = v.split(',').map((s) => Number(s.trim()));
  if (Ts.length === 0 || Ts.some((T) => !Number.isInteger(T) || T < 1)) {
    throw new InvalidArgumentError('time steps must be a comma-separated list of integers ≥ 1, e.g. 8,16,32');
  }
  return Ts;
}

function numberList(v: string): number[] {
  const xs = v.split(',').map(Number);
  if (xs.some((x) => !Number.isFinite(x))) throw new InvalidArgumentError('expected comma-separated numbers');
  return xs;
}

function delayOption(v: string): number | 'auto' | 'off' {
  if (v === 'auto' || v === 'off') return v;
  return int('--delay')(v);
}

interface CalibFlags {
  method: Method; iterations: number; batch: number; stepSize: number; percentile: number; seed: number;
  shuffle: boolean; thresholds?: string; maxpool: 'accumulated' | 'per-step'; readout?: string;
  mean?: number[]; std?: number[]; calibLimit?: number; threads: number; quiet?: boolean; engine: Engine;
}

function addCalibrationOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--method <name>', 'threshold calibration method').choices([...METHODS]).default('cltb'))
    .option('--iterations <n>', 'calibration iterations (one batch each); few give low thresholds (best at small T), many give thresholds near the max (best at large T)', int('--iterations', 1), 100)
    .option('--batch <n>', 'batch size for calibration and simulation', int('--batch', 1), 100)
    .option('--step-size <c>', 'LTB step size c in θ ← θ + 2c·mean((x−θ)⁺)', positive('--step-size'), 1)
    .option('--percentile <p>', 'RobustNorm percentile of positive activations', positive('--percentile'), 99.9)
    .option('--seed <n>', 'seed for the calibration sample order', int('--seed'), 0)
    .option('--no-shuffle', 'take calibration samples in data set order')
    .option('--thresholds <file>', 'JSON {"<site node>": θ or [θ per channel]} for --method fixed')
    .addOption(new Option('--maxpool <mode>', 'max pooling in the SNN: on accumulated current (exact) or per step (the paper\'s code; biased)').choices(['accumulated', 'per-step']).default('accumulated'))
    .option('--readout <node>', 'end the spiking part at this node: its output is the readout, averaged over steps; everything after it runs as ANN on that average')
    .option('--mean <values>', 'input normalisation mean, per channel (overrides the model metadata)', numberList)
    .option('--std <values>', 'input normalisation std, per channel', numberList)
    .option('--calib-limit <n>', 'use only the first N calibration samples', int('--calib-limit', 1))
    .option('--threads <n>', 'ONNX Runtime threads', int('--threads', 1), defaultThreads())
    .addOption(new Option('--engine <engine>', 'simulation: steps (one ONNX Runtime call per step), loop (one ONNX Loop call per batch), auto (time the first batch with each, keep the faster)').choices(['auto', 'steps', 'loop']).default('auto'))
    .option('-q, --quiet', 'no progress output');
}

function normalizeFrom(f: CalibFlags): Normalize | undefined {
  if (!f.mean && !f.std) return undefined;
  if (!f.mean || !f.std) throw new UserError('--mean and --std go together');
  if (f.std.some((s) => s <= 0)) throw new UserError('--std values must be > 0');
  return { mean: f.mean, std: f.std };
}

function readThresholds(file: string | undefined): Record<string, number | number[]> | undefined {
  if (!file) return undefined;
  if (!fs.existsSync(file)) throw new UserError(`--thresholds: no such file ${file}`);
  try {
    const v = JSON.parse(fs.readFileSync(file, 'utf8')) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
    return v as Record<string, number | number[]>;
  } catch (e) {
    throw new UserError(`--thresholds ${file}: not a JSON object of site thresholds (${(e as Error).message})`);
  }
}

async function doConvert(modelFile: string, calibSpec: string, f: CalibFlags, progress: (p: { phase: string; done: number; total: number }) => void, form: SnnForm = 'step'): Promise<LoadedSnn & { seconds: number; model: PreparedModel }> {
  const t0 = performance.now();
  const loaded = loadModel(modelFile);
  if (isSnnGraph(loaded.graph)) throw new UserError(`${modelFile} is already a spiking network; convert takes the ANN`);
  const calib = openDataset(calibSpec, f.calibLimit);
  if (f.method === 'fixed' && !f.thresholds) throw new UserError('--method fixed needs --thresholds FILE');
  const c = await convert(loaded, calib, {
    method: f.method, iterations: f.iterations, batchSize: f.batch, stepSize: f.stepSize, percentile: f.percentile,
    seed: f.seed, shuffle: f.shuffle, fixed: readThresholds(f.thresholds), maxpool: f.maxpool,
    readoutNode: f.readout, normalize: normalizeFrom(f), threads: f.threads, onProgress: progress,
  });
  const graph = withMetadata(c, f.readout, form);
  return { ...snnFromGraph(graph, modelFile), seconds: (performance.now() - t0) / 1000, model: c.model };
}

/** Calibration data for an ANN simulated on `spec`: its train split, or what the user names. */
function calibrationSpec(spec: string, given?: string): string {
  if (given) return given;
  const m = /^(mnist|fashion-mnist|mnist-seg|mnist-det|mnist-video):test(@.*)?$/.exec(spec);
  if (!m) throw new UserError(`--calib DATA is needed to calibrate on something other than the test data ${spec}`);
  return `${m[1]}:train${m[2] ?? ''}`;
}

function printResults(r: SimulationReport, extra: { ann?: { metric: number }; clipped?: { metric: number }; dhat: number }): void {
  const [m1, m2] = METRIC_NAMES[r.task];
  const rows = r.results.map((x) => [String(x.T), String(x.delay), pct(x.metric), pct(x.metricNoDelay), pct(x.secondary)]);
  const lines = [
    table(['T', 'delay', `${m1} %`, 'no delay %', `${m2} %`], rows),
    '',
    `estimated delay d̂ = ${extra.dhat}; delay at T = min(d̂, ⌊T/2⌋) unless --delay is given`,
  ];
  if (extra.ann) lines.push(`ANN ${m1} ${pct(extra.ann.metric)} %, clipped ANN ${m1} ${pct(extra.clipped?.metric)} % (same ${r.samples} samples)`);
  process.stdout.write(lines.join('\n') + '\n');
}

interface OutputFlags { json?: string; report?: string; markdown?: string }

interface EnergyFlags { energy: string; eSop?: number; eMac?: number }

interface SimFlags extends CalibFlags, OutputFlags, EnergyFlags {
  data: string; T: number[]; delay: number | 'auto' | 'off'; ann?: string; calib?: string; limit?: number; save?: string;
  siteErrors: number; siteErrorsT?: number; task?: Task;
}

function energyFrom(f: EnergyFlags): EnergyConstants {
  return energyConstants(f.energy, { eSop: f.eSop === undefined ? undefined : f.eSop * 1e-12, eMac: f.eMac === undefined ? undefined : f.eMac * 1e-12 });
}

/** --json, --report (HTML), --markdown: each written whole or not at all. */
async function writeOutputs(r: RunRecord, f: OutputFlags): Promise<void> {
  if (f.json) writeFileAtomic(f.json, JSON.stringify(r, null, 2) + '\n');
  if (f.report) writeFileAtomic(f.report, await reportHtml(r));
  if (f.markdown) writeFileAtomic(f.markdown, reportMarkdown(r));
}

function energySummary(e: EnergyReport): string {
  const at = (p: EnergyReport['sops90'], x: number): string => (p ? `SOPs${x} ${si(p.sops)} at T=${p.T} (${p.fpsPerW.toFixed(1)} FPS/W)` : `SOPs${x}: not reached`);
  const last = e.perT[e.perT.length - 1];
  return `energy (${e.constants.name}): ANN ${si(e.ann.macs)} MACs, ${e.ann.fpsPerW.toFixed(1)} FPS/W; SNN at T=${last.T} ${si(last.sops)} SOPs, ${last.fpsPerW.toFixed(1)} FPS/W; ${at(e.sops90, 90)}; ${at(e.sops95, 95)}\n`;
}

async function runSimulate(modelFile: string, f: SimFlags, fromDemo = false): Promise<void> {
  const prog = progressReporter(!f.quiet);
  try {
    const loaded = loadModel(modelFile);
    let snn: LoadedSnn;
    let ann: PreparedModel | null = null;
    let convertSeconds: number | null = null;
    if (isSnnGraph(loaded.graph)) {
      snn = snnFromGraph(loaded.graph, modelFile);
      const annFile = f.ann ?? findSourceAnn(modelFile, snn.meta);
      if (annFile) {
        const source = loadModel(annFile);
        if (source.sha256 !== snn.meta.source.sha256) throw new UserError(`--ann ${annFile} is not the model ${modelFile} was converted from (${snn.meta.source.file}, sha256 ${snn.meta.source.sha256.slice(0, 12)}…)`);
        ann = await prepareModel(source, { readoutNode: snn.meta.readoutNode, normalize: snn.meta.normalize ?? undefined, threads: f.threads });
      }
    } else {
      const c = await doConvert(modelFile, calibrationSpec(f.data, f.calib), f, prog.report);
      snn = c;
      ann = c.model;
      convertSeconds = c.seconds;
      if (f.save) saveSnn(f.save, snn.graph);
    }
    const data = openDataset(f.data, f.limit);
    const delay = f.delay === 'auto' ? undefined : f.delay === 'off' ? 0 : f.delay;
    const { record, report } = await simulateRecord(snn, data, {
      Ts: f.T, batchSize: f.batch, delay, task: f.task, engine: f.engine, threads: f.threads, onProgress: prog.report,
      ann, convertSeconds, siteErrors: f.siteErrors, siteErrorsT: f.siteErrorsT, energy: energyFrom(f), modelName: path.basename(modelFile), dataName: f.data,
    });
    prog.stop();
    const cal = snn.meta.calibration;
    await writeOutputs(record, f);
    if (fromDemo) process.stdout.write(`${path.basename(modelFile)} on ${data.name} (${report.samples} samples), ${cal.method}, ${cal.iterations} iterations × batch ${cal.batchSize}\n\n`);
    printResults(report, { ann: record.ann ?? undefined, clipped: record.clippedAnn ?? undefined, dhat: snn.meta.delay.estimated });
    if (record.energy) process.stdout.write(energySummary(record.energy));
  } finally {
    prog.stop();
  }
}

function simulateOptions(cmd: Command): Command {
  return cmd
    .requiredOption('--data <spec>', 'test data: mnist:test, fashion-mnist:test[@DIR], npz:FILE')
    .option('--T <list>', 'time steps to report (one simulation of the largest)', stepList, [8, 16, 32, 64, 128, 256])
    .option('--delay <d>', 'readout window start: auto = min(d̂, ⌊T/2⌋), off = 0, or a number of steps', delayOption, 'auto')
    .option('--limit <n>', 'use only the first N test samples', int('--limit', 1))
    .option('--ann <file>', 'the source ANN, for the ANN and clipped-ANN reference (found automatically next to the SNN)')
    .option('--calib <spec>', 'calibration data when MODEL is an ANN (default: the train split of --data)')
    .option('--save <file>', 'when MODEL is an ANN: also save the converted SNN here')
    .addOption(taskOption())
    .option('--site-errors <n>', 'samples for the per-site error analysis (clip error, SNN vs ANN per site; needs the ANN); 0 = off', int('--site-errors'), 100)
    .option('--site-errors-T <T>', 'T for the per-site error analysis (default: the largest --T)', int('--site-errors-T', 1));
}

function taskOption(): Option {
  return new Option('--task <task>', 'what the model does and how it is scored (default: from the data: masks → segmentation, boxes → detection, clips → video, else classification)').choices([...TASKS]);
}

function energyOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--energy <preset>', 'energy constants: paper (77 fJ/SOP, 12.5 pJ/MAC) or 45nm (0.9 pJ/AC, 4.6 pJ/MAC)').choices(Object.keys(PRESETS)).default('paper'))
    .option('--e-sop <pJ>', 'energy per synaptic operation in pJ (overrides the preset)', positive('--e-sop'))
    .option('--e-mac <pJ>', 'energy per multiply-accumulate in pJ (overrides the preset)', positive('--e-mac'));
}

function outputOptions(cmd: Command): Command {
  return cmd
    .option('--json <file>', 'write the results as JSON (spikeport report renders it)')
    .option('--report <file>', 'write a self-contained HTML report with charts')
    .option('--markdown <file>', 'write a Markdown summary');
}

interface ExpFlags extends CalibFlags, OutputFlags { data: string; calib?: string; limit?: number; T: number[]; task?: Task }

async function runExperiment(f: ExpFlags, run: (o: ExperimentOptions, model: LoadedModel, calib: Dataset, test: Dataset) => Promise<RunRecord>, models: string[]): Promise<void> {
  const prog = progressReporter(!f.quiet);
  try {
    const loaded = models.map((m) => loadModel(m));
    for (const [i, l] of loaded.entries()) if (isSnnGraph(l.graph)) throw new UserError(`${models[i]} is already a spiking network; experiments take the ANN`);
    const calib = openDataset(calibrationSpec(f.data, f.calib), f.calibLimit);
    const test = openDataset(f.data, f.limit);
    if (f.method !== 'cltb') process.stderr.write(`spikeport: note: experiments choose their own methods; --method ${f.method} is ignored\n`);
    const record = await run({
      Ts: f.T, task: f.task, engine: f.engine, iterations: f.iterations, batchSize: f.batch, stepSize: f.stepSize, percentile: f.percentile, seed: f.seed,
      shuffle: f.shuffle, maxpool: f.maxpool, readoutNode: f.readout, normalize: normalizeFrom(f), threads: f.threads, onProgress: prog.report,
    }, loaded[0], calib, test);
    prog.stop();
    await writeOutputs(record, f);
    process.stdout.write(reportMarkdown(record));
  } finally {
    prog.stop();
  }
}

function readRecord(file: string): RunRecord {
  if (!fs.existsSync(file)) throw new UserError(`no such file: ${file}`);
  let v: unknown;
  try {
    v = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new UserError(`${file} is not JSON (${(e as Error).message})`);
  }
  if (!isRunRecord(v)) throw new UserError(`${file} is not a spikeport record (no "kind" among ${RECORD_KINDS.join(', ')}); make one with simulate --json or experiment --json`);
  return v;
}

function bundledDataset(file: string): string {
  return (JSON.parse(fs.readFileSync(file.replace(/\.onnx$/, '.json'), 'utf8')) as { dataset: string }).dataset;
}

function bundledModel(name: string): string {
  const file = path.join(MODELS_DIR, `${name}.onnx`);
  if (!fs.existsSync(file)) {
    const known = fs.existsSync(MODELS_DIR) ? fs.readdirSync(MODELS_DIR).filter((f) => f.endsWith('.onnx')).map((f) => f.slice(0, -5)) : [];
    throw new UserError(`no bundled model "${name}" (bundled: ${known.join(', ')})`);
  }
  return file;
}

export function buildProgram(): Command {
  const program = new Command('spikeport')
    .description('Convert pretrained ReLU networks (ONNX) into spiking neural networks without retraining (Bu et al., CVPR 2025).')
    .version('0.1.0')
    .configureOutput({ outputError: (str, write) => write(`spikeport: ${str.trim()} (see --help)\n`) });

  addCalibrationOptions(program.command('convert')
    .description('calibrate thresholds on training data and write the spiking network as an ONNX file')
    .argument('<model>', 'the ANN, an ONNX file')
    .requiredOption('--data <spec>', 'calibration data: mnist:train, fashion-mnist:train[@DIR], npz:FILE')
    .requiredOption('--out <file>', 'where to write the spiking network (.onnx)')
    .addOption(new Option('--format <form>', 'step: one time step per call (you loop, feeding states back); loop: all T steps in one call (ONNX Loop; inputs T and delay, outputs as the ANN)').choices(['step', 'loop']).default('step'))
    .option('--json <file>', 'write a conversion summary as JSON'))
    .action(async (model: string, f: CalibFlags & { data: string; out: string; json?: string; format: SnnForm }) => {
      const prog = progressReporter(!f.quiet);
      try {
        const c = await doConvert(model, f.data, f, prog.report, f.format);
        saveSnn(f.out, c.graph);
        prog.stop();
        const m = c.meta;
        const summary = {
          model: path.basename(model), out: f.out, method: m.calibration.method, iterations: m.calibration.iterations,
          batchSize: m.calibration.batchSize, samples: m.calibration.samples, sites: m.spec.sites.length,
          delay: m.delay, seconds: c.seconds,
          thresholds: m.spec.sites.map((s) => ({ site: s.node, mean: s.theta.reduce((a, b) => a + b, 0) / s.theta.length, max: Math.max(...s.theta) })),
        };
        if (f.json) writeFileAtomic(f.json, JSON.stringify(summary, null, 2) + '\n');
        process.stdout.write(`${table(['site', 'neurons', 'θ mean', 'θ max', 'latency r'], m.spec.sites.map((s, i) => [
          s.node, String(s.neurons), summary.thresholds[i].mean.toFixed(4), summary.thresholds[i].max.toFixed(4), m.delay.latencies[i].toFixed(3)]))}\n\n`);
        process.stdout.write(`wrote ${f.out}: ${m.spec.sites.length} neuron sites, ${m.calibration.method} (${m.calibration.iterations} iterations × ${m.calibration.batchSize}), estimated delay d̂ = ${m.delay.estimated}, ${c.seconds.toFixed(1)} s\n`);
      } finally {
        prog.stop();
      }
    });

  addCalibrationOptions(outputOptions(energyOptions(simulateOptions(program.command('simulate')
    .description('simulate a spiking network for T steps and report accuracy against T, with and without delayed evaluation')
    .argument('<model>', 'an SNN from spikeport convert, or an ANN (converted on the fly with the calibration options)')))))
    .action(async (model: string, f: SimFlags) => runSimulate(model, f));

  addCalibrationOptions(outputOptions(energyOptions(program.command('demo')
    .description('convert and simulate a bundled model on its bundled data set, and print accuracy against T')
    .option('--model <name>', 'bundled model: mnist-cnn (needs only npm), fashion-vgg, fashion-resnet, fashion-mobilenet (need dataset-fashion-mnist), mnist-fcn, mnist-deeplab (segmentation), mnist-centernet (detection), mnist-r3d (video)', 'mnist-cnn')
    .option('--T <list>', 'time steps to report', stepList, [8, 16, 32, 64, 128])
    .option('--limit <n>', 'test samples', int('--limit', 1), 2000))))
    .action(async (f: SimFlags & { model: string }) => {
      const file = bundledModel(f.model);
      await runSimulate(file, { ...f, data: `${bundledDataset(file)}:test`, delay: 'auto', siteErrors: 100 }, true);
    });

  program.command('data')
    .description('write a data set (e.g. the generated mnist-seg, mnist-det, mnist-video) as .npz: x (uint8), y, masks, boxes (image, class, x, y, w, h)')
    .argument('<spec>', 'mnist-seg:train, mnist-det:test, mnist-video:train, mnist:test, …')
    .requiredOption('--out <file>', 'the .npz file to write')
    .option('--limit <n>', 'only the first N samples', int('--limit', 1))
    .action((spec: string, f: { out: string; limit?: number }) => {
      const d = openDataset(spec, f.limit);
      writeFileAtomic(f.out, encodeDatasetNpz(d));
      process.stdout.write(`wrote ${f.out}: ${d.size} samples of ${d.sampleShape.join('x')}${d.masks ? ', masks' : ''}${d.boxes ? `, ${d.boxes.length} boxes` : ''}\n`);
    });

  program.command('report')
    .description('render a JSON record (from simulate --json or experiment --json) as an HTML report and/or Markdown')
    .argument('<record>', 'the JSON file')
    .option('--out <file>', 'HTML report to write (default: the record\'s name with .html)')
    .option('--markdown <file>', 'also write a Markdown summary')
    .action(async (file: string, f: { out?: string; markdown?: string }) => {
      const record = readRecord(file);
      const out = f.out ?? file.replace(/\.json$/i, '') + '.html';
      await writeOutputs(record, { report: out, markdown: f.markdown });
      process.stdout.write(`wrote ${out}${f.markdown ? ` and ${f.markdown}` : ''}\n`);
    });

  const experiment = program.command('experiment')
    .description('the paper\'s experiments on your model: ablation (Fig. 3a), iterations (Fig. 3b), delay (Fig. 4), energy (Appendix F)');
  const expCommand = (name: string, description: string): Command => addCalibrationOptions(outputOptions(experiment.command(name)
    .description(description)
    .requiredOption('--data <spec>', 'test data: mnist:test, fashion-mnist:test[@DIR], npz:FILE')
    .option('--calib <spec>', 'calibration data (default: the train split of --data)')
    .option('--limit <n>', 'use only the first N test samples', int('--limit', 1))
    .addOption(taskOption())));
  expCommand('ablation', 'RobustNorm, LTB, CLTB and CLTB with delayed evaluation against T')
    .argument('<model>', 'the ANN, an ONNX file')
    .option('--T <list>', 'time steps', stepList, [8, 16, 32, 64, 128, 256])
    .action(async (model: string, f: ExpFlags) => runExperiment(f, async (o, m, calib, test) => ablation(m, calib, test, o), [model]));
  expCommand('iterations', 'CLTB with several iteration counts against T')
    .argument('<model>', 'the ANN, an ONNX file')
    .option('--T <list>', 'time steps', stepList, [8, 16, 32, 64, 128, 256])
    .option('--counts <list>', 'iteration counts to compare', stepList, [10, 50, 100, 200, 800])
    .action(async (model: string, f: ExpFlags & { counts: number[] }) => runExperiment(f, async (o, m, calib, test) => iterationSweep(m, calib, test, f.counts, o), [model]));
  expCommand('delay', 'accuracy against the chosen delay at several T, with d̂ marked')
    .argument('<model>', 'the ANN, an ONNX file')
    .option('--T <list>', 'time steps', stepList, [8, 16, 32, 64, 128])
    .action(async (model: string, f: ExpFlags) => runExperiment(f, async (o, m, calib, test) => delaySweep(m, calib, test, o), [model]));
  energyOptions(expCommand('energy', 'SOPs90/SOPs95 and FPS/W for one or more models (same data)')
    .argument('<models...>', 'ANN ONNX files')
    .option('--T <list>', 'time steps', stepList, [8, 16, 32, 64, 128, 256]))
    .action(async (models: string[], f: ExpFlags & EnergyFlags) => runExperiment(f, async (o, _m, calib, test) => energyTable(
      models.map((file) => ({ model: loadModel(file), calib, test })), energyFrom(f), o), models));
  return program;
}

async function main(): Promise<void> {
  try {
    await buildProgram().parseAsync(process.argv);
  } catch (e) {
    if (e instanceof UserError) {
      process.stderr.write(`spikeport: error: ${e.message}\n`);
      process.exitCode = 1;
    } else {
      process.stderr.write(`spikeport: internal error (please report): ${(e as Error).stack ?? String(e)}\n`);
      process.exitCode = 2;
    }
  }
}

await main();
