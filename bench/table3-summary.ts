/**
 * The results of bench/table3-media.sh as Markdown rows for docs/table3.md:
 *
 *   node dist/bench/table3-summary.js WORKDIR/runs/*.json
 *
 * Per run and T: the SNN's metric and secondary metric, the ANN's and the clipped ANN's; for
 * segmentation also the share of pixels where the SNN's class map equals the ANN's, on the
 * pictured images (the record's `pictures`, every pixel of them), since random weights make the
 * mIoU against the generated masks say little.
 */
import './args.js'; // --help prints the header above and stops
import fs from 'node:fs';
import path from 'node:path';
import { parseRecord, type SimulateRecord } from '../src/report/record.js';
import { metricNamesOf } from '../src/tasks/task.js';

/** A run-length mask "class:count …" as one class per pixel. */
function pixels(runs: string): number[] {
  return runs
    .trim()
    .split(/\s+/)
    .flatMap((r) => {
      const [c, n] = r.split(':').map(Number);
      return Array<number>(n).fill(c);
    });
}

const pct = (v: number | null | undefined): string => (v === null || v === undefined ? '–' : (100 * v).toFixed(2));

for (const file of process.argv.slice(2)) {
  const r = parseRecord(JSON.parse(fs.readFileSync(file, 'utf8')), file) as SimulateRecord;
  const [m1, m2] = metricNamesOf(r);
  const agree = new Map<number, number>();
  const p = r.pictures;
  if (p && p.task === 'segmentation') {
    p.windows.forEach((w, k) => {
      let same = 0;
      let all = 0;
      for (const s of p.samples) {
        if (!s.ann?.mask || !s.snn[k]?.mask) continue;
        const a = pixels(s.ann.mask);
        const b = pixels(s.snn[k].mask as string);
        a.forEach((c, i) => {
          all++;
          if (c === b[i]) same++;
        });
      }
      if (all) agree.set(w.T, same / all);
    });
  }
  process.stdout.write(
    `\n${path.basename(file, '.json')} (${r.samples} samples; ANN ${m1} ${pct(r.ann?.metric)}, ${m2} ${pct(r.ann?.secondary)}; clipped ANN ${m1} ${pct(r.clippedAnn?.metric)})\n\n`,
  );
  process.stdout.write(`| T | delay | ${m1} % | ${m2} % |${agree.size ? ' pixels as the ANN % |' : ''}\n`);
  process.stdout.write(`|---:|---:|---:|---:|${agree.size ? '---:|' : ''}\n`);
  for (const x of r.results)
    process.stdout.write(
      `| ${x.T} | ${x.delay} | ${pct(x.metric)} | ${pct(x.secondary)} |${agree.size ? ` ${pct(agree.get(x.T))} |` : ''}\n`,
    );
}
