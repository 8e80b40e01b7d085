/** The same sections as Markdown, for terminals and READMEs (charts left out). */
import type { RunRecord } from './record.js';
import { sections, title, type Table } from './sections.js';

function tableMd(t: Table): string {
  const esc = (c: string): string => c.replace(/\|/g, '\\|');
  return [
    `| ${t.header.map(esc).join(' | ')} |`,
    `|${t.header.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`,
    ...t.rows.map((r) => `| ${r.map(esc).join(' | ')} |`),
  ].join('\n');
}

export function reportMarkdown(r: RunRecord): string {
  const out = [`# ${title(r)}`, ''];
  for (const s of sections(r)) {
    out.push(`## ${s.title}`, '');
    for (const p of s.text ?? []) out.push(p, '');
    if (s.pictures) out.push('(The pictures are in the HTML report: `spikeport report RECORD.json`.)', '');
    if (s.table) out.push(tableMd(s.table), '');
  }
  return out.join('\n');
}
