/**
 * Running the SNN for T_max steps over a data set. The readout of every step is handed to a
 * sink (so accuracy at every T ≤ T_max and any delay window comes from one run); states live
 * per batch only.
 */
import type { Batch, Dataset, Normalize } from '../data/dataset.js';
import { prefetchBatches, sequentialBatches } from '../data/dataset.js';
import type { Graph } from '../graph/ir.js';
import { numel } from '../graph/ir.js';
import { Session, type Array32, type ArrayI64, type RuntimeOptions } from '../ort/session.js';
import type { OnProgress } from '../progress.js';
import {
  LOOP_DELAY_INPUT,
  LOOP_STEPS_INPUT,
  counterOutputs,
  loopCounter,
  loopReadout,
  type SnnForm,
  type SnnSpec,
} from '../snn/format.js';
import { buildLoop } from '../snn/loop.js';
import { splitConstantPrefix } from '../snn/split.js';
import { stepName, unrollSteps } from '../snn/unroll.js';
import { exactCounters } from '../snn/exact-counts.js';
import { SpikeportError } from '../errors.js';
import { fusedPlan, fusedSessions } from './fused.js';

/**
 * How a step graph is driven: `steps` calls it from JS (several steps per call), `fused` runs
 * the layers in ONNX Runtime and every neuron update in one WebAssembly pass (runtime/fused.ts),
 * `loop` wraps it in an ONNX Loop (one call per batch). `steps` and `fused` give the same spikes
 * and readouts bit for bit, so `auto` times both on the first batches and keeps the faster
 * without changing any result; `loop`'s kernels round differently (one spike in 10⁷) and it is
 * only run when asked for.
 */
export const ENGINES = ['auto', 'steps', 'loop', 'fused'] as const;
export type Engine = (typeof ENGINES)[number];
/** An engine that runs batches (what `auto` resolves to). */
export type RunEngine = Exclude<Engine, 'auto'>;

/**
 * The engines whose results equal `engine`'s bit for bit, as one name: what a run's
 * configuration records, so that shards run with `steps`, `fused` and `auto` merge.
 */
export function sameResultsAs(engine: Engine): string {
  return engine === 'loop' ? 'loop' : 'auto, fused, steps';
}

/**
 * One line when the engine asked for by name is not the one that ran, else null. The fused
 * engine runs only the state updates spikeport writes (its IF neurons and max-pool
 * accumulators); any other step graph (e.g. a NIR target's neurons, `asTarget`) runs on the
 * steps engine instead: the same results, without the fused engine's speed.
 */
export function engineNotice(
  asked: Engine | undefined,
  ran: Readonly<Partial<Record<RunEngine, number>>> | undefined,
): string | null {
  const steps = ran?.steps ?? 0;
  if (asked !== 'fused' || steps === 0) return null;
  const all = steps + (ran?.fused ?? 0) + (ran?.loop ?? 0);
  return `engine fused: the fused engine cannot run this network's step graph (state updates other than spikeport's IF neurons and max-pool accumulators), so the steps engine ran ${steps} of ${all} batch${all === 1 ? '' : 'es'}, with the same results`;
}

/**
 * The default engine: `auto`, choosing between `steps` and `fused` by measurement, because which
 * is faster depends on the model and the machine's load (BENCHMARKS.md, issue 14) while the
 * results do not.
 */
export const DEFAULT_ENGINE: Engine = 'auto';

/**
 * From this many batches on, `auto` times each engine twice (the second time counts): then the
 * loser's second batch costs at most 1/20 of the run.
 */
export const AUTO_SECOND_ROUND = 20;

/**
 * Most of the work left that `auto`'s trial of the fused engine may cost: its setup and, if it
 * loses, a slower batch. Below that the trial cannot pay: on a short run it costs more than the
 * faster engine could win back (a second set of sessions at 224 takes seconds), and on this
 * machine the step engine is as fast or faster on a quiet machine (BENCHMARKS.md).
 */
export const AUTO_TRIAL_SHARE = 0.03;

/** What `auto` expects a trial batch to cost beyond the step engine's, as a share of its batch (fused was up to 1.3× slower when it lost). */
const TRIAL_RISK = 0.5;

