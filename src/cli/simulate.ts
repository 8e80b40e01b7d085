/** spikeport simulate (and the demo): a converted file, or an ANN converted on the fly, simulated and scored. */
import fs from 'node:fs';
import path from 'node:path';
import { Command, Option } from 'commander';
import { PROFILES, TARGETS, checkTarget, loadNir } from '../api/nir.js';
import { isHdf5 } from '../nir/hdf5.js';
import { convert, declaredInputShape, resolveConvertOptions } from '../api/convert.js';
import { simulate, simulateAsTarget, simulateShard } from '../api/simulate.js';
import { SIMULATE_DEFAULTS, resolveSimulateOptions, type SimulateOptions } from '../api/simulate-options.js';
import { checkWorkers, workerCheckpoints, workerPlan } from '../api/workers.js';
import { parseShard, shardProblem, type Shard } from '../api/shards.js';
import { readShardFile, shardJson } from '../api/shard-file.js';
import { loadModel } from '../model/load.js';
import { storedFrameRate } from '../model/prepare.js';
import { isSnnGraph } from '../snn/format.js';
import { attachSource, snnFromGraph, type Snn } from '../snn/network.js';
import { dataFiles, openDataset } from '../data/sources.js';
import { checkPaths } from '../files.js';
import { SpikeportError } from '../errors.js';
import { engineNotice } from '../runtime/engines.js';
import {
  CONVERSION_ONLY,
  FLAGS,
  calibrationOptions,
  int,
  noticeText,
  num,
  calibrationSpec,
  convertOptionsFrom,
  energyOptions,
  flagOf,
  imageOptions,
  inputPaths,
  outputOptions,
  simulateOptions,
  simulateOptionsFrom,
  type SimFlags,
} from './options.js';
import { progressReporter } from './progress.js';
import { shardFromEnv, type PickedShard } from './job-array.js';
import {
  energySummary,
  normalizationLine,
  outputPaths,
  pct,
  printNotices,
  recordFiles,
  resultsTable,
  table,
  timeSummary,
  writeOutputs,
} from './output.js';
import type { Notice } from '../progress.js';
import { metricNamesOf } from '../tasks/task.js';

export interface RunContext {
  /** false: do not take a shard from a job array's environment (the demo). */
  readonly jobArray?: boolean;
  /** The flags set on the command line (not by default), for refusing those that would be ignored. */
  readonly given?: readonly string[];
}

export interface ScaleFlags {
  asTarget?: string;
  weightBits?: number;
  shard?: string;
  shardCount?: number;
  checkpoint?: string;
  checkpointEvery: number;
  workers: number | 'auto';
}

