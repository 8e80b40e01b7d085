import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { PoolMode } from '../src/snn/format.js';
import { buildGraph, conv, gemm, maxpool, snnVsClipped, uniform } from './helpers.js';

/** VGG-like: max pools after spiking layers (where per-step pooling is biased). */
function vggLike() {
  return buildGraph([1, 8, 8], (b, x) => {
    let h = b.op('Relu', [conv(b, x, 1, 6, 3, { seed: 1 })]);
    h = maxpool(b, b.op('Relu', [conv(b, h, 6, 6, 3, { seed: 2 })]));
    h = maxpool(b, b.op('Relu', [conv(b, h, 6, 8, 3, { seed: 3 })]));
    h = b.op('Relu', [gemm(b, b.op('Flatten', [h], { axis: 1 }), 32, 16, 4)]);
    return gemm(b, h, 16, 5, 5);
  });
}

async function errors(maxpoolMode: PoolMode, Ts: number[]): Promise<number[]> {
  return snnVsClipped(vggLike(), [1, 8, 8], uniform(99, 16 * 64), Ts, { maxpool: maxpoolMode });
}

test('MaxNorm SNN readout converges to the clipped ANN as T grows (accumulated max pooling)', async (t) => {
  const [e32, e1024] = await errors('accumulated', [32, 1024]);
  t.diagnostic(`relative error T=32 ${e32.toFixed(5)}, T=1024 ${e1024.toFixed(5)}`);
  assert.ok(e1024 < e32 / 4, `error should fall ≥4× from T=32 (${e32}) to T=1024 (${e1024})`);
  assert.ok(e1024 < 0.01, `error at T=1024 is small (${e1024})`);
});

test("per-step max pooling (the paper's code) does not converge after spiking layers", async (t) => {
  const [acc] = await errors('accumulated', [1024]);
  const [p32, p1024] = await errors('per-step', [32, 1024]);
  t.diagnostic(
    `per-step relative error T=32 ${p32.toFixed(5)}, T=1024 ${p1024.toFixed(5)}; accumulated T=1024 ${acc.toFixed(5)}`,
  );
  assert.ok(p1024 > 5 * acc, `per-step error at T=1024 (${p1024}) stays far above the accumulated form's (${acc})`);
  assert.ok(p1024 > p32 / 4, `per-step error does not fall 4× (${p32} -> ${p1024})`);
});
