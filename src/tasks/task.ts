/**
 * One interface over the tasks (docs/algorithm.md §7): a scorer takes the model outputs of each readout window
 * (after the tail), batch by batch, and gives each window's main metric and a second one.
 *
 *   classification  top-1, top-5          video  clip top-1, clip top-5
 *   segmentation    mIoU, pixel accuracy  detection  mAP@[.50:.95], mAP@.50 (COCO)
 */
import type { Dataset, DetectionBox } from '../data/dataset.js';
import { toOriginal, type Placement } from '../data/preprocess.js';
import { SpikeportError } from '../errors.js';
import type { Notice } from '../progress.js';
import { PairCounter, TopKCounter, mergePairs, pairsProblem, type LabelPairs } from './classification.js';
import { ConfusionMatrix } from './segmentation.js';
import { meanAveragePrecision, type Detection } from './detection.js';
import { mergeVideoStates, videoScorer, videoScores, type VideoState } from './video.js';
import { checkDetectionOptions, detectionHead, type DetectionHead, type DetectionOptions } from './heads.js';

export const TASKS = ['classification', 'segmentation', 'detection', 'video'] as const;
export type Task = (typeof TASKS)[number];

export const METRIC_NAMES: Readonly<Record<Task, readonly [string, string]>> = {
  classification: ['top-1', 'top-5'],
  video: ['clip top-1', 'clip top-5'],
  segmentation: ['mIoU', 'pixel accuracy'],
  detection: ['mAP@[.50:.95]', 'mAP@.50'],
};

/** Names of the two metrics when a video's clips are scored together too (data with `clipsPerVideo` > 1). */
export const VIDEO_LEVEL_NAMES: readonly [string, string] = ['video top-1', 'clip top-1'];

/** A record's two metric names: its own (video-level runs), else its task's. */
export function metricNamesOf(r: {
  readonly task?: Task;
  readonly metrics?: readonly [string, string];
}): readonly [string, string] {
  return r.metrics ?? METRIC_NAMES[r.task ?? 'classification'];
}

export interface Score {
  readonly metric: number;
  readonly secondary: number | null;
}

/** What a scorer needs of a batch besides the outputs: its sample indices and, for segmentation, its masks. */
export interface Targets {
  readonly indices: readonly number[];
  readonly masks?: Uint8Array;
  /** Detection: where each sample came from (resize, crop), to map boxes back to the original image. */
  readonly placements?: readonly Placement[];
}

/** One of a model's outputs for a batch: its name, dims (batch first) and values. */
export interface ModelOutput {
  readonly name: string;
  readonly dims: readonly number[];
  readonly data: Float32Array;
}

/** A model's outputs, every one, in the order of its graph outputs. */
export type ModelOutputs = readonly ModelOutput[];

/**
 * What a task scores, beyond the data: the detection head and its thresholds; `pairs`:
 * classification and video also count (label, prediction) pairs in the first window (the
 * class-order notice).
 */
export interface ScorerOptions {
  readonly detection?: DetectionOptions;
  readonly pairs?: boolean;
}

export interface Scorer {
  /**
   * Check the outputs' layout (dims of a batch, the values unused) before any work: a one-line
   * error when the task cannot score them (e.g. no detection head fits).
   */
  check(outputs: ModelOutputs): void;
  /** outputs: one window's model outputs for a batch, [n, ...] each; batch: its samples (and masks). */
  add(window: number, outputs: ModelOutputs, batch: Targets): void;
  scores(): Score[];
  /** What the scores are computed from, as plain JSON: states of disjoint sample sets merge exactly (mergeStates). */
  state(): ScorerState;
}

/**
 * A scorer's sufficient statistics, per window: hit counts (classification, video), confusion
 * matrices (segmentation), or the detections with the ground truth of the images seen
 * (detection). Integers and the detections' own numbers: merging adds or concatenates, so the
 * scores of merged states are exactly those of one scorer that saw every batch in the same order.
 */
export type ScorerState =
  | {
      readonly kind: 'topk';
      readonly classes: number;
      readonly top1: readonly number[];
      readonly top5: readonly number[];
      readonly seen: readonly number[];
      /**
       * How often each (label, top-1 prediction) pair occurred, in the first window, as
       * [label, predicted, count] sorted by label then prediction (kept for the ANN reference,
       * to tell a wrong class order from a weak model; see classOrderNotice).
       */
      readonly pairs?: LabelPairs;
    }
  | { readonly kind: 'confusion'; readonly classes: number; readonly counts: readonly (readonly number[])[] }
  | {
      readonly kind: 'detections';
      readonly classes: number;
      readonly windows: number;
      /** Per window, the detections in the order found: 7 numbers each (image, label, score, x, y, w, h). */
      readonly found: readonly (readonly number[])[];
      /** The images scored, ascending, and their ground-truth boxes (in the data set's order). */
      readonly images: readonly number[];
      readonly truth: readonly DetectionBox[];
    }
  | VideoState;

