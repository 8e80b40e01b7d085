/**
 * NIR export: the file read back (h5wasm) and simulated in plain TypeScript reproduces what
 * `asTarget` makes ONNX Runtime compute, for every target profile; h5py reads the file the way
 * NIR's Python reader walks it; bad input is refused in one line with nothing written.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { convert } from '../src/api/convert.js';
import { PROFILES, TARGETS, asTarget, exportNir, readNir, simulateNir } from '../src/api/nir.js';
import type { Snn } from '../src/snn/network.js';
import { Session, type Array32 } from '../src/ort/session.js';
import { readBatch, type Dataset } from '../src/data/dataset.js';
import { openDataset } from '../src/data/sources.js';
import { spikesOutput } from '../src/snn/format.js';
import { memDataset, uniform } from './helpers.js';
import { ZOO } from './zoo.js';
import { tempDir, type Owner } from './temp.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const cli = path.join(root, 'dist/src/cli/main.js');
const clean = (base: string): string => base.replace(/[/\\.\s]+/g, '_').replace(/^_+/, '');

async function ortSteps(snn: Snn, x: Array32, T: number): Promise<{ readouts: Float32Array[]; counts: number[][] }> {
  const s = await Session.create(snn.graph, { threads: 1 });
  const n = x.dims[0];
  const feeds: Record<string, Array32> = { [snn.spec.input]: x };
  for (const st of snn.spec.states)
    feeds[st.input] = { dims: [n, ...st.shape], data: new Float32Array(n * st.shape.reduce((a, b) => a * b, 1)) };
  const readouts: Float32Array[] = [];
  const counts: number[][] = [];
  try {
    for (let t = 0; t < T; t++) {
      const out = await s.run(feeds);
      for (const st of snn.spec.states) feeds[st.input] = out[st.output];
      readouts.push(Float32Array.from(out[snn.spec.readout].data));
      counts.push(snn.spec.sites.map((_, k) => Math.round(out[spikesOutput(k)].data[0])));
    }
  } finally {
    await s.release();
  }
  return { readouts, counts };
}

async function roundTrip(
  t: Owner & { diagnostic: (s: string) => void },
  name: string,
  snn: Snn,
  data: Dataset,
  n: number,
  T: number,
): Promise<void> {
  const dir = tempDir('spikeport-nir-test-', t);
  const batch = await readBatch(
    data,
    Array.from({ length: n }, (_, i) => i),
    snn.meta.normalize,
  );
  const x: Array32 = { dims: [n, ...snn.spec.inputShape], data: batch.x };
  for (const target of TARGETS) {
    const file = path.join(dir, `${target}.nir`);
    await exportNir(snn, file, target);
    const g = await readNir(file);
    assert.equal(g.metadata['spikeport.target'], target);
    const nir = simulateNir(g, x.data, n, T, PROFILES[target]);
    const onTarget = asTarget(snn, target);
    const ort = await ortSteps(onTarget, x, T);
    let maxDiff = 0;
    let scale = 0;
    for (let s = 0; s < T; s++) {
      onTarget.spec.sites.forEach((site, k) => {
        assert.equal(
          nir.spikes.get(site.node)?.[s],
          ort.counts[s][k],
          `${target}: step ${s + 1}, IF node ${site.node}: spike count`,
        );
      });
      snn.spec.sites.forEach((site) => assert.ok(nir.spikes.has(clean(site.node)), `site ${site.node} is an IF node`));
      for (let j = 0; j < ort.readouts[s].length; j++) {
        maxDiff = Math.max(maxDiff, Math.abs(nir.outputs[s][j] - ort.readouts[s][j]));
        scale = Math.max(scale, Math.abs(ort.readouts[s][j]));
      }
    }
    const spikes = ort.counts.reduce((a, c) => a + c.reduce((x, y) => x + y, 0), 0);
    t.diagnostic(
      `${name} ${target}: ${spikes} spikes over ${T} steps equal in both; max |Δ readout| ${maxDiff.toExponential(2)} (readout up to ${scale.toFixed(2)})`,
    );
    assert.ok(spikes > 0, 'the network spikes');
    // Integer weights (speck, spinnaker2, loihi2) make readouts of hundreds: the tolerance is relative.
    assert.ok(maxDiff <= 1e-5 * Math.max(1, scale), `max |Δ readout| ${maxDiff}`);
  }
}

test('NIR round trip, zoo mobilenetv2 (ReLU6, depthwise conv, residual Add, global pooling): TypeScript simulation of the file = asTarget in ONNX Runtime, every target', async (t) => {
  const data = memDataset(uniform(31, 16 * 3 * 16 * 16), [3, 16, 16]);
  // Channel-wise max norm keeps each neuron's current within its threshold: a profile that fires several spikes per
  // step (sinabs, speck) stays in range, where a short CLTB run's low thresholds would let the counts run away.
  const snn = await convert({ path: 'mobilenet.onnx', sha256: '0'.repeat(64), graph: ZOO.mobilenetv2.graph() }, data, {
    method: 'cmaxnorm',
    iterations: 2,
    batchSize: 16,
    threads: 1,
    spikes: 'unit',
  });
  await roundTrip(t, 'mobilenetv2', snn, data, 4, 12);
});

const fashion = fs.existsSync('/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz');
test(
  'NIR round trip, bundled fashion-mobilenet, every target',
  { skip: fashion ? false : 'dataset-fashion-mnist is not installed' },
  async (t) => {
    const snn = await convert(
      path.join(root, 'models/fashion-mobilenet.onnx'),
      openDataset('fashion-mnist:train', 128),
      { method: 'cmaxnorm', iterations: 2, batchSize: 64, threads: 1, spikes: 'unit' },
    );
    await roundTrip(t, 'fashion-mobilenet', snn, openDataset('fashion-mnist:test', 4), 2, 8);
  },
);

const avgModel = path.join(root, 'models/fashion-vgg-avg.onnx');
test(
  'NIR round trip, bundled fashion-vgg-avg (average pooling, BN folded, dense layers), every target',
  {
    skip: !fashion
      ? 'dataset-fashion-mnist is not installed'
      : !fs.existsSync(avgModel) && 'models/fashion-vgg-avg.onnx is not built (tools/train.py fashion-vgg-avg)',
  },
  async (t) => {
    const snn = await convert(avgModel, openDataset('fashion-mnist:train', 128), {
      method: 'cmaxnorm',
      iterations: 2,
      batchSize: 64,
      threads: 1,
      spikes: 'unit',
    });
    await roundTrip(t, 'fashion-vgg-avg', snn, openDataset('fashion-mnist:test', 4), 2, 8);
  },
);

const python = '/usr/bin/python3';
const h5py = fs.existsSync(python) && spawnSync(python, ['-c', 'import h5py'], { encoding: 'utf8' }).status === 0;
test(
  "NIR file read with h5py the way NIR's reader walks it",
  { skip: h5py ? false : 'python3-h5py is not installed' },
  async (t) => {
    const dir = tempDir('spikeport-nir-test-', t);
    const data = memDataset(uniform(31, 8 * 3 * 16 * 16), [3, 16, 16]);
    const snn = await convert(
      { path: 'mobilenet.onnx', sha256: '0'.repeat(64), graph: ZOO.mobilenetv2.graph() },
      data,
      { iterations: 1, batchSize: 8, threads: 1, spikes: 'unit' },
    );
    const file = path.join(dir, 'net.nir');
    const g = await exportNir(snn, file, 'sinabs');
    // What nir.read does: version string, /node/type, edges as byte-string pairs, each node's
    // type and fields (arrays float32 gzip, integers int64), metadata strings; no attributes.
    const script = `
import h5py, json, sys
f = h5py.File(sys.argv[1], 'r')
out = {'version': f['version'][()].decode('utf8'), 'type': f['node']['type'][()].decode('utf8'),
     'edges': [[a.decode('utf8'), b.decode('utf8')] for a, b in f['node']['edges'][()]], 'nodes': {}, 'attrs': 0}
def attrs(g):
  n = len(g.attrs)
  for v in g.values():
      n += attrs(v) if isinstance(v, h5py.Group) else len(v.attrs)
  return n
out['attrs'] = attrs(f)
for name, node in f['node']['nodes'].items():
  d = {'type': node['type'][()].decode('utf8')}
  for k, v in node.items():
      if k == 'type': continue
      d[k] = [str(v.dtype), list(v.shape), v.compression]
  out['nodes'][name] = d
out['metadata'] = {k: v[()].decode('utf8') for k, v in f['node']['metadata'].items()}
print(json.dumps(out))
`;
    const r = spawnSync(python, ['-c', script, file], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const py = JSON.parse(r.stdout) as {
      version: string;
      type: string;
      edges: string[][];
      attrs: number;
      nodes: Record<string, Record<string, unknown>>;
      metadata: Record<string, string>;
    };
    assert.equal(py.type, 'NIRGraph');
    assert.match(py.version, /^\d+\.\d+\.\d+$/);
    assert.equal(py.attrs, 0);
    assert.deepEqual(
      py.edges,
      g.edges.map((e) => [...e]),
    );
    assert.deepEqual(Object.keys(py.nodes).sort(), [...g.nodes.keys()].sort());
    for (const [name, n] of g.nodes) assert.equal(py.nodes[name].type, n.type);
    const convs = Object.values(py.nodes).filter((n) => n.type === 'Conv2d');
    assert.ok(convs.length > 0);
    for (const c of convs) {
      assert.deepEqual(c.weight, ['float32', (c.weight as unknown[])[1], 'gzip']);
      assert.equal((c.groups as unknown[])[0], 'int64');
      assert.deepEqual((c.stride as unknown[]).slice(0, 2), ['int64', [2]]);
    }
    const ifs = Object.values(py.nodes).filter((n) => n.type === 'IF');
    assert.equal(ifs.length, snn.spec.sites.length);
    for (const n of ifs)
      for (const k of ['r', 'v_threshold', 'v_reset']) assert.equal((n[k] as unknown[])[0], 'float32');
    assert.equal(py.metadata['spikeport.target'], 'sinabs');
  },
);

test('export nir, bad input: per-step max pooling, not a spikeport SNN, θ-amplitude form, unknown target: one line, exit 1, nothing written', async (t) => {
  const dir = tempDir('spikeport-nir-test-', t);
  const run = (...args: string[]): { status: number | null; stderr: string } =>
    spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
  const oneLine = (r: { status: number | null; stderr: string }, re: RegExp): void => {
    assert.equal(r.status, 1, r.stderr);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, re);
  };
  const vggData = memDataset(uniform(3, 8 * 256), [1, 16, 16]);
  const vgg = await convert({ path: 'vgg.onnx', sha256: '0'.repeat(64), graph: ZOO.vgg.graph() }, vggData, {
    iterations: 1,
    batchSize: 8,
    threads: 1,
    spikes: 'unit',
  });
  const vggFile = path.join(dir, 'vgg.snn.onnx');
  vgg.save(vggFile);
  const out = path.join(dir, 'out.nir');
  const perStep = await convert({ path: 'vgg.onnx', sha256: '0'.repeat(64), graph: ZOO.vgg.graph() }, vggData, {
    iterations: 1,
    batchSize: 8,
    threads: 1,
    spikes: 'unit',
    maxpool: 'per-step',
  });
  const perStepFile = path.join(dir, 'vgg-per-step.snn.onnx');
  perStep.save(perStepFile);
  oneLine(
    run('export', 'nir', perStepFile, '--out', out),
    /cannot export node ".*" \(MaxPool\) to NIR: max pooling of each step's current has no NIR form/,
  );
  oneLine(
    run('export', 'nir', path.join(root, 'models/mnist-cnn.onnx'), '--out', out),
    /not a spiking network made by spikeport convert/,
  );
  const amp = await convert(
    { path: 'm.onnx', sha256: '0'.repeat(64), graph: ZOO.mobilenetv2.graph() },
    memDataset(uniform(3, 8 * 768), [3, 16, 16]),
    { iterations: 1, batchSize: 8, threads: 1 },
  );
  const ampFile = path.join(dir, 'amp.snn.onnx');
  amp.save(ampFile);
  oneLine(run('export', 'nir', ampFile, '--out', out), /--spikes unit/);
  oneLine(run('export', 'nir', vggFile, '--out', out, '--target', 'loihi'), /loihi/);
  oneLine(run('export', 'nir', vggFile, '--out', vggFile), /--out/);
  assert.ok(!fs.existsSync(out), 'nothing written');
  assert.deepEqual(fs.readdirSync(dir).sort(), ['amp.snn.onnx', 'vgg-per-step.snn.onnx', 'vgg.snn.onnx']);
  await assert.rejects(exportNir(vgg, out, 'loihi'), /unknown target "loihi"/);
  assert.ok(!fs.existsSync(out));
});

test("simulate --as-target: the JSON holds the target's results next to spikeport's, equal to the library's asTarget run; an unknown profile is one line", async (t) => {
  const dir = tempDir('spikeport-nir-test-', t);
  const snn = await convert(path.join(root, 'models/mnist-cnn.onnx'), openDataset('mnist:train', 200), {
    iterations: 2,
    batchSize: 100,
    threads: 1,
    spikes: 'unit',
  });
  const file = path.join(dir, 'cnn.snn.onnx');
  snn.save(file);
  const json = path.join(dir, 'run.json');
  const r = spawnSync(
    process.execPath,
    [
      cli,
      'simulate',
      file,
      '--data',
      'mnist:test',
      '--limit',
      '100',
      '--T',
      '4,16',
      '--as-target',
      'norse',
      '--site-errors',
      '0',
      '--threads',
      '1',
      '--json',
      json,
      '-q',
    ],
    { encoding: 'utf8' },
  );
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /as norse computes it/);
  const rec = JSON.parse(fs.readFileSync(json, 'utf8')) as {
    results: { T: number; metric: number }[];
    asTarget: { target: string; reset: string; results: { T: number; metric: number }[] };
  };
  assert.equal(rec.asTarget.target, 'norse');
  assert.equal(rec.asTarget.reset, 'zero');
  const { simulate } = await import('../src/api/simulate.js');
  const lib = await simulate(asTarget(snn, 'norse'), openDataset('mnist:test', 100), {
    T: [4, 16],
    threads: 1,
    references: false,
  });
  assert.deepEqual(
    rec.asTarget.results.map((x) => x.metric),
    lib.results.map((x) => x.metric),
  );
  assert.deepEqual(
    rec.results.map((x) => x.T),
    [4, 16],
  );
  const bad = spawnSync(process.execPath, [cli, 'simulate', file, '--data', 'mnist:test', '--as-target', 'loihi'], {
    encoding: 'utf8',
  });
  assert.equal(bad.status, 1);
  assert.equal(bad.stderr.trim().split('\n').length, 1, bad.stderr);
  assert.match(bad.stderr, /loihi/);
});
