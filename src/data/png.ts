/**
 * Label PNGs read as the numbers they store: VOC's SegmentationClass masks are palette PNGs
 * whose palette *indices* are the class ids (255 = ignore), which an image decoder would turn
 * into colours. This reads 8-bit gray (colour type 0) and 8-bit palette (type 3) PNGs,
 * non-interlaced, and returns the stored bytes. (Written here: the format is a zlib stream of
 * filtered rows, a few lines.) And the other way, small PNGs for the report's pictures.
 */
import zlib from 'node:zlib';
import { SpikeportError } from '../errors.js';

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/**
 * Decode a label PNG. With `expect`, a size other than the image's (`of`) is refused as soon as
 * the header is read; the image data is inflated to at most the declared size (a few bytes of
 * deflate can claim gigabytes).
 */
export function decodeLabelPng(
  buf: Uint8Array,
  where: string,
  expect?: { readonly width: number; readonly height: number; readonly of: string },
): { width: number; height: number; data: Uint8Array } {
  const bad = (why: string): SpikeportError =>
    new SpikeportError('invalid-data', `${where} is not a readable label PNG (${why})`);
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
      if (depth !== 8 || (colour !== 0 && colour !== 3))
        throw bad(`bit depth ${depth}, colour type ${colour}; masks are 8-bit gray or palette`);
      if (interlace !== 0) throw bad('interlaced');
      if (width === 0 || height === 0 || width * height > 2 ** 28) throw bad(`size ${width}×${height}`);
      if (expect && (width !== expect.width || height !== expect.height))
        throw new SpikeportError(
          'invalid-data',
          `${where} is ${width}×${height} but its image ${expect.of} is ${expect.width}×${expect.height}`,
        );
    } else if (type === 'IDAT') {
      idat.push(body);
    } else if (type === 'IEND') {
      break;
    }
    pos += 12 + len;
  }
  if (width === 0) throw bad('no IHDR');
  let raw: Buffer;
  const size = height * (width + 1);
  try {
    raw = zlib.inflateSync(Buffer.concat(idat), { maxOutputLength: size });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE')
      throw bad(`its image data inflates to more than the ${size} bytes of ${width}×${height} pixels`);
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
        case 0:
          pred = 0;
          break;
        case 1:
          pred = a;
          break;
        case 2:
          pred = b;
          break;
        case 3:
          pred = (a + b) >> 1;
          break;
        case 4: {
          const p = a + b - c;
          const pa = Math.abs(p - a);
          const pb = Math.abs(p - b);
          const pc = Math.abs(p - c);
          pred = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
          break;
        }
        default:
          throw bad(`row filter ${filter}`);
      }
      cur[x] = (row[x] + pred) & 255;
    }
  }
  return { width, height, data: out };
}

let crcTable: Uint32Array | null = null;

/** CRC-32 (ISO-HDLC, as PNG chunks use it). */
export function crc32(bytes: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (const b of bytes) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

export interface PngImage {
  readonly width: number;
  readonly height: number;
  /** 1 (gray, or palette indices when `palette` is given) or 3 (RGB) bytes per pixel, rows top to bottom. */
  readonly channels: 1 | 3;
  readonly data: Uint8Array;
  /** Palette PNG: RGB triples (at most 256), the data being indices into it. */
  readonly palette?: Uint8Array;
}

/**
 * A small 8-bit PNG (gray, RGB or palette), non-interlaced, rows unfiltered and deflated: for
 * the report's pictures, where a few kilobytes per image matter more than the last percent of
 * compression. decodeLabelPng reads the gray and palette ones back.
 */
export function encodePng(img: PngImage): Uint8Array {
  const { width, height, channels, data, palette } = img;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1)
    throw new Error(`png: bad size ${width}×${height}`);
  if (data.length !== width * height * channels)
    throw new Error(`png: ${data.length} bytes for ${width}×${height}×${channels}`);
  if (palette && (channels !== 1 || palette.length % 3 !== 0 || palette.length === 0 || palette.length > 768))
    throw new Error('png: a palette needs one index per pixel and 1..256 RGB entries');
  const row = width * channels;
  const raw = new Uint8Array(height * (row + 1));
  for (let y = 0; y < height; y++) raw.set(data.subarray(y * row, (y + 1) * row), y * (row + 1) + 1); // filter byte 0: none
  const chunk = (type: string, body: Uint8Array): Uint8Array => {
    const out = new Uint8Array(12 + body.length);
    const view = new DataView(out.buffer);
    view.setUint32(0, body.length);
    for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
    out.set(body, 8);
    view.setUint32(8 + body.length, crc32(out.subarray(4, 8 + body.length)));
    return out;
  };
  const ihdr = new Uint8Array(13);
  const hv = new DataView(ihdr.buffer);
  hv.setUint32(0, width);
  hv.setUint32(4, height);
  ihdr.set([8, palette ? 3 : channels === 3 ? 2 : 0, 0, 0, 0], 8);
  const parts = [
    Uint8Array.from(SIGNATURE),
    chunk('IHDR', ihdr),
    ...(palette ? [chunk('PLTE', palette)] : []),
    chunk('IDAT', zlib.deflateSync(raw, { level: 9 })),
    chunk('IEND', new Uint8Array(0)),
  ];
  return Buffer.concat(parts);
}
