/**
 * NumPy .npz archives (zip of .npy files) with arrays `x` (samples, first axis = sample) and
 * optionally `y` (integer labels), `masks` (uint8 per-pixel classes) and `boxes` ([M, 6]: image,
 * class, x, y, w, h). Float samples are used as given; uint8 samples are scaled by 1/255.
 *
 * The archive is read from its central directory, and each array inflated as a stream only as
 * far as it is needed: with a limit of N samples, the first N rows of x, y and masks. Nothing is
 * inflated beyond what an array's header declares, and no array beyond MAX_NPZ_ARRAY_BYTES (a
 * few kilobytes of deflate can claim gigabytes). The zip directory and .npy header readers are
 * written here: they are a few lines, and fflate (which inflates) reads archives only whole.
 */
import fs from 'node:fs';
import { zipSync } from 'fflate';
import { inflatePrefix } from './inflate.js';
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

/** The most bytes of one array read from an npz into memory (a typed array's and a Buffer's practical limit). */
export const MAX_NPZ_ARRAY_BYTES = 2 ** 31 - 1;
/** The longest .npy header read (numpy writes fewer than 100 bytes; format 2 allows 4 GiB). */
const MAX_NPY_HEADER = 2 ** 16;

const invalid = (message: string): SpikeportError => new SpikeportError('invalid-data', message);

/** One member of a zip archive, from its central directory. */
interface ZipEntry {
  readonly name: string;
  readonly method: number;
  readonly flags: number;
  readonly compressedSize: number;
  readonly size: number;
  readonly localOffset: number;
}

/** A zip archive opened for reading members by offset. */
class ZipFile {
  private constructor(
    private readonly fd: number,
    private readonly fileSize: number,
    private readonly where: string,
    readonly entries: ReadonlyMap<string, ZipEntry>,
  ) {}

