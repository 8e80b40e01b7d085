/**
 * What `auto` decides from cost estimates: whether a trial of the fused engine can pay for
 * itself, and how many worker processes a run should use.
 */
import type { SnnSpec } from '../snn/format.js';
import { numel } from '../graph/ir.js';
import { DEFAULT_UNROLL, defaultUnroll } from './steps.js';

/**
 * From this many batches on, `auto` times each engine twice (the second time counts): then the
 * loser's second batch costs at most 1/20 of the run.
 */
export const AUTO_SECOND_ROUND = 20;

/**
 * Most of the work left that `auto`'s trial of the fused engine may cost: its setup and, if it
 * loses, a slower batch. Below that the trial cannot pay: on a short run it costs more than the
 * faster engine could win back (a second set of sessions at 224 takes seconds), and on this
 * machine the step engine is as fast or faster on a quiet machine (docs/benchmarks.md).
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
 * 0.5–0.9 of the time of one two-thread process (docs/benchmarks.md): from about 1.5 s of work on.
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

/**
 * What one process of a large-state run holds at its peak, guessed from a batch's states (the
 * membranes and accumulators of one step): mobilenet_v2 at 224, batch 16 (0.37 GB of states)
 * peaked at 4.9 GB with the step engine and 3.3 GB with the fused one (13 and 9 times its
 * states); this takes 14 times, plus half a gigabyte for Node, the network and ONNX Runtime.
 */
export function workerPeakBytes(spec: SnnSpec, batchSize: number): number {
  return 14 * 4 * batchSize * spec.states.reduce((a, s) => a + numel(s.shape), 0) + 2 ** 29;
}

/** The share of the memory available that the workers of a large-state run may take between them. */
export const WORKERS_MEMORY_SHARE = 0.8;

export interface WorkerPlan {
  readonly workers: number;
  /** The engine `auto` runs first in each worker (EngineOptions.autoStart); absent: steps, as always. */
  readonly autoStart?: 'fused';
}

/**
 * `--workers auto` with the engine chosen for the whole run. Small states: autoWorkerCount. Large
 * states (fewer than 8 steps per call fit): one process per thread running the fused engine, when
 * each worker gets at least two batches, the run's work is at least WORKERS_MIN_SECONDS, the
 * network has no shared-reset group (the fused engine runs none) and all workers' peaks
 * (workerPeakBytes, the step engine's, should a worker fall back to it) fit in
 * WORKERS_MEMORY_SHARE of `availableBytes`. At 224 the fused engine's neuron pass is one
 * WebAssembly thread, which leaves the second core idle in one process; two single-thread
 * workers keep both busy (docs/performance.md). Otherwise one process.
 */
export function autoWorkerPlan(
  spec: SnnSpec,
  run: { readonly samples: number; readonly steps: number; readonly batchSize: number; readonly threads: number },
  availableBytes: number,
): WorkerPlan {
  const batch = Math.min(run.batchSize, run.samples);
  if (defaultUnroll(spec, batch) >= DEFAULT_UNROLL) return { workers: autoWorkerCount(spec, run) };
  const batches = Math.ceil(run.samples / run.batchSize);
  const most = Math.max(1, Math.min(run.threads, Math.floor(batches / 2)));
  const fits = most * workerPeakBytes(spec, batch) <= WORKERS_MEMORY_SHARE * availableBytes;
  const shared = spec.sites.some((s) => s.group?.kind === 'shared');
  const long = estimateStepSeconds(spec, run.samples * run.steps) >= WORKERS_MIN_SECONDS;
  return most > 1 && fits && !shared && long ? { workers: most, autoStart: 'fused' } : { workers: 1 };
}
