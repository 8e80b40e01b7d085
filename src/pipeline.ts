/**
 * The library's front door: convert a model, save and load the spiking network, simulate it
 * and score it against the ANN. The CLI calls these; nothing here prints.
 */
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import type { Graph } from './graph/ir.js';
import { decodeModel, encodeModel } from './onnx/codec.js';
import { checkDataFits, loadModel, prepareModel, type LoadedModel, type PreparedModel, type PrepareOptions } from './model.js';
import { calibrate, siteChannels, siteRanks, thetaFeeds, type Calibration, type CalibrateOptions, type Progress, type Thresholds } from './calibrate/methods.js';
import { instrument } from './calibrate/instrument.js';
import { tailGraph } from './graph/plan.js';
import { buildSnn, type PoolMode, type Snn, type SnnSpec } from './snn/build.js';
import { buildLoop } from './snn/loop.js';
import { Session, type Array32, type RuntimeOptions } from './runtime/session.js';
import { simulate, type SimulationStats } from './runtime/simulate.js';
import { windowAverages, type Window } from './tasks/classification.js';
import { inferTask, makeScorer, type Score, type Task } from './tasks/task.js';
import { energyReport, type EnergyConstants, type EnergyReport } from './energy/energy.js';
import { siteErrors, type SiteErrors } from './analysis/site-errors.js';
import type { SimulateRecord } from './report/record.js';
import { makeBatch, sequentialBatches, type Dataset, type Normalize } from './data/dataset.js';
import { UserError } from './errors.js';

export interface ConvertOptions extends PrepareOptions, Omit<CalibrateOptions, 'onProgress'> {
  readonly maxpool?: PoolMode;
  readonly onProgress?: (p: Progress) => void;
}

export interface Converted {
  readonly model: PreparedModel;
  /** Ops after the readout, run as ANN on the averaged readout (null: none). */
  readonly tail: Graph | null;
  readonly calibration: Calibration;
  readonly snn: Snn;
  readonly calibrationData: string;
}

export async function convert(loaded: LoadedModel, calibData: Dataset, opts: ConvertOptions): Promise<Converted> {
  const model = await prepareModel(loaded, opts);
  checkDataFits(calibData, model.inputName, model.inputShape);
  const tail = tailGraph(model.graph, model.plan); // refuse a bad --readout before calibrating
  const calibration = await calibrate(model, calibData, opts);
  const snn = buildSnn(model, calibration.thresholds, opts.maxpool ?? 'accumulated');
  return { model, tail, calibration, snn, calibrationData: calibData.name };
}

/** Everything a later `simulate` needs, stored in the SNN file's metadata. */
export interface SnnMetadata {
  readonly spec: SnnSpec;
  readonly source: { readonly file: string; readonly sha256: string };
  readonly normalize: Normalize | null;
  readonly calibration: {
    readonly method: string; readonly iterations: number; readonly batchSize: number; readonly samples: number;
    readonly data: string; readonly seconds: number;
  };
  readonly delay: { readonly estimated: number; readonly latencies: readonly number[] };
  readonly readoutNode?: string;
}

const USAGE = 'One time step of a spiking network made by spikeport. Feed the analog input at every step and every '
  + 'state.* input (zeros at the first step); feed each state.X.next output back as state.X. Average the readout '
  + 'output over steps d+1..T (d: spikeport.delay). Spike counts per site are the spikes.* outputs, synaptic operations per layer the sops.* outputs (spikeport.snn lists both). If '
  + 'spikeport.tail is present it is a base64 ONNX model: run it on the averaged readout to get the model outputs.';

/** How the saved file computes time: one step per call, or all T steps in one call (ONNX Loop). */
export type SnnForm = 'step' | 'loop';

export function withMetadata(c: Converted, readoutNode?: string, form: SnnForm = 'step'): Graph {
  const meta: SnnMetadata = {
    spec: c.snn.spec,
    source: { file: path.basename(c.model.source.path), sha256: c.model.source.sha256 },
    normalize: c.model.normalize,
    calibration: {
      method: c.calibration.method, iterations: c.calibration.iterations, batchSize: c.calibration.batchSize,
      samples: c.calibration.samples, data: c.calibrationData, seconds: round(c.calibration.seconds, 3),
    },
    delay: { estimated: c.calibration.delay.estimated, latencies: c.calibration.delay.latencies.map((r) => round(r, 4)) },
    ...(readoutNode ? { readoutNode } : {}),
  };
  const graph = form === 'loop' ? buildLoop(c.snn, c.tail) : c.snn.graph;
  return {
    ...graph,
    metadata: {
      ...graph.metadata,
      'spikeport.form': form,
      'spikeport.usage': form === 'loop' ? USAGE_LOOP : USAGE,
      'spikeport.snn': JSON.stringify(meta),
      'spikeport.delay': String(meta.delay.estimated),
      ...(c.model.normalize ? { 'spikeport.normalize': JSON.stringify(c.model.normalize) } : {}),
      ...(c.tail ? { 'spikeport.tail': Buffer.from(encodeModel(c.tail)).toString('base64') } : {}),
    },
  };
}

