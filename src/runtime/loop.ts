/** The Loop engine: the step graph wrapped in an ONNX Loop (snn/loop.ts), one call per batch. */
import { numel } from '../graph/ir.js';
import type { Graph } from '../graph/ir.js';
import { Session, type ArrayI64 } from '../ort/session.js';
import { LOOP_DELAY_INPUT, LOOP_STEPS_INPUT, loopCounter, loopReadout } from '../snn/format.js';
import { batchClock, stepBatch, type BatchRunner, type EngineContext } from './engines.js';

/** Most memory a Loop call may return for one batch's readouts. */
export const LOOP_READOUT_BYTES = 2 ** 30;

/** A Loop-form graph: one call per batch returns every step's readout and counters. */
export async function loopRunner(graph: Graph, ctx: EngineContext): Promise<BatchRunner> {
  const { spec, opts, sink, sums, counters, nBatches } = ctx;
  const session = await Session.create(graph, opts);
  const T = opts.steps;
  const size = numel(spec.readoutShape);
  const scalar = (v: number): ArrayI64 => ({ dims: [], data: BigInt64Array.of(BigInt(v)) });
  return {
    engine: 'loop',
    async run(bi, batch) {
      const clock = batchClock();
      const out = await session.run(
        {
          [spec.input]: { dims: [batch.n, ...spec.inputShape], data: batch.x },
          [LOOP_STEPS_INPUT]: scalar(T),
          [LOOP_DELAY_INPUT]: scalar(0),
        },
        [loopReadout(spec.readout), ...counters.map(loopCounter)],
      );
      counters.forEach((c, i) =>
        out[loopCounter(c)].data.forEach((v, t) => {
          sums[i][t] += Math.round(v);
        }),
      );
      opts.onProgress?.({ phase: 'simulate', done: (bi + 1) * T, total: nBatches * T });
      const time = clock.time(T); // one call: no warm part to tell apart
      await sink(stepBatch(batch, out[loopReadout(spec.readout)].data, new Map(), T, size));
      return time;
    },
    release: () => session.release(),
  };
}
