/**
 * The ONNX Runtime adapter: the only place that creates sessions (threads, execution
 * providers), runs them, and probes shapes. Calibration and simulation both sit above it.
 */
import * as ort from 'onnxruntime-node';
import os from 'node:os';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import type { Graph } from '../graph/ir.js';
import { encodeModel } from '../onnx/codec.js';
import { GraphBuilder } from '../onnx/builder.js';
import { SpikeportError, checkInteger, optionError } from '../errors.js';

// onnxruntime-node 1.30 on Linux and macOS starts Microsoft's telemetry (1DS, with its event
// uploader) at the first session of a process, and leaves a .ses file and an empty
// mat-debug-<pid>.log in the temporary folder, one per process, for good. ONNX Runtime reads this
// variable when that first session is made; a value the user set is kept.
process.env.ORT_DISABLE_TELEMETRY ??= '1';

export interface RuntimeOptions {
  /** Intra-op threads; default: the number of cores. */
  readonly threads?: number;
  /**
   * Where sessions run: `cpu` (default), or `cuda` / `cuda:N` (ONNX Runtime's CUDA execution
   * provider on GPU N, CPU for the ops it lacks): needs onnxruntime-node installed with its CUDA
   * libraries (`ONNXRUNTIME_NODE_INSTALL=cuda12`), CUDA 12 and cuDNN 9.
   */
  readonly device?: string;
}

export type Device = { readonly kind: 'cpu' } | { readonly kind: 'cuda'; readonly id: number };

/** A device name checked: cpu, cuda, cuda:N. */
export function parseDevice(device: string | undefined): Device {
  if (device === undefined || device === 'cpu') return { kind: 'cpu' };
  const m = typeof device === 'string' ? /^cuda(?::(\d{1,3}))?$/.exec(device) : null;
  if (!m) throw optionError('device', `"${String(device)}" is not a device (cpu, cuda or cuda:N)`);
  return { kind: 'cuda', id: m[1] === undefined ? 0 : Number(m[1]) };
}

/** The files ONNX Runtime's CUDA provider loads beside onnxruntime-node's binding, per platform. */
const CUDA_LIBRARIES: Readonly<Record<string, readonly string[]>> = {
  'linux/x64': ['libonnxruntime_providers_shared.so', 'libonnxruntime_providers_cuda.so'],
  'win32/x64': ['onnxruntime_providers_shared.dll', 'onnxruntime_providers_cuda.dll'],
};

/**
 * Check that this onnxruntime-node can use CUDA before asking it to (when it cannot, it prints
 * its own log lines and fails with "Failed to load shared library"): a one-line error naming
 * what is missing and how to install it.
 */
export function checkCudaInstalled(bindingDir = onnxruntimeBindingDir(), device = 'cuda'): void {
  const platform = `${process.platform}/${process.arch}`;
  const libs = CUDA_LIBRARIES[platform];
  const install =
    "reinstall it with them: ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node (downloads ONNX Runtime's CUDA 12 build; the machine needs CUDA 12 and cuDNN 9)";
  if (!libs)
    throw optionError(
      'device',
      `${device}: onnxruntime-node has no CUDA build for ${platform} (Linux x64 and Windows x64 have one)`,
    );
  const missing = libs.filter((f) => !fs.existsSync(path.join(bindingDir, f)));
  if (missing.length)
    throw optionError(
      'device',
      `${device}: onnxruntime-node was installed without its CUDA libraries (${missing.join(', ')} not in ${bindingDir}); ${install}`,
    );
}

/** Where onnxruntime-node's native binding and its provider libraries are. */
function onnxruntimeBindingDir(): string {
  const entry = createRequire(import.meta.url).resolve('onnxruntime-node');
  let dir = path.dirname(entry);
  while (path.basename(dir) !== 'onnxruntime-node' && path.dirname(dir) !== dir) dir = path.dirname(dir);
  return path.join(dir, 'bin', 'napi-v6', process.platform, process.arch);
}

