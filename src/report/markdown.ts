/** The same sections as Markdown, for terminals and READMEs (charts left out). */
import type { RunRecord } from './record.js';
import { sections, title, type Table } from './sections.js';

/**
 * Text from a record (model and data names, class names, site names) as Markdown that shows it
 * as it is: HTML's special characters as entities (a class folder named `<script>` stays text),
 * Markdown's own (emphasis, code, links, table cells) escaped with a backslash.
 */
export function mdText(s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/[\\`*_[\]|~]/g, '\\$&')
    .replace(/^([#+-]|\d+[.)])(?=\s|$)/, '\\$1');
}

function tableMd(t: Table): string {
  return [
    `| ${t.header.map(mdText).join(' | ')} |`,
    `|${t.header.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`,
    ...t.rows.map((r) => `| ${r.map(mdText).join(' | ')} |`),
  ].join('\n');
}

export function reportMarkdown(r: RunRecord): string {
  const out = [`# ${mdText(title(r))}`, ''];
  for (const s of sections(r)) {
    out.push(`## ${mdText(s.title)}`, '');
    for (const p of s.text ?? []) out.push(mdText(p), '');
    if (s.pictures) out.push('(The pictures are in the HTML report: `spikeport report RECORD.json`.)', '');
    if (s.table) out.push(tableMd(s.table), '');
  }
  return out.join('\n');
}
