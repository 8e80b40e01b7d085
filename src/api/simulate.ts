/**
 * Simulation: a spiking network and test data in, a record out — the task's metric at every T
 * (with and without delayed evaluation), firing rates, operations and energy, and, when asked,
 * the ANN and clipped-ANN references and the per-site errors. One simulation of the largest T
 * gives every T and window (docs/algorithm.md §5).
 */
import fs from 'node:fs';
import path from 'node:path';
import { type Dataset } from '../data/dataset.js';
import { openDataset } from '../data/sources.js';
import type { Snn } from '../snn/network.js';
import { normalizationSummary } from '../snn/format.js';
import { sameResultsAs } from '../runtime/engines.js';
import { checkClassCount, headFor, inferTask, type Task } from '../tasks/task.js';
import { siteErrors as measureSiteErrors } from '../analysis/site-errors.js';
import { annOutputs, annReferenceStates } from '../evaluate/reference.js';
import { PictureCollector } from '../evaluate/pictures.js';
import { outputShapes } from '../evaluate/tail.js';
import { simulateWindows, type Window } from '../evaluate/windows.js';
import type { Tally } from '../evaluate/tally.js';
import type { AsTargetRecord, SimulateRecord } from '../report/record.js';
import type { Notice, OnProgress } from '../progress.js';
import { checkNormalizeFits } from '../model/prepare.js';
import { numel } from '../graph/ir.js';
import { writeFileAtomic } from '../files.js';
import { SpikeportError, optionError, field } from '../errors.js';
import { SHARD_FORMAT, readShardFile, shardJson, type ShardFile } from './shard-file.js';
import { checkShard, shardRange, type Shard } from './shards.js';
import { configHash, runConfig } from './run-config.js';
import { mergeShards } from './merge.js';
import { checkPreprocess, noNormalization } from './convert.js';
import { resetOf, targetNetwork, type Profile, type Target, type TargetNetwork } from './nir.js';
import { simulateInWorkers, workerPlan } from './workers.js';
import {
  checkAsTarget,
  delayFor,
  resolveSimulateOptions,
  type AsTargetOptions,
  type DelayRule,
  type RunIdentity,
  type SimulateOptions,
} from './simulate-options.js';

/** The windows pictured: the smallest, a middle and the largest T with the run's delay (classification: the smallest). */
function pictureWindows(
  Ts: readonly number[],
  windows: readonly Window[],
  task: Task,
): { index: number; T: number; delay: number }[] {
  const picked =
    task === 'classification' || task === 'video'
      ? [0]
      : [...new Set([0, Math.floor((Ts.length - 1) / 2), Ts.length - 1])];
  return picked.map((i) => ({ index: 2 * i, ...windows[2 * i] }));
}

function ruleText(rule: DelayRule): string {
  if (rule === 'auto') return 'min(estimated, floor(T/2))';
  if (rule === 'fit') return 'fitted (label-free)';
  if (rule === 'half') return 'floor(T/2)';
  return `fixed ${rule === 'off' ? 0 : rule}`;
}

/**
 * Open test data for a spiking network: image sources decode to its input shape with the given
 * preprocessing, else the one stored in the file.
 */
export function openSimulationData(
  snn: Snn,
  spec: string,
  limit?: number,
  preprocess?: string,
  more: Pick<SimulateOptions, 'frameRate' | 'clipsPerVideo' | 'categories' | 'task'> = {},
): Dataset {
  const p = preprocess ?? snn.meta.preprocess;
  const frameRate = more.frameRate ?? snn.meta.frameRate;
  return openDataset(spec, limit, {
    sampleShape: snn.spec.inputShape,
    preprocess: p === undefined ? null : checkPreprocess(p),
    ...(frameRate !== undefined ? { frameRate } : {}),
    ...(more.clipsPerVideo !== undefined ? { clipsPerVideo: more.clipsPerVideo } : {}),
    ...(more.categories !== undefined ? { categories: more.categories } : {}),
    ...(more.task === 'segmentation' ? { masks: true } : {}),
  });
}

