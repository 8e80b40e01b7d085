/**
 * The step engine: the one-step graph called from JS, K steps per call (the graph copied K
 * times, unroll.ts), with what depends only on the input computed once per batch.
 */
import type { Graph } from '../graph/ir.js';
import { numel } from '../graph/ir.js';
import { Session, type Array32 } from '../ort/session.js';
import type { SnnSpec } from '../snn/format.js';
import { splitConstantPrefix } from '../snn/split.js';
import { exactCounters } from './exact-counts.js';
import { stepName, unrollSteps } from './unroll.js';
import { batchClock, readoutCollector, type BatchRunner, type EngineContext } from './engines.js';

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
 * (5–21 MB) 8 stay (docs/performance.md).
 */
export function defaultUnroll(spec: SnnSpec, batchSize: number): number {
  const bytes = 4 * batchSize * spec.states.reduce((a, s) => a + numel(s.shape), 0);
  return DEFAULT_UNROLL * bytes > UNROLL_STATE_BYTES ? DEFAULT_UNROLL / 2 : DEFAULT_UNROLL;
}

/** The one-step graph called once per step from JS, with the input-only prefix computed once. */
export async function stepRunner(graph: Graph, ctx: EngineContext): Promise<BatchRunner> {
  const { spec, opts, sink, sums, counters, nBatches } = ctx;
  // The input is the same at every step: compute what depends only on it once per batch.
  const split = splitConstantPrefix(graph, spec);
  // Counters in whole numbers, summed in float64: the fused engine's exact counts (exact-counts.ts).
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
