/**
 * `simulate --workers N` against one process with all threads, as a user runs them (the CLI, wall
 * clock, the same converted file and samples), alternating the two so that the machine's load
 * hits both alike:
 *
 *   node dist/bench/workers.js [--models mnist-cnn,fashion-vgg] [--limit 2000] [--T 32] [--repeats 3]
 *
 * Prints per model and repeat: seconds of one process with `threads` threads, seconds of
 * `threads` workers with one thread each, their ratio, and whether the two records are identical
 * (apart from the time and the seconds measured).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT, arg } from './args.js';

const CLI = path.join(ROOT, 'dist', 'src', 'cli', 'main.js');
const models = arg('models', 'mnist-cnn,fashion-vgg').split(',');
const limit = arg('limit', '2000');
const T = arg('T', '32');
const repeats = Number(arg('repeats', '3'));
const threads = os.availableParallelism();
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'spikeport-bench-workers-'));

function run(args: string[]): number {
  const t = performance.now();
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', cwd: tmp });
  if (r.status !== 0) throw new Error(`spikeport ${args.join(' ')}: ${r.stderr}`);
  return (performance.now() - t) / 1000;
}

function comparable(file: string): string {
  const {
    created: _c,
    simulationSeconds: _s,
    times: _t,
    engines: _e,
    ...rest
  } = JSON.parse(fs.readFileSync(path.join(tmp, file), 'utf8')) as Record<string, unknown>;
  return JSON.stringify(rest);
}

process.stdout.write(
  `${threads} cores; ${limit} test images, T = ${T}, batch 100, ANN references on, no site errors; wall seconds of the whole command\n\n`,
);
process.stdout.write(
  '| model | repeat | 1 process × ' +
    threads +
    ' threads (s) | ' +
    threads +
    ' workers × 1 thread (s) | workers ÷ one process | identical records |\n|---|---|---|---|---|---|\n',
);
for (const name of models) {
  const file = path.join(ROOT, 'models', `${name}.onnx`);
  const dataset = (JSON.parse(fs.readFileSync(file.replace(/\.onnx$/, '.json'), 'utf8')) as { dataset: string })
    .dataset;
  const snn = path.join(tmp, `${name}.snn.onnx`);
  run(['convert', file, '--data', `${dataset}:train`, '--calib-limit', '5000', '--out', snn, '-q']);
  const common = [
    'simulate',
    snn,
    '--ann',
    file,
    '--data',
    `${dataset}:test`,
    '--limit',
    limit,
    '--T',
    T,
    '--site-errors',
    '0',
    '-q',
  ];
  for (let k = 0; k < repeats; k++) {
    const one = run([...common, '--threads', String(threads), '--workers', '1', '--json', 'one.json']);
    const many = run([...common, '--threads', String(threads), '--workers', String(threads), '--json', 'many.json']);
    const same = comparable('one.json') === comparable('many.json');
    process.stdout.write(
      `| ${name} | ${k + 1} | ${one.toFixed(1)} | ${many.toFixed(1)} | ${(many / one).toFixed(2)} | ${same ? 'yes' : 'NO'} |\n`,
    );
  }
}
fs.rmSync(tmp, { recursive: true, force: true });