/**
 * Simulate `snn` on `data` (a data set or its spec, e.g. "mnist:test") for the largest T and score
 * every T: the record of one run (the merge of one shard, see simulateShard), in this process or
 * in `workers` processes; with `asTarget`, also as that target computes it.
 */
export async function simulate(
  snn: Snn,
  data: string | Dataset,
  options: SimulateOptions = {},
): Promise<SimulateRecord> {
  const o = resolveSimulateOptions(options);
  if (o.shard && o.shard.count > 1)
    throw optionError('shard', 'simulate gives a whole run; simulate a part with simulateShard, then mergeShards');
  // The target's network is built first: what it cannot express fails before any simulation.
  const deployed = o.asTarget ? targetNetwork(snn, o.asTarget.target, { weightBits: o.asTarget.weightBits }) : null;
  const test = typeof data === 'string' ? openSimulationData(snn, data, undefined, o.preprocess, o) : data;
  const plan = workerPlan(snn, test, { ...o, asTarget: o.asTarget !== undefined });
  const { asTarget: _, workers: __, ...one } = options;
  // Workers of a large-state run start with the fused engine (runtime/auto.ts autoWorkerPlan).
  const inWorkers = plan.autoStart ? { ...one, autoStart: plan.autoStart } : one;
  const record =
    plan.workers > 1
      ? await simulateInWorkers(snn, test, inWorkers, { count: plan.workers, batchSize: o.batchSize })
      : mergeShards([
          { name: 'the run', shard: await simulateShard(snn, test, { ...one, shard: { index: 0, count: 1 } }) },
        ]);
  if (!o.asTarget || !deployed) return record;
  const { part } = await runAsTarget(deployed, o.asTarget, test, options);
  return { ...record, asTarget: part };
}

/**
 * The run as the target `options.asTarget` computes it (start 0, v > θ, its reset, its
 * arithmetic; api/nir.ts targetNetwork), on the same samples and windows, in this process: the
 * record's `asTarget` part, the target run's own record (which engines ran it, say) and the
 * profile. Neither references nor per-site errors nor pictures: the comparison is the metric.
 */
export async function simulateAsTarget(
  snn: Snn,
  data: string | Dataset,
  options: SimulateOptions & { readonly asTarget: Target | AsTargetOptions },
): Promise<{ part: AsTargetRecord; record: SimulateRecord; profile: Profile }> {
  const asked = checkAsTarget(options.asTarget);
  return runAsTarget(targetNetwork(snn, asked.target, { weightBits: asked.weightBits }), asked, data, options);
}

/** simulateAsTarget with the target's network built. */
async function runAsTarget(
  deployed: TargetNetwork,
  { target, weightBits }: { readonly target: Target; readonly weightBits?: number },
  data: string | Dataset,
  options: SimulateOptions,
): Promise<{ part: AsTargetRecord; record: SimulateRecord; profile: Profile }> {
  const {
    asTarget: _t,
    workers: _w,
    checkpoint: _c,
    checkpointSeconds: _s,
    onNotice: _n,
    shard: _h,
    ...rest
  } = options;
  const record = await simulate(deployed.snn, data, {
    ...rest,
    references: false,
    siteErrors: 0,
    pictures: 0,
    energy: undefined,
  });
  const part: AsTargetRecord = {
    target,
    reset: resetOf(target),
    ...(weightBits !== undefined ? { weightBits } : {}),
    notes: deployed.notes,
    results: record.results,
  };
  return { part, record, profile: deployed.profile };
}

/**
 * Simulate shard K of N of a run (default: the whole run as shard 0 of 1): its contiguous range of
 * batches, the references on the same samples, and (shard 0) the per-site errors. The result is
 * the shard's sufficient statistics; `mergeShards` of all N gives the record of one run over all
 * samples, exactly. With `checkpoint`, progress is kept in that file, and a run killed midway
 * continues from it (same network, data and options, else an error).
 */
