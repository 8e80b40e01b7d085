/**
 * NIR's file: HDF5 as NIR's own writer lays it out — `/version` (string), `/node/type` =
 * "NIRGraph", `/node/edges` (E×2 strings), `/node/nodes/<name>/type` and one dataset per field
 * (arrays gzip-compressed, integers int64), an optional `metadata` group of strings; no HDF5
 * attributes. Written and read with h5wasm.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import h5wasm from 'h5wasm/node';
import type { Dataset, Group } from 'h5wasm/node';
import { readRegularFile, writeFileAtomic } from '../files.js';
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

let ready: Promise<unknown> | null = null;
async function h5(): Promise<typeof h5wasm> {
  ready ??= h5wasm.ready;
  await ready;
  return h5wasm;
}

/** The file's bytes (written to a private temporary folder, read back, removed). */
export async function nirBytes(graph: NirGraph): Promise<Uint8Array> {
  const lib = await h5();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spikeport-nir-'));
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
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
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

/** Read a NIR file written as above (the node types spikeport exports). */
export async function readNir(file: string): Promise<NirGraph> {
  const lib = await h5();
  const bytes = readRegularFile(file);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spikeport-nir-'));
  const tmp = path.join(dir, 'graph.nir');
  fs.writeFileSync(tmp, bytes);
  const bad = (what: string): SpikeportError => new SpikeportError('invalid-file', `${path.basename(file)}: ${what}`);
  let f: InstanceType<typeof lib.File> | null = null;
  try {
    try {
      f = new lib.File(tmp, 'r');
    } catch {
      throw bad('not an HDF5 file');
    }
    const node = f.get('node') as Group | null;
    const ds = (g: Group, k: string): Dataset => {
      const d = g.get(k) as Dataset | null;
      if (!d || !('shape' in d)) throw bad(`no dataset "${k}" in ${g.path}`);
      return d;
    };
    if (!node || !('keys' in node) || str(ds(node, 'type')) !== 'NIRGraph')
      throw bad('not a NIR graph (no /node of type NIRGraph)');
    const edgeValues = ds(node, 'edges').value as string[];
    const edges: [string, string][] = [];
    for (let i = 0; i < edgeValues.length; i += 2) edges.push([edgeValues[i], edgeValues[i + 1]]);
    const nodesGroup = node.get('nodes') as Group;
    const nodes = new Map<string, NirNode>();
    for (const name of nodesGroup.keys()) {
      const g = nodesGroup.get(name) as Group;
      const arr = (k: string): Array => {
        const d = ds(g, k);
        const v = d.value as ArrayLike<number>;
        return { dims: d.shape ?? [], data: Float32Array.from(v) };
      };
      const ints = (k: string): number[] => Array.from(ds(g, k).value as ArrayLike<bigint | number>, Number);
      const int = (k: string): number => Number(ds(g, k).value as bigint | number);
      const type = str(ds(g, 'type'));
      let n: NirNode;
      switch (type) {
        case 'Input':
        case 'Output':
          n = { type, shape: ints('shape') };
          break;
        case 'Conv1d':
        case 'Conv2d':
          n = {
            type,
            weight: arr('weight'),
            bias: arr('bias'),
            stride: ints('stride'),
            padding: ints('padding'),
            dilation: ints('dilation'),
            groups: int('groups'),
            inputShape: ints('input_shape'),
          };
          break;
        case 'Affine':
          n = { type, weight: arr('weight'), bias: arr('bias') };
          break;
        case 'Linear':
          n = { type, weight: arr('weight') };
          break;
        case 'IF':
          n = { type, r: arr('r'), vThreshold: arr('v_threshold'), vReset: arr('v_reset') };
          break;
        case 'AvgPool2d':
        case 'SumPool2d':
          n = { type, kernelSize: ints('kernel_size'), stride: ints('stride'), padding: ints('padding') };
          break;
        case 'Flatten':
          n = { type, startDim: int('start_dim'), endDim: int('end_dim'), inputShape: ints('input_type') };
          break;
        case 'Scale':
          n = { type, scale: arr('scale') };
          break;
        default:
          throw bad(`node "${name}" has type "${type}", which spikeport does not read`);
      }
      nodes.set(name, n);
    }
    const metadata: Record<string, string> = {};
    const meta = node.get('metadata') as Group | null;
    if (meta && 'keys' in meta) for (const k of meta.keys()) metadata[k] = str(ds(meta, k));
    return { nodes, edges, metadata };
  } finally {
    f?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function str(d: Dataset): string {
  const v = d.value;
  return typeof v === 'string' ? v : String(v);
}