/**
 * Whether `auto` should try the fused engine, from what the step engine cost: its setup, its time
 * per batch and the batches left after the one it ran. The trial's cost is taken as the same setup
 * (both engines build sessions for the same layers) plus half a batch; it must be at most
 * AUTO_TRIAL_SHARE of the work left.
 */
export function worthTrying(setupMs: number, batchMs: number, batchesLeft: number): boolean {
  return batchesLeft >= 1 && setupMs + TRIAL_RISK * batchMs <= AUTO_TRIAL_SHARE * batchesLeft * batchMs;
}

/** Most memory a Loop call may return for one batch's readouts. */
export const LOOP_READOUT_BYTES = 2 ** 30;

/** Steps per call of the per-step engine (bench/all.ts measures 1 against this). */
export const DEFAULT_UNROLL = 8;

/** State memory of one call's steps (bytes) above which the per-step engine takes half as many steps per call. */
export const UNROLL_STATE_BYTES = 256 * 2 ** 20;

/**
 * Steps per call of the per-step engine when not asked for: DEFAULT_UNROLL, or half as many when
 * that many steps' states (membranes, pooling accumulators) of a batch would pass
 * UNROLL_STATE_BYTES. ONNX Runtime runs the unrolled steps layer by layer, so each layer's tensors
 * of all the call's steps are alive together. At 224, batch 16 (104–373 MB of states per step),
 * 4 steps per call ran as fast as 8 or faster, with 20–26 % less peak memory; on the bundled nets
 * (5–21 MB) 8 stay (BENCHMARKS.md, issue 14, third round).
 */
export function defaultUnroll(spec: SnnSpec, batchSize: number): number {
  const bytes = 4 * batchSize * spec.states.reduce((a, s) => a + numel(s.shape), 0);
  return DEFAULT_UNROLL * bytes > UNROLL_STATE_BYTES ? DEFAULT_UNROLL / 2 : DEFAULT_UNROLL;
}

/**
 * What a time step costs on the machines this was measured on (2 cores, AVX2, onnxruntime-node,
 * 2 threads, the step engine): the layers run at every step at about 50 GFLOP/s (2 × MACs), plus
 * about 2 ns per neuron (integrate, fire, reset, count). Fitted to fashion-vgg (0.33 ms per
 * sample-step, batch 100) and mobilenet_v2 at 224 (18.8 ms, batch 16); only used to tell short
 * runs from long ones, where a guess within a factor of two does.
 */
const STEP_FLOPS = 50e9;
const NEURON_STEP_SECONDS = 2e-9;

/** A guess at the seconds `sampleSteps` sample-steps of this network take (STEP_FLOPS). */
export function estimateStepSeconds(spec: SnnSpec, sampleSteps: number): number {
  const macs = (spec.layers ?? [])
    .filter((l) => l.where !== 'input' && l.where !== 'tail')
    .reduce((a, l) => a + l.macs, 0);
  const neurons = spec.sites.reduce((a, s) => a + s.neurons, 0);
  return sampleSteps * ((2 * macs) / STEP_FLOPS + neurons * NEURON_STEP_SECONDS);
}

/**
 * Work a run needs before more than one worker process can pay: each worker starts Node, loads
 * the network, builds its graphs and sessions and warms them up (0.4–0.6 s more on the wall clock
 * than one process on the bundled nets), while two single-thread workers run the steps in
 * 0.5–0.9 of the time of one two-thread process (BENCHMARKS.md): from about 1.5 s of work on.
 */
export const WORKERS_MIN_SECONDS = 1.5;

/**
 * How many worker processes a run should use when not told (`--workers auto`): one per thread when
 * (1) a batch's states are small (8 steps per call fit, defaultUnroll: on small layers ONNX
 * Runtime's threads scale poorly, which is what separate processes win back; on large ones they
 * scale, and each worker's gigabytes of states would be paid twice), (2) the run's estimated work
 * is at least WORKERS_MIN_SECONDS, so that a worker's setup is a small share of it, and (3) every
 * worker gets at least two batches. Otherwise one.
 */
