/** Classification (and video clip) scores: top-1 / top-5 of the averaged readout. */
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
export function scoreReadouts(
  readouts: ArrayLike<number>,
  n: number,
  size: number,
  labels: ArrayLike<number>,
): { c1: number; c5: number } {
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

  /** The counts as plain JSON (a scorer state). */
  state(): { kind: 'topk'; classes: number; top1: number[]; top5: number[]; seen: number[] } {
    return {
      kind: 'topk',
      classes: this.classes,
      top1: Array.from(this.c1),
      top5: Array.from(this.c5),
      seen: Array.from(this.seen),
    };
  }

  /** A counter holding these counts. */
  static fromState(s: {
    classes: number;
    top1: readonly number[];
    top5: readonly number[];
    seen: readonly number[];
  }): TopKCounter {
    const c = new TopKCounter(s.top1.length);
    c.c1.set(s.top1);
    c.c5.set(s.top5);
    c.seen.set(s.seen);
    c.classes = s.classes;
    return c;
  }

  scores(): TopKScore[] {
    return Array.from(this.c1, (_, w) => ({
      top1: this.seen[w] ? this.c1[w] / this.seen[w] : 0,
      top5: this.classes >= 10 && this.seen[w] ? this.c5[w] / this.seen[w] : null,
      samples: this.seen[w],
    }));
  }
}