export async function runSimulate(
  modelFile: string,
  f: SimFlags & Partial<ScaleFlags>,
  ctx: RunContext = {},
): Promise<void> {
  const { given = [] } = ctx;
  const prog = progressReporter(!f.quiet);
  const asked = f.workers ?? 'auto';
  // Ctrl-C (or a job's time limit) says what is kept before the usual exit codes. Worker
  // processes are ended by the library first (the signal aborts the run), then the same is said.
  const run = { batches: 0, workers: 1, inWorkers: false };
  const stop = new AbortController();
  let stoppedBy: NodeJS.Signals | null = null;
  const leave = (signal: NodeJS.Signals): never => {
    prog.stop();
    process.stderr.write(`spikeport: ${interruptedLine(f.checkpoint, run.workers, run.batches)}\n`);
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  const interrupted = (signal: NodeJS.Signals): void => {
    if (!run.inWorkers) leave(signal);
    stoppedBy ??= signal;
    stop.abort();
  };
  const listen = (on: boolean): void => {
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      if (on) process.on(signal, interrupted);
      else process.off(signal, interrupted);
    }
  };
  listen(true);
  try {
    // Bad files and options fail before any reading or calibration.
    const inputs = inputPaths(modelFile, f);
    const outputs = [
      ...outputPaths(f),
      ...(f.checkpoint !== undefined ? [{ path: f.checkpoint, role: '--checkpoint' }] : []),
    ];
    checkPaths(inputs, outputs);
    resolveSimulateOptions(simulateOptionsFrom(f, undefined));
    const target = f.asTarget === undefined ? null : checkTarget(f.asTarget, 'asTarget');
    const asTarget = target
      ? { target, ...(f.weightBits !== undefined ? { weightBits: f.weightBits } : {}) }
      : undefined;
    if (f.weightBits !== undefined && !target && !isHdf5(modelFile))
      throw new SpikeportError(
        'invalid-option',
        '--weight-bits quantises the target network: give --as-target PROFILE too',
      );
    if (isHdf5(modelFile)) return await runNir(modelFile, f, target ?? 'generic', given);
    // Shard K of N (N > 1) writes a shard file; a shard of 1 is the whole run, written as usual.
    const picked =
      f.shard !== undefined
        ? fromFlag(parseShard(f.shard))
        : ctx.jobArray === false
          ? null
          : shardFromEnv(process.env, f.shardCount);
    const sharded = picked && picked.shard.count > 1 ? picked : null;
    checkScale(f, sharded?.from ?? null, asked, asTarget, given);
    const loaded = loadModel(modelFile);
    const converted = isSnnGraph(loaded.graph);
    let snn: Snn;
    if (converted) {
      const ignored = given.filter((flag) => CONVERSION_ONLY.has(flag));
      if (ignored.length)
        throw new SpikeportError(
          'invalid-option',
          `${ignored.join(', ')}: ${path.basename(modelFile)} is already converted; these options apply when MODEL is an ANN`,
        );
      snn = await attachSource(snnFromGraph(loaded.graph, path.basename(modelFile)), modelFile, {
        ann: f.ann,
        threads: f.threads,
        device: f.device,
      });
      // The ANN found next to the SNN is an input too.
      if (snn.source) checkPaths([...inputs, { path: snn.source.source.path, role: 'the source ANN' }], outputs);
    } else {
      const convertOptions = resolveConvertOptions(convertOptionsFrom(f, prog.report));
      const calibSpec = calibrationSpec(f.data, f.calib);
      checkPaths([...inputs, ...dataFiles(calibSpec).map((p) => ({ path: p, role: 'the calibration data' }))], outputs);
      snn = await convert(
        loaded,
        openDataset(
          calibSpec,
          f.calibLimit,
          imageOptions(f, declaredInputShape(loaded), f.preprocess, false, storedFrameRate(loaded.graph)),
        ),
        convertOptions,
      );
    }
    // What freezing per-sample normalisations cost the ANN: said before any spike runs.
    if (snn.meta.normalization) process.stdout.write(normalizationLine(snn.meta.normalization));
    const data = openDataset(
      f.data,
      f.limit,
      // (--min-area picks calibration images; every test image is scored.)
      {
        ...imageOptions(f, snn.spec.inputShape, f.preprocess ?? snn.meta.preprocess, true, snn.meta.frameRate),
        minArea: undefined,
      },
    );
    const options = {
      // The per-site analysis reads θ-amplitude spikes: a unit-spike file skips it (as a loop-form file does).
      ...simulateOptionsFrom(f, prog.report, snn.source !== null, snn.form === 'step' && !snn.meta.unit),
      modelName: path.basename(modelFile),
      checkpoint: f.checkpoint,
      checkpointSeconds: f.checkpointEvery,
      onNotice: (n: Notice) => {
        prog.stop();
        process.stderr.write(`spikeport: ${noticeText(n)}\n`);
      },
    };
    const batches = Math.ceil(data.size / f.batch);
    run.batches = batches;
    if (sharded) {
      // Every shard needs a batch; said here, where the shard's origin is known (the library would say --shard).
      const problem = data.size > 0 ? shardProblem(sharded.shard, batches) : null;
      if (problem) throw new SpikeportError('invalid-option', `${sharded.source}: ${problem}`);
      // One shard of a run: its statistics go to --json; spikeport merge makes the results.
      const shard = await simulateShard(snn, data, { ...options, shard: sharded.shard });
      prog.stop();
      writeOutputs([
        ...(f.save && !converted ? [{ path: f.save, data: snn.toBytes(undefined, f.save) }] : []),
        { path: f.json as string, data: shardJson(shard) },
      ]);
      const { first, end } = shard.range;
      process.stdout.write(
        `shard ${sharded.shard.index} of ${sharded.shard.count} (${sharded.from}): batches ${first}..${end - 1} of ${shard.run.batches}, ${shard.tally.samples} samples → ${f.json}\n`,
      );
      process.stdout.write(
        `when all ${sharded.shard.count} shards are done: spikeport merge SHARD_FILES... --json all.json --report all.html\n`,
      );
      return;
    }
    const plan = workerPlan(snn, data, {
      workers: asked,
      T: options.T ?? SIMULATE_DEFAULTS.T,
      batchSize: f.batch,
      threads: f.threads,
      checkpoint: f.checkpoint,
      engine: f.engine,
      asTarget: target !== null,
    });
    const workers = plan.workers;
    checkWorkers(data, workers, f.batch);
    // Each worker keeps its own checkpoint beside the one named: outputs too.
    if (workers > 1 && f.checkpoint) {
      const mine = workerCheckpoints(f.checkpoint, workers).map((p, k) => ({
        path: p,
        role: `worker ${k}'s checkpoint`,
      }));
      checkPaths(
        [...inputs, ...(snn.source ? [{ path: snn.source.source.path, role: 'the source ANN' }] : [])],
        [...outputs, ...mine],
      );
    }
    run.workers = workers;
    run.inWorkers = workers > 1;
    // Workers of a large-state run start with the fused engine (runtime/auto.ts autoWorkerPlan).
    const inWorkers = plan.autoStart ? { ...options, autoStart: plan.autoStart } : options;
    const record = await simulate(snn, data, { ...inWorkers, workers, signal: stop.signal }).catch((e: unknown) => {
      if (stoppedBy) leave(stoppedBy);
      throw e;
    });
    run.inWorkers = false;
    // The same network as the NIR target computes it (start 0, v > θ, its reset, its arithmetic), on the same samples and windows.
    const onTarget = asTarget ? await simulateAsTarget(snn, data, { ...options, asTarget }) : null;
    prog.stop();
    const files = await recordFiles(record, f);
    // The comparison goes to --json (the reports show spikeport's run).
    if (onTarget && f.json)
      files.splice(0, 1, {
        path: f.json,
        data: JSON.stringify({ ...record, asTarget: onTarget.part }, null, 2) + '\n',
      });
    // Written last, together: --save, --json, --report, --markdown, or none of them.
    writeOutputs([...(f.save && !converted ? [{ path: f.save, data: snn.toBytes(undefined, f.save) }] : []), ...files]);
    const cal = snn.meta.calibration;
    const byFlags = options.normalize !== undefined ? ' (--mean/--std)' : '';
    process.stdout.write(
      `${path.basename(modelFile)} on ${data.name} (${record.samples} samples), ${cal.method}, ${cal.iterations} iterations × batch ${cal.batchSize}; ${normalizeText(record.normalize ?? null)}${byFlags}\n\n`,
    );
    // The fused engine asked for by name but not run (a graph it cannot plan): said, not silent.
    for (const [r, what] of [
      [record, ''],
      [onTarget?.record, ` (the run as ${target ?? ''} computes it)`],
    ] as const) {
      const note = r ? engineNotice(f.engine, r.engines) : null;
      if (note) process.stderr.write(`spikeport: note${what}: ${note.replace(/^engine\b/, FLAGS.engine)}\n`);
    }
    process.stdout.write(resultsTable(record));
    if (record.energy) process.stdout.write(energySummary(record.energy));
    process.stdout.write(timeSummary(record, performance.now() / 1000));
    printNotices(record.notices ?? []);
    if (target && onTarget) {
      const [m1] = metricNamesOf(record);
      process.stdout.write(
        `\nas ${target} computes it (${onTarget.profile.summary}${f.weightBits !== undefined ? `; ${f.weightBits}-bit weights` : ''}):\n${onTarget.part.notes.map((n) => `  - ${n}\n`).join('')}`,
      );
      process.stdout.write(
        `${table(
          ['T', 'delay', `spikeport ${m1} %`, `${target} ${m1} %`, `${target} no delay %`],
          record.results.map((r, i) => [
            String(r.T),
            String(r.delay),
            pct(r.metric),
            pct(onTarget.part.results[i].metric),
            pct(onTarget.part.results[i].metricNoDelay),
          ]),
        )}\n`,
      );
    }
  } finally {
    listen(false);
    prog.stop();
  }
}

