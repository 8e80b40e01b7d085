/**
 * NumPy .npz archives (zip of .npy files) with arrays `x` (samples, first axis = sample) and
 * optionally `y` (integer labels). Values are used as given (no scaling).
 * The .npy header parser is written here: it is a few lines and no maintained npm package
 * covers both zip and npy.
 */
import fs from 'node:fs';
import { unzipSync } from 'fflate';
import { UserError } from '../errors.js';
import type { Dataset } from './dataset.js';

export interface NpyArray {
  readonly shape: number[];
  readonly data: Float32Array | Float64Array | Int32Array | Uint8Array | BigInt64Array | Int8Array | Int16Array | Uint16Array;
}

export function parseNpy(buf: Uint8Array, where: string): NpyArray {
  const magic = String.fromCharCode(...buf.subarray(1, 6));
  if (buf[0] !== 0x93 || magic !== 'NUMPY') throw new UserError(`${where} is not a .npy array`);
  const major = buf[6];
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const hlen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const hstart = major === 1 ? 10 : 12;
  const header = new TextDecoder().decode(buf.subarray(hstart, hstart + hlen));
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*True/.test(header);
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || shapeText === undefined) throw new UserError(`${where}: cannot read the .npy header`);
  if (fortran) throw new UserError(`${where}: Fortran-ordered arrays are not supported (save with np.ascontiguousarray)`);
  const shape = shapeText.split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  const n = shape.reduce((a, b) => a * b, 1);
  const body = buf.slice(hstart + hlen); // copy: aligned for typed arrays
  const ctor = {
    '<f4': Float32Array, '<f8': Float64Array, '<i4': Int32Array, '|u1': Uint8Array, '<u1': Uint8Array,
    '<i8': BigInt64Array, '|i1': Int8Array, '<i2': Int16Array, '<u2': Uint16Array,
  }[descr];
  if (!ctor) throw new UserError(`${where}: unsupported dtype ${descr} (use float32, float64, uint8 or int32/int64)`);
  if (body.byteLength < n * ctor.BYTES_PER_ELEMENT) throw new UserError(`${where}: truncated array data`);
  return { shape, data: new ctor(body.buffer, 0, n) };
}

export function readNpz(file: string, spec: string): Dataset {
  if (!fs.existsSync(file)) throw new UserError(`--data ${spec}: no such file ${file}`);
  let entries: Record<string, Uint8Array>;
  try {
    entries = unzipSync(fs.readFileSync(file));
  } catch (e) {
    throw new UserError(`${file} is not a readable .npz archive (${(e as Error).message})`);
  }
  if (!entries['x.npy']) throw new UserError(`${file}: no array "x" in the archive (found: ${Object.keys(entries).join(', ') || 'nothing'})`);
  const x = parseNpy(entries['x.npy'], `${file}:x`);
  if (x.shape.length < 2) throw new UserError(`${file}:x must have a sample axis and at least one more (shape ${x.shape.join('x')})`);
  const xs = x.data instanceof Float32Array || x.data instanceof Uint8Array ? x.data : Float32Array.from(x.data as ArrayLike<number>, Number);
  for (let i = 0; i < xs.length; i++) {
    if (!Number.isFinite(xs[i])) throw new UserError(`${file}:x contains a non-finite value (${xs[i]}) at flat index ${i}`);
  }
  let labels: Int32Array | null = null;
  if (entries['y.npy']) {
    const y = parseNpy(entries['y.npy'], `${file}:y`);
    if (y.shape[0] !== x.shape[0]) throw new UserError(`${file}: x has ${x.shape[0]} samples but y has ${y.shape[0]}`);
    labels = Int32Array.from(y.data as ArrayLike<number>, Number);
  }
  return { name: spec, size: x.shape[0], sampleShape: x.shape.slice(1), x: xs, scale: 1, labels };
}
