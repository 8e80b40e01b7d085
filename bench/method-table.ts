/**
 * Markdown table of top-1 against T from `spikeport simulate --json` files:
 *   node dist/bench/method-table.js a.json b.json ...
 * The first file's method also gets a "+delay" column (the others are shown without delay,
 * as in the paper's ablation).
 */
import './args.js'; // --help prints the header above and stops
import fs from 'node:fs';

interface Run {
  method: string;
  samples: number;
  ann: { metric: number };
  clippedAnn: { metric: number };
  delay: { estimated: number };
  results: { T: number; delay: number; metric: number; metricNoDelay: number }[];
}

const runs = process.argv.slice(2).map((f) => JSON.parse(fs.readFileSync(f, 'utf8')) as Run);
if (runs.length === 0) throw new Error('usage: method-table.js run.json ...');
const f = (v: number): string => (100 * v).toFixed(2);
const Ts = runs[0].results.map((r) => r.T);
const cols = [`${runs[0].method.toUpperCase()}+delay`, ...runs.map((r) => r.method.toUpperCase())];
const lines = [
  `| T | ${cols.join(' | ')} |`,
  `|---|${cols.map(() => '---').join('|')}|`,
  ...Ts.map(
    (T, i) =>
      `| ${T} | ${f(runs[0].results[i].metric)} (d=${runs[0].results[i].delay}) | ${runs.map((r) => f(r.results[i].metricNoDelay)).join(' | ')} |`,
  ),
  `| ANN | ${f(runs[0].ann.metric)} | ${runs.map((r) => f(r.ann.metric)).join(' | ')} |`,
  `| clipped ANN | ${f(runs[0].clippedAnn.metric)} | ${runs.map((r) => f(r.clippedAnn.metric)).join(' | ')} |`,
];
process.stdout.write(
  `${lines.join('\n')}\n\n${runs[0].samples} test samples; estimated delay d̂ = ${runs[0].delay.estimated} (${runs[0].method}).\n`,
);
