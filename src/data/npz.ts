/**
 * NumPy .npz archives (zip of .npy files) with arrays `x` (samples, first axis = sample) and
 * optionally `y` (integer labels), `masks` (uint8 per-pixel classes) and `boxes` ([M, 6]: image,
 * class, x, y, w, h). Float samples are used as given; uint8 samples are scaled by 1/255.
 * The .npy header parser is written here: it is a few lines and no maintained npm package
 * covers both zip and npy.
 */
import { readRegularFile } from '../files.js';
import { unzipSync, zipSync } from 'fflate';
import { SpikeportError } from '../errors.js';
import type { DetectionBox, MemoryDataset } from './dataset.js';
import { memoryDataset } from './dataset.js';

export interface NpyArray {
  readonly shape: number[];
  readonly data:
    Float32Array | Float64Array | Int32Array | Uint8Array | BigInt64Array | Int8Array | Int16Array | Uint16Array;
}

const DTYPES = {
  '<f4': Float32Array,
  '<f8': Float64Array,
  '<i4': Int32Array,
  '|u1': Uint8Array,
  '<u1': Uint8Array,
  '<i8': BigInt64Array,
  '|i1': Int8Array,
  '<i2': Int16Array,
  '<u2': Uint16Array,
} as const;

export function parseNpy(buf: Uint8Array, where: string): NpyArray {
  const magic = String.fromCharCode(...buf.subarray(1, 6));
  if (buf.length < 12 || buf[0] !== 0x93 || magic !== 'NUMPY')
    throw new SpikeportError('invalid-data', `${where} is not a .npy array`);
  const major = buf[6];
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const hlen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const hstart = major === 1 ? 10 : 12;
  if (hstart + hlen > buf.length)
    throw new SpikeportError('invalid-data', `${where}: the .npy header is longer than the file`);
  const header = new TextDecoder().decode(buf.subarray(hstart, hstart + hlen));
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*True/.test(header);
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || shapeText === undefined)
    throw new SpikeportError('invalid-data', `${where}: cannot read the .npy header`);
  if (fortran)
    throw new SpikeportError(
      'invalid-data',
      `${where}: Fortran-ordered arrays are not supported (save with np.ascontiguousarray)`,
    );
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map(Number);
  if (shape.some((d) => !Number.isSafeInteger(d) || d < 0))
    throw new SpikeportError('invalid-data', `${where}: the .npy shape (${shapeText}) is not a list of sizes`);
  const n = shape.reduce((a, b) => a * b, 1);
  const body = buf.slice(hstart + hlen); // copy: aligned for typed arrays
  const ctor = Object.hasOwn(DTYPES, descr) ? DTYPES[descr as keyof typeof DTYPES] : undefined;
  if (!ctor)
    throw new SpikeportError(
      'invalid-data',
      `${where}: unsupported dtype ${descr} (use float32, float64, uint8 or int32/int64)`,
    );
  if (body.byteLength < n * ctor.BYTES_PER_ELEMENT)
    throw new SpikeportError('invalid-data', `${where}: truncated array data`);
  return { shape, data: new ctor(body.buffer, 0, n) };
}

