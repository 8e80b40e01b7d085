/**
 * Image preprocessing as PyTorch users write it (torchvision transforms), named by a preset:
 *
 *   imagenet    Resize(round(S·256/224)) on the short side, CenterCrop(S) (S = the model's square
 *               input size: Resize(256), CenterCrop(224) for 224), bilinear
 *   kinetics    torchvision's Kinetics video eval: Resize((128, 171)), CenterCrop(112) for a
 *               112 × 112 input (sizes scaled for another), bilinear without antialiasing as
 *               torchvision resizes video tensors (data/tensor-resize.ts); Kinetics' mean and
 *               std when the model has no normalisation of its own
 *   resize:H,W  Resize((H, W)), bilinear; H×W must be the model's input size
 *   none        the image as it is; its size must be the model's input size
 *
 * then ToTensor's /255 (Dataset.scale) and the model's mean/std (as for every source). The
 * resizes use a linear (triangle) kernel that widens when shrinking, as PIL's antialiased
 * bilinear does: sharp's when shrinking (within 2 levels of PIL), PIL's own fixed-point
 * arithmetic (resizeBilinear, exact) when enlarging. Offsets and sizes follow torchvision's rounding (int() for the long side,
 * Python's round-half-to-even for the crop offsets).
 */
import { SpikeportError, field } from '../errors.js';

export type Preprocess =
  | { readonly kind: 'none' }
  | { readonly kind: 'imagenet' }
  | { readonly kind: 'kinetics' }
  | { readonly kind: 'resize'; readonly height: number; readonly width: number };

export const PREPROCESS_PRESETS = 'imagenet, kinetics, resize:H,W or none';

/** Kinetics-400's mean and std (torchvision's video models): the kinetics preset's normalisation when the model has none. */
export const KINETICS_NORMALIZE = { mean: [0.43216, 0.394666, 0.37645], std: [0.22803, 0.22145, 0.216989] } as const;

/** Parse a preset name ("imagenet", "kinetics", "resize:224,224", "none"); null when it is not one. */
export function parsePreprocess(text: string): Preprocess | null {
  if (text === 'none' || text === 'imagenet' || text === 'kinetics') return { kind: text };
  const m = /^resize:(\d{1,5}),(\d{1,5})$/.exec(text);
  if (!m) return null;
  const height = Number(m[1]);
  const width = Number(m[2]);
  if (height < 1 || width < 1) return null;
  return { kind: 'resize', height, width };
}

/** The preset's name, as parsePreprocess reads it. */
export function formatPreprocess(p: Preprocess): string {
  return p.kind === 'resize' ? `resize:${p.height},${p.width}` : p.kind;
}

/** Python's round(): halves to the even neighbour (torchvision's centre-crop offsets use it). */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Where an image of width × height goes: resized to rw × rh, then [left, top, W, H] cut out. */
export interface Geometry {
  readonly resize: { readonly width: number; readonly height: number } | null;
  readonly crop: {
    readonly left: number;
    readonly top: number;
    readonly width: number;
    readonly height: number;
  } | null;
}

/** Where a decoded sample came from: the original image's size and the resize and crop applied. */
export interface Placement extends Geometry {
  readonly width: number;
  readonly height: number;
}

/** A point (x, y) of the model's input mapped back to the original image's pixel coordinates. */
export function toOriginal(p: Placement, x: number, y: number): [number, number] {
  const sx = p.resize ? p.resize.width / p.width : 1;
  const sy = p.resize ? p.resize.height / p.height : 1;
  return [(x + (p.crop?.left ?? 0)) / sx, (y + (p.crop?.top ?? 0)) / sy];
}

/** The inverse of toOriginal: a point of the original image in the model's input coordinates. */
export function toInput(p: Placement, x: number, y: number): [number, number] {
  const sx = p.resize ? p.resize.width / p.width : 1;
  const sy = p.resize ? p.resize.height / p.height : 1;
  return [x * sx - (p.crop?.left ?? 0), y * sy - (p.crop?.top ?? 0)];
}

/**
 * Per-pixel labels (a mask of the original image's size) put through the same resize (nearest
 * neighbour, as torchvision resizes masks) and crop as the image: H × W labels.
 */
