/** What the CLI writes: plain-text tables on the terminal, and the record's files. */
import { writeFileAtomic } from '../files.js';
import { reportHtml } from '../report/html.js';
import { reportMarkdown } from '../report/markdown.js';
import { si } from '../report/sections.js';
import type { RunRecord, SimulateRecord } from '../report/record.js';
import type { EnergyReport } from '../energy/energy.js';
import { METRIC_NAMES } from '../tasks/task.js';
import type { OutputFlags } from './options.js';

export function pct(v: number | null | undefined): string {
  return v === null || v === undefined ? '-' : (100 * v).toFixed(2);
}

export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => c.padStart(widths[i])).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** --json, --report (HTML), --markdown: each written whole or not at all. */
export async function writeOutputs(r: RunRecord, f: OutputFlags): Promise<void> {
  if (f.json) writeFileAtomic(f.json, JSON.stringify(r, null, 2) + '\n');
  if (f.report) writeFileAtomic(f.report, await reportHtml(r));
  if (f.markdown) writeFileAtomic(f.markdown, reportMarkdown(r));
}

/** The metric against T, with and without delay, and the ANN lines. */
export function resultsTable(r: SimulateRecord): string {
  const [m1, m2] = METRIC_NAMES[r.task ?? 'classification'];
  const rows = r.results.map((x) => [String(x.T), String(x.delay), pct(x.metric), pct(x.metricNoDelay), pct(x.secondary)]);
  const lines = [
    table(['T', 'delay', `${m1} %`, 'no delay %', `${m2} %`], rows),
    '',
    `estimated delay d̂ = ${r.delay.estimated}; ${r.delay.rule.startsWith('fixed') ? `delay ${r.delay.rule.slice(6)} from --delay (at most T − 1)` : 'delay at T = min(d̂, ⌊T/2⌋) unless --delay is given'}`,
  ];
  if (r.ann) lines.push(`ANN ${m1} ${pct(r.ann.metric)} %, clipped ANN ${m1} ${pct(r.clippedAnn?.metric)} % (same ${r.samples} samples)`);
  return lines.join('\n') + '\n';
}

export function energySummary(e: EnergyReport): string {
  const at = (p: EnergyReport['sops90'], x: number): string => (p ? `SOPs${x} ${si(p.sops)} at T=${p.T} (${p.fpsPerW.toFixed(1)} FPS/W)` : `SOPs${x}: not reached`);
  const last = e.perT[e.perT.length - 1];
  return `energy (${e.constants.name}): ANN ${si(e.ann.macs)} MACs, ${e.ann.fpsPerW.toFixed(1)} FPS/W; SNN at T=${last.T} ${si(last.sops)} SOPs, ${last.fpsPerW.toFixed(1)} FPS/W; ${at(e.sops90, 90)}; ${at(e.sops95, 95)}\n`;
}
