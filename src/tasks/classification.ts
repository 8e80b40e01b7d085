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

/** How often each (label, top-1 prediction) pair occurred: [label, predicted, count]. */
export type LabelPairs = readonly (readonly [number, number, number])[];

/** Counts (label, top-1 prediction) pairs; starts from earlier counts (a resumed run). */
export class PairCounter {
  // (label, prediction) → count, keyed label · 2³² + prediction.
  private readonly counts = new Map<number, number>();

  constructor(from: LabelPairs = []) {
    for (const [l, p, k] of from) this.counts.set(l * 2 ** 32 + p, k);
  }

  add(label: number, predicted: number): void {
    const key = label * 2 ** 32 + predicted;
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }

  pairs(): (readonly [number, number, number])[] {
    return mergePairs([...this.counts].map(([k, n]) => [Math.floor(k / 2 ** 32), k % 2 ** 32, n] as const));
  }
}

/** (label, prediction, count) triples with equal pairs added, sorted by label then prediction. */
export function mergePairs(triples: LabelPairs): (readonly [number, number, number])[] {
  const m = new Map<string, [number, number, number]>();
  for (const [l, p, k] of triples) {
    const key = `${l},${p}`;
    const t = m.get(key);
    if (t) t[2] += k;
    else m.set(key, [l, p, k]);
  }
  return [...m.values()].sort((a, b) => a[0] - b[0] || a[1] - b[1]);
}

/** What is wrong with pairs said to count `seen` samples with `hits` top-1 hits over `classes` classes, or null. */
export function pairsProblem(pairs: LabelPairs, classes: number, seen: number, hits: number): string | null {
  const bad = pairs.find(([l, p]) => l >= classes || p >= classes);
  if (bad) return `a (label, prediction) pair ${bad[0]}, ${bad[1]} outside ${classes} classes`;
  const total = pairs.reduce((a, p) => a + p[2], 0);
  const right = pairs.reduce((a, p) => a + (p[0] === p[1] ? p[2] : 0), 0);
  if (total !== seen || right !== hits)
    return `its (label, prediction) pairs count ${total} samples and ${right} hits, not ${seen} and ${hits}`;
  return null;
}