export function readNpz(file: string, spec: string): MemoryDataset {
  let bytes: Buffer;
  try {
    bytes = readRegularFile(file);
  } catch (e) {
    throw new SpikeportError('io', `data set ${spec}: ${(e as Error).message}`);
  }
  let entries: Record<string, Uint8Array>;
  try {
    entries = unzipSync(bytes);
  } catch (e) {
    throw new SpikeportError('invalid-data', `${file} is not a readable .npz archive (${(e as Error).message})`);
  }
  if (!entries['x.npy'])
    throw new SpikeportError(
      'invalid-data',
      `${file}: no array "x" in the archive (found: ${Object.keys(entries).join(', ') || 'nothing'})`,
    );
  const x = parseNpy(entries['x.npy'], `${file}:x`);
  if (x.shape.length < 2)
    throw new SpikeportError(
      'invalid-data',
      `${file}:x must have a sample axis and at least one more (shape ${x.shape.join('x')})`,
    );
  const xs =
    x.data instanceof Float32Array || x.data instanceof Uint8Array
      ? x.data
      : Float32Array.from(x.data as ArrayLike<number>, Number);
  for (let i = 0; i < xs.length; i++) {
    if (!Number.isFinite(xs[i]))
      throw new SpikeportError('invalid-data', `${file}:x contains a non-finite value (${xs[i]}) at flat index ${i}`);
  }
  let labels: Int32Array | null = null;
  if (entries['y.npy']) {
    const y = parseNpy(entries['y.npy'], `${file}:y`);
    if (y.shape[0] !== x.shape[0])
      throw new SpikeportError('invalid-data', `${file}: x has ${x.shape[0]} samples but y has ${y.shape[0]}`);
    labels = Int32Array.from(y.data as ArrayLike<number>, Number);
  }
  let masks: MemoryDataset['masks'];
  if (entries['masks.npy']) {
    const mk = parseNpy(entries['masks.npy'], `${file}:masks`);
    if (mk.shape[0] !== x.shape[0] || !(mk.data instanceof Uint8Array))
      throw new SpikeportError(
        'invalid-data',
        `${file}: masks must be uint8 with one mask per sample (shape ${mk.shape.join('x')})`,
      );
    masks = { shape: mk.shape.slice(1), data: mk.data };
  }
  let boxes: DetectionBox[] | undefined;
  if (entries['boxes.npy']) {
    const bx = parseNpy(entries['boxes.npy'], `${file}:boxes`);
    if (bx.shape.length !== 2 || bx.shape[1] !== 6)
      throw new SpikeportError(
        'invalid-data',
        `${file}: boxes must be [M, 6] rows of (image, class, x, y, w, h) (shape ${bx.shape.join('x')})`,
      );
    const v = Float64Array.from(bx.data as ArrayLike<number>, Number);
    boxes = Array.from({ length: bx.shape[0] }, (_, i) => ({
      image: v[6 * i],
      label: v[6 * i + 1],
      x: v[6 * i + 2],
      y: v[6 * i + 3],
      w: v[6 * i + 4],
      h: v[6 * i + 5],
    }));
  }
  // uint8 samples are images in 0–255 (what `spikeport data` writes); floats are used as given.
  return memoryDataset({
    name: spec,
    size: x.shape[0],
    sampleShape: x.shape.slice(1),
    x: xs,
    scale: xs instanceof Uint8Array ? 1 / 255 : 1,
    labels,
    ...(masks ? { masks } : {}),
    ...(boxes ? { boxes } : {}),
  });
}

/** A .npy file's bytes (format 1.0, little-endian). */
export function encodeNpy(shape: readonly number[], data: Float32Array | Int32Array | Uint8Array): Uint8Array {
  const descr = data instanceof Float32Array ? '<f4' : data instanceof Int32Array ? '<i4' : '|u1';
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  while ((10 + header.length + 1) % 64 !== 0) header += ' ';
  header += '\n';
  const out = new Uint8Array(10 + header.length + data.byteLength);
  out.set([0x93, ...new TextEncoder().encode('NUMPY'), 1, 0]);
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(new TextEncoder().encode(header), 10);
  out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), 10 + header.length);
  return out;
}

/** A data set as .npz bytes: x (raw values, uint8 or float32), y, masks, boxes — what readNpz reads. */
export function encodeDatasetNpz(d: MemoryDataset): Uint8Array {
  const files: Record<string, Uint8Array> = { 'x.npy': encodeNpy([d.size, ...d.sampleShape], d.x) };
  if (d.labels) files['y.npy'] = encodeNpy([d.size], d.labels);
  if (d.masks) files['masks.npy'] = encodeNpy([d.size, ...d.masks.shape], d.masks.data);
  if (d.boxes) {
    const v = new Float32Array(d.boxes.length * 6);
    d.boxes.forEach((b, i) => v.set([b.image, b.label, b.x, b.y, b.w, b.h], 6 * i));
    files['boxes.npy'] = encodeNpy([d.boxes.length, 6], v);
  }
  return zipSync(files, { level: 1 });
}
