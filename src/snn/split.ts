/**
 * Direct coding feeds the same input at every step, so everything that depends only on the
 * input (the first layer, input normalisation, a pool on the input) is the same at every
 * step. This splits the one-step graph into a prefix computed once per batch and a step graph
 * that takes the prefix's results as inputs.
 */
import type { Graph, Node } from '../graph/ir.js';
import { usedInitializers } from '../graph/topo.js';
import { floatInput } from '../onnx/builder.js';
import { inferDtypes } from '../graph/dtypes.js';
import type { SnnSpec } from './format.js';

export interface SplitStep {
  /** Computes `constants` from the model input; null when nothing is constant. */
  readonly prefix: Graph | null;
  readonly step: Graph;
  readonly constants: readonly string[];
}

export function splitConstantPrefix(step: Graph, spec: SnnSpec): SplitStep {
  const varying = new Set(spec.states.map((s) => s.input));
  // Tensors only the step graph has: time-varying ones, and non-float ones (shape arithmetic
  // stays with its consumers; the prefix hands over float tensors only).
  const stepOnly = new Set(varying);
  const types = inferDtypes(step);
  const prefixNodes: Node[] = [];
  const stepNodes: Node[] = [];
  for (const n of step.nodes) {
    const isVarying = n.inputs.some((i) => varying.has(i));
    if (isVarying) n.outputs.forEach((o) => varying.add(o));
    if (isVarying || n.inputs.some((i) => stepOnly.has(i)) || n.outputs.some((o) => types.get(o) !== 'float32')) {
      stepNodes.push(n);
      n.outputs.forEach((o) => stepOnly.add(o));
    } else {
      prefixNodes.push(n);
    }
  }
  if (prefixNodes.length === 0) return { prefix: null, step, constants: [] };
  const produced = new Set(prefixNodes.flatMap((n) => n.outputs));
  const outputs = new Set(step.outputs.map((o) => o.name));
  const constants = [
    ...new Set([
      ...stepNodes.flatMap((n) => n.inputs.filter((i) => produced.has(i))),
      ...[...outputs].filter((o) => produced.has(o)),
    ]),
  ];
  const needsInput = stepNodes.some((n) => n.inputs.includes(spec.input));
  const prefix: Graph = {
    ...step,
    name: 'prefix',
    nodes: prefixNodes,
    initializers: usedInitializers(prefixNodes, step.initializers),
    inputs: step.inputs.filter((i) => i.name === spec.input),
    outputs: constants.map((c) => floatInput(c, null)),
  };
  const rest: Graph = {
    ...step,
    name: 'step',
    nodes: stepNodes,
    initializers: usedInitializers(stepNodes, step.initializers),
    inputs: [
      ...(needsInput ? step.inputs.filter((i) => i.name === spec.input) : []),
      ...constants.map((c) => floatInput(c, null)),
      ...step.inputs.filter((i) => i.name !== spec.input),
    ],
  };
  return { prefix, step: rest, constants };
}