export function autoWorkerCount(
  spec: SnnSpec,
  run: { readonly samples: number; readonly steps: number; readonly batchSize: number; readonly threads: number },
): number {
  const batches = Math.ceil(run.samples / run.batchSize);
  const most = Math.max(1, Math.min(run.threads, Math.floor(batches / 2)));
  if (most === 1) return 1;
  if (defaultUnroll(spec, Math.min(run.batchSize, run.samples)) < DEFAULT_UNROLL) return 1;
  return estimateStepSeconds(spec, run.samples * run.steps) >= WORKERS_MIN_SECONDS ? most : 1;
}

export interface StepBatch {
  /** Readouts of every step: [T, n, ...readoutShape] flattened; null when only checkpoints are kept. */
  readonly readouts: Float32Array | null;
  /** Sum of the readouts of steps 1..t, at each checkpoint t (simulate's `checkpoints`). */
  readonly sums: ReadonlyMap<number, Float64Array>;
  readonly steps: number;
  readonly n: number;
  /** Values per sample in one step's readout. */
  readonly size: number;
  readonly labels: Int32Array | null;
  /** The batch's sample indices in the data set. */
  readonly indices: readonly number[];
  /** Segmentation: the batch's masks (Batch.masks). */
  readonly masks?: Uint8Array;
  /** Where each sample came from, when the source resized or cropped images (Batch.placements). */
  readonly placements?: Batch['placements'];
}

export interface SimulateOptions extends RuntimeOptions {
  readonly steps: number;
  readonly batchSize: number;
  readonly normalize: Normalize | null;
  /** 'step' (default): the graph computes one step; 'loop': it computes all steps (snn/loop.ts). */
  readonly form?: SnnForm;
  /** How the step graph is driven (ENGINES; default DEFAULT_ENGINE). */
  readonly engine?: Engine;
  /**
   * Keep only the running sums of the readout at these steps (window ends and starts): memory
   * no longer grows with T. Absent: every step's readout is kept (StepBatch.readouts).
   */
  readonly checkpoints?: readonly number[];
  /** Write the next states into preallocated buffers (default true). */
  readonly reuseBuffers?: boolean;
  /** Time steps per ONNX Runtime call: per-step engine (the step graph copied K times; default `defaultUnroll`), fused engine (a batch of K × n per stage; default FUSED_BLOCK). */
  readonly unroll?: number;
  /**
   * Run only these batches (indices into the data's consecutive batches of `batchSize`,
   * ascending): a shard, or what a resumed run has left. Default: all. Each batch is simulated
   * on its own, so a batch's spikes do not depend on which others run.
   */
  readonly batches?: readonly number[];
  /**
   * `auto` only: try the fused engine on a batch (true) or not (false) whatever the step engine's
   * costs say; default: when `worthTrying` says the work left can pay for it.
   */
  readonly autoTrial?: boolean;
  /** Called after each batch's sink: its index, and the counter sums of the batches run so far. */
  readonly afterBatch?: (batch: number, sums: SimulationStats) => void | Promise<void>;
  readonly onProgress?: OnProgress;
}

export interface SimulationStats {
  readonly samples: number;
  /** Per site, per step: spikes summed over all samples. */
  readonly spikesPerStep: readonly Float64Array[];
  /** Per spiking weighted layer (spec.layers with a `sops` output), per step: SOPs summed over all samples. */
  readonly sopsPerStep: readonly Float64Array[];
  /** Wall-clock seconds of this simulation: setup and steps. */
  readonly seconds: number;
  /** Of which building the engines' graphs and sessions (both engines' when `auto` tried fused). */
  readonly setupSeconds: number;
  /** Of which the batches: every time step, and handing each batch's readouts on. */
  readonly stepSeconds: number;
  /** Batches run by each engine (`auto` runs its first batches with both). */
  readonly engines: Readonly<Partial<Record<RunEngine, number>>>;
}

/**
 * One batch through all T steps; hands the sink what it needs and returns how long the steps
 * after its first ONNX Runtime call took (a call's first run pays for warm-up: what `auto`
 * compares leaves it out).
 */
interface BatchRunner {
  readonly engine: RunEngine;
  run(bi: number, batch: Batch): Promise<WarmTime>;
  release(): Promise<void>;
}

