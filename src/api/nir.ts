/**
 * Deploying to neuromorphic hardware through NIR: export a converted network (unit-spike form)
 * for a target profile, and the same network as that target will compute it, for simulating
 * the cost of deployment next to spikeport's own result (docs/algorithm.md §9).
 */
import path from 'node:path';
import type { Snn } from '../snn/network.js';
import { Snn as SnnClass } from '../snn/network.js';
import { checkTarget, toNir, type NirGraph, type Target } from '../nir/graph.js';
import { asTargetGraph } from '../nir/target.js';
import { writeNir } from '../nir/hdf5.js';
import { checkPaths } from '../files.js';
import { optionError } from '../errors.js';

export { TARGETS, resetOf, checkTarget, type Target, type NirGraph, type NirNode } from '../nir/graph.js';
export { readNir, nirBytes, NIR_VERSION } from '../nir/hdf5.js';
export { simulateNir, type NirRun } from '../nir/simulate.js';

/** The NIR graph of a unit-spike network for a target (refuses what NIR cannot express, naming the node). */
export function toNirGraph(snn: Snn, target: string, where = snn.meta.source.file): NirGraph {
  return toNir({ form: snn.form, graph: snn.graph, meta: snn.meta, tail: snn.tail }, checkTarget(target), where);
}

/** Write the NIR file (whole or not at all; never over `inputs`, e.g. the converted file it came from). */
export async function exportNir(
  snn: Snn,
  file: string,
  target: string,
  inputs: readonly string[] = [],
): Promise<NirGraph> {
  checkPaths(
    inputs.map((p) => ({ path: p, role: 'an input' })),
    [{ path: file, role: 'out' }],
  );
  const graph = toNirGraph(snn, target, inputs[0] ? path.basename(inputs[0]) : undefined);
  await writeNir(file, graph);
  return graph;
}

/** The network as the target computes it: start 0, v > θ, the target's reset. */
export function asTarget(snn: Snn, target: string): Snn {
  const t: Target = checkTarget(target, 'asTarget');
  if (snn.form !== 'step') throw optionError('asTarget', 'needs a step-form network');
  return new SnnClass({
    form: 'step',
    graph: asTargetGraph(snn.graph, snn.spec, t),
    meta: snn.meta,
    tail: snn.tail,
    source: snn.source,
    timing: snn.timing,
  });
}