  static open(file: string, spec: string): ZipFile {
    let st: fs.Stats;
    try {
      st = fs.statSync(file);
    } catch {
      throw new SpikeportError('io', `data set ${spec}: no such file: ${file}`);
    }
    if (st.isDirectory()) throw new SpikeportError('io', `data set ${spec}: ${file} is a folder, not a file`);
    if (!st.isFile()) throw new SpikeportError('io', `data set ${spec}: ${file} is not a regular file`);
    const fd = fs.openSync(file, 'r');
    try {
      return new ZipFile(fd, st.size, file, readDirectory(fd, st.size, file));
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  close(): void {
    fs.closeSync(this.fd);
  }

  /**
   * Bytes skip..want−1 of a member (up to its end when shorter), inflated as far as that needs,
   * in a buffer of their own (at its start: a typed array can view it).
   */
  prefix(e: ZipEntry, want: number, skip = 0): Uint8Array<ArrayBuffer> {
    const bad = (why: string): SpikeportError => invalid(`${this.where}: ${e.name} ${why}`);
    const n = Math.min(want, e.size);
    const local = readAt(this.fd, e.localOffset, 30);
    if (local.length < 30 || view(local).getUint32(0, true) !== 0x04034b50) throw bad('has no local header');
    const start = e.localOffset + 30 + view(local).getUint16(26, true) + view(local).getUint16(28, true);
    if (start + e.compressedSize > this.fileSize) throw bad('is cut short');
    if (e.method === 0) {
      const out = new Uint8Array(Math.max(0, n - skip));
      const got = readAt(this.fd, start + skip, out.length);
      if (got.length < out.length) throw bad('is cut short');
      out.set(got);
      return out;
    }
    let inflated: ReturnType<typeof inflatePrefix>;
    try {
      inflated = inflatePrefix((pos, len) => readAt(this.fd, start + pos, len), e.compressedSize, n, { skip });
    } catch (err) {
      throw bad(`cannot be inflated (${(err as Error).message})`);
    }
    if (inflated.have < n) throw bad(`inflates to ${inflated.have} bytes, fewer than the ${n} it needs`);
    return inflated.data;
  }
}

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

function readAt(fd: number, position: number, length: number): Uint8Array {
  const buf = Buffer.alloc(length);
  let got = 0;
  while (got < length) {
    const k = fs.readSync(fd, buf, got, length - got, position + got);
    if (k === 0) break;
    got += k;
  }
  return buf.subarray(0, got);
}

/** The central directory (zip64 included): names, methods, sizes and where each member is. */
function readDirectory(fd: number, size: number, where: string): Map<string, ZipEntry> {
  const bad = (why: string): SpikeportError => invalid(`${where} is not a readable .npz archive (${why})`);
  const tail = readAt(fd, Math.max(0, size - 22 - 65535), Math.min(size, 22 + 65535));
  let eocd = -1;
  for (let i = tail.length - 22; i >= 0; i--)
    if (view(tail).getUint32(i, true) === 0x06054b50) {
      eocd = i;
      break;
    }
  if (eocd < 0) throw bad('no zip directory');
  const t = view(tail);
  let count = t.getUint16(eocd + 10, true);
  let cdSize = t.getUint32(eocd + 12, true);
  let cdOffset = t.getUint32(eocd + 16, true);
  if (eocd >= 20 && t.getUint32(eocd - 20, true) === 0x07064b50) {
    const at = Number(t.getBigUint64(eocd - 20 + 8, true));
    const z = readAt(fd, at, 56);
    if (z.length < 56 || view(z).getUint32(0, true) !== 0x06064b50) throw bad('a broken zip64 directory');
    count = Number(view(z).getBigUint64(32, true));
    cdSize = Number(view(z).getBigUint64(40, true));
    cdOffset = Number(view(z).getBigUint64(48, true));
  }
  if (cdOffset + cdSize > size || cdSize > 2 ** 24) throw bad('its directory lies outside the file');
  const cd = readAt(fd, cdOffset, cdSize);
  const d = view(cd);
  const entries = new Map<string, ZipEntry>();
  let pos = 0;
  for (let k = 0; k < count; k++) {
    if (pos + 46 > cd.length || d.getUint32(pos, true) !== 0x02014b50) throw bad('a broken directory entry');
    const nameLen = d.getUint16(pos + 28, true);
    const extraLen = d.getUint16(pos + 30, true);
    const commentLen = d.getUint16(pos + 32, true);
    if (pos + 46 + nameLen + extraLen > cd.length) throw bad('a broken directory entry');
    const name = new TextDecoder().decode(cd.subarray(pos + 46, pos + 46 + nameLen));
    let size32: number = d.getUint32(pos + 24, true);
    let compressed: number = d.getUint32(pos + 20, true);
    let offset: number = d.getUint32(pos + 42, true);
    // Zip64: the values written as 0xFFFFFFFF follow in the extra field 0x0001, in this order.
    for (let x = pos + 46 + nameLen; x + 4 <= pos + 46 + nameLen + extraLen;) {
      const id = d.getUint16(x, true);
      const len = d.getUint16(x + 2, true);
      if (id === 1) {
        let at = x + 4;
        const next = (): number => {
          if (at + 8 > x + 4 + len) throw bad('a broken zip64 field');
          const v = Number(d.getBigUint64(at, true));
          at += 8;
          return v;
        };
        if (size32 === 0xffffffff) size32 = next();
        if (compressed === 0xffffffff) compressed = next();
        if (offset === 0xffffffff) offset = next();
      }
      x += 4 + len;
    }
    entries.set(name, {
      name,
      method: d.getUint16(pos + 10, true),
      flags: d.getUint16(pos + 8, true),
      compressedSize: compressed,
      size: size32,
      localOffset: offset,
    });
    pos += 46 + nameLen + extraLen + commentLen;
  }
  return entries;
}

interface NpyHeader {
  readonly shape: number[];
  readonly ctor: (typeof DTYPES)[keyof typeof DTYPES];
  /** Where the array's data starts. */
  readonly offset: number;
}

/** The header of a .npy array, from the first bytes of its file (`more` reads further). */
function npyHeader(first: (bytes: number) => Uint8Array, where: string): NpyHeader {
  const head = first(12);
  const magic = String.fromCharCode(...head.subarray(1, 6));
  if (head.length < 12 || head[0] !== 0x93 || magic !== 'NUMPY') throw invalid(`${where} is not a .npy array`);
  const major = head[6];
  const hlen = major === 1 ? view(head).getUint16(8, true) : view(head).getUint32(8, true);
  const hstart = major === 1 ? 10 : 12;
  if (hlen > MAX_NPY_HEADER) throw invalid(`${where}: a .npy header of ${hlen} bytes (numpy writes fewer than 200)`);
  const buf = first(hstart + hlen);
  if (hstart + hlen > buf.length) throw invalid(`${where}: the .npy header is longer than the file`);
  const header = new TextDecoder().decode(buf.subarray(hstart, hstart + hlen));
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*True/.test(header);
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || shapeText === undefined) throw invalid(`${where}: cannot read the .npy header`);
  if (fortran) throw invalid(`${where}: Fortran-ordered arrays are not supported (save with np.ascontiguousarray)`);
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map(Number);
  if (shape.some((d) => !Number.isSafeInteger(d) || d < 0))
    throw invalid(`${where}: the .npy shape (${shapeText}) is not a list of sizes`);
  const ctor = Object.hasOwn(DTYPES, descr) ? DTYPES[descr as keyof typeof DTYPES] : undefined;
  if (!ctor) throw invalid(`${where}: unsupported dtype ${descr} (use float32, float64, uint8 or int32/int64)`);
  return { shape, ctor, offset: hstart + hlen };
}

/**
 * The first `rows` rows (along axis 0; all of them when omitted) of the array in `member`.
 * Its size is checked against MAX_NPZ_ARRAY_BYTES before anything is inflated.
 */
function readArray(zip: ZipFile, member: ZipEntry, where: string, rows?: number): NpyArray {
  const h = npyHeader((n) => zip.prefix(member, n), where);
  const n0 = h.shape.length ? h.shape[0] : 1;
  const take = rows === undefined ? n0 : Math.min(rows, n0);
  const shape = h.shape.length ? [take, ...h.shape.slice(1)] : [];
  const count = shape.reduce((a, b) => a * b, 1);
  const bytes = count * h.ctor.BYTES_PER_ELEMENT;
  if (!(bytes <= MAX_NPZ_ARRAY_BYTES))
    throw invalid(
      `${where}: ${shape.join('x')} values are ${(bytes / 2 ** 30).toFixed(1)} GiB, more than spikeport reads of an npz array (2 GiB); read fewer samples (limit) or use an image folder`,
    );
  if (h.offset + bytes > member.size) throw invalid(`${where}: truncated array data`);
  const body = zip.prefix(member, h.offset + bytes, h.offset);
  return { shape, data: new h.ctor(body.buffer, 0, count) };
}

/** An npz data set; with `limit`, only its first `limit` samples are read. */
export function readNpz(file: string, spec: string, limit?: number): MemoryDataset {
  const zip = ZipFile.open(file, spec);
  try {
    return readArrays(zip, file, spec, limit);
  } finally {
    zip.close();
  }
}

function readArrays(zip: ZipFile, file: string, spec: string, limit?: number): MemoryDataset {
  const member = (name: string): ZipEntry | undefined => {
    const e = zip.entries.get(name);
    if (e && (e.flags & 1) !== 0) throw invalid(`${file}: ${name} is encrypted`);
    if (e && e.method !== 0 && e.method !== 8)
      throw invalid(`${file}: ${name} is compressed with method ${e.method} (npz uses deflate or none)`);
    return e;
  };
  const xm = member('x.npy');
  if (!xm)
    throw invalid(`${file}: no array "x" in the archive (found: ${[...zip.entries.keys()].join(', ') || 'nothing'})`);
  const x = readArray(zip, xm, `${file}:x`, limit);
  if (x.shape.length < 2)
    throw invalid(`${file}:x must have a sample axis and at least one more (shape ${x.shape.join('x')})`);
  const samples = x.shape[0];
  const xs =
    x.data instanceof Float32Array || x.data instanceof Uint8Array
      ? x.data
      : Float32Array.from(x.data as ArrayLike<number>, Number);
  for (let i = 0; i < xs.length; i++) {
    if (!Number.isFinite(xs[i])) throw invalid(`${file}:x contains a non-finite value (${xs[i]}) at flat index ${i}`);
  }
  const rowsOf = (name: string, a: NpyArray): void => {
    if (a.shape[0] !== samples)
      throw invalid(
        `${file}: x has ${samples} samples but ${name} has ${a.shape[0]}${limit === undefined ? '' : ` (of the first ${limit})`}`,
      );
  };
  let labels: Int32Array | null = null;
  const ym = member('y.npy');
  if (ym) {
    const y = readArray(zip, ym, `${file}:y`, samples);
    rowsOf('y', y);
    labels = Int32Array.from(y.data as ArrayLike<number>, Number);
  }
  let masks: MemoryDataset['masks'];
  const mm = member('masks.npy');
  if (mm) {
    const mk = readArray(zip, mm, `${file}:masks`, samples);
    if (mk.shape[0] !== samples || !(mk.data instanceof Uint8Array))
      throw invalid(`${file}: masks must be uint8 with one mask per sample (shape ${mk.shape.join('x')})`);
    masks = { shape: mk.shape.slice(1), data: mk.data };
  }
  let boxes: DetectionBox[] | undefined;
  const bm = member('boxes.npy');
  if (bm) {
    const bx = readArray(zip, bm, `${file}:boxes`);
    if (bx.shape.length !== 2 || bx.shape[1] !== 6)
      throw invalid(`${file}: boxes must be [M, 6] rows of (image, class, x, y, w, h) (shape ${bx.shape.join('x')})`);
    const v = Float64Array.from(bx.data as ArrayLike<number>, Number);
    boxes = [];
    for (let i = 0; i < bx.shape[0]; i++) {
      if (limit !== undefined && v[6 * i] >= samples) continue; // a box of a sample not read
      boxes.push({
        image: v[6 * i],
        label: v[6 * i + 1],
        x: v[6 * i + 2],
        y: v[6 * i + 3],
        w: v[6 * i + 4],
        h: v[6 * i + 5],
      });
    }
  }
  // uint8 samples are images in 0–255 (what `spikeport data` writes); floats are used as given.
  return memoryDataset({
    name: spec,
    size: samples,
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
