/**
 * The report's pictures: a few test images with what the SNN made of them, taken from the
 * simulation that scores the data set (simulateWindows' onOutputs), never from a second one.
 *
 *   segmentation, detection  the same few samples (spread evenly over the data set) at a few
 *                            windows (e.g. the smallest, a middle and the largest T), with the
 *                            ground truth and, when given, the ANN's prediction
 *   classification, video    the misclassified samples at one window (the smallest T), the first
 *                            ones in data set order, each with its label and predictions (video:
 *                            the clip's first frame)
 *
 * Stored compactly for the JSON record: the image as a small PNG data URI (the model's input
 * before normalisation, at most MAX_SIDE pixels a side), masks as run lengths of class ids, boxes
 * in the model's input pixels, the ground truth mapped there too.
 */
import type { Dataset } from '../data/dataset.js';
import { encodePng } from '../data/png.js';
import { toInput } from '../data/preprocess.js';
import type { StepBatch } from '../runtime/engines.js';
import { topK } from '../tasks/classification.js';
import type { DetectionOptions, DetectionHead } from '../tasks/heads.js';
import { headFor, type ModelOutput, type ModelOutputs, type Task } from '../tasks/task.js';

/** A box in the model's input pixels (x, y = top left). */
export interface PictureBox {
  readonly label: number;
  readonly x: number;
  readonly y: number;
  readonly w: number;
  readonly h: number;
  /** Predictions: the detection's score. */
  readonly score?: number;
  /** Ground truth: a crowd region (COCO iscrowd), which detections may match without counting. */
  readonly crowd?: boolean;
}

/** One prediction (or the ground truth) of one sample, in the task's form. */
export interface PicturePrediction {
  /** Classification, video: the class. */
  readonly label?: number;
  /** Segmentation: the class of every pixel (maskWidth × maskHeight, row by row) as runs "class:count class:count …". */
  readonly mask?: string;
  /** Detection: the boxes. */
  readonly boxes?: readonly PictureBox[];
}

export interface PictureSample {
  /** The sample's index in the data set. */
  readonly index: number;
  /** The model's input before normalisation as a PNG data URI (scaled down to at most MAX_SIDE a side). */
  readonly image: string;
  readonly truth: PicturePrediction;
  /** The source ANN's prediction (null: no ANN at hand). */
  readonly ann: PicturePrediction | null;
  /** The SNN's prediction at each of Pictures.windows. */
  readonly snn: readonly PicturePrediction[];
}

export interface Pictures {
  readonly task: Task;
  /** The model's input size: boxes are in these pixels. */
  readonly width: number;
  readonly height: number;
  /** Segmentation: the masks' size. */
  readonly maskWidth?: number;
  readonly maskHeight?: number;
  /** The readout windows shown (steps delay+1..T). */
  readonly windows: readonly { readonly T: number; readonly delay: number }[];
  /** Class names in label order, when the data has them. */
  readonly classes?: readonly string[];
  /** Detection: predictions are shown from this score up. */
  readonly minScore?: number;
  /** Classification, video: samples misclassified at windows[0], of all `checked`. */
  readonly misclassified?: number;
  readonly checked?: number;
  readonly samples: readonly PictureSample[];
}

/** Longest side of a stored image; larger inputs are scaled down (nearest) for the picture. */
export const MAX_SIDE = 256;
/** Detections shown: at least this score, at most MAX_BOXES per image. */
export const PICTURE_MIN_SCORE = 0.3;
export const MAX_BOXES = 20;
/** Misclassified images per requested picture (classification and video show a grid). */
export const GRID_PER_PICTURE = 8;

/** Run lengths of a row-major label array as text: "class:count class:count …". */
export function runLengths(values: ArrayLike<number>): string {
  const out: string[] = [];
  for (let i = 0; i < values.length;) {
    let j = i + 1;
    while (j < values.length && values[j] === values[i]) j++;
    out.push(`${values[i]}:${j - i}`);
    i = j;
  }
  return out.join(' ');
}

