/**
 * What an exported NIR file means, checked against numbers made without spikeport's NIR code:
 * the weights, thresholds and resistances h5py reads from the file against the ANN's own
 * weights scaled by the thresholds (the unit-spike form, worked out here), and the spike trains
 * of a target's IF neuron (starts at 0, fires when v > threshold, then subtracts or resets to 0)
 * worked out by hand, in the file's simulation and in ONNX Runtime. Also: an engine asked for by
 * name that cannot run the target's neurons is said, not silent.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { floatTensor } from '../src/graph/ir.js';
import { convert } from '../src/api/convert.js';
import { simulate } from '../src/api/simulate.js';
import {
  PROFILES,
  TARGETS,
  asTarget,
  targetNetwork,
  exportNir,
  readNir,
  resetOf,
  simulateNir,
} from '../src/api/nir.js';
import { engineNotice, type StepBatch } from '../src/runtime/engines.js';
import { simulateBatches as simulateSteps } from '../src/runtime/batches.js';
import type { Snn } from '../src/snn/network.js';
import { zipSync } from 'fflate';
import { buildGraph, memDataset, npy, uniform } from './helpers.js';
import { tempDir } from './temp.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const cli = path.join(root, 'dist/src/cli/main.js');
const python = '/usr/bin/python3';
const h5py = fs.existsSync(python) && spawnSync(python, ['-c', 'import h5py'], { encoding: 'utf8' }).status === 0;

/** Per sample: x [1, 4, 4] → Conv 3×3 (1→2, pad 1, bias) → ReLU → Flatten → Gemm 32→3 (bias) → ReLU → Gemm 3→2 (bias, readout). */
function smallNet() {
  const W0 = uniform(1, 2 * 9, -0.5, 0.5);
  const b0 = Float32Array.of(0.1, 0.2);
  const W1 = uniform(2, 3 * 32, -0.3, 0.3);
  const b1 = Float32Array.of(0.05, -0.02, 0.1);
  const W2 = uniform(3, 2 * 3, -1, 1);
  const b2 = Float32Array.of(0.3, -0.1);
  const graph = buildGraph([1, 4, 4], (b, x) => {
    const c = b.op(
      'Conv',
      [x, b.constant('W0', floatTensor([2, 1, 3, 3], W0)), b.constant('b0', floatTensor([2], b0))],
      {
        kernel_shape: [3, 3],
        pads: [1, 1, 1, 1],
      },
    );
    const r0 = b.op('Relu', [c], {}, 'relu0');
    const f = b.op('Flatten', [r0], { axis: 1 });
    const g1 = b.op(
      'Gemm',
      [f, b.constant('W1', floatTensor([3, 32], W1)), b.constant('b1', floatTensor([3], b1))],
      { transB: 1 },
      'fc1',
    );
    const r1 = b.op('Relu', [g1], {}, 'relu1');
    return b.op(
      'Gemm',
      [r1, b.constant('W2', floatTensor([2, 3], W2)), b.constant('b2', floatTensor([2], b2))],
      { transB: 1 },
      'fc2',
    );
  });
  return { graph, W0, b0, W1, b1, W2, b2 };
}

