/**
 * Classification readout: the class scores averaged over a window of steps [d+1, T]
 * (delayed evaluation, SPEC 5), scored as top-1 / top-5.
 */
import type { StepBatch } from '../runtime/simulate.js';

export interface Window {
  readonly T: number;
  readonly delay: number;
}

/** Per-window averages of a batch's readouts, each [n, size], from running sums. */
export function windowAverages(b: StepBatch, windows: readonly Window[]): Float32Array[] {
  const { n, size, steps } = b;
  const stride = n * size;
  if (!b.readouts) {
    const zero = new Float64Array(stride);
    const at = (t: number): Float64Array => {
      const v = t === 0 ? zero : b.sums.get(t);
      if (!v) throw new Error(`no running sum kept at step ${t}`);
      return v;
    };
    return windows.map((w) => {
      if (w.T > steps || w.delay >= w.T || w.delay < 0) throw new Error(`window [${w.delay + 1}, ${w.T}] does not fit ${steps} steps`);
      const hi = at(w.T);
      const lo = at(w.delay);
      const inv = 1 / (w.T - w.delay);
      return Float32Array.from(hi, (v, j) => (v - lo[j]) * inv);
    });
  }
  const readouts = b.readouts;
  const cum = new Float64Array((steps + 1) * stride); // cum[t] = sum of steps 1..t
  for (let t = 0; t < steps; t++) {
    const src = t * stride;
    const prev = t * stride;
    const dst = (t + 1) * stride;
    for (let j = 0; j < stride; j++) cum[dst + j] = cum[prev + j] + readouts[src + j];
  }
  return windows.map((w) => {
    if (w.T > steps || w.delay >= w.T || w.delay < 0) throw new Error(`window [${w.delay + 1}, ${w.T}] does not fit ${steps} steps`);
    const out = new Float32Array(stride);
    const inv = 1 / (w.T - w.delay);
    const hi = w.T * stride;
    const lo = w.delay * stride;
    for (let j = 0; j < stride; j++) out[j] = (cum[hi + j] - cum[lo + j]) * inv;
    return out;
  });
}

/** Indices of the k largest values (ties: lower index first). */
export function topK(v: ArrayLike<number>, offset: number, size: number, k: number): number[] {
  const idx: number[] = [];
  for (let j = 0; j < size; j++) {
    const x = v[offset + j];
    let pos = idx.length;
    while (pos > 0 && v[offset + idx[pos - 1]] < x) pos--;
    if (pos < k) {
      idx.splice(pos, 0, j);
      if (idx.length > k) idx.pop();
    }
  }
  return idx;
}

/** Top-1/top-5 hits of readouts [n, size]. */
export function scoreReadouts(readouts: ArrayLike<number>, n: number, size: number, labels: ArrayLike<number>): { c1: number; c5: number } {
  let c1 = 0;
  let c5 = 0;
  for (let i = 0; i < n; i++) {
    const top = topK(readouts, i * size, size, Math.min(5, size));
    if (top[0] === labels[i]) c1++;
    if (top.includes(labels[i])) c5++;
  }
  return { c1, c5 };
}

export interface TopKScore {
  readonly top1: number;
  readonly top5: number | null;
  readonly samples: number;
}

/** Accumulates top-1/top-5 hits per window over batches. */
export class TopKCounter {
  private readonly c1: Float64Array;
  private readonly c5: Float64Array;
  private readonly seen: Float64Array;
  private classes = 0;

  constructor(readonly windows: number) {
    this.c1 = new Float64Array(windows);
    this.c5 = new Float64Array(windows);
    this.seen = new Float64Array(windows);
  }

  add(window: number, outputs: ArrayLike<number>, n: number, labels: ArrayLike<number>): void {
    const size = outputs.length / n;
    this.classes = size;
    const s = scoreReadouts(outputs, n, size, labels);
    this.c1[window] += s.c1;
    this.c5[window] += s.c5;
    this.seen[window] += n;
  }

  scores(): TopKScore[] {
    return Array.from(this.c1, (_, w) => ({
      top1: this.seen[w] ? this.c1[w] / this.seen[w] : 0,
      top5: this.classes >= 10 && this.seen[w] ? this.c5[w] / this.seen[w] : null,
      samples: this.seen[w],
    }));
  }
}
