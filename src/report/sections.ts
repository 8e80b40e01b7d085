/**
 * A record as a list of sections (text, tables, charts); html.ts and markdown.ts render the
 * same sections, so the terminal summary and the page never disagree.
 */
import type { TopLevelSpec } from 'vega-lite';
import type { EnergyReport } from '../energy/energy.js';
import type { CurvesRecord, DelayRecord, EnergyRecord, Pictures, RunRecord, SimulateRecord } from './record.js';
import { picturesText } from './picture-html.js';
import { stepsSections } from './steps.js';
import { barChart, lineChart, type Row } from './charts.js';
import { metricNamesOf, type Task } from '../tasks/task.js';

/** The record's metric names (records written before tasks are classification). */
function names(r: { task?: Task; metrics?: readonly [string, string] }): readonly [string, string] {
  return metricNamesOf(r);
}

export interface Table {
  readonly header: readonly string[];
  readonly rows: readonly (readonly string[])[];
}

export interface Section {
  readonly title: string;
  readonly text?: readonly string[];
  readonly table?: Table;
  readonly chart?: TopLevelSpec;
  /** Test images with predictions (the HTML draws them; Markdown gives the text only). */
  readonly pictures?: Pictures;
}

export function pct(v: number | null | undefined, digits = 2): string {
  return v === null || v === undefined ? '–' : (100 * v).toFixed(digits);
}

/** 1234567 → "1.23 M". */
export function si(v: number | null | undefined, unit = ''): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '–';
  const prefixes: [number, string][] = [
    [1e12, 'T'],
    [1e9, 'G'],
    [1e6, 'M'],
    [1e3, 'k'],
    [1, ''],
    [1e-3, 'm'],
    [1e-6, 'µ'],
    [1e-9, 'n'],
    [1e-12, 'p'],
    [1e-15, 'f'],
  ];
  const a = Math.abs(v);
  const [f, p] = prefixes.find(([x]) => a >= x) ?? [1e-15, 'f'];
  return `${(v / f).toPrecision(3)} ${p}${unit}`.trim();
}

function num(v: number | null | undefined, digits = 1): string {
  return v === null || v === undefined || !Number.isFinite(v) ? '–' : v.toFixed(digits);
}

export function sections(r: RunRecord): Section[] {
  switch (r.kind) {
    case 'simulate':
      return simulateSections(r);
    case 'ablation':
    case 'iterations':
    case 'plugplay':
      return curvesSections(r);
    case 'delay':
      return delaySections(r);
    case 'energy':
      return energySections(r);
    case 'steps':
      return stepsSections(r);
  }
}

export function title(r: RunRecord): string {
  const what = {
    simulate: 'SNN simulation',
    ablation: 'Ablation: calibration methods',
    iterations: 'CLTB iterations',
    plugplay: 'Plug-and-play',
    delay: 'Delayed evaluation sweep',
    steps: 'Fewer steps for the same accuracy',
    energy: 'Operations and energy',
  }[r.kind];
  return `${what} — ${r.model} on ${r.data} (${r.samples} samples)`;
}

/** The metric against T as a table: T, delay, the metric with and without delay, the second metric (and the ceiling). */
export function resultsRows(
  r: SimulateRecord,
  percent: (v: number | null | undefined) => string = pct,
): { header: string[]; rows: string[][] } {
  const [m1, m2] = metricNamesOf(r);
  const ceiling = r.ceiling;
  return {
    header: ['T', 'delay', `${m1} %`, 'no delay %', `${m2} %`, ...(ceiling ? [`ceiling ${m1} %`] : [])],
    rows: r.results.map((x, i) => [
      String(x.T),
      String(x.delay),
      percent(x.metric),
      percent(x.metricNoDelay),
      percent(x.secondary),
      ...(ceiling ? [percent(ceiling[i]?.metric)] : []),
    ]),
  };
}

function annLines(
  ann: { metric: number } | null,
  clipped?: { metric: number } | null,
): { label: string; value: number }[] {
  return [
    ...(ann ? [{ label: 'ANN', value: ann.metric }] : []),
    ...(clipped ? [{ label: 'clipped ANN', value: clipped.metric }] : []),
  ];
}

