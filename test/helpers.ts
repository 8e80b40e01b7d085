/** Shared test helpers: small graphs built with the project's builder, seeded data, ORT runs. */
import type { Graph } from '../src/graph/ir.js';
import { floatTensor } from '../src/graph/ir.js';
import { GraphBuilder, floatInput } from '../src/onnx/builder.js';
import { memoryDataset, rng } from '../src/data/dataset.js';
import type { Dataset } from '../src/data/dataset.js';
import { Session, type Array32 } from '../src/ort/session.js';
import { prepareModel } from '../src/model/prepare.js';
import { calibrate } from '../src/calibrate/calibrate.js';
import { thetaFeeds } from '../src/calibrate/instrument.js';
import type { Method } from '../src/calibrate/methods.js';
import { instrument } from '../src/calibrate/instrument.js';
import { buildSnn } from '../src/snn/build.js';
import type { PoolMode } from '../src/snn/format.js';
import { simulateBatches } from '../src/runtime/batches.js';

export function randn(seed: number, n: number, scale = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = Math.max(r(), 1e-12);
    out[i] = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * r()) * scale;
  }
  return out;
}

export function uniform(seed: number, n: number, lo = 0, hi = 1): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => lo + (hi - lo) * r());
}

/** A graph with one float input "input" [N, ...shape]; `body` returns the output tensor name. */
export function buildGraph(
  inputShape: readonly number[],
  body: (b: GraphBuilder, x: string) => string,
  opset = 13,
): Graph {
  const b = new GraphBuilder(opset);
  const out = body(b, 'input');
  return {
    name: 'test',
    nodes: b.nodes,
    initializers: b.initializers,
    inputs: [floatInput('input', ['N', ...inputShape])],
    outputs: [floatInput(out, null)],
    opset,
    irVersion: 8,
    metadata: {},
  };
}

let seedCounter = 1000;

/** Conv with seeded random weights (He-like scale) and bias. */
export function conv(
  b: GraphBuilder,
  x: string,
  cin: number,
  cout: number,
  k: number,
  opts: { pad?: number; stride?: number; bias?: boolean; seed?: number; group?: number } = {},
): string {
  const g = opts.group ?? 1;
  const w = b.constant(
    'W',
    floatTensor(
      [cout, cin / g, k, k],
      randn(opts.seed ?? seedCounter++, cout * (cin / g) * k * k, Math.sqrt(2 / ((cin / g) * k * k))),
    ),
  );
  const inputs = [x, w];
  if (opts.bias !== false)
    inputs.push(b.constant('B', floatTensor([cout], randn(opts.seed ?? seedCounter++, cout, 0.1))));
  const p = opts.pad ?? Math.floor(k / 2);
  return b.op('Conv', inputs, {
    kernel_shape: [k, k],
    pads: [p, p, p, p],
    strides: [opts.stride ?? 1, opts.stride ?? 1],
    group: g,
  });
}

export function gemm(b: GraphBuilder, x: string, fin: number, fout: number, seed?: number): string {
  const w = b.constant('W', floatTensor([fout, fin], randn(seed ?? seedCounter++, fout * fin, Math.sqrt(2 / fin))));
  const c = b.constant('C', floatTensor([fout], randn(seed ?? seedCounter++, fout, 0.1)));
  return b.op('Gemm', [x, w, c], { transB: 1 });
}

export function maxpool(b: GraphBuilder, x: string, k = 2): string {
  return b.op('MaxPool', [x], { kernel_shape: [k, k], strides: [k, k] });
}

export function memDataset(x: Float32Array, sampleShape: readonly number[], labels: Int32Array | null = null): Dataset {
  const per = sampleShape.reduce((a, c) => a * c, 1);
  return memoryDataset({ name: 'memory', size: x.length / per, sampleShape, x, scale: 1, labels });
}

export async function runGraph(
  g: Graph,
  feeds: Record<string, Array32>,
  outputs?: string[],
): Promise<Record<string, Array32>> {
  const s = await Session.create(g, { threads: 1 });
  try {
    return await s.run(feeds, outputs);
  } finally {
    await s.release();
  }
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/**
 * Relative error (mean |avg readout over steps 1..T − clipped ANN readout| / mean |clipped ANN|)
 * of the SNN built with the given calibration, for each T, from one simulation of max(Ts).
 */
export async function snnVsClipped(
  graph: Graph,
  sampleShape: readonly number[],
  x: Float32Array,
  Ts: readonly number[],
  opts: { method?: Method; maxpool?: PoolMode } = {},
): Promise<number[]> {
  const per = sampleShape.reduce((a, c) => a * c, 1);
  const n = x.length / per;
  const m = await prepareModel({ path: 'zoo.onnx', sha256: '', graph }, { threads: 1 });
  const data = memDataset(x, sampleShape);
  const cal = await calibrate(m, data, { method: opts.method ?? 'maxnorm', iterations: 1, batchSize: n, threads: 1 });
  const inst = instrument(m, {
    mode: 'clip',
    granularity: cal.thresholds.granularity,
  });
  const ref = (
    await runGraph(
      inst.graph,
      { [m.inputName]: { dims: [n, ...sampleShape], data: x }, ...thetaFeeds(inst, cal.thresholds) },
      [inst.readout],
    )
  )[inst.readout].data;
  const snn = buildSnn(m, cal.thresholds, opts.maxpool ?? 'accumulated');
  let readouts: Float32Array = new Float32Array(0);
  await simulateBatches(
    snn.graph,
    snn.spec,
    data,
    { steps: Math.max(...Ts), batchSize: n, normalize: null, threads: 1 },
    (b) => {
      readouts = b.readouts as Float32Array;
    },
  );
  const size = ref.length;
  const refScale = ref.reduce((a, v) => a + Math.abs(v), 0) / size;
  return Ts.map((T) => {
    let err = 0;
    for (let j = 0; j < size; j++) {
      let sum = 0;
      for (let t = 0; t < T; t++) sum += readouts[t * size + j];
      err += Math.abs(sum / T - ref[j]);
    }
    return err / size / refScale;
  });
}

/** A .npy file's bytes (format 1.0). */
export function npy(shape: number[], descr: string, data: ArrayBufferView): Uint8Array {
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  while ((10 + header.length + 1) % 64 !== 0) header += ' ';
  header += '\n';
  const head = new Uint8Array(10 + header.length);
  head.set([0x93, ...Buffer.from('NUMPY'), 1, 0]);
  new DataView(head.buffer).setUint16(8, header.length, true);
  head.set(Buffer.from(header, 'latin1'), 10);
  const body = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const out = new Uint8Array(head.length + body.length);
  out.set(head);
  out.set(body, head.length);
  return out;
}
