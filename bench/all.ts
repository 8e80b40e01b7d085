/**
 * All benchmarks in one run, as ratios (issue "Fast"; docs/benchmarks.md):
 *
 *   node dist/bench/all.js [--quick] [--models a,b] [--threads K] [--no-torch] [--json FILE]
 *   node dist/bench/all.js --imagenet [--quick]   # torchvision nets at 224×224, random weights:
 *       /usr/bin/python3 tools/export_torchvision.py out/torchvision resnet18-224 resnet34-224 mobilenet_v2-224
 *
 * Per bundled model, on the same samples and thread count:
 *   - CLTB calibration (N samples, in order) ÷ ANN inference on those N samples;
 *   - SNN time per image-step ÷ ANN time per image with each engine in the same run: `steps`,
 *     `fused` and `auto` (the default: both timed on the first batches, the faster runs the
 *     rest; on two batches it is one of each), with how many batches auto ran with `fused`;
 *   - simulation throughput in dense-equivalent GFLOP/s (2 × MACs of the layers run every step)
 *     ÷ the machine's peak, measured here by a large MatMul through ONNX Runtime;
 *   - the same calibration and simulation written plainly in PyTorch (tools/torch_compare.py):
 *     time ratios, threshold agreement, accuracy agreement with the same thresholds;
 *   - peak memory (max RSS of a child process) simulating T = 64 and T = 1024;
 *   - (full mode) the ONNX Loop engine against the per-step engine.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { loadModel } from '../src/model/load.js';
import { prepareModel, type PreparedModel } from '../src/model/prepare.js';
import { instrument } from '../src/calibrate/instrument.js';
import { DEFAULT_UNROLL } from '../src/runtime/steps.js';
import { simulateBatches } from '../src/runtime/batches.js';
import { Session, defaultThreads } from '../src/ort/session.js';
import { openDataset, limitDataset } from '../src/data/sources.js';
import { readBatch, sequentialBatches } from '../src/data/dataset.js';
import { encodeModel } from '../src/onnx/codec.js';
import { GraphBuilder, floatInput } from '../src/onnx/builder.js';
import { floatTensor } from '../src/graph/ir.js';
import { delayAt, simulateWindows } from '../src/evaluate/windows.js';
import { convert } from '../src/api/convert.js';
import type { Snn } from '../src/snn/network.js';
import { memoryDataset, type Dataset } from '../src/data/dataset.js';
import { ROOT, argv, arg } from './args.js';

const flag = (name: string): boolean => argv.includes(`--${name}`);
const quick = flag('quick');
const threads = Number(arg('threads', String(defaultThreads())));
const models = arg(
  'models',
  quick ? 'mnist-cnn,fashion-vgg' : 'mnist-cnn,fashion-vgg,fashion-resnet,fashion-mobilenet',
).split(',');
const calibSamples = Number(arg('calib-samples', quick ? '2000' : '10000'));
const testSamples = Number(arg('test-samples', quick ? '200' : '1000'));
const batch = Number(arg('batch', '100'));
const steps = Number(arg('steps', '32'));
const torchPython = '/usr/bin/python3';
// The PyTorch comparison needs Debian's python3-torch and python3-onnx; without them it is skipped.
const withTorch =
  !flag('no-torch') && spawnSync(torchPython, ['-c', 'import torch, onnx'], { encoding: 'utf8' }).status === 0;

const log = (s: string): void => {
  process.stderr.write(`${s}\n`);
};

/** FP32 peak through ONNX Runtime: a large square MatMul, best of a few runs. */
async function measurePeak(): Promise<number> {
  const n = 1536;
  const b = new GraphBuilder(13);
  const w = b.constant(
    'W',
    floatTensor(
      [n, n],
      Float32Array.from({ length: n * n }, (_, i) => ((i * 7919) % 1000) / 1000 - 0.5),
    ),
  );
  const y = b.op('MatMul', ['x', w]);
  const g = {
    name: 'peak',
    nodes: b.nodes,
    initializers: b.initializers,
    inputs: [floatInput('x', [n, n])],
    outputs: [floatInput(y, null)],
    opset: 13,
    irVersion: 8,
    metadata: {},
  };
  const s = await Session.create(g, { threads });
  const x = { dims: [n, n], data: new Float32Array(n * n).fill(0.5) };
  await s.run({ x });
  let best = Infinity;
  for (let r = 0; r < 5; r++) {
    const t0 = performance.now();
    await s.run({ x });
    best = Math.min(best, (performance.now() - t0) / 1000);
  }
  await s.release();
  return (2 * n ** 3) / best / 1e9;
}

