/**
 * Deploying to neuromorphic hardware through NIR (docs/nir.md): export a converted network
 * (unit-spike form) for a target profile, the same network as that target computes it (for
 * simulating the cost of deployment next to spikeport's own result), and a NIR file read back
 * as a network spikeport simulates.
 */
import path from 'node:path';
import type { Snn } from '../snn/network.js';
import { Snn as SnnClass } from '../snn/network.js';
import { MAX_THRESHOLD_ZERO, toNir, type NirExport, type NirGraph, type TargetCorrections } from '../nir/graph.js';
import { checkTarget, profileWith, type Profile, type Target } from '../nir/profiles.js';
import { deployFor } from '../nir/deploy.js';
import { nirStepGraph } from '../nir/onnx.js';
import { asTargetGraph } from '../nir/target.js';
import { readNir, writeNir } from '../nir/hdf5.js';
import { checkPaths } from '../files.js';
import { SpikeportError, optionError } from '../errors.js';
import type { SnnMetadata } from '../snn/format.js';
import { isNormalize } from '../data/dataset.js';
import { parsePreprocess } from '../data/preprocess.js';

export { TARGETS, PROFILES, checkTarget, profileWith, type Target, type Profile } from '../nir/profiles.js';
export { resetOf, type NirGraph, type NirNode, type NirExport, type TargetCorrections } from '../nir/graph.js';
export { readNir, nirBytes, NIR_VERSION } from '../nir/hdf5.js';
export { simulateNir, type NirRun } from '../nir/interpret.js';
export { nirStepGraph } from '../nir/onnx.js';

export interface TargetOptions {
  /** Quantise the weights to this many bits (one scale per neuron node), on any profile. */
  readonly weightBits?: number;
  /** Corrections to fold in instead of the file's own (convert --target); null: none. */
  readonly corrections?: TargetCorrections | null;
}

/** A network as a target computes it, and what the target could not express. */
export interface TargetNetwork {
  readonly snn: Snn;
  readonly profile: Profile;
  /** One line each: what the target cannot express and what was done instead. */
  readonly notes: readonly string[];
  /** The NIR graph the target gets; null when the network has no NIR form (then only the neuron is simulated). */
  readonly nir: NirGraph | null;
  /** Neurons and nodes added to express max pooling (zero without max pooling). */
  readonly maxPools: NirExport['maxPools'];
}

/** The NIR graph of a unit-spike network for a target (refuses what NIR cannot express, naming the node). */
export function toNirGraph(
  snn: Snn,
  target: string,
  where = snn.meta.source.file,
  opts: TargetOptions = {},
): { graph: NirGraph; notes: readonly string[]; maxPools: NirExport['maxPools'] } {
  refuseGroups(snn, where);
  const profile = profileWith(checkTarget(target), opts.weightBits);
  const exported = toNir(
    { form: snn.form, graph: snn.graph, meta: snn.meta, tail: snn.tail },
    profile.name,
    where,
    opts.corrections === undefined ? (snn.meta.target ?? null) : opts.corrections,
  );
  const deployed = deployFor(exported, profile, { clocks: exported.clocks });
  const notes = [...recordOf(snn, profile, exported), ...deployed.notes];
  const metadata = {
    ...deployed.graph.metadata,
    'spikeport.meta': JSON.stringify(importMeta(snn.meta)),
    'spikeport.notes': JSON.stringify(notes),
  };
  return { graph: { ...deployed.graph, metadata }, notes, maxPools: exported.maxPools };
}

