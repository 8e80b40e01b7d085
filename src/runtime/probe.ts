/**
 * A step graph run on one batch with chosen inner tensors exposed: what the analyses and the
 * corrections after conversion read (a site's spikes, the readout) step by step.
 */
import type { Graph } from '../graph/ir.js';
import { numel } from '../graph/ir.js';
import { floatInput } from '../onnx/builder.js';
import { Session, type Array32, type RuntimeOptions } from '../ort/session.js';
import type { SnnSpec } from '../snn/format.js';

/** The graph with these tensors also as outputs. */
export function withOutputs(g: Graph, names: readonly string[]): Graph {
  const have = new Set(g.outputs.map((o) => o.name));
  return { ...g, outputs: [...g.outputs, ...names.filter((n) => !have.has(n)).map((n) => floatInput(n, null))] };
}

/**
 * Run a step-form graph for `steps` steps on one batch `input` ([n, ...inputShape]), states from
 * zero, and hand the named tensors of every step (1-based t) to `visit`.
 */
export async function probeSteps(
  graph: Graph,
  spec: SnnSpec,
  input: Array32,
  steps: number,
  names: readonly string[],
  visit: (t: number, out: Readonly<Record<string, Array32>>) => void,
  opts: RuntimeOptions,
): Promise<void> {
  const n = input.dims[0];
  const session = await Session.create(withOutputs(graph, names), opts);
  try {
    const feeds: Record<string, Array32> = { [spec.input]: input };
    for (const st of spec.states)
      feeds[st.input] = { dims: [n, ...st.shape], data: new Float32Array(n * numel(st.shape)) };
    const wanted = [...new Set([...names, ...spec.states.map((st) => st.output)])];
    for (let t = 1; t <= steps; t++) {
      const out = await session.run(feeds, wanted);
      for (const st of spec.states) feeds[st.input] = out[st.output];
      visit(t, out);
    }
  } finally {
    await session.release();
  }
}
