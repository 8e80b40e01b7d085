/**
 * The layer-by-layer engine (`--engine fused`): the step graph cut at its state updates
 * (stages.ts). Each stage of stateless ops (the convolutions, pools, adds) runs as an ONNX
 * Runtime session, on K time steps at once (a batch of K × n samples, step-major; K = 1 by
 * default, the fastest measured), and each state update scans those steps in one WebAssembly
 * SIMD pass (kernels.ts): the neuron integrates, compares, emits, resets and counts its spikes
 * and SOPs in the same pass, writing the spikes straight into the next stage's input, which
 * lives in the kernels' memory. The arithmetic is the step graph's (the same nodes, the same float32 adds,
 * compares and subtractions, in the same order per neuron), so the spikes are the same; the
 * counts are exact integers, like the step engine's (exact-counts.ts).
 */
import type { Graph } from '../graph/ir.js';
import { numel } from '../graph/ir.js';
import { Session, type Array32, type RuntimeOptions } from '../ort/session.js';
import { counterOutputs, type SnnSpec } from '../snn/format.js';
import { planStages, type StateUpdate, type Stages } from './stages.js';
import { splitConstantPrefix } from '../snn/split.js';
import type { Batch } from '../data/dataset.js';
import { createKernels } from './kernels.js';
import { batchClock, readoutCollector, type BatchRunner, type EngineContext } from './engines.js';

/** Time steps per stage call of the fused engine (fewer when the arena would outgrow FUSED_ARENA_BYTES). */
export const FUSED_BLOCK = 1;

/** Most memory the fused engine's buffers of one block may take. */
export const FUSED_ARENA_BYTES = 2 ** 29;

export interface FusedOptions extends RuntimeOptions {
  /** Time steps per stage call (default FUSED_BLOCK). */
  readonly block?: number;
  /** 'wasm' (default; plain JS where WebAssembly SIMD is missing) or 'js'. */
  readonly kernels?: 'wasm' | 'js';
  /** ONNX Runtime profiles of the stages, to files starting with this path (bench/profile-step.ts). */
  readonly profile?: string;
}

export interface FusedPlan {
  readonly prefix: Graph | null;
  readonly stages: Stages;
}

/** The prefix and stages of a step graph, or null when it holds state ops the fused engine does not know. */
export function fusedPlan(graph: Graph, spec: SnnSpec): FusedPlan | null {
  const split = splitConstantPrefix(graph, spec);
  const stages = planStages(split.step, spec);
  return stages ? { prefix: split.prefix, stages } : null;
}

/** Per block: each step's readout and counters. */
export interface FusedBlock {
  /** Readouts of the block's steps: [K, n, ...readoutShape] flattened. */
  readonly readouts: Float32Array;
  /** Per counter of counterOutputs(spec), per step of the block. */
  readonly counts: readonly Float64Array[];
}

export interface FusedSessions {
  /** Run one batch through `steps` steps, K at a time; `onBlock(t0, K, block)` gets every block. */
  run(
    batch: Batch,
    steps: number,
    onBlock: (t0: number, K: number, block: FusedBlock) => void | Promise<void>,
  ): Promise<void>;
  /** Whether a batch of n samples fits the kernels' memory (else `run` throws). */
  fits(n: number): boolean;
  release(): Promise<void>;
}

