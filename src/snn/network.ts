/**
 * A converted spiking network in memory: the graph (one step, or all steps as an ONNX Loop),
 * what its file's metadata says, the ops after the readout, and — when known — the source ANN,
 * prepared, for the ANN and clipped-ANN references. It can be saved and described as it is;
 * simulating it is the front door's `simulate` (api/simulate.ts).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Graph } from '../graph/ir.js';
import { decodeModel, encodeModel } from '../onnx/codec.js';
import type { RuntimeOptions } from '../ort/session.js';
import { loadModel, sha256 } from '../model/load.js';
import { prepareModel, type PreparedModel } from '../model/prepare.js';
import type { Thresholds } from '../calibrate/thresholds.js';
import { checkPaths, readRegularFile, writeFileAtomic } from '../files.js';
import { SpikeportError, optionError } from '../errors.js';
import type { Notice } from '../progress.js';
import type { Normalize } from '../data/dataset.js';
import { buildLoop } from './loop.js';
import {
  decodeSnn,
  encodeSnn,
  spikeForm,
  type SpikeForm,
  type LayerSpec,
  type PoolMode,
  type SnnForm,
  type SnnMetadata,
  type SnnSpec,
  type SiteSpec,
} from './format.js';

export interface SnnParts {
  readonly form: SnnForm;
  readonly graph: Graph;
  readonly meta: SnnMetadata;
  readonly tail: Graph | null;
  readonly source?: PreparedModel | null;
  readonly timing?: Timing | null;
  readonly notices?: readonly Notice[];
}

/**
 * How long the conversion took, when it ran in this process. Kept out of the file, so that the
 * same model, data and seed give the same bytes.
 */
export interface Timing {
  /** Calibration (thresholds and d̂), seconds. */
  readonly calibrate: number;
  /** The whole conversion (prepare, calibrate, corrections, build), seconds. */
  readonly convert: number;
  /** Bias / potential calibration and the delay fit, seconds (when asked for). */
  readonly refine?: number;
}

export interface SaveOptions {
  /**
   * `step` (default for a network made by convert): the file computes one time step per call,
   * the host loops and feeds the states back; `loop`: all T steps in one call (inputs T and
   * delay, outputs as the ANN's). A network read from a loop-form file can only be saved as loop.
   */
  readonly form?: SnnForm;
}

export interface SiteDescription {
  readonly node: string;
  readonly neurons: number;
  /** How many thresholds (channels, or 1 layer-wise). */
  readonly thresholds: number;
  readonly thetaMin: number;
  readonly thetaMean: number;
  readonly thetaMax: number;
  /** Channels with θ = 0: they never fire. */
  readonly silent: number;
  /** The site's latency r in steps (∞ when it never fires). */
  readonly latency: number;
}

export interface SnnDescription {
  readonly form: SnnForm;
  readonly source: SnnMetadata['source'];
  readonly input: { readonly name: string; readonly shape: readonly number[] };
  readonly readout: { readonly name: string; readonly shape: readonly number[] };
  readonly maxpool: PoolMode;
  /** 'unit': every neuron has threshold 1 and emits 0/1 (θ folded into the weights; sites list the folded θ). */
  readonly spikes: SpikeForm;
  /** Mul nodes the unit-spike form added where branches of different θ meet. */
  readonly scaleNodes: readonly string[];
  readonly granularity: SnnSpec['granularity'];
  readonly calibration: SnnMetadata['calibration'];
  /** The estimated delay d̂. */
  readonly delay: number;
  readonly sites: readonly SiteDescription[];
  readonly layers: readonly LayerSpec[];
  /** Multiply-accumulates of one ANN pass per sample (0 for files without layer costs). */
  readonly annMacs: number;
  /** Whether the source ANN is at hand (for ANN references and per-site errors). */
  readonly hasSource: boolean;
  /** Groups of binary neurons per ANN neuron (docs/algorithm.md §11); null: one IF neuron each. */
  readonly group: SiteSpec['group'] | null;
}

export class Snn {
  readonly form: SnnForm;
  readonly graph: Graph;
  readonly meta: SnnMetadata;
  readonly tail: Graph | null;
  /** The source ANN, prepared as it was for conversion; null when unknown. */
  readonly source: PreparedModel | null;
  /** Conversion times, for a network converted in this process; null for one read from a file. */
  readonly timing: Timing | null;
  /**
   * What the user should know about this network that they may not have meant (no input
   * normalisation; the source ANN not found, so no references): from `convert` and `loadSnn`,
   * not saved in the file; `simulate` repeats them in its record.
   */
  readonly notices: readonly Notice[];

  constructor(parts: SnnParts) {
    this.form = parts.form;
    this.graph = parts.graph;
    this.meta = parts.meta;
    this.tail = parts.tail;
    this.source = parts.source ?? null;
    this.timing = parts.timing ?? null;
    this.notices = parts.notices ?? [];
  }

