/**
 * The fused engine's neuron update, WebAssembly SIMD against the same loop in plain JS
 * (src/runtime/kernels.ts): nanoseconds per neuron-step on one thread, best of 5.
 *
 *   node dist/bench/kernels.js [--n 100] [--channels 16] [--size 784]
 */
import { createKernels } from '../src/runtime/kernels.js';
import { arg } from './args.js';

const num = (name: string, fallback: string): number => Number(arg(name, fallback));
const n = num('n', '100');
const C = num('channels', '16');
const S = num('size', '784');
const per = C * S;
for (const kind of ['wasm', 'js'] as const) {
  for (const layout of ['per channel', 'per neuron'] as const) {
    const k = createKernels(kind);
    const L = layout === 'per channel' ? C : per;
    k.reserve(4 * n * per + 3 * per);
    const u = k.f32(n * per).fill(0);
    const cur = k.f32(n * per);
    for (let i = 0; i < cur.length; i++) cur[i] = ((i * 2654435761) % 1000) / 1000 - 0.3;
    const out = k.f32(n * per);
    const level = k.f32(L).fill(0.5);
    const theta = k.f32(L).fill(1);
    const fan = k.i32(per).fill(9);
    let best = Infinity;
    for (let r = 0; r < 5; r++) {
      const t0 = performance.now();
      for (let step = 0; step < 4; step++) k.neuron(u, cur, out, level, theta, fan, n);
      best = Math.min(best, (performance.now() - t0) / (4 * n * per));
    }
    process.stdout.write(`${k.kind} ${layout}: ${(best * 1e6).toFixed(2)} ns per neuron-step (${n} × ${C} × ${S})\n`);
  }
}
