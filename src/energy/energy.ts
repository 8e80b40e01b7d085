/**
 * Operations and energy per frame (docs/algorithm.md §6), from the layer costs stored in the SNN spec and the
 * SOPs counted per step during simulation.
 *
 *   ANN:  E = MACs · e_MAC
 *   SNN:  E(T) = SOPs(T) · e_SOP + MACs_once · e_MAC
 * where SOPs(T) counts every step the network runs (the delay window's discarded steps too),
 * and MACs_once are the layers on the analog input (direct coding: computed once per frame
 * here) and after the readout. FPS/W = frames per joule = 1 / E.
 */
import type { LayerSpec, SnnSpec } from '../snn/format.js';
import { optionError } from '../errors.js';

export interface EnergyConstants {
  readonly name: string;
  /** Joules per synaptic operation (one accumulate). */
  readonly eSop: number;
  /** Joules per multiply-accumulate. */
  readonly eMac: number;
  readonly note: string;
}

export const PRESETS: Readonly<Record<string, EnergyConstants>> = {
  paper: {
    name: 'paper',
    eSop: 77e-15,
    eMac: 12.5e-12,
    note: 'Bu et al. (CVPR 2025): 77 fJ per SOP, 12.5 pJ per FLOP, one FLOP per MAC as in its ResNet-34 figures (3.6 G → 22 FPS/W)',
  },
  '45nm': {
    name: '45nm',
    eSop: 0.9e-12,
    eMac: 4.6e-12,
    note: 'Horowitz (ISSCC 2014), 45 nm, 32-bit float: 0.9 pJ per add, 4.6 pJ per multiply-accumulate',
  },
};

/** A preset's constants (`paper`, `45nm`), optionally with the energy per SOP and per MAC (joules) replaced. */
export function energyConstants(preset: string, override: { eSop?: number; eMac?: number } = {}): EnergyConstants {
  const base = Object.hasOwn(PRESETS, preset) ? PRESETS[preset] : undefined;
  if (!base) throw optionError('energy', `"${preset}" is not a preset (known: ${Object.keys(PRESETS).join(', ')})`);
  for (const [field, v] of Object.entries(override))
    if (v !== undefined && !(Number.isFinite(v) && v > 0))
      throw optionError(field, `must be a finite energy > 0 (got ${v} J)`);
  if (override.eSop === undefined && override.eMac === undefined) return base;
  const eSop = override.eSop ?? base.eSop;
  const eMac = override.eMac ?? base.eMac;
  return {
    name: `${base.name} (modified)`,
    eSop,
    eMac,
    note: `the ${base.name} preset with ${eSop} J per SOP and ${eMac} J per MAC`,
  };
}

/** Constants given whole (not by preset): both energies finite and > 0. */
export function checkEnergyConstants(c: EnergyConstants): EnergyConstants {
  const ok =
    typeof c === 'object' &&
    c !== null &&
    typeof c.name === 'string' &&
    c.name !== '' &&
    [c.eSop, c.eMac].every((v) => typeof v === 'number' && Number.isFinite(v) && v > 0);
  if (!ok)
    throw optionError(
      'energy',
      `must be a preset name (${Object.keys(PRESETS).join(', ')}) or { name, eSop, eMac, note } with energies in joules, finite and > 0`,
    );
  return { ...c, note: typeof c.note === 'string' ? c.note : '' };
}

export interface LayerEnergy {
  readonly node: string;
  readonly opType: string;
  readonly where: LayerSpec['where'];
  readonly macs: number;
  /** SOPs per frame over T_max steps ('spiking' layers), else null. */
  readonly sops: number | null;
  /** SOPs ÷ (MACs · T_max): the share of the dense work done, for 'spiking' layers. */
  readonly density: number | null;
}

export interface CostAtT {
  readonly T: number;
  /** Synaptic operations per frame over T steps. */
  readonly sops: number;
  /** MACs per frame the SNN still does (input layers once, dense layers every step, tail once). */
  readonly macs: number;
  readonly energy: number;
  readonly fpsPerW: number;
  /** The paper's convention: SOPs only. */
  readonly fpsPerWSopsOnly: number | null;
  readonly metric: number | null;
}

