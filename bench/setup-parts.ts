/**
 * Where a simulation's fixed setup goes: each part timed alone, in the order `simulate` pays them.
 *
 *   node dist/bench/setup-parts.js SNN.onnx [--batch 16] [--T 8]
 *
 * Wall and CPU milliseconds per part (CPU: this process, ONNX Runtime's threads included).
 */
import { loadSnn } from '../src/snn/network.js';
import { splitConstantPrefix } from '../src/snn/split.js';
import { exactCounters } from '../src/runtime/exact-counts.js';
import { unrollSteps } from '../src/runtime/unroll.js';
import { encodeModel } from '../src/onnx/codec.js';
import { Session, defaultThreads } from '../src/ort/session.js';
import { defaultUnroll } from '../src/runtime/steps.js';
import { fusedPlan, fusedSessions } from '../src/runtime/fused.js';
import { argv, arg } from './args.js';
import { createHash } from 'node:crypto';

const file = argv[0];
const batch = Number(arg('batch', '16'));
const threads = Number(arg('threads', String(defaultThreads())));
/** Per part: wall ms and CPU ms of this process (ONNX Runtime's threads included; steadier than wall on a shared machine). */
const parts: [string, number, number][] = [];
const time = async <T>(name: string, f: () => T | Promise<T>): Promise<T> => {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const r = await f();
  const c = process.cpuUsage(c0);
  parts.push([name, performance.now() - t0, (c.user + c.system) / 1000]);
  return r;
};
const snn = await time('loadSnn (decode + source ANN)', () => loadSnn(file, { threads }));
await time('sha256 of toBytes (run config)', () => createHash('sha256').update(snn.toBytes()).digest('hex'));
const split = await time('splitConstantPrefix', () => splitConstantPrefix(snn.graph, snn.spec));
const step = await time('exactCounters', () => exactCounters(split.step, snn.spec));
const K = defaultUnroll(snn.spec, batch);
const un = await time(`unrollSteps ×${K}`, () => unrollSteps(step, snn.spec, K));
const bytes = await time('encode unrolled', () => encodeModel(un));
parts.push([`  (unrolled: ${un.nodes.length} nodes, ${(bytes.length / 2 ** 20).toFixed(1)} MB)`, 0, 0]);
for (const [name, g, mp] of [
  ['step', step, true],
  ['prefix', split.prefix, true],
  ['unrolled', un, false],
] as const) {
  if (!g) continue;
  const s = await time(`session ${name}`, () => Session.create(g, { threads, memoryPattern: mp }));
  await s.release();
}
const plan = await time('fusedPlan', () => fusedPlan(snn.graph, snn.spec));
if (plan) {
  const f = await time(`fusedSessions (${plan.stages.stages.length} stages)`, () =>
    fusedSessions(plan, snn.spec, { threads }),
  );
  await f.release();
}
process.stdout.write(`${'part'.padEnd(40)} ${'wall ms'.padStart(8)} ${'CPU ms'.padStart(8)}\n`);
for (const [n, ms, cpu] of parts)
  process.stdout.write(`${n.padEnd(40)} ${ms.toFixed(0).padStart(8)} ${cpu.toFixed(0).padStart(8)}\n`);