/** Milliseconds spent on `steps` time steps after the batch's first call (steps 0: one call in all), and on the whole batch. */
interface WarmTime {
  readonly ms: number;
  readonly steps: number;
  readonly wholeMs: number;
}

/** A batch's clock from now: `firstCallDone(t)` once its first call has computed t steps (later calls are ignored). */
function batchClock(): { firstCallDone(step: number): void; time(T: number): WarmTime } {
  const start = performance.now();
  let [warmFrom, warmStep] = [start, 0];
  return {
    firstCallDone(step) {
      if (warmStep === 0) [warmFrom, warmStep] = [performance.now(), step];
    },
    time(T) {
      const end = performance.now();
      return { ms: end - warmFrom, steps: warmStep > 0 ? T - warmStep : 0, wholeMs: end - start };
    },
  };
}

export async function simulate(
  graph: Graph,
  spec: SnnSpec,
  data: Dataset,
  opts: SimulateOptions,
  sink: (b: StepBatch) => void | Promise<void>,
): Promise<SimulationStats> {
  const t0 = performance.now();
  const T = opts.steps;
  const counters = counterOutputs(spec);
  const sums = counters.map(() => new Float64Array(T));
  const all = sequentialBatches(data.size, opts.batchSize);
  const chosen = opts.batches ?? all.map((_, b) => b);
  if (chosen.some((b, k) => !Number.isInteger(b) || b < 0 || b >= all.length || (k > 0 && b <= chosen[k - 1]))) {
    throw new Error(`batches must be ascending indices in 0..${all.length - 1}`);
  }
  const batches = chosen.map((b) => all[b]);
  const ctx: RunContext = { spec, data, opts, sink, sums, counters, nBatches: batches.length };
  const engine = opts.form === 'loop' ? 'loop' : (opts.engine ?? DEFAULT_ENGINE);
  // A Loop call returns every step's readout of its batch at once.
  const loopBytes = 4 * T * Math.min(opts.batchSize, data.size) * numel(spec.readoutShape);
  if (loopBytes > LOOP_READOUT_BYTES && engine === 'loop') {
    throw new SpikeportError(
      'invalid-option',
      `T ${T} with batches of ${Math.min(opts.batchSize, data.size)}: the Loop ${opts.form === 'loop' ? 'form' : 'engine'} keeps every step's readout, ${(loopBytes / 2 ** 30).toFixed(1)} GiB per batch (the limit is ${LOOP_READOUT_BYTES / 2 ** 30} GiB); use fewer steps, a smaller batch${opts.form === 'loop' ? ' or a step-form file' : ' or engine steps'}`,
      'T',
    );
  }
  const runners: BatchRunner[] = [];
  const used: Partial<Record<RunEngine, number>> = {};
  let ran = 0; // samples simulated
  const clock = { setup: 0, steps: 0 };
  const result = (): SimulationStats => stats(spec, ran, sums, t0, used, clock);
  /** A runner made now, its setup counted as such. */
  const made = async <R>(make: () => Promise<R>): Promise<R> => {
    const s0 = performance.now();
    try {
      return await make();
    } finally {
      clock.setup += performance.now() - s0;
    }
  };
  try {
    if (engine === 'loop') {
      runners.push(await made(() => loopRunner(opts.form === 'loop' ? graph : buildLoop({ graph, spec }), ctx)));
    } else if (engine === 'fused') {
      // A graph the fused engine cannot plan runs on steps; `engines` in the stats says so (engineNotice).
      runners.push(await made(async () => (await fusedRunner(graph, ctx)) ?? (await stepRunner(graph, ctx))));
    } else {
      runners.push(await made(() => stepRunner(graph, ctx)));
    }
    let bi = 0;
    /** Run a batch; returns its times per sample-step, after the first call (NaN if one call did it all) and in all. */
    const runBatch = async (runner: BatchRunner, batch: Batch): Promise<{ warm: number; whole: number }> => {
      const b0 = performance.now();
      const t = await runner.run(bi, batch);
      clock.steps += performance.now() - b0;
      used[runner.engine] = (used[runner.engine] ?? 0) + 1;
      ran += batch.n;
      bi++;
      await opts.afterBatch?.(chosen[bi - 1], result());
      return { warm: t.steps > 0 ? t.ms / (t.steps * batch.n) : Number.NaN, whole: t.wholeMs / (opts.steps * batch.n) };
    };
    // Batches are read ahead (a streamed source decodes the next ones while this one runs).
    const stream = prefetchBatches(data, batches.length, (b) => batches[b], opts.normalize);
    const next = async (): Promise<Batch> => (await stream.next()).value as Batch;
    // auto, with batches to choose on: the step engine runs the first; the fused engine (the same
    // results, another speed) is set up and tried only when the work left can pay for that.
    if (engine === 'auto' && batches.length >= 2) {
      const first = await next();
      const steps = await runBatch(runners[0], first);
      const perStep = Number.isNaN(steps.warm) ? steps.whole : steps.warm;
      const trial = opts.autoTrial ?? worthTrying(clock.setup, perStep * opts.steps * first.n, batches.length - 1);
      // If the fused engine cannot be set up (memory, an unusual graph), steps runs alone.
      const fused = trial ? await made(() => fusedRunner(graph, ctx).catch(() => null)) : null;
      if (fused) {
        runners.push(fused);
        // Time a batch with each (without its first call) and keep the faster per sample-step.
        // With batches to spare, a second round times both again and counts. (When one engine
        // does a batch in a single call, e.g. T ≤ 8 steps per call, both compare whole batches.)
        const times = [steps, await runBatch(fused, await next())];
        if (batches.length >= AUTO_SECOND_ROUND)
          for (const [k, r] of runners.entries()) times[k] = await runBatch(r, await next());
        const per = times.some((x) => Number.isNaN(x.warm)) ? times.map((x) => x.whole) : times.map((x) => x.warm);
        const keep = per.indexOf(Math.min(...per));
        const [loser] = runners.splice(1 - keep, 1);
        await loser.release();
      }
    }
    for await (const batch of stream) await runBatch(runners[0], batch);
  } finally {
    for (const r of runners) await r.release();
  }
  return result();
}

