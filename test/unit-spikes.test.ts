/**
 * The unit-spike form (θ folded into the weights, threshold 1, 0/1 spikes) computes the same
 * readout as the θ-amplitude form at every step, to float precision, on the generated zoo and
 * on every bundled model; its spikes are 0/1.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Graph } from '../src/graph/ir.js';
import { prepareModel, type PreparedModel } from '../src/model/prepare.js';
import { loadModel } from '../src/model/load.js';
import { calibrate } from '../src/calibrate/calibrate.js';
import type { Thresholds } from '../src/calibrate/thresholds.js';
import { buildSnn } from '../src/snn/build.js';
import { unitSpikeForm } from '../src/snn/unit.js';
import { Session, type Array32 } from '../src/ort/session.js';
import { readBatch, type Dataset } from '../src/data/dataset.js';
import { openDataset } from '../src/data/sources.js';
import { memDataset, uniform } from './helpers.js';
import { thetaPerElement } from '../src/calibrate/thresholds.js';
import { siteState } from '../src/snn/format.js';
import { ZOO } from './zoo.js';
import { convert, resolveConvertOptions } from '../src/api/convert.js';
import { simulate } from '../src/api/simulate.js';
import { snnFromGraph } from '../src/snn/network.js';
import { decodeModel } from '../src/onnx/codec.js';
import { tempDir } from './temp.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

interface Comparison {
  /** max |readout(unit) − readout(θ)| over samples and outputs, at the steps before any spike decision differs. */
  readonly maxDiff: number;
  /** max |readout(θ)|, for scale. */
  readonly scale: number;
  /** The first step (0-based) at which a spike decision differs; T when none does. */
  readonly firstFlip: number;
  /** Spike decisions (neuron × step × sample) that differ, and all decisions. */
  readonly flips: number;
  readonly decisions: number;
  /** At the first differing step and site: the largest |membrane − θ/2| / θ of a differing neuron in the θ form. */
  readonly flipMargin: number;
  /** Samples (and positions) whose top-1 of the averaged readout differs. */
  readonly top1Differs: number;
  /** Every site output of the unit form is 0 or 1. */
  readonly binary: boolean;
  readonly scaleNodes: number;
}

interface Trace {
  readonly readouts: Float32Array[];
  readonly sites: Float32Array[][];
  readonly states: Float32Array[][];
}

async function runSteps(
  g: Graph,
  spec: ReturnType<typeof buildSnn>['spec'],
  x: Array32,
  T: number,
  siteOutputs: readonly string[],
): Promise<Trace> {
  const withSites: Graph = {
    ...g,
    outputs: [...g.outputs, ...siteOutputs.map((name) => ({ name, dtype: 'float32' as const, shape: null }))],
  };
  const s = await Session.create(withSites, { threads: 1 });
  const n = x.dims[0];
  const feeds: Record<string, Array32> = { [spec.input]: x };
  for (const st of spec.states)
    feeds[st.input] = { dims: [n, ...st.shape], data: new Float32Array(n * st.shape.reduce((a, b) => a * b, 1)) };
  const trace: Trace = { readouts: [], sites: [], states: [] };
  try {
    for (let t = 0; t < T; t++) {
      const out = await s.run(feeds);
      for (const st of spec.states) feeds[st.input] = out[st.output];
      trace.readouts.push(Float32Array.from(out[spec.readout].data));
      trace.sites.push(siteOutputs.map((o) => out[o].data));
      trace.states.push(spec.sites.map((_, k) => out[`${siteState(k)}.next`].data));
    }
  } finally {
    await s.release();
  }
  return trace;
}

/**
 * Both forms from the same thresholds, stepped side by side. The two are the same arithmetic up
 * to float rounding, so they agree until a membrane lands within rounding of its threshold and
 * one form fires where the other does not; the comparison says when, how often, and how close
 * to the threshold that membrane was.
 */
