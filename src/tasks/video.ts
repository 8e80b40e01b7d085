/**
 * Video classification with several clips per video, scored as torchvision's video reference
 * scores it: clip by clip (top-1, top-5 of each clip's readout), and video by video from the
 * sum of its clips' softmax (float32, in clip order), top-1 and top-5 against the video's label.
 *
 * The clips of video v are samples v·K … v·K + K − 1 (fewer for the last video of a data set cut
 * short). Batches and shards cut through videos, so a video whose clips have not all been seen
 * stays open in the state with each seen clip's softmax; states of adjacent parts merge by
 * joining their open videos, and a video is scored once all its clips are in, whatever the
 * order they came in.
 */
import { SpikeportError } from '../errors.js';
import { PairCounter, mergePairs, topK, type LabelPairs } from './classification.js';

export interface OpenVideo {
  readonly video: number;
  readonly label: number;
  /** The clips seen so far: sample index and softmax over the classes. */
  readonly clips: readonly { readonly sample: number; readonly probs: readonly number[] }[];
}

export interface VideoState {
  readonly kind: 'videos';
  readonly classes: number;
  readonly clipsPerVideo: number;
  /** Samples (clips) in the data set: the last video's clip count follows from it. */
  readonly size: number;
  /** Per window: clip-level top-1 and top-5 hits, clips scored. */
  readonly top1: readonly number[];
  readonly top5: readonly number[];
  readonly seen: readonly number[];
  /** Per window: video-level top-1 and top-5 hits, videos scored (all clips in). */
  readonly videoTop1: readonly number[];
  readonly videoTop5: readonly number[];
  readonly videos: readonly number[];
  /** Per window: videos with clips still to come. */
  readonly open: readonly (readonly OpenVideo[])[];
  /**
   * Clip by clip in the first window, how often each (label, top-1 prediction) pair occurred
   * (kept for the ANN reference: the class-order notice reads it).
   */
  readonly pairs?: LabelPairs;
}

const f32 = Math.fround;

/** Softmax of one readout row in float32 (max subtracted first, as torch does). */
export function softmax32(v: ArrayLike<number>, offset: number, size: number): number[] {
  let max = -Infinity;
  for (let c = 0; c < size; c++) max = Math.max(max, v[offset + c]);
  const e = new Array<number>(size);
  let sum = 0;
  for (let c = 0; c < size; c++) {
    e[c] = f32(Math.exp(v[offset + c] - max));
    sum = f32(sum + e[c]);
  }
  for (let c = 0; c < size; c++) e[c] = f32(e[c] / sum);
  return e;
}

/** Clips of video v in a data set of `size` clips, K per video. */
function expected(v: number, K: number, size: number): number {
  return Math.min(K, size - v * K);
}

/** A mutable per-window tally of one video scorer. */
class Tally {
  readonly top1: number[];
  readonly top5: number[];
  readonly seen: number[];
  readonly videoTop1: number[];
  readonly videoTop5: number[];
  readonly videos: number[];
  readonly open: Map<number, { label: number; clips: { sample: number; probs: readonly number[] }[] }>[];

  constructor(
    readonly windows: number,
    public classes: number,
    readonly K: number,
    readonly size: number,
  ) {
    const zeros = (): number[] => Array<number>(windows).fill(0);
    this.top1 = zeros();
    this.top5 = zeros();
    this.seen = zeros();
    this.videoTop1 = zeros();
    this.videoTop5 = zeros();
    this.videos = zeros();
    this.open = Array.from({ length: windows }, () => new Map());
  }

  static of(s: VideoState): Tally {
    const t = new Tally(s.top1.length, s.classes, s.clipsPerVideo, s.size);
    for (let w = 0; w < t.windows; w++) {
      t.top1[w] = s.top1[w];
      t.top5[w] = s.top5[w];
      t.seen[w] = s.seen[w];
      t.videoTop1[w] = s.videoTop1[w];
      t.videoTop5[w] = s.videoTop5[w];
      t.videos[w] = s.videos[w];
    }
    return t;
  }

  /** One clip's softmax for window w; the video is scored when its last clip arrives. */
  addClip(w: number, sample: number, label: number, probs: readonly number[]): void {
    const v = Math.floor(sample / this.K);
    let entry = this.open[w].get(v);
    if (!entry) {
      entry = { label, clips: [] };
      this.open[w].set(v, entry);
    }
    if (entry.clips.some((c) => c.sample === sample)) throw new Error(`clip ${sample} is counted twice`);
    if (entry.label !== label) throw new Error(`the clips of video ${v} have different labels`);
    entry.clips.push({ sample, probs });
    if (entry.clips.length === expected(v, this.K, this.size)) {
      this.score(w, entry);
      this.open[w].delete(v);
    }
  }