export function placeMask(mask: Uint8Array, p: Placement, H: number, W: number): Uint8Array {
  if (!p.resize && !p.crop) return mask;
  const rw = p.resize?.width ?? p.width;
  const rh = p.resize?.height ?? p.height;
  const left = p.crop?.left ?? 0;
  const top = p.crop?.top ?? 0;
  const out = new Uint8Array(H * W);
  for (let y = 0; y < H; y++) {
    const sy = Math.min(p.height - 1, Math.floor(((y + top + 0.5) * p.height) / rh));
    for (let x = 0; x < W; x++) {
      const sx = Math.min(p.width - 1, Math.floor(((x + left + 0.5) * p.width) / rw));
      out[y * W + x] = mask[sy * p.width + sx];
    }
  }
  return out;
}

/**
 * The resize and crop that take a width × height image to the model's H × W under `p`
 * (null preset: no option given). `where` names the image in messages.
 */
export function geometry(
  p: Preprocess | null,
  width: number,
  height: number,
  H: number,
  W: number,
  where: string,
): Geometry {
  if (!p || p.kind === 'none') {
    if (width === W && height === H) return { resize: null, crop: null };
    throw new SpikeportError(
      'invalid-data',
      `${where} is ${width}×${height} but the model takes ${W}×${H}: choose a preprocessing with ${field('preprocess')} (${PREPROCESS_PRESETS})`,
    );
  }
  if (p.kind === 'resize') {
    if (p.height !== H || p.width !== W)
      throw new SpikeportError(
        'invalid-option',
        `${field('preprocess')} resize:${p.height},${p.width} does not give the model's input size ${H}×${W} (use resize:${H},${W})`,
        'preprocess',
      );
    return { resize: width === W && height === H ? null : { width: W, height: H }, crop: null };
  }
  if (p.kind === 'kinetics') {
    // torchvision's Kinetics eval: Resize((128, 171)), CenterCrop(112), scaled to the model's size.
    const rh = Math.round((H * 128) / 112);
    const rw = Math.round((W * 171) / 112);
    const left = roundHalfEven((rw - W) / 2);
    const top = roundHalfEven((rh - H) / 2);
    return {
      resize: rw === width && rh === height ? null : { width: rw, height: rh },
      crop: { left, top, width: W, height: H },
    };
  }
  if (H !== W)
    throw new SpikeportError(
      'invalid-option',
      `${field('preprocess')} imagenet crops a square; the model takes ${H}×${W} (use resize:${H},${W})`,
      'preprocess',
    );
  // torchvision Resize(s): the short side becomes s, the long side int(s · long / short).
  const s = Math.round((H * 256) / 224);
  const short = Math.min(width, height);
  const long = Math.max(width, height);
  const newLong = Math.floor((s * long) / short);
  const rw = width <= height ? s : newLong;
  const rh = width <= height ? newLong : s;
  const left = roundHalfEven((rw - W) / 2);
  const top = roundHalfEven((rh - H) / 2);
  return {
    resize: rw === width && rh === height ? null : { width: rw, height: rh },
    crop: left === 0 && top === 0 && rw === W && rh === H ? null : { left, top, width: W, height: H },
  };
}

/**
 * Interleaved pixels (HWC, any of 1–4 channels: gray, gray+alpha, RGB, RGBA) to planes (CHW, planes
 * `channelStride` apart) of
 * `C` channels (1 or 3), as PIL's convert() does: alpha dropped, gray copied to RGB, RGB to gray
 * by ITU-R 601-2 luma (L = (19595 R + 38470 G + 7471 B + 2¹⁵) >> 16).
 */
export function toPlanes(
  px: Uint8Array,
  pixels: number,
  channels: number,
  C: number,
  out: Uint8Array,
  offset: number,
  channelStride = pixels,
): void {
  const color = channels >= 3;
  if (C === 3) {
    for (let p = 0; p < pixels; p++) {
      const s = p * channels;
      out[offset + p] = px[s];
      out[offset + channelStride + p] = px[color ? s + 1 : s];
      out[offset + 2 * channelStride + p] = px[color ? s + 2 : s];
    }
  } else {
    for (let p = 0; p < pixels; p++) {
      const s = p * channels;
      out[offset + p] = color ? (19595 * px[s] + 38470 * px[s + 1] + 7471 * px[s + 2] + 0x8000) >> 16 : px[s];
    }
  }
}

/** PIL's fixed-point precision for 8-bit resampling. */
const PRECISION_BITS = 32 - 8 - 2;

/**
 * For output pixels first..first+count−1 of a resize from inSize to outSize: the first input
 * index and the fixed-point weights of PIL's bilinear (triangle) filter, widened when shrinking.
 */