/** The normalisation in effect, for the header line. */
function normalizeText(n: { mean: readonly number[]; std: readonly number[] } | null): string {
  return n ? `normalisation mean ${n.mean.join(',')}, std ${n.std.join(',')}` : 'no input normalisation';
}

/**
 * What an interrupted run keeps: the batches its checkpoint holds (each worker's, with
 * --workers), which the same command continues from; without --checkpoint, nothing.
 */
export function interruptedLine(checkpoint: string | undefined, workers: number, batches: number): string {
  if (!checkpoint)
    return 'interrupted: nothing saved (with --checkpoint FILE the batches done are kept, and the same command continues from them)';
  const files = workers > 1 ? workerCheckpoints(checkpoint, workers) : [checkpoint];
  let saved = 0;
  for (const file of files) {
    try {
      if (fs.existsSync(file)) saved += readShardFile(file).tally.batches.length;
    } catch {
      // not readable (another run's, or damaged): nothing of this run in it
    }
  }
  const where = workers > 1 ? `${checkpoint}.0 … .${workers - 1} (one per worker)` : checkpoint;
  return `interrupted: ${saved} of ${batches || '?'} batches saved in ${where}; the same command resumes`;
}

/** simulate FILE.nir: a NIR graph simulated as the profile's target computes it. */
async function runNir(
  file: string,
  f: SimFlags & Partial<ScaleFlags>,
  target: string,
  given: readonly string[],
): Promise<void> {
  const prog = progressReporter(!f.quiet);
  try {
    const refused = given.filter(
      (flag) => CONVERSION_ONLY.has(flag) || ['--shard', '--workers', '--checkpoint', '--ann'].includes(flag),
    );
    if (refused.length)
      throw new SpikeportError(
        'invalid-option',
        `${refused.join(', ')}: not for a NIR file (it is simulated as it is, in one process)`,
      );
    const { snn, notes } = await loadNir(file, target, { weightBits: f.weightBits });
    const data = openDataset(
      f.data,
      f.limit,
      imageOptions(f, snn.spec.inputShape, f.preprocess ?? snn.meta.preprocess),
    );
    const options = simulateOptionsFrom(f, prog.report, false, false);
    const record = await simulate(snn, data, { ...options, modelName: path.basename(file), energy: undefined });
    prog.stop();
    writeOutputs(await recordFiles(record, f));
    const ifs = snn.spec.sites.length;
    process.stdout.write(
      `${path.basename(file)}: NIR graph, ${ifs} IF node${ifs === 1 ? '' : 's'}, simulated as ${target} computes it (${checkProfile(target)}); ${record.normalize ? `${normalizeText(record.normalize)}${options.normalize !== undefined ? ' (--mean/--std)' : ''}` : 'no input normalisation in the file (give --mean/--std if the model needs one)'}\n${notes.map((n) => `  - ${n}\n`).join('')}\n`,
    );
    process.stdout.write(resultsTable(record));
  } finally {
    prog.stop();
  }
}