  private parts(): SnnParts {
    const { form, graph, meta, tail, source, timing, notices } = this;
    return { form, graph, meta, tail, source, timing, notices };
  }

  get spec(): SnnSpec {
    return this.meta.spec;
  }

  /** The thresholds as the calibration made them (layer-wise: one per site); in the unit-spike form, the θ folded into the weights. */
  thresholds(): Thresholds {
    const theta = this.meta.unit?.theta ?? this.spec.sites.map((s) => s.theta);
    return { granularity: this.spec.granularity, values: theta.map((t) => Float32Array.from(t)) };
  }

  /**
   * The graph as it would be saved: in `form`, with every metadata key of the file format.
   * `savedAs`: the file it is for, so that it records where the source ANN lies from there.
   */
  toGraph(form: SnnForm = this.form, savedAs?: string): Graph {
    if (form !== 'step' && form !== 'loop') throw optionError('form', `must be "step" or "loop" (got ${String(form)})`);
    const meta = savedAs === undefined ? this.meta : locateSource(this.meta, this.source, savedAs);
    if (form === this.form) return encodeSnn(this.graph, form, meta, this.tail);
    if (form === 'loop')
      return encodeSnn(buildLoop({ graph: this.graph, spec: this.spec }, this.tail), 'loop', meta, this.tail);
    throw optionError(
      'form',
      '"step" is not available: this network was read from a loop-form file (convert the ANN again for a step-form file)',
    );
  }

  /** The ONNX file's bytes (`savedAs`: the file they are for, see toGraph). */
  toBytes(form: SnnForm = this.form, savedAs?: string): Uint8Array {
    return encodeModel(this.toGraph(form, savedAs));
  }

  /** Write the ONNX file (whole or not at all; never over the source ANN). */
  save(file: string, opts: SaveOptions = {}): void {
    if (this.source)
      checkPaths(
        [{ path: this.source.source.path, role: 'the ANN this network was converted from' }],
        [{ path: file, role: 'save' }],
      );
    writeFileAtomic(file, this.toBytes(opts.form ?? this.form, file));
  }

  /** The same network with another (or no) source ANN. */
  withSource(source: PreparedModel | null): Snn {
    return new Snn({ ...this.parts(), source });
  }

  /** The same network with more notices. */
  withNotices(notices: readonly Notice[]): Snn {
    return new Snn({ ...this.parts(), notices: [...this.notices, ...notices] });
  }

  /**
   * The same network fed with another input normalisation (per channel, or one value): its
   * metadata and its source ANN's say so, and everything that reads batches uses it.
   */
  withNormalize(normalize: Normalize | null): Snn {
    return new Snn({
      ...this.parts(),
      meta: { ...this.meta, normalize },
      source: this.source ? { ...this.source, normalize } : null,
    });
  }

  describe(): SnnDescription {
    const { spec, delay } = this.meta;
    const sites = spec.sites.map((s, i): SiteDescription => {
      const th = this.meta.unit?.theta[i] ?? s.theta;
      return {
        node: s.node,
        neurons: s.neurons,
        thresholds: th.length,
        thetaMin: Math.min(...th),
        thetaMean: th.reduce((a, b) => a + b, 0) / th.length,
        thetaMax: Math.max(...th),
        silent: th.filter((t) => t === 0).length,
        latency: delay.latencies[i] ?? Infinity,
      };
    });
    const layers = spec.layers ?? [];
    return {
      form: this.form,
      source: this.meta.source,
      input: { name: spec.input, shape: spec.inputShape },
      readout: { name: spec.readout, shape: spec.readoutShape },
      maxpool: spec.maxpool,
      spikes: spikeForm(this.meta),
      scaleNodes: this.meta.unit?.scaleNodes ?? [],
      granularity: spec.granularity,
      calibration: this.meta.calibration,
      delay: delay.estimated,
      sites,
      layers,
      annMacs: layers.reduce((a, l) => a + l.macs, 0),
      hasSource: this.source !== null,
      group: spec.sites.find((s) => s.group)?.group ?? null,
    };
  }
}

/** A converted network from a decoded ONNX graph; `where` names it in errors. */
export function snnFromGraph(g: Graph, where: string): Snn {
  return new Snn(decodeSnn(g, where));
}

export interface LoadSnnOptions extends RuntimeOptions {
  /**
   * The source ANN's file, checked against the hash in the metadata. Default: found from the
   * SNN's own folder as `findSourceAnn` says, if its hash matches; null: none. When it is not
   * found, the network's `notices` say so and how to give it.
   */
  readonly ann?: string | null;
}

/** Read a converted file, and the source ANN (prepared) when it can be found. */
export async function loadSnn(file: string, opts: LoadSnnOptions = {}): Promise<Snn> {
  return attachSource(
    snnFromGraph(decodeModel(readRegularFile(file), path.basename(file)), path.basename(file)),
    file,
    opts,
  );
}