/** The label array of runs (runLengths' inverse): `size` class ids, or an error. */
export function expandRuns(runs: string, size: number): Uint8Array {
  const out = new Uint8Array(size);
  let at = 0;
  for (const run of runs.split(' ')) {
    const m = /^(\d{1,3}):(\d+)$/.exec(run);
    const v = m ? Number(m[1]) : NaN;
    const n = m ? Number(m[2]) : NaN;
    if (!m || v > 255 || n < 1 || at + n > size)
      throw new Error(`mask runs do not describe ${size} class ids (at "${run.slice(0, 20)}")`);
    out.fill(v, at, at + n);
    at += n;
  }
  if (at !== size) throw new Error(`mask runs describe ${at} of ${size} pixels`);
  return out;
}

/** The classes a mask's runs hold. */
export function runClasses(runs: string): number[] {
  return [...new Set(runs.split(' ').map((r) => Number(r.split(':')[0])))];
}

/** Per-pixel argmax of one sample's scores [C, plane] (ties: the lower class, as the scorer). */
export function argmaxMask(scores: ArrayLike<number>, offset: number, C: number, plane: number): Uint8Array {
  const out = new Uint8Array(plane);
  for (let p = 0; p < plane; p++) {
    let best = 0;
    let bestV = scores[offset + p];
    for (let c = 1; c < C; c++) {
      const v = scores[offset + c * plane + p];
      if (v > bestV) {
        bestV = v;
        best = c;
      }
    }
    out[p] = best;
  }
  return out;
}

const round = (v: number, digits: number): number => Number(v.toFixed(digits));

/** Which samples and windows to picture. */
export interface PictureOptions {
  readonly task: Task;
  /** Indices of the simulation's windows to show, with their T and delay. */
  readonly windows: readonly { readonly index: number; readonly T: number; readonly delay: number }[];
  /** Segmentation, detection: images shown; classification, video: GRID_PER_PICTURE × this many misclassified images at most. */
  readonly count: number;
  /** Detection: the head and its thresholds, as the scorer decodes (tasks/heads.ts). */
  readonly detection?: DetectionOptions;
}

/** What a collector has gathered so far, as JSON (a checkpoint's part: a resumed run continues from it). */
export interface PictureState {
  readonly preds: readonly (readonly [number, readonly PicturePrediction[]])[];
  readonly misclassified: number;
  readonly checked: number;
  readonly grid: readonly number[];
  readonly maskSize: readonly [number, number] | null;
}

/** Collects the pictures' predictions while the simulation runs (pass `onOutputs` to simulateWindows), then makes the record's part. */
export class PictureCollector {
  private readonly chosen: readonly number[];
  private readonly preds = new Map<number, PicturePrediction[]>();
  private misclassified = 0;
  private checked = 0;
  private readonly grid: number[] = [];
  private maskSize: [number, number] | null = null;
  private head: DetectionHead | null = null;

  /** `from`: continue what a run that was stopped had gathered. */
  constructor(
    private readonly data: Dataset,
    private readonly o: PictureOptions,
    from?: PictureState,
  ) {
    const n = Math.min(o.count, data.size);
    // Segmentation and detection: samples spread evenly over the set (a class-sorted folder shows more than its first class).
    this.chosen = isGrid(o.task) ? [] : Array.from({ length: n }, (_, k) => Math.floor((k * data.size) / n));
    if (from) {
      for (const [i, p] of from.preds)
        this.preds.set(
          i,
          p.map((x) => ({ ...x })),
        );
      this.misclassified = from.misclassified;
      this.checked = from.checked;
      this.grid.push(...from.grid);
      this.maskSize = from.maskSize ? [from.maskSize[0], from.maskSize[1]] : null;
    }
  }

  state(): PictureState {
    return {
      preds: [...this.preds].map(([i, p]) => [i, [...p]] as const),
      misclassified: this.misclassified,
      checked: this.checked,
      grid: [...this.grid],
      maskSize: this.maskSize,
    };
  }

