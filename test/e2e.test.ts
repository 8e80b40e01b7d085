import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { loadSnn } from '../src/snn/network.js';
import { openDataset } from '../src/data/sources.js';
import { readBatch, type Normalize } from '../src/data/dataset.js';
import { tempDir } from './temp.js';

const CLI = path.join(process.cwd(), 'dist', 'src', 'cli', 'main.js');
const MNIST = path.join(process.cwd(), 'models', 'mnist-cnn.onnx');
const tmp = tempDir('spikeport-e2e-');

function cli(args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', cwd: tmp });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

test('convert writes an SNN file; simulate reads it and reports accuracy against T close to the ANN', () => {
  const snnFile = path.join(tmp, 'mnist.snn.onnx');
  const out = cli(['convert', MNIST, '--data', 'mnist:train', '--out', snnFile, '--iterations', '20', '-q']);
  assert.match(out, /wrote .*mnist\.snn\.onnx: 3 neuron sites, cltb \(20 iterations × 100\), estimated delay d̂ = \d+/);
  const json = path.join(tmp, 'run.json');
  cli([
    'simulate',
    snnFile,
    '--ann',
    MNIST,
    '--data',
    'mnist:test',
    '--limit',
    '300',
    '--T',
    '8,32,64',
    '--json',
    json,
    '-q',
  ]);
  const r = JSON.parse(fs.readFileSync(json, 'utf8'));
  assert.equal(r.method, 'cltb');
  assert.equal(r.iterations, 20);
  assert.equal(r.samples, 300);
  assert.ok(r.ann.metric > 0.97, `ANN top-1 ${r.ann.metric}`);
  assert.ok(r.clippedAnn.metric > 0.95);
  assert.ok(Number.isInteger(r.delay.estimated) && r.delay.estimated >= 1);
  assert.deepEqual(
    r.results.map((x: { T: number }) => x.T),
    [8, 32, 64],
  );
  for (const x of r.results) {
    assert.equal(x.delay, Math.min(r.delay.estimated, Math.floor(x.T / 2)));
    for (const k of ['metric', 'metricNoDelay', 'secondary', 'secondaryNoDelay']) assert.ok(x[k] >= 0 && x[k] <= 1, k);
  }
  const at64 = r.results[2];
  assert.ok(at64.metric >= r.ann.metric - 0.02, `SNN at T=64 ${at64.metric} vs ANN ${r.ann.metric}`);
  assert.equal(r.firingRates.length, 3);
  for (const f of r.firingRates) assert.ok(f.rate > 0 && f.rate < 1, `firing rate ${f.rate}`);
});

test('the SNN file runs in plain ONNX Runtime with the documented inputs (zero states, fed back each step)', async () => {
  const snnFile = path.join(tmp, 'plain.snn.onnx');
  cli(['convert', MNIST, '--data', 'mnist:train', '--out', snnFile, '--iterations', '10', '-q']);
  const snn = await loadSnn(snnFile, { ann: null });
  const session = await ort.InferenceSession.create(snnFile);
  const states = JSON.parse(snn.graph.metadata['spikeport.snn']).spec.states as {
    input: string;
    output: string;
    shape: number[];
  }[];
  assert.ok(snn.graph.metadata['spikeport.usage'].includes('zeros'));
  const data = openDataset('mnist:test', 50);
  const batch = await readBatch(
    data,
    Array.from({ length: 50 }, (_, i) => i),
    snn.meta.normalize,
  );
  const feeds: Record<string, ort.Tensor> = {
    [snn.meta.spec.input]: new ort.Tensor('float32', batch.x, [50, 1, 28, 28]),
  };
  for (const s of states)
    feeds[s.input] = new ort.Tensor('float32', new Float32Array(50 * s.shape.reduce((a, b) => a * b, 1)), [
      50,
      ...s.shape,
    ]);
  const T = 48;
  const d = Math.min(Number(snn.graph.metadata['spikeport.delay']), T / 2);
  const sum = new Float64Array(50 * 10);
  for (let t = 0; t < T; t++) {
    const out = await session.run(feeds);
    for (const s of states) feeds[s.input] = out[s.output];
    if (t >= d)
      (out[snn.meta.spec.readout].data as Float32Array).forEach((v, i) => {
        sum[i] += v;
      });
  }
  let correct = 0;
  for (let i = 0; i < 50; i++) {
    const row = Array.from(sum.subarray(i * 10, i * 10 + 10));
    if (row.indexOf(Math.max(...row)) === batch.y![i]) correct++;
  }
  assert.ok(correct >= 47, `plain ORT loop: ${correct}/50 correct`);
});

test("demo: the README command prints accuracy against T next to the ANN; the ANN's top-1, its MACs and the delays agree with numbers made here", async () => {
  const out = cli(['demo', '--limit', '200', '--T', '8,32', '-q']);
  assert.match(out, /mnist-cnn\.onnx on mnist:test \(200 samples\), cltb, 100 iterations × batch 100/);
  // The ANN's top-1 on those 200 images, from onnxruntime-node directly.
  const data = openDataset('mnist:test', 200);
  const batch = await readBatch(
    data,
    Array.from({ length: 200 }, (_, i) => i),
    (JSON.parse(fs.readFileSync(MNIST.replace(/\.onnx$/, '.json'), 'utf8')) as { normalize: Normalize }).normalize,
  );
  const session = await ort.InferenceSession.create(MNIST);
  const logits = (await session.run({ input: new ort.Tensor('float32', batch.x, [200, 1, 28, 28]) })).logits
    .data as Float32Array;
  let correct = 0;
  for (let i = 0; i < 200; i++) {
    const row = Array.from(logits.subarray(i * 10, i * 10 + 10));
    if (row.indexOf(Math.max(...row)) === batch.y?.[i]) correct++;
  }
  const ann = (100 * correct) / 200;
  assert.match(out, new RegExp(`ANN top-1 ${ann.toFixed(2)} %, clipped ANN top-1 \\d+\\.\\d\\d %`));
  // Each row: T, the delay min(d̂, ⌊T/2⌋) with the d̂ printed below, and top-1 within a point of the ANN at T = 32
  // (then top-1 without delay, top-5 and the ceiling).
  const dhat = Number(/estimated delay d̂ = (\d+)/.exec(out)?.[1]);
  const rows = [...out.matchAll(/^\s*(\d+)\s+(\d+)\s+(\d+\.\d\d)\s+(\d+\.\d\d)\s+(\d+\.\d\d)\s+(\d+\.\d\d)$/gm)].map(
    (m) => m.slice(1).map(Number),
  );
  assert.deepEqual(
    rows.map((r) => r.slice(0, 2)),
    [8, 32].map((T) => [T, Math.min(dhat, Math.floor(T / 2))]),
  );
  assert.ok(rows[1][2] >= ann - 1, `SNN top-1 at T=32 ${rows[1][2]} % vs ANN ${ann} %`);
  // MACs by hand: 3×3 convolutions with padding 1 have 3n − 2 taps inside per axis of n outputs
  // (conv1 on 28×28, conv2 on the pooled 14×14), then the two dense layers.
  const macs = 16 * 1 * (3 * 28 - 2) ** 2 + 32 * 16 * (3 * 14 - 2) ** 2 + 128 * 1568 + 10 * 128;
  assert.equal(macs, 1128768);
  assert.match(out, new RegExp(`ANN 1\\.13 M MACs, ${(1 / (macs * 12.5e-12)).toFixed(1)} FPS/W`));
});

const FASHION = '/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz';
test(
  'fashion-vgg (BN, 3 max pools after spiking layers): CLTB + delay reaches the ANN by T=64',
  { skip: !fs.existsSync(FASHION) && 'dataset-fashion-mnist is not installed' },
  () => {
    const json = path.join(tmp, 'fv.json');
    cli([
      'simulate',
      path.join(process.cwd(), 'models', 'fashion-vgg.onnx'),
      '--data',
      'fashion-mnist:test',
      '--limit',
      '200',
      '--T',
      '16,64',
      '--json',
      json,
      '-q',
    ]);
    const r = JSON.parse(fs.readFileSync(json, 'utf8'));
    assert.ok(r.delay.estimated >= 5, `d̂ = ${r.delay.estimated}`);
    const at64 = r.results[1];
    assert.ok(at64.metric >= r.ann.metric - 0.02, `T=64: ${at64.metric} vs ANN ${r.ann.metric}`);
    // delayed evaluation helps at small T
    assert.ok(
      r.results[0].metric >= r.results[0].metricNoDelay,
      `T=16: delay ${r.results[0].metric} vs none ${r.results[0].metricNoDelay}`,
    );
  },
);

test("--format loop: one plain ONNX Runtime call with (input, T, delay) gives the ANN's outputs from the averaged readout", async () => {
  const loopFile = path.join(tmp, 'mnist.loop.onnx');
  cli(['convert', MNIST, '--data', 'mnist:train', '--out', loopFile, '--iterations', '10', '--format', 'loop', '-q']);
  const session = await ort.InferenceSession.create(loopFile);
  assert.deepEqual([...session.inputNames].sort(), ['T', 'delay', 'input']);
  assert.equal(session.outputNames[0], 'logits', 'the ANN output name is kept');
  const snn = await loadSnn(loopFile, { ann: null });
  assert.equal(snn.form, 'loop');
  const data = openDataset('mnist:test', 50);
  const batch = await readBatch(
    data,
    Array.from({ length: 50 }, (_, i) => i),
    snn.meta.normalize,
  );
  const T = 48;
  const out = await session.run({
    input: new ort.Tensor('float32', batch.x, [50, 1, 28, 28]),
    T: new ort.Tensor('int64', BigInt64Array.of(BigInt(T)), []),
    delay: new ort.Tensor('int64', BigInt64Array.of(BigInt(Math.min(snn.meta.delay.estimated, T / 2))), []),
  });
  const logits = out.logits.data as Float32Array;
  assert.deepEqual(out.logits.dims, [50, 10]);
  let correct = 0;
  for (let i = 0; i < 50; i++) {
    const row = Array.from(logits.subarray(i * 10, i * 10 + 10));
    if (row.indexOf(Math.max(...row)) === batch.y![i]) correct++;
  }
  assert.ok(correct >= 47, `loop file: ${correct}/50 correct`);
  // simulate reads the loop form too
  const json = path.join(tmp, 'loop.json');
  cli([
    'simulate',
    loopFile,
    '--ann',
    MNIST,
    '--data',
    'mnist:test',
    '--limit',
    '100',
    '--T',
    '32',
    '--json',
    json,
    '-q',
  ]);
  assert.ok(JSON.parse(fs.readFileSync(json, 'utf8')).results[0].metric > 0.95);
});