function simulateSections(r: SimulateRecord): Section[] {
  const [m1] = names(r);
  const ceiling = r.ceiling;
  const rows: Row[] = r.results.flatMap((x, i) => [
    { T: x.T, accuracy: x.metric, series: 'SNN, delayed evaluation' },
    { T: x.T, accuracy: x.metricNoDelay, series: 'SNN, no delay' },
    ...(ceiling?.[i] ? [{ T: x.T, accuracy: ceiling[i].metric, series: 'ceiling (ANN quantised to T steps)' }] : []),
  ]);
  const out: Section[] = [
    {
      title: 'Run',
      text: [
        `Model ${r.model}; data ${r.data}, ${r.samples} samples; thresholds ${r.method} (${r.iterations} iterations); max pooling ${r.maxpool}.`,
        `Estimated delay d̂ = ${r.delay.estimated}; delay at T: ${r.delay.rule}. Simulation ${num(r.simulationSeconds)} s on the wall clock${timesNote(r.times)}${engineNote(r.engines)}.`,
        ...(r.outputs && r.outputs.length > 1
          ? [`Outputs read out: ${r.outputs.map((o) => `${o.name} [${o.shape.join('×')}]`).join(', ')}.`]
          : []),
        ...(r.detection
          ? [
              `Detection head ${r.detection.head} (${r.detection.classes} classes): scores above ${r.detection.scoreThreshold}${r.detection.head === 'centernet' ? '' : `, the best ${r.detection.topCandidates} per level`}, NMS at IoU ${r.detection.nmsThreshold}, ${r.detection.detectionsPerImage} detections per image.`,
            ]
          : []),
        ...(r.normalize !== undefined ? [normalizeText(r.normalize)] : []),
        ...(r.ann
          ? [
              `ANN ${m1} ${pct(r.ann.metric)} %; ${r.frozenAnn ? `ANN with its per-sample normalisations frozen (what the SNN converts) ${pct(r.frozenAnn.metric)} %; ` : ''}clipped ANN (ReLU → clip(x, 0, θ)) ${pct(r.clippedAnn?.metric)} %.`,
              ...(ceiling
                ? [
                    `Ceiling at T: the ANN with every site quantised to the L levels an IF neuron starting at θ/2 can output in T steps, (θ/L)·clip(⌊x·L/θ + ½⌋, 0, L), L = ${ceiling[0] && ceiling[0].levels !== ceiling[0].T ? `${ceiling[0].levels / ceiling[0].T}·T (groups of binary neurons)` : 'T'}. The gap from the clipped ANN to the ceiling is quantisation (more levels per step help), from the ceiling to the SNN timing (calibration and the delay help); docs/algorithm.md §4.1.`,
                  ]
                : []),
            ]
          : [
              'No ANN reference (the source ANN was not found in the SNN’s folder; name it: the ann option, and ask for references).',
            ]),
      ],
    },
    ...(r.notices?.length
      ? [{ title: 'Notes', text: r.notices.map((n) => `${n.message.charAt(0).toUpperCase()}${n.message.slice(1)}.`) }]
      : []),
    ...(r.pictures && r.pictures.samples.length > 0
      ? [
          {
            title:
              r.pictures.task === 'classification' || r.pictures.task === 'video'
                ? `Misclassified at T = ${r.pictures.windows[0]?.T ?? '–'}`
                : 'Pictures',
            text: picturesText(r.pictures),
            pictures: r.pictures,
          },
        ]
      : []),
    {
      title: `${m1} against time steps`,
      chart: lineChart({
        title: `${m1} against T`,
        rows,
        x: { field: 'T', title: 'time steps T', log2: true },
        y: { field: 'accuracy', title: m1, percent: true },
        color: { field: 'series', title: '' },
        hlines: [
          ...annLines(r.ann, r.clippedAnn),
          ...(r.frozenAnn ? [{ label: 'frozen ANN', value: r.frozenAnn.metric }] : []),
        ],
      }),
      table: resultsRows(r),
    },
  ];
  const errs = r.siteErrors;
  out.push({
    title: 'Firing rates',
    text: ['Spikes per neuron per step at each neuron site, over all steps simulated.'],
    chart: barChart({
      title: 'Firing rate per site',
      rows: r.firingRates.map((f) => ({ site: f.site, rate: f.rate })),
      x: { field: 'site', title: 'neuron site' },
      y: { field: 'rate', title: 'spikes / neuron / step', percent: true },
    }),
    table: { header: ['site', 'firing rate %'], rows: r.firingRates.map((f) => [f.site, pct(f.rate)]) },
  });
  if (errs) {
    out.push({
      title: 'Where the error comes from',
      text: [
        `Per site, relative L2 errors on ${errs.samples} samples: clip error ε_l = ‖ReLU(x) − clip(x, 0, θ)‖/‖ReLU(x)‖ (what the thresholds cut off), and the SNN's average output over steps ${errs.delay + 1}..${errs.T} against the ANN and the clipped ANN at the same site (the output error is bounded by the per-site clip errors, amplified by the layers after them; docs/algorithm.md §4).`,
      ],
      chart: barChart({
        title: `Per-site error at T = ${errs.T}`,
        rows: errs.sites.flatMap((s) => [
          { site: s.site, error: s.clipError, kind: 'clip error ε_l' },
          { site: s.site, error: s.snnVsClipped, kind: 'SNN vs clipped ANN' },
          { site: s.site, error: s.snnVsAnn, kind: 'SNN vs ANN' },
        ]),
        x: { field: 'site', title: 'neuron site' },
        y: { field: 'error', title: 'relative L2 error' },
        group: { field: 'kind', title: '' },
      }),
      table: {
        header: ['site', 'firing rate %', 'clip error ε_l', 'SNN vs clipped ANN', 'SNN vs ANN'],
        rows: errs.sites.map((s, i) => [
          s.site,
          pct(r.firingRates[i]?.rate),
          s.clipError.toFixed(4),
          s.snnVsClipped.toFixed(4),
          s.snnVsAnn.toFixed(4),
        ]),
      },
    });
  }
  if (r.energy) out.push(...energyDetail(r.energy, m1));
  return out;
}