interface Row {
  model: string;
  [k: string]: string | number | null;
}

async function benchModel(name: string, peak: number): Promise<Row> {
  const file = path.join(ROOT, 'models', `${name}.onnx`);
  const manifest = JSON.parse(fs.readFileSync(file.replace(/\.onnx$/, '.json'), 'utf8')) as { dataset: string };
  const loaded = loadModel(file);
  const m = await prepareModel(loaded, { threads });
  const train = limitDataset(openDataset(`${manifest.dataset}:train`), calibSamples);
  const test = limitDataset(openDataset(`${manifest.dataset}:test`), testSamples);
  const iterations = Math.ceil(train.size / batch);

  // ANN inference over the calibration samples (session creation included, as in calibration).
  const inst = instrument(m, { mode: 'ann', granularity: 'channel' });
  const annPass = async (): Promise<number> => {
    const t0 = performance.now();
    const s = await Session.create(inst.graph, { threads });
    for (const idx of sequentialBatches(train.size, batch)) {
      const b = await readBatch(train, idx, m.normalize);
      await s.run({ [m.inputName]: { dims: [b.n, ...m.inputShape], data: b.x } }, [inst.readout]);
    }
    await s.release();
    return (performance.now() - t0) / 1000;
  };
  await annPass();
  const annSeconds = await annPass();
  log(`${name}: ANN ${annSeconds.toFixed(2)} s on ${train.size}`);

  // The library's conversion; its calibration time (thresholds and d̂) is measured inside calibrate.
  const snn = await convert(loaded, train, { method: 'cltb', iterations, batchSize: batch, threads, shuffle: false });
  const calSeconds = snn.timing?.calibrate ?? Number.NaN;
  log(`${name}: CLTB ${calSeconds.toFixed(2)} s`);

  // Before (steps, the default until issue 14) and after (fused, the default since).
  const before = await simulateBatches(
    snn.graph,
    snn.spec,
    test,
    { steps, batchSize: batch, normalize: m.normalize, threads, engine: 'steps', checkpoints: [steps] },
    () => {},
  );
  const sim = await simulateBatches(
    snn.graph,
    snn.spec,
    test,
    { steps, batchSize: batch, normalize: m.normalize, threads, engine: 'fused', checkpoints: [steps] },
    () => {},
  );
  // auto (the default since): both timed on the first batches, the faster runs the rest.
  const auto = await simulateBatches(
    snn.graph,
    snn.spec,
    test,
    { steps, batchSize: batch, normalize: m.normalize, threads, engine: 'auto', checkpoints: [steps] },
    () => {},
  );
  log(
    `${name}: SNN ${before.seconds.toFixed(2)} s (steps), ${sim.seconds.toFixed(2)} s (fused), ${auto.seconds.toFixed(2)} s (auto: ${JSON.stringify(auto.engines)} batches) for ${test.size} × ${steps}`,
  );
  const annPerImage = annSeconds / train.size;
  const perImageStep = sim.seconds / (test.size * steps);
  const layers = snn.spec.layers ?? [];
  const perStepMacs = layers
    .filter((l) => l.where === 'spiking' || l.where === 'dense')
    .reduce((a, l) => a + l.macs, 0);
  const gflops = (2 * perStepMacs) / perImageStep / 1e9;
  const annGflops = (2 * layers.reduce((a, l) => a + l.macs, 0)) / annPerImage / 1e9;

  const row: Row = {
    model: name,
    'calib ÷ ANN': calSeconds / annSeconds,
    'SNN image-step ÷ ANN image, steps': before.seconds / (test.size * steps) / annPerImage,
    'SNN image-step ÷ ANN image, fused': perImageStep / annPerImage,
    'SNN image-step ÷ ANN image, auto': auto.seconds / (test.size * steps) / annPerImage,
    'auto: batches run by fused': auto.engines.fused ?? 0,
    'SNN GFLOP/s': gflops,
    'SNN ÷ peak': gflops / peak,
    'ANN GFLOP/s': annGflops,
  };

  if (!quick) {
    const per = await simulateBatches(
      snn.graph,
      snn.spec,
      test,
      { steps, batchSize: batch, normalize: m.normalize, threads, engine: 'steps', checkpoints: [steps] },
      () => {},
    );
    const loop = await simulateBatches(
      snn.graph,
      snn.spec,
      test,
      { steps, batchSize: batch, normalize: m.normalize, threads, engine: 'loop' },
      () => {},
    );
    row['Loop ÷ per-step'] = loop.seconds / per.seconds;
    const single = await simulateBatches(
      snn.graph,
      snn.spec,
      test,
      { steps, batchSize: batch, normalize: m.normalize, threads, engine: 'steps', unroll: 1, checkpoints: [steps] },
      () => {},
    );
    row[`1 step per call ÷ ${DEFAULT_UNROLL}`] = single.seconds / per.seconds;
    // Batch size: smaller batches keep the membrane states in cache, larger ones amortise per-call costs.
    for (const bs of [25, 50, 200]) {
      const r = await simulateBatches(
        snn.graph,
        snn.spec,
        test,
        { steps, batchSize: bs, normalize: m.normalize, threads, engine: 'steps', checkpoints: [steps] },
        () => {},
      );
      row[`batch ${bs} ÷ batch ${batch}`] = r.seconds / per.seconds;
    }
  }

  // PyTorch simulates slowly on this machine's build: compare on the first 500 test images.
  if (withTorch)
    Object.assign(
      row,
      await compareTorch(
        name,
        manifest.dataset,
        m,
        snn,
        train.size,
        limitDataset(test, Math.min(test.size, 500)),
        iterations,
        { annSeconds, calSeconds },
      ),
    );
  Object.assign(row, memory(name));
  return row;
}

