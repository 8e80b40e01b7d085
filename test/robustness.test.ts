/**
 * Bad and hostile input, class by class: outputs never overwrite inputs, nothing is read outside
 * what the user named, nothing half-written survives a failure, one option cannot start
 * unbounded work, bad files give one line (never a stack trace), and nothing silently wrong.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import pkg from 'onnx-proto';
import { zipSync } from 'fflate';
import { encodeModel, decodeModel } from '../src/onnx/codec.js';
import { floatTensor } from '../src/graph/ir.js';
import { SpikeportError, convert, openDataset, simulate, type Dataset, type ThresholdMethod } from '../src/index.js';
import { writeFilesAtomic } from '../src/files.js';
import { buildGraph, conv, gemm, npy, randn, uniform } from './helpers.js';
import { tempDir } from './temp.js';

const { onnx } = pkg;
const CLI = path.join(process.cwd(), 'dist', 'src', 'cli', 'main.js');
const MNIST = path.join(process.cwd(), 'models', 'mnist-cnn.onnx');
const tmp = tempDir('spikeport-robust-');
const train = openDataset('mnist:train', 300);

function run(args: string[]): { code: number | null; stderr: string; stdout: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', cwd: tmp });
  return { code: r.status, stderr: r.stderr, stdout: r.stdout };
}

/** One line naming the problem, exit 1, no stack trace, no temp file; `unchanged` files keep their bytes. */
function refused(args: string[], pattern: RegExp, unchanged: string[] = [], absent: string[] = []): void {
  const before = unchanged.map((f) => fs.readFileSync(path.join(tmp, f)));
  const r = run(args);
  assert.equal(r.code, 1, `exit code of ${args.join(' ')}: ${r.stderr}`);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line, got:\n${r.stderr}`);
  assert.match(lines[0], pattern);
  assert.doesNotMatch(r.stderr, /\n\s+at |internal error/);
  unchanged.forEach((f, i) => assert.ok(fs.readFileSync(path.join(tmp, f)).equals(before[i]), `${f} unchanged`));
  for (const f of absent) assert.equal(fs.existsSync(path.join(tmp, f)), false, `${f} not written`);
  assert.deepEqual(
    fs.readdirSync(tmp).filter((f) => f.endsWith('.tmp')),
    [],
    'no temp file left',
  );
}

function ok(args: string[]): string {
  const r = run(args);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}

fs.copyFileSync(MNIST, path.join(tmp, 'a.onnx'));

test('1. an output never overwrites an input or another output, links resolved', () => {
  ok(['convert', 'a.onnx', '--data', 'mnist:train', '--out', 'a.snn.onnx', '--iterations', '2', '-q']);
  fs.symlinkSync('a.onnx', path.join(tmp, 'link.onnx'));
  fs.linkSync(path.join(tmp, 'a.onnx'), path.join(tmp, 'hard.onnx'));
  fs.writeFileSync(path.join(tmp, 'r.json'), '{}');
  refused(
    ['convert', 'a.onnx', '--data', 'mnist:train', '--out', 'a.onnx', '-q'],
    /--out a\.onnx would overwrite MODEL a\.onnx/,
    ['a.onnx'],
  );
  refused(
    ['convert', 'a.onnx', '--data', 'mnist:train', '--out', 'link.onnx', '-q'],
    /--out link\.onnx would overwrite MODEL a\.onnx/,
    ['a.onnx'],
  );
  refused(
    ['convert', 'a.onnx', '--data', 'mnist:train', '--out', 'hard.onnx', '-q'],
    /--out hard\.onnx would overwrite MODEL a\.onnx/,
    ['a.onnx'],
  );
  refused(
    ['convert', 'a.onnx', '--data', 'mnist:train', '--out', 'o.onnx', '--json', 'o.onnx', '-q'],
    /--json o\.onnx is also --out o\.onnx/,
    [],
    ['o.onnx'],
  );
  refused(
    ['simulate', 'a.snn.onnx', '--data', 'mnist:test', '--json', 'a.snn.onnx', '-q'],
    /--json a\.snn\.onnx would overwrite MODEL/,
    ['a.snn.onnx'],
  );
  // The ANN found next to the SNN is an input too.
  refused(
    ['simulate', 'a.snn.onnx', '--data', 'mnist:test', '--json', 'a.onnx', '-q'],
    /--json a\.onnx would overwrite the source ANN/,
    ['a.onnx'],
  );
  refused(
    ['simulate', 'a.onnx', '--data', 'mnist:test', '--save', 'a.onnx', '-q'],
    /--save a\.onnx would overwrite MODEL/,
    ['a.onnx'],
  );
  refused(
    ['simulate', 'a.onnx', '--data', 'mnist:test', '--report', 'x.html', '--markdown', 'x.html', '-q'],
    /--markdown x\.html is also --report x\.html/,
    [],
    ['x.html'],
  );
  refused(['report', 'r.json', '--out', 'r.json'], /--report r\.json would overwrite RECORD r\.json/, ['r.json']);
  const npz = zipSync({
    'x.npy': npy([4, 1, 28, 28], '<f4', uniform(1, 4 * 784)),
    'y.npy': npy([4], '<i8', BigInt64Array.of(1n, 2n, 3n, 4n)),
  });
  fs.writeFileSync(path.join(tmp, 'd.npz'), npz);
  refused(
    ['simulate', 'a.onnx', '--data', 'npz:d.npz', '--calib', 'mnist:train', '--json', 'd.npz', '-q'],
    /--json d\.npz would overwrite --data d\.npz/,
    ['d.npz'],
  );
  refused(
    ['convert', 'a.onnx', '--data', 'mnist:train', '--out', 'nofolder/o.onnx', '-q'],
    /--out nofolder\/o\.onnx: folder .* does not exist/,
  );
});

test('1. the library refuses to save a network over its source ANN', async () => {
  const snn = await convert(path.join(tmp, 'a.onnx'), train, { iterations: 1, threads: 1 });
  const before = fs.readFileSync(path.join(tmp, 'a.onnx'));
  assert.throws(
    () => snn.save(path.join(tmp, 'link.onnx')),
    (e: unknown) => e instanceof SpikeportError && e.code === 'io' && /converted from/.test(e.message),
  );
  assert.ok(fs.readFileSync(path.join(tmp, 'a.onnx')).equals(before));
});

/** A model whose If node's branch holds an initializer stored outside the file. */
function externalInSubgraph(location: string): Uint8Array {
  const g = buildGraph([1, 8, 8], (b, x) =>
    gemm(b, b.op('Flatten', [b.op('Relu', [conv(b, x, 1, 2, 3)])], { axis: 1 }), 128, 4),
  );
  const model = onnx.ModelProto.decode(encodeModel(g));
  const branch = (name: string): pkg.onnx.IGraphProto => ({
    name,
    node: [{ opType: 'Identity', input: [`${name}_w`], output: [`${name}_out`] }],
    initializer: [
      {
        name: `${name}_w`,
        dataType: 1,
        dims: [1],
        dataLocation: 1,
        externalData: [
          { key: 'location', value: location },
          { key: 'length', value: '4' },
        ],
      },
    ],
    output: [{ name: `${name}_out`, type: { tensorType: { elemType: 1, shape: { dim: [{ dimValue: 1 }] } } } }],
  });
  const graph = model.graph as pkg.onnx.GraphProto;
  graph.initializer.push({ name: 'cond', dataType: 9, dims: [], rawData: Uint8Array.of(1) });
  graph.node.push({
    opType: 'If',
    name: 'branchy',
    input: ['cond'],
    output: ['picked'],
    attribute: [
      { name: 'then_branch', type: 5, g: branch('then') },
      { name: 'else_branch', type: 5, g: branch('else') },
    ],
  });
  graph.output.push({ name: 'picked', type: { tensorType: { elemType: 1, shape: { dim: [{ dimValue: 1 }] } } } });
  return onnx.ModelProto.encode(model).finish();
}

test('2. external data is refused everywhere, subgraphs included, before anything reads it; metadata paths stay in the folder', async () => {
  // A FIFO as the "external" file: opening it to read would block, so an open would hang the test.
  const canary = path.join(tmp, 'canary.bin');
  spawnSync('mkfifo', [canary]);
  for (const location of ['canary.bin', '../canary.bin', '/etc/passwd']) {
    fs.writeFileSync(path.join(tmp, 'ext.onnx'), externalInSubgraph(location));
    refused(
      ['convert', 'ext.onnx', '--data', 'mnist:train', '--out', 'e.onnx', '-q'],
      /uses external data, which spikeport does not read/,
      [],
      ['e.onnx'],
    );
    assert.throws(
      () => decodeModel(fs.readFileSync(path.join(tmp, 'ext.onnx')), 'ext.onnx'),
      (e: unknown) => e instanceof SpikeportError && e.code === 'invalid-file',
    );
  }
  // A converted file whose source ANN "next to it" is a link to a device, or names a path outside:
  // never read (found nothing, or refused when decoding).
  const dir = path.join(tmp, 'linked');
  fs.mkdirSync(dir);
  ok(['convert', 'a.onnx', '--data', 'mnist:train', '--out', 'linked/a.snn.onnx', '--iterations', '1', '-q']);
  fs.symlinkSync('/dev/zero', path.join(dir, 'a.onnx'));
  const out = ok(['simulate', 'linked/a.snn.onnx', '--data', 'mnist:test', '--limit', '10', '--T', '2', '-q']);
  assert.doesNotMatch(out, /ANN top-1/, 'no ANN reference from /dev/zero');
  fs.symlinkSync(canary, path.join(dir, 'thresholds.json'));
  refused(
    [
      'convert',
      'a.onnx',
      '--data',
      'mnist:train',
      '--out',
      'x.onnx',
      '--method',
      'fixed',
      '--thresholds',
      'linked/thresholds.json',
      '-q',
    ],
    /--thresholds: linked\/thresholds\.json is not a regular file/,
  );
  // Nobody holds the canary open for reading (opening it for writing without blocking fails with ENXIO).
  assert.throws(() => fs.openSync(canary, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK), /ENXIO/);
});

test('3. a failure never leaves an output: NaN weights, a later output that fails, a stale temp file', async () => {
  const g = buildGraph([1, 28, 28], (b, x) => {
    const w = randn(3, 4 * 9, 0.3);
    w[5] = Number.NaN;
    const h = b.op('Relu', [
      b.op('Conv', [x, b.constant('W', floatTensor([4, 1, 3, 3], w))], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }),
    ]);
    return gemm(b, b.op('Flatten', [h], { axis: 1 }), 4 * 784, 10);
  });
  fs.writeFileSync(path.join(tmp, 'nan.onnx'), encodeModel(g));
  refused(
    ['convert', 'nan.onnx', '--data', 'mnist:train', '--out', 'n.onnx', '--json', 'n.json', '--iterations', '3', '-q'],
    /the weights "W.*" of node ".*" hold NaN/,
    [],
    ['n.onnx', 'n.json'],
  );
  // A zero threshold is a neuron that never fires: a valid file.
  fs.writeFileSync(path.join(tmp, 'th0.json'), JSON.stringify({ '/Relu': 0, '/Relu_1': 1, '/Relu_2': 2 }));
  ok([
    'convert',
    'a.onnx',
    '--data',
    'mnist:train',
    '--out',
    'z.onnx',
    '--method',
    'fixed',
    '--thresholds',
    'th0.json',
    '-q',
  ]);
  ok(['simulate', 'z.onnx', '--data', 'mnist:test', '--limit', '20', '--T', '4', '--ann', 'a.onnx', '-q']);
  // Several outputs: all or none.
  const dir = path.join(tmp, 'gone');
  fs.mkdirSync(dir);
  const first = path.join(tmp, 'first.txt');
  const files = [
    { path: first, data: 'one' },
    { path: path.join(dir, 'x', 'second.txt'), data: 'two' },
  ];
  assert.throws(
    () => writeFilesAtomic(files),
    (e: unknown) => e instanceof SpikeportError && e.code === 'io',
  );
  assert.equal(fs.existsSync(first), false, 'the first output is not left alone');
  // A temp file left by a killed process is cleaned at the next write of the same output.
  const stale = path.join(tmp, '.s.onnx.999999999.tmp');
  fs.writeFileSync(stale, 'half');
  ok(['convert', 'a.onnx', '--data', 'mnist:train', '--out', 's.onnx', '--iterations', '1', '-q']);
  assert.equal(fs.existsSync(stale), false);
});

test('4. one option cannot start unbounded work: streamed batches, bounded threads and T, each limit named', async (t) => {
  // 10⁹ iterations: the first batch arrives at once (the batch list is never built); the method stops there.
  let seen = 0;
  const stopAfterOne: ThresholdMethod = {
    name: 'stop-after-one',
    async thresholds(ctx) {
      assert.equal(ctx.batches, 1e9);
      await ctx.forEachBatch(() => {
        seen++;
        throw new SpikeportError('invalid-option', 'enough');
      });
      throw new Error('unreachable');
    },
  };
  // Work and memory, not time: the samples read and the memory taken before the method stops.
  let samplesRead = 0;
  const counted: Dataset = Object.create(train, {
    read: {
      value: (indices: readonly number[]) => {
        samplesRead += indices.length;
        return train.read(indices);
      },
    },
  }) as Dataset;
  const memory = (): number => process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers;
  const before = memory();
  await assert.rejects(
    convert(MNIST, counted, { method: stopAfterOne, iterations: 1e9, batchSize: 100, threads: 1 }),
    /enough/,
  );
  assert.equal(seen, 1);
  t.diagnostic(`10⁹ iterations: ${samplesRead} samples read, memory +${((memory() - before) / 2 ** 20).toFixed(1)} MB`);
  // A few batches (the one in use and those read ahead), not 10⁹; a list of 10⁹ batches would hold gigabytes.
  assert.ok(samplesRead <= 8 * 100, `samples read: ${samplesRead}`);
  assert.ok(memory() - before < 256 * 2 ** 20, `memory grew by ${((memory() - before) / 2 ** 20).toFixed(0)} MB`);
  refused(
    ['convert', 'a.onnx', '--data', 'mnist:train', '--out', 't.onnx', '--threads', '1000', '-q'],
    /--threads must be at most \d+ \(the cores this process may use\) \(got 1000\)/,
    [],
    ['t.onnx'],
  );
  refused(
    ['simulate', 'a.snn.onnx', '--data', 'mnist:test', '--T', '100000', '-q'],
    /--T must list at most 65536 steps \(got 100000\)/,
  );
  const snn = await convert(MNIST, train, { iterations: 1, threads: 1 });
  await assert.rejects(
    simulate(snn, openDataset('mnist:test', 1000), { T: [60000], engine: 'loop', batchSize: 1000 }),
    (e: unknown) => e instanceof SpikeportError && e.field === 'T' && /the limit is 1 GiB/.test(e.message),
  );
});

test('5. malformed models and files: one line each, never a stack trace', () => {
  fs.writeFileSync(
    path.join(tmp, 'd8.npz'),
    zipSync({
      'x.npy': npy([4, 1, 8, 8], '<f4', uniform(3, 4 * 64)),
      'y.npy': npy([4], '<i8', BigInt64Array.of(0n, 1n, 2n, 3n)),
    }),
  );
  // An If node between spiking layers.
  const g = buildGraph([1, 8, 8], (b, x) => {
    const h = b.op('Relu', [conv(b, x, 1, 2, 3, { seed: 4 })]);
    return gemm(b, b.op('Flatten', [b.op('Relu', [h])], { axis: 1 }), 128, 4);
  });
  const model = onnx.ModelProto.decode(encodeModel(g));
  const graph = model.graph as pkg.onnx.GraphProto;
  const relu = graph.node.findIndex((n) => n.opType === 'Relu');
  const hOut = (graph.node[relu].output as string[])[0];
  const branch = (name: string, op: string): pkg.onnx.IGraphProto => ({
    name,
    node: [{ opType: op, input: [hOut], output: [`${name}_o`] }],
    output: [{ name: `${name}_o`, type: { tensorType: { elemType: 1 } } }],
  });
  graph.initializer.push({ name: 'cond', dataType: 9, dims: [], rawData: Uint8Array.of(1) });
  const next = graph.node[relu + 1];
  graph.node.splice(relu + 1, 0, {
    opType: 'If',
    name: 'gate',
    input: ['cond'],
    output: ['gated'],
    attribute: [
      { name: 'then_branch', type: 5, g: branch('t', 'Identity') },
      { name: 'else_branch', type: 5, g: branch('e', 'Neg') },
    ],
  });
  (next.input as string[])[0] = 'gated';
  fs.writeFileSync(path.join(tmp, 'if.onnx'), onnx.ModelProto.encode(model).finish());
  refused(
    ['convert', 'if.onnx', '--data', 'npz:d8.npz', '--out', 'i.onnx', '-q'],
    /cannot convert node "gate" \(If, node \d+ of \d+\): it holds a subgraph/,
    [],
    ['i.onnx'],
  );
  // An initializer claiming 10¹⁰ elements.
  const huge = onnx.ModelProto.decode(encodeModel(g));
  (huge.graph as pkg.onnx.GraphProto).initializer[0].dims = [100000, 100000];
  fs.writeFileSync(path.join(tmp, 'huge.onnx'), onnx.ModelProto.encode(huge).finish());
  refused(
    ['convert', 'huge.onnx', '--data', 'mnist:train', '--out', 'h.onnx', '-q'],
    /huge\.onnx|tensor .* raw data has \d+ bytes, dims 100000x100000 need/,
  );
  // An old opset where spikeport's inserted ops do not exist: our message, not ONNX Runtime's log.
  const old = buildGraph(
    [1, 8, 8],
    (b, x) => gemm(b, b.op('Flatten', [b.op('Relu', [conv(b, x, 1, 2, 3)])], { axis: 1 }), 128, 4),
    7,
  );
  fs.writeFileSync(path.join(tmp, 'old.onnx'), encodeModel(old));
  refused(
    ['convert', 'old.onnx', '--data', 'npz:d8.npz', '--out', 'o7.onnx', '-q'],
    /old\.onnx uses opset 7; spikeport converts opset 8 and newer/,
  );
  // A Conv whose weights are computed (QDQ) and that has no kernel_shape attribute.
  const qdq = buildGraph([1, 8, 8], (b, x) => {
    const h = b.op('Relu', [conv(b, x, 1, 2, 3)]);
    const wq = b.constant('Wq', {
      dtype: 'int8',
      dims: [2, 2, 3, 3],
      data: Int8Array.from({ length: 36 }, (_, i) => (i % 7) - 3),
    });
    const w = b.op('DequantizeLinear', [
      wq,
      b.scalar(0.1, 's'),
      b.constant('zp', { dtype: 'int8', dims: [], data: Int8Array.of(0) }),
    ]);
    const h2 = b.op('Relu', [b.op('Conv', [h, w], { pads: [1, 1, 1, 1] }, 'qconv')]);
    return gemm(b, b.op('Flatten', [h2], { axis: 1 }), 128, 4);
  });
  fs.writeFileSync(path.join(tmp, 'qdq.onnx'), encodeModel(qdq));
  refused(
    ['convert', 'qdq.onnx', '--data', 'npz:d8.npz', '--out', 'q.onnx', '-q'],
    /Conv node "qconv_\d+": its kernel shape is unknown/,
    [],
    ['q.onnx'],
  );
  // A record without results.
  fs.writeFileSync(
    path.join(tmp, 'nores.json'),
    JSON.stringify({ kind: 'simulate', model: 'm', data: 'd', samples: 1, created: 'x' }),
  );
  refused(['report', 'nores.json'], /nores\.json: a simulate record with a bad field/);
});

test('6. no silent nonsense: labels outside the classes, a seed beyond 32 bits; the same seed gives the same bytes', async () => {
  const x = uniform(2, 6 * 784);
  fs.writeFileSync(
    path.join(tmp, 'bad-labels.npz'),
    zipSync({
      'x.npy': npy([6, 1, 28, 28], '<f4', x),
      'y.npy': npy([6], '<i8', BigInt64Array.of(1n, 2n, 3n, 12n, 0n, 1n)),
    }),
  );
  refused(
    ['simulate', 'a.snn.onnx', '--data', 'npz:bad-labels.npz', '--T', '4', '-q'],
    /bad-labels\.npz has the label 12, but the model scores 10 classes \(0\.\.9\)/,
  );
  refused(
    ['convert', 'a.onnx', '--data', 'mnist:train', '--out', 'sd.onnx', '--seed', String(2 ** 32), '-q'],
    /--seed must be at most 4294967295 \(a 32-bit seed\)/,
    [],
    ['sd.onnx'],
  );
  ok([
    'convert',
    'a.onnx',
    '--data',
    'mnist:train',
    '--out',
    'same1.onnx',
    '--iterations',
    '3',
    '--seed',
    '7',
    '--threads',
    '1',
    '-q',
  ]);
  ok([
    'convert',
    'a.onnx',
    '--data',
    'mnist:train',
    '--out',
    'same2.onnx',
    '--iterations',
    '3',
    '--seed',
    '7',
    '--threads',
    '1',
    '-q',
  ]);
  assert.ok(
    fs.readFileSync(path.join(tmp, 'same1.onnx')).equals(fs.readFileSync(path.join(tmp, 'same2.onnx'))),
    'byte-identical files',
  );
  const seed8 = path.join(tmp, 'same3.onnx');
  ok([
    'convert',
    'a.onnx',
    '--data',
    'mnist:train',
    '--out',
    seed8,
    '--iterations',
    '3',
    '--seed',
    '8',
    '--threads',
    '1',
    '-q',
  ]);
  assert.ok(
    !fs.readFileSync(seed8).equals(fs.readFileSync(path.join(tmp, 'same1.onnx'))),
    'another seed, other thresholds',
  );
});