/**
 * A data set whose classes are named (class folders, COCO categories, a known set) must have
 * exactly the model's number of classes: otherwise its labels cannot be the model's outputs (a
 * missing class folder shifts every later label). Sources that take the model's class names
 * (classNames) map them by name instead.
 */
export function checkClassCount(data: Dataset, modelClasses: number): void {
  const named = data.classes?.length;
  if (named === undefined || named === modelClasses) return;
  const byName = /^(imagefolder|videofolder|videofiles|coco):/.test(data.name);
  throw new SpikeportError(
    'invalid-data',
    `data set ${data.name} has ${named} classes but the model scores ${modelClasses}: its labels would not be the model's classes${byName ? " (name the model's classes in its order, one per line, with classNames: folders and categories are then matched by name)" : ''}`,
    byName ? 'classNames' : undefined,
  );
}

/** Fewest samples for a verdict on the class order (fewer say too little). */
const CLASS_ORDER_SAMPLES = 50;

/**
 * Whether the ANN's own top-1 on the labels suggests that the labels are not in the model's
 * class order, from its (label, prediction) pairs: near chance, or far better once its outputs
 * are matched to the labels one to one (greedily, most frequent pairs first; a wrong order is a
 * permutation, which this undoes, while a weak model gains little). Null when neither holds.
 */
export function classOrderNotice(ann: ScorerState, data: string, metric: string): Notice | null {
  // Multi-clip video keeps its pairs clip by clip, as the clip top-1 counts them.
  if ((ann.kind !== 'topk' && ann.kind !== 'videos') || !ann.pairs || ann.classes < 2) return null;
  const n = ann.seen[0] ?? 0;
  if (n < CLASS_ORDER_SAMPLES) return null;
  const what = ann.kind === 'videos' ? 'clip top-1' : metric;
  const top1 = ann.top1[0] / n;
  const usedLabel = new Set<number>();
  const usedPred = new Set<number>();
  let matched = 0;
  for (const [l, p, k] of [...ann.pairs].sort((a, b) => b[2] - a[2] || a[0] - b[0] || a[1] - b[1])) {
    if (usedLabel.has(l) || usedPred.has(p)) continue;
    usedLabel.add(l);
    usedPred.add(p);
    matched += k;
  }
  const best = matched / n;
  const chance = 1 / ann.classes;
  const byName = /^(imagefolder|videofolder|videofiles|coco):/.test(data);
  const pct = (v: number): string => `${(100 * v).toFixed(1)} %`;
  const fix = byName
    ? "name the model's classes in its order, one per line, with classNames"
    : "check that the data's labels follow the model's class order";
  if (best - top1 >= 0.2)
    return {
      code: 'class-order',
      message: `the ANN scores ${what} ${pct(top1)} on these labels (chance ${pct(chance)}) but ${pct(best)} once its outputs are matched to the labels one to one: the data's class order is probably not the model's (${fix})`,
      ...(byName ? { field: 'classNames' } : {}),
    };
  if (top1 <= Math.min(2 * chance, chance + 0.1))
    return {
      code: 'near-chance',
      message: `the ANN scores ${what} ${pct(top1)} on these labels, near chance (${pct(chance)}): ${fix}, and that inputs are prepared as in training (preprocessing, normalisation)`,
      ...(byName ? { field: 'classNames' } : {}),
    };
  return null;
}

/** The task a data set is for, unless the user says: masks → segmentation, boxes → detection, clips → video. */
export function inferTask(d: Dataset, given?: Task): Task {
  if (given) return given;
  if (d.maskShape) return 'segmentation';
  if (d.boxes) return 'detection';
  if (d.sampleShape.length === 4) return 'video';
  return 'classification';
}

/**
 * A scorer for `windows` readout windows; `from`: continue from a state (a resumed run);
 * `options.pairs`: classification and video also count (label, prediction) pairs in the first window
 * (clip by clip for multi-clip video).
 */
