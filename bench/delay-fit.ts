/**
 * The label-free delay fit against the d̂ rule, no delay, and the best delay found with labels,
 * at every T, on bundled classification models. One CLTB conversion (with the fit) and one
 * simulation of the largest T per model; every delay of every T is read from that run.
 *
 *   node dist/bench/delay-fit.js [--limit N] [--T 1,2,4,...] [--json FILE] MODEL.onnx ...
 *
 * Prints a Markdown table per model and a summary: how far `fit` is below `auto` and below the
 * best delay (points of top-1), worst over T.
 */
import './args.js'; // --help prints the header above and stops
import fs from 'node:fs';
import path from 'node:path';
import { convert, loadModel, openDataset } from '../src/index.js';
import { delayAt, simulateWindows, type Window } from '../src/evaluate/windows.js';

const args = process.argv.slice(2);
const take = (flag: string): string | undefined => {
  const i = args.indexOf(flag);
  if (i < 0) return undefined;
  const v = args[i + 1];
  args.splice(i, 2);
  return v;
};
const limit = Number(take('--limit') ?? 10000);
const Ts = (take('--T') ?? '1,2,4,8,16,32,64').split(',').map(Number);
const jsonOut = take('--json');
if (args.length === 0) throw new Error('usage: delay-fit.js [--limit N] [--T list] [--json FILE] MODEL.onnx ...');

interface Row {
  T: number;
  off: number;
  auto: number;
  dAuto: number;
  fit: number;
  dFit: number;
  best: number;
  dBest: number;
}
const results: { model: string; dhat: number; fitSeconds: number; calibrateSeconds: number; rows: Row[] }[] = [];
const pts = (v: number): string => (100 * v).toFixed(2);

for (const file of args) {
  const dataset = JSON.parse(fs.readFileSync(file.replace(/\.onnx$/, '.json'), 'utf8')) as { dataset: string };
  const model = loadModel(file);
  const calib = openDataset(`${dataset.dataset}:train`);
  const test = openDataset(`${dataset.dataset}:test`, limit);
  const Tmax = Math.max(...Ts);
  const snn = await convert(model, calib, { method: 'cltb', delayFit: Tmax });
  const fitted = snn.meta.delay.fitted as readonly number[];
  const dhat = snn.meta.delay.estimated;
  const windows: Window[] = Ts.flatMap((T) => Array.from({ length: T }, (_, delay) => ({ T, delay })));
  const run = await simulateWindows(snn, test, windows, { batchSize: 100 });
  const rows: Row[] = [];
  let k = 0;
  for (const T of Ts) {
    const metrics = run.scores.slice(k, k + T).map((s) => s.metric);
    k += T;
    const dBest = metrics.indexOf(Math.max(...metrics));
    const dAuto = delayAt(T, dhat);
    const dFit = fitted[T - 1];
    rows.push({
      T,
      off: metrics[0],
      auto: metrics[dAuto],
      dAuto,
      fit: metrics[dFit],
      dFit,
      best: metrics[dBest],
      dBest,
    });
  }
  const name = path.basename(file, '.onnx');
  results.push({
    model: name,
    dhat,
    fitSeconds: snn.timing?.refine ?? NaN,
    calibrateSeconds: snn.timing?.calibrate ?? NaN,
    rows,
  });
  const worstAuto = Math.max(...rows.map((r) => 100 * (r.auto - r.fit)));
  const worstBest = Math.max(...rows.map((r) => 100 * (r.best - r.fit)));
  process.stdout.write(
    [
      `### ${name} (${test.size} test images, d̂ = ${dhat}; calibration ${snn.timing?.calibrate.toFixed(1)} s, fit ${snn.timing?.refine?.toFixed(1)} s)`,
      '',
      '| T | off | auto (d) | fit (d) | best (d) |',
      '|---|---|---|---|---|',
      ...rows.map(
        (r) =>
          `| ${r.T} | ${pts(r.off)} | ${pts(r.auto)} (${r.dAuto}) | ${pts(r.fit)} (${r.dFit}) | ${pts(r.best)} (${r.dBest}) |`,
      ),
      '',
      `fit below auto by at most ${worstAuto.toFixed(2)} points, below the best delay by at most ${worstBest.toFixed(2)} points.`,
      '',
      '',
    ].join('\n'),
  );
}
if (jsonOut) fs.writeFileSync(jsonOut, `${JSON.stringify({ limit, T: Ts, results }, null, 2)}\n`);