async function compareTorch(
  name: string,
  dataset: string,
  m: PreparedModel,
  snn: Snn,
  calibN: number,
  test: ReturnType<typeof openDataset>,
  iterations: number,
  ours: { annSeconds: number; calSeconds: number },
): Promise<Record<string, number>> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spikeport-torch-'));
  const prepared = path.join(dir, 'prepared.onnx');
  fs.writeFileSync(prepared, encodeModel(m.graph));
  const Ts = [8, 16, 32].filter((T) => T <= steps);
  const dhat = snn.meta.delay.estimated;
  const delays = Ts.map((T) => delayAt(T, dhat));
  const theta = snn.thresholds().values;
  const thresholds = Object.fromEntries(m.plan.sites.map((s, i) => [s.node, Array.from(theta[i])]));
  const job = {
    model: prepared,
    data: dataset,
    normalize: m.normalize,
    threads,
    batch,
    calibSamples: calibN,
    iterations,
    stepSize: 1,
    thresholds,
    testSamples: test.size,
    T: Ts,
    delays,
  };
  fs.writeFileSync(path.join(dir, 'job.json'), JSON.stringify(job));
  // spikeport: the same windows, one simulation of T_max.
  const run = await simulateWindows(
    snn,
    test,
    Ts.map((T, i) => ({ T, delay: delays[i] })),
    { batchSize: batch, threads },
  );
  log(`${name}: spikeport simulation ${run.stats.seconds.toFixed(2)} s (T=${Math.max(...Ts)}); running PyTorch…`);
  const r = spawnSync(torchPython, [path.join(ROOT, 'tools', 'torch_compare.py'), path.join(dir, 'job.json')], {
    encoding: 'utf8',
    maxBuffer: 1 << 28,
  });
  fs.rmSync(dir, { recursive: true, force: true });
  if (r.status !== 0) throw new Error(`torch_compare.py failed: ${r.stderr}`);
  const t = JSON.parse(r.stdout) as {
    annSeconds: number;
    calibSeconds: number;
    simSeconds: number;
    top1: number[];
    thresholds: Record<string, number[]>;
  };
  let maxRel = 0;
  m.plan.sites.forEach((s, i) => {
    const a = theta[i];
    const b = t.thresholds[s.node];
    a.forEach((v, k) => {
      maxRel = Math.max(maxRel, Math.abs(v - b[k]) / Math.max(1e-6, Math.abs(b[k])));
    });
  });
  const accDiff = Math.max(...run.scores.map((s, i) => Math.abs(s.metric - t.top1[i])));
  log(
    `${name}: PyTorch ANN ${t.annSeconds.toFixed(2)} s, CLTB ${t.calibSeconds.toFixed(2)} s, SNN ${t.simSeconds.toFixed(2)} s; top-1 ${t.top1.map((v) => (100 * v).toFixed(2)).join('/')} vs ${run.scores.map((s) => (100 * s.metric).toFixed(2)).join('/')}`,
  );
  return {
    'PyTorch ANN ÷ ours': t.annSeconds / ours.annSeconds,
    'calib: ours ÷ PyTorch': ours.calSeconds / t.calibSeconds,
    'sim: PyTorch ÷ ours': t.simSeconds / run.stats.seconds,
    'θ max rel. diff': maxRel,
    'top-1 max |diff| (points)': 100 * accDiff,
  };
}

