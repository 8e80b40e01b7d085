/**
 * NIR's file: HDF5 as NIR's own writer lays it out — `/version` (string), `/node/type` =
 * "NIRGraph", `/node/edges` (E×2 strings), `/node/nodes/<name>/type` and one dataset per field
 * (arrays gzip-compressed, integers int64), an optional `metadata` group of strings; no HDF5
 * attributes. Written and read with h5wasm.
 */
import fs from 'node:fs';
import path from 'node:path';
import type h5wasm from 'h5wasm/node';
import type { Dataset, Group } from 'h5wasm/node';
import { readRegularFile, scratchDir, scratchFailure, scratchWrite, writeFileAtomic } from '../files.js';
import { SpikeportError } from '../errors.js';
import type { Array, NirGraph, NirNode } from './graph.js';

/** The NIR version the files say they are written for. */
export const NIR_VERSION = '1.0.6';

type Field =
  | { kind: 'string'; value: string }
  | { kind: 'floats'; value: Array }
  | { kind: 'ints'; value: readonly number[] }
  | { kind: 'int'; value: number };

function fields(n: NirNode): Record<string, Field> {
  const f = (value: Array): Field => ({ kind: 'floats', value });
  const ints = (value: readonly number[]): Field => ({ kind: 'ints', value });
  const type: Field = { kind: 'string', value: n.type };
  switch (n.type) {
    case 'Input':
    case 'Output':
      return { type, shape: ints(n.shape) };
    case 'Conv1d':
    case 'Conv2d':
      return {
        type,
        weight: f(n.weight),
        bias: f(n.bias),
        stride: ints(n.stride),
        padding: ints(n.padding),
        dilation: ints(n.dilation),
        groups: { kind: 'int', value: n.groups },
        input_shape: ints(n.inputShape),
      };
    case 'Affine':
      return { type, weight: f(n.weight), bias: f(n.bias) };
    case 'Linear':
      return { type, weight: f(n.weight) };
    case 'IF':
      return { type, r: f(n.r), v_threshold: f(n.vThreshold), v_reset: f(n.vReset) };
    case 'AvgPool2d':
    case 'SumPool2d':
      return { type, kernel_size: ints(n.kernelSize), stride: ints(n.stride), padding: ints(n.padding) };
    case 'Flatten':
      return {
        type,
        start_dim: { kind: 'int', value: n.startDim },
        end_dim: { kind: 'int', value: n.endDim },
        input_type: ints(n.inputShape),
      };
    case 'Scale':
      return { type, scale: f(n.scale) };
  }
}

function writeField(g: Group, name: string, v: Field): void {
  switch (v.kind) {
    case 'string':
      g.create_dataset({ name, data: v.value });
      break;
    case 'int':
      g.create_dataset({ name, data: BigInt64Array.from([BigInt(v.value)]), shape: [], dtype: '<q' });
      break;
    case 'ints':
      g.create_dataset({
        name,
        data: BigInt64Array.from(v.value.map((x) => BigInt(x))),
        shape: [v.value.length],
        dtype: '<q',
      });
      break;
    case 'floats': {
      // Arrays gzip-compressed in one chunk, as NIR's writer does (an empty one cannot be chunked).
      const dims = [...v.value.dims];
      const gz = v.value.data.length > 0 ? { chunks: dims, compression: 'gzip' as const } : {};
      g.create_dataset({ name, data: v.value.data, shape: dims, dtype: '<f', ...gz });
      break;
    }
  }
}

let ready: Promise<typeof h5wasm> | null = null;
async function h5(): Promise<typeof h5wasm> {
  // Loaded when a NIR file is written or read; HDF5 prints its error stack to stderr unless errors are
  // thrown instead: a damaged file is then one line.
  ready ??= import('h5wasm/node').then(async (m) => {
    await m.default.ready.then((h) => h.activate_throwing_error_handler());
    return m.default;
  });
  return ready;
}

