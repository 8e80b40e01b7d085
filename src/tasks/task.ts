/**
 * One interface over the tasks (docs/algorithm.md §7): a scorer takes the model outputs of each readout window
 * (after the tail), batch by batch, and gives each window's main metric and a second one.
 *
 *   classification  top-1, top-5          video  clip top-1, clip top-5
 *   segmentation    mIoU, pixel accuracy  detection  mAP@[.50:.95], mAP@.50 (COCO)
 */
import type { Dataset } from '../data/dataset.js';
import { toOriginal, type Placement } from '../data/preprocess.js';
import { SpikeportError } from '../errors.js';
import { TopKCounter } from './classification.js';
import { ConfusionMatrix } from './segmentation.js';
import { decode, meanAveragePrecision, type Detection } from './detection.js';

export const TASKS = ['classification', 'segmentation', 'detection', 'video'] as const;
export type Task = (typeof TASKS)[number];

export const METRIC_NAMES: Readonly<Record<Task, readonly [string, string]>> = {
  classification: ['top-1', 'top-5'],
  video: ['clip top-1', 'clip top-5'],
  segmentation: ['mIoU', 'pixel accuracy'],
  detection: ['mAP@[.50:.95]', 'mAP@.50'],
};

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

export interface Scorer {
  /** outputs: one window's model outputs for a batch, [n, ...]; batch: its samples (and masks). */
  add(window: number, outputs: Float32Array, dims: readonly number[], batch: Targets): void;
  scores(): Score[];
}

/** The task a data set is for, unless the user says: masks → segmentation, boxes → detection, clips → video. */
export function inferTask(d: Dataset, given?: Task): Task {
  if (given) return given;
  if (d.maskShape) return 'segmentation';
  if (d.boxes) return 'detection';
  if (d.sampleShape.length === 4) return 'video';
  return 'classification';
}

export function makeScorer(task: Task, windows: number, data: Dataset): Scorer {
  switch (task) {
    case 'classification':
    case 'video': return topK(windows, data);
    case 'segmentation': return segmentation(windows, data);
    case 'detection': return detection(windows, data);
  }
}

function topK(windows: number, data: Dataset): Scorer {
  const labels = data.labels;
  if (!labels) throw new SpikeportError('invalid-data', `data set ${data.name} has no labels; accuracy needs them`);
  const counter = new TopKCounter(windows);
  return {
    add(w, outputs, dims, { indices }) {
      const classes = dims.slice(1).reduce((a, b) => a * b, 1);
      const y = Int32Array.from(indices, (i) => labels[i]);
      const bad = y.find((l) => l < 0 || l >= classes);
      if (bad !== undefined) throw new SpikeportError('invalid-data', `data set ${data.name} has the label ${bad}, but the model scores ${classes} classes (0..${classes - 1})`);
      counter.add(w, outputs, dims[0], y);
    },
    scores: () => counter.scores().map((s) => ({ metric: s.top1, secondary: s.top5 })),
  };
}

function segmentation(windows: number, data: Dataset): Scorer {
  const shape = data.maskShape;
  if (!shape) throw new SpikeportError('invalid-data', `data set ${data.name} has no per-pixel labels (masks); segmentation needs them`);
  const plane = shape.reduce((a, b) => a * b, 1);
  let cms: ConfusionMatrix[] | null = null;
  return {
    add(w, outputs, dims, { indices, masks }) {
      const spatial = dims.slice(2).reduce((a, b) => a * b, 1);
      if (spatial !== plane) throw new SpikeportError('invalid-data', `segmentation: the model outputs ${dims.slice(2).join('x')} per class but the masks are ${shape.join('x')}`);
      if (!masks || masks.length !== indices.length * plane) throw new Error(`segmentation: the batch of ${indices.length} samples came without its masks`);
      cms ??= Array.from({ length: windows }, () => new ConfusionMatrix(dims[1]));
      cms[w].add(outputs, masks, indices.length);
    },
    scores: () => (cms ?? []).map((cm) => ({ metric: cm.miou(), secondary: cm.pixelAccuracy() })),
  };
}

function detection(windows: number, data: Dataset): Scorer {
  const boxes = data.boxes;
  if (!boxes) throw new SpikeportError('invalid-data', `data set ${data.name} has no boxes; detection needs them`);
  const found: Detection[][] = Array.from({ length: windows }, () => []);
  const seen = new Set<number>();
  let classes = 0;
  return {
    add(w, outputs, dims, { indices, placements }) {
      if (dims.length !== 4 || dims[1] < 5) throw new SpikeportError('invalid-data', `detection: expected a head [n, classes + 4, h, w], got ${dims.join('x')}`);
      if (classes !== dims[1] - 4) {
        classes = dims[1] - 4;
        const bad = boxes.find((b) => b.label < 0 || b.label >= classes);
        if (bad !== undefined) throw new SpikeportError('invalid-data', `data set ${data.name} has a box of class ${bad.label}, but the model's head scores ${classes} classes (0..${classes - 1})`);
      }
      const stride = data.sampleShape[data.sampleShape.length - 1] / dims[3];
      const dets = decode(outputs, dims[0], dims[2], dims[3], indices, { classes, stride });
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
    scores: () => {
      const gts = boxes.filter((b) => seen.has(b.image));
      return found.map((dets) => {
        const r = meanAveragePrecision(dets, gts, classes);
        return { metric: r.map, secondary: r.map50 };
      });
    },
  };
}
