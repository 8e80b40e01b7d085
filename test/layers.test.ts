import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { LAYERS, crossImports, violations } from './layers.js';
import { tempDir } from './temp.js';

const SRC = path.join(process.cwd(), 'src');

test('every import between src/ folders points to a lower layer', () => {
  const imports = crossImports(SRC);
  assert.ok(imports.length > 50, `found ${imports.length} imports: the scanner must see them`);
  const bad = violations(imports);
  assert.deepEqual(
    bad.map((b) => `${b.file} → ${b.to}`),
    [],
  );
});

test('every src/ folder and top-level file has a layer', () => {
  const units = fs.readdirSync(SRC).filter((n) => !n.endsWith('.map'));
  const listed = new Set(LAYERS.flat());
  assert.deepEqual(
    units.filter((u) => !listed.has(u)),
    [],
  );
});

test('the check fails on an upward import, a sideways one, and a dynamic one', (t) => {
  const dir = tempDir('spikeport-layers-', t);
  for (const d of ['graph', 'snn', 'data']) fs.mkdirSync(path.join(dir, d));
  fs.writeFileSync(path.join(dir, 'graph', 'a.ts'), "import { b } from '../snn/b.js';\nexport const a = b;\n");
  fs.writeFileSync(
    path.join(dir, 'snn', 'b.ts'),
    "export const b = 1;\nexport async function c() { return import('../graph/a.js'); }\n",
  );
  fs.writeFileSync(path.join(dir, 'data', 'd.ts'), "export { a } from '../graph/a.js';\n");
  const bad = violations(crossImports(dir))
    .map((b) => `${b.from} → ${b.to}`)
    .sort();
  assert.deepEqual(bad, ['data → graph', 'graph → snn']);
});