export function makeScorer(
  task: Task,
  windows: number,
  data: Dataset,
  from?: ScorerState,
  options: ScorerOptions = {},
): Scorer {
  if (from && from.kind !== stateKind(task, data))
    throw new Error(`a ${from.kind} state cannot continue a ${task} scorer`);
  switch (task) {
    case 'video':
      return (data.clipsPerVideo ?? 1) > 1
        ? oneOutput(task, videos(windows, data, from, options.pairs === true))
        : oneOutput(task, topK(windows, data, from, options.pairs === true));
    case 'classification':
      return oneOutput(task, topK(windows, data, from, options.pairs === true));
    case 'segmentation':
      return oneOutput(task, segmentation(windows, data, from));
    case 'detection':
      return detection(windows, data, from, options.detection ?? {});
  }
}

/** A scorer of one output tensor. */
interface TensorScorer extends Pick<Scorer, 'scores' | 'state'> {
  add(window: number, outputs: Float32Array, dims: readonly number[], batch: Targets): void;
}

/** A scorer of one output: a model with several is refused (its task scores one tensor). */
function oneOutput(task: Task, s: TensorScorer): Scorer {
  const only = (outputs: ModelOutputs): ModelOutput => {
    if (outputs.length !== 1)
      throw new SpikeportError(
        'unsupported-model',
        `${task} scores one output, but the model has ${outputs.length} (${outputs.map((o) => o.name).join(', ')}); end it with one tensor, or choose its readout with readoutNode`,
      );
    return outputs[0];
  };
  return {
    check: (outputs) => void only(outputs),
    add(w, outputs, b) {
      const o = only(outputs);
      s.add(w, o.data, o.dims, b);
    },
    scores: () => s.scores(),
    state: () => s.state(),
  };
}

/** The kind of state a task's scorer keeps (on this data: video with several clips per video keeps videos). */
export function stateKind(task: Task, data?: Dataset): ScorerState['kind'] {
  if (task === 'video' && (data?.clipsPerVideo ?? 1) > 1) return 'videos';
  return task === 'segmentation' ? 'confusion' : task === 'detection' ? 'detections' : 'topk';
}

/** The scores per window of a state (a scorer's own, or merged ones). */
export function scoresOf(s: ScorerState): Score[] {
  switch (s.kind) {
    case 'topk':
      return TopKCounter.fromState(s)
        .scores()
        .map((x) => ({ metric: x.top1, secondary: x.top5 }));
    case 'confusion':
      return s.counts.map((c) => {
        const cm = new ConfusionMatrix(s.classes);
        cm.counts.set(c);
        return { metric: cm.miou(), secondary: cm.pixelAccuracy() };
      });
    case 'videos':
      return videoScores(s).map((x) => ({ metric: x.video1, secondary: x.clip1 }));
    case 'detections': {
      const seen = new Set(s.images);
      const gts = s.truth.filter((b) => seen.has(b.image));
      return s.found.map((flat) => {
        const r = meanAveragePrecision(unflatten(flat), gts, s.classes);
        return { metric: r.map, secondary: r.map50 };
      });
    }
  }
}

/**
 * States of disjoint parts of a data set, in sample order, as one: counts add, detections
 * concatenate. A part that scored nothing (classes 0) adds nothing. Throws on states that
 * cannot come from one run (other kinds, windows or classes).
 */
export function mergeStates(states: readonly ScorerState[]): ScorerState {
  if (states.length === 0) throw new Error('no scorer states to merge');
  const kind = states[0].kind;
  if (states.some((s) => s.kind !== kind))
    throw new Error(`scorer states of different kinds (${[...new Set(states.map((s) => s.kind))].join(', ')})`);
  const sizes = states.map(windowsOf);
  if (sizes.some((w) => w !== sizes[0]))
    throw new Error(`scorer states with different numbers of windows (${[...new Set(sizes)].join(', ')})`);
  const used = states.filter((s) => s.classes > 0);
  const classes = used.length ? used[0].classes : 0;
  if (used.some((s) => s.classes !== classes))
    throw new Error(
      `scorer states with different numbers of classes (${[...new Set(used.map((s) => s.classes))].join(', ')})`,
    );
  const add = (rows: readonly (readonly number[])[]): number[] =>
    rows.reduce<number[]>(
      (acc, r) => acc.map((v, i) => v + r[i]),
      rows[0].map(() => 0),
    );
  const W = sizes[0];
  if (kind === 'videos') return mergeVideoStates(states as VideoState[]);
  switch (kind) {
    case 'topk': {
      const ts = states as Extract<ScorerState, { kind: 'topk' }>[];
      const pairs = ts.every((s) => s.pairs) ? mergePairs(ts.flatMap((s) => s.pairs ?? [])) : null;
      return {
        kind,
        classes,
        top1: add(ts.map((s) => s.top1)),
        top5: add(ts.map((s) => s.top5)),
        seen: add(ts.map((s) => s.seen)),
        ...(pairs ? { pairs } : {}),
      };
    }
    case 'confusion': {
      const cs = used as Extract<ScorerState, { kind: 'confusion' }>[];
      return {
        kind,
        classes,
        counts: Array.from({ length: W }, (_, w) => (cs.length ? add(cs.map((s) => s.counts[w])) : [])),
      };
    }
    case 'detections': {
      const ds = states as Extract<ScorerState, { kind: 'detections' }>[];
      const images = ds.flatMap((s) => s.images);
      if (new Set(images).size !== images.length)
        throw new Error('detection states share images: they are not disjoint parts of the data');
      const truth = ds.flatMap((s) => s.truth);
      return {
        kind,
        classes,
        windows: W,
        found: Array.from({ length: W }, (_, w) => ds.flatMap((s) => s.found[w])),
        images: [...images].sort((a, b) => a - b),
        truth: sortByImage(truth),
      };
    }
  }
}

