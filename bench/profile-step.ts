/**
 * Where one simulation step's time goes (docs/benchmarks.md, issue 14): ONNX Runtime's own profile
 * (`enableProfiling`) of the step graph as `--engine steps` runs it (input-only prefix split off,
 * `--unroll` steps per call), summed per op type, next to one ANN pass on the same batch.
 *
 *   node dist/bench/profile-step.js fashion-vgg [--batch 100] [--calls 4] [--unroll 8]
 *   node dist/bench/profile-step.js out/torchvision/resnet18-224.onnx --batch 16 --calls 2
 *   node dist/bench/profile-step.js fashion-vgg --engine fused   # the fused engine: stages + WebAssembly
 *   node dist/bench/profile-step.js fashion-vgg --calibration     # one CLTB update (the in-graph θ update) instead of a step
 *   node dist/bench/profile-step.js fashion-vgg --no-exact        # the step graph's counters as saved (not rewritten to exact counts)
 *   node dist/bench/profile-step.js out/torchvision/resnet18-224.onnx --batch 16 --memory-pattern on --nodes Sub
 *       # the step graph with ONNX Runtime's memory pattern (the engine turns it off for K > 1 steps
 *       # per call); --nodes OP lists that op's slowest nodes
 *
 * With `--engine fused`: the kernel times of every stage session, summed per op type, and the
 * time outside ONNX Runtime (the WebAssembly neuron passes, counters, call overhead) as
 * "(outside ONNX Runtime)"; the first `--calls` steps are warm-up and not counted.
 * A bundled model is converted with MaxNorm on one training batch, an ONNX path with MaxNorm on
 * random inputs (the thresholds change spike counts, not the dense kernels' work).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { loadModel } from '../src/model/load.js';
import { prepareModel } from '../src/model/prepare.js';
import { instrument, thetaFeeds } from '../src/calibrate/instrument.js';
import { calibrate } from '../src/calibrate/calibrate.js';
import { buildSnn } from '../src/snn/build.js';
import { splitConstantPrefix } from '../src/snn/split.js';
import { unrollSteps } from '../src/runtime/unroll.js';
import { exactCounters } from '../src/runtime/exact-counts.js';
import { encodeModel } from '../src/onnx/codec.js';
import { defaultThreads } from '../src/ort/session.js';
import { memoryDataset, readBatch, type Dataset } from '../src/data/dataset.js';
import { limitDataset, openDataset } from '../src/data/sources.js';
import type { Graph } from '../src/graph/ir.js';
import { fusedPlan, fusedSessions } from '../src/runtime/fused.js';
import { ROOT, argv, arg } from './args.js';

const model = argv[0] ?? 'fashion-vgg';
const batch = Number(arg('batch', '100'));
const calls = Number(arg('calls', '4'));
const K = Number(arg('unroll', '8'));
const threads = Number(arg('threads', String(defaultThreads())));
const engine = arg('engine', 'steps');
const calibration = argv.includes('--calibration');
// As the step engine runs it: no memory pattern for several steps per call (runtime/steps.ts).
const stepPattern = arg('memory-pattern', K > 1 ? 'off' : 'on') === 'on';
const nodesOf = arg('nodes', '');

const bundled = !model.endsWith('.onnx');
const file = bundled ? path.join(ROOT, 'models', `${model}.onnx`) : model;
const m = await prepareModel(loadModel(file), { threads });
let data: Dataset;
if (bundled) {
  const manifest = JSON.parse(fs.readFileSync(file.replace(/\.onnx$/, '.json'), 'utf8')) as { dataset: string };
  data = limitDataset(openDataset(`${manifest.dataset}:train`), batch);
} else {
  const per = m.inputShape.reduce((a, b) => a * b, 1);
  const x = Float32Array.from({ length: batch * per }, (_, i) => ((i * 2654435761) % 1000) / 1000);
  data = memoryDataset({ name: 'random', size: batch, sampleShape: m.inputShape, x, scale: 1, labels: null });
}
const cal = await calibrate(m, data, {
  method: calibration ? 'cmaxnorm' : 'maxnorm',
  iterations: 1,
  batchSize: batch,
  threads,
});
const snn = buildSnn(m, cal.thresholds);
const b = await readBatch(
  data,
  Array.from({ length: data.size }, (_, i) => i),
  bundled ? m.normalize : null,
);
const input = new ort.Tensor('float32', b.x, [b.n, ...m.inputShape]);

interface Profiled {
  perCall: Map<string, number>;
  wall: number;
  kernel: number;
}

/** Run `g` `calls` times after one warm-up call with ONNX Runtime profiling on; kernel µs per call by op type. */
async function profile(
  g: Graph,
  feeds: () => Record<string, ort.Tensor>,
  outputs: string[],
  memoryPattern = true,
): Promise<Profiled> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spikeport-prof-'));
  const s = await ort.InferenceSession.create(encodeModel(g), {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    enableMemPattern: memoryPattern,
    enableProfiling: true,
    profileFilePrefix: path.join(dir, 'p'),
    logSeverityLevel: 4,
  });
  await s.run(feeds(), outputs);
  const t0 = performance.now();
  for (let i = 0; i < calls; i++) await s.run(feeds(), outputs);
  const wall = (performance.now() - t0) / calls;
  s.endProfiling();
  await s.release();
  const f = fs.readdirSync(dir).find((x) => x.endsWith('.json')) as string;
  const events = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as {
    cat: string;
    name: string;
    ts: number;
    dur: number;
    args?: { op_name?: string };
  }[];
  // Skip the warm-up call: only kernels after the end of the first run count.
  const first = events.find((e) => e.cat === 'Session' && e.name === 'model_run');
  const after = first ? first.ts + first.dur : 0;
  fs.rmSync(dir, { recursive: true, force: true });
  const perCall = new Map<string, number>();
  const perNode = new Map<string, number>();
  let kernel = 0;
  for (const e of events) {
    if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time') || e.ts < after) continue;
    const op = e.args?.op_name ?? '?';
    perCall.set(op, (perCall.get(op) ?? 0) + e.dur / calls);
    const node = e.name.replace(/_kernel_time$/, '');
    if (op === nodesOf) perNode.set(node, (perNode.get(node) ?? 0) + e.dur / calls);
    kernel += e.dur / calls;
  }
  for (const [name, us] of [...perNode].sort((x, y) => y[1] - x[1]).slice(0, 10))
    process.stdout.write(`  ${name}: ${(us / 1000).toFixed(2)} ms per call\n`);
  return { perCall, wall, kernel };
}

