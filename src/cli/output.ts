/** What the CLI writes: plain-text tables on the terminal, and the record's files. */
import type { NormalizationRecord } from '../snn/format.js';
import { writeFilesAtomic, type NamedPath } from '../files.js';
import { reportHtml } from '../report/html.js';
import { reportMarkdown } from '../report/markdown.js';
import { resultsRows, si } from '../report/sections.js';
import type { RunRecord, SimulateRecord } from '../report/record.js';
import type { EnergyReport } from '../energy/energy.js';
import { metricNamesOf } from '../tasks/task.js';
import { messageOf, noticeText, type OutputFlags } from './options.js';
import { SpikeportError } from '../errors.js';
import type { Notice } from '../progress.js';

/** A command's failure on stderr: a user error as one line (exit 1), anything else as a bug with its trace (exit 2). */
export function reportError(e: unknown): void {
  if (e instanceof SpikeportError) {
    process.stderr.write(`spikeport: error: ${messageOf(e)}\n`);
    process.exitCode = 1;
  } else {
    process.stderr.write(`spikeport: internal error (please report): ${(e as Error).stack ?? String(e)}\n`);
    process.exitCode = 2;
  }
}

/** Notices on stderr, one line each, in the CLI's words (flags, not fields). */
export function printNotices(notices: readonly Notice[]): void {
  for (const n of notices) process.stderr.write(`spikeport: note: ${noticeText(n)}\n`);
}

export function pct(v: number | null | undefined): string {
  return v === null || v === undefined ? '-' : (100 * v).toFixed(2);
}

export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => c.padStart(widths[i])).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

export interface OutputFile {
  readonly path: string;
  readonly data: Uint8Array | string;
}

/** The files of --json, --report (HTML) and --markdown for a record. */
export async function recordFiles(r: RunRecord, f: OutputFlags): Promise<OutputFile[]> {
  return [
    ...(f.json ? [{ path: f.json, data: JSON.stringify(r, null, 2) + '\n' }] : []),
    ...(f.report ? [{ path: f.report, data: await reportHtml(r) }] : []),
    ...(f.markdown ? [{ path: f.markdown, data: reportMarkdown(r) }] : []),
  ];
}

/** The output flags as named paths, for checkPaths. */
export function outputPaths(f: OutputFlags & { out?: string; save?: string }): NamedPath[] {
  const named: [string | undefined, string][] = [
    [f.out, '--out'],
    [f.save, '--save'],
    [f.json, '--json'],
    [f.report, '--report'],
    [f.markdown, '--markdown'],
  ];
  // An empty name is an output too: checkPaths refuses it rather than leaving it unwritten.
  return named.flatMap(([p, role]) => (p !== undefined ? [{ path: p, role }] : []));
}

/** Write every output of a command in one step: all of them, or none. */
export function writeOutputs(files: readonly OutputFile[]): void {
  writeFilesAtomic(files);
}

/** The metric against T, with and without delay, and the ANN lines. */
export function resultsTable(r: SimulateRecord): string {
  const [m1] = metricNamesOf(r);
  const ceiling = r.ceiling;
  const results = resultsRows(r, pct);
  const lines = [
    table(results.header, results.rows),
    '',
    `estimated delay d̂ = ${r.delay.estimated}; ${r.delay.rule.startsWith('fixed') ? `delay ${r.delay.rule.slice(6)} from --delay (at most T − 1)` : 'delay at T = min(d̂, ⌊T/2⌋) unless --delay is given'}`,
  ];
  if (r.ann)
    lines.push(
      `ANN ${m1} ${pct(r.ann.metric)} %, ${r.frozenAnn ? `ANN with the normalisations frozen ${pct(r.frozenAnn.metric)} %, ` : ''}clipped ANN ${m1} ${pct(r.clippedAnn?.metric)} % (same ${r.samples} samples)`,
    );
  const d = r.detection;
  if (d)
    lines.push(
      `detection head ${d.head} (${d.classes} classes; outputs ${(r.outputs ?? []).map((o) => o.name).join(', ')}): score ${d.head === 'centernet' ? '≥' : '>'} ${d.scoreThreshold}${d.head === 'centernet' ? '' : `, top ${d.topCandidates} per level`}, NMS IoU ${d.nmsThreshold}, ${d.detectionsPerImage} per image`,
    );
  if (ceiling)
    lines.push(
      `ceiling: the ANN with each site quantised to what an IF neuron can output in T steps, (θ/L)·clip(⌊x·L/θ + ½⌋, 0, L) with L = ${ceiling[0] && ceiling[0].levels !== ceiling[0].T ? `${ceiling[0].levels / ceiling[0].T}·T (groups)` : 'T'}; below it the loss is quantisation, between it and the SNN timing`,
    );
  return lines.join('\n') + '\n';
}