/**
 * What is wrong with a state said to score exactly these samples (ascending indices) over
 * `windows` readout windows, or null: a state read from a file is checked before it is trusted.
 */
export function stateProblem(s: ScorerState, windows: number, samples: readonly number[]): string | null {
  if (windowsOf(s) !== windows) return `${windowsOf(s)} readout windows, expected ${windows}`;
  const n = samples.length;
  switch (s.kind) {
    case 'topk':
      if (s.top5.length !== windows || s.seen.length !== windows)
        return 'top-1, top-5 and seen counts of different lengths';
      for (let w = 0; w < windows; w++) {
        if (s.seen[w] !== n) return `window ${w} scored ${s.seen[w]} samples, the batches hold ${n}`;
        if (!(s.top1[w] <= s.top5[w] && s.top5[w] <= s.seen[w]))
          return `window ${w}: top-1 ${s.top1[w]}, top-5 ${s.top5[w]} of ${s.seen[w]} is impossible`;
      }
      return s.pairs && windows > 0 ? pairsProblem(s.pairs, s.classes, s.seen[0], s.top1[0]) : null;
    case 'videos': {
      const lists = [s.top5, s.seen, s.videoTop1, s.videoTop5, s.videos, s.open];
      if (lists.some((l) => l.length !== windows)) return 'video counts of different lengths';
      const mine = new Set(samples);
      for (let w = 0; w < windows; w++) {
        if (s.seen[w] !== n) return `window ${w} scored ${s.seen[w]} clips, the batches hold ${n}`;
        if (!(s.top1[w] <= s.top5[w] && s.top5[w] <= s.seen[w]))
          return `window ${w}: clip top-1 ${s.top1[w]}, top-5 ${s.top5[w]} of ${s.seen[w]} is impossible`;
        if (!(s.videoTop1[w] <= s.videoTop5[w] && s.videoTop5[w] <= s.videos[w]))
          return `window ${w}: video top-1 ${s.videoTop1[w]}, top-5 ${s.videoTop5[w]} of ${s.videos[w]} is impossible`;
        for (const o of s.open[w])
          for (const c of o.clips) {
            if (!mine.has(c.sample) || Math.floor(c.sample / s.clipsPerVideo) !== o.video)
              return `an open video holds clip ${c.sample}, which is not among its samples`;
            if (c.probs.length !== s.classes)
              return `a clip's softmax has ${c.probs.length} values for ${s.classes} classes`;
          }
      }
      return s.pairs && windows > 0 ? pairsProblem(s.pairs, s.classes, s.seen[0], s.top1[0]) : null;
    }
    case 'confusion': {
      if (n > 0 && s.classes < 1) return 'no classes, but samples were scored';
      if (s.counts.some((c) => c.length !== s.classes * s.classes))
        return `confusion matrices must hold ${s.classes}² counts`;
      const totals = s.counts.map((c) => c.reduce((a, b) => a + b, 0));
      if (totals.some((t) => t !== totals[0])) return 'the windows scored different numbers of pixels';
      return null;
    }
    case 'detections': {
      if (s.images.length !== n || s.images.some((im, k) => im !== samples[k]))
        return 'the images scored are not the samples of its batches';
      const seen = new Set(s.images);
      for (const flat of s.found) {
        for (let k = 0; k < flat.length; k += 7) {
          if (!seen.has(flat[k]) || !Number.isInteger(flat[k + 1]) || flat[k + 1] < 0 || flat[k + 1] >= s.classes)
            return `a detection of image ${flat[k]}, class ${flat[k + 1]}, is not among its images and ${s.classes} classes`;
        }
      }
      if (s.truth.some((b) => !seen.has(b.image))) return 'a ground-truth box of an image it did not score';
      return null;
    }
  }
}