/** Max RSS (MB) of a child simulating T = 64 and T = 1024 on the same images. */
function memory(name: string): Record<string, number> {
  const res: Record<string, number> = {};
  for (const T of [64, 1024]) {
    const r = spawnSync(
      process.execPath,
      [path.join(ROOT, 'dist', 'bench', 'memory.js'), name, String(T), String(quick ? 100 : 200), String(threads)],
      { encoding: 'utf8' },
    );
    if (r.status !== 0) throw new Error(`memory.js failed: ${r.stderr}`);
    res[`max RSS T=${T} (MB)`] = Number(r.stdout.trim());
  }
  return res;
}

/**
 * ImageNet-size nets (random weights, tools/export_torchvision.py): ANN per image, CLTB
 * calibration and the simulation with both engines on the same random images, batch 16 — as a
 * user would run them.
 */
async function benchImagenet(name: string): Promise<Row> {
  const file = path.join(ROOT, 'out', 'torchvision', `${name}.onnx`);
  if (!fs.existsSync(file))
    throw new Error(`${file} is missing: /usr/bin/python3 tools/export_torchvision.py out/torchvision ${name}`);
  const loaded = loadModel(file);
  const m = await prepareModel(loaded, { threads });
  const bs = 16;
  const per = m.inputShape.reduce((a, b) => a * b, 1);
  const random = (size: number, seed: number): Dataset =>
    memoryDataset({
      name: 'random',
      size,
      sampleShape: m.inputShape,
      scale: 1,
      labels: null,
      x: Float32Array.from({ length: size * per }, (_, i) => (((i + seed) * 2654435761) % 1000) / 1000),
    });
  const calN = quick ? 32 : 64;
  const train = random(calN, 1);
  // Quick: one batch (auto has nothing to choose); full: four, so that auto's choice shows.
  const test = random(quick ? bs : 4 * bs, 7);
  const T = quick ? 16 : 32;
  const inst = instrument(m, { mode: 'ann', granularity: 'channel' });
  const annPass = async (): Promise<number> => {
    const t0 = performance.now();
    const s = await Session.create(inst.graph, { threads });
    for (const idx of sequentialBatches(train.size, bs)) {
      const b = await readBatch(train, idx, null);
      await s.run({ [m.inputName]: { dims: [b.n, ...m.inputShape], data: b.x } }, [inst.readout]);
    }
    await s.release();
    return (performance.now() - t0) / 1000;
  };
  await annPass();
  const annSeconds = await annPass();
  const snn = await convert(loaded, train, {
    method: 'cltb',
    iterations: calN / bs,
    batchSize: bs,
    threads,
    shuffle: false,
  });
  const calSeconds = snn.timing?.calibrate ?? Number.NaN;
  let autoFused = 0;
  const sim = async (engine: 'steps' | 'fused' | 'auto'): Promise<number> => {
    const r = await simulateBatches(
      snn.graph,
      snn.spec,
      test,
      { steps: T, batchSize: bs, normalize: null, threads, engine, checkpoints: [T] },
      () => {},
    );
    if (engine === 'auto') autoFused = r.engines.fused ?? 0;
    return r.seconds;
  };
  const stepsSec = await sim('steps');
  const fusedSec = await sim('fused');
  const autoSec = quick ? Number.NaN : await sim('auto');
  const annPerImage = annSeconds / train.size;
  const layers = snn.spec.layers ?? [];
  const perStepMacs = layers
    .filter((l) => l.where === 'spiking' || l.where === 'dense')
    .reduce((a, l) => a + l.macs, 0);
  const gflops = (2 * perStepMacs) / (fusedSec / (test.size * T)) / 1e9;
  log(
    `${name}: ANN ${(1000 * annPerImage).toFixed(1)} ms/image; CLTB ${calSeconds.toFixed(1)} s; SNN ${stepsSec.toFixed(1)} s (steps), ${fusedSec.toFixed(1)} s (fused)${quick ? '' : `, ${autoSec.toFixed(1)} s (auto, ${autoFused} of ${test.size / bs} batches fused)`} for ${test.size} × ${T}`,
  );
  return {
    model: `${name} (batch ${bs}, T ${T})`,
    'calib ÷ ANN': calSeconds / annSeconds,
    'SNN image-step ÷ ANN image, steps': stepsSec / (test.size * T) / annPerImage,
    'SNN image-step ÷ ANN image, fused': fusedSec / (test.size * T) / annPerImage,
    ...(quick
      ? {}
      : {
          'SNN image-step ÷ ANN image, auto': autoSec / (test.size * T) / annPerImage,
          'auto: batches run by fused': autoFused,
        }),
    'SNN GFLOP/s': gflops,
    'SNN ÷ peak': gflops / peak,
    'ANN GFLOP/s': (2 * layers.reduce((a, l) => a + l.macs, 0)) / annPerImage / 1e9,
  };
}