export async function fusedSessions(plan: FusedPlan, spec: SnnSpec, opts: FusedOptions): Promise<FusedSessions> {
  const { stages, events, stateShapes } = plan.stages;
  const sessions: (Session | null)[] = [];
  let prefix: Session | null = null;
  try {
    // Many sessions called in turn: idle ones must not spin on the cores the running one needs.
    const so = { threads: opts.threads, device: opts.device, spinning: false };
    prefix = plan.prefix ? await Session.create(plan.prefix, so) : null;
    for (const [i, s] of stages.entries())
      sessions.push(
        s.graph
          ? await Session.create(s.graph, { ...so, ...(opts.profile ? { profile: `${opts.profile}stage${i}` } : {}) })
          : null,
      );
  } catch (e) {
    await prefix?.release();
    for (const s of sessions) await s?.release();
    throw e;
  }
  const kern = createKernels(opts.kernels ?? 'wasm');
  const counters = counterOutputs(spec);
  const counterIndex = new Map(counters.map((c, i) => [c, i]));
  const blockSize = Math.max(1, opts.block ?? FUSED_BLOCK);
  const readoutSize = numel(spec.readoutShape);
  const updates = stages.flatMap((s) => s.updates);
  const shapeOf = (u: StateUpdate): readonly number[] => stateShapes.get(u.state) as readonly number[];
  const inputOf = (u: StateUpdate): string => (u.kind === 'neuron' ? u.current : u.input);
  const outputOf = (u: StateUpdate): string => (u.kind === 'neuron' ? u.spikes : u.output);
  // Every tensor JS reads or writes, with one sample's shape: it lives in the arena.
  const jsShapes = new Map<string, readonly number[]>();
  for (const u of updates) {
    jsShapes.set(inputOf(u), shapeOf(u));
    jsShapes.set(outputOf(u), shapeOf(u));
  }
  // An event counter's input may have any shape: copied into the arena after its stage.
  const copied = new Set<string>();
  for (const e of events) {
    if (jsShapes.has(e.input)) continue;
    jsShapes.set(e.input, [e.fanout.length]);
    copied.add(e.input);
  }
  const int32 = (f: Float64Array): Int32Array => Int32Array.from(f);
  const stageInputs = stages.map((s) => s.graph?.inputs.map((i) => i.name) ?? []);
  const stageOutputs = stages.map((s) => s.graph?.outputs.map((o) => o.name) ?? []);

  // Per-batch constants: the model input and the prefix's results.
  const constantNames = new Set([spec.input, ...(plan.prefix?.outputs.map((o) => o.name) ?? [])]);
  /** The arena for n samples: states and per-neuron constants once (fixed), the JS tensors per step. */
  const arena = (n: number): { fixed: number; perStep: number; extra: number } => {
    let fixed = 0;
    let perStep = 0;
    for (const u of updates) fixed += numel(shapeOf(u)) * (n + 2 + (u.kind === 'neuron' ? u.sops.length : 0));
    for (const e of events) fixed += e.fanout.length;
    for (const [name, shape] of jsShapes) {
      if (constantNames.has(name)) fixed += n * numel(shape);
      else perStep += n * numel(shape);
    }
    return { fixed, perStep, extra: 4 * (2 * updates.length + jsShapes.size + events.length) };
  };

  return {
    fits(n) {
      const { fixed, perStep, extra } = arena(n);
      return kern.fits(fixed + perStep + extra);
    },
    async run(batch, T, onBlock) {
      const n = batch.n;
      const input: Array32 = { dims: [n, ...spec.inputShape], data: batch.x };
      const constants = new Map<string, Array32>([[spec.input, input]]);
      if (prefix) for (const [k, v] of Object.entries(await prefix.run({ [spec.input]: input }))) constants.set(k, v);
      const { fixed, perStep, extra } = arena(n);
      const K = Math.max(1, Math.min(blockSize, T, Math.floor((FUSED_ARENA_BYTES / 4 - fixed) / Math.max(1, perStep))));
      kern.reserve(fixed + K * perStep + extra);
      const views = new Map<string, Float32Array>();
      for (const [name, shape] of jsShapes) {
        const c = constants.get(name);
        const v = kern.f32((c ? 1 : K) * n * numel(shape));
        if (c) v.set(c.data);
        views.set(name, v);
      }
      const perUpdate = updates.map((u) => {
        const per = numel(shapeOf(u));
        const state = kern.f32(n * per).fill(0);
        if (u.kind !== 'neuron') return { state, level: null, theta: null, fans: [] as Int32Array[] };
        // One value per channel where level and θ are (the kernel then reads two fewer arrays).
        const [lv, th] = perChannel(u.level, u.theta, shapeOf(u)[0] ?? 1);
        const level = kern.f32(lv.length);
        level.set(lv);
        const theta = kern.f32(th.length);
        theta.set(th);
        const fans = u.sops.map((x) => {
          const f = kern.i32(per);
          f.set(int32(x.fanout));
          return f;
        });
        return { state, level, theta, fans };
      });
      const eventFans = events.map((e) => {
        const f = kern.i32(e.fanout.length);
        f.set(int32(e.fanout));
        return f;
      });
      const tiled = new Map<string, Array32>();
      const tile = (name: string, k: number): Array32 => {
        const c = constants.get(name) as Array32;
        let t = tiled.get(name);
        if (!t || t.dims[0] !== k * n) {
          const data = new Float32Array(k * c.data.length);
          for (let j = 0; j < k; j++) data.set(c.data, j * c.data.length);
          t = { dims: [k * n, ...c.dims.slice(1)], data };
          tiled.set(name, t);
        }
        return t;
      };
      /** The arena view of a JS tensor for the first k steps of the block, as an ONNX Runtime value. */
      const jsValue = (name: string, k: number): Array32 => {
        const shape = jsShapes.get(name) as readonly number[];
        return { dims: [k * n, ...shape], data: (views.get(name) as Float32Array).subarray(0, k * n * numel(shape)) };
      };
      for (let t0 = 0; t0 < T; t0 += K) {
        const k = Math.min(K, T - t0);
        const vals = new Map<string, Array32>();
        const counts = counters.map(() => new Float64Array(k));
        for (let L = 0; L < stages.length; L++) {
          const s = sessions[L];
          if (s) {
            const feeds: Record<string, Array32> = {};
            for (const name of stageInputs[L])
              feeds[name] =
                vals.get(name) ?? (jsShapes.has(name) && !constants.has(name) ? jsValue(name, k) : tile(name, k));
            const into: Record<string, Array32> = {};
            for (const name of stageOutputs[L])
              if (jsShapes.has(name) && !copied.has(name)) into[name] = jsValue(name, k);
            const out = await s.run(feeds, undefined, into);
            for (const [name, v] of Object.entries(out)) {
              vals.set(name, v);
              if (copied.has(name)) (views.get(name) as Float32Array).set(v.data);
            }
          }
          for (const u of stages[L].updates) {
            const j = updates.indexOf(u);
            const { state, level, theta, fans } = perUpdate[j];
            const size = n * numel(shapeOf(u));
            const x = views.get(inputOf(u)) as Float32Array;
            const out = views.get(outputOf(u)) as Float32Array;
            const xStride = constants.has(inputOf(u)) ? 0 : size;
            for (let step = 0; step < k; step++) {
              const xk = x.subarray(step * xStride, step * xStride + size);
              const ok = out.subarray(step * size, (step + 1) * size);
              if (u.kind === 'neuron') {
                const c = kern.neuron(state, xk, ok, level as Float32Array, theta as Float32Array, fans[0] ?? null, n);
                if (u.spikeCounter) counts[counterIndex.get(u.spikeCounter) as number][step] = c.fired;
                u.sops.forEach((sop, i) => {
                  counts[counterIndex.get(sop.output) as number][step] = i === 0 ? c.sops : kern.events(ok, fans[i], n);
                });
              } else if (u.kind === 'accumulate') kern.accumulate(state, xk, ok);
              else kern.difference(state, xk, ok);
            }
            vals.set(outputOf(u), jsValue(outputOf(u), k));
          }
        }
        events.forEach((e, i) => {
          const x = views.get(e.input) as Float32Array;
          const size = n * e.fanout.length;
          const stride = constants.has(e.input) ? 0 : size;
          const sums = counts[counterIndex.get(e.output) as number];
          for (let step = 0; step < k; step++)
            sums[step] = kern.events(x.subarray(step * stride, step * stride + size), eventFans[i], n);
        });
        const r = vals.get(spec.readout) ?? tile(spec.readout, k);
        await onBlock(t0, k, { readouts: r.data.subarray(0, k * n * readoutSize), counts });
      }
    },
    async release() {
      await prefix?.release();
      for (const s of sessions) await s?.release();
    },
  };
}

/** Level and θ per channel when they are constant within each channel (channel-major), else as given. */
function perChannel(level: Float32Array, theta: Float32Array, channels: number): [Float32Array, Float32Array] {
  const per = level.length;
  if (channels <= 0 || per % channels !== 0 || channels === per) return [level, theta];
  const S = per / channels;
  const lv = new Float32Array(channels);
  const th = new Float32Array(channels);
  for (let c = 0; c < channels; c++) {
    lv[c] = level[c * S];
    th[c] = theta[c * S];
    for (let s = 1; s < S; s++) {
      if (!Object.is(level[c * S + s], lv[c]) || !Object.is(theta[c * S + s], th[c])) return [level, theta];
    }
  }
  return [lv, th];
}

/**
 * The layer-by-layer engine (runtime/fused.ts): K steps per stage call, the neurons in JS; null
 * when the step graph holds state ops it does not know (the caller uses the step engine).
 */
export async function fusedRunner(graph: Graph, ctx: EngineContext): Promise<BatchRunner | null> {
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