async function compareForms(
  m: PreparedModel,
  th: Thresholds,
  data: Dataset,
  n: number,
  T: number,
): Promise<Comparison> {
  const batch = await readBatch(
    data,
    Array.from({ length: n }, (_, i) => i),
    m.normalize,
  );
  const x: Array32 = { dims: [n, ...m.inputShape], data: batch.x };
  const amp = buildSnn(m, th);
  const unit = await unitSpikeForm(m, th, { threads: 1 });
  const uni = buildSnn(unit.model, unit.thresholds);
  const a = await runSteps(
    amp.graph,
    amp.spec,
    x,
    T,
    m.plan.sites.map((s) => s.output),
  );
  const u = await runSteps(
    uni.graph,
    uni.spec,
    x,
    T,
    unit.model.plan.sites.map((s) => s.output),
  );
  const channels = m.plan.sites.map((s) => (m.shapes.get(s.input) as number[])[0]);
  let firstFlip = T;
  let flips = 0;
  let decisions = 0;
  let flipMargin = 0;
  for (let t = 0; t < T; t++) {
    let firstSiteDone = false;
    for (let k = 0; k < m.plan.sites.length; k++) {
      const av = a.sites[t][k];
      const uv = u.sites[t][k];
      const per = av.length / n;
      const theta = thetaPerElement(th.values[k], per, channels[k]);
      let here = 0;
      for (let j = 0; j < av.length; j++) {
        decisions++;
        if (av[j] > 0 === uv[j] > 0) continue;
        here++;
        if (t <= firstFlip && !firstSiteDone) {
          // The θ form's membrane before the reset: next state + what it emitted.
          const u1 = a.states[t][k][j] + av[j];
          const th1 = theta[j % per];
          flipMargin = Math.max(flipMargin, Math.abs(u1 - th1 / 2) / th1);
        }
      }
      if (here > 0) {
        if (firstFlip === T) firstFlip = t;
        if (t === firstFlip) firstSiteDone = true;
      }
      flips += here;
    }
  }
  let maxDiff = 0;
  let scale = 0;
  const size = a.readouts[0].length;
  const sumA = new Float64Array(size);
  const sumU = new Float64Array(size);
  for (let t = 0; t < T; t++) {
    for (let j = 0; j < size; j++) {
      if (t < firstFlip) maxDiff = Math.max(maxDiff, Math.abs(a.readouts[t][j] - u.readouts[t][j]));
      scale = Math.max(scale, Math.abs(a.readouts[t][j]));
      sumA[j] += a.readouts[t][j];
      sumU[j] += u.readouts[t][j];
    }
  }
  // Top-1 over the readout's channel axis (axis 1), at every other position.
  const per = size / n;
  const C = (m.shapes.get(m.plan.readout) as number[])[0];
  const rest = per / C;
  let top1Differs = 0;
  for (let i = 0; i < n; i++) {
    for (let r = 0; r < rest; r++) {
      let ba = 0;
      let bu = 0;
      for (let c = 1; c < C; c++) {
        const k = i * per + c * rest + r;
        if (sumA[k] > sumA[i * per + ba * rest + r]) ba = c;
        if (sumU[k] > sumU[i * per + bu * rest + r]) bu = c;
      }
      if (ba !== bu) top1Differs++;
    }
  }
  const binary = u.sites.every((step) => step.every((v) => v.every((s) => s === 0 || s === 1)));
  return {
    maxDiff,
    scale,
    firstFlip,
    flips,
    decisions,
    flipMargin,
    top1Differs,
    binary,
    scaleNodes: unit.scaleNodes.length,
  };
}

function check(t: { diagnostic: (s: string) => void }, name: string, c: Comparison, maxTop1 = 0): void {
  t.diagnostic(
    `${name}: max |Δ readout| ${c.maxDiff.toExponential(2)} (readout up to ${c.scale.toFixed(3)}) over steps 1..${c.firstFlip}; ` +
      `${c.flips} of ${c.decisions} spike decisions differ${c.flips ? ` (first at step ${c.firstFlip + 1}, membrane within ${c.flipMargin.toExponential(1)}·θ of θ/2)` : ''}; ` +
      `top-1 differs on ${c.top1Differs}; scale nodes ${c.scaleNodes}`,
  );
  assert.ok(c.binary, 'unit-form sites emit 0 or 1');
  assert.ok(c.maxDiff <= 1e-5 * Math.max(1, c.scale), `max |Δ readout| ${c.maxDiff} (scale ${c.scale})`);
  // The first spike that differs is a membrane within float rounding of the threshold (later ones follow from it).
  assert.ok(c.flipMargin <= 1e-5, `a spike differs at a membrane ${c.flipMargin}·θ from θ/2: not rounding`);
  assert.ok(c.top1Differs <= maxTop1, `top-1 differs on ${c.top1Differs}`);
}

for (const [name, { graph, shape }] of Object.entries(ZOO)) {
  test(`unit spikes, zoo ${name}: readout equals the θ-amplitude form at every step`, async (t) => {
    const per = shape.reduce((a, b) => a * b, 1);
    const data = memDataset(uniform(23, 8 * per), shape);
    const m = await prepareModel({ path: 'zoo.onnx', sha256: '', graph: graph() }, { threads: 1 });
    const cal = await calibrate(m, data, { method: 'cltb', iterations: 2, batchSize: 8, threads: 1 });
    check(t, name, await compareForms(m, cal.thresholds, data, 8, 24));
  });
}

const BUNDLED = fs
  .readdirSync(path.join(root, 'models'))
  .filter((f) => f.endsWith('.json'))
  .sort();
const DATA: Record<string, string> = { mnist: 'mnist', 'fashion-mnist': 'fashion-mnist' };
for (const manifest of BUNDLED) {
  const info = JSON.parse(fs.readFileSync(path.join(root, 'models', manifest), 'utf8')) as {
    name: string;
    file: string;
    dataset: string;
    task: string;
  };
  const kind = DATA[info.dataset] ?? info.dataset;
  const available =
    kind !== 'fashion-mnist' || fs.existsSync('/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz');
  test(
    `unit spikes, bundled ${info.name}: readout equals the θ-amplitude form at every step`,
    { skip: available ? false : 'dataset-fashion-mnist is not installed' },
    async (t) => {
      const m = await prepareModel(loadModel(path.join(root, 'models', info.file)), { threads: 1 });
      const cal = await calibrate(m, openDataset(`${kind}:train`, 64), {
        method: 'cltb',
        iterations: 2,
        batchSize: 32,
        threads: 1,
      });
      check(t, info.name, await compareForms(m, cal.thresholds, openDataset(`${kind}:test`, 16), 16, 16));
    },
  );
}