function energyDetail(e: EnergyReport, m1: string): Section[] {
  return [
    {
      title: 'Operations and energy per frame',
      text: [
        `Constants: ${e.constants.note}.`,
        `ANN: ${si(e.ann.macs)} MACs, ${si(e.ann.energy, 'J')} per frame, ${num(e.ann.fpsPerW)} FPS/W.`,
        `SNN: SOPs are counted per step (events × fan-out) and include the steps before the readout window. Layers on the analog input are computed once per frame (direct coding) and count as MACs. ` +
          `"FPS/W (SOPs only)" is the paper's convention.`,
        e.ann.metric === null
          ? 'SOPs90 / SOPs95 (first T at ≥ 90 % / 95 % of the ANN) need the ANN reference, which this run did not have.'
          : `SOPs90 (first T at ≥ 90 % of the ANN): ${e.sops90 ? `${si(e.sops90.sops)} at T = ${e.sops90.T}, ${num(e.sops90.fpsPerW)} FPS/W` : 'not reached'}; ` +
            `SOPs95: ${e.sops95 ? `${si(e.sops95.sops)} at T = ${e.sops95.T}, ${num(e.sops95.fpsPerW)} FPS/W` : 'not reached'}.`,
      ],
      table: {
        header: ['T', `${m1} %`, 'SOPs', 'MACs', 'energy', 'FPS/W', 'FPS/W (SOPs only)', 'vs ANN energy'],
        rows: e.perT.map((p) => [
          String(p.T),
          pct(p.metric),
          si(p.sops),
          si(p.macs),
          si(p.energy, 'J'),
          num(p.fpsPerW),
          num(p.fpsPerWSopsOnly),
          `${num(p.energy / e.ann.energy, 3)}×`,
        ]),
      },
      chart: lineChart({
        title: 'Energy per frame against T',
        x: { field: 'T', title: 'time steps T', log2: true },
        y: { field: 'energy', title: 'joules per frame', log10: true },
        color: { field: 'series', title: '' },
        rows: e.perT.map((p) => ({ T: p.T, energy: p.energy, series: 'SNN' })),
        hlines: [{ label: 'ANN', value: e.ann.energy }],
      }),
    },
    {
      title: 'Per layer',
      table: {
        header: ['layer', 'op', 'input', 'MACs', 'SOPs (all steps)', 'SOPs ÷ (MACs·T)'],
        rows: e.layers.map((l) => [
          l.node,
          l.opType,
          l.where,
          si(l.macs),
          si(l.sops),
          l.density === null ? '–' : l.density.toFixed(4),
        ]),
      },
    },
  ];
}

function curvesSections(r: CurvesRecord): Section[] {
  const [m1] = names(r);
  const rows: Row[] = r.curves.flatMap((c) => c.points.map((p) => ({ T: p.T, accuracy: p.metric, series: c.label })));
  const Ts = [...new Set(r.curves.flatMap((c) => c.points.map((p) => p.T)))].sort((a, b) => a - b);
  return [
    {
      title: {
        ablation: "Calibration methods against T (the paper's Fig. 3a)",
        iterations: "CLTB iterations against T (the paper's Fig. 3b)",
        plugplay: "Plug-and-play with QCFS and calibrations after conversion (the paper's Table 1)",
      }[r.kind],
      text: [...r.notes, ...(r.ann ? [`ANN ${m1} ${pct(r.ann.metric)} %.`] : [])],
      chart: lineChart({
        title: `${m1} against T`,
        rows,
        x: { field: 'T', title: 'time steps T', log2: true },
        y: { field: 'accuracy', title: m1, percent: true },
        color: { field: 'series', title: '' },
        hlines: annLines(r.ann),
      }),
      table: {
        header: ['setting', ...Ts.map((T) => `T=${T}`), 'seconds'],
        rows: r.curves.map((c) => [
          c.label,
          ...Ts.map((T) => pct(c.points.find((p) => p.T === T)?.metric)),
          num(c.seconds),
        ]),
      },
    },
  ];
}

