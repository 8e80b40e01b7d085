/**
 * Data sets behind one interface: a size, a sample shape and labels known up front; the samples
 * themselves read by index on demand (async), so a source may stream them from disk and memory
 * does not grow with the data set. In-memory sources (MNIST, Fashion-MNIST, npz, the generated
 * sets) sit behind the same interface. Batches are assembled with the model's normalisation.
 */

import type { Placement } from './preprocess.js';
import type { OpenOptions } from './sources.js';

/** Raw values of some samples, in the order asked for: × scale = model input before normalisation. */
export interface Samples {
  /** n × prod(sampleShape) values. */
  readonly x: Float32Array | Uint8Array;
  /** Segmentation: n × prod(maskShape) per-pixel class ids; 255 = ignore. */
  readonly masks?: Uint8Array;
  /** Images resized or cropped: where each sample came from (detections are mapped back with it). */
  readonly placements?: readonly Placement[];
}

export interface Dataset {
  /** The spec it was opened with, e.g. "mnist:test". */
  readonly name: string;
  readonly size: number;
  /** Shape of one sample, e.g. [1, 28, 28]. */
  readonly sampleShape: readonly number[];
  /** Multiplier that maps raw values to model input before normalisation (1/255 for images). */
  readonly scale: number;
  /** One integer label per sample (known without reading the samples), or null. */
  readonly labels: Int32Array | null;
  /** Segmentation: the shape of one sample's mask; the masks come with the samples (read). */
  readonly maskShape?: readonly number[];
  /** Detection: ground-truth boxes of all samples (COCO-style x, y, w, h in pixels). */
  readonly boxes?: readonly DetectionBox[];
  /** Image sources: the preprocessing preset they decode with (data/preprocess.ts); absent: none given. */
  readonly preprocess?: string;
  /** Class names in label order, when the source has them (an image folder's sub-folders). */
  readonly classes?: readonly string[];
  /**
   * Video: samples k·K … k·K + K − 1 are the K clips of video k (K = this); a video is scored
   * from its clips' averaged softmax as well as clip by clip. Absent: one clip per video.
   */
  readonly clipsPerVideo?: number;
  /** Video files: the frame rate the videos were resampled to (absent: each video's own). */
  readonly frameRate?: number;
  /**
   * How `openDataset` opened it (its spec is `name`): enough for another process to open the same
   * samples (simulate's `workers`). Absent for data sets made in memory or wrapped afterwards.
   */
  readonly reopen?: { readonly limit?: number; readonly options: OpenOptions };
  /** The samples at these indices (each in [0, size)), read now. */
  read(indices: readonly number[]): Promise<Samples>;
}

/** A data set held in memory whole: its arrays, readable directly. */
export interface MemoryDataset extends Dataset {
  /** Raw sample values, size × prod(sampleShape). */
  readonly x: Float32Array | Uint8Array;
  /** Segmentation: per-pixel class ids of every sample ([size, ...shape]); 255 = ignore. */
  readonly masks?: { readonly shape: readonly number[]; readonly data: Uint8Array };
}

/** The arrays of an in-memory data set. */
export type MemoryArrays = Omit<MemoryDataset, 'read' | 'maskShape'>;

/** An in-memory data set behind the Dataset interface: read copies the samples asked for. */
export function memoryDataset(a: MemoryArrays): MemoryDataset {
  const per = a.sampleShape.reduce((p, q) => p * q, 1);
  const plane = a.masks ? a.masks.shape.reduce((p, q) => p * q, 1) : 0;
  // (A Buffer's constructor is not a typed array's: make plain ones.)
  const gather = <T extends Float32Array | Uint8Array>(src: T, size: number, indices: readonly number[]): T => {
    const out = (
      src instanceof Float32Array ? new Float32Array(indices.length * size) : new Uint8Array(indices.length * size)
    ) as T;
    indices.forEach((i, k) => out.set(src.subarray(i * size, (i + 1) * size), k * size));
    return out;
  };
  return {
    ...a,
    ...(a.masks ? { maskShape: a.masks.shape } : {}),
    read(indices) {
      checkIndices(a.name, a.size, indices);
      const masks = a.masks ? gather(a.masks.data, plane, indices) : undefined;
      return Promise.resolve({ x: gather(a.x, per, indices), ...(masks ? { masks } : {}) });
    },
  };
}

/** Every index an integer in [0, size). */
export function checkIndices(name: string, size: number, indices: readonly number[]): void {
  const bad = indices.find((i) => !Number.isInteger(i) || i < 0 || i >= size);
  if (bad !== undefined) throw new RangeError(`data set ${name}: sample index ${bad} is outside 0..${size - 1}`);
}

export interface DetectionBox {
  readonly image: number;
  readonly label: number;
  readonly x: number;
  readonly y: number;
  readonly w: number;
  readonly h: number;
  /**
   * A crowd region (COCO's iscrowd = 1): not an object to find but an area to ignore. A
   * detection matched to it counts neither as found nor as false; it is not ground truth to find.
   */
  readonly crowd?: true;
}