  /** Score a video from the clips it has: their softmax summed in float32, in sample order. */
  score(w: number, entry: { label: number; clips: readonly { sample: number; probs: readonly number[] }[] }): void {
    const C = this.classes;
    const sum = new Float32Array(C);
    for (const clip of [...entry.clips].sort((a, b) => a.sample - b.sample))
      for (let c = 0; c < C; c++) sum[c] = f32(sum[c] + clip.probs[c]);
    const top = topK(sum, 0, C, Math.min(5, C));
    if (top[0] === entry.label) this.videoTop1[w]++;
    if (top.includes(entry.label)) this.videoTop5[w]++;
    this.videos[w]++;
  }

  state(): VideoState {
    return {
      kind: 'videos',
      classes: this.classes,
      clipsPerVideo: this.K,
      size: this.size,
      top1: [...this.top1],
      top5: [...this.top5],
      seen: [...this.seen],
      videoTop1: [...this.videoTop1],
      videoTop5: [...this.videoTop5],
      videos: [...this.videos],
      open: this.open.map((m) =>
        [...m]
          .sort((a, b) => a[0] - b[0])
          .map(([video, e]) => ({ video, label: e.label, clips: e.clips.map((c) => ({ ...c })) })),
      ),
    };
  }
}

export interface VideoScorer {
  add(window: number, outputs: ArrayLike<number>, classes: number, indices: readonly number[]): void;
  state(): VideoState;
}

/** A video scorer over `windows` readout windows; `from`: continue from a state. */
export function videoScorer(
  windows: number,
  labels: Int32Array,
  clipsPerVideo: number,
  size: number,
  from?: VideoState,
  trackPairs = false,
): VideoScorer {
  let t = from ? Tally.of(from) : new Tally(windows, 0, clipsPerVideo, size);
  // Clip by clip, in window 0 (the class-order notice).
  const pairs = trackPairs ? new PairCounter(from?.pairs) : null;
  if (from)
    for (let w = 0; w < windows; w++)
      for (const o of from.open[w]) for (const c of o.clips) t.addClip(w, c.sample, o.label, c.probs);
  return {
    add(w, outputs, classes, indices) {
      if (t.classes !== classes) {
        if (t.seen.some((n) => n > 0))
          throw new SpikeportError(
            'invalid-data',
            `video: the model scores ${classes} classes here but ${t.classes} before`,
          );
        t = new Tally(windows, classes, clipsPerVideo, size);
      }
      indices.forEach((sample, k) => {
        const label = labels[sample];
        const top = topK(outputs, k * classes, classes, Math.min(5, classes));
        if (top[0] === label) t.top1[w]++;
        if (top.includes(label)) t.top5[w]++;
        t.seen[w]++;
        if (pairs && w === 0) pairs.add(label, top[0]);
        t.addClip(w, sample, label, softmax32(outputs, k * classes, classes));
      });
    },
    state: () => {
      const st = t.state();
      return pairs ? { ...st, pairs: pairs.pairs() } : st;
    },
  };
}

/** States of disjoint parts of one run as one: counts add, open videos join (and are scored once complete). */
export function mergeVideoStates(states: readonly VideoState[]): VideoState {
  const used = states.filter((s) => s.classes > 0);
  const first = used[0] ?? states[0];
  if (states.some((s) => s.clipsPerVideo !== first.clipsPerVideo || s.size !== first.size))
    throw new Error('video states of different data sets (clips per video or size differ)');
  const windows = first.top1.length;
  const t = new Tally(windows, first.classes, first.clipsPerVideo, first.size);
  for (const s of used) {
    for (let w = 0; w < windows; w++) {
      t.top1[w] += s.top1[w];
      t.top5[w] += s.top5[w];
      t.seen[w] += s.seen[w];
      t.videoTop1[w] += s.videoTop1[w];
      t.videoTop5[w] += s.videoTop5[w];
      t.videos[w] += s.videos[w];
      for (const o of s.open[w]) for (const c of o.clips) t.addClip(w, c.sample, o.label, c.probs);
    }
  }
  // Pairs survive a merge only when every part kept them (else the counts would be partial).
  const pairs = states.every((s) => s.pairs) ? mergePairs(states.flatMap((s) => s.pairs ?? [])) : null;
  return pairs ? { ...t.state(), pairs } : t.state();
}

/** Per window: video top-1 and top-5, clip top-1 and top-5 (open videos scored on the clips they have). */
export function videoScores(
  s: VideoState,
): { video1: number; video5: number | null; clip1: number; clip5: number | null }[] {
  const t = Tally.of(s);
  for (let w = 0; w < t.windows; w++) for (const o of s.open[w]) t.score(w, o);
  return t.top1.map((_, w) => ({
    video1: t.videos[w] ? t.videoTop1[w] / t.videos[w] : 0,
    video5: s.classes >= 10 && t.videos[w] ? t.videoTop5[w] / t.videos[w] : null,
    clip1: t.seen[w] ? t.top1[w] / t.seen[w] : 0,
    clip5: s.classes >= 10 && t.seen[w] ? t.top5[w] / t.seen[w] : null,
  }));
}
