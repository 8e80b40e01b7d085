/**
 * One self-contained HTML page per record: charts as inline SVG, tables, the record's JSON
 * embedded for reuse. No scripts, no network.
 */
import type { RunRecord } from './record.js';
import { renderSvg } from './charts.js';
import { sections, title, type Table } from './sections.js';
import { picturesHtml } from './picture-html.js';

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function tableHtml(t: Table): string {
  const head = `<tr>${t.header.map((h) => `<th>${esc(h)}</th>`).join('')}</tr>`;
  const body = t.rows.map((r) => `<tr>${r.map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`).join('\n');
  return `<table>\n<thead>${head}</thead>\n<tbody>\n${body}\n</tbody>\n</table>`;
}

const STYLE = `
body { font: 15px/1.45 system-ui, sans-serif; max-width: 1000px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 1em 0; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; } th { background: #f3f3f3; }
td:first-child { text-align: left; } figure.chart { margin: 1em 0; } footer { margin-top: 3em; color: #777; font-size: 0.85em; }
.muted { color: #777; font-weight: normal; }
div.pics { overflow-x: auto; } table.pics { border: none; } table.pics td, table.pics th { border: none; padding: 4px; text-align: center; vertical-align: top; }
table.pics th { background: none; font-weight: 600; font-size: 0.9em; } table.pics td.none { color: #999; vertical-align: middle; }
figure.cell { margin: 0; } figure.cell figcaption { font-size: 0.8em; color: #555; }
.pic { display: block; image-rendering: pixelated; background: #000; border-radius: 3px; }
p.legend { font-size: 0.85em; } .key { display: inline-block; margin-right: 1em; white-space: nowrap; }
.swatch { display: inline-block; width: 0.9em; height: 0.9em; margin-right: 0.3em; vertical-align: -0.1em; border: 1px solid #999; }
div.grid { display: flex; flex-wrap: wrap; gap: 10px; margin: 1em 0; }
figure.card { margin: 0; width: 96px; font-size: 0.8em; line-height: 1.3; text-align: center; }
figure.card figcaption { margin-top: 3px; color: #444; word-wrap: break-word; } b.ok { color: #1a7f37; } b.bad { color: #c62828; }
`;

export async function reportHtml(r: RunRecord): Promise<string> {
  const parts: string[] = [];
  for (const s of sections(r)) {
    parts.push(`<section><h2>${esc(s.title)}</h2>`);
    for (const p of s.text ?? []) parts.push(`<p>${esc(p)}</p>`);
    if (s.pictures) parts.push(picturesHtml(s.pictures));
    if (s.chart) parts.push(`<figure class="chart">${await renderSvg(s.chart)}</figure>`);
    if (s.table) parts.push(tableHtml(s.table));
    parts.push('</section>');
  }
  const json = JSON.stringify(r).replace(/</g, '\\u003c');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title(r))}</title><style>${STYLE}</style></head>
<body>
<h1>${esc(title(r))}</h1>
${parts.join('\n')}
<footer>Made by spikeport on ${esc(r.created)}. The data behind this page is embedded below as JSON (id "spikeport-record").</footer>
<script type="application/json" id="spikeport-record">${json}</script>
</body></html>
`;
}