function checkProfile(target: string): string {
  return PROFILES[checkTarget(target, 'asTarget')].summary;
}

/** The combinations of shards, workers and outputs that make sense, checked before any work. */
function checkScale(
  f: SimFlags & Partial<ScaleFlags>,
  shardFrom: string | null,
  workers: number | 'auto',
  asTarget: SimulateOptions['asTarget'],
  given: readonly string[],
): void {
  if (given.includes('--checkpoint-every') && !f.checkpoint)
    throw new SpikeportError('invalid-option', '--checkpoint-every: give --checkpoint FILE too');
  // The library's checks: no more workers than cores; asTarget without workers.
  resolveSimulateOptions({ workers });
  if (shardFrom) {
    if (!f.json)
      throw new SpikeportError(
        'invalid-option',
        `running as one shard (${shardFrom}): give --json FILE for the shard's statistics (then spikeport merge), or --shard 0/1 to run everything in this process`,
      );
    const extra = [f.report ? '--report' : null, f.markdown ? '--markdown' : null].filter(Boolean);
    if (extra.length)
      throw new SpikeportError(
        'invalid-option',
        `${extra.join(', ')}: a shard has no results of its own; spikeport merge writes them from all shard files`,
      );
    if (workers !== 'auto' && workers > 1)
      throw new SpikeportError(
        'invalid-option',
        `--workers ${workers}: a shard (${shardFrom}) runs in one process; use --workers without shards, or more shards`,
      );
  }
  if (asTarget && shardFrom)
    throw new SpikeportError(
      'invalid-option',
      `--as-target runs the whole run in one process, not one shard (${shardFrom})`,
    );
  resolveSimulateOptions({ workers, asTarget });
}