/** The file's bytes (written to a private temporary folder, read back, removed). */
export async function nirBytes(graph: NirGraph): Promise<Uint8Array> {
  const lib = await h5();
  const dir = scratchDir('spikeport-nir-');
  const tmp = path.join(dir, 'graph.nir');
  try {
    const f = new lib.File(tmp, 'w');
    try {
      f.create_dataset({ name: 'version', data: NIR_VERSION });
      const node = f.create_group('node');
      node.create_dataset({ name: 'type', data: 'NIRGraph' });
      const flat = graph.edges.flatMap(([a, b]) => [a, b]);
      node.create_dataset({ name: 'edges', data: flat, shape: [graph.edges.length, 2] });
      const nodes = node.create_group('nodes');
      for (const [name, n] of graph.nodes) {
        const g = nodes.create_group(name);
        for (const [k, v] of Object.entries(fields(n))) writeField(g, k, v);
      }
      const meta = Object.entries(graph.metadata);
      if (meta.length) {
        const m = node.create_group('metadata');
        for (const [k, v] of meta) m.create_dataset({ name: k, data: v });
      }
    } finally {
      f.close();
    }
    return new Uint8Array(fs.readFileSync(tmp));
  } catch (e) {
    throw ioFailure(e) ?? e;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * HDF5's own report of a failed write to the temporary file (a full disk, a file size limit):
 * its error stack names a low-level I/O failure and the system's message, which is the reason
 * given. Anything else is not the disk's fault and stays an internal error.
 */
function ioFailure(e: unknown): SpikeportError | null {
  if (e instanceof SpikeportError) return null;
  const text = String((e as Error)?.message ?? e);
  if (!/major: Low-level I\/O/.test(text)) return null;
  const why = /error message = '([^']{1,200})'/.exec(text)?.[1] ?? 'HDF5 could not write the file';
  return scratchFailure(why);
}

const HDF5_SIGNATURE = Buffer.from([0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]);

/** Whether the file starts with HDF5's signature (a NIR file; its superblock may also sit at 512, 1024, … — spikeport reads those at 0). */
export function isHdf5(file: string): boolean {
  let fd: number | null = null;
  try {
    if (!fs.statSync(file).isFile()) return false;
    fd = fs.openSync(file, 'r');
    const head = Buffer.alloc(8);
    return fs.readSync(fd, head, 0, 8, 0) === 8 && head.equals(HDF5_SIGNATURE);
  } catch {
    return false;
  } finally {
    if (fd !== null) fs.closeSync(fd);
  }
}

/** Write the file whole or not at all. */
export async function writeNir(file: string, graph: NirGraph): Promise<void> {
  writeFileAtomic(file, await nirBytes(graph));
}

/** The largest NIR file read (bytes). */
export const NIR_MAX_BYTES = 2 ** 30;
/** The most values one dataset of a NIR file may hold, and all of them together. */
export const NIR_MAX_VALUES = 2 ** 26;
const MAX_TOTAL_VALUES = 2 ** 28;
/** The most nodes and edges a NIR graph may have. */
export const NIR_MAX_NODES = 100_000;
const MAX_NAME = 1000;

/** NIR node types spikeport knows but does not simulate, and why. */
const NOT_SIMULATED: Readonly<Record<string, string>> = {
  LIF: 'a leaky neuron: NIR gives its time constant, not the step the reader discretises it with, so no simulation of it is exact',
  CubaLIF:
    'a leaky neuron with a synaptic current: NIR gives its time constants, not the step the reader discretises them with',
  LI: 'a leaky integrator: NIR gives its time constant, not the step the reader discretises it with',
  CubaLI: 'a leaky integrator with a synaptic current: NIR gives its time constants, not the step',
  I: 'an integrator without spikes',
  Delay: 'a delay',
  Threshold: 'a threshold without a membrane',
  NIRGraph: 'a nested graph',
};

/**
 * Read a NIR file as NIR's writer lays it out (the node types spikeport simulates). The file is
 * untrusted: its size, every dataset's size and type, the node and edge counts and the names
 * are checked before anything is allocated from them; any problem is one line naming the node.
 */
