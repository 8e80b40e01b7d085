/**
 * Max pooling on time-varying input (docs/algorithm.md §2.1): the pool acts on accumulated
 * current, A_t = A_{t−1} + z_t, P_t = maxpool(A_t), and passes on P_t − P_{t−1}, so the pooled
 * currents add up to the pool of the total current. (The per-step form, the pool of each step's
 * current, is the original node left as it is.)
 */
import type { Node } from '../graph/ir.js';
import type { GraphBuilder } from '../onnx/builder.js';

interface State {
  readonly input: string;
  readonly output: string;
}

/** Add the accumulated form of `pool`; `acc` holds A, `max` holds P (both zero at the start). */
export function addAccumulatedMaxPool(b: GraphBuilder, pool: Node, acc: State, max: State): void {
  b.add('Add', [acc.input, pool.inputs[0]], {}, [acc.output]);
  b.nodes.push({ ...pool, inputs: [acc.output], outputs: [max.output] });
  b.add('Sub', [max.output, max.input], {}, [pool.outputs[0]]);
}
