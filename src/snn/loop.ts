/**
 * The spiking network over T steps as ONE ONNX graph: the one-step graph becomes the body of
 * an ONNX Loop, states stay inside ONNX Runtime, and every step's readout and spike counts
 * come out stacked ([T, N, ...] and [T]). Inputs: the model input and T (int64 scalar).
 */
import type { Graph } from '../graph/ir.js';
import { int64Tensor } from '../graph/ir.js';
import { GraphBuilder, floatInput } from '../onnx/builder.js';
import type { Snn } from './build.js';

export const LOOP_STEPS_INPUT = 'T';

export function loopReadout(readout: string): string {
  return `${readout}.steps`;
}

export function loopSpikes(spikes: string): string {
  return `${spikes}.steps`;
}

export function buildLoop(snn: Snn): Graph {
  const { graph: step, spec } = snn;
  const b = new GraphBuilder(step.opset, step);
  // Zero initial states of shape [N, ...shape], N taken from the input.
  const shape = b.op('Shape', [spec.input]);
  const n = b.op('Slice', [shape, b.constant('s0', int64Tensor([1], [0])), b.constant('s1', int64Tensor([1], [1]))]);
  const inits = spec.states.map((s) => {
    const dims = b.op('Concat', [n, b.constant('dims', int64Tensor([s.shape.length], [...s.shape]))], { axis: 0 });
    return b.op('ConstantOfShape', [dims]);
  });
  const cond = b.constant('cond', { dtype: 'bool', dims: [], data: Uint8Array.of(1) });
  const body: Graph = {
    name: 'step',
    nodes: [
      ...step.nodes,
      { name: 'cond_pass', opType: 'Identity', domain: '', inputs: ['cond_in'], outputs: ['cond_out'], attrs: {} },
    ],
    initializers: new Map(),
    inputs: [
      { name: 'iter', dtype: 'int64', shape: [] },
      { name: 'cond_in', dtype: 'bool', shape: [] },
      ...spec.states.map((s) => floatInput(s.input, null)),
    ],
    outputs: [
      { name: 'cond_out', dtype: 'bool', shape: [] },
      ...spec.states.map((s) => floatInput(s.output, null)),
      floatInput(spec.readout, null),
      ...spec.sites.map((s) => floatInput(s.spikes, null)),
    ],
    opset: step.opset, irVersion: step.irVersion, metadata: {},
  };
  const outs = [
    ...spec.states.map((s) => `${s.output}.final`),
    loopReadout(spec.readout),
    ...spec.sites.map((s) => loopSpikes(s.spikes)),
  ];
  b.add('Loop', [LOOP_STEPS_INPUT, cond, ...inits], { }, outs, 'time_loop');
  const loopNode = b.nodes[b.nodes.length - 1];
  b.nodes[b.nodes.length - 1] = { ...loopNode, attrs: { body: { kind: 'graph', value: body } } };
  return {
    ...step,
    nodes: b.nodes,
    // Body nodes read the step graph's initializers from the outer scope.
    initializers: new Map([...step.initializers, ...b.initializers]),
    inputs: [step.inputs[0], { name: LOOP_STEPS_INPUT, dtype: 'int64', shape: [] }],
    outputs: [
      floatInput(loopReadout(spec.readout), null),
      ...spec.sites.map((s) => floatInput(loopSpikes(s.spikes), null)),
    ],
  };
}