export async function simulateShard(
  snn: Snn,
  data: string | Dataset,
  options: SimulateOptions = {},
): Promise<ShardFile> {
  const o = resolveSimulateOptions(options);
  if (o.asTarget) throw optionError('asTarget', 'compares a whole run: give it to simulate, not to simulateShard');
  if (o.workers !== 'auto' && o.workers > 1)
    throw optionError('workers', `${o.workers}: a shard runs in one process; give workers to simulate`);
  o.signal?.throwIfAborted();
  if (o.normalize) {
    checkNormalizeFits(o.normalize, snn.spec.inputShape, true);
    snn = snn.withNormalize(o.normalize);
  }
  if (o.references && !snn.source)
    throw optionError(
      'references',
      'needs the source ANN (convert keeps it; loadSnn finds it next to the file or takes it as the ann option)',
    );
  if (o.siteErrors > 0 && !snn.source)
    throw optionError(
      'siteErrors',
      'needs the source ANN (convert keeps it; loadSnn finds it next to the file or takes it as the ann option)',
    );
  if (o.siteErrors > 0 && snn.meta.unit)
    throw optionError(
      'siteErrors',
      'needs the θ-amplitude form (this network is in the unit-spike form; its sites emit 0/1)',
    );
  if (o.siteErrors > 0 && snn.form !== 'step')
    throw optionError('siteErrors', "needs a step-form network (a loop-form file hides the sites' outputs)");
  const shared = snn.spec.sites.find((s) => s.group?.kind === 'shared');
  if (o.engine === 'fused' && shared)
    throw optionError(
      'engine',
      `"fused" updates IF neurons one WebAssembly pass each and has no shared-reset group (site ${shared.node} is one); use "steps" or "auto" (the same results), or convert with groupKind "population", which it runs`,
    );
  const shard = o.shard ?? { index: 0, count: 1 };
  checkShard(shard);
  const Tmax = o.T[o.T.length - 1];
  // Each T twice: with the delay and over all steps.
  const delays = o.T.map((T) => delayFor(o.delay, T, snn.meta.delay));
  const windows: Window[] = o.T.flatMap((T, i) => [
    { T, delay: delays[i] },
    { T, delay: 0 },
  ]);
  const test = typeof data === 'string' ? openSimulationData(snn, data, undefined, o.preprocess, o) : data;
  if (test.size === 0) throw new SpikeportError('invalid-data', `data set ${test.name} has no samples`);
  const task = inferTask(test, o.task);
  // Named classes that are not the model's fail now, not after the first batch.
  const classes = classCount(snn, task);
  if (classes !== null) checkClassCount(test, classes);
  const identity: RunIdentity = {
    T: o.T,
    delay: o.delay,
    delays,
    batchSize: o.batchSize,
    task,
    engine: sameResultsAs(o.engine),
    references: o.references,
    siteErrors: o.siteErrors,
    siteErrorsT: o.siteErrorsT ?? null,
    energy: o.energy,
    preprocess: o.preprocess ?? snn.meta.preprocess ?? null,
    pictures: o.pictures,
    normalize: snn.meta.normalize ?? null,
    // What the samples are, beyond their labels (frames picked, clips per video, categories drawn).
    frameRate: test.frameRate ?? null,
    clipsPerVideo: test.clipsPerVideo ?? null,
    categories: o.categories ?? null,
    detection: task === 'detection' ? (o.detection ?? {}) : null,
  };
  const run = runConfig(snn, test, identity, o.batchSize, shard.count);
  const range = shardRange(shard, run.batches);
  const batches = Array.from({ length: range.end - range.first }, (_, k) => range.first + k);
  const cal = snn.meta.calibration;
  // The outputs scored (and, for detection, the head that decodes them): one tail run on zeros.
  const outputs = await outputShapes(snn.tail, snn.spec.readout, snn.spec.readoutShape, o);
  const head = task === 'detection' && test.boxes ? headFor(outputs, test, o.detection) : null;
  if (head) checkClassCount(test, head.classes);
  const context: ShardFile['context'] = {
    task,
    model: o.modelName ?? path.basename(snn.meta.source.file),
    data: test.name,
    method: cal.method,
    iterations: cal.iterations,
    calibration: {
      ...cal,
      ...(snn.meta.corrections ? { corrections: snn.meta.corrections } : {}),
      ...(snn.meta.normalization ? { normalization: normalizationSummary(snn.meta.normalization) } : {}),
    },
    maxpool: snn.spec.maxpool,
    delay: { estimated: snn.meta.delay.estimated, latencies: snn.meta.delay.latencies, rule: ruleText(o.delay) },
    T: o.T,
    delays,
    sites: snn.spec.sites.map((x) => ({ node: x.node, neurons: x.neurons })),
    layers: snn.spec.layers ?? null,
    energy: o.energy,
    outputs: outputs.map((x) => ({ name: x.name, shape: x.dims.slice(1) })),
    ...(head ? { detection: { head: head.kind, classes: head.classes, ...head.options } } : {}),
    normalize: snn.meta.normalize,
  };
  const notices: Notice[] = [
    ...snn.notices.filter((n) => !(n.code === 'no-normalization' && snn.meta.normalize)),
    ...(snn.meta.normalize || snn.notices.some((n) => n.code === 'no-normalization')
      ? []
      : [noNormalization(context.model)]),
  ];
  const base = {
    format: SHARD_FORMAT,
    config: configHash(run, context),
    run,
    shard,
    range,
    context,
    timing: {
      created: new Date().toISOString(),
      ...(snn.timing
        ? {
            calibrate: snn.timing.calibrate,
            convert: snn.timing.convert,
            ...(snn.timing.refine !== undefined ? { refine: snn.timing.refine } : {}),
          }
        : {}),
    },
    ...(notices.length ? { notices } : {}),
  } as const;
  // What a killed run left: the same run, this shard.
  const prior = o.checkpoint ? readCheckpoint(o.checkpoint, base.config, shard) : null;
  const before = prior?.tally.batches.length ?? 0;
  if (prior && o.checkpoint)
    o.onNotice?.({
      code: 'resumed',
      message: `resuming from ${o.checkpoint}: ${before} of ${batches.length} batches done${prior.complete ? ' (the run is finished)' : ''}`,
    });
  // Progress counts the time steps of every batch of this shard, those a checkpoint holds included.
  const unit = `time steps, ${Tmax} per batch`;
  const total = batches.length * Tmax;
  o.onProgress?.({ phase: 'simulate', done: before * Tmax, total, unit });
  const onSimulate: OnProgress | undefined =
    o.onProgress && ((p) => o.onProgress?.({ ...p, done: before * Tmax + p.done, total, unit }));
  const save = (s: ShardFile): void => {
    if (o.checkpoint) writeFileAtomic(o.checkpoint, shardJson(s));
  };
  // The report's pictures: gathered as the batches pass (continuing a checkpoint's), made at the end.
  const collector =
    o.pictures > 0 && !prior?.pictures
      ? new PictureCollector(
          test,
          { task, count: o.pictures, windows: pictureWindows(o.T, windows, task), detection: o.detection },
          prior?.pictureState,
        )
      : null;
  const partial = (tally: Tally, rest: Partial<ShardFile> = {}): ShardFile => ({
    ...base,
    complete: false,
    tally,
    references: prior?.references ?? null,
    siteErrors: prior?.siteErrors ?? null,
    pictures: prior?.pictures ?? null,
    ...(collector ? { pictureState: collector.state() } : {}),
    ...rest,
  });

  let tally = prior?.tally;
  // When this shard's simulation and references ran (a finished checkpoint's, if nothing is left to run).
  let timing: ShardFile['timing'] = {
    ...base.timing,
    ...(prior?.timing.simulation ? { simulation: prior.timing.simulation } : {}),
    ...(prior?.timing.references !== undefined ? { references: prior.timing.references } : {}),
  };
  if (!tally || tally.batches.length < batches.length) {
    const start = Date.now();
    let last = performance.now();
    const sim = await simulateWindows(snn, test, windows, {
      ...o,
      onProgress: onSimulate,
      task,
      batches,
      resume: tally,
      ...(collector ? { onOutputs: collector.onOutputs } : {}),
      afterBatch: (t) => {
        const now = performance.now();
        if (o.checkpoint && (now - last >= 1000 * o.checkpointSeconds || t.batches.length === batches.length)) {
          save(partial(t));
          last = now;
        }
        // Ended between batches, once the checkpoint holds the batch just done.
        if (o.signal?.aborted && t.batches.length < batches.length) {
          if (o.checkpoint) save(partial(t));
          o.signal.throwIfAborted();
        }
      },
    });
    tally = sim.tally;
    timing = { ...timing, simulation: { start, end: Date.now() } };
  }
  let pictures = prior?.pictures ?? null;
  if (collector) {
    const source = o.references ? snn.source : null;
    pictures = await collector.finish(
      source ? (idx) => annOutputs(source, test, idx, { threads: o.threads, device: o.device }) : undefined,
    );
    save(partial(tally, { pictures, timing }));
  }
  o.signal?.throwIfAborted();
  let references = prior?.references ?? null;
  if (o.references && !references && snn.source) {
    // The ceiling at T: the levels one neuron (or a group of K) can output in T steps.
    const levels = o.T.map((T) => T * groupSize(snn));
    const r0 = performance.now();
    const refs = await annReferenceStates(snn.source, test, snn.thresholds(), {
      batchSize: o.batchSize,
      threads: o.threads,
      device: o.device,
      task,
      detection: o.detection,
      batches,
      ceiling: levels,
    });
    references = {
      ann: refs.ann,
      clipped: refs.clipped,
      ...(refs.substitute ? { substitute: refs.substitute } : {}),
      ...(refs.ceiling ? { ceiling: { levels, state: refs.ceiling } } : {}),
    };
    timing = { ...timing, references: (performance.now() - r0) / 1000 };
    save(partial(tally, { references, pictures, timing }));
  }
  o.signal?.throwIfAborted();
  let errors = prior?.siteErrors ?? null;
  if (!errors && snn.source && o.siteErrors > 0 && shard.index === 0) {
    const T = o.siteErrorsT ?? Tmax;
    errors = await measureSiteErrors(snn.source, snn.graph, snn.spec, snn.thresholds(), test, {
      T,
      delay: delayFor(o.delay, T, snn.meta.delay),
      samples: o.siteErrors,
      threads: o.threads,
      device: o.device,
      onProgress: o.onProgress,
    });
  }
  const done: ShardFile = { ...base, timing, complete: true, tally, references, siteErrors: errors, pictures };
  save(done);
  return done;
}