export interface EnergyReport {
  readonly constants: EnergyConstants;
  readonly ann: {
    readonly macs: number;
    readonly energy: number;
    readonly fpsPerW: number;
    readonly metric: number | null;
  };
  readonly perT: readonly CostAtT[];
  /** The cheapest reported T reaching 90 % / 95 % of the ANN's metric (null: none does). */
  readonly sops90: CostAtT | null;
  readonly sops95: CostAtT | null;
  readonly layers: readonly LayerEnergy[];
}

export interface EnergyInput {
  readonly layers: readonly LayerSpec[];
  /** Per layer with a `sops` output, in order: SOPs per step summed over `samples`. */
  readonly sopsPerStep: readonly Float64Array[];
  readonly samples: number;
  /** T with its metric (e.g. top-1 with delay) — any T ≤ the steps simulated. */
  readonly points: readonly { readonly T: number; readonly metric: number | null }[];
  readonly annMetric: number | null;
  readonly constants: EnergyConstants;
}

function prefixSum(xs: Float64Array, T: number): number {
  let s = 0;
  for (let t = 0; t < T; t++) s += xs[t];
  return s;
}

export function energyReport(e: EnergyInput): EnergyReport {
  const { layers, constants: k, samples } = e;
  const Tmax = e.sopsPerStep[0]?.length ?? Math.max(0, ...e.points.map((p) => p.T));
  const annMacs = layers.reduce((a, l) => a + l.macs, 0);
  const onceMacs = layers.filter((l) => l.where === 'input' || l.where === 'tail').reduce((a, l) => a + l.macs, 0);
  const denseMacs = layers.filter((l) => l.where === 'dense').reduce((a, l) => a + l.macs, 0);
  const counted = layers.filter((l) => l.sops);
  if (counted.length !== e.sopsPerStep.length)
    throw new Error(`energyReport: ${counted.length} counted layers but ${e.sopsPerStep.length} SOP series`);
  const sopsAt = (T: number): number => e.sopsPerStep.reduce((a, xs) => a + prefixSum(xs, T), 0) / samples;
  const perT: CostAtT[] = e.points.map(({ T, metric }) => {
    if (T > Tmax) throw new Error(`energyReport: T=${T} > ${Tmax} steps simulated`);
    const sops = sopsAt(T);
    const macs = onceMacs + denseMacs * T;
    const energy = sops * k.eSop + macs * k.eMac;
    return {
      T,
      sops,
      macs,
      energy,
      fpsPerW: 1 / energy,
      fpsPerWSopsOnly: sops > 0 ? 1 / (sops * k.eSop) : null,
      metric,
    };
  });
  const reach = (f: number): CostAtT | null => {
    if (e.annMetric === null) return null;
    const ok = perT
      .filter((p) => p.metric !== null && p.metric >= f * (e.annMetric as number))
      .sort((a, b) => a.T - b.T);
    return ok[0] ?? null;
  };
  let ci = 0;
  const layerRows: LayerEnergy[] = layers.map((l) => {
    if (l.sops) {
      const sops = prefixSum(e.sopsPerStep[ci++], Tmax) / samples;
      return {
        node: l.node,
        opType: l.opType,
        where: l.where,
        macs: l.macs,
        sops,
        density: l.macs > 0 && Tmax > 0 ? sops / (l.macs * Tmax) : null,
      };
    }
    return { node: l.node, opType: l.opType, where: l.where, macs: l.macs, sops: null, density: null };
  });
  const annEnergy = annMacs * k.eMac;
  return {
    constants: k,
    ann: { macs: annMacs, energy: annEnergy, fpsPerW: 1 / annEnergy, metric: e.annMetric },
    perT,
    sops90: reach(0.9),
    sops95: reach(0.95),
    layers: layerRows,
  };
}

/** Operations and energy of a simulated SNN against its ANN; null for files without layer costs. */
export function energyOf(
  spec: Pick<SnnSpec, 'layers'>,
  run: { samples: number; sopsPerStep: readonly Float64Array[] },
  points: readonly { T: number; metric: number | null }[],
  annMetric: number | null,
  constants: EnergyConstants,
): EnergyReport | null {
  if (!spec.layers) return null;
  return energyReport({
    layers: spec.layers,
    sopsPerStep: run.sopsPerStep,
    samples: run.samples,
    points,
    annMetric,
    constants,
  });
}
