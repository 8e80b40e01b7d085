/**
 * Charts as Vega-Lite specs, rendered to SVG in Node (no browser, no CDN): the report embeds
 * the SVG text, so it opens offline anywhere.
 */
import type { TopLevelSpec } from 'vega-lite';

export type Row = Readonly<Record<string, string | number | null>>;

export interface LineChart {
  readonly title: string;
  readonly rows: readonly Row[];
  readonly x: { readonly field: string; readonly title: string; readonly log2?: boolean };
  readonly y: { readonly field: string; readonly title: string; readonly percent?: boolean; readonly log10?: boolean };
  readonly color: { readonly field: string; readonly title: string };
  /** Horizontal reference lines (e.g. the ANN's accuracy). */
  readonly hlines?: readonly { readonly label: string; readonly value: number }[];
  /** Vertical reference lines (e.g. the estimated delay). */
  readonly vlines?: readonly { readonly label: string; readonly value: number }[];
}

const SIZE = { width: 520, height: 300 };

export function lineChart(c: LineChart): TopLevelSpec {
  const yScale = c.y.log10 ? { type: 'log' as const } : { zero: false };
  const layers: object[] = [
    {
      data: { values: c.rows },
      mark: { type: 'line', point: true },
      encoding: {
        x: {
          field: c.x.field,
          type: 'quantitative',
          title: c.x.title,
          ...(c.x.log2
            ? { scale: { type: 'log', base: 2 }, axis: { values: [...new Set(c.rows.map((r) => r[c.x.field]))] } }
            : {}),
        },
        y: {
          field: c.y.field,
          type: 'quantitative',
          title: c.y.title,
          scale: yScale,
          ...(c.y.percent ? { axis: { format: '.1%' } } : c.y.log10 ? { axis: { format: '.2~s' } } : {}),
        },
        color: { field: c.color.field, type: 'nominal', title: c.color.title, sort: null, legend: { labelLimit: 400 } },
        tooltip: [{ field: c.x.field }, { field: c.y.field }, { field: c.color.field }],
      },
    },
  ];
  if (c.hlines?.length) {
    layers.push({
      data: { values: c.hlines },
      mark: { type: 'rule', strokeDash: [6, 4] },
      encoding: {
        y: { field: 'value', type: 'quantitative' },
        color: { field: 'label', type: 'nominal', title: c.color.title },
      },
    });
  }
  if (c.vlines?.length) {
    layers.push(
      {
        data: { values: c.vlines },
        mark: { type: 'rule', strokeDash: [2, 3], color: 'black' },
        encoding: { x: { field: 'value', type: 'quantitative' } },
      },
      {
        data: { values: c.vlines },
        mark: { type: 'text', align: 'left', dx: 4, dy: -4, baseline: 'bottom' },
        encoding: { x: { field: 'value', type: 'quantitative' }, y: { value: 12 }, text: { field: 'label' } },
      },
    );
  }
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: c.title,
    ...SIZE,
    layer: layers,
  } as TopLevelSpec;
}

export interface BarChart {
  readonly title: string;
  readonly rows: readonly Row[];
  readonly x: { readonly field: string; readonly title: string };
  readonly y: { readonly field: string; readonly title: string; readonly percent?: boolean };
  /** Bars grouped by this field (several bars per x). */
  readonly group?: { readonly field: string; readonly title: string };
}

export function barChart(c: BarChart): TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: c.title,
    ...SIZE,
    data: { values: c.rows as Row[] },
    mark: 'bar',
    encoding: {
      // Site names are often long paths (/features/features.10/Relu): show them whole (Vega cuts at 180 px).
      x: { field: c.x.field, type: 'nominal', title: c.x.title, sort: null, axis: { labelAngle: -40, labelLimit: 0 } },
      y: {
        field: c.y.field,
        type: 'quantitative',
        title: c.y.title,
        ...(c.y.percent ? { axis: { format: '.1%' } } : {}),
      },
      ...(c.group
        ? { xOffset: { field: c.group.field }, color: { field: c.group.field, type: 'nominal', title: c.group.title } }
        : {}),
      tooltip: [{ field: c.x.field }, { field: c.y.field }, ...(c.group ? [{ field: c.group.field }] : [])],
    },
  } as TopLevelSpec;
}

/** Vega-Lite → Vega → SVG text, headless. (Vega loads when a chart is drawn: a third of a second every command would pay at start.) */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const [vega, { compile }] = await Promise.all([import('vega'), import('vega-lite')]);
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