/**
 * How many classes the network scores, when its outputs say so without running it (no ops after
 * the readout): classification and video its readout's size. Null when only running it tells
 * (the scorer checks then), for detection (its head tells: checked once the head is found), and
 * for segmentation, whose masks hold class ids rather than names.
 */
function classCount(snn: Snn, task: Task): number | null {
  if (snn.tail) return null;
  const shape = snn.spec.readoutShape;
  if (task === 'classification' || task === 'video') return numel(shape);
  return null;
}

/** Binary neurons per ANN neuron (1 unless the network was converted with groups). */
export function groupSize(snn: Snn): number {
  return Math.max(1, ...snn.spec.sites.map((s) => s.group?.size ?? 1));
}

/** The checkpoint of this shard of this run, if the file exists; one from another run is an error. */
function readCheckpoint(file: string, config: string, shard: Shard): ShardFile | null {
  if (!fs.existsSync(file)) return null;
  let s: ShardFile;
  try {
    s = readShardFile(file);
  } catch (e) {
    if (e instanceof SpikeportError) throw e.within('checkpoint');
    throw e;
  }
  if (s.shard.index !== shard.index || s.shard.count !== shard.count) {
    throw optionError(
      'checkpoint',
      `${file} is the checkpoint of shard ${s.shard.index} of ${s.shard.count}, not ${shard.index} of ${shard.count} (the run is cut into ${shard.count} now: the same number of shards or ${field('workers')} continues it; or delete it)`,
    );
  }
  if (s.config !== config) {
    throw optionError(
      'checkpoint',
      `${file} is the checkpoint of another run (other model, thresholds, data or options); delete it to start over, or name another file`,
    );
  }
  // (Its contents were checked against themselves when read: readShardFile.)
  return s;
}
