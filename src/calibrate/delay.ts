/**
 * The estimated delay d̂ (docs/algorithm.md §5): per-site latency r = 1 / (2 · mean_k ρ_k) with
 * ρ_k = E[x_k⁺] / θ_k, added along the graph (an op's arrival time is the earliest of its
 * inputs'), read at the readout's input (with several readouts, the latest of theirs).
 */
import type { Plan } from '../graph/plan.js';

/** Latency of one site from its per-channel mean positive input and thresholds. */
export function siteLatency(meanPos: ArrayLike<number>, theta: ArrayLike<number>): number {
  let sum = 0;
  let count = 0;
  for (let k = 0; k < meanPos.length; k++) {
    const th = theta.length === 1 ? theta[0] : theta[k];
    if (!(th > 0)) continue; // a channel that never fires says nothing about latency
    sum += meanPos[k] / th;
    count++;
  }
  const rho = count > 0 ? sum / count : 0;
  return rho > 0 ? 1 / (2 * rho) : Infinity;
}

export interface DelayEstimate {
  /** d̂ = ⌈arrival time at the readout's input⌉. */
  readonly estimated: number;
  /** Per site latency r_l, front to back. */
  readonly latencies: readonly number[];
  /** Arrival time at the readout's input before rounding up. */
  readonly arrival: number;
}

/** Propagate per-site latencies through the spiking part; `inputs` are the graph inputs (time 0). */
export function delayFromLatencies(plan: Plan, latencies: readonly number[], inputs: readonly string[]): DelayEstimate {
  const arrival = new Map<string, number>(inputs.map((i) => [i, 0]));
  const latencyOf = new Map(plan.sites.map((s) => [s.node, latencies[s.index]]));
  // Several readouts (one per output): the estimate waits for the last of them.
  const readoutNodes = new Set(plan.readouts.map((r) => r.node));
  let readoutIn = -Infinity;
  for (const n of plan.spiking) {
    const times = n.inputs.filter((i) => arrival.has(i)).map((i) => arrival.get(i) as number);
    const t = times.length === 0 ? Infinity : Math.min(...times);
    if (readoutNodes.has(n.name)) readoutIn = Math.max(readoutIn, t);
    if (times.length === 0) continue;
    const out = t + (latencyOf.get(n.name) ?? 0);
    for (const o of n.outputs) arrival.set(o, out);
  }
  if (readoutIn === -Infinity) readoutIn = Infinity;
  const estimated = Number.isFinite(readoutIn) ? Math.ceil(readoutIn - 1e-9) : Number.MAX_SAFE_INTEGER;
  return { estimated, latencies, arrival: readoutIn };
}