  /** simulateWindows' onOutputs. */
  readonly onOutputs = (window: number, outputs: ModelOutputs, b: StepBatch): void => {
    const slot = this.o.windows.findIndex((w) => w.index === window);
    if (slot < 0 || this.o.count === 0) return;
    const n = b.n;
    if (isGrid(this.o.task)) {
      const out = outputs[0];
      const per = out.data.length / n;
      const labels = this.data.labels;
      if (!labels || slot !== 0) return;
      for (let k = 0; k < n; k++) {
        const i = b.indices[k];
        const pred = topK(out.data, k * per, per, 1)[0];
        this.checked++;
        if (pred === labels[i]) continue;
        this.misclassified++;
        if (this.grid.length < this.o.count * GRID_PER_PICTURE) {
          this.grid.push(i);
          this.preds.set(i, [{ label: pred }]);
        }
      }
      return;
    }
    b.indices.forEach((i, k) => {
      if (!this.chosen.includes(i)) return;
      const list = this.preds.get(i) ?? [];
      list[slot] = this.predict(outputs, k);
      this.preds.set(i, list);
    });
  };

  /** One sample's prediction from a batch's outputs [n, …]. */
  private predict(outputs: ModelOutputs, k: number): PicturePrediction {
    const { dims, data } = outputs[0];
    const per = data.length / dims[0];
    if (isGrid(this.o.task)) return { label: topK(data, k * per, per, 1)[0] };
    if (this.o.task === 'segmentation') {
      const plane = dims.slice(2).reduce((a, b) => a * b, 1);
      this.maskSize = [dims[dims.length - 2], dims[dims.length - 1]];
      return { mask: runLengths(argmaxMask(data, k * per, dims[1], plane)) };
    }
    // As the scorer decodes (tasks/task.ts): the same head and thresholds, on this sample alone.
    this.head ??= headFor(outputs, this.data, this.o.detection);
    const one = outputs.map((o): ModelOutput => {
      const size = o.data.length / o.dims[0];
      return { name: o.name, dims: [1, ...o.dims.slice(1)], data: o.data.subarray(k * size, (k + 1) * size) };
    });
    const dets = this.head.decode(one, [0]).sort((a, b) => b.score - a.score);
    return {
      boxes: dets
        .filter((d) => d.score >= PICTURE_MIN_SCORE)
        .slice(0, MAX_BOXES)
        .map((d) => ({
          label: d.label,
          x: round(d.x, 2),
          y: round(d.y, 2),
          w: round(d.w, 2),
          h: round(d.h, 2),
          score: round(d.score, 3),
        })),
    };
  }

  /**
   * The record's pictures: the samples' images and ground truth read again (a few), and the
   * ANN's predictions when `ann` is given (its outputs for these indices, after its tail).
   */
  async finish(ann?: (indices: readonly number[]) => Promise<ModelOutputs>): Promise<Pictures | null> {
    const { task } = this.o;
    const indices = isGrid(task) ? this.grid : this.chosen.filter((i) => this.preds.has(i));
    const s = this.data.sampleShape;
    const [H, W] = [s[s.length - 2], s[s.length - 1]];
    // Keys in the order of the record's schema: a record read back renders the same page.
    const base = {
      task,
      width: W,
      height: H,
      ...(this.maskSize ? { maskWidth: this.maskSize[1], maskHeight: this.maskSize[0] } : {}),
      windows: this.o.windows.map((w) => ({ T: w.T, delay: w.delay })),
      ...(this.data.classes ? { classes: [...this.data.classes] } : {}),
      ...(task === 'detection' ? { minScore: PICTURE_MIN_SCORE } : {}),
      ...(isGrid(task) ? { misclassified: this.misclassified, checked: this.checked } : {}),
    };
    if (indices.length === 0) return { ...base, samples: [] };
    const read = await this.data.read(indices);
    const annOut = ann ? await ann(indices) : null;
    const per = s.reduce((a, b) => a * b, 1);
    const plane = this.data.maskShape ? this.data.maskShape.reduce((a, b) => a * b, 1) : 0;
    const samples = indices.map((i, k): PictureSample => {
      let truth: PicturePrediction;
      if (isGrid(task)) truth = { label: (this.data.labels as Int32Array)[i] };
      else if (task === 'segmentation')
        truth = { mask: runLengths((read.masks as Uint8Array).subarray(k * plane, (k + 1) * plane)) };
      else {
        const p = read.placements?.[k];
        truth = {
          boxes: (this.data.boxes ?? [])
            .filter((b) => b.image === i)
            .map((b) => {
              const [x0, y0] = p ? toInput(p, b.x, b.y) : [b.x, b.y];
              const [x1, y1] = p ? toInput(p, b.x + b.w, b.y + b.h) : [b.x + b.w, b.y + b.h];
              return {
                label: b.label,
                x: round(x0, 2),
                y: round(y0, 2),
                w: round(x1 - x0, 2),
                h: round(y1 - y0, 2),
                ...(b.crowd ? { crowd: true } : {}),
              };
            }),
        };
      }
      return {
        index: i,
        image: pictureUri(read.x, k * per, s, this.data.scale),
        truth,
        ann: annOut ? this.predict(annOut, k) : null,
        snn: this.preds.get(i) ?? [],
      };
    });
    return { ...base, samples };
  }
}

