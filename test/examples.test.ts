/** The examples/ scripts run as a user would run them (importing 'spikeport'), on small data. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { tempDir } from './temp.js';

function runExample(name: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): string {
  const r = spawnSync(process.execPath, [path.join('dist', 'examples', `${name}.js`), ...args], {
    encoding: 'utf8',
    cwd: process.cwd(),
    env: { ...process.env, ...env },
  });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

test('examples/convert-and-simulate: converts, simulates in memory, saves', (t) => {
  // It saves into the temporary folder: this test's own, removed afterwards.
  const dir = tempDir('spikeport-examples-', t);
  const out = runExample('convert-and-simulate', ['200'], { TMPDIR: dir });
  assert.match(out, /^3 neuron sites, estimated delay d̂ = \d+/);
  const rows = [...out.matchAll(/T=(\d+): top-1 ([\d.]+) %/g)].map((m) => [Number(m[1]), Number(m[2])]);
  assert.deepEqual(
    rows.map(([T]) => T),
    [4, 8, 16, 32],
  );
  assert.ok(rows[3][1] >= 97, `T=32: ${rows[3][1]} %`);
  assert.match(out, /ANN top-1 \d+\.\d+ %/);
  const saved = path.join(dir, 'mnist-cnn.snn.onnx');
  assert.ok(out.includes(`saved ${saved}\n`), out);
  assert.ok(fs.statSync(saved).size > 10_000, 'the saved network');
});

test('examples/custom-threshold: a caller-written method next to CLTB', () => {
  const out = runExample('custom-threshold', ['200']);
  assert.match(out, /^mean\+3std: T=8 [\d.]+ %, T=32 ([\d.]+) %$/m);
  assert.match(out, /^cltb: T=8 [\d.]+ %, T=32 [\d.]+ %$/m);
  const custom32 = Number(/^mean\+3std: .*T=32 ([\d.]+) %/m.exec(out)?.[1]);
  assert.ok(custom32 > 90, `mean+3std at T=32: ${custom32} %`);
});
