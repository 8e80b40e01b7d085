/**
 * NIR in: a file written by `export nir` reads back to the same spikes as the network it came
 * from; a file written by hand with h5py, laid out as NIR's own writer does, is read and
 * simulated as a hand computation says; hostile files (an unknown primitive, shapes that do
 * not fit, a cycle without a delay, a dataset claiming 10¹⁰ values) end in one line, exit 1.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { convert } from '../src/api/convert.js';
import { PROFILES, exportNir, loadNir, readNir, simulateNir, targetNetwork } from '../src/api/nir.js';
import { Session, type Array32 } from '../src/ort/session.js';
import { numel } from '../src/graph/ir.js';
import { spikesOutput } from '../src/snn/format.js';
import type { Snn } from '../src/snn/network.js';
import { memDataset, uniform } from './helpers.js';
import { rng } from '../src/data/dataset.js';
import { SpikeportError } from '../src/errors.js';
import { ZOO } from './zoo.js';
import { tempDir } from './temp.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const cli = path.join(root, 'dist/src/cli/main.js');
const python = '/usr/bin/python3';
const h5py = fs.existsSync(python) && spawnSync(python, ['-c', 'import h5py'], { encoding: 'utf8' }).status === 0;

async function steps(snn: Snn, x: Array32, T: number): Promise<{ counts: number[][]; readouts: Float32Array[] }> {
  const s = await Session.create(snn.graph, { threads: 1 });
  const n = x.dims[0];
  const feeds: Record<string, Array32> = { [snn.spec.input]: x };
  for (const st of snn.spec.states)
    feeds[st.input] = { dims: [n, ...st.shape], data: new Float32Array(n * numel(st.shape)) };
  const counts: number[][] = [];
  const readouts: Float32Array[] = [];
  try {
    for (let t = 0; t < T; t++) {
      const out = await s.run(feeds);
      for (const st of snn.spec.states) feeds[st.input] = out[st.output];
      counts.push(snn.spec.sites.map((_, k) => Math.round(out[spikesOutput(k)].data[0])));
      readouts.push(Float32Array.from(out[snn.spec.readout].data));
    }
  } finally {
    await s.release();
  }
  return { counts, readouts };
}

test('export → import: the NIR file read back gives the spikes and readouts of the network it was written from (max pooling, a θ/2 clock, every profile)', async (t) => {
  const dir = tempDir('spikeport-nir-import-', t);
  const data = memDataset(uniform(3, 16 * 256), [1, 16, 16]);
  const snn = await convert({ path: 'vgg.onnx', sha256: '0'.repeat(64), graph: ZOO.vgg.graph() }, data, {
    method: 'cmaxnorm',
    iterations: 2,
    batchSize: 16,
    threads: 1,
    target: 'spinnaker2',
  });
  const x: Array32 = { dims: [4, 1, 16, 16], data: uniform(4, 4 * 256) };
  const T = 12;
  for (const target of ['sinabs', 'spinnaker2', 'loihi2', 'norse'] as const) {
    const file = path.join(dir, `${target}.nir`);
    await exportNir(snn, file, target);
    const live = targetNetwork(snn, target);
    const back = await loadNir(file, target);
    // The file lists nodes by name (HDF5 groups), so the IF nodes may come in another valid order: compare by name.
    assert.deepEqual(back.snn.spec.sites.map((s) => s.node).sort(), live.snn.spec.sites.map((s) => s.node).sort());
    const a = await steps(live.snn, x, T);
    const b = await steps(back.snn, x, T);
    const byName = (snn: Snn, counts: number[][]): Record<string, number>[] =>
      counts.map((c) => Object.fromEntries(snn.spec.sites.map((site, k) => [site.node, c[k]])));
    assert.deepEqual(
      byName(back.snn, b.counts),
      byName(live.snn, a.counts),
      `${target}: spike counts per IF node and step`,
    );
    for (let s = 0; s < T; s++)
      assert.deepEqual(Array.from(b.readouts[s]), Array.from(a.readouts[s]), `${target}: readout at step ${s + 1}`);
    // An independent simulation (plain TypeScript) of the file read back agrees spike for spike.
    const ts = simulateNir(await readNir(file), x.data, 4, T, PROFILES[target]);
    for (let s = 0; s < T; s++)
      back.snn.spec.sites.forEach((site, k) =>
        assert.equal(ts.spikes.get(site.node)?.[s], b.counts[s][k], `${target}: ${site.node} at step ${s + 1}`),
      );
    const spikes = a.counts.flat().reduce((p, c) => p + c, 0);
    t.diagnostic(
      `${target}: ${back.snn.spec.sites.length} IF nodes, ${spikes} spikes in ${T} steps, equal after the round trip`,
    );
    assert.ok(spikes > 0);
    assert.equal(back.snn.meta.delay.estimated, snn.meta.delay.estimated, 'the delay travels in the metadata');
  }
});

test(
  "a NIR file written by hand with h5py as NIR's writer lays it out is read and simulated as computed by hand",
  { skip: h5py ? false : 'python3-h5py is not installed' },
  async (t) => {
    const dir = tempDir('spikeport-nir-import-', t);
    const file = path.join(dir, 'hand.nir');
    // NIR's writer: string datasets for names, int64 arrays for shapes, float32 arrays gzip-compressed;
    // this IF has no v_reset (older writers leave it out; the reader takes zeros).
    const script = `
import h5py, numpy as np, sys
with h5py.File(sys.argv[1], 'w') as f:
    f.create_dataset('version', data='1.0.0', dtype=h5py.string_dtype())
    g = f.create_group('node')
    g.create_dataset('type', data='NIRGraph', dtype=h5py.string_dtype())
    g.create_dataset('edges', data=np.array([['input', 'fc'], ['fc', 'lif'], ['lif', 'out']], dtype=object), dtype=h5py.string_dtype())
    n = g.create_group('nodes')
    i = n.create_group('input'); i.create_dataset('type', data='Input', dtype=h5py.string_dtype()); i.create_dataset('shape', data=np.array([3], dtype=np.int64))
    a = n.create_group('fc'); a.create_dataset('type', data='Affine', dtype=h5py.string_dtype())
    a.create_dataset('weight', data=np.array([[0.5, -0.25, 1.0], [0.2, 0.4, 0.1]], dtype=np.float32), compression='gzip')
    a.create_dataset('bias', data=np.array([0.1, 0.05], dtype=np.float32), compression='gzip')
    l = n.create_group('lif'); l.create_dataset('type', data='IF', dtype=h5py.string_dtype())
    l.create_dataset('r', data=np.array([1.0, 2.0], dtype=np.float32), compression='gzip')
    l.create_dataset('v_threshold', data=np.array([1.0, 0.5], dtype=np.float32), compression='gzip')
    o = n.create_group('out'); o.create_dataset('type', data='Output', dtype=h5py.string_dtype()); o.create_dataset('shape', data=np.array([2], dtype=np.int64))
`;
    const r = spawnSync(python, ['-c', script, file], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const { snn } = await loadNir(file, 'generic');
    const x = Float32Array.of(1, 0.5, 0.2, 0, 1, 1);
    const T = 10;
    const run = await steps(snn, { dims: [2, 3], data: x }, T);
    // By hand: I = Wx + b, v ← v + r·I, spike where v > θ, v ← 0 (generic: NIR's own reset).
    const W = [
      [0.5, -0.25, 1.0],
      [0.2, 0.4, 0.1],
    ];
    const b = [0.1, 0.05];
    const rr = [1, 2];
    const th = [1, 0.5];
    const v = [0, 0, 0, 0];
    for (let s = 0; s < T; s++) {
      const out: number[] = [];
      for (let n = 0; n < 2; n++)
        for (let o = 0; o < 2; o++) {
          const I = Math.fround(b[o] + W[o].reduce((acc, w, j) => acc + w * x[n * 3 + j], 0));
          const j = n * 2 + o;
          v[j] = Math.fround(v[j] + rr[o] * I);
          const spike = v[j] > th[o] ? 1 : 0;
          if (spike) v[j] = 0;
          out.push(spike);
        }
      assert.deepEqual(Array.from(run.readouts[s]), out, `step ${s + 1}`);
    }
    assert.ok(
      run.readouts.some((o) => o.some((v) => v === 1)),
      'it spikes',
    );
    // The CLI reads it too (no data set spikeport knows fits a 3-value input: a small npz).
    const npz = path.join(dir, 'x.npz');
    const mk = spawnSync(
      python,
      [
        '-c',
        `import numpy as np, sys; np.savez(sys.argv[1], x=np.ones((4, 3), np.float32), y=np.zeros(4, np.int64))`,
        npz,
      ],
      { encoding: 'utf8' },
    );
    assert.equal(mk.status, 0, mk.stderr);
    const c = spawnSync(process.execPath, [cli, 'simulate', file, '--data', `npz:${npz}`, '--T', '4', '-q'], {
      encoding: 'utf8',
    });
    assert.equal(c.status, 0, c.stderr);
    assert.match(c.stdout, /NIR graph, 1 IF node, simulated as generic computes it/);
  },
);

test(
  'hostile NIR files: an unknown primitive, shapes that do not fit, a cycle without a delay, a LIF, a dataset claiming 10¹⁰ values or 1 GB of strings, 2 million edges: one line, exit 1',
  { skip: h5py ? false : 'python3-h5py is not installed' },
  (t) => {
    const dir = tempDir('spikeport-nir-import-', t);
    const script = `
import h5py, numpy as np, sys
def graph(path, nodes, edges, extra=None):
    with h5py.File(path, 'w') as f:
        f.create_dataset('version', data='1.0.0', dtype=h5py.string_dtype())
        g = f.create_group('node')
        g.create_dataset('type', data='NIRGraph', dtype=h5py.string_dtype())
        g.create_dataset('edges', data=np.array(edges, dtype=object), dtype=h5py.string_dtype())
        n = g.create_group('nodes')
        for name, fields in nodes.items():
            h = n.create_group(name)
            for k, v in fields.items():
                if isinstance(v, str): h.create_dataset(k, data=v, dtype=h5py.string_dtype())
                else: h.create_dataset(k, data=v)
        if extra: extra(n)
one = lambda k: np.ones(k, np.float32)
inp = {'type': 'Input', 'shape': np.array([3], np.int64)}
out = {'type': 'Output', 'shape': np.array([2], np.int64)}
fc = {'type': 'Affine', 'weight': np.ones((2, 3), np.float32), 'bias': np.zeros(2, np.float32)}
iff = {'type': 'IF', 'r': one(2), 'v_threshold': one(2), 'v_reset': np.zeros(2, np.float32)}
d = sys.argv[1]
graph(d + '/unknown.nir', {'input': inp, 'fc': fc, 'x': {'type': 'Spiral', 'turns': one(2)}, 'out': out}, [['input', 'fc'], ['fc', 'x'], ['x', 'out']])
graph(d + '/shapes.nir', {'input': {'type': 'Input', 'shape': np.array([4], np.int64)}, 'fc': fc, 'if': iff, 'out': out}, [['input', 'fc'], ['fc', 'if'], ['if', 'out']])
graph(d + '/cycle.nir', {'input': inp, 'fc': fc, 'if': iff, 'fc2': {'type': 'Affine', 'weight': np.ones((2, 2), np.float32), 'bias': np.zeros(2, np.float32)}, 'out': out},
      [['input', 'fc'], ['fc', 'if'], ['if', 'fc2'], ['fc2', 'if'], ['if', 'out']])
graph(d + '/lif.nir', {'input': inp, 'fc': fc, 'lif': {'type': 'LIF', 'tau': one(2), 'r': one(2), 'v_leak': np.zeros(2, np.float32), 'v_threshold': one(2)}, 'out': out}, [['input', 'fc'], ['fc', 'lif'], ['lif', 'out']])
def huge(n):
    h = n['fc']
    del h['weight']
    h.create_dataset('weight', shape=(100000, 100000), dtype='f4', chunks=(1, 1000))
graph(d + '/huge.nir', {'input': inp, 'fc': fc, 'out': out}, [['input', 'fc'], ['fc', 'out']], huge)
def wide(n):
    g = n.parent
    del g['edges']
    g.create_dataset('edges', shape=(10, 2), dtype='S100000000', chunks=(1, 2), compression='gzip')
graph(d + '/wide.nir', {'input': inp, 'fc': fc, 'out': out}, [['input', 'fc'], ['fc', 'out']], wide)
def edges(n):
    g = n.parent
    del g['edges']
    g.create_dataset('edges', shape=(2000000, 2), dtype=h5py.string_dtype(), chunks=(1000, 2), compression='gzip')
graph(d + '/edges.nir', {'input': inp, 'fc': fc, 'out': out}, [['input', 'fc'], ['fc', 'out']], edges)
np.savez(d + '/x.npz', x=np.ones((4, 3), np.float32))
`;
    const r = spawnSync(python, ['-c', script, dir], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    for (const f of ['huge.nir', 'wide.nir', 'edges.nir'])
      assert.ok(fs.statSync(path.join(dir, f)).size < 1 << 20, `${f}: the big dataset is a claim, not bytes`);
    const cases: [string, RegExp][] = [
      ['unknown.nir', /node "x" has type "Spiral", a primitive spikeport does not know/],
      ['shapes.nir', /node "fc" \(Affine\): weight takes 3 inputs, its input is \[4\]/],
      ['cycle.nir', /cycle through "(if|fc2)" without a delay/],
      ['lif.nir', /node "lif" is a LIF \(a leaky neuron: NIR gives its time constant, not the step/],
      ['huge.nir', /node "fc": "weight" holds 10000000000 values/],
      // Few names, but each of 100 MB (a fixed-length string): the bytes are bounded too.
      ['wide.nir', /\/node: "edges" holds 2000000000 bytes \(at most 536870912\)/],
      // Two million edges are refused from the dataset's shape, before any name is read.
      ['edges.nir', /more than 1000000 edges/],
    ];
    for (const [name, re] of cases) {
      const c = spawnSync(
        process.execPath,
        [cli, 'simulate', path.join(dir, name), '--data', `npz:${path.join(dir, 'x.npz')}`, '--T', '4', '-q'],
        {
          encoding: 'utf8',
        },
      );
      assert.equal(c.status, 1, `${name}: ${c.stderr}`);
      assert.equal(c.stderr.trim().split('\n').length, 1, `${name}: ${c.stderr}`);
      assert.match(c.stderr, re, name);
      assert.doesNotMatch(c.stderr, /\n\s+at /, 'no stack trace');
    }
  },
);

test('damaged NIR files (an exported file with bytes changed, seeded): each is read or refused as a SpikeportError, and on the CLI in one line', async (t) => {
  const dir = tempDir('spikeport-nir-import-', t);
  const data = memDataset(uniform(3, 8 * 256), [1, 16, 16]);
  const snn = await convert({ path: 'vgg.onnx', sha256: '0'.repeat(64), graph: ZOO.vgg.graph() }, data, {
    method: 'cmaxnorm',
    iterations: 1,
    batchSize: 8,
    threads: 1,
    spikes: 'unit',
  });
  const good = path.join(dir, 'good.nir');
  await exportNir(snn, good, 'sinabs');
  const bytes = fs.readFileSync(good);
  const r = rng(17);
  let refused = 0;
  const files: string[] = [];
  for (let i = 0; i < 120; i++) {
    const b = Buffer.from(bytes);
    const k = 1 + Math.floor(r() * 8);
    for (let j = 0; j < k; j++) b[Math.floor(r() * b.length)] = Math.floor(r() * 256);
    const file = path.join(dir, `bad${i}.nir`);
    fs.writeFileSync(file, b);
    try {
      await loadNir(file, 'sinabs');
    } catch (e) {
      assert.ok(e instanceof SpikeportError, `bad${i}.nir: ${String(e)}`);
      refused++;
      if (files.length < 4) files.push(file);
    }
  }
  t.diagnostic(`${refused} of 120 damaged files refused, the rest read`);
  assert.ok(refused > 60);
  for (const file of files) {
    const c = spawnSync(
      process.execPath,
      [cli, 'simulate', file, '--data', 'mnist:test', '--limit', '2', '--T', '2', '-q'],
      {
        encoding: 'utf8',
      },
    );
    assert.equal(c.status, 1, c.stderr);
    assert.equal(c.stderr.trim().split('\n').length, 1, `${path.basename(file)}: ${c.stderr}`);
  }
});
