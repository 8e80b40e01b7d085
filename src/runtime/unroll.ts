/**
 * K time steps in one graph: the step graph copied K times, each copy's next states feeding the
 * next copy. One ONNX Runtime call then advances K steps, so the per-call cost (binding every
 * state tensor in and out) is paid once per K steps; unlike an ONNX Loop body, the copies are a
 * top-level graph that ONNX Runtime optimises fully.
 *
 *   inputs:  those of the step graph;
 *   outputs: `<readout>@k` and every counter `<name>@k` for k = 0..K−1, and the states after the
 *            last copy under their usual `state.*.next` names.
 */
import type { Graph, Node } from '../graph/ir.js';
import { floatInput } from '../onnx/builder.js';
import type { SnnSpec } from '../snn/format.js';
import { counterOutputs } from '../snn/format.js';

export const stepName = (t: string, k: number): string => `${t}@${k}`;

export function unrollSteps(step: Graph, spec: SnnSpec, K: number): Graph {
  const outerInputs = new Set(step.inputs.map((i) => i.name));
  const stateIn = new Map(spec.states.map((s) => [s.input, s.output]));
  const stateOut = new Set(spec.states.map((s) => s.output));
  const nodes: Node[] = [];
  for (let k = 0; k < K; k++) {
    const rename = (t: string): string => {
      if (t === '' || step.initializers.has(t)) return t;
      if (stateIn.has(t)) return k === 0 ? t : stepName(stateIn.get(t) as string, k - 1);
      if (outerInputs.has(t)) return t;
      return k === K - 1 && stateOut.has(t) ? t : stepName(t, k);
    };
    for (const n of step.nodes) {
      nodes.push({
        ...n,
        name: stepName(n.name || `node${nodes.length}`, k),
        inputs: n.inputs.map(rename),
        outputs: n.outputs.map(rename),
      });
    }
  }
  const perStep = [spec.readout, ...counterOutputs(spec)];
  return {
    ...step,
    name: `${step.name}_x${K}`,
    nodes,
    outputs: [
      ...Array.from({ length: K }, (_, k) => perStep.map((t) => floatInput(stepName(t, k), null))).flat(),
      ...spec.states.map((s) => floatInput(s.output, null)),
    ],
  };
}
