/** The fewer-steps experiment's record as report sections (docs/fewer-steps.md). */
import type { StepsRecord, StepsRow } from './record.js';
import type { Row } from './charts.js';
import { lineChart } from './charts.js';
import { METRIC_NAMES } from '../tasks/task.js';
import { pct, si, type Section } from './sections.js';

type Point = StepsRow['points'][number];

/** At T: the best of the rows offered before (and which), chosen by the metric; ties to the cheaper. */
export function bestBefore(r: StepsRecord, T: number): { label: string; point: Point } | null {
  let best: { label: string; point: Point } | null = null;
  for (const row of r.rows) {
    if (!row.before) continue;
    const p = row.points.find((x) => x.T === T);
    if (!p) continue;
    if (!best || p.metric > best.point.metric || (p.metric === best.point.metric && p.energy < best.point.energy))
      best = { label: row.label, point: p };
  }
  return best;
}

/** The first T of the table whose metric is within `points` of the ANN's, for a row (or the best before). */
export function firstWithin(
  r: StepsRecord,
  at: (T: number) => Point | undefined,
  points = 0.01,
): { T: number; point: Point } | null {
  const ann = r.ann?.metric;
  if (ann === undefined) return null;
  for (const T of r.T) {
    const p = at(T);
    if (p && p.metric >= ann - points - 1e-12) return { T, point: p };
  }
  return null;
}

function energyCell(p: Point | undefined): string {
  return p ? `${si(p.sops)} / ${si(p.energy, 'J')}` : '–';
}

export function stepsSections(r: StepsRecord): Section[] {
  const [m1] = METRIC_NAMES[r.task ?? 'classification'];
  const ceiling = (L: number): number | undefined => r.ceiling.find((c) => c.levels === L)?.metric;
  const fresh = r.rows.filter((x) => !x.before);
  const pointOf = (row: StepsRow, T: number): Point | undefined => row.points.find((p) => p.T === T);
  const chartRows: Row[] = [
    ...r.T.map((T) => ({ T, accuracy: ceiling(T) ?? Number.NaN, series: 'ceiling q_T' })),
    ...r.T.flatMap((T) => {
      const b = bestBefore(r, T);
      return b ? [{ T, accuracy: b.point.metric, series: 'best before' }] : [];
    }),
    ...fresh.flatMap((row) => row.points.map((p) => ({ T: p.T, accuracy: p.metric, series: row.label }))),
  ];
  const k = r.groups;
  const summary: Section = {
    title: `${m1} against T: the ceiling, the best before, and the new options`,
    text: [
      `${r.model} on ${r.data}, ${r.samples} samples. ANN ${pct(r.ann?.metric)} %, clipped ANN ${pct(r.clippedAnn?.metric)} %.`,
      'Ceiling q_L: the ANN with every site quantised to the L levels IF neurons starting at θ/2 can output, (θ/L)·clip(⌊x·L/θ + ½⌋, 0, L), at the same thresholds; L = T for one neuron, K·T for groups of K. The gap from the clipped ANN to q_T is quantisation, from q_T to the SNN timing.',
      ...r.notes,
    ],
    chart: lineChart({
      title: `${m1} against T`,
      rows: chartRows,
      x: { field: 'T', title: 'time steps T', log2: true },
      y: { field: 'accuracy', title: m1, percent: true },
      color: { field: 'series', title: '' },
      hlines: [
        ...(r.ann ? [{ label: 'ANN', value: r.ann.metric }] : []),
        ...(r.clippedAnn ? [{ label: 'clipped ANN', value: r.clippedAnn.metric }] : []),
      ],
    }),
    table: {
      header: [
        'T',
        'ANN %',
        'clipped ANN %',
        'ceiling q_T %',
        ...k.map((K) => `q_${K}T %`),
        'best before %',
        ...fresh.map((row) => `${row.label} %`),
      ],
      rows: r.T.map((T) => {
        const b = bestBefore(r, T);
        return [
          String(T),
          pct(r.ann?.metric),
          pct(r.clippedAnn?.metric),
          pct(ceiling(T)),
          ...k.map((K) => pct(ceiling(K * T))),
          b ? `${pct(b.point.metric)} (${b.label})` : '–',
          ...fresh.map((row) => pct(pointOf(row, T)?.metric)),
        ];
      }),
    },
  };
  const all: Section = {
    title: 'Every setting',
    text: ['Metric % at each T (delay d in brackets) and the conversion cost of the row.'],
    table: {
      header: ['setting', 'before', ...r.T.map((T) => `T=${T}`), 'seconds'],
      rows: r.rows.map((row) => [
        row.label,
        row.before ? 'yes' : 'no',
        ...r.T.map((T) => {
          const p = pointOf(row, T);
          return p ? `${pct(p.metric)} (${p.delay})` : '–';
        }),
        Number.isFinite(row.seconds) ? row.seconds.toFixed(1) : '–',
      ]),
    },
  };
  const cost: Section = {
    title: 'SOPs and energy per sample',
    text: [
      `SOPs / energy per sample over the T steps (${r.energyConstants.name}: ${si(r.energyConstants.eSop, 'J')} per SOP, ${si(r.energyConstants.eMac, 'J')} per MAC; analog MACs once per sample). ANN: ${si(r.annMacs)} MACs, ${si(r.annMacs * r.energyConstants.eMac, 'J')}.`,
    ],
    table: {
      header: ['T', 'best before', ...fresh.map((row) => row.label)],
      rows: r.T.map((T) => [
        String(T),
        energyCell(bestBefore(r, T)?.point),
        ...fresh.map((row) => energyCell(pointOf(row, T))),
      ]),
    },
  };
  const within = [
    { label: 'best before', at: (T: number) => bestBefore(r, T)?.point },
    ...r.rows.map((row) => ({ label: row.label, at: (T: number) => pointOf(row, T) })),
  ];
  const first: Section = {
    title: 'The first T within 1 point of the ANN',
    text: [
      "Per setting, the first T of the table whose metric is at most 1 point below the ANN's, with its SOPs and energy per sample.",
    ],
    table: {
      header: ['setting', 'T', `${m1} %`, 'SOPs', 'energy'],
      rows: within.map(({ label, at }) => {
        const f = firstWithin(r, at);
        return f
          ? [label, String(f.T), pct(f.point.metric), si(f.point.sops), si(f.point.energy, 'J')]
          : [label, '–', '–', '–', '–'];
      }),
    },
  };
  return [summary, cost, first, all];
}