function windowsOf(s: ScorerState): number {
  if (s.kind === 'videos') return s.top1.length;
  return s.kind === 'topk' ? s.top1.length : s.kind === 'confusion' ? s.counts.length : s.windows;
}

const DET_FIELDS = 7;

function flatten(dets: readonly Detection[]): number[] {
  const out: number[] = [];
  for (const d of dets) out.push(d.image, d.label, d.score, d.x, d.y, d.w, d.h);
  return out;
}

function unflatten(flat: readonly number[]): Detection[] {
  const out: Detection[] = [];
  for (let k = 0; k + DET_FIELDS <= flat.length; k += DET_FIELDS) {
    out.push({
      image: flat[k],
      label: flat[k + 1],
      score: flat[k + 2],
      x: flat[k + 3],
      y: flat[k + 4],
      w: flat[k + 5],
      h: flat[k + 6],
    });
  }
  return out;
}

/** Boxes grouped by image, ascending, each image's boxes in their given order (a stable sort). */
function sortByImage(boxes: readonly DetectionBox[]): DetectionBox[] {
  return boxes
    .map((b, k) => [b, k] as const)
    .sort((a, b) => a[0].image - b[0].image || a[1] - b[1])
    .map(([b]) => b);
}

function topK(windows: number, data: Dataset, from?: ScorerState, trackPairs = false): TensorScorer {
  const labels = data.labels;
  if (!labels) throw new SpikeportError('invalid-data', `data set ${data.name} has no labels; accuracy needs them`);
  const counter = from?.kind === 'topk' ? TopKCounter.fromState(from) : new TopKCounter(windows);
  const pairs = trackPairs ? new PairCounter(from?.kind === 'topk' ? from.pairs : []) : null;
  return {
    add(w, outputs, dims, { indices }) {
      const classes = dims.slice(1).reduce((a, b) => a * b, 1);
      checkClassCount(data, classes);
      const y = Int32Array.from(indices, (i) => labels[i]);
      const bad = y.find((l) => l < 0 || l >= classes);
      if (bad !== undefined)
        throw new SpikeportError(
          'invalid-data',
          `data set ${data.name} has the label ${bad}, but the model scores ${classes} classes (0..${classes - 1})`,
        );
      counter.add(w, outputs, dims[0], y);
      if (pairs && w === 0) {
        for (let i = 0; i < y.length; i++) pairs.add(y[i], topIndex(outputs, i * classes, classes));
      }
    },
    scores: () => counter.scores().map((s) => ({ metric: s.top1, secondary: s.top5 })),
    state: () => {
      const s = counter.state();
      return pairs ? { ...s, pairs: pairs.pairs() } : s;
    },
  };
}

/** Several clips per video: clip by clip, and each video from its clips' summed softmax (tasks/video.ts). */
function videos(windows: number, data: Dataset, from?: ScorerState, trackPairs = false): TensorScorer {
  const labels = data.labels;
  if (!labels) throw new SpikeportError('invalid-data', `data set ${data.name} has no labels; accuracy needs them`);
  const scorer = videoScorer(
    windows,
    labels,
    data.clipsPerVideo as number,
    data.size,
    from?.kind === 'videos' ? from : undefined,
    trackPairs,
  );
  return {
    add(w, outputs, dims, { indices }) {
      const classes = dims.slice(1).reduce((a, b) => a * b, 1);
      checkClassCount(data, classes);
      const bad = indices.map((i) => labels[i]).find((l) => l < 0 || l >= classes);
      if (bad !== undefined)
        throw new SpikeportError(
          'invalid-data',
          `data set ${data.name} has the label ${bad}, but the model scores ${classes} classes (0..${classes - 1})`,
        );
      scorer.add(w, outputs, classes, indices);
    },
    scores: () => scoresOf(scorer.state()),
    state: () => scorer.state(),
  };
}

/** The index of the largest value (ties: the lower index, as top-1 scoring takes it). */
function topIndex(v: ArrayLike<number>, offset: number, size: number): number {
  let best = 0;
  for (let j = 1; j < size; j++) if (v[offset + j] > v[offset + best]) best = j;
  return best;
}

