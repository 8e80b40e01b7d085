/**
 * The layers of src/, lowest first, and the imports between them. A module may import from its
 * own unit or from a unit of a lower layer; units of the same layer do not import each other.
 * Run `node dist/test/layers.js` for the table of imports between units.
 */
import fs from 'node:fs';
import path from 'node:path';

/** Units (folders under src/, or top-level files) by layer, lowest first. */
export const LAYERS: readonly (readonly string[])[] = [
  ['errors.ts', 'progress.ts', 'options.ts'],
  ['files.ts'],
  ['graph', 'data'],
  ['onnx'],
  ['ort'],
  ['model'],
  ['calibrate'],
  ['snn'],
  ['runtime', 'nir'],
  ['tasks'],
  ['energy', 'analysis', 'evaluate', 'refine'],
  ['report'],
  ['api'],
  ['experiments'],
  ['cli', 'index.ts'],
  ['advanced.ts'],
];

export interface Import {
  readonly file: string;
  readonly from: string;
  readonly to: string;
}

function unitOf(srcDir: string, file: string): string {
  return path.relative(srcDir, file).split(path.sep)[0];
}

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? sources(p) : e.name.endsWith('.ts') ? [p] : [];
  });
}

/** Every import (static, dynamic, re-export) from one src unit to another. */
export function crossImports(srcDir: string): Import[] {
  const out: Import[] = [];
  for (const file of sources(srcDir)) {
    const text = fs.readFileSync(file, 'utf8');
    const specs = [
      ...text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s+'([^']+)'|import\(\s*'([^']+)'\s*\)/g),
    ].map((m) => m[1] ?? m[2]);
    for (const spec of specs) {
      if (!spec.startsWith('.')) continue;
      const target = path.resolve(path.dirname(file), spec).replace(/\.js$/, '.ts');
      const from = unitOf(srcDir, file);
      const to = unitOf(srcDir, target);
      if (from !== to) out.push({ file: path.relative(srcDir, file), from, to });
    }
  }
  return out;
}

export function layerOf(unit: string): number {
  return LAYERS.findIndex((l) => l.includes(unit));
}

/** Imports that point up (or sideways within a layer), or touch a unit no layer lists. */
export function violations(imports: readonly Import[]): Import[] {
  return imports.filter((i) => layerOf(i.from) < 0 || layerOf(i.to) < 0 || layerOf(i.to) >= layerOf(i.from));
}

// Run as a script (not when the test runner loads this folder): print the table, fail on an upward import.
if (
  !process.env.NODE_TEST_CONTEXT &&
  process.argv[1] &&
  path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)
) {
  const src = path.resolve(process.argv[2] ?? 'src');
  const imports = crossImports(src);
  const pairs = new Map<string, number>();
  for (const i of imports) pairs.set(`${i.from} → ${i.to}`, (pairs.get(`${i.from} → ${i.to}`) ?? 0) + 1);
  const rows = [...pairs].sort(
    ([a], [b]) => layerOf(b.split(' → ')[0]) - layerOf(a.split(' → ')[0]) || a.localeCompare(b),
  );
  process.stdout.write(rows.map(([k, n]) => `${k} (${n})`).join('\n') + '\n');
  const bad = violations(imports);
  for (const b of bad)
    process.stdout.write(
      `UPWARD: ${b.file} imports ${b.to} (layer ${layerOf(b.to)}) from ${b.from} (layer ${layerOf(b.from)})\n`,
    );
  process.exitCode = bad.length ? 1 : 0;
}