/** The fused engine: `calls` warm-up steps, then `calls` profiled steps; kernel µs per step by op type. */
async function profileFused(): Promise<Profiled> {
  const plan = fusedPlan(snn.graph, snn.spec);
  if (!plan) throw new Error('the fused engine does not know this step graph');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spikeport-prof-'));
  const eng = await fusedSessions(plan, snn.spec, { threads, block: 1, profile: path.join(dir, 'p') });
  let t0 = 0;
  // onBlock(t) is called after step t: the clock starts when the warm-up steps are done.
  await eng.run(b, 2 * calls, (t) => {
    if (t === calls - 1) t0 = performance.now();
  });
  const wall = (performance.now() - t0) / calls;
  await eng.release();
  const perCall = new Map<string, number>();
  let kernel = 0;
  let runs = 0;
  for (const f of fs.readdirSync(dir).filter((x) => x.endsWith('.json'))) {
    const events = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as {
      cat: string;
      name: string;
      ts: number;
      dur: number;
      args?: { op_name?: string };
    }[];
    const model = events.filter((e) => e.cat === 'Session' && e.name === 'model_run');
    // The stage's runs in the profiled steps: the last `calls` of its 2·calls runs.
    const from = model[model.length - calls]?.ts ?? 0;
    for (const r of model.slice(-calls)) runs += r.dur / calls;
    for (const e of events) {
      if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time') || e.ts < from) continue;
      const op = e.args?.op_name ?? '?';
      perCall.set(op, (perCall.get(op) ?? 0) + e.dur / calls);
      kernel += e.dur / calls;
    }
  }
  fs.rmSync(dir, { recursive: true, force: true });
  // Outside ONNX Runtime's runs: the WebAssembly state updates, counters and call overhead.
  perCall.set('(outside ONNX Runtime)', Math.max(0, wall * 1000 - runs));
  return { perCall, wall, kernel: kernel + Math.max(0, wall * 1000 - runs) };
}