export function energySummary(e: EnergyReport): string {
  const at = (p: EnergyReport['sops90'], x: number): string =>
    p ? `SOPs${x} ${si(p.sops)} at T=${p.T} (${p.fpsPerW.toFixed(1)} FPS/W)` : `SOPs${x}: not reached`;
  const last = e.perT[e.perT.length - 1];
  // SOPs90/95 are measured against the ANN's score: without it there is nothing to reach.
  const reach =
    e.ann.metric === null
      ? 'SOPs90/SOPs95: need the ANN reference (--ann FILE)'
      : `${at(e.sops90, 90)}; ${at(e.sops95, 95)}`;
  return `energy (${e.constants.name}): ANN ${si(e.ann.macs)} MACs, ${e.ann.fpsPerW.toFixed(1)} FPS/W; SNN at T=${last.T} ${si(last.sops)} SOPs, ${last.fpsPerW.toFixed(1)} FPS/W; ${reach}\n`;
}

/** The frozen normalisations and what they cost the ANN, in one line (convert, simulate). */
export function normalizationLine(n: NormalizationRecord): string {
  const names = n.norms.length === 1 ? n.norms[0] : `${n.norms.length} normalisations (${n.norms[0]}, …)`;
  const c = n.cost;
  const moved = c.outputs.map((o) => `${pct(o.error)} % (${o.name})`).join(', ');
  const agree = c.agreement ? `; ${c.agreement.measure}: ${pct(c.agreement.value)} %` : '';
  const where = c.heldOut
    ? `on ${c.samples} other samples`
    : `on the same samples (too few calibration samples for others)`;
  return `${names} normalise each sample: frozen to their mean statistics over ${n.samples} calibration samples; this changes the ANN itself ${where}: outputs by ${moved}${agree}\n`;
}

/**
 * Where a simulate command's time went, in one line: the simulation on the wall clock, its setup
 * (graphs and ONNX Runtime sessions) and its time steps (per sample-step), the references, and
 * the whole command since its process started.
 */
export function timeSummary(r: SimulateRecord, commandSeconds: number): string {
  const s = (v: number | undefined): string => (v === undefined ? '?' : `${v.toFixed(1)} s`);
  const range = (v: readonly (number | undefined)[]): string => {
    const k = v.filter((x): x is number => x !== undefined);
    if (!k.length) return '?';
    const [lo, hi] = [Math.min(...k), Math.max(...k)];
    return lo.toFixed(1) === hi.toFixed(1) ? `${lo.toFixed(1)} s` : `${lo.toFixed(1)}–${hi.toFixed(1)} s`;
  };
  const t = r.times ?? {};
  const sampleSteps = r.samples * (r.results.length ? r.results[r.results.length - 1].T : 0);
  const perStep = (steps: number | undefined): string =>
    steps !== undefined && sampleSteps > 0 ? `, ${((1000 * steps) / sampleSteps).toFixed(2)} ms per sample-step` : '';
  const parts = t.workers
    ? [
        `simulation ${s(r.simulationSeconds)} on the wall clock in ${t.workers.length} workers (each: setup ${range(t.workers.map((w) => w.setupSeconds))}, time steps ${range(t.workers.map((w) => w.stepSeconds))})`,
        ...(t.workers.some((w) => w.referencesSeconds !== undefined)
          ? [`references ${range(t.workers.map((w) => w.referencesSeconds))} each`]
          : []),
      ]
    : [
        `simulation ${s(r.simulationSeconds)}: setup ${s(t.setupSeconds)} (graphs and sessions), time steps ${s(t.stepSeconds)}${perStep(t.stepSeconds)}`,
        ...(t.referencesSeconds !== undefined ? [`references ${s(t.referencesSeconds)}`] : []),
      ];
  return `time: ${[...parts, `the whole command ${s(commandSeconds)}`].join('; ')}\n`;
}
