/**
 * Label PNGs read as the numbers they store: VOC's SegmentationClass masks are palette PNGs
 * whose palette *indices* are the class ids (255 = ignore), which an image decoder would turn
 * into colours. This reads 8-bit gray (colour type 0) and 8-bit palette (type 3) PNGs,
 * non-interlaced, and returns the stored bytes. (Written here: the format is a zlib stream of
 * filtered rows, a few lines.)
 */
import zlib from 'node:zlib';
import { SpikeportError } from '../errors.js';

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

export function decodeLabelPng(buf: Uint8Array, where: string): { width: number; height: number; data: Uint8Array } {
  const bad = (why: string): SpikeportError => new SpikeportError('invalid-data', `${where} is not a readable label PNG (${why})`);
  if (buf.length < 8 || SIGNATURE.some((b, i) => buf[i] !== b)) throw bad('no PNG signature');
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let pos = 8;
  let width = 0;
  let height = 0;
  const idat: Uint8Array[] = [];
  while (pos + 8 <= buf.length) {
    const len = view.getUint32(pos);
    const type = String.fromCharCode(buf[pos + 4], buf[pos + 5], buf[pos + 6], buf[pos + 7]);
    const body = buf.subarray(pos + 8, pos + 8 + len);
    if (body.length < len) throw bad('truncated');
    if (type === 'IHDR') {
      width = view.getUint32(pos + 8);
      height = view.getUint32(pos + 12);
      const [depth, colour, , , interlace] = body.subarray(8, 13);
      if (depth !== 8 || (colour !== 0 && colour !== 3)) throw bad(`bit depth ${depth}, colour type ${colour}; masks are 8-bit gray or palette`);
      if (interlace !== 0) throw bad('interlaced');
      if (width === 0 || height === 0 || width * height > 2 ** 28) throw bad(`size ${width}×${height}`);
    } else if (type === 'IDAT') {
      idat.push(body);
    } else if (type === 'IEND') {
      break;
    }
    pos += 12 + len;
  }
  if (width === 0) throw bad('no IHDR');
  let raw: Buffer;
  try {
    raw = zlib.inflateSync(Buffer.concat(idat));
  } catch (e) {
    throw bad((e as Error).message);
  }
  if (raw.length < height * (width + 1)) throw bad('truncated image data');
  const out = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (width + 1)];
    const row = raw.subarray(y * (width + 1) + 1, (y + 1) * (width + 1));
    const cur = out.subarray(y * width, (y + 1) * width);
    const up = y > 0 ? out.subarray((y - 1) * width, y * width) : null;
    for (let x = 0; x < width; x++) {
      const a = x > 0 ? cur[x - 1] : 0;
      const b = up ? up[x] : 0;
      const c = up && x > 0 ? up[x - 1] : 0;
      let pred: number;
      switch (filter) {
        case 0: pred = 0; break;
        case 1: pred = a; break;
        case 2: pred = b; break;
        case 3: pred = (a + b) >> 1; break;
        case 4: {
          const p = a + b - c;
          const pa = Math.abs(p - a);
          const pb = Math.abs(p - b);
          const pc = Math.abs(p - c);
          pred = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
          break;
        }
        default: throw bad(`row filter ${filter}`);
      }
      cur[x] = (row[x] + pred) & 255;
    }
  }
  return { width, height, data: out };
}
