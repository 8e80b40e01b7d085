/**
 * What one onnxruntime-node call costs beyond ONNX Runtime's own run (issue 14): a graph with one
 * cheap op on 4 Mi floats, timed from JS, against ONNX Runtime's profile of the same calls
 * (`model_run`). Three cases: a big input and a scalar output; a scalar input and a big output;
 * the same big output written into a preallocated buffer.
 *
 *   node dist/bench/ort-calls.js [--floats 4194304] [--threads 2]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { GraphBuilder, floatInput } from '../src/onnx/builder.js';
import { encodeModel } from '../src/onnx/codec.js';
import { int64Tensor, type Graph } from '../src/graph/ir.js';
import { defaultThreads } from '../src/ort/session.js';
import { arg } from './args.js';

const num = (name: string, fallback: string): number => Number(arg(name, fallback));
const len = num('floats', String(4 << 20));
const threads = num('threads', String(defaultThreads()));
const calls = 10;

function graph(body: (b: GraphBuilder) => string, inputLen: number): Graph {
  const b = new GraphBuilder(13);
  const out = body(b);
  return {
    name: 'g',
    nodes: b.nodes,
    initializers: b.initializers,
    inputs: [floatInput('x', [1, inputLen])],
    outputs: [floatInput(out, null)],
    opset: 13,
    irVersion: 8,
    metadata: {},
  };
}

async function measure(name: string, g: Graph, inputLen: number, prealloc: boolean): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spikeport-calls-'));
  const s = await ort.InferenceSession.create(encodeModel(g), {
    intraOpNumThreads: threads,
    enableProfiling: true,
    profileFilePrefix: path.join(dir, 'p'),
    extra: { session: { intra_op: { allow_spinning: '0' } } },
  });
  const out = g.outputs[0].name;
  const x = new ort.Tensor('float32', new Float32Array(inputLen).fill(0.5), [1, inputLen]);
  const buffer = new Float32Array(len);
  const run = (): Promise<unknown> =>
    prealloc ? s.run({ x }, { [out]: new ort.Tensor('float32', buffer, [1, len]) }) : s.run({ x }, [out]);
  for (let i = 0; i < 3; i++) await run();
  const t0 = performance.now();
  for (let i = 0; i < calls; i++) await run();
  const wall = (performance.now() - t0) / calls;
  s.endProfiling();
  await s.release();
  const f = fs.readdirSync(dir).find((n) => n.endsWith('.json')) as string;
  const events = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as { cat: string; name: string; dur: number }[];
  fs.rmSync(dir, { recursive: true, force: true });
  const runs = events.filter((e) => e.cat === 'Session' && e.name === 'model_run').slice(-calls);
  const inside = runs.reduce((a, e) => a + e.dur, 0) / runs.length / 1000;
  process.stdout.write(
    `| ${name} | ${wall.toFixed(2)} | ${inside.toFixed(2)} | ${(((wall - inside) * 1e6) / len).toFixed(2)} |\n`,
  );
}

process.stdout.write(
  `${len} floats, ${threads} threads, ${calls} calls after 3\n\n| case | wall ms per call | ONNX Runtime model_run ms | outside, ns per float |\n|---|---|---|---|\n`,
);
await measure(
  'big input, scalar output (ReduceMax)',
  graph((b) => b.op('ReduceMax', ['x'], { keepdims: 0 }), len),
  len,
  false,
);
const expand = graph((b) => b.op('Expand', ['x', b.constant('shape', int64Tensor([2], [1, len]))]), 1);
await measure('scalar input, big output (Expand)', expand, 1, false);
await measure('scalar input, big output into a preallocated buffer', expand, 1, true);
