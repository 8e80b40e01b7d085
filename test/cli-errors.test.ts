import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { encodeModel } from '../src/onnx/codec.js';
import { zipSync } from 'fflate';
import { floatTensor } from '../src/graph/ir.js';
import { buildGraph, conv, gemm, npy, randn, runGraph, uniform } from './helpers.js';
import { tempDir } from './temp.js';

const CLI = path.join(process.cwd(), 'dist', 'src', 'cli', 'main.js');
const MNIST = path.join(process.cwd(), 'models', 'mnist-cnn.onnx');
const tmp = tempDir('spikeport-cli-');

function run(args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', cwd: tmp });
  return { code: r.status, stderr: r.stderr, stdout: r.stdout };
}

/** One line, names the problem, non-zero exit, no stack trace, no output file. */
function expectUserError(args: string[], pattern: RegExp, out?: string): void {
  const r = run(args);
  assert.notEqual(r.code, 0, `exit code for ${args.join(' ')}`);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line of error, got:\n${r.stderr}`);
  assert.match(lines[0], pattern);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  if (out) assert.equal(fs.existsSync(path.join(tmp, out)), false, 'no output file left');
  assert.equal(
    fs.readdirSync(tmp).some((f) => f.endsWith('.tmp')),
    false,
    'no temporary file left',
  );
}

test('a file that is not ONNX', () => {
  fs.writeFileSync(path.join(tmp, 'notes.onnx'), 'this is a text file, not a protobuf\n'.repeat(20));
  expectUserError(
    ['convert', 'notes.onnx', '--data', 'mnist:train', '--out', 'o.onnx', '-q'],
    /notes\.onnx is not a valid ONNX model/,
    'o.onnx',
  );
});

test('a truncated ONNX file', () => {
  const bytes = fs.readFileSync(MNIST);
  fs.writeFileSync(path.join(tmp, 'cut.onnx'), bytes.subarray(0, Math.floor(bytes.length / 2)));
  expectUserError(
    ['convert', 'cut.onnx', '--data', 'mnist:train', '--out', 'o.onnx', '-q'],
    /cut\.onnx is not a valid ONNX model/,
    'o.onnx',
  );
});

test('a Sigmoid inside the spiking part is refused, naming node, op and position', () => {
  const g = buildGraph([1, 28, 28], (b, x) => {
    const h = b.op('Relu', [conv(b, x, 1, 4, 3)]);
    const s = b.op('Sigmoid', [conv(b, h, 4, 4, 3)], {}, 'gate');
    const r = b.op('Relu', [s]);
    return gemm(b, b.op('Flatten', [r], { axis: 1 }), 4 * 784, 10);
  });
  fs.writeFileSync(path.join(tmp, 'sig.onnx'), encodeModel(g));
  expectUserError(
    ['convert', 'sig.onnx', '--data', 'mnist:train', '--out', 'o.onnx', '-q'],
    /cannot convert node "gate_\d+" \(Sigmoid, node 4 of 7\): .*--readout/,
    'o.onnx',
  );
});

test('a GELU (as an op) inside the spiking part is refused', () => {
  const g = buildGraph(
    [1, 28, 28],
    (b, x) => {
      const h = b.op('Relu', [conv(b, x, 1, 4, 3)]);
      const s = b.op('Gelu', [conv(b, h, 4, 4, 3)]);
      return gemm(b, b.op('Flatten', [b.op('Relu', [s])], { axis: 1 }), 4 * 784, 10);
    },
    20,
  );
  fs.writeFileSync(path.join(tmp, 'gelu.onnx'), encodeModel(g));
  expectUserError(
    ['convert', 'gelu.onnx', '--data', 'mnist:train', '--out', 'o.onnx', '-q'],
    /cannot convert node .*\(Gelu, node \d+ of \d+\)/,
    'o.onnx',
  );
});

test('a data set whose samples do not fit the model input', () => {
  const g = buildGraph([3, 8, 8], (b, x) =>
    gemm(b, b.op('Flatten', [b.op('Relu', [conv(b, x, 3, 2, 3)])], { axis: 1 }), 128, 10),
  );
  fs.writeFileSync(path.join(tmp, 'rgb.onnx'), encodeModel(g));
  expectUserError(
    ['convert', 'rgb.onnx', '--data', 'mnist:train', '--out', 'o.onnx', '-q'],
    /samples of shape 1x28x28 \(784 values\) but the model input "input" expects 3x8x8 \(192 values\)/,
    'o.onnx',
  );
});

test('--T 0 and an unknown method', () => {
  expectUserError(
    ['simulate', MNIST, '--data', 'mnist:test', '--T', '0', '--json', 'r.json'],
    /--T must list integers ≥ 1 \(got 0\)/,
    'r.json',
  );
  expectUserError(
    ['convert', MNIST, '--data', 'mnist:train', '--out', 'o.onnx', '--method', 'magic'],
    /--method.*magic.*cltb/,
    'o.onnx',
  );
});

test('a missing model file, an unknown data set and an empty npz', () => {
  expectUserError(
    ['convert', 'nope.onnx', '--data', 'mnist:train', '--out', 'o.onnx'],
    /no such file: nope\.onnx/,
    'o.onnx',
  );
  expectUserError(
    ['convert', MNIST, '--data', 'cifar:train', '--out', 'o.onnx', '-q'],
    /unknown data set "cifar"/,
    'o.onnx',
  );
  expectUserError(
    ['convert', MNIST, '--data', 'npz:missing.npz', '--out', 'o.onnx', '-q'],
    /data set npz:missing\.npz: no such file: missing\.npz/,
    'o.onnx',
  );
  expectUserError(
    ['convert', MNIST, '--data', 'fashion-mnist:train@/nonexistent', '--out', 'o.onnx', '-q'],
    /fashion-mnist: no IDX files in \/nonexistent; install them with "apt-get install dataset-fashion-mnist"/,
    'o.onnx',
  );
});

test('--readout NODE ends the spiking part before a Sigmoid; the rest runs as ANN on the averaged readout', async () => {
  const g = buildGraph([1, 8, 8], (b, x) => {
    const h = b.op('Relu', [conv(b, x, 1, 4, 3, { seed: 1 })]);
    const feat = b.op(
      'Gemm',
      [b.op('Flatten', [h], { axis: 1 }), b.constant('W', floatTensor([16, 256], randn(2, 16 * 256, 0.1)))],
      { transB: 1 },
      'feat',
    );
    const gate = b.op('Sigmoid', [feat], {}, 'gate');
    return gemm(b, gate, 16, 4, 3);
  });
  fs.writeFileSync(path.join(tmp, 'gated.onnx'), encodeModel(g));
  // Labels = the ANN's own argmax, so the ANN scores 100 %.
  const n = 64;
  const x = uniform(5, n * 64);
  const out = (await runGraph(g, { input: { dims: [n, 1, 8, 8], data: x } }))[g.outputs[0].name].data;
  const y = BigInt64Array.from({ length: n }, (_, i) => {
    const row = Array.from(out.subarray(i * 4, i * 4 + 4));
    return BigInt(row.indexOf(Math.max(...row)));
  });
  fs.writeFileSync(
    path.join(tmp, 'gated.npz'),
    zipSync({ 'x.npy': npy([n, 1, 8, 8], '<f4', x), 'y.npy': npy([n], '<i8', y) }),
  );
  expectUserError(
    ['simulate', 'gated.onnx', '--data', 'npz:gated.npz', '--calib', 'npz:gated.npz', '-q', '--json', 'g.json'],
    /cannot convert node "gate_\d+" \(Sigmoid, node 5 of 6\).*--readout/,
    'g.json',
  );
  const feat = g.nodes.find((nd) => nd.opType === 'Gemm')!.name;
  const r = run([
    'simulate',
    'gated.onnx',
    '--data',
    'npz:gated.npz',
    '--calib',
    'npz:gated.npz',
    '--readout',
    feat,
    '--method',
    'maxnorm',
    '--T',
    '32,512',
    '--json',
    'g.json',
    '-q',
  ]);
  assert.equal(r.code, 0, r.stderr);
  const res = JSON.parse(fs.readFileSync(path.join(tmp, 'g.json'), 'utf8'));
  assert.equal(res.ann.metric, 1);
  assert.ok(res.results[1].metricNoDelay >= 0.95, `T=512: ${res.results[1].metricNoDelay}`);
});

test('a record with a kind and nothing else, a JSON file with line breaks, a bad thresholds value: one line each', () => {
  fs.writeFileSync(path.join(tmp, 'partial.json'), '{"kind":"simulate"}');
  expectUserError(
    ['report', 'partial.json', '--out', 'p.html'],
    /partial\.json: a simulate record with a bad field model/,
    'p.html',
  );
  fs.writeFileSync(path.join(tmp, 'broken.json'), 'nope\nmore\n');
  expectUserError(['report', 'broken.json', '--out', 'b.html'], /broken\.json is not JSON/, 'b.html');
  fs.writeFileSync(path.join(tmp, 'th.json'), '{"/Relu": null, "/Relu_1": 1, "/Relu_2": 1}');
  expectUserError(
    [
      'convert',
      MNIST,
      '--data',
      'mnist:train',
      '--out',
      'o.onnx',
      '--method',
      'fixed',
      '--thresholds',
      'th.json',
      '-q',
    ],
    /--thresholds for site "\/Relu": expected a number or an array of numbers/,
    'o.onnx',
  );
  fs.writeFileSync(path.join(tmp, 'th2.json'), 'nope\n');
  expectUserError(
    [
      'convert',
      MNIST,
      '--data',
      'mnist:train',
      '--out',
      'o.onnx',
      '--method',
      'fixed',
      '--thresholds',
      'th2.json',
      '-q',
    ],
    /--thresholds th2\.json: not a JSON object/,
    'o.onnx',
  );
});

test('simulate refuses conversion flags for a converted file instead of ignoring them; energies are in pJ', () => {
  const r = run(['convert', MNIST, '--data', 'mnist:train', '--out', 'done.snn.onnx', '--iterations', '2', '-q']);
  assert.equal(r.code, 0, r.stderr);
  expectUserError(
    ['simulate', 'done.snn.onnx', '--data', 'mnist:test', '--iterations', '5', '--readout', 'x', '--json', 's.json'],
    /--iterations, --readout: done\.snn\.onnx is already converted; these options apply when MODEL is an ANN/,
    's.json',
  );
  expectUserError(
    ['simulate', 'done.snn.onnx', '--data', 'mnist:test', '--e-sop', '-1', '--json', 's.json'],
    /--e-sop.*must be an energy in pJ > 0/,
    's.json',
  );
  expectUserError(
    ['simulate', 'done.snn.onnx', '--data', 'mnist:test', '--ann', 'nope.onnx', '--json', 's.json'],
    /--ann: no such file: nope\.onnx/,
    's.json',
  );
  expectUserError(
    ['convert', MNIST, '--data', 'mnist:train', '--out', 'o.onnx', '--engine', 'loop'],
    /unknown option '--engine'/,
    'o.onnx',
  );
});