export async function readNir(file: string): Promise<NirGraph> {
  const lib = await h5();
  const name = path.basename(file);
  const bad = (what: string): SpikeportError => new SpikeportError('invalid-file', `${name}: ${what}`);
  const size = fs.statSync(file, { throwIfNoEntry: false })?.size ?? 0;
  if (size > NIR_MAX_BYTES) throw bad(`${size} bytes; spikeport reads NIR files of at most ${NIR_MAX_BYTES} bytes`);
  const bytes = readRegularFile(file);
  const dir = scratchDir('spikeport-nir-');
  const tmp = path.join(dir, 'graph.nir');
  let f: InstanceType<typeof lib.File> | null = null;
  let total = 0;
  try {
    scratchWrite(tmp, bytes);
    try {
      f = new lib.File(tmp, 'r');
    } catch {
      throw bad('not an HDF5 file');
    }
    const group = (g: Group, k: string): Group | null => {
      const e = g.keys().includes(k) ? g.get(k) : null;
      return e instanceof lib.Group ? e : null;
    };
    const dataset = (g: Group, k: string, where: string, optional = false): Dataset | null => {
      const e = g.keys().includes(k) ? g.get(k) : null;
      if (!(e instanceof lib.Dataset)) {
        if (optional) return null;
        throw bad(`${where}: no dataset "${k}"`);
      }
      const m = e.metadata;
      const n = m.total_size;
      if (!Number.isSafeInteger(n) || n < 0 || n > NIR_MAX_VALUES)
        throw bad(`${where}: "${k}" holds ${n} values (at most ${NIR_MAX_VALUES})`);
      // The element's size too: a fixed-length string or an array type can make one value huge.
      if (!(n * m.size <= NIR_MAX_VALUES * 8))
        throw bad(`${where}: "${k}" holds ${n * m.size} bytes (at most ${NIR_MAX_VALUES * 8})`);
      total += n;
      if (total > MAX_TOTAL_VALUES) throw bad(`more than ${MAX_TOTAL_VALUES} values in all`);
      return e;
    };
    const text = (g: Group, k: string, where: string): string => {
      const d = dataset(g, k, where) as Dataset;
      if (d.metadata.type !== 3 || (d.shape ?? []).length !== 0) throw bad(`${where}: "${k}" is not a string`);
      const v = d.value;
      const s = typeof v === 'string' ? v : v instanceof Uint8Array ? Buffer.from(v).toString('utf8') : '';
      if (s.length > MAX_NAME) throw bad(`${where}: "${k}" is longer than ${MAX_NAME} characters`);
      return s;
    };
    const numeric = (d: Dataset, k: string, where: string): ArrayLike<number | bigint> => {
      const t = d.metadata.type;
      if (t !== 0 && t !== 1) throw bad(`${where}: "${k}" is not numeric`);
      if ((d.shape ?? []).length > 8) throw bad(`${where}: "${k}" has more than 8 axes`);
      const v = d.value;
      if (typeof v === 'number' || typeof v === 'bigint') return [v];
      if (!ArrayBuffer.isView(v)) throw bad(`${where}: "${k}" is not numeric`);
      return v as unknown as ArrayLike<number | bigint>;
    };
    const node = group(f, 'node');
    if (!node || text(node, 'type', '/node') !== 'NIRGraph') throw bad('not a NIR graph (no /node of type NIRGraph)');
    const e = dataset(node, 'edges', '/node') as Dataset;
    const eShape = e.shape ?? [];
    if (
      e.metadata.type !== 3 ||
      !((eShape.length === 2 && eShape[1] === 2) || (eShape.length === 1 && eShape[0] === 0))
    )
      throw bad('/node/edges is not a list of (from, to) names');
    if (eShape[0] > NIR_MAX_NODES * 10) throw bad(`more than ${NIR_MAX_NODES * 10} edges`);
    const edgeValues = (eShape[0] === 0 ? [] : (e.value as unknown[])).map((v) =>
      typeof v === 'string' ? v : v instanceof Uint8Array ? Buffer.from(v).toString('utf8') : '',
    );
    const edges: [string, string][] = [];
    for (let i = 0; i < edgeValues.length; i += 2) edges.push([edgeValues[i], edgeValues[i + 1]]);
    const nodesGroup = group(node, 'nodes');
    if (!nodesGroup) throw bad('no group /node/nodes');
    const names = nodesGroup.keys();
    if (names.length > NIR_MAX_NODES) throw bad(`${names.length} nodes (at most ${NIR_MAX_NODES})`);
    const nodes = new Map<string, NirNode>();
    for (const nodeName of names) {
      const where = `node "${nodeName.slice(0, 100)}"`;
      if (nodeName.length > MAX_NAME) throw bad(`a node name is longer than ${MAX_NAME} characters`);
      const g = group(nodesGroup, nodeName);
      if (!g) throw bad(`${where} is not a group`);
      const arr = (k: string, optional = false): Array | null => {
        const d = dataset(g, k, where, optional);
        if (!d) return null;
        const v = numeric(d, k, where);
        const data = Float32Array.from(v, Number);
        return { dims: d.shape ?? [], data };
      };
      const req = (k: string): Array => arr(k) as Array;
      const ints = (k: string, optional = false): number[] | null => {
        const d = dataset(g, k, where, optional);
        if (!d) return null;
        if (d.metadata.type !== 0) throw bad(`${where}: "${k}" is not integers`);
        const v = Array.from(numeric(d, k, where), Number);
        if (v.some((x) => !Number.isSafeInteger(x) || Math.abs(x) > 2 ** 31))
          throw bad(`${where}: "${k}" is out of range`);
        return v;
      };
      const reqInts = (k: string): number[] => ints(k) as number[];
      const int = (k: string): number => {
        const v = reqInts(k);
        if (v.length !== 1) throw bad(`${where}: "${k}" is not one integer`);
        return v[0];
      };
      const type = text(g, 'type', where);
      let n: NirNode;
      switch (type) {
        case 'Input':
        case 'Output':
          n = { type, shape: reqInts('shape') };
          break;
        case 'Conv1d':
        case 'Conv2d':
          n = {
            type,
            weight: req('weight'),
            bias: req('bias'),
            stride: reqInts('stride'),
            padding: reqInts('padding'),
            dilation: reqInts('dilation'),
            groups: int('groups'),
            inputShape: ints('input_shape', true) ?? [],
          };
          break;
        case 'Affine':
          n = { type, weight: req('weight'), bias: req('bias') };
          break;
        case 'Linear':
          n = { type, weight: req('weight') };
          break;
        case 'IF': {
          const vThreshold = req('v_threshold');
          const vReset = arr('v_reset', true) ?? {
            dims: vThreshold.dims,
            data: new Float32Array(vThreshold.data.length),
          };
          n = { type, r: req('r'), vThreshold, vReset };
          break;
        }
        case 'AvgPool2d':
        case 'SumPool2d':
          n = { type, kernelSize: reqInts('kernel_size'), stride: reqInts('stride'), padding: reqInts('padding') };
          break;
        case 'Flatten':
          n = { type, startDim: int('start_dim'), endDim: int('end_dim'), inputShape: ints('input_type', true) ?? [] };
          break;
        case 'Scale':
          n = { type, scale: req('scale') };
          break;
        default:
          throw bad(
            NOT_SIMULATED[type]
              ? `${where} is a ${type} (${NOT_SIMULATED[type]}); spikeport simulates IF networks`
              : `${where} has type "${type.slice(0, 100)}", a primitive spikeport does not know`,
          );
      }
      nodes.set(nodeName, n);
    }
    const metadata: Record<string, string> = {};
    const meta = node.keys().includes('metadata') ? group(node, 'metadata') : null;
    if (meta)
      for (const k of meta.keys()) {
        const d = meta.get(k);
        if (
          d instanceof lib.Dataset &&
          d.metadata.type === 3 &&
          (d.shape ?? []).length === 0 &&
          d.metadata.total_size <= 1
        ) {
          const v = d.value;
          if (typeof v === 'string' && v.length <= 1 << 20) metadata[k] = v;
        }
      }
    return { nodes, edges, metadata };
  } catch (e) {
    if (e instanceof SpikeportError) throw e;
    // HDF5 (h5wasm) refused a damaged structure: one line, its own first line as the reason.
    throw bad(
      `damaged HDF5 (${String(e instanceof Error ? e.message : e)
        .split('\n')[0]
        .slice(0, 200)})`,
    );
  } finally {
    try {
      f?.close();
    } catch {
      // a damaged file may not close cleanly; nothing of it is kept
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