interface RunContext {
  readonly spec: SnnSpec;
  readonly data: Dataset;
  readonly opts: SimulateOptions;
  readonly sink: (b: StepBatch) => void | Promise<void>;
  readonly sums: Float64Array[];
  readonly counters: readonly string[];
  readonly nBatches: number;
}

/**
 * A batch's readouts as its sink receives them, filled step by step: every step's readout, or
 * (with `checkpoints`) running sums kept at those steps only.
 */
function readoutCollector(
  opts: SimulateOptions,
  spec: SnnSpec,
  batch: Batch,
): { add(t: number, r: Float32Array): void; done(): StepBatch } {
  const T = opts.steps;
  const n = batch.n;
  const size = numel(spec.readoutShape);
  const checkpoints = new Set(opts.checkpoints ?? []);
  const keep = opts.checkpoints ? null : new Float32Array(T * n * size);
  const cums = new Map<number, Float64Array>();
  const running = new Float64Array(opts.checkpoints ? n * size : 0);
  return {
    add(t, r) {
      if (keep) {
        keep.set(r, t * n * size);
        return;
      }
      for (let j = 0; j < running.length; j++) running[j] += r[j];
      if (checkpoints.has(t + 1)) cums.set(t + 1, Float64Array.from(running));
    },
    done: () => stepBatch(batch, keep, cums, T, size),
  };
}

function stepBatch(
  batch: Batch,
  readouts: Float32Array | null,
  sums: ReadonlyMap<number, Float64Array>,
  steps: number,
  size: number,
): StepBatch {
  return {
    readouts,
    sums,
    steps,
    n: batch.n,
    size,
    labels: batch.y,
    indices: batch.indices,
    ...(batch.masks ? { masks: batch.masks } : {}),
    ...(batch.placements ? { placements: batch.placements } : {}),
  };
}

