#!/usr/bin/env node
// Assemble src/runtime/kernels.wat into src/runtime/kernels.wasm.ts (the module's bytes as base64),
// so that the package needs no WebAssembly tool at install or run time. Developers run it after
// editing the .wat (`npm run wasm`); test/fused.test.ts checks the two agree when wabt is installed.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import wabtInit from 'wabt';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** The module's bytes as base64, from kernels.wat or from the text given (tools/mutants.mjs plants bugs in it). */
export async function assemble(src = fs.readFileSync(path.join(root, 'src/runtime/kernels.wat'), 'utf8')) {
  const wabt = await wabtInit();
  const mod = wabt.parseWat('kernels.wat', src, { simd: true });
  const { buffer } = mod.toBinary({});
  mod.destroy();
  return Buffer.from(buffer).toString('base64');
}
export function render(b64) {
  const lines = b64.match(/.{1,100}/g) ?? [];
  return `/**\n * src/runtime/kernels.wat assembled by \`npm run wasm\` (tools/wasm.mjs); do not edit by hand.\n */\nexport const KERNELS_WASM = [\n${lines.map((l) => `  '${l}',`).join('\n')}\n].join('');\n`;
}
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  fs.writeFileSync(path.join(root, 'src/runtime/kernels.wasm.ts'), render(await assemble()));
  process.stdout.write('wrote src/runtime/kernels.wasm.ts\n');
}
