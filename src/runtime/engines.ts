/**
 * What the engines share: their names and which give the same results, the options of a run
 * over batches, what a batch hands its sink, and the readout collection every engine fills.
 * Each engine is a module of its own (steps.ts, fused.ts, loop.ts); batches.ts drives them and
 * auto.ts decides what `auto` tries.
 */
import type { Batch, Dataset, Normalize } from '../data/dataset.js';
import { numel } from '../graph/ir.js';
import type { RuntimeOptions } from '../ort/session.js';
import type { OnProgress } from '../progress.js';
import type { SnnForm, SnnSpec } from '../snn/format.js';

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
 * is faster depends on the model and the machine's load (docs/performance.md) while the
 * results do not.
 */
export const DEFAULT_ENGINE: Engine = 'auto';

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

export interface BatchOptions extends RuntimeOptions {
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
  /**
   * `auto` only: the engine that runs the first batch (default `steps`). `fused` runs every
   * batch with the fused engine, without a trial, where it can (its plan and memory; else
   * `steps`): what a worker of `--workers auto` is told on a network with large states
   * (autoWorkerPlan).
   */
  readonly autoStart?: 'steps' | 'fused';
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
export interface BatchRunner {
  readonly engine: RunEngine;
  run(bi: number, batch: Batch): Promise<WarmTime>;
  release(): Promise<void>;
}

/** Milliseconds spent on `steps` time steps after the batch's first call (steps 0: one call in all), and on the whole batch. */
export interface WarmTime {
  readonly ms: number;
  readonly steps: number;
  readonly wholeMs: number;
}

/** A batch's clock from now: `firstCallDone(t)` once its first call has computed t steps (later calls are ignored). */
export function batchClock(): { firstCallDone(step: number): void; time(T: number): WarmTime } {
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

export interface EngineContext {
  readonly spec: SnnSpec;
  readonly data: Dataset;
  readonly opts: BatchOptions;
  readonly sink: (b: StepBatch) => void | Promise<void>;
  readonly sums: Float64Array[];
  readonly counters: readonly string[];
  readonly nBatches: number;
}

/**
 * A batch's readouts as its sink receives them, filled step by step: every step's readout, or
 * (with `checkpoints`) running sums kept at those steps only.
 */
export function readoutCollector(
  opts: BatchOptions,
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

export function stepBatch(
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
