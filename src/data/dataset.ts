/**
 * Data sets behind one interface: samples as float arrays in [0, 1] (or as given, for npz),
 * labels as integers, batches assembled on demand with the model's normalisation.
 */

export interface Dataset {
  /** The spec it was opened with, e.g. "mnist:test". */
  readonly name: string;
  readonly size: number;
  /** Shape of one sample, e.g. [1, 28, 28]. */
  readonly sampleShape: readonly number[];
  /** Raw sample values, size × prod(sampleShape). */
  readonly x: Float32Array | Uint8Array;
  /** Multiplier that maps raw values to model input before normalisation (1/255 for images). */
  readonly scale: number;
  readonly labels: Int32Array | null;
  /** Segmentation: per-pixel class ids of every sample ([size, ...shape]); 255 = ignore. */
  readonly masks?: { readonly shape: readonly number[]; readonly data: Uint8Array };
  /** Detection: ground-truth boxes of all samples (COCO-style x, y, w, h in pixels). */
  readonly boxes?: readonly DetectionBox[];
}

export interface DetectionBox {
  readonly image: number;
  readonly label: number;
  readonly x: number;
  readonly y: number;
  readonly w: number;
  readonly h: number;
}

export interface Normalize {
  readonly mean: readonly number[];
  readonly std: readonly number[];
}

/** Mean and std given as non-empty lists of finite numbers, every std > 0 (their count is checked against the model). */
export function isNormalize(v: unknown): v is Normalize {
  const numbers = (xs: unknown): xs is number[] => Array.isArray(xs) && xs.length > 0 && xs.every((x) => typeof x === 'number' && Number.isFinite(x));
  const n = v as Normalize | null;
  return typeof n === 'object' && n !== null && numbers(n.mean) && numbers(n.std) && n.std.every((s) => s > 0);
}

export interface Batch {
  readonly x: Float32Array;
  readonly y: Int32Array | null;
  readonly n: number;
}

/** Build a batch of the given sample indices, scaled and normalised per channel (axis 0 of a sample). */
export function makeBatch(d: Dataset, indices: readonly number[], norm: Normalize | null): Batch {
  const per = d.sampleShape.reduce((a, b) => a * b, 1);
  const C = d.sampleShape.length >= 3 ? d.sampleShape[0] : 1;
  const plane = per / C;
  const x = new Float32Array(indices.length * per);
  const y = d.labels ? new Int32Array(indices.length) : null;
  for (let b = 0; b < indices.length; b++) {
    const i = indices[b];
    const src = i * per;
    const dst = b * per;
    for (let c = 0; c < C; c++) {
      const mean = norm ? norm.mean[norm.mean.length === 1 ? 0 : c] : 0;
      const inv = norm ? 1 / norm.std[norm.std.length === 1 ? 0 : c] : 1;
      const off = c * plane;
      for (let k = 0; k < plane; k++) x[dst + off + k] = (d.x[src + off + k] * d.scale - mean) * inv;
    }
    if (y && d.labels) y[b] = d.labels[i];
  }
  return { x, y, n: indices.length };
}

/** A small deterministic PRNG (mulberry32) for reproducible shuffles. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** 0..n-1, shuffled with `seed` (Fisher–Yates) when `shuffle`. */
export function sampleOrder(n: number, seed: number, shuffle: boolean): number[] {
  const order = Array.from({ length: n }, (_, i) => i);
  if (!shuffle) return order;
  const r = rng(seed);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}

/**
 * Batch b of consecutive batches of `size` over `order`, wrapping around: computed on demand, so
 * a long calibration never holds its batch list.
 */
export function batchAt(order: readonly number[], size: number, b: number): number[] {
  const idx: number[] = [];
  const start = (b * size) % order.length;
  for (let k = 0; k < size; k++) idx.push(order[(start + k) % order.length]);
  return idx;
}

/** Indices 0..n-1 in order, in batches of `size` (the last one shorter). */
export function sequentialBatches(n: number, size: number): number[][] {
  return Array.from({ length: Math.ceil(n / size) }, (_, b) =>
    Array.from({ length: Math.min(size, n - b * size) }, (_, k) => b * size + k));
}