/** The network with its source ANN prepared, found as `loadSnn` describes (`snnFile`: where the network was read from). */
export async function attachSource(snn: Snn, snnFile: string, opts: LoadSnnOptions = {}): Promise<Snn> {
  if (opts.ann === null) return snn;
  const annFile = opts.ann === undefined ? findSourceAnn(snnFile, snn.meta) : opts.ann;
  if (annFile === null) return snn.withNotices([sourceNotFound(snnFile, snn.meta)]);
  let loaded: ReturnType<typeof loadModel>;
  try {
    loaded = loadModel(annFile);
  } catch (e) {
    if (e instanceof SpikeportError && opts.ann !== undefined) throw e.within('ann');
    throw e;
  }
  if (loaded.sha256 !== snn.meta.source.sha256) {
    throw optionError(
      'ann',
      `${annFile} is not the model ${path.basename(snnFile)} was converted from (${snn.meta.source.file}, sha256 ${snn.meta.source.sha256.slice(0, 12)}…)`,
    );
  }
  const source = await prepareModel(loaded, {
    readoutNode: snn.meta.readoutNode,
    ...(snn.meta.normalization ? { frozenNorms: snn.meta.normalization.statistics } : {}),
    normalize: snn.meta.normalize ?? undefined,
    threads: opts.threads,
    device: opts.device,
  });
  return snn.withSource(source);
}

/** The largest file read to check whether it is the source ANN (ONNX's protobuf limit). */
const MAX_SOURCE_BYTES = 2 ** 31;

/**
 * The ANN an SNN file was made from, looked up only inside the SNN's own folder (sub-folders
 * included): at the path recorded relative to that folder, else under its file name beside the
 * SNN. A candidate counts if, after resolving links, it stays inside that folder, is a regular
 * `.onnx` file of a model's size and has the recorded hash. The metadata may come from anyone:
 * nothing outside the folder the user named (by naming the SNN) is read, and nothing is read
 * that is not an ONNX file by name.
 */
export function findSourceAnn(snnFile: string, meta: SnnMetadata): string | null {
  let dir: string;
  try {
    dir = fs.realpathSync(path.dirname(path.resolve(snnFile)));
  } catch {
    return null;
  }
  const { file, relative } = meta.source;
  const candidates = [...(relative !== undefined ? [relative] : []), file];
  for (const c of candidates) {
    const found = sourceCandidate(dir, c, meta.source.sha256);
    if (found) return found;
  }
  return null;
}

function sourceCandidate(dir: string, relative: string, sha: string): string | null {
  if (path.isAbsolute(relative) || !/\.onnx$/i.test(relative)) return null;
  let real: string;
  try {
    real = fs.realpathSync(path.join(dir, ...relative.split('/')));
  } catch {
    return null;
  }
  const rel = path.relative(dir, real);
  if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel) || !/\.onnx$/i.test(real)) return null;
  const st = fs.statSync(real);
  if (!st.isFile() || st.size > MAX_SOURCE_BYTES) return null;
  try {
    return sha256(readRegularFile(real)) === sha ? real : null;
  } catch (e) {
    if (e instanceof SpikeportError) return null;
    throw e;
  }
}

/**
 * Where the source ANN was at conversion, seen from the folder `savedAs` is written to ('/'
 * between folders); the metadata without it when the source's file is not known.
 */
function locateSource(meta: SnnMetadata, source: PreparedModel | null, savedAs: string): SnnMetadata {
  const { relative: _, ...rest } = meta.source;
  const real = (p: string): string => {
    try {
      return fs.realpathSync(p);
    } catch {
      return path.resolve(p);
    }
  };
  if (!source) return { ...meta, source: rest };
  const rel = path.relative(real(path.dirname(path.resolve(savedAs))), real(source.source.path));
  if (rel === '' || path.isAbsolute(rel)) return { ...meta, source: rest };
  return { ...meta, source: { ...rest, relative: rel.split(path.sep).join('/') } };
}

/** Why a converted file comes without its source ANN, and how to give it. */
function sourceNotFound(snnFile: string, meta: SnnMetadata): Notice {
  const { file, relative, path: given } = meta.source;
  const name = path.basename(snnFile);
  const from = given !== undefined && given !== file ? ` (converted from ${given})` : '';
  const skipped = 'the ANN and clipped-ANN references, per-site errors and SOPs90/95 are skipped';
  let message: string;
  if (relative !== undefined && relative.split('/').includes('..')) {
    // Where it was, seen from here: a path the user may give (it is not read unless given).
    const at = path.resolve(path.dirname(path.resolve(snnFile)), ...relative.split('/'));
    message = `the source ANN ${file}${from} was outside the folder of ${name} (at ${relative} from there), where it is looked for: ${skipped}; give it with ann ${path.relative(process.cwd(), at) || at}`;
  } else {
    const looked = [...new Set([...(relative !== undefined ? [relative] : []), file])].join(' or ');
    message = `the source ANN ${file}${from} is not in the folder of ${name} (no ${looked} there with its sha256): ${skipped}; give it with ann FILE`;
  }
  return { code: 'no-reference', message, field: 'ann' };
}
