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
import { SpikeportError, optionError } from '../errors.js';

export { TARGETS, resetOf, checkTarget, type Target, type NirGraph, type NirNode } from '../nir/graph.js';
export { readNir, nirBytes, NIR_VERSION } from '../nir/hdf5.js';
export { simulateNir, type NirRun } from '../nir/simulate.js';

/** The NIR graph of a unit-spike network for a target (refuses what NIR cannot express, naming the node). */
export function toNirGraph(snn: Snn, target: string, where = snn.meta.source.file): NirGraph {
  refuseGroups(snn, where);
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
  refuseGroups(snn, snn.meta.source.file, 'asTarget');
  return new SnnClass({
    form: 'step',
    graph: asTargetGraph(snn.graph, snn.spec, t),
    meta: snn.meta,
    tail: snn.tail,
    source: snn.source,
    timing: snn.timing,
  });
}

/**
 * Groups of binary neurons (docs/algorithm.md §11) have no NIR form: a population's members
 * differ only in their initial potential, which NIR's IF neuron does not have (they would all
 * be the same neuron), and a shared-reset group fires up to K spikes per step from one membrane.
 */
function refuseGroups(snn: Snn, where: string, field?: string): void {
  const k = snn.spec.sites.findIndex((s) => s.group);
  if (k < 0) return;
  const g = snn.spec.sites[k].group as NonNullable<(typeof snn.spec.sites)[number]['group']>;
  const why =
    g.kind === 'population'
      ? "its members differ only in their initial potential, which NIR's IF neuron does not have"
      : "NIR's IF neuron fires at most once per step, a shared-reset group up to K times from one membrane";
  const what = `site ${k} (${snn.spec.sites[k].node}) is a ${g.kind} group of ${g.size} binary neurons, which NIR cannot express (${why})`;
  throw field
    ? optionError(field, `needs a network without groups of binary neurons: ${what}`)
    : new SpikeportError('unsupported-model', `${where}: ${what}; convert without group for NIR`);
}