function segmentation(windows: number, data: Dataset, from?: ScorerState): TensorScorer {
  const shape = data.maskShape;
  if (!shape)
    throw new SpikeportError(
      'invalid-data',
      `data set ${data.name} has no per-pixel labels (masks); segmentation needs them`,
    );
  const plane = shape.reduce((a, b) => a * b, 1);
  let cms: ConfusionMatrix[] | null = null;
  if (from?.kind === 'confusion' && from.classes > 0) {
    cms = from.counts.map((c) => {
      const cm = new ConfusionMatrix(from.classes);
      cm.counts.set(c);
      return cm;
    });
  }
  return {
    add(w, outputs, dims, { indices, masks }) {
      const spatial = dims.slice(2).reduce((a, b) => a * b, 1);
      if (spatial !== plane)
        throw new SpikeportError(
          'invalid-data',
          `segmentation: the model outputs ${dims.slice(2).join('x')} per class but the masks are ${shape.join('x')}`,
        );
      if (!masks || masks.length !== indices.length * plane)
        throw new Error(`segmentation: the batch of ${indices.length} samples came without its masks`);
      cms ??= Array.from({ length: windows }, () => new ConfusionMatrix(dims[1]));
      if (dims[1] !== cms[w].classes)
        throw new SpikeportError(
          'invalid-data',
          `segmentation: the model scores ${dims[1]} classes here but ${cms[w].classes} before`,
        );
      cms[w].add(outputs, masks, indices.length);
    },
    scores: () => (cms ?? []).map((cm) => ({ metric: cm.miou(), secondary: cm.pixelAccuracy() })),
    state: () => ({
      kind: 'confusion',
      classes: cms ? cms[0].classes : 0,
      counts: cms ? cms.map((cm) => Array.from(cm.counts)) : Array.from({ length: windows }, () => []),
    }),
  };
}

/** The detection head for a batch's outputs and the data's input size (tasks/heads.ts). */
export function headFor(outputs: ModelOutputs, data: Dataset, options: DetectionOptions = {}): DetectionHead {
  const s = data.sampleShape;
  return detectionHead(outputs, s[s.length - 2], s[s.length - 1], checkDetectionOptions(options));
}

function detection(windows: number, data: Dataset, from: ScorerState | undefined, options: DetectionOptions): Scorer {
  const boxes = data.boxes;
  if (!boxes) throw new SpikeportError('invalid-data', `data set ${data.name} has no boxes; detection needs them`);
  const prior = from?.kind === 'detections' ? from : null;
  const found: Detection[][] = Array.from({ length: windows }, (_, w) => (prior ? unflatten(prior.found[w]) : []));
  const seen = new Set<number>(prior?.images ?? []);
  let classes = prior?.classes ?? 0;
  let head: DetectionHead | null = null;
  const headOf = (outputs: ModelOutputs): DetectionHead => {
    head ??= headFor(outputs, data, options);
    if (classes !== head.classes) {
      classes = head.classes;
      checkClassCount(data, classes);
      const bad = boxes.find((b) => b.label < 0 || b.label >= classes);
      if (bad !== undefined)
        throw new SpikeportError(
          'invalid-data',
          `data set ${data.name} has a box of class ${bad.label}, but the model's head scores ${classes} classes (0..${classes - 1})`,
        );
    }
    return head;
  };
  return {
    check: (outputs) => void headOf(outputs),
    add(w, outputs, { indices, placements }) {
      const dets = headOf(outputs).decode(outputs, indices);
      if (!placements) found[w].push(...dets);
      else {
        // Boxes in the model's input → the original image's pixels, where the ground truth is.
        for (const d of dets) {
          const p = placements[indices.indexOf(d.image)];
          const [x0, y0] = toOriginal(p, d.x, d.y);
          const [x1, y1] = toOriginal(p, d.x + d.w, d.y + d.h);
          found[w].push({ ...d, x: x0, y: y0, w: x1 - x0, h: y1 - y0 });
        }
      }
      indices.forEach((i) => seen.add(i));
    },
    state() {
      const images = [...seen].sort((a, b) => a - b);
      return {
        kind: 'detections',
        classes,
        windows,
        found: found.map(flatten),
        images,
        truth: sortByImage(boxes.filter((b) => seen.has(b.image))),
      };
    },
    scores() {
      return scoresOf(this.state());
    },
  };
}
