/**
 * The tables of docs/fewer-steps.md from `spikeport experiment steps` records: per model, the
 * metric against T (ANN, clipped ANN, the ceiling, the best setting offered before, each new
 * option), SOPs and energy per sample, and the first T within 1 point of the ANN.
 *
 *   node dist/bench/fewer-steps-table.js docs/generated/results/fewer-steps-*.json
 */
import './args.js'; // --help prints the header above and stops
import fs from 'node:fs';
import { parseRecord, type StepsRecord, type StepsRow } from '../src/report/record.js';
import { bestBefore, firstWithin } from '../src/report/steps.js';
import { pct, si } from '../src/report/sections.js';

const files = process.argv.slice(2);
if (files.length === 0) throw new Error('usage: fewer-steps-table.js RECORD.json ...');

/** Short column names for the rows shown. */
const SHOWN: readonly [RegExp, (m: RegExpMatchArray) => string][] = [
  [/^groups of (\d+) \+ DE$/, (m) => `K=${m[1]}, DE`],
  [/^groups of (\d+) \+ DE \(fit\)$/, (m) => `K=${m[1]}, DE (fit)`],
  [/^CLTB \+ bias \+ threshold-scale calibration \+ DE$/, () => 'scale cal. + DE'],
  [/^CLTB \+ per-step bias calibration \+ DE$/, () => 'step-bias cal. + DE'],
];

function shown(r: StepsRecord): { name: string; row: StepsRow }[] {
  return r.rows.flatMap((row) => {
    for (const [re, name] of SHOWN) {
      const m = row.label.match(re);
      if (m) return [{ name: name(m), row }];
    }
    return [];
  });
}

const md = (header: string[], rows: string[][]): string =>
  [
    `| ${header.join(' | ')} |`,
    `|${header.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');

const SHORT: Readonly<Record<string, string>> = {
  'CLTB + DE': 'DE',
  'CLTB + DE (fit)': 'fit',
  'CLTB + bias calibration + DE': 'bias+DE',
  'CLTB + bias calibration': 'bias',
  'CLTB + potential calibration + DE': 'pot.+DE',
  'CLTB + potential calibration': 'pot.',
};

for (const file of files) {
  const r = parseRecord(JSON.parse(fs.readFileSync(file, 'utf8')), file);
  if (r.kind !== 'steps') throw new Error(`${file} is a ${r.kind} record, not an experiment steps record`);
  const cols = shown(r);
  const q = (L: number): number | undefined => r.ceiling.find((c) => c.levels === L)?.metric;
  const at = (row: StepsRow, T: number) => row.points.find((p) => p.T === T);
  console.log(`\n### ${r.model} (${r.samples} test samples)\n`);
  console.log(
    md(
      [
        'T',
        'ANN',
        'clipped ANN',
        'ceiling q_T',
        ...r.groups.map((K) => `q_${K}T`),
        'best before',
        ...cols.map((c) => c.name),
      ],
      r.T.map((T) => {
        const b = bestBefore(r, T);
        return [
          String(T),
          pct(r.ann?.metric),
          pct(r.clippedAnn?.metric),
          pct(q(T)),
          ...r.groups.map((K) => pct(q(K * T))),
          b ? `${pct(b.point.metric)} (${SHORT[b.label] ?? b.label})` : '–',
          ...cols.map((c) => pct(at(c.row, T)?.metric)),
        ];
      }),
    ),
  );
  console.log('\nSOPs / energy per sample:\n');
  console.log(
    md(
      ['T', 'best before', ...cols.map((c) => c.name)],
      r.T.map((T) => {
        const cell = (p: { sops: number; energy: number } | undefined): string =>
          p ? `${si(p.sops)} / ${si(p.energy, 'J')}` : '–';
        return [String(T), cell(bestBefore(r, T)?.point), ...cols.map((c) => cell(at(c.row, T)))];
      }),
    ),
  );
  console.log('\nFirst T within 1 point of the ANN:\n');
  const within = [
    { name: 'best before', at: (T: number) => bestBefore(r, T)?.point },
    ...r.rows.map((row) => ({ name: row.label, at: (T: number) => at(row, T) })),
  ];
  console.log(
    md(
      ['setting', 'T', 'metric', 'SOPs', 'energy', 'conversion s'],
      within.map(({ name, at: pick }) => {
        const f = firstWithin(r, pick);
        const seconds = r.rows.find((x) => x.label === name)?.seconds;
        return [
          name,
          f ? String(f.T) : '–',
          f ? pct(f.point.metric) : '–',
          f ? si(f.point.sops) : '–',
          f ? si(f.point.energy, 'J') : '–',
          seconds !== undefined && Number.isFinite(seconds) ? seconds.toFixed(1) : '–',
        ];
      }),
    ),
  );
}