/** What a deployment always differs in, and what convert --target did about it. */
function recordOf(snn: Snn, profile: Profile, exported: NirExport): string[] {
  const t = snn.meta.target;
  const notes: string[] = [];
  notes.push(
    `${profile.name}: no initial membrane (spikeport starts at θ/2)${profile.reset === 'zero' ? ', reset to 0 (spikeport subtracts θ)' : ''}${profile.spikes === 'multi' ? ', several spikes per step' : ''}`,
  );
  if (t && t.profile === profile.name)
    notes.push(
      `converted for ${t.profile}: ${[t.start ? 'the θ/2 start at step 1' : '', t.bias.some(Boolean) ? `a bias per channel (T = ${t.T}, ${t.samples} samples)` : '', t.threshold.some(Boolean) ? `a threshold per channel (T = ${t.T}, ${t.samples} samples)` : ''].filter(Boolean).join(', ') || 'nothing to correct'}`,
    );
  else if (t)
    notes.push(`the file was calibrated for ${t.profile}, not ${profile.name}: its corrections are used as they are`);
  else
    notes.push('not calibrated for the target (convert with target): the target scores what simulating asTarget gives');
  for (const n of t?.notes ?? []) notes.push(n);
  const c = exported.clock;
  if (c.ifNodes)
    notes.push(
      `θ/2 start: ${c.ifNodes} clock IF node${c.ifNodes > 1 ? 's' : ''} (${c.neurons} neurons per sample) and ${c.weightNodes} fixed-weight layers added`,
    );
  const m = exported.maxPools;
  if (m.ifNodes)
    notes.push(
      `max pooling built from ${m.ifNodes} IF nodes (${m.neurons} neurons per sample) and ${m.weightNodes} fixed-weight convolutions: max(a, b) = b + IF(a − b)${exported.matchCopies > 1 ? `, each match ${exported.matchCopies} IF neurons of threshold θ with starts 0, θ/${exported.matchCopies}, … from the clock and spikes worth θ/${exported.matchCopies} (one spike per step would count the max in whole θ)` : ''}${profile.reset === 'zero' ? `; with a reset to 0 the IF loses the charge above its threshold, so its threshold is ${MAX_THRESHOLD_ZERO} against a spike's worth of 1 (the loss paid back on average): this max is approximate` : ''}`,
    );
  if (snn.tail) notes.push('ops after the readout are not in the NIR file: run them on the averaged readout');
  notes.push('the input is analog (direct coding): the host computes the first layer once per frame');
  return notes;
}

/** What a NIR file keeps of spikeport's metadata, so that `simulate FILE.nir` scores it as the SNN. */
function importMeta(meta: SnnMetadata): Record<string, unknown> {
  return {
    normalize: meta.normalize,
    delay: { estimated: meta.delay.estimated, ...(meta.delay.fitted ? { fitted: meta.delay.fitted } : {}) },
    ...(meta.preprocess ? { preprocess: meta.preprocess } : {}),
    source: meta.source.file,
  };
}

/** Write the NIR file (whole or not at all; never over `inputs`, e.g. the converted file it came from). */
export async function exportNir(
  snn: Snn,
  file: string,
  target: string,
  inputs: readonly string[] = [],
  opts: TargetOptions = {},
): Promise<NirGraph & { notes: readonly string[] }> {
  checkPaths(
    inputs.map((p) => ({ path: p, role: 'an input' })),
    [{ path: file, role: 'out' }],
  );
  const { graph, notes } = toNirGraph(snn, target, inputs[0] ? path.basename(inputs[0]) : undefined, opts);
  await writeNir(file, graph);
  return { ...graph, notes };
}

/**
 * The network as the target computes it: its NIR graph for the profile, simulated with the
 * profile's neuron. A network without a NIR form (3-d convolutions, the θ-amplitude form) is
 * simulated with the target's neuron only (start 0, v > θ, its reset), and the record says so.
 */
export function targetNetwork(snn: Snn, target: string, opts: TargetOptions = {}): TargetNetwork {
  const t: Target = checkTarget(target, 'asTarget');
  if (snn.form !== 'step') throw optionError('asTarget', 'needs a step-form network');
  refuseGroups(snn, snn.meta.source.file, 'asTarget');
  const profile = profileWith(t, opts.weightBits);
  let exported: ReturnType<typeof toNirGraph>;
  try {
    exported = toNirGraph(snn, t, snn.meta.source.file, opts);
  } catch (e) {
    // The fallback knows single spikes in float arithmetic only: a quantised or multi-spike target is refused.
    if (
      !(e instanceof SpikeportError) ||
      opts.weightBits !== undefined ||
      profile.quantisation ||
      profile.spikes !== 'single'
    )
      throw e;
    const graph = asTargetGraph(snn.graph, snn.spec, t);
    return {
      snn: new SnnClass({
        form: 'step',
        graph,
        meta: snn.meta,
        tail: snn.tail,
        source: snn.source,
        timing: snn.timing,
      }),
      profile,
      notes: [`no NIR form (${e.message}): only the target's neuron is simulated (start 0, v > θ, its reset)`],
      nir: null,
      maxPools: { ifNodes: 0, neurons: 0, weightNodes: 0 },
    };
  }
  const step = nirStepGraph(exported.graph, profile, snn.meta.source.file);
  const { unit: _u, target: _t, ...rest } = snn.meta;
  const meta: SnnMetadata = {
    ...rest,
    spec: step.spec,
    delay: { ...snn.meta.delay, latencies: step.spec.sites.map(() => 0) },
  };
  return {
    snn: new SnnClass({
      form: 'step',
      graph: step.graph,
      meta,
      tail: snn.tail,
      source: snn.source,
      timing: snn.timing,
    }),
    profile,
    notes: exported.notes,
    nir: exported.graph,
    maxPools: exported.maxPools,
  };
}

