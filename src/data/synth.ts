/**
 * Harder tasks built from MNIST digits by seeded generators (no other data exists offline):
 *
 *   mnist-seg    64×64 canvases with 1–4 digits; per-pixel labels 0 = background, 1 + digit,
 *                255 = ignore (the faint rim of a stroke, 0 < ink < 128: neither clearly digit nor
 *                background, as VOC ignores object borders);
 *   mnist-det    the same canvases; one box per digit (COCO-style x, y, w, h, tight around ink ≥ 128)
 *                and its class;
 *   mnist-video  16-frame 32×32 clips of one digit (downscaled to 14×14) moving in a straight line and
 *                bouncing off the borders; labelled by the digit.
 *
 * The train split draws digits from MNIST train, the test split from MNIST test. The same spec
 * and size always give the same samples (seed = split).
 */
import type { DetectionBox, MemoryDataset } from './dataset.js';
import { memoryDataset, rng } from './dataset.js';

export const SYNTH_KINDS = ['mnist-seg', 'mnist-det', 'mnist-video'] as const;
export type SynthKind = (typeof SYNTH_KINDS)[number];

export const IGNORE = 255;
/** Class names of the digits. */
const DIGITS = Array.from({ length: 10 }, (_, d) => String(d));
export const CANVAS = 64;
export const CLIP = { frames: 16, size: 32, digit: 14 } as const;

/** Default sample counts per split. */
export const SYNTH_SIZES: Record<'train' | 'test', number> = { train: 12000, test: 1000 };

function place(
  digits: MemoryDataset,
  r: () => number,
  canvas: Uint8Array,
  mask: Uint8Array | null,
  boxes: DetectionBox[],
  image: number,
): void {
  const count = 1 + Math.floor(r() * 4);
  const taken: [number, number][] = [];
  for (let k = 0; k < count; k++) {
    // Positions on a coarse grid of free spots first, so digits overlap little.
    let x0 = 0;
    let y0 = 0;
    for (let tries = 0; tries < 20; tries++) {
      x0 = Math.floor(r() * (CANVAS - 28 + 1));
      y0 = Math.floor(r() * (CANVAS - 28 + 1));
      if (taken.every(([x, y]) => Math.abs(x - x0) >= 20 || Math.abs(y - y0) >= 20)) break;
    }
    taken.push([x0, y0]);
    const idx = Math.floor(r() * digits.size);
    const label = (digits.labels as Int32Array)[idx];
    const src = idx * 784;
    let bx0 = CANVAS;
    let by0 = CANVAS;
    let bx1 = -1;
    let by1 = -1;
    for (let y = 0; y < 28; y++) {
      for (let x = 0; x < 28; x++) {
        const v = digits.x[src + y * 28 + x];
        if (v === 0) continue;
        const p = (y0 + y) * CANVAS + x0 + x;
        if (v > canvas[p]) canvas[p] = v;
        if (v >= 128) {
          if (mask) mask[p] = 1 + label;
          bx0 = Math.min(bx0, x0 + x);
          by0 = Math.min(by0, y0 + y);
          bx1 = Math.max(bx1, x0 + x);
          by1 = Math.max(by1, y0 + y);
        } else if (mask && mask[p] === 0) {
          mask[p] = IGNORE;
        }
      }
    }
    if (bx1 >= 0) boxes.push({ image, label, x: bx0, y: by0, w: bx1 - bx0 + 1, h: by1 - by0 + 1 });
  }
}

/** Canvases with per-pixel masks and boxes. */
function canvases(
  kind: 'mnist-seg' | 'mnist-det',
  digits: MemoryDataset,
  n: number,
  seed: number,
  name: string,
): MemoryDataset {
  const r = rng(seed);
  const x = new Uint8Array(n * CANVAS * CANVAS);
  const masks = new Uint8Array(n * CANVAS * CANVAS);
  const boxes: DetectionBox[] = [];
  for (let i = 0; i < n; i++) {
    place(
      digits,
      r,
      x.subarray(i * CANVAS * CANVAS, (i + 1) * CANVAS * CANVAS),
      masks.subarray(i * CANVAS * CANVAS, (i + 1) * CANVAS * CANVAS),
      boxes,
      i,
    );
  }
  return memoryDataset({
    name,
    size: n,
    sampleShape: [1, CANVAS, CANVAS],
    x,
    scale: 1 / 255,
    labels: null,
    ...(kind === 'mnist-seg'
      ? { masks: { shape: [CANVAS, CANVAS], data: masks }, classes: ['background', ...DIGITS] }
      : { boxes, classes: DIGITS }),
  });
}

/** 2×2 mean of a 28×28 digit: 14×14. */
function shrink(digits: MemoryDataset, idx: number): Uint8Array {
  const out = new Uint8Array(CLIP.digit * CLIP.digit);
  const src = idx * 784;
  for (let y = 0; y < 14; y++) {
    for (let x = 0; x < 14; x++) {
      const s =
        digits.x[src + 2 * y * 28 + 2 * x] +
        digits.x[src + 2 * y * 28 + 2 * x + 1] +
        digits.x[src + (2 * y + 1) * 28 + 2 * x] +
        digits.x[src + (2 * y + 1) * 28 + 2 * x + 1];
      out[y * 14 + x] = Math.round(s / 4);
    }
  }
  return out;
}

function clips(digits: MemoryDataset, n: number, seed: number, name: string): MemoryDataset {
  const r = rng(seed);
  const { frames, size, digit } = CLIP;
  const per = frames * size * size;
  const x = new Uint8Array(n * per);
  const labels = new Int32Array(n);
  const span = size - digit;
  for (let i = 0; i < n; i++) {
    const idx = Math.floor(r() * digits.size);
    labels[i] = (digits.labels as Int32Array)[idx];
    const d = shrink(digits, idx);
    let px = r() * span;
    let py = r() * span;
    let vx = 0;
    let vy = 0;
    while (Math.abs(vx) + Math.abs(vy) < 1) {
      vx = (r() * 2 - 1) * 2.5;
      vy = (r() * 2 - 1) * 2.5;
    }
    for (let f = 0; f < frames; f++) {
      const ox = Math.round(px);
      const oy = Math.round(py);
      const base = i * per + f * size * size;
      for (let y = 0; y < digit; y++)
        for (let xx = 0; xx < digit; xx++) x[base + (oy + y) * size + ox + xx] = d[y * digit + xx];
      px += vx;
      py += vy;
      if (px < 0 || px > span) {
        vx = -vx;
        px = Math.max(0, Math.min(span, px));
      }
      if (py < 0 || py > span) {
        vy = -vy;
        py = Math.max(0, Math.min(span, py));
      }
    }
  }
  // One channel, frames as depth: [1, 16, 32, 32] for 3-D convolutions.
  return memoryDataset({ name, size: n, sampleShape: [1, frames, size, size], x, scale: 1 / 255, labels });
}

/** Generate `n` samples of a synthetic task from the digits of one MNIST split. */
export function synthesize(
  kind: SynthKind,
  split: 'train' | 'test',
  digits: MemoryDataset,
  n: number,
  name: string,
): MemoryDataset {
  const seed = (split === 'train' ? 1 : 2) * 7919 + SYNTH_KINDS.indexOf(kind);
  if (kind === 'mnist-video') return clips(digits, n, seed, name);
  // Segmentation and detection share canvases: the same seed gives the same images.
  return canvases(kind, digits, n, (split === 'train' ? 1 : 2) * 7919, name);
}