/** The shard --shard names. */
function fromFlag(shard: Shard): PickedShard {
  return { shard, from: '--shard', source: `--shard ${shard.index}/${shard.count}` };
}

function workersValue(v: string): number | 'auto' {
  return v === 'auto' ? v : int(1)(v);
}

/** The flags the user set on the command line. */
export function givenFlags(cmd: Command): string[] {
  return Object.keys(cmd.opts())
    .filter((k) => cmd.getOptionValueSource(k) === 'cli')
    .map((k) => flagOf(cmd, k));
}

export function simulateCommand(): Command {
  return calibrationOptions(
    outputOptions(
      energyOptions(
        simulateOptions(
          new Command('simulate')
            .description(
              'simulate a spiking network for T steps and report accuracy against T, with and without delayed evaluation',
            )
            .argument(
              '<model>',
              'an SNN from spikeport convert, an ANN (converted on the fly with the calibration options), or a NIR graph (.nir, HDF5)',
            ),
        ),
      ),
    ),
  )
    .addOption(
      new Option(
        '--as-target <profile>',
        'also simulate the network as a target computes it (its neuron and arithmetic, docs/nir.md) and print both accuracies; for a NIR file: the profile to simulate it with (default generic)',
      ).choices([...TARGETS]),
    )
    .option(
      '--weight-bits <n>',
      'with --as-target (or a NIR file): weights as N-bit integers, one scale per neuron node (any profile); 0: float weights (the profile without its integers)',
      int(0),
    )
    .option(
      '--shard <K/N>',
      'simulate only shard K of N (K from 0; contiguous batches) and write its statistics to --json; spikeport merge gives the exact results of all. Default in a job array: from SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT, or JOB_COMPLETION_INDEX with --shard-count',
    )
    .option(
      '--shard-count <n>',
      'the number of shards when the index comes from JOB_COMPLETION_INDEX (a Kubernetes Indexed Job: its completions)',
      int(1),
    )
    .option(
      '--checkpoint <file>',
      'keep progress in this file; after a kill, the same command continues where it stopped (delete the file to start over)',
    )
    .option(
      '--checkpoint-every <s>',
      'seconds between checkpoint writes (the last batch is always written)',
      num,
      SIMULATE_DEFAULTS.checkpointSeconds,
    )
    .option(
      '--workers <n>',
      "simulate in N processes (N shards, --threads split between them) and merge them: the same results. auto: one per thread when the run is long enough for each worker's setup to pay (about 1.5 s of estimated work) and each worker gets at least 2 batches, for ImageNet-size states only with --engine auto and when all workers fit in the memory available (they run the fused engine); else one",
      workersValue,
      'auto',
    )
    .action(async (model: string, f: SimFlags & ScaleFlags, c: Command) =>
      runSimulate(model, f, { given: givenFlags(c) }),
    );
}
