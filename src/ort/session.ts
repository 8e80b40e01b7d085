/**
 * The ONNX Runtime adapter: the only place that creates sessions (threads, execution
 * providers), runs them, and probes shapes. Calibration and simulation both sit above it.
 */
import * as ort from 'onnxruntime-node';
import os from 'node:os';
import type { Graph } from '../graph/ir.js';
import { encodeModel } from '../onnx/codec.js';
import { SpikeportError, checkInteger } from '../errors.js';

export interface RuntimeOptions {
  /** Intra-op threads; default: the number of cores. */
  readonly threads?: number;
}

export interface SessionOptions extends RuntimeOptions {
  /**
   * Let the intra-op threads spin-wait for work between calls (ONNX Runtime's default, true).
   * Engines that keep several sessions alive and call them in turn set it false: every
   * session has its own threads, and idle ones spinning take the cores from the one running.
   */
  readonly spinning?: boolean;
  /** Write ONNX Runtime's profile (JSON, kernel times) to files starting with this path (bench/profile-step.ts). */
  readonly profile?: string;
}

export interface Array32 {
  readonly dims: readonly number[];
  readonly data: Float32Array;
}

export interface ArrayI64 {
  readonly dims: readonly number[];
  readonly data: BigInt64Array;
}

export type Feeds = Record<string, Array32 | ArrayI64>;

const RUN_OPTIONS: ort.InferenceSession.RunOptions = { logSeverityLevel: 4 };

export class Session {
  private constructor(private readonly inner: ort.InferenceSession, readonly outputNames: readonly string[], private readonly profiling = false) {}

  static async create(g: Graph, opts: SessionOptions = {}): Promise<Session> {
    checkThreads(opts.threads);
    const bytes = encodeModel(g);
    try {
      const s = await ort.InferenceSession.create(bytes, {
        intraOpNumThreads: opts.threads ?? defaultThreads(),
        interOpNumThreads: 1,
        graphOptimizationLevel: 'all',
        executionMode: 'sequential',
        logSeverityLevel: 4, // fatal only: its errors reach the user as our one-line message, not as its coloured log
        ...(opts.profile ? { enableProfiling: true, profileFilePrefix: opts.profile } : {}),
        ...(opts.spinning === false ? { extra: { session: { intra_op: { allow_spinning: '0' } } } } : {}),
      });
      return new Session(s, s.outputNames, opts.profile !== undefined);
    } catch (e) {
      throw new SpikeportError('runtime', `ONNX Runtime cannot load the model: ${firstLine((e as Error).message)}`);
    }
  }

  /**
   * Run and return the requested float outputs (all outputs when omitted). Outputs named in
   * `into` are written by ONNX Runtime straight into those buffers (no allocation per call).
   */
  async run(feeds: Feeds, outputs?: readonly string[], into?: Readonly<Record<string, Array32>>): Promise<Record<string, Array32>> {
    const f: Record<string, ort.Tensor> = {};
    for (const [k, v] of Object.entries(feeds)) {
      f[k] = v.data instanceof BigInt64Array
        ? new ort.Tensor('int64', v.data, v.dims as number[])
        : new ort.Tensor('float32', v.data, v.dims as number[]);
    }
    const names = (outputs ?? this.outputNames) as string[];
    let res: ort.InferenceSession.OnnxValueMapType;
    try {
      res = into
        ? await this.inner.run(f, Object.fromEntries(names.map((n) => [n, into[n] ? new ort.Tensor('float32', into[n].data, into[n].dims as number[]) : null])), RUN_OPTIONS)
        : await this.inner.run(f, names, RUN_OPTIONS);
    } catch (e) {
      throw new SpikeportError('runtime', `ONNX Runtime failed to run the model: ${firstLine((e as Error).message)}`);
    }
    const out: Record<string, Array32> = {};
    for (const [k, v] of Object.entries(res)) {
      if (into?.[k]) {
        out[k] = into[k];
        continue;
      }
      const t = v as ort.Tensor;
      const data = t.data instanceof Float32Array ? t.data : Float32Array.from(t.data as ArrayLike<number>);
      out[k] = { dims: [...t.dims], data };
    }
    return out;
  }

  async release(): Promise<void> {
    if (this.profiling) this.inner.endProfiling();
    await this.inner.release();
  }
}

export function defaultThreads(): number {
  return Math.max(1, os.availableParallelism?.() ?? os.cpus().length);
}

/** More intra-op threads than cores only slows ONNX Runtime down (measured: 1000 threads ran 400× slower). */
export function checkThreads(threads: number | undefined): void {
  if (threads !== undefined) checkInteger('threads', threads, 1, defaultThreads(), 'the cores this process may use');
}

function firstLine(s: string): string {
  return s.split('\n')[0].replace(/^\[ErrorCode:\w+\]\s*/, '');
}

/**
 * Shapes of the named float tensors, found by running the graph once on `input`
 * (ONNX Runtime is the shape inference that knows every op).
 */
export async function probeShapes(g: Graph, inputName: string, input: Array32, names: readonly string[], opts: RuntimeOptions = {}): Promise<Map<string, number[]>> {
  const wanted = [...new Set(names)];
  const declared = new Set(g.outputs.map((o) => o.name));
  const probe: Graph = {
    ...g,
    outputs: [...g.outputs, ...wanted.filter((n) => !declared.has(n)).map((name) => ({ name, dtype: 'float32' as const, shape: null }))],
  };
  const s = await Session.create(probe, opts);
  try {
    const res = await s.run({ [inputName]: input }, wanted);
    return new Map(wanted.map((n) => [n, [...res[n].dims]]));
  } finally {
    await s.release();
  }
}