const split = splitConstantPrefix(snn.graph, snn.spec);
// What the step engine runs: counters rewritten to exact whole numbers (--no-exact: as saved).
const one = argv.includes('--no-exact') ? split.step : exactCounters(split.step, snn.spec);
const step = K > 1 ? unrollSteps(one, snn.spec, K) : one;
const constants: Record<string, ort.Tensor> = {};
if (split.prefix) {
  const ps = await ort.InferenceSession.create(encodeModel(split.prefix), {
    intraOpNumThreads: threads,
    graphOptimizationLevel: 'all',
    logSeverityLevel: 4,
  });
  const r = await ps.run({ [snn.spec.input]: input });
  for (const [k, v] of Object.entries(r)) constants[k] = v as ort.Tensor;
  await ps.release();
}
const stepInputs = new Set(step.inputs.map((i) => i.name));
const states = Object.fromEntries(
  snn.spec.states.map((s) => [
    s.input,
    new ort.Tensor('float32', new Float32Array(b.n * s.shape.reduce((a, c) => a * c, 1)), [b.n, ...s.shape]),
  ]),
);
const stepFeeds = (): Record<string, ort.Tensor> => ({
  ...(stepInputs.has(snn.spec.input) ? { [snn.spec.input]: input } : {}),
  ...constants,
  ...states,
});
/** One CLTB calibration update (calibrate/instrument.ts, mode ltb): the graph `calibrate` runs per batch. */
async function profileCalibration(): Promise<Profiled> {
  const ltb = instrument(m, { mode: 'ltb', granularity: 'channel', stepSize: 1 });
  const theta = Object.fromEntries(
    Object.entries(thetaFeeds(ltb, cal.thresholds)).map(([k, v]) => [
      k,
      new ort.Tensor('float32', v.data, v.dims as number[]),
    ]),
  );
  return profile(ltb.graph, () => ({ [m.inputName]: input, ...theta }), ltb.thetaOutputs as string[]);
}

const Kd = engine === 'fused' || calibration ? 1 : K;
const sim = calibration
  ? await profileCalibration()
  : engine === 'fused'
    ? await profileFused()
    : await profile(
        step,
        stepFeeds,
        step.outputs.map((o) => o.name),
        stepPattern,
      );
const inst = instrument(m, { mode: 'ann', granularity: 'channel' });
const ann = await profile(inst.graph, () => ({ [m.inputName]: input }), [inst.readout]);

const us = (v: number): string => (v / 1000).toFixed(2);
process.stdout.write(
  calibration
    ? `${path.basename(file)}: one CLTB calibration update, batch ${b.n}, ${threads} threads, ${calls} calls (+1 warm-up)\n`
    : engine === 'fused'
      ? `${path.basename(file)}: engine fused, batch ${b.n}, ${threads} threads, ${calls} steps profiled after ${calls} warm-up steps\n`
      : `${path.basename(file)}: engine steps, batch ${b.n}, ${threads} threads, ${K} step(s) per call, ${calls} calls (+1 warm-up)\n`,
);
process.stdout.write(
  `per ${calibration ? 'update' : 'step'}: wall ${(sim.wall / Kd).toFixed(2)} ms, kernels ${us(sim.kernel / Kd)} ms; ANN pass: wall ${ann.wall.toFixed(2)} ms, kernels ${us(ann.kernel)} ms; ${calibration ? 'update' : 'step'} ÷ ANN (wall) ${(sim.wall / Kd / ann.wall).toFixed(2)}\n\n`,
);
process.stdout.write(
  `| op | ${calibration ? 'CLTB update' : 'SNN step'} ms | share | ANN pass ms |\n|---|---|---|---|\n`,
);
const ops = [...new Set([...sim.perCall.keys(), ...ann.perCall.keys()])].sort(
  (a, c) => (sim.perCall.get(c) ?? 0) - (sim.perCall.get(a) ?? 0),
);
for (const op of ops) {
  const v = (sim.perCall.get(op) ?? 0) / Kd;
  process.stdout.write(
    `| ${op} | ${us(v)} | ${((100 * v) / (sim.kernel / Kd)).toFixed(1)} % | ${us(ann.perCall.get(op) ?? 0)} |\n`,
  );
}
