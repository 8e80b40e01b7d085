/**
 * What a NIR target computes, as a step graph spikeport can simulate: each neuron starts at 0
 * (not θ/2), fires where v > θ (strictly), and resets as the target does (subtract θ, or to
 * 0). The cost of deploying is the difference between this network's accuracy and spikeport's.
 */
import type { Graph, Node } from '../graph/ir.js';
import { floatTensor } from '../graph/ir.js';
import { siteState, type SnnSpec } from '../snn/format.js';
import { SpikeportError } from '../errors.js';
import { resetOf, type Target } from './graph.js';

export function asTargetGraph(g: Graph, spec: SnnSpec, target: Target): Graph {
  const reset = resetOf(target);
  const prod = new Map<string, Node>();
  for (const n of g.nodes) for (const o of n.outputs) prod.set(o, n);
  const replace = new Map<Node, Node[]>();
  const initializers = new Map(g.initializers);
  const one = '__target_one';
  initializers.set(one, floatTensor([], [1]));
  spec.sites.forEach((_, k) => {
    const sub = prod.get(`${siteState(k)}.next`);
    const emit = sub ? prod.get(sub.inputs[1]) : undefined; // Mul(Cast(fired), θ)
    const cast = emit ? prod.get(emit.inputs[0]) : undefined;
    const fire = cast ? prod.get(cast.inputs[0]) : undefined;
    if (!sub || !emit || !cast || !fire || emit.opType !== 'Mul' || cast.opType !== 'Cast') {
      throw new SpikeportError('invalid-file', `site ${k}'s neuron is not in the form spikeport writes`);
    }
    const [u1, spikes] = sub.inputs;
    // v > θ, written where the comparison was.
    replace.set(fire, [
      {
        name: `${fire.name}/target`,
        opType: 'Greater',
        domain: '',
        inputs: [u1, emit.inputs[1]],
        outputs: [...fire.outputs],
        attrs: {},
      },
    ]);
    if (reset === 'zero') {
      const keep = `${sub.name}/target_keep`;
      replace.set(sub, [
        {
          name: `${sub.name}/target_not`,
          opType: 'Sub',
          domain: '',
          inputs: [one, cast.outputs[0]],
          outputs: [keep],
          attrs: {},
        },
        {
          name: `${sub.name}/target`,
          opType: 'Mul',
          domain: '',
          inputs: [u1, keep],
          outputs: [...sub.outputs],
          attrs: {},
        },
      ]);
    }
    void spikes;
  });
  // A Not(Less) comparison leaves its Less without a reader: drop nodes whose outputs nobody reads.
  let nodes = g.nodes.flatMap((n) => replace.get(n) ?? [n]);
  const outs = new Set(g.outputs.map((o) => o.name));
  for (;;) {
    const read = new Set(nodes.flatMap((n) => n.inputs));
    const kept = nodes.filter((n) => n.outputs.some((o) => outs.has(o) || read.has(o)));
    if (kept.length === nodes.length) break;
    nodes = kept;
  }
  return { ...g, nodes, initializers };
}
