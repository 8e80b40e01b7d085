/**
 * The spiking network over T steps as ONE ONNX graph, for running elsewhere in a single call:
 * the one-step graph becomes the body of an ONNX Loop (states stay inside ONNX Runtime),
 * the readout is averaged over steps [delay+1, T] and the tail (ops after the readout) runs on
 * that average, so the outputs are those of the ANN.
 *
 *   inputs:  the model input, T and delay (int64 scalars)
 *   outputs: the model's outputs (same names); `<readout>.steps` [T, N, ...]; per-step counters
 *            `spikes.siteK.steps` and `sops.layerK.steps` [T]
 */
import type { Graph, Tensor } from '../graph/ir.js';
import { int64Tensor } from '../graph/ir.js';
import { GraphBuilder, floatInput } from '../onnx/builder.js';
import type { SnnGraph } from './build.js';
import { LOOP_DELAY_INPUT, LOOP_STEPS_INPUT, counterOutputs, loopCounter, loopReadout } from './format.js';
import { splitConstantPrefix } from './split.js';

export function buildLoop(snn: SnnGraph, tail: Graph | null = null): Graph {
  const { graph: step, spec } = snn;
  const counters = counterOutputs(spec);
  const b = new GraphBuilder(step.opset, step);
  const i64 = (hint: string, v: number[]): string => b.constant(hint, int64Tensor([v.length], v));
  // Zero initial states of shape [N, ...shape], N taken from the input.
  const n = b.op('Slice', [b.op('Shape', [spec.input]), i64('s0', [0]), i64('s1', [1])]);
  const inits = spec.states.map((s) =>
    b.op('ConstantOfShape', [b.op('Concat', [n, i64('dims', [...s.shape])], { axis: 0 })]),
  );
  const cond = b.constant('cond', { dtype: 'bool', dims: [], data: Uint8Array.of(1) });
  // Inside the body the readout is renamed, so that outside, the averaged readout keeps the
  // model's name (and the outputs are named as the ANN's).
  const stepReadout = `${spec.readout}.step`;
  const rename = (x: string): string => (x === spec.readout ? stepReadout : x);
  // What depends only on the input (direct coding) runs once, before the loop.
  const split = splitConstantPrefix(step, spec);
  const prefixNodes = split.prefix?.nodes ?? [];
  const body: Graph = {
    name: 'step',
    nodes: [
      ...split.step.nodes.map((nd) => ({ ...nd, inputs: nd.inputs.map(rename), outputs: nd.outputs.map(rename) })),
      { name: 'cond_pass', opType: 'Identity', domain: '', inputs: ['cond_in'], outputs: ['cond_out'], attrs: {} },
    ],
    initializers: new Map(), // the body reads the step graph's initializers from the outer scope
    inputs: [
      { name: 'iter', dtype: 'int64', shape: [] },
      { name: 'cond_in', dtype: 'bool', shape: [] },
      ...spec.states.map((s) => floatInput(s.input, null)),
    ],
    outputs: [
      { name: 'cond_out', dtype: 'bool', shape: [] },
      ...spec.states.map((s) => floatInput(s.output, null)),
      floatInput(stepReadout, null),
      ...counters.map((c) => floatInput(c, null)),
    ],
    opset: step.opset,
    irVersion: step.irVersion,
    metadata: {},
  };
  const steps = loopReadout(spec.readout);
  b.nodes.push(...prefixNodes, {
    name: 'time_loop',
    opType: 'Loop',
    domain: '',
    inputs: [LOOP_STEPS_INPUT, cond, ...inits],
    outputs: [...spec.states.map((s) => `${s.output}.final`), steps, ...counters.map(loopCounter)],
    attrs: { body: { kind: 'graph', value: body } },
  });
  // Delayed evaluation: mean over steps [delay+1, T].
  const toVec = (x: string): string => b.op('Reshape', [x, i64('one', [1])]);
  const window = b.op('Slice', [steps, toVec(LOOP_DELAY_INPUT), toVec(LOOP_STEPS_INPUT), i64('axis0', [0])]);
  const mean = b.reduce('ReduceMean', window, [0], false, 'window_mean', spec.readout);
  let outputs = [floatInput(mean, null)];
  let tailInits: [string, Tensor][] = [];
  if (tail) {
    b.nodes.push(...tail.nodes);
    tailInits = [...tail.initializers];
    outputs = tail.outputs.map((o) => floatInput(o.name, null));
  }
  return {
    ...step,
    nodes: b.nodes,
    initializers: new Map([...step.initializers, ...b.initializers, ...tailInits]),
    inputs: [
      step.inputs[0],
      { name: LOOP_STEPS_INPUT, dtype: 'int64', shape: [] },
      { name: LOOP_DELAY_INPUT, dtype: 'int64', shape: [] },
    ],
    outputs: [...outputs, floatInput(steps, null), ...counters.map((c) => floatInput(loopCounter(c), null))],
  };
}