/** The one-step graph called once per step from JS, with the input-only prefix computed once. */
async function stepRunner(graph: Graph, ctx: RunContext): Promise<BatchRunner> {
  const { spec, opts, sink, sums, counters, nBatches } = ctx;
  // The input is the same at every step: compute what depends only on it once per batch.
  const split = splitConstantPrefix(graph, spec);
  // Counters in whole numbers, summed in float64: the fused engine's exact counts (snn/exact-counts.ts).
  const step = exactCounters(split.step, spec);
  // K steps per call where they fit (the last T mod K steps run one by one).
  const unrollK = Math.max(
    1,
    Math.min(opts.unroll ?? defaultUnroll(spec, Math.min(opts.batchSize, ctx.data.size)), opts.steps),
  );
  const made: Session[] = [];
  const create = async (g: Graph, memoryPattern = true): Promise<Session> => {
    const s = await Session.create(g, { ...opts, memoryPattern });
    made.push(s);
    return s;
  };
  let session: Session | null;
  let prefix: Session | null;
  let unrolled: Session | null;
  try {
    // The one-step session only when some steps run one by one (T not a multiple of K).
    session = unrollK === 1 || opts.steps % unrollK !== 0 ? await create(step) : null;
    prefix = split.prefix ? await create(split.prefix) : null;
    // Without ONNX Runtime's memory pattern: a block for all of K steps' tensors, new at every call, costs more than it saves.
    unrolled = unrollK > 1 ? await create(unrollSteps(step, spec, unrollK), false) : null;
  } catch (e) {
    // (The sessions made before the one that failed are released, not left to the process's end.)
    for (const s of made) await s.release();
    throw e;
  }
  const stepInputs = new Set(step.inputs.map((i) => i.name));
  const T = opts.steps;
  /** The state buffers of the last batch (`current` first), for the next one of the same size. */
  let kept: { n: number; pair: [Record<string, Array32>, Record<string, Array32>] } | null = null;
  return {
    engine: 'steps',
    async run(bi, batch) {
      const n = batch.n;
      const input: Array32 = { dims: [n, ...spec.inputShape], data: batch.x };
      const feeds: Record<string, Array32> = stepInputs.has(spec.input) ? { [spec.input]: input } : {};
      if (prefix) Object.assign(feeds, await prefix.run({ [spec.input]: input }));
      // Two buffers per state, swapped every step: ONNX Runtime writes the next state into the
      // one not being read instead of allocating fresh outputs every step. They are kept for the
      // next batch of the same size: fresh ones cost a page fault per 4 KiB (at 224, batch 16,
      // 0.75 GB and ~0.3 s of the kernel's time per batch); only the states read first are zeroed.
      const fresh = (): Record<string, Array32> =>
        Object.fromEntries(
          spec.states.map((s) => [s.input, { dims: [n, ...s.shape], data: new Float32Array(n * numel(s.shape)) }]),
        );
      if (opts.reuseBuffers === false) kept = null;
      else if (kept?.n === n) for (const v of Object.values(kept.pair[0])) v.data.fill(0);
      else kept = { n, pair: [fresh(), fresh()] };
      let [current, next] = kept ? kept.pair : [fresh(), null];
      Object.assign(feeds, current);
      const readouts = readoutCollector(opts, spec, batch);
      // The clock and the step when the first call is done.
      const clock = batchClock();
      for (let t = 0; t < T;) {
        if (t > 0) clock.firstCallDone(t);
        const K = unrolled && t + unrollK <= T ? unrollK : 1;
        const into = next
          ? Object.fromEntries(spec.states.map((s) => [s.output, (next as Record<string, Array32>)[s.input]]))
          : undefined;
        const out = await ((K > 1 ? unrolled : session) as Session).run(feeds, undefined, into);
        for (let k = 0; k < K; k++, t++) {
          const name = (x: string): string => (K > 1 ? stepName(x, k) : x);
          readouts.add(t, out[name(spec.readout)].data);
          // Whole numbers: a float64 count as float32 [high, low] (exact-counts.ts), or one float32 where a counter kept another shape.
          counters.forEach((c, i) => {
            sums[i][t] += Math.round(out[name(c)].data.reduce((a, v) => a + v, 0));
          });
        }
        for (const s of spec.states) feeds[s.input] = out[s.output];
        if (next) [current, next] = [next, current];
        opts.onProgress?.({ phase: 'simulate', done: bi * T + t, total: nBatches * T });
      }
      const time = clock.time(T);
      await sink(readouts.done());
      return time;
    },
    async release() {
      await session?.release();
      await unrolled?.release();
      await prefix?.release();
    },
  };
}