test(
  "NIR file read with h5py: weights and biases are the ANN's divided by the neurons' θ and multiplied by the inputs' θ; IF r = 1, v_threshold = 1, v_reset = 0",
  { skip: h5py ? false : 'python3-h5py is not installed' },
  async (t) => {
    const dir = tempDir('spikeport-nir-sem-', t);
    const net = smallNet();
    const relu = (k: number): string => net.graph.nodes.filter((n) => n.opType === 'Relu')[k].name;
    // Powers of two: the folded weights are exact, whatever the order of the float operations.
    const theta0 = [2, 0.5];
    const theta1 = [4, 1, 0.25];
    const data = memDataset(uniform(5, 4 * 16), [1, 4, 4]);
    const snn = await convert({ path: 'small.onnx', sha256: '0'.repeat(64), graph: net.graph }, data, {
      method: 'fixed',
      thresholds: { [relu(0)]: theta0, [relu(1)]: theta1 },
      spikes: 'unit',
      threads: 1,
    });
    const file = path.join(dir, 'net.nir');
    await exportNir(snn, file, 'sinabs');
    const script = `
import h5py, json, sys
f = h5py.File(sys.argv[1], 'r')
nodes = {}
for name, node in f['node']['nodes'].items():
  d = {'type': node['type'][()].decode('utf8')}
  for k, v in node.items():
    if k != 'type': d[k] = {'shape': list(v.shape), 'values': v[()].flatten().tolist() if v.shape else [v[()].item()]}
  nodes[name] = d
print(json.dumps({'nodes': nodes, 'edges': [[a.decode('utf8'), b.decode('utf8')] for a, b in f['node']['edges'][()]]}))
`;
    const r = spawnSync(python, ['-c', script, file], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    type Field = { shape: number[]; values: number[] };
    const py = JSON.parse(r.stdout) as {
      nodes: Record<string, Record<string, Field> & { type: string }>;
      edges: string[][];
    };
    const byType = (type: string) =>
      Object.entries(py.nodes)
        .filter(([, n]) => n.type === type)
        .map(([name, n]) => ({ name, ...n }));
    const close = (got: number[], want: ArrayLike<number>, what: string): void => {
      assert.equal(got.length, want.length, `${what}: length`);
      for (let i = 0; i < got.length; i++)
        assert.ok(
          Math.abs(got[i] - want[i]) <= 1e-6 * Math.max(1, Math.abs(want[i])),
          `${what}[${i}]: ${got[i]} vs ${want[i]}`,
        );
    };
    // The chain: input → Conv2d → IF → Flatten → Affine → IF → Affine → output.
    const order = ['Input', 'Conv2d', 'IF', 'Flatten', 'Affine', 'IF', 'Affine', 'Output'];
    const next = new Map(py.edges.map(([a, b]) => [a, b]));
    const chain = ['input'];
    while (next.has(chain[chain.length - 1])) chain.push(next.get(chain[chain.length - 1]) as string);
    assert.equal(py.edges.length, order.length - 1);
    assert.deepEqual(
      chain.map((n) => py.nodes[n].type),
      order,
    );
    const [conv, fc1, fc2] = [chain[1], chain[4], chain[6]].map((n) => py.nodes[n]);
    // Conv: output channel o divided by θ0[o] (the analog input has no θ).
    const wantW0 = Array.from(net.W0, (w, i) => w / theta0[Math.floor(i / 9)]);
    assert.deepEqual(conv.weight.shape, [2, 1, 3, 3]);
    close(conv.weight.values, wantW0, 'Conv2d weight');
    close(conv.bias.values, [net.b0[0] / theta0[0], net.b0[1] / theta0[1]], 'Conv2d bias');
    // fc1: row o divided by θ1[o]; column j (flattened [2, 4, 4]) multiplied by θ0 of its channel.
    const wantW1 = Array.from(net.W1, (w, i) => (w * theta0[Math.floor((i % 32) / 16)]) / theta1[Math.floor(i / 32)]);
    assert.deepEqual(fc1.weight.shape, [3, 32]);
    close(fc1.weight.values, wantW1, 'Affine 1 weight');
    close(
      fc1.bias.values,
      Array.from(net.b1, (v, o) => v / theta1[o]),
      'Affine 1 bias',
    );
    // The readout: columns multiplied by θ1, rows as they are (it does not spike).
    close(
      fc2.weight.values,
      Array.from(net.W2, (w, i) => w * theta1[i % 3]),
      'readout weight',
    );
    close(fc2.bias.values, Array.from(net.b2), 'readout bias');
    // Every IF neuron: threshold 1 (θ is in the weights), r = 1, v_reset = 0, one value per neuron.
    const ifs = [chain[2], chain[5]].map((n) => py.nodes[n]);
    [[2, 4, 4], [3]].forEach((shape, k) => {
      for (const [field, v] of [
        ['r', 1],
        ['v_threshold', 1],
        ['v_reset', 0],
      ] as const) {
        assert.deepEqual(ifs[k][field].shape, shape, `IF ${k} ${field} shape`);
        assert.ok(
          ifs[k][field].values.every((x) => x === v),
          `IF ${k} ${field}: ${ifs[k][field].values.slice(0, 4).join(', ')}…`,
        );
      }
    });
    assert.equal(byType('IF').length, 2);
  },
);

/** x [2] → Gemm(identity) → ReLU (θ = 1, 2) → Gemm(identity) readout: the readout shows each step's spikes·θ. */
async function identityUnitNet(
  spikes: 'unit' | 'amplitude' = 'unit',
): Promise<{ snn: Snn; data: ReturnType<typeof memDataset> }> {
  const eye = floatTensor([2, 2], [1, 0, 0, 1]);
  const graph = buildGraph([2], (b, x) => {
    const h = b.op('Gemm', [x, b.constant('I', eye)], { transB: 1 });
    const s = b.op('Relu', [h], {}, 'site');
    return b.op('Gemm', [s, b.constant('I2', eye)], { transB: 1 }, 'readout');
  });
  const site = graph.nodes.find((n) => n.opType === 'Relu')?.name as string;
  // Currents 0.5 and 1.5 against θ 1 and 2: 0.5 and 0.75 of the threshold per step.
  const data = memDataset(Float32Array.of(0.5, 1.5), [2], Int32Array.of(1));
  const snn = await convert({ path: 'eye.onnx', sha256: '0'.repeat(64), graph }, data, {
    method: 'fixed',
    thresholds: { [site]: [1, 2] },
    spikes,
    threads: 1,
  });
  return { snn, data };
}

test("a target's IF neuron, worked by hand: starts at 0; one spike at v > θ then subtracts θ (spinnaker2) or resets to 0 (loihi2, norse, generic), or ⌊v/θ⌋ spikes at v ≥ θ (sinabs, speck); the file's simulation and ONNX Runtime agree", async (t) => {
  const T = 10;
  const { snn, data } = await identityUnitNet();
  // v per step in units of the threshold, input 0.5 and 0.75 per step:
  //   single, subtract, 0.5:  0.5, 1.0 (= threshold: no spike), 1.5 (spike → 0.5), 1.0, 1.5 (spike), …
  //   single, reset,    0.5:  0.5, 1.0, 1.5 (spike → 0), 0.5, 1.0, 1.5 (spike), …
  //   single, subtract, 0.75: 0.75, 1.5 (spike → 0.5), 1.25 (spike → 0.25), 1.0, 1.75 (spike → 0.75), 1.5 (spike), 1.25 (spike), 1.0, …
  //   single, reset,    0.75: 0.75, 1.5 (spike → 0), 0.75, 1.5 (spike), …
  //   multi (v ≥ θ, subtract), 0.5:  0.5, 1.0 (spike → 0), 0.5, 1.0 (spike), …
  //   multi (v ≥ θ, subtract), 0.75: 0.75, 1.5 (spike → 0.5), 1.25 (spike → 0.25), 1.0 (spike → 0), 0.75, …
  const trains = {
    'single/subtract': [
      [0, 0, 1, 0, 1, 0, 1, 0, 1, 0],
      [0, 1, 1, 0, 1, 1, 1, 0, 1, 1],
    ],
    'single/zero': [
      [0, 0, 1, 0, 0, 1, 0, 0, 1, 0],
      [0, 1, 0, 1, 0, 1, 0, 1, 0, 1],
    ],
    'multi/subtract': [
      [0, 1, 0, 1, 0, 1, 0, 1, 0, 1],
      [0, 1, 1, 1, 0, 1, 1, 1, 0, 1],
    ],
  };
  // SpiNNaker2 in its int8 integers: weights 1 and ½ (θ folded in) become 127 and 64 (63.5 rounded
  // to even), threshold 127: channel 0 gets 63.5/127 = 0.5 exactly, channel 1 gets 96/127 ≈ 0.756
  // per step, so at step 4 its v is 1.024 > 1 and it fires where 0.75 would sit at the threshold:
  //   0.756, 1.512 (spike → 0.512), 1.268 (spike → 0.268), 1.024 (spike → 0.024), 0.780, 1.536 (spike), …
  const spinnaker2Int8 = [trains['single/subtract'][0], [0, 1, 1, 1, 0, 1, 1, 1, 0, 1]];
  // spikeport's own neuron (starts at θ/2, fires at v ≥ θ) differs from all: 1, 0, 1, 0, … and 1, 1, 0, 1, 1, 1, 0, ….
  const own = await readoutsOf(snn, data, T);
  assert.deepEqual(own, [
    [1, 0, 1, 0, 1, 0, 1, 0, 1, 0],
    [2, 2, 0, 2, 2, 2, 0, 2, 2, 2],
  ]);
  const dir = tempDir('spikeport-nir-sem-', t);
  // What each importer does on a spike: sinabs' (and Speck's) MultiSpike with MembraneSubtract, SpiNNaker2's
  // ResetMethod.SUBTRACT; Lava's LIF, Norse and NIR's own IF reset to 0.
  const neurons = {
    sinabs: 'multi/subtract',
    speck: 'multi/subtract',
    spinnaker2: 'single/subtract',
    loihi2: 'single/zero',
    norse: 'single/zero',
    generic: 'single/zero',
  } as const;
  assert.deepEqual(Object.keys(neurons).sort(), [...TARGETS].sort());
  for (const target of TARGETS) {
    const profile = PROFILES[target];
    assert.equal(`${profile.spikes}/${resetOf(target)}`, neurons[target], `${target}: its neuron`);
    const want = (target === 'spinnaker2' ? spinnaker2Int8 : trains[neurons[target]]).map((train, c) =>
      train.map((s) => s * [1, 2][c]),
    );
    const file = path.join(dir, `${target}.nir`);
    await exportNir(snn, file, target);
    const run = simulateNir(await readNir(file), Float32Array.of(0.5, 1.5), 1, T, profile);
    // 8-bit weights (speck, loihi2) scale the readout by up to 1/127: the trains must still match.
    const tol = profile.quantisation ? 0.02 : 0;
    assertTrains(
      [0, 1].map((c) => run.outputs.map((o) => o[c])),
      want,
      tol,
      `${target}: the NIR file simulated`,
    );
    assertTrains(await readoutsOf(asTarget(snn, target), data, T), want, tol, `${target}: asTarget in ONNX Runtime`);
  }
});

function assertTrains(got: number[][], want: number[][], tol: number, what: string): void {
  if (tol === 0) return assert.deepEqual(got, want, what);
  const ok = got.length === want.length && got.every((g, c) => g.every((v, i) => Math.abs(v - want[c][i]) <= tol * 2));
  assert.ok(ok, `${what}: ${JSON.stringify(got)} against ${JSON.stringify(want)}`);
}

/** Per readout channel, its value at each step (one sample), on the steps engine. */
async function readoutsOf(snn: Snn, data: ReturnType<typeof memDataset>, T: number): Promise<number[][]> {
  let got: StepBatch | undefined;
  const stats = await simulateSteps(
    snn.graph,
    snn.spec,
    data,
    { steps: T, batchSize: 1, normalize: null, threads: 1, engine: 'steps' },
    (b) => {
      got = b;
    },
  );
  assert.deepEqual(stats.engines, { steps: 1 });
  const r = (got as StepBatch).readouts as Float32Array;
  return [0, 1].map((c) => Array.from({ length: T }, (_, s) => r[s * 2 + c]));
}

test("a target's IF neuron without a NIR form (θ-amplitude spikes), worked by hand: asTarget simulates only the target's neuron — starts at 0, one spike at v > θ, resets to 0 (norse, generic) — and says so; quantised and multi-spike targets refuse", async () => {
  const T = 10;
  const { snn, data } = await identityUnitNet('amplitude');
  const trains = {
    zero: [
      [0, 0, 1, 0, 0, 1, 0, 0, 1, 0],
      [0, 1, 0, 1, 0, 1, 0, 1, 0, 1],
    ],
  };
  // Quantised or multi-spike targets need the NIR form: refused, not simulated with the wrong neuron.
  for (const target of ['sinabs', 'speck', 'spinnaker2', 'loihi2'] as const)
    assert.throws(() => targetNetwork(snn, target), /NIR wants neurons with threshold 1/, target);
  for (const target of ['norse', 'generic'] as const) {
    const net = targetNetwork(snn, target);
    assert.equal(net.nir, null, `${target}: no NIR form`);
    assert.match(net.notes.join(' '), /only the target's neuron is simulated \(start 0, v > θ, its reset\)/);
    assert.equal(resetOf(target), 'zero');
    const want = trains.zero.map((train, c) => train.map((x) => x * [1, 2][c]));
    assert.deepEqual(await readoutsOf(net.snn, data, T), want, `${target}: asTarget in ONNX Runtime`);
  }
});

test("engine fused asked for by name on a graph it cannot run (a NIR target's neurons): the steps engine runs it, and that is said (library and CLI)", async (t) => {
  const { snn, data } = await identityUnitNet();
  const own = await simulate(snn, data, { T: [4], engine: 'fused', threads: 1, siteErrors: 0 });
  assert.deepEqual(own.engines, { fused: 1 });
  assert.equal(engineNotice('fused', own.engines), null);
  const norse = await simulate(asTarget(snn, 'norse'), data, { T: [4], engine: 'fused', threads: 1, siteErrors: 0 });
  assert.deepEqual(norse.engines, { steps: 1 }, 'the fused engine does not know reset-to-zero neurons');
  assert.match(
    engineNotice('fused', norse.engines) ?? '',
    /^engine fused: .*the steps engine ran 1 of 1 batch, with the same results/,
  );
  assert.equal(engineNotice('auto', norse.engines), null, 'auto chooses; nothing was asked for by name');
  assert.equal(engineNotice('steps', norse.engines), null);

  // The CLI says it in one line on stderr for the run that fell back (here the target's), and only then.
  const dir = tempDir('spikeport-nir-sem-', t);
  const file = path.join(dir, 'eye.snn.onnx');
  snn.save(file);
  fs.writeFileSync(
    path.join(dir, 'x.npz'),
    zipSync({
      'x.npy': npy([2, 2], '<f4', Float32Array.of(0.5, 1.5, 0.25, 1)),
      'y.npy': npy([2], '<i8', BigInt64Array.of(1n, 0n)),
    }),
  );
  const run = (extra: string[]) =>
    spawnSync(
      process.execPath,
      [
        cli,
        'simulate',
        file,
        '--data',
        `npz:${path.join(dir, 'x.npz')}`,
        '--T',
        '4',
        '--site-errors',
        '0',
        '-q',
        ...extra,
      ],
      { encoding: 'utf8', cwd: dir },
    );
  // Besides the engine, the CLI notes what this made-up network lacks (its source ANN is not on
  // disk, it has no normalisation): those lines are set apart, and must be only those.
  const engineLines = (stderr: string): string => {
    const lines = stderr.split('\n').filter(Boolean);
    const setup = lines.filter((l) => /^spikeport: note: (the source ANN eye\.onnx |no input normalisation: )/.test(l));
    assert.equal(setup.length, 2, stderr);
    return lines
      .filter((l) => !setup.includes(l))
      .map((l) => `${l}\n`)
      .join('');
  };
  const plain = run(['--engine', 'fused']);
  assert.equal(plain.status, 0, plain.stderr);
  assert.equal(engineLines(plain.stderr), '');
  const target = run(['--engine', 'fused', '--as-target', 'norse']);
  assert.equal(target.status, 0, target.stderr);
  assert.match(
    engineLines(target.stderr),
    /^spikeport: note \(the run as norse computes it\): --engine fused: the fused engine cannot run .*the steps engine ran 1 of 1 batch, with the same results\n$/,
  );
});
