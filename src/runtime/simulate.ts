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
import { LOOP_DELAY_INPUT, LOOP_STEPS_INPUT, counterOutputs, loopCounter, loopReadout, type SnnForm, type SnnSpec } from '../snn/format.js';
import { buildLoop } from '../snn/loop.js';
import { splitConstantPrefix } from '../snn/split.js';
import { stepName, unrollSteps } from '../snn/unroll.js';
import { SpikeportError } from '../errors.js';
import { fusedPlan, fusedSessions } from './fused.js';

/**
 * How a step graph is driven: `steps` calls it from JS (several steps per call), `loop` wraps it
 * in an ONNX Loop (one call per batch), `auto` times the first batch with each and keeps the
 * faster; `fused` runs the layers in ONNX Runtime on several steps at once and the neurons in
 * one JS pass each (runtime/fused.ts; the same spikes as `steps`, exact counts). All give the
 * same spikes.
 */
export const ENGINES = ['auto', 'steps', 'loop', 'fused'] as const;
export type Engine = (typeof ENGINES)[number];

/**
 * The default engine. `fused` gives the same spikes and readouts bit for bit (exact counts) but
 * is not faster on every model on this machine (BENCHMARKS.md, issue 14): opt-in for now.
 */
export const DEFAULT_ENGINE: Engine = 'steps';

/** Most memory a Loop call may return for one batch's readouts. */
export const LOOP_READOUT_BYTES = 2 ** 30;

/** Steps per call of the per-step engine (bench/all.ts measures 1 against this). */
export const DEFAULT_UNROLL = 8;

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
  /**
   * How a step graph is driven: 'steps' calls it once per step from JS, with the input-only
   * prefix computed once; 'loop' wraps it in an ONNX Loop, one call per batch; 'auto' times the
   * first batch with each and keeps the faster (BENCHMARKS.md: per step wins on the conv-heavy
   * Fashion-MNIST models, the Loop on the small MNIST CNN); 'fused' runs the layers in ONNX
   * Runtime and the neurons in one WebAssembly pass (runtime/fused.ts). Default DEFAULT_ENGINE.
   */
  readonly engine?: Engine;
  /**
   * Keep only the running sums of the readout at these steps (window ends and starts): memory
   * no longer grows with T. Absent: every step's readout is kept (StepBatch.readouts).
   */
  readonly checkpoints?: readonly number[];
  /** Write the next states into preallocated buffers (default true). */
  readonly reuseBuffers?: boolean;
  /** Time steps per ONNX Runtime call: per-step engine (the step graph copied K times; default DEFAULT_UNROLL), fused engine (a batch of K × n per stage; default FUSED_BLOCK). */
  readonly unroll?: number;
  /**
   * Run only these batches (indices into the data's consecutive batches of `batchSize`,
   * ascending): a shard, or what a resumed run has left. Default: all. Each batch is simulated
   * on its own, so a batch's spikes do not depend on which others run.
   */
  readonly batches?: readonly number[];
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
  readonly seconds: number;
}

/** One batch through all T steps; returns what the sink needs. */
interface BatchRunner {
  run(bi: number, batch: Batch): Promise<void>;
  release(): Promise<void>;
}