if (!withTorch && !flag('no-torch'))
  process.stderr.write('note: no PyTorch comparison (apt-get install python3-torch python3-onnx)\n');
const peak = await measurePeak();
log(`peak (MatMul 1536³ through ONNX Runtime, ${threads} threads): ${peak.toFixed(1)} GFLOP/s`);
const rows: Row[] = [];
const imagenet = flag('imagenet');
if (imagenet)
  for (const name of arg('models', 'resnet18-224,resnet34-224,mobilenet_v2-224').split(','))
    rows.push(await benchImagenet(name));
else for (const name of models) rows.push(await benchModel(name, peak));

const keys = [...new Set(rows.flatMap((r) => Object.keys(r)))];
const fmt = (v: string | number | null | undefined): string =>
  typeof v === 'number' ? (Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(3)) : String(v ?? '–');
const header = `| ${keys.join(' | ')} |\n|${keys.map(() => '---').join('|')}|`;
process.stdout.write(
  `machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, Node ${process.version}, ${threads} threads; peak ${peak.toFixed(1)} GFLOP/s (ORT MatMul)\n`,
);
process.stdout.write(
  imagenet
    ? `ImageNet-size, random weights and inputs: calibration ${quick ? 32 : 64} images (batch 16); simulation ${quick ? '16 images (quick)' : '64 images'}\n\n`
    : `calibration ${calibSamples} samples (batch ${batch}, in order); simulation ${testSamples} test images × ${steps} steps${quick ? ' (quick)' : ''}\n\n`,
);
process.stdout.write(`${header}\n${rows.map((r) => `| ${keys.map((k) => fmt(r[k])).join(' | ')} |`).join('\n')}\n`);
const jsonOut = arg('json', '');
if (jsonOut)
  fs.writeFileSync(jsonOut, JSON.stringify({ peak, threads, calibSamples, testSamples, steps, rows }, null, 2));
