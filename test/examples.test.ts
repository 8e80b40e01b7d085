/** The examples/ scripts run as a user would run them (importing 'spikeport'), on small data. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';

function runExample(name: string, ...args: string[]): string {
  const r = spawnSync(process.execPath, [path.join('dist', 'examples', `${name}.js`), ...args], { encoding: 'utf8', cwd: process.cwd() });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

test('examples/convert-and-simulate: converts, simulates in memory, saves', () => {
  const out = runExample('convert-and-simulate', '200');
  assert.match(out, /^3 neuron sites, estimated delay d̂ = \d+/);
  const rows = [...out.matchAll(/T=(\d+): top-1 ([\d.]+) %/g)].map((m) => [Number(m[1]), Number(m[2])]);
  assert.deepEqual(rows.map(([T]) => T), [4, 8, 16, 32]);
  assert.ok(rows[3][1] >= 97, `T=32: ${rows[3][1]} %`);
  assert.match(out, /ANN top-1 \d+\.\d+ %/);
  assert.match(out, /saved .*mnist-cnn\.snn\.onnx/);
});

test('examples/custom-threshold: a caller-written method next to CLTB', () => {
  const out = runExample('custom-threshold', '200');
  assert.match(out, /^mean\+3std: T=8 [\d.]+ %, T=32 ([\d.]+) %$/m);
  assert.match(out, /^cltb: T=8 [\d.]+ %, T=32 [\d.]+ %$/m);
  const custom32 = Number(/^mean\+3std: .*T=32 ([\d.]+) %/m.exec(out)?.[1]);
  assert.ok(custom32 > 90, `mean+3std at T=32: ${custom32} %`);
});
