/**
 * Classification readout: the class scores averaged over a window of steps [d+1, T]
 * (delayed evaluation, SPEC 5), scored as top-1 / top-5.
 */
import type { StepBatch } from '../runtime/simulate.js';

export interface Window {
  readonly T: number;
  readonly delay: number;
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

export interface TopKScore {
  readonly top1: number;
  readonly top5: number | null;
  readonly samples: number;
}

export class TopKCounter {
  private readonly c1: Float64Array;
  private readonly c5: Float64Array;
  private samples = 0;
  private classes = 0;

  constructor(readonly windows: readonly Window[]) {
    this.c1 = new Float64Array(windows.length);
    this.c5 = new Float64Array(windows.length);
  }

  /** Score a batch of per-step readouts; every window must fit in `b.steps`. */
  add(b: StepBatch): void {
    if (!b.labels) throw new Error('classification needs labels');
    const { n, size, steps } = b;
    this.classes = size;
    const cum = new Float64Array((steps + 1) * size); // cum[t] = sum of steps 1..t
    const avg = new Float64Array(size);
    for (let i = 0; i < n; i++) {
      for (let t = 0; t < steps; t++) {
        const src = (t * n + i) * size;
        for (let j = 0; j < size; j++) cum[(t + 1) * size + j] = cum[t * size + j] + b.readouts[src + j];
      }
      const label = b.labels[i];
      this.windows.forEach((w, wi) => {
        for (let j = 0; j < size; j++) avg[j] = cum[w.T * size + j] - cum[w.delay * size + j];
        const top = topK(avg, 0, size, Math.min(5, size));
        if (top[0] === label) this.c1[wi]++;
        if (top.includes(label)) this.c5[wi]++;
      });
    }
    this.samples += n;
  }

  scores(): TopKScore[] {
    return this.windows.map((_, wi) => ({
      top1: this.samples ? this.c1[wi] / this.samples : 0,
      top5: this.classes >= 10 && this.samples ? this.c5[wi] / this.samples : null,
      samples: this.samples,
    }));
  }
}

/** Top-1/top-5 of plain (one-step) readouts [n, size]. */
export function scoreReadouts(readouts: Float32Array, n: number, size: number, labels: Int32Array): { c1: number; c5: number } {
  let c1 = 0;
  let c5 = 0;
  for (let i = 0; i < n; i++) {
    const top = topK(readouts, i * size, size, Math.min(5, size));
    if (top[0] === labels[i]) c1++;
    if (top.includes(labels[i])) c5++;
  }
  return { c1, c5 };
}