/**
 * The layer-by-layer engine (runtime/fused.ts): K steps per stage call, the neurons in JS; null
 * when the step graph holds state ops it does not know (the caller uses the step engine).
 */
async function fusedRunner(graph: Graph, ctx: RunContext): Promise<BatchRunner | null> {
  const { spec, opts, sink, sums, counters, nBatches } = ctx;
  const plan = fusedPlan(graph, spec);
  if (!plan) return null;
  // `unroll` is this engine's block only when it was asked for by name (under auto it is the step engine's).
  const asked = opts.engine === 'fused';
  const engine = await fusedSessions(plan, spec, { ...opts, block: asked ? opts.unroll : undefined });
  // Under auto, a batch too large for the kernels' memory leaves the choice to steps (asked for
  // by name, the first batch says so instead).
  if (!asked && !engine.fits(Math.min(opts.batchSize, ctx.data.size))) {
    await engine.release();
    return null;
  }
  const T = opts.steps;
  const size = numel(spec.readoutShape);
  return {
    engine: 'fused',
    async run(bi, batch) {
      const n = batch.n;
      const readouts = readoutCollector(opts, spec, batch);
      const clock = batchClock();
      await engine.run(batch, T, (t0, K, block) => {
        if (t0 === 0 && K < T) clock.firstCallDone(K);
        for (let k = 0; k < K; k++) {
          readouts.add(t0 + k, block.readouts.subarray(k * n * size, (k + 1) * n * size));
          counters.forEach((_, i) => {
            sums[i][t0 + k] += block.counts[i][k];
          });
        }
        opts.onProgress?.({ phase: 'simulate', done: bi * T + t0 + K, total: nBatches * T });
      });
      const time = clock.time(T);
      await sink(readouts.done());
      return time;
    },
    release: () => engine.release(),
  };
}

/** A Loop-form graph: one call per batch returns every step's readout and counters. */
async function loopRunner(graph: Graph, ctx: RunContext): Promise<BatchRunner> {
  const { spec, opts, sink, sums, counters, nBatches } = ctx;
  const session = await Session.create(graph, opts);
  const T = opts.steps;
  const size = numel(spec.readoutShape);
  const scalar = (v: number): ArrayI64 => ({ dims: [], data: BigInt64Array.of(BigInt(v)) });
  return {
    engine: 'loop',
    async run(bi, batch) {
      const clock = batchClock();
      const out = await session.run(
        {
          [spec.input]: { dims: [batch.n, ...spec.inputShape], data: batch.x },
          [LOOP_STEPS_INPUT]: scalar(T),
          [LOOP_DELAY_INPUT]: scalar(0),
        },
        [loopReadout(spec.readout), ...counters.map(loopCounter)],
      );
      counters.forEach((c, i) =>
        out[loopCounter(c)].data.forEach((v, t) => {
          sums[i][t] += Math.round(v);
        }),
      );
      opts.onProgress?.({ phase: 'simulate', done: (bi + 1) * T, total: nBatches * T });
      const time = clock.time(T); // one call: no warm part to tell apart
      await sink(stepBatch(batch, out[loopReadout(spec.readout)].data, new Map(), T, size));
      return time;
    },
    release: () => session.release(),
  };
}

function stats(
  spec: SnnSpec,
  samples: number,
  sums: Float64Array[],
  t0: number,
  engines: Partial<Record<RunEngine, number>>,
  clock: { readonly setup: number; readonly steps: number },
): SimulationStats {
  const k = spec.sites.length;
  return {
    samples,
    spikesPerStep: sums.slice(0, k),
    sopsPerStep: sums.slice(k),
    seconds: (performance.now() - t0) / 1000,
    setupSeconds: clock.setup / 1000,
    stepSeconds: clock.steps / 1000,
    engines: { ...engines },
  };
}
