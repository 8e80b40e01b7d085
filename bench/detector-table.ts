/**
 * The detectors' table: one Markdown row per `simulate --json` record of a detector, with the
 * ANN references and the SNN's mAP@[.50:.95] at each T (delayed evaluation), and, when the
 * network had per-sample normalisations, what freezing them cost its ANN as convert measured it.
 * The records are those bench/detectors.sh writes (the ground truth there is the ANN's own
 * detections, so the ANN scores 100 % by construction).
 *
 *   node dist/bench/detector-table.js RECORD.json [RECORD.json ...]
 */
import fs from 'node:fs';
import path from 'node:path';
import { argv } from './args.js';
import type { SimulateRecord } from '../src/report/record.js';

if (!argv.length) {
  console.error('usage: detector-table RECORD.json [RECORD.json ...]');
  process.exit(1);
}
const records = argv.map((f) => ({ r: JSON.parse(fs.readFileSync(f, 'utf8')) as SimulateRecord }));
const Ts = [...new Set(records.flatMap(({ r }) => r.results.map((x) => x.T)))].sort((a, b) => a - b);
const pct = (v: number | null | undefined): string => (v === null || v === undefined ? '–' : (100 * v).toFixed(2));

interface Cost {
  readonly samples: number;
  readonly outputs: readonly { readonly name: string; readonly error: number }[];
  readonly agreement: { readonly measure: string; readonly value: number } | null;
}
const costOf = (r: SimulateRecord): { samples: number; cost: Cost } | undefined =>
  (r.calibration as { normalization?: { samples: number; cost: Cost } }).normalization;

console.log(
  `| model | test images | d̂ | ANN | ANN, normalisations frozen | clipped ANN | ${Ts.map((T) => `T=${T}`).join(' | ')} |`,
);
console.log(`|---|---|---|---|---|---|${Ts.map(() => '---|').join('')}`);
for (const { r } of records) {
  const at = (T: number): string => {
    const x = r.results.find((y) => y.T === T);
    return x ? `${pct(x.metric)} (d=${x.delay})` : '–';
  };
  console.log(
    `| ${path.basename(r.model)} | ${r.samples} | ${r.delay.estimated} | ${pct(r.ann?.metric)} | ${r.frozenAnn ? pct(r.frozenAnn.metric) : 'none to freeze'} | ${pct(r.clippedAnn?.metric)} | ${Ts.map(at).join(' | ')} |`,
  );
}
for (const { r } of records) {
  const n = costOf(r);
  if (!n) continue;
  const moved = n.cost.outputs.map((o) => `${o.name} ${pct(o.error)} %`).join(', ');
  const agree = n.cost.agreement ? `; ${n.cost.agreement.measure}: ${pct(n.cost.agreement.value)} %` : '';
  console.log(
    `\n${path.basename(r.model)}: freezing its normalisations (statistics over ${n.samples} calibration images) changes its ANN on ${n.cost.samples} other images: outputs by ${moved}${agree}.`,
  );
}
