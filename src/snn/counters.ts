/**
 * Spike and synaptic-operation counters inside the step graph (docs/algorithm.md §6): each
 * step's spikes per site and SOPs per weighted layer fed by spikes, as scalar outputs summed
 * over the batch. SOPs of a layer = Σ over its input events of each event's fan-out.
 */
import type { Node } from '../graph/ir.js';
import { floatTensor, int64Tensor } from '../graph/ir.js';
import { ORDER_PRESERVING_OPS, WEIGHTED_OPS } from '../graph/ops.js';
import type { GraphBuilder } from '../onnx/builder.js';
import type { PreparedModel } from '../model/prepare.js';

export interface CounterPlan {
  /** Weighted layers fed by spikes, numbered in graph order (their output is `sops.layer<i>`). */
  readonly layerIndex: ReadonlyMap<string, number>;
  /** Per site node: the layers that read its spikes directly (through order-preserving ops only). */
  readonly fedBySite: ReadonlyMap<string, readonly Node[]>;
  /** Those layers' names: counted at their site, in the same pass as its spikes. */
  readonly countedAtSite: ReadonlySet<string>;
}

export function planCounters(m: PreparedModel): CounterPlan {
  const g = m.graph;
  const spikingLayers = m.plan.spiking.filter((n) => WEIGHTED_OPS.has(n.opType) && m.plan.varying.has(n.inputs[0]));
  const siteOutputs = new Map(m.plan.sites.map((s) => [s.output, s]));
  const producer = new Map(g.nodes.flatMap((n) => n.outputs.map((o) => [o, n] as const)));
  const fedBySite = new Map<string, Node[]>();
  for (const n of spikingLayers) {
    let t = n.inputs[0];
    for (let p = producer.get(t); p && ORDER_PRESERVING_OPS.has(p.opType) && !siteOutputs.has(t); p = producer.get(t))
      t = p.inputs[0];
    const site = siteOutputs.get(t);
    if (site) fedBySite.set(site.node, [...(fedBySite.get(site.node) ?? []), n]);
  }
  return {
    layerIndex: new Map(spikingLayers.map((n, i) => [n.name, i])),
    fedBySite,
    countedAtSite: new Set([...fedBySite.values()].flat().map((n) => n.name)),
  };
}

/** Per-sample dot products of x (K values per sample) with each column, summed over the batch: [c] (a scalar if c = 1). */
function countColumns(b: GraphBuilder, x: string, K: number, columns: readonly Float32Array[], hint: string): string {
  const w = new Float32Array(K * columns.length);
  columns.forEach((col, j) => {
    for (let k = 0; k < K; k++) w[k * columns.length + j] = col[k];
  });
  const rows = b.op('Reshape', [x, b.constant('rows', int64Tensor([2], [-1, K]))]);
  const dots = b.op('MatMul', [rows, b.constant(`${hint}_weights`, floatTensor([K, columns.length], w))]);
  return columns.length === 1 ? b.reduce('ReduceSum', dots, undefined, false) : b.reduce('ReduceSum', dots, [0], false);
}

/** SOPs of a layer whose input is not a site's spikes: events (non-zero values) × fan-out. */
export function addEventCounter(
  b: GraphBuilder,
  input: string,
  fanout: Float32Array,
  output: string,
  hint: string,
): void {
  const events = b.op('Sign', [b.op('Abs', [input])]);
  b.add('Identity', [countColumns(b, events, fanout.length, [fanout], hint)], {}, [output]);
}

/**
 * Spikes of a site and the SOPs of every layer it feeds, in one MatMul over the site's output:
 * the output is θ per spike, so spikes = Σ out/θ and SOPs = Σ out·fan-out/θ (θ = 0 never fires).
 */
export function addSiteCounters(
  b: GraphBuilder,
  siteOutput: string,
  invTheta: Float32Array,
  fed: readonly { fanout: Float32Array; output: string }[],
  spikes: string,
  hint: string,
): void {
  const columns = [invTheta, ...fed.map((l) => l.fanout.map((f, k) => f * invTheta[k]))];
  const counts = countColumns(b, siteOutput, invTheta.length, columns, hint);
  if (columns.length === 1) {
    b.add('Identity', [counts], {}, [spikes]);
    return;
  }
  const pick = (j: number, output: string): void => {
    b.add('Gather', [counts, b.constant('index', int64Tensor([], [j]))], { axis: 0 }, [output]);
  };
  pick(0, spikes);
  fed.forEach((l, j) => pick(j + 1, l.output));
}