export interface Normalize {
  readonly mean: readonly number[];
  readonly std: readonly number[];
}

/**
 * Input normalisation within these bounds keeps (x − mean) / std a finite float32 for inputs in
 * a pixel's range (1e−320 would turn every input into ±∞, 1e308 into a constant).
 */
export const NORMALIZE_LIMIT = 1e10;

/** What is wrong with a normalisation, or null: non-empty lists of finite numbers, |mean| ≤ 1e10, 1e−10 ≤ std ≤ 1e10. */
export function normalizeProblem(v: unknown): string | null {
  const n = v as Normalize | null;
  if (typeof n !== 'object' || n === null) return 'must be { mean, std }';
  for (const key of ['mean', 'std'] as const) {
    const xs: unknown = n[key];
    if (!Array.isArray(xs) || xs.length === 0) return `${key} must be a non-empty list of numbers`;
    const bad = (xs as unknown[]).find(
      (x) =>
        typeof x !== 'number' ||
        !Number.isFinite(x) ||
        Math.abs(x) > NORMALIZE_LIMIT ||
        (key === 'std' && x < 1 / NORMALIZE_LIMIT),
    );
    if (bad !== undefined)
      return `${key} ${String(bad)} is outside ${key === 'std' ? '1e-10..1e10' : '±1e10'} (the normalised input must stay a finite number)`;
  }
  return null;
}

/** Mean and std given as non-empty lists of finite numbers within bounds (their count is checked against the model). */
export function isNormalize(v: unknown): v is Normalize {
  return normalizeProblem(v) === null;
}

export interface Batch {
  readonly x: Float32Array;
  readonly y: Int32Array | null;
  readonly n: number;
  /** The batch's sample indices in the data set. */
  readonly indices: readonly number[];
  /** Segmentation: the batch's masks, n × prod(maskShape). */
  readonly masks?: Uint8Array;
  /** Where each sample came from, when the source resized or cropped images. */
  readonly placements?: readonly Placement[];
}

/** Scale and normalise raw samples per channel (axis 0 of a sample). */
export function normalizeSamples(
  raw: Float32Array | Uint8Array,
  n: number,
  sampleShape: readonly number[],
  scale: number,
  norm: Normalize | null,
): Float32Array {
  const per = sampleShape.reduce((a, b) => a * b, 1);
  const C = sampleShape.length >= 3 ? sampleShape[0] : 1;
  const plane = per / C;
  const x = new Float32Array(n * per);
  for (let b = 0; b < n; b++) {
    const base = b * per;
    for (let c = 0; c < C; c++) {
      const mean = norm ? norm.mean[norm.mean.length === 1 ? 0 : c] : 0;
      const inv = norm ? 1 / norm.std[norm.std.length === 1 ? 0 : c] : 1;
      const off = base + c * plane;
      for (let k = 0; k < plane; k++) x[off + k] = (raw[off + k] * scale - mean) * inv;
    }
  }
  return x;
}

/** Read a batch of the given sample indices, scaled and normalised per channel. */
export async function readBatch(d: Dataset, indices: readonly number[], norm: Normalize | null): Promise<Batch> {
  const s = await d.read(indices);
  const x = normalizeSamples(s.x, indices.length, d.sampleShape, d.scale, norm);
  const y = d.labels ? Int32Array.from(indices, (i) => (d.labels as Int32Array)[i]) : null;
  return {
    x,
    y,
    n: indices.length,
    indices: [...indices],
    ...(s.masks ? { masks: s.masks } : {}),
    ...(s.placements ? { placements: s.placements } : {}),
  };
}

/**
 * Batches 0..count-1 (the indices of batch b from `indicesOf`), each read while the one before
 * is in use: the next `ahead` batches are always on their way (a streamed source decodes them in
 * its worker threads meanwhile). Reading errors surface when their batch is reached.
 */
export async function* prefetchBatches(
  d: Dataset,
  count: number,
  indicesOf: (b: number) => readonly number[],
  norm: Normalize | null,
  ahead = 2,
): AsyncGenerator<Batch> {
  const queue: Promise<Batch>[] = [];
  let next = 0;
  const fill = (): void => {
    while (next < count && queue.length <= ahead) {
      const p = readBatch(d, indicesOf(next++), norm);
      p.catch(() => undefined); // handled when awaited; never an unhandled rejection meanwhile
      queue.push(p);
    }
  };
  try {
    for (let b = 0; b < count; b++) {
      fill();
      const batch = await (queue.shift() as Promise<Batch>);
      fill();
      yield batch;
    }
  } finally {
    // Stopped early (an error downstream): let reads already started settle before returning.
    await Promise.allSettled(queue);
  }
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
    Array.from({ length: Math.min(size, n - b * size) }, (_, k) => b * size + k),
  );
}