test('unit spikes: a silent channel (θ = 0) stays silent and its outgoing weights are 0', async () => {
  const g = ZOO.vgg.graph();
  const m = await prepareModel({ path: 'zoo.onnx', sha256: '', graph: g }, { threads: 1 });
  const data = memDataset(uniform(5, 4 * 256), [1, 16, 16]);
  const cal = await calibrate(m, data, { method: 'cltb', iterations: 1, batchSize: 4, threads: 1 });
  const values = cal.thresholds.values.map((v, k) => (k === 0 ? v.map((x, c) => (c === 2 ? 0 : x)) : v));
  const th: Thresholds = { granularity: cal.thresholds.granularity, values };
  const unit = await unitSpikeForm(m, th, { threads: 1 });
  const conv = unit.model.graph.nodes.find(
    (n) => n.outputs[0] === unit.model.plan.sites[0].input && n.opType === 'Conv',
  );
  assert.ok(conv, 'the first site is fed by a conv');
  const w = unit.model.graph.initializers.get(conv.inputs[1])?.data as Float32Array;
  const per = w.length / th.values[0].length;
  assert.ok(
    w.slice(2 * per, 3 * per).every((v) => v === 0),
    "the silent channel's incoming weights are 0",
  );
  check({ diagnostic: () => undefined }, 'vgg with a silent channel', await compareForms(m, th, data, 4, 16));
});

test('convert({ spikes: "unit" }): the file records the form and the folded θ; simulate gives the θ form\'s accuracy', async () => {
  const opts = { method: 'cltb' as const, iterations: 2, batchSize: 32, threads: 1 };
  const data = openDataset('mnist:train', 64);
  const model = path.join(root, 'models/mnist-cnn.onnx');
  const amp = await convert(model, data, opts);
  const unit = await convert(model, data, { ...opts, spikes: 'unit' });
  const back = snnFromGraph(decodeModel(unit.toBytes(), 'u.onnx'), 'u.onnx');
  assert.equal(back.describe().spikes, 'unit');
  assert.equal(
    snnFromGraph(decodeModel(unit.toBytes('loop'), 'l.onnx'), 'l.onnx').describe().spikes,
    'unit',
    'the loop form reads back too',
  );
  assert.equal(amp.describe().spikes, 'amplitude');
  assert.deepEqual(
    back.thresholds().values.map((v) => Array.from(v)),
    amp.thresholds().values.map((v) => Array.from(v)),
  );
  assert.ok(back.spec.sites.every((s) => s.theta.every((v) => v === 1)));
  const test = openDataset('mnist:test', 200);
  const so = { T: [8, 16], batchSize: 100, threads: 1, references: false };
  const ra = await simulate(amp, test, so);
  const ru = await simulate(back, test, so);
  assert.deepEqual(
    ru.results.map((r) => r.metric),
    ra.results.map((r) => r.metric),
  );

  // The metadata is checked: a unit form whose θ list does not fit its sites is refused by field.
  const g = unit.toGraph();
  const meta = JSON.parse(g.metadata['spikeport.snn']) as { unit: { theta: number[][] } };
  meta.unit.theta.pop();
  assert.throws(
    () => snnFromGraph({ ...g, metadata: { ...g.metadata, 'spikeport.snn': JSON.stringify(meta) } }, 'bad.onnx'),
    /bad\.onnx: .*field unit\.theta/,
  );
  assert.throws(() => resolveConvertOptions({ spikes: 'binary' as never }), /spikes/);
});

test('simulate (CLI) on a unit-spike file with its ANN beside it: the per-site analysis is skipped, not an error', async (t) => {
  const dir = tempDir('spikeport-unit-', t);
  fs.copyFileSync(path.join(root, 'models/mnist-cnn.onnx'), path.join(dir, 'mnist-cnn.onnx'));
  const snn = await convert(path.join(dir, 'mnist-cnn.onnx'), openDataset('mnist:train', 100), {
    iterations: 1,
    batchSize: 100,
    threads: 1,
    spikes: 'unit',
  });
  snn.save(path.join(dir, 'cnn.snn.onnx'));
  const r = spawnSync(
    process.execPath,
    [
      path.join(root, 'dist/src/cli/main.js'),
      'simulate',
      path.join(dir, 'cnn.snn.onnx'),
      '--data',
      'mnist:test',
      '--limit',
      '50',
      '--T',
      '8',
      '--threads',
      '1',
      '-q',
    ],
    { encoding: 'utf8' },
  );
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /ANN top-1/);
});