function delaySections(r: DelayRecord): Section[] {
  const [m1] = names(r);
  const rows: Row[] = r.sweeps.flatMap((s) =>
    s.points.map((p) => ({ delay: p.delay, accuracy: p.metric, series: `T=${s.T}` })),
  );
  return [
    {
      title: "Accuracy against the delay (the paper's Fig. 4)",
      text: [
        `The readout is averaged over steps d+1..T. Estimated delay d̂ = ${r.estimated}; the default rule uses min(d̂, ⌊T/2⌋).`,
        ...(r.ann ? [`ANN ${m1} ${pct(r.ann.metric)} %.`] : []),
      ],
      chart: lineChart({
        title: `${m1} against delay d`,
        rows,
        x: { field: 'delay', title: 'delay d (steps discarded)' },
        y: { field: 'accuracy', title: m1, percent: true },
        color: { field: 'series', title: '' },
        vlines: [{ label: `d̂ = ${r.estimated}`, value: r.estimated }],
      }),
      table: {
        header: ['T', 'no delay %', 'rule d', 'at rule %', 'best d', 'at best %'],
        rows: r.sweeps.map((s) => {
          const at = (d: number): number | undefined => s.points.find((p) => p.delay === d)?.metric;
          return [String(s.T), pct(at(0)), String(s.rule), pct(at(s.rule)), String(s.best), pct(at(s.best))];
        }),
      },
    },
  ];
}

function energySections(r: EnergyRecord): Section[] {
  const [m1] = names(r);
  const c = r.rows[0]?.energy.constants;
  return [
    {
      title: "SOPs90 / SOPs95 and FPS/W (the paper's Appendix F table)",
      text: [
        ...(c ? [`Constants: ${c.note}.`] : []),
        `SOPsX: synaptic operations per frame at the first T reached whose ${m1} is ≥ X % of the ANN's (T from the list simulated). FPS/W = frames per joule. SNN FPS/W counts SOPs and the analog first layer's MACs; the paper's convention (SOPs only) is in brackets.`,
        ...r.notes,
      ],
      table: {
        header: [
          'model',
          `ANN ${m1} %`,
          'ANN MACs',
          'ANN FPS/W',
          'T90',
          'SOPs90',
          'SNN90 FPS/W',
          'T95',
          'SOPs95',
          'SNN95 FPS/W',
          'firing rate %',
        ],
        rows: r.rows.map((x) => {
          const e = x.energy;
          const cell = (p: typeof e.sops90): string[] =>
            p ? [String(p.T), si(p.sops), `${num(p.fpsPerW)} [${num(p.fpsPerWSopsOnly)}]`] : ['–', '–', '–'];
          return [
            x.model,
            pct(x.ann?.metric),
            si(e.ann.macs),
            num(e.ann.fpsPerW),
            ...cell(e.sops90),
            ...cell(e.sops95),
            pct(x.firingRate),
          ];
        }),
      },
    },
  ];
}

/** The input normalisation of a run, in words. */
function normalizeText(n: SimulateRecord['normalize']): string {
  if (!n) return 'Input normalisation: none (samples as read, images scaled to 0..1).';
  return `Input normalisation: mean ${n.mean.join(', ')}, std ${n.std.join(', ')}.`;
}

/** Setup against time steps, e.g. ", of which setup 2.1 s and time steps 9.8 s" (several workers: per worker). */
function timesNote(t: SimulateRecord['times']): string {
  if (!t) return '';
  if (t.workers)
    return `, in ${t.workers.length} workers (setup ${t.workers.map((w) => num(w.setupSeconds ?? Number.NaN)).join(' / ')} s, time steps ${t.workers.map((w) => num(w.stepSeconds ?? Number.NaN)).join(' / ')} s)`;
  return t.setupSeconds !== undefined && t.stepSeconds !== undefined
    ? `, of which setup ${num(t.setupSeconds)} s and time steps ${num(t.stepSeconds)} s`
    : '';
}

/** Which engines ran the batches, e.g. " (engine steps: 98 batches, fused: 2)"; `auto` (or several workers) may use both. */
function engineNote(engines: SimulateRecord['engines']): string {
  if (!engines) return '';
  const ran = Object.entries(engines).filter(([, k]) => (k ?? 0) > 0);
  if (ran.length === 0) return '';
  return ` (engine ${ran.map(([e, k]) => `${e}: ${k} batch${k === 1 ? '' : 'es'}`).join(', ')})`;
}