function coefficients(
  inSize: number,
  outSize: number,
  first = 0,
  count = outSize,
): { start: Int32Array; count: Int32Array; weights: Int32Array; taps: number } {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filterScale; // the triangle's support (1) × filterScale
  const taps = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(count);
  const counts = new Int32Array(count);
  const weights = new Int32Array(count * taps);
  const w = new Float64Array(taps);
  for (let j = 0; j < count; j++) {
    const center = (first + j + 0.5) * scale;
    const lo = Math.max(0, Math.trunc(center - support + 0.5));
    const hi = Math.min(inSize, Math.trunc(center + support + 0.5));
    let sum = 0;
    for (let k = 0; k < hi - lo; k++) {
      const t = Math.abs((k + lo - center + 0.5) / filterScale);
      w[k] = t < 1 ? 1 - t : 0;
      sum += w[k];
    }
    for (let k = 0; k < hi - lo; k++) {
      const v = sum !== 0 ? w[k] / sum : 0;
      weights[j * taps + k] = Math.trunc(v < 0 ? -0.5 + v * (1 << PRECISION_BITS) : 0.5 + v * (1 << PRECISION_BITS));
    }
    start[j] = lo;
    counts[j] = hi - lo;
  }
  return { start, count: counts, weights, taps };
}

function clip8(v: number): number {
  const s = v >> PRECISION_BITS;
  return s < 0 ? 0 : s > 255 ? 255 : s;
}

/**
 * PIL's Image.resize(…, BILINEAR) on interleaved 8-bit pixels (what torchvision's Resize does to
 * a PIL image): a horizontal pass, rounded to bytes, then a vertical one, in PIL's fixed point.
 * With `crop`, only the pixels of that window of the resized image are computed (the same
 * values as resizing whole and cropping): the work and memory follow the window and the input,
 * never the resized size (an image of 10⁶ × 2 pixels would otherwise be enlarged to 10⁸ × 256).
 */
export function resizeBilinear(
  px: Uint8Array,
  width: number,
  height: number,
  channels: number,
  outW: number,
  outH: number,
  crop: { left: number; top: number; width: number; height: number } = {
    left: 0,
    top: 0,
    width: outW,
    height: outH,
  },
): Uint8Array {
  const { left, top, width: cw, height: ch } = crop;
  // The input rows the vertical pass reads for the window's rows.
  const vert = outH !== height ? coefficients(height, outH, top, ch) : null;
  const rowLo = vert ? vert.start[0] : top;
  let rowHi = top + ch;
  if (vert) {
    rowHi = 0;
    for (let j = 0; j < ch; j++) rowHi = Math.max(rowHi, vert.start[j] + vert.count[j]);
  }
  // Horizontal pass (or the window's columns as they are) on input rows rowLo..rowHi−1.
  const rows = rowHi - rowLo;
  const mid = new Uint8Array(cw * rows * channels);
  const horiz = outW !== width ? coefficients(width, outW, left, cw) : null;
  for (let y = 0; y < rows; y++) {
    const row = (rowLo + y) * width * channels;
    for (let o = 0; o < cw; o++) {
      const at = (y * cw + o) * channels;
      if (!horiz) {
        for (let c = 0; c < channels; c++) mid[at + c] = px[row + (left + o) * channels + c];
        continue;
      }
      const base = o * horiz.taps;
      const s0 = horiz.start[o];
      for (let c = 0; c < channels; c++) {
        let ss = 1 << (PRECISION_BITS - 1);
        for (let k = 0; k < horiz.count[o]; k++) ss += px[row + (s0 + k) * channels + c] * horiz.weights[base + k];
        mid[at + c] = clip8(ss);
      }
    }
  }
  if (!vert) return mid;
  const out = new Uint8Array(cw * ch * channels);
  const stride = cw * channels;
  for (let o = 0; o < ch; o++) {
    const base = o * vert.taps;
    const s0 = vert.start[o] - rowLo;
    for (let x = 0; x < stride; x++) {
      let ss = 1 << (PRECISION_BITS - 1);
      for (let k = 0; k < vert.count[o]; k++) ss += mid[(s0 + k) * stride + x] * vert.weights[base + k];
      out[o * stride + x] = clip8(ss);
    }
  }
  return out;
}

/** A rectangle of interleaved pixels (width × channels per row). */
export function cropPixels(
  px: Uint8Array,
  width: number,
  channels: number,
  c: { left: number; top: number; width: number; height: number },
): Uint8Array {
  const out = new Uint8Array(c.width * c.height * channels);
  for (let y = 0; y < c.height; y++) {
    const src = ((c.top + y) * width + c.left) * channels;
    out.set(px.subarray(src, src + c.width * channels), y * c.width * channels);
  }
  return out;
}
