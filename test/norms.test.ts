/**
 * Per-sample normalisations (GroupNorm, InstanceNorm, LayerNorm over channels) frozen to
 * statistics measured on calibration samples: found as PyTorch exports them, measured, replaced
 * by a per-channel affine; what it costs the ANN reported; the whole network converted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Graph } from '../src/graph/ir.js';
import { floatTensor, int64Tensor } from '../src/graph/ir.js';
import { GraphBuilder, floatInput } from '../src/onnx/builder.js';
import { encodeModel } from '../src/onnx/codec.js';
import { loadModel } from '../src/model/load.js';
import { planNorms, prepareModel } from '../src/model/prepare.js';
import { measureNorms } from '../src/calibrate/norms.js';
import { memoryDataset } from '../src/data/dataset.js';
import { convert, loadSnn, simulate } from '../src/index.js';
import { SpikeportError } from '../src/errors.js';
import { writeFileAtomic } from '../src/files.js';
import { conv, randn, runGraph, uniform } from './helpers.js';
import { tempDir } from './temp.js';

const PYTHON = '/usr/bin/python3';
const hasTorch =
  fs.existsSync(PYTHON) && spawnSync(PYTHON, ['-c', 'import torch, onnx'], { encoding: 'utf8' }).status === 0;

/** Small networks with a normalisation between two ReLU layers, exported by PyTorch: name → file. */
function exportTorch(dir: string): Record<string, string> {
  const script = `
import sys, torch
torch.manual_seed(0)
torch.set_num_threads(1)
class LN2d(torch.nn.Module):
    def __init__(s, c):
        super().__init__(); s.ln = torch.nn.LayerNorm(c)
        s.ln.weight.data.uniform_(0.5, 1.5); s.ln.bias.data.uniform_(-0.3, 0.3)
    def forward(s, x): return s.ln(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
def net(norm):
    n = torch.nn.Sequential(torch.nn.Conv2d(2, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 3, padding=1),
                            norm, torch.nn.ReLU(), torch.nn.Conv2d(8, 3, 3, padding=1))
    for m in n.modules():
        if isinstance(m, (torch.nn.GroupNorm, torch.nn.InstanceNorm2d)) and m.weight is not None:
            m.weight.data.uniform_(0.5, 1.5); m.bias.data.uniform_(-0.3, 0.3)
    return n.eval()
nets = {'groupnorm': (net(torch.nn.GroupNorm(4, 8)), 13), 'instancenorm': (net(torch.nn.InstanceNorm2d(8, affine=True)), 13),
        'layernorm13': (net(LN2d(8)), 13), 'layernorm17': (net(LN2d(8)), 17)}
for name, (n, opset) in nets.items():
    torch.onnx.export(n, torch.rand(1, 2, 6, 6), f"{sys.argv[1]}/{name}.onnx", opset_version=opset,
                      input_names=['input'], output_names=['out'], dynamic_axes={'input': {0: 'N'}, 'out': {0: 'N'}})
`;
  const r = spawnSync(PYTHON, ['-c', script, dir], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const names = ['groupnorm', 'instancenorm', 'layernorm13', 'layernorm17'];
  return Object.fromEntries(names.map((n) => [n, path.join(dir, `${n}.onnx`)]));
}

const SHAPE = [2, 6, 6];
const data = (seed: number, n: number) =>
  memoryDataset({ name: 'x', size: n, sampleShape: SHAPE, x: uniform(seed, n * 72, -1, 1), scale: 1, labels: null });

test(
  'normalisations as PyTorch exports them: found, and frozen with a sample’s own statistics they give its output',
  { skip: hasTorch ? false : 'needs Debian python3-torch and python3-onnx' },
  async () => {
    const files = exportTorch(tempDir('norms-torch'));
    const kinds: Record<string, string> = {
      groupnorm: 'groupnorm',
      instancenorm: 'instancenorm',
      layernorm13: 'layernorm',
      layernorm17: 'layernorm',
    };
    for (const [name, file] of Object.entries(files)) {
      const loaded = loadModel(file);
      // Unconverted, the model is refused in one line naming the normalisation.
      await assert.rejects(prepareModel(loaded, { threads: 1 }), (e: unknown) => {
        assert.ok(e instanceof SpikeportError);
        assert.match(e.message, /normalises each sample inside the spiking part/);
        return true;
      });
      const plan = await planNorms(loaded, { threads: 1 });
      assert.ok(plan, name);
      assert.deepEqual(
        plan.norms.map((s) => s.kind),
        [kinds[name]],
        name,
      );
      if (kinds[name] === 'layernorm') {
        await checkLayerNorm(name, loaded, plan);
        continue;
      }
      // One sample: its own statistics make the frozen network the original one on it.
      const one = data(7, 1);
      const stats = await measureNorms(
        plan.graph,
        plan.inputName,
        plan.inputShape,
        plan.norms,
        plan.ranks,
        one,
        [0],
        null,
        {
          batchSize: 1,
          threads: 1,
        },
      );
      const m = await prepareModel(loaded, { threads: 1, frozenNorms: stats });
      assert.ok(!m.graph.nodes.some((n) => /Normalization/.test(n.opType)), `${name}: no normalisation op is left`);
      const x = { input: { dims: [1, ...SHAPE], data: one.x as Float32Array } };
      const want = (await runGraph(loaded.graph, x))['out'].data;
      const got = (await runGraph(m.graph, x, ['out']))['out'].data;
      const scale = Math.max(...Array.from(want, Math.abs));
      want.forEach((v, i) => assert.ok(Math.abs(got[i] - v) <= 1e-4 * scale, `${name} [${i}]: ${got[i]} vs ${v}`));
      // Another sample is normalised with the first one's statistics now: its output moves.
      const other = { input: { dims: [1, ...SHAPE], data: uniform(8, 72, -2, 2) } };
      const a = (await runGraph(loaded.graph, other))['out'].data;
      const b = (await runGraph(m.graph, other, ['out']))['out'].data;
      assert.ok(
        a.some((v, i) => Math.abs(b[i] - v) > 1e-3 * scale),
        `${name}: frozen statistics are not the sample's own`,
      );
    }
  },
);

/**
 * LayerNorm over channels (NHWC, last axis): its statistics are one mean and one variance, each
 * the average over samples and positions of the position's own; frozen, y = γ(x − μ)/√(σ² + ε) + β,
 * checked here by hand on the tensors ONNX Runtime gives.
 */
async function checkLayerNorm(
  name: string,
  loaded: ReturnType<typeof loadModel>,
  plan: NonNullable<Awaited<ReturnType<typeof planNorms>>>,
): Promise<void> {
  const [s] = plan.norms;
  const d = data(9, 3);
  const stats = await measureNorms(
    plan.graph,
    plan.inputName,
    plan.inputShape,
    plan.norms,
    plan.ranks,
    d,
    [0, 1, 2],
    null,
    {
      batchSize: 2,
      threads: 1,
    },
  );
  const feeds = { input: { dims: [3, ...SHAPE], data: d.x as Float32Array } };
  const x = (await runGraph({ ...plan.graph, outputs: [floatInput(s.measured, null)] }, feeds))[s.measured];
  const C = x.dims[x.dims.length - 1];
  const positions = x.data.length / C;
  let [mean, variance] = [0, 0];
  for (let p = 0; p < positions; p++) {
    const row = x.data.subarray(p * C, (p + 1) * C);
    const mu = row.reduce((a, b) => a + b, 0) / C;
    mean += mu / positions;
    variance += row.reduce((a, b) => a + (b - mu) ** 2, 0) / C / positions;
  }
  assert.ok(
    Math.abs(stats[0].mean[0] - mean) < 1e-5 * (1 + Math.abs(mean)),
    `${name}: mean ${stats[0].mean[0]} vs ${mean}`,
  );
  assert.ok(Math.abs(stats[0].variance[0] - variance) < 1e-4 * variance, `${name}: variance`);
  const m = await prepareModel(loaded, { threads: 1, frozenNorms: stats });
  assert.ok(
    !m.graph.nodes.some((n) => /Normalization|ReduceMean|Sqrt/.test(n.opType)),
    `${name}: nothing per sample is left`,
  );
  const y = (await runGraph({ ...m.graph, outputs: [floatInput(s.output, null)] }, feeds))[s.output];
  const constant = (t: string | undefined, fallback: number): Float32Array =>
    t ? (plan.graph.initializers.get(t)?.data as Float32Array) : new Float32Array(C).fill(fallback);
  const gamma = s.gamma ? constant(s.gamma, 1) : constant(s.normScale, 1);
  const beta = s.beta ? constant(s.beta, 0) : constant(s.normBias, 0);
  const inv = 1 / Math.sqrt(variance + s.epsilon);
  x.data.forEach((v, e) => {
    const want = gamma[e % C] * (v - mean) * inv + beta[e % C];
    assert.ok(Math.abs(y.data[e] - want) < 1e-4 * (1 + Math.abs(want)), `${name} [${e}]: ${y.data[e]} vs ${want}`);
  });
}

/** conv → ReLU → conv → GroupNorm(G) as exported (Reshape, InstanceNormalization, Reshape, Mul, Add) → ReLU → conv. */
function gnNet(): Graph {
  const b = new GraphBuilder(13);
  const C = 8;
  const G = 4;
  let h = b.op('Relu', [conv(b, 'input', 2, C, 3, { seed: 91 })]);
  const x = conv(b, h, C, C, 3, { seed: 92 });
  const r = b.op('Reshape', [x, b.constant('shape', int64Tensor([3], [0, G, -1]))]);
  const inorm = b.op(
    'InstanceNormalization',
    [
      r,
      b.constant('ones', floatTensor([G], new Array(G).fill(1))),
      b.constant('zeros', floatTensor([G], new Array(G).fill(0))),
    ],
    { epsilon: 1e-5 },
  );
  const back = b.op('Reshape', [inorm, b.op('Shape', [x])]);
  const scaled = b.op('Mul', [back, b.constant('gamma', floatTensor([C, 1, 1], uniform(93, C, 0.5, 1.5)))]);
  h = b.op('Relu', [b.op('Add', [scaled, b.constant('beta', floatTensor([C, 1, 1], randn(94, C, 0.3)))])]);
  const out = b.op('Flatten', [b.op('GlobalAveragePool', [conv(b, h, C, 5, 3, { seed: 95 })])], { axis: 1 });
  return {
    name: 'gn',
    nodes: b.nodes,
    initializers: b.initializers,
    inputs: [floatInput('input', ['N', ...SHAPE])],
    outputs: [floatInput(out, null)],
    opset: 13,
    irVersion: 8,
    metadata: {},
  };
}

test('measured statistics are the samples’ own means and variances per group, averaged', async () => {
  const g = gnNet();
  const loaded = { path: 'gn.onnx', sha256: '', graph: g };
  const plan = await planNorms(loaded, { threads: 1 });
  assert.ok(plan);
  const [s] = plan.norms;
  assert.equal(s.groups, 4);
  const d = data(11, 5);
  const stats = await measureNorms(
    plan.graph,
    plan.inputName,
    plan.inputShape,
    plan.norms,
    plan.ranks,
    d,
    [0, 1, 2, 3, 4],
    null,
    {
      batchSize: 2,
      threads: 1,
    },
  );
  // By hand: the normalised tensor [n, G, k] from ONNX Runtime, each sample's mean and variance per group.
  const x = (
    await runGraph(
      { ...plan.graph, outputs: [floatInput(s.measured, null)] },
      {
        input: { dims: [5, ...SHAPE], data: d.x as Float32Array },
      },
    )
  )[s.measured];
  const [n, G, k] = x.dims;
  for (let grp = 0; grp < G; grp++) {
    let [m, v] = [0, 0];
    for (let i = 0; i < n; i++) {
      const row = x.data.subarray((i * G + grp) * k, (i * G + grp + 1) * k);
      const mu = row.reduce((a, b) => a + b, 0) / k;
      m += mu / n;
      v += row.reduce((a, b) => a + (b - mu) ** 2, 0) / k / n;
    }
    assert.ok(Math.abs(stats[0].mean[grp] - m) < 1e-5 * (1 + Math.abs(m)), `mean of group ${grp}`);
    assert.ok(Math.abs(stats[0].variance[grp] - v) < 1e-4 * v, `variance of group ${grp}`);
  }
});

test('a network with GroupNorm converts: statistics frozen, the cost reported, the SNN reaches the frozen ANN', async () => {
  const dir = tempDir('norms-convert');
  const file = path.join(dir, 'gn.onnx');
  writeFileAtomic(file, encodeModel(gnNet()));
  const calib = data(21, 40);
  const snn = await convert(file, calib, { iterations: 20, batchSize: 10, normSamples: 16, threads: 1 });
  const rec = snn.meta.normalization;
  assert.ok(rec);
  assert.equal(rec.samples, 16);
  assert.equal(rec.cost.samples, 16);
  assert.equal(rec.cost.heldOut, true);
  assert.match(rec.norms[0], /^GroupNorm\(4\)/);
  // The frozen normalisation was folded into the convolution before it: no BatchNormalization, no InstanceNormalization.
  assert.ok(!snn.graph.nodes.some((n) => /Normalization/.test(n.opType)));
  assert.ok(
    rec.cost.outputs[0].error > 0 && rec.cost.outputs[0].error < 1,
    `relative change ${rec.cost.outputs[0].error}`,
  );
  assert.ok(rec.cost.agreement && rec.cost.agreement.measure === 'samples with the same top-1');
  // Labels: the original ANN's own classes, so its top-1 is 100 % and the frozen one's is the cost.
  const test = data(22, 30);
  const logits = (await runGraph(gnNet(), { input: { dims: [30, ...SHAPE], data: test.x as Float32Array } }))[
    gnNet().outputs[0].name
  ];
  const labels = Int32Array.from({ length: 30 }, (_, i) => {
    const row = Array.from(logits.data.subarray(5 * i, 5 * i + 5));
    return row.indexOf(Math.max(...row));
  });
  const labelled = memoryDataset({ ...test, labels });
  const r = await simulate(snn, labelled, { T: [8, 256], batchSize: 10, references: true, threads: 1 });
  assert.equal(r.ann?.metric, 1);
  assert.ok(r.frozenAnn !== undefined && r.frozenAnn.metric < 1, `frozen ANN ${r.frozenAnn?.metric}`);
  const last = r.results[r.results.length - 1];
  assert.ok(
    Math.abs(last.metric - (r.clippedAnn?.metric ?? NaN)) <= 0.1,
    `SNN ${last.metric} vs clipped ${r.clippedAnn?.metric}`,
  );
  // The ceiling quantises the network the SNN runs (frozen): with 256 levels it is that network clipped.
  // (The original ANN, which the labels come from, scores 1 and the frozen one less.)
  assert.deepEqual(
    r.ceiling?.map((c) => [c.T, c.levels]),
    [
      [8, 8],
      [256, 256],
    ],
  );
  assert.equal(r.ceiling?.[1].metric, r.clippedAnn?.metric);
  assert.deepEqual((r.calibration.normalization as { norms: string[] }).norms, rec.norms);
  // Saved and read back, the source ANN is frozen the same way: the same references.
  snn.save(path.join(dir, 'gn.snn.onnx'));
  const again = await loadSnn(path.join(dir, 'gn.snn.onnx'), { threads: 1 });
  assert.deepEqual(again.meta.normalization, rec);
  const r2 = await simulate(again, labelled, { T: [8, 256], batchSize: 10, references: true, threads: 1 });
  assert.deepEqual([r2.ann, r2.frozenAnn, r2.clippedAnn], [r.ann, r.frozenAnn, r.clippedAnn]);
  assert.deepEqual(r2.results, r.results);
});