/** Write atomically: a half-written file never appears under the final name. */
export function writeFileAtomic(file: string, data: Uint8Array | string): void {
  const dir = path.dirname(path.resolve(file));
  if (!fs.existsSync(dir)) throw new UserError(`cannot write ${file}: folder ${dir} does not exist`);
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.tmp`);
  try {
    fs.writeFileSync(tmp, data);
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw new UserError(`cannot write ${file}: ${(e as Error).message}`);
  }
}

export function saveSnn(file: string, graph: Graph): void {
  writeFileAtomic(file, encodeModel(graph));
}

const USAGE_LOOP = 'A spiking network made by spikeport, all time steps in one call (ONNX Loop). Inputs: the analog '
  + 'input, T and delay (int64 scalars; spikeport.delay holds the estimated delay, use min(it, T/2)). Outputs: the '
  + "model's outputs computed from the readout averaged over steps delay+1..T, the readout of every step "
  + '(*.steps) and spike counts per step (spikes.*.steps).';

export interface LoadedSnn {
  readonly form: SnnForm;
  readonly graph: Graph;
  readonly meta: SnnMetadata;
  readonly tail: Graph | null;
}

export function isSnnGraph(g: Graph): boolean {
  return 'spikeport.snn' in g.metadata;
}

export function snnFromGraph(g: Graph, where: string): LoadedSnn {
  const text = g.metadata['spikeport.snn'];
  if (!text) throw new UserError(`${where} is not a spiking network made by spikeport convert (no spikeport.snn metadata)`);
  const meta = JSON.parse(text) as SnnMetadata;
  if (meta.spec?.format !== 'spikeport-step/1') throw new UserError(`${where}: unknown SNN format ${meta.spec?.format}`);
  const tail = g.metadata['spikeport.tail'];
  const form = (g.metadata['spikeport.form'] ?? 'step') as SnnForm;
  if (form !== 'step' && form !== 'loop') throw new UserError(`${where}: unknown SNN form ${String(form)}`);
  return { form, graph: g, meta, tail: tail ? decodeModel(Buffer.from(tail, 'base64'), `${where} (tail)`) : null };
}

export function loadSnn(file: string): LoadedSnn {
  if (!fs.existsSync(file)) throw new UserError(`no such file: ${file}`);
  return snnFromGraph(decodeModel(fs.readFileSync(file), path.basename(file)), path.basename(file));
}

/** Find the ANN an SNN was made from, next to it, if its hash matches. */
export function findSourceAnn(snnFile: string, meta: SnnMetadata): string | null {
  const candidate = path.join(path.dirname(snnFile), meta.source.file);
  if (!fs.existsSync(candidate)) return null;
  const sha = crypto.createHash('sha256').update(fs.readFileSync(candidate)).digest('hex');
  return sha === meta.source.sha256 ? candidate : null;
}

/** A task's main metric (top-1, mIoU, mAP, …) and its second one (top-5, pixel accuracy, mAP@.5, …). */
export interface AnnScores {
  readonly metric: number;
  readonly secondary: number | null;
}

/** The ANN's and the clipped ANN's (ReLU replaced by clip(x, 0, θ)) scores on the data. */
export async function annReference(m: PreparedModel, data: Dataset, th: Thresholds, batchSize: number, opts: RuntimeOptions & { task?: Task } = {}): Promise<{ ann: AnnScores; clipped: AnnScores }> {
  const channels = siteChannels(m);
  const tail = await TailRunner.create(tailGraph(m.graph, m.plan), m.plan.readout, opts);
  const ranks = siteRanks(m);
  const task = inferTask(data, opts.task);
  const res: AnnScores[] = [];
  try {
    for (const mode of ['relu', 'clip'] as const) {
      const inst = instrument(m.graph, m.plan, channels, { mode, granularity: th.granularity, ranks });
      const s = await Session.create(inst.graph, opts);
      const scorer = makeScorer(task, 1, data);
      try {
        for (const idx of sequentialBatches(data.size, batchSize)) {
          const b = makeBatch(data, idx, m.normalize);
          const feeds = { [m.inputName]: { dims: [b.n, ...m.inputShape], data: b.x }, ...(mode === 'clip' ? thetaFeeds(m, inst, th) : {}) };
          const readout = (await s.run(feeds, [inst.readout]))[inst.readout];
          const out = await tail.apply(readout.data, readout.dims);
          scorer.add(0, out.data, out.dims, idx);
        }
      } finally {
        await s.release();
      }
      res.push(scorer.scores()[0]);
    }
  } finally {
    await tail.release();
  }
  return { ann: res[0], clipped: res[1] };
}

/** Runs the tail (ops after the readout) on readouts; the identity when there is none. */
class TailRunner {
  private constructor(private readonly session: Session | null, private readonly input: string) {}

  static async create(tail: Graph | null, readout: string, opts: RuntimeOptions): Promise<TailRunner> {
    if (!tail) return new TailRunner(null, readout);
    if (tail.outputs.length !== 1) throw new UserError(`the model has ${tail.outputs.length} outputs after the readout; spikeport scores one output (end the model with one tensor, e.g. concatenate detection heads)`);
    return new TailRunner(await Session.create(tail, opts), readout);
  }

  async apply(readout: Float32Array, dims: readonly number[]): Promise<Array32> {
    if (!this.session) return { dims, data: readout };
    const out = await this.session.run({ [this.input]: { dims, data: readout } });
    return Object.values(out)[0];
  }

  async release(): Promise<void> {
    await this.session?.release();
  }
}

/** The delay used at T: min(d̂, ⌊T/2⌋) by default, or the user's d (never ≥ T). */
export function delayAt(T: number, estimated: number, user?: number): number {
  if (user !== undefined) return Math.min(user, T - 1);
  return Math.min(estimated, Math.floor(T / 2));
}

export interface SimulationResult {
  readonly T: number;
  readonly delay: number;
  /** The task's metric with the readout averaged over steps delay+1..T, and its second metric. */
  readonly metric: number;
  readonly secondary: number | null;
  /** The same averaged over all T steps. */
  readonly metricNoDelay: number;
  readonly secondaryNoDelay: number | null;
}

export interface SimulationReport {
  readonly task: Task;
  readonly samples: number;
  readonly results: readonly SimulationResult[];
  /** Per site: spikes per neuron per step, over all T_max steps. */
  readonly firingRates: readonly { readonly site: string; readonly rate: number }[];
  /** Per layer counting SOPs (spec.layers with `sops`), per step: SOPs summed over samples. */
  readonly sopsPerStep: readonly Float64Array[];
  readonly seconds: number;
}

export interface SimulateRunOptions extends RuntimeOptions {
  readonly Ts: readonly number[];
  readonly batchSize: number;
  /** User delay; undefined = the window rule with d̂. */
  readonly delay?: number;
  readonly task?: Task;
  /** How the step graph is driven (runtime/simulate.ts); default 'auto'. */
  readonly engine?: Engine;
  readonly onProgress?: (p: Progress) => void;
}

export type Engine = 'steps' | 'loop' | 'auto';

export interface WindowedRun {
  readonly task: Task;
  readonly samples: number;
  /** The task's scores per window, in the order given. */
  readonly scores: readonly Score[];
  readonly stats: SimulationStats;
}

/**
 * One simulation of the longest window's T, scored at every window [d+1, T] (SPEC 5: every T
 * and delay from one run).
 */
export async function simulateWindows(snn: LoadedSnn, data: Dataset, windows: readonly Window[], opts: RuntimeOptions & { batchSize: number; task?: Task; engine?: Engine; onProgress?: (p: Progress) => void }): Promise<WindowedRun> {
  const { spec } = snn.meta;
  checkDataFits(data, spec.input, spec.inputShape);
  const Tmax = Math.max(...windows.map((w) => w.T));
  const task = inferTask(data, opts.task);
  const scorer = makeScorer(task, windows.length, data);
  const tail = await TailRunner.create(snn.tail, spec.readout, opts);
  let stats: SimulationStats;
  try {
    const checkpoints = [...new Set(windows.flatMap((w) => [w.T, w.delay]))].filter((t) => t > 0);
    stats = await simulate(snn.graph, spec, data, { ...opts, engine: opts.engine ?? 'auto', steps: Tmax, normalize: snn.meta.normalize, form: snn.form, checkpoints }, async (b) => {
      const averages = windowAverages(b, windows);
      for (let w = 0; w < windows.length; w++) {
        const out = await tail.apply(averages[w], [b.n, ...spec.readoutShape]);
        scorer.add(w, out.data, out.dims, b.indices);
      }
    });
  } finally {
    await tail.release();
  }
  return { task, samples: data.size, scores: scorer.scores(), stats };
}

export function checkSteps(Ts: readonly number[], delay?: number): void {
  if (Ts.length === 0 || Ts.some((T) => !Number.isInteger(T) || T < 1)) throw new UserError(`--T must list positive integers (got ${Ts.join(',')})`);
  if (delay !== undefined && (!Number.isInteger(delay) || delay < 0)) throw new UserError(`--delay must be an integer ≥ 0 (got ${delay})`);
}

export async function simulateAndScore(snn: LoadedSnn, data: Dataset, opts: SimulateRunOptions): Promise<SimulationReport> {
  const { spec } = snn.meta;
  checkSteps(opts.Ts, opts.delay);
  const Ts = [...new Set(opts.Ts)].sort((a, b) => a - b);
  const Tmax = Ts[Ts.length - 1];
  const dhat = snn.meta.delay.estimated;
  const windows: Window[] = Ts.flatMap((T) => [{ T, delay: delayAt(T, dhat, opts.delay) }, { T, delay: 0 }]);
  const { task, scores, stats } = await simulateWindows(snn, data, windows, opts);
  const results = Ts.map((T, i) => ({
    T, delay: windows[2 * i].delay,
    metric: scores[2 * i].metric, secondary: scores[2 * i].secondary,
    metricNoDelay: scores[2 * i + 1].metric, secondaryNoDelay: scores[2 * i + 1].secondary,
  }));
  return { task, samples: data.size, results, firingRates: firingRates(spec, stats, Tmax), sopsPerStep: stats.sopsPerStep, seconds: stats.seconds };
}

export function firingRates(spec: SnnSpec, stats: SimulationStats, T: number): { site: string; rate: number }[] {
  return spec.sites.map((s, i) => ({
    site: s.node,
    rate: stats.spikesPerStep[i].reduce((a, b) => a + b, 0) / (s.neurons * stats.samples * T),
  }));
}

/** Operations and energy of a simulated SNN against its ANN (SPEC 6); null for files without layer costs. */
export function energyOf(spec: SnnSpec, r: { samples: number; sopsPerStep: readonly Float64Array[] }, points: readonly { T: number; metric: number | null }[], annMetric: number | null, constants: EnergyConstants): EnergyReport | null {
  if (!spec.layers) return null;
  return energyReport({ layers: spec.layers, sopsPerStep: r.sopsPerStep, samples: r.samples, points, annMetric, constants });
}

export interface RunOptions extends SimulateRunOptions {
  /** The source ANN (prepared), for the ANN / clipped-ANN references and the site errors. */
  readonly ann: PreparedModel | null;
  readonly convertSeconds: number | null;
  /** Samples for the per-site error analysis (0: none) and its T (default: the largest). */
  readonly siteErrors: number;
  readonly siteErrorsT?: number;
  readonly energy: EnergyConstants;
  readonly modelName: string;
  readonly dataName: string;
}

/** One simulation with everything a report shows: scores, references, energy, site errors. */
export async function simulateRecord(snn: LoadedSnn, data: Dataset, o: RunOptions): Promise<{ record: SimulateRecord; report: SimulationReport }> {
  const report = await simulateAndScore(snn, data, o);
  const { spec } = snn.meta;
  const th: Thresholds = { granularity: spec.granularity, values: spec.sites.map((s) => Float32Array.from(s.theta)) };
  let ref: { ann: AnnScores; clipped: AnnScores } | null = null;
  let errors: SiteErrors | null = null;
  if (o.ann) {
    ref = await annReference(o.ann, data, th, o.batchSize, { threads: o.threads, task: report.task });
    if (o.siteErrors > 0 && snn.form === 'step') {
      const T = o.siteErrorsT ?? Math.max(...o.Ts);
      errors = await siteErrors(o.ann, snn.graph, spec, th, data, { T, delay: delayAt(T, snn.meta.delay.estimated, o.delay), samples: o.siteErrors, threads: o.threads });
    }
  }
  const cal = snn.meta.calibration;
  const record: SimulateRecord = {
    kind: 'simulate',
    task: report.task,
    model: o.modelName,
    data: o.dataName,
    samples: report.samples,
    created: new Date().toISOString(),
    method: cal.method,
    iterations: cal.iterations,
    calibration: { ...cal, ...(o.convertSeconds !== null ? { convertSeconds: o.convertSeconds } : {}) },
    maxpool: spec.maxpool,
    ann: ref ? ref.ann : null,
    clippedAnn: ref ? ref.clipped : null,
    delay: { estimated: snn.meta.delay.estimated, latencies: snn.meta.delay.latencies, rule: o.delay === undefined ? 'min(estimated, floor(T/2))' : `fixed ${o.delay}` },
    results: report.results,
    firingRates: report.firingRates,
    energy: energyOf(spec, report, report.results.map((r) => ({ T: r.T, metric: r.metric })), ref ? ref.ann.metric : null, o.energy),
    siteErrors: errors,
    simulationSeconds: report.seconds,
  };
  return { record, report };
}

function round(v: number, digits: number): number {
  const f = 10 ** digits;
  return Number.isFinite(v) ? Math.round(v * f) / f : v;
}

export { loadModel, prepareModel };