export async function simulate(graph: Graph, spec: SnnSpec, data: Dataset, opts: SimulateOptions, sink: (b: StepBatch) => void | Promise<void>): Promise<SimulationStats> {
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
  // A Loop call returns every step's readout of its batch at once.
  const loopBytes = 4 * T * Math.min(opts.batchSize, data.size) * numel(spec.readoutShape);
  const loopFits = loopBytes <= LOOP_READOUT_BYTES;
  if (!loopFits && (opts.form === 'loop' || opts.engine === 'loop')) {
    throw new SpikeportError('invalid-option', `T ${T} with batches of ${Math.min(opts.batchSize, data.size)}: the Loop ${opts.form === 'loop' ? 'form' : 'engine'} keeps every step's readout, ${(loopBytes / 2 ** 30).toFixed(1)} GiB per batch (the limit is ${LOOP_READOUT_BYTES / 2 ** 30} GiB); use fewer steps, a smaller batch${opts.form === 'loop' ? ' or a step-form file' : ' or engine steps'}`, 'T');
  }
  const runners: BatchRunner[] = [];
  let ran = 0; // samples simulated
  try {
    if (opts.form === 'loop') {
      runners.push(await loopRunner(graph, ctx));
    } else if (opts.engine === 'loop') {
      runners.push(await loopRunner(buildLoop({ graph, spec }), ctx));
    } else if ((opts.engine ?? DEFAULT_ENGINE) === 'fused') {
      runners.push(await fusedRunner(graph, ctx) ?? await stepRunner(graph, ctx));
    } else {
      runners.push(await stepRunner(graph, ctx));
    }
    let runner = runners[0];
    let bi = 0;
    const done = async (): Promise<void> => {
      ran += batches[bi - 1].length;
      await opts.afterBatch?.(chosen[bi - 1], stats(spec, ran, sums, t0));
    };
    // Batches are read ahead (a streamed source decodes the next ones while this one runs).
    const stream = prefetchBatches(data, batches.length, (b) => batches[b], opts.normalize);
    if (opts.engine === 'auto' && opts.form !== 'loop' && batches.length >= 3 && loopFits) {
      // Both engines compute the same network; which is faster depends on the model (per-call
      // cost against ONNX Runtime's weaker optimisation of Loop bodies). Time one batch with
      // each, keep the faster for the rest. (Their kernels may round differently: on mnist-cnn
      // one spike in 10⁷ differs, so a rerun can differ by that much.)
      runners.push(await loopRunner(buildLoop({ graph, spec }), ctx));
      const times = [];
      for (const r of runners) {
        const batch = (await stream.next()).value as Batch;
        const t = performance.now();
        await r.run(bi, batch);
        bi++;
        times.push(performance.now() - t);
        await done();
      }
      runner = times[1] < times[0] ? runners[1] : runners[0];
    }
    for await (const batch of stream) {
      await runner.run(bi++, batch);
      await done();
    }
  } finally {
    for (const r of runners) await r.release();
  }
  return stats(spec, ran, sums, t0);
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

/** The one-step graph called once per step from JS, with the input-only prefix computed once. */
async function stepRunner(graph: Graph, ctx: RunContext): Promise<BatchRunner> {
  const { spec, opts, sink, sums, counters, nBatches } = ctx;
  // The input is the same at every step: compute what depends only on it once per batch.
  const split = splitConstantPrefix(graph, spec);
  const session = await Session.create(split.step, opts);
  const prefix = split.prefix ? await Session.create(split.prefix, opts) : null;
  // K steps per call where they fit (the last T mod K steps run one by one).
  const unrollK = Math.max(1, Math.min(opts.unroll ?? DEFAULT_UNROLL, opts.steps));
  const unrolled = unrollK > 1 ? await Session.create(unrollSteps(split.step, spec, unrollK), opts) : null;
  const stepInputs = new Set(split.step.inputs.map((i) => i.name));
  const T = opts.steps;
  const size = numel(spec.readoutShape);
  const checkpoints = new Set(opts.checkpoints ?? []);
  return {
    async run(bi, batch) {
      const n = batch.n;
      const input: Array32 = { dims: [n, ...spec.inputShape], data: batch.x };
      const feeds: Record<string, Array32> = stepInputs.has(spec.input) ? { [spec.input]: input } : {};
      if (prefix) Object.assign(feeds, await prefix.run({ [spec.input]: input }));
      // Two buffers per state, swapped every step: ONNX Runtime writes the next state into the
      // one not being read instead of allocating fresh outputs every step.
      const zero = (): Record<string, Array32> => Object.fromEntries(spec.states.map((s) => [s.input, { dims: [n, ...s.shape], data: new Float32Array(n * numel(s.shape)) }]));
      let current = zero();
      let next = opts.reuseBuffers === false ? null : zero();
      Object.assign(feeds, current);
      const keep = opts.checkpoints ? null : new Float32Array(T * n * size);
      const cums = new Map<number, Float64Array>();
      const running = new Float64Array(opts.checkpoints ? n * size : 0);
      for (let t = 0; t < T;) {
        const K = unrolled && t + unrollK <= T ? unrollK : 1;
        const into = next ? Object.fromEntries(spec.states.map((s) => [s.output, (next as Record<string, Array32>)[s.input]])) : undefined;
        const out = await (K > 1 ? (unrolled as Session) : session).run(feeds, undefined, into);
        for (let k = 0; k < K; k++, t++) {
          const name = (x: string): string => (K > 1 ? stepName(x, k) : x);
          const r = out[name(spec.readout)].data;
          if (keep) keep.set(r, t * n * size);
          else {
            for (let j = 0; j < running.length; j++) running[j] += r[j];
            if (checkpoints.has(t + 1)) cums.set(t + 1, Float64Array.from(running));
          }
          // Counts are integers; the graph sums them in float32 through θ-scaled weights.
          counters.forEach((c, i) => { sums[i][t] += Math.round(out[name(c)].data[0]); });
        }
        for (const s of spec.states) feeds[s.input] = out[s.output];
        if (next) [current, next] = [next, current];
        opts.onProgress?.({ phase: 'simulate', done: bi * T + t, total: nBatches * T });
      }
      await sink({ readouts: keep, sums: cums, steps: T, n, size, labels: batch.y, indices: batch.indices, ...(batch.masks ? { masks: batch.masks } : {}), ...(batch.placements ? { placements: batch.placements } : {}) });
    },
    async release() {
      await session.release();
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
  const engine = await fusedSessions(plan, spec, { ...opts, block: opts.unroll });
  const T = opts.steps;
  const size = numel(spec.readoutShape);
  const checkpoints = new Set(opts.checkpoints ?? []);
  return {
    async run(bi, batch) {
      const n = batch.n;
      const keep = opts.checkpoints ? null : new Float32Array(T * n * size);
      const cums = new Map<number, Float64Array>();
      const running = new Float64Array(opts.checkpoints ? n * size : 0);
      await engine.run(batch, T, (t0, K, block) => {
        for (let k = 0; k < K; k++) {
          const t = t0 + k;
          const r = block.readouts.subarray(k * n * size, (k + 1) * n * size);
          if (keep) keep.set(r, t * n * size);
          else {
            for (let j = 0; j < running.length; j++) running[j] += r[j];
            if (checkpoints.has(t + 1)) cums.set(t + 1, Float64Array.from(running));
          }
          counters.forEach((_, i) => { sums[i][t] += block.counts[i][k]; });
        }
        opts.onProgress?.({ phase: 'simulate', done: bi * T + t0 + K, total: nBatches * T });
      });
      await sink({ readouts: keep, sums: cums, steps: T, n, size, labels: batch.y, indices: batch.indices, ...(batch.masks ? { masks: batch.masks } : {}), ...(batch.placements ? { placements: batch.placements } : {}) });
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
    async run(bi, batch) {
      const out = await session.run({
        [spec.input]: { dims: [batch.n, ...spec.inputShape], data: batch.x },
        [LOOP_STEPS_INPUT]: scalar(T), [LOOP_DELAY_INPUT]: scalar(0),
      }, [loopReadout(spec.readout), ...counters.map(loopCounter)]);
      counters.forEach((c, i) => out[loopCounter(c)].data.forEach((v, t) => { sums[i][t] += Math.round(v); }));
      opts.onProgress?.({ phase: 'simulate', done: (bi + 1) * T, total: nBatches * T });
      await sink({ readouts: out[loopReadout(spec.readout)].data, sums: new Map(), steps: T, n: batch.n, size, labels: batch.y, indices: batch.indices, ...(batch.masks ? { masks: batch.masks } : {}), ...(batch.placements ? { placements: batch.placements } : {}) });
    },
    release: () => session.release(),
  };
}

function stats(spec: SnnSpec, samples: number, sums: Float64Array[], t0: number): SimulationStats {
  const k = spec.sites.length;
  return { samples, spikesPerStep: sums.slice(0, k), sopsPerStep: sums.slice(k), seconds: (performance.now() - t0) / 1000 };
}
