/**
 * Tests leave nothing in the system's temporary folder: they make temporary folders only with
 * tempDir() (test/temp.ts), which removes a test's folder when the test ends, passed or failed,
 * and a file's folder after its last test.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { tempDir } from './temp.js';

const SOURCES = path.join(process.cwd(), 'test');

test('test files make temporary folders with tempDir() only (it removes them)', () => {
  const direct = /\b(mkdtemp|mkdir|writeFile|copyFile|open)(Sync)?\(\s*(path\.join\(\s*)?os\.tmpdir\(\)/;
  const offenders = fs
    .readdirSync(SOURCES)
    .filter((f) => f.endsWith('.ts') && f !== 'temp.ts')
    .filter((f) => direct.test(fs.readFileSync(path.join(SOURCES, f), 'utf8')));
  assert.deepEqual(
    offenders,
    [],
    'these make folders or files in os.tmpdir() themselves: use tempDir(prefix) or tempDir(prefix, t)',
  );
});

test("tempDir: a test's folder goes when the test ends (also when it fails), the file's after its last test", (t) => {
  const outer = tempDir('spikeport-tempdir-', t);
  const system = path.join(outer, 'tmp');
  fs.mkdirSync(system);
  const temp = pathToFileURL(path.join(process.cwd(), 'dist', 'test', 'temp.js')).href;
  fs.writeFileSync(
    path.join(outer, 'child.test.mjs'),
    `
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { tempDir } from ${JSON.stringify(temp)};
const shared = tempDir('shared-');
let first = '';
test('makes its own folder', (t) => {
  first = tempDir('own-', t);
  fs.writeFileSync(path.join(first, 'x'), 'x');
  fs.mkdirSync(path.join(shared, 'sub'));
  assert.ok(fs.existsSync(path.join(first, 'x')));
});
test('sees the file\\'s folder, not the first test\\'s', () => {
  assert.ok(fs.existsSync(path.join(shared, 'sub')), 'the file\\'s folder stays until its last test');
  assert.ok(first && !fs.existsSync(first), 'the first test\\'s folder went with it');
});
test('fails with a folder', (t) => {
  fs.writeFileSync(path.join(tempDir('failed-', t), 'y'), 'y');
  throw new Error('on purpose');
});
`,
  );
  // (Without NODE_TEST_CONTEXT, set for this file by the runner: the child reports on its own, as TAP.)
  const { NODE_TEST_CONTEXT: _, ...env } = process.env;
  const r = spawnSync(process.execPath, ['--test', '--test-reporter=tap', path.join(outer, 'child.test.mjs')], {
    encoding: 'utf8',
    env: { ...env, TMPDIR: system },
  });
  assert.match(r.stdout, /^# pass 2$/m, r.stdout);
  assert.match(r.stdout, /^# fail 1$/m, r.stdout);
  assert.deepEqual(fs.readdirSync(system), [], 'left in the temporary folder');
});

test("a spikeport run leaves nothing in the temporary folder (ONNX Runtime's telemetry files .ses and mat-debug-PID.log included), with workers too", (t) => {
  const system = tempDir('spikeport-run-tmp-', t);
  const workers = os.availableParallelism() >= 2 ? ['--workers', '2', '--threads', '2'] : [];
  const r = spawnSync(
    process.execPath,
    [
      path.join(process.cwd(), 'dist', 'src', 'cli', 'main.js'),
      'simulate',
      path.join(process.cwd(), 'models', 'mnist-cnn.onnx'),
      '--data',
      'mnist:test',
      '--limit',
      '100',
      '--batch',
      '25',
      '--T',
      '4',
      '--iterations',
      '1',
      '--calib-limit',
      '50',
      '--site-errors',
      '0',
      ...workers,
      '-q',
    ],
    { encoding: 'utf8', env: { ...process.env, TMPDIR: system } },
  );
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /top-1/);
  assert.deepEqual(fs.readdirSync(system), [], 'left in the temporary folder');
});