function executionProviders(d: Device): ort.InferenceSession.SessionOptions['executionProviders'] {
  return d.kind === 'cuda' ? [{ name: 'cuda', deviceId: d.id }, 'cpu'] : ['cpu'];
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
  /**
   * ONNX Runtime's memory pattern (default true, its default): every run takes all its
   * intermediate tensors from one block, allocated at the start of the run and released at its
   * end. Faster for an ANN pass or a calibration update; the step engine's graph of 8 steps turns
   * it off, because there the block is large (about 1 GB for resnet18 at 224, batch 16) and each
   * call touched it as new memory (docs/performance.md).
   */
  readonly memoryPattern?: boolean;
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
  private constructor(
    private readonly inner: ort.InferenceSession,
    readonly outputNames: readonly string[],
    private readonly profiling = false,
  ) {}

  static async create(g: Graph, opts: SessionOptions = {}): Promise<Session> {
    checkThreads(opts.threads);
    const device = parseDevice(opts.device);
    if (device.kind === 'cuda') checkCudaInstalled(undefined, opts.device);
    const bytes = encodeModel(g);
    try {
      const s = await ort.InferenceSession.create(bytes, {
        executionProviders: executionProviders(device),
        intraOpNumThreads: opts.threads ?? defaultThreads(),
        interOpNumThreads: 1,
        graphOptimizationLevel: 'all',
        executionMode: 'sequential',
        enableMemPattern: opts.memoryPattern ?? true,
        logSeverityLevel: 4, // fatal only: its errors reach the user as our one-line message, not as its coloured log
        ...(opts.profile ? { enableProfiling: true, profileFilePrefix: opts.profile } : {}),
        ...(opts.spinning === false ? { extra: { session: { intra_op: { allow_spinning: '0' } } } } : {}),
      });
      return new Session(s, s.outputNames, opts.profile !== undefined);
    } catch (e) {
      const where = device.kind === 'cuda' ? ` on cuda:${device.id}` : '';
      throw new SpikeportError(
        'runtime',
        `ONNX Runtime cannot load the model${where}: ${ortMessage((e as Error).message)}`,
      );
    }
  }

  /**
   * Run and return the requested float outputs (all outputs when omitted). Outputs named in
   * `into` are written by ONNX Runtime straight into those buffers (no allocation per call).
   */
  async run(
    feeds: Feeds,
    outputs?: readonly string[],
    into?: Readonly<Record<string, Array32>>,
  ): Promise<Record<string, Array32>> {
    const f: Record<string, ort.Tensor> = {};
    for (const [k, v] of Object.entries(feeds)) {
      f[k] =
        v.data instanceof BigInt64Array
          ? new ort.Tensor('int64', v.data, v.dims as number[])
          : new ort.Tensor('float32', v.data, v.dims as number[]);
    }
    const names = (outputs ?? this.outputNames) as string[];
    let res: ort.InferenceSession.OnnxValueMapType;
    try {
      res = into
        ? await this.inner.run(
            f,
            Object.fromEntries(
              names.map((n) => [n, into[n] ? new ort.Tensor('float32', into[n].data, into[n].dims as number[]) : null]),
            ),
            RUN_OPTIONS,
          )
        : await this.inner.run(f, names, RUN_OPTIONS);
    } catch (e) {
      throw new SpikeportError('runtime', `ONNX Runtime failed to run the model: ${ortMessage((e as Error).message)}`);
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

/** The runtime options checked before any work: threads and device (CUDA installed when asked for). */
export function checkRuntime(opts: RuntimeOptions): void {
  checkThreads(opts.threads);
  if (parseDevice(opts.device).kind === 'cuda') checkCudaInstalled(undefined, opts.device);
}

/**
 * ONNX Runtime's message in one line, without what only its developers read: the source file,
 * line and C++ signature before "[ONNXRuntimeError] : 1 : FAIL : ", and the "file.cc:123
 * Function" markers inside.
 */
export function ortMessage(s: string): string {
  let m = s.split('\n')[0].replace(/^\[ErrorCode:\w+\]\s*/, '');
  const tag = /\[ONNXRuntimeError\] : \d+ : \w+ : /.exec(m);
  if (tag) m = m.slice(tag.index + tag[0].length);
  const marker = /\/?[\w./-]+\.(?:cc|cpp|h):\d+ /g;
  let out = '';
  let last = 0;
  for (let hit = marker.exec(m); hit; hit = marker.exec(m)) {
    out += m.slice(last, hit.index) + ' ';
    let i = hit.index + hit[0].length;
    const head = /^[\w:~<>*&, ]*?(?=\()/.exec(m.slice(i));
    if (head && head[0].includes('::')) {
      // A C++ signature: its name, its parameters in balanced parentheses, then " const".
      let depth = 0;
      for (i += head[0].length; i < m.length; i++) {
        if (m[i] === '(') depth++;
        else if (m[i] === ')' && --depth === 0) {
          i++;
          break;
        }
      }
      if (m.startsWith(' const', i)) i += ' const'.length;
    } else {
      // A function's name in CamelCase (ValidateExternalDataPathFromDir).
      const name = /^[A-Z][a-z]+(?:[A-Z][a-z0-9]*)+ /.exec(m.slice(i));
      if (name) i += name[0].length;
    }
    last = i;
    marker.lastIndex = i;
  }
  return (out + m.slice(last)).replace(/\s+/g, ' ').trim();
}

/**
 * Shapes of the named float tensors, found by running the graph once on `input`
 * (ONNX Runtime is the shape inference that knows every op).
 */
export async function probeShapes(
  g: Graph,
  inputName: string,
  input: Array32,
  names: readonly string[],
  opts: RuntimeOptions = {},
  /** Dims from which float32 may round them (2^24); from there the tensors are fetched whole. */
  exactBelow = 2 ** 24,
): Promise<Map<string, number[]>> {
  const wanted = [...new Set(names)];
  // Each tensor's shape as a few floats (Shape, then Cast): the run hands back a handful of
  // numbers instead of every activation. Fetching the tensors themselves cost 0.3 s of CPU at
  // 224 × 224 (87 tensors of 2 samples copied out) against 0.03 s for the ANN's own outputs.
  const b = new GraphBuilder(g.opset, g);
  const shapeOf = wanted.map((n) => b.op('Cast', [b.op('Shape', [n])], { to: 1 }, 'probe_shape'));
  const probe: Graph = {
    ...g,
    nodes: [...g.nodes, ...b.nodes],
    outputs: [...g.outputs, ...shapeOf.map((name) => ({ name, dtype: 'float32' as const, shape: null }))],
  };
  const s = await Session.create(probe, opts);
  try {
    const res = await s.run({ [inputName]: input }, shapeOf);
    const dims = shapeOf.map((n) => [...res[n].data]);
    // Dims from 2^24 on may not survive float32: then the tensors themselves tell.
    if (dims.some((d) => d.some((v) => !Number.isInteger(v) || v >= exactBelow)))
      return await fetchShapes(g, inputName, input, wanted, opts);
    return new Map(wanted.map((n, i) => [n, dims[i]]));
  } finally {
    await s.release();
  }
}

/** The shapes of these tensors, fetched whole. */
async function fetchShapes(
  g: Graph,
  inputName: string,
  input: Array32,
  wanted: readonly string[],
  opts: RuntimeOptions,
): Promise<Map<string, number[]>> {
  const declared = new Set(g.outputs.map((o) => o.name));
  const probe: Graph = {
    ...g,
    outputs: [
      ...g.outputs,
      ...wanted.filter((n) => !declared.has(n)).map((name) => ({ name, dtype: 'float32' as const, shape: null })),
    ],
  };
  const s = await Session.create(probe, opts);
  try {
    const res = await s.run({ [inputName]: input }, wanted);
    return new Map(wanted.map((n) => [n, [...res[n].dims]]));
  } finally {
    await s.release();
  }
}
