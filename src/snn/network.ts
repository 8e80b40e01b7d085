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
} from './format.js';

export interface SnnParts {
  readonly form: SnnForm;
  readonly graph: Graph;
  readonly meta: SnnMetadata;
  readonly tail: Graph | null;
  readonly source?: PreparedModel | null;
  readonly timing?: Timing | null;
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

  constructor(parts: SnnParts) {
    this.form = parts.form;
    this.graph = parts.graph;
    this.meta = parts.meta;
    this.tail = parts.tail;
    this.source = parts.source ?? null;
    this.timing = parts.timing ?? null;
  }

  get spec(): SnnSpec {
    return this.meta.spec;
  }

  /** The thresholds as the calibration made them (layer-wise: one per site); in the unit-spike form, the θ folded into the weights. */
  thresholds(): Thresholds {
    const theta = this.meta.unit?.theta ?? this.spec.sites.map((s) => s.theta);
    return { granularity: this.spec.granularity, values: theta.map((t) => Float32Array.from(t)) };
  }

  /** The graph as it would be saved: in `form`, with every metadata key of the file format. */
  toGraph(form: SnnForm = this.form): Graph {
    if (form !== 'step' && form !== 'loop') throw optionError('form', `must be "step" or "loop" (got ${String(form)})`);
    if (form === this.form) return encodeSnn(this.graph, form, this.meta, this.tail);
    if (form === 'loop')
      return encodeSnn(buildLoop({ graph: this.graph, spec: this.spec }, this.tail), 'loop', this.meta, this.tail);
    throw optionError(
      'form',
      '"step" is not available: this network was read from a loop-form file (convert the ANN again for a step-form file)',
    );
  }

  /** The ONNX file's bytes. */
  toBytes(form: SnnForm = this.form): Uint8Array {
    return encodeModel(this.toGraph(form));
  }

  /** Write the ONNX file (whole or not at all; never over the source ANN). */
  save(file: string, opts: SaveOptions = {}): void {
    if (this.source)
      checkPaths(
        [{ path: this.source.source.path, role: 'the ANN this network was converted from' }],
        [{ path: file, role: 'save' }],
      );
    writeFileAtomic(file, this.toBytes(opts.form ?? this.form));
  }

  /** The same network with another (or no) source ANN. */
  withSource(source: PreparedModel | null): Snn {
    return new Snn({
      form: this.form,
      graph: this.graph,
      meta: this.meta,
      tail: this.tail,
      source,
      timing: this.timing,
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
    };
  }
}

/** A converted network from a decoded ONNX graph; `where` names it in errors. */
export function snnFromGraph(g: Graph, where: string): Snn {
  return new Snn(decodeSnn(g, where));
}

export interface LoadSnnOptions extends RuntimeOptions {
  /**
   * The source ANN's file, checked against the hash in the metadata. Default: the file named in
   * the metadata in the SNN's own folder, if it is there and its hash matches; null: none.
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
  const annFile = opts.ann === undefined ? findSourceAnn(snnFile, snn.meta) : opts.ann;
  if (annFile === null) return snn;
  let loaded: ReturnType<typeof loadModel>;
  try {
    loaded = loadModel(annFile);
  } catch (e) {
    if (e instanceof SpikeportError && opts.ann !== undefined)
      throw new SpikeportError(e.code, `ann: ${e.message}`, 'ann');
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

/**
 * The ANN an SNN file was made from, if it lies in the SNN's own folder under the name in the
 * metadata (a bare file name, checked when decoding), is a regular file that stays inside that
 * folder after resolving links, and has the recorded hash.
 */
export function findSourceAnn(snnFile: string, meta: SnnMetadata): string | null {
  let dir: string;
  let candidate: string;
  try {
    dir = fs.realpathSync(path.dirname(path.resolve(snnFile)));
    candidate = fs.realpathSync(path.join(dir, meta.source.file));
  } catch {
    return null;
  }
  if (path.dirname(candidate) !== dir || !fs.statSync(candidate).isFile()) return null;
  try {
    return sha256(readRegularFile(candidate)) === meta.source.sha256 ? candidate : null;
  } catch (e) {
    if (e instanceof SpikeportError) return null;
    throw e;
  }
}