/**
 * The pictures of disjoint parts of a run (shards, in sample order) as those of one run: the
 * misclassified grid is the first ones over all parts, counts add; the chosen samples of
 * segmentation and detection fall each in its part and are put together in index order.
 */
export function mergePictures(parts: readonly Pictures[], count: number): Pictures {
  const [first] = parts;
  const mask = parts.find((p) => p.maskWidth !== undefined);
  const grid = isGrid(first.task);
  const samples = parts.flatMap((p) => p.samples);
  return {
    task: first.task,
    width: first.width,
    height: first.height,
    ...(mask ? { maskWidth: mask.maskWidth, maskHeight: mask.maskHeight } : {}),
    windows: first.windows,
    ...(first.classes ? { classes: first.classes } : {}),
    ...(first.minScore !== undefined ? { minScore: first.minScore } : {}),
    ...(grid
      ? {
          misclassified: parts.reduce((a, p) => a + (p.misclassified ?? 0), 0),
          checked: parts.reduce((a, p) => a + (p.checked ?? 0), 0),
        }
      : {}),
    samples: grid ? samples.slice(0, count * GRID_PER_PICTURE) : [...samples].sort((a, b) => a.index - b.index),
  };
}

function isGrid(task: Task): boolean {
  return task === 'classification' || task === 'video';
}

/**
 * One sample as a PNG data URI: [C, H, W] (or a clip's first frame of [C, F, H, W]) × scale,
 * 0..1 → 0..255 (values outside stretched to the sample's range); 3 channels as RGB, else the
 * first as gray; scaled down (nearest) to at most MAX_SIDE a side.
 */
export function pictureUri(x: ArrayLike<number>, offset: number, shape: readonly number[], scale: number): string {
  const [H, W] = [shape[shape.length - 2], shape[shape.length - 1]];
  const C = shape[0];
  const channelStride = shape.slice(1).reduce((a, b) => a * b, 1); // a clip's frame 0 is at the start of each channel
  const channels = C === 3 ? 3 : 1;
  const f = Math.ceil(Math.max(H, W) / MAX_SIDE);
  const [h, w] = [Math.ceil(H / f), Math.ceil(W / f)];
  let lo = Infinity;
  let hi = -Infinity;
  for (let c = 0; c < channels; c++) {
    for (let p = 0; p < H * W; p++) {
      const v = x[offset + c * channelStride + p] * scale;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  }
  const [from, span] = lo >= 0 && hi <= 1 ? [0, 1] : [lo, hi > lo ? hi - lo : 1];
  const px = new Uint8Array(h * w * channels);
  for (let y = 0; y < h; y++) {
    for (let xx = 0; xx < w; xx++) {
      for (let c = 0; c < channels; c++) {
        const v = (x[offset + c * channelStride + y * f * W + xx * f] * scale - from) / span;
        px[(y * w + xx) * channels + c] = Math.max(0, Math.min(255, Math.round(v * 255)));
      }
    }
  }
  return `data:image/png;base64,${Buffer.from(encodePng({ width: w, height: h, channels, data: px })).toString('base64')}`;
}