/** The network as the target computes it (see targetNetwork). */
export function asTarget(snn: Snn, target: string, opts: TargetOptions = {}): Snn {
  return targetNetwork(snn, target, opts).snn;
}

/**
 * A NIR file as a network to simulate with `profile`'s neuron. What spikeport wrote into the
 * file's metadata (normalisation, delay) is used when it checks out; a file from another tool
 * has none: its input is taken as it comes, with no delay.
 */
export async function loadNir(
  file: string,
  target: string,
  opts: { weightBits?: number } = {},
): Promise<{ snn: Snn; notes: readonly string[] }> {
  const profile = profileWith(checkTarget(target, 'asTarget'), opts.weightBits);
  const name = path.basename(file);
  let g = await readNir(file);
  const notes: string[] = [];
  // A file spikeport wrote for this profile is already in its arithmetic: deploying it again would scale it twice.
  const already =
    g.metadata['spikeport.target'] === profile.name &&
    g.metadata['spikeport.weight_bits'] === String(profile.quantisation?.bits);
  if (
    !already &&
    (opts.weightBits !== undefined || profile.quantisation || profile.pool === 'SumPool2d' || profile.affineOnly)
  ) {
    // Float weights in the file: the importer makes the integers, with its own rounding.
    const d = deployFor(g, profile, { byImporter: true });
    g = d.graph;
    notes.push(...d.notes);
  }
  const step = nirStepGraph(g, profile, name);
  const m = parseImportMeta(g.metadata['spikeport.meta']);
  const meta: SnnMetadata = {
    spec: step.spec,
    source: { file: m.source ?? name, sha256: '0'.repeat(64) },
    normalize: m.normalize,
    calibration: { method: 'nir', iterations: 1, batchSize: 1, samples: 1, data: name },
    delay: { estimated: m.delay, latencies: step.spec.sites.map(() => 0), ...(m.fitted ? { fitted: m.fitted } : {}) },
    ...(m.preprocess ? { preprocess: m.preprocess } : {}),
  };
  return { snn: new SnnClass({ form: 'step', graph: step.graph, meta, tail: null }), notes };
}

interface ImportMeta {
  normalize: SnnMetadata['normalize'];
  delay: number;
  fitted?: number[];
  preprocess?: string;
  source?: string;
}

/** spikeport's metadata in a NIR file, each field checked; anything that does not check out is ignored. */
function parseImportMeta(text: string | undefined): ImportMeta {
  const none: ImportMeta = { normalize: null, delay: 0 };
  if (text === undefined || text.length > 1 << 20) return none;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return none;
  }
  if (!v || typeof v !== 'object') return none;
  const o = v as Record<string, unknown>;
  const delay = o.delay as Record<string, unknown> | undefined;
  const est = delay?.estimated;
  const fitted = delay?.fitted;
  const okFitted =
    Array.isArray(fitted) && fitted.length <= 65536 && fitted.every((d, i) => Number.isInteger(d) && d >= 0 && d <= i);
  return {
    normalize: isNormalize(o.normalize) ? o.normalize : null,
    delay: Number.isInteger(est) && (est as number) >= 0 && (est as number) <= 65536 ? (est as number) : 0,
    ...(okFitted ? { fitted: fitted as number[] } : {}),
    ...(typeof o.preprocess === 'string' && parsePreprocess(o.preprocess) ? { preprocess: o.preprocess } : {}),
    ...(typeof o.source === 'string' && /^[^/\\]{1,255}$/.test(o.source) && o.source !== '..'
      ? { source: o.source }
      : {}),
  };
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
