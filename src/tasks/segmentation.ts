/**
 * Semantic segmentation: per-pixel argmax of the class scores, a confusion matrix over all
 * pixels of all images (pixels labelled `ignore` are skipped), mIoU = mean over classes that
 * occur (in labels or predictions) of TP / (TP + FP + FN) — as torchvision's and mmseg's
 * references compute it over a whole data set.
 */
import { SpikeportError } from '../errors.js';

export class ConfusionMatrix {
  readonly counts: Float64Array;

  constructor(
    readonly classes: number,
    readonly ignore = 255,
  ) {
    this.counts = new Float64Array(classes * classes);
  }

  /** scores [n, C, ...spatial] (C = classes), labels [n, ...spatial]. */
  add(scores: ArrayLike<number>, labels: ArrayLike<number>, n: number): void {
    const C = this.classes;
    const plane = labels.length / n;
    if (scores.length !== n * C * plane)
      throw new Error(`segmentation: scores have ${scores.length} values, expected ${n}×${C}×${plane}`);
    for (let i = 0; i < n; i++) {
      const base = i * C * plane;
      for (let p = 0; p < plane; p++) {
        const truth = labels[i * plane + p];
        if (truth === this.ignore) continue;
        if (truth >= C)
          throw new SpikeportError(
            'invalid-data',
            `segmentation: a mask holds class ${truth}, but the model scores ${C} classes (0..${C - 1}; ${this.ignore} = ignore)`,
          );
        let best = 0;
        let bestV = scores[base + p];
        for (let c = 1; c < C; c++) {
          const v = scores[base + c * plane + p];
          if (v > bestV) {
            bestV = v;
            best = c;
          }
        }
        this.counts[truth * C + best]++;
      }
    }
  }

  /** Per class IoU (NaN where the class never occurs). */
  iou(): number[] {
    const C = this.classes;
    return Array.from({ length: C }, (_, c) => {
      const tp = this.counts[c * C + c];
      let row = 0;
      let col = 0;
      for (let k = 0; k < C; k++) {
        row += this.counts[c * C + k];
        col += this.counts[k * C + c];
      }
      const union = row + col - tp;
      return union > 0 ? tp / union : NaN;
    });
  }

  miou(): number {
    const v = this.iou().filter((x) => !Number.isNaN(x));
    return v.length ? v.reduce((a, b) => a + b, 0) / v.length : 0;
  }

  pixelAccuracy(): number {
    let tp = 0;
    let total = 0;
    for (let c = 0; c < this.classes; c++) tp += this.counts[c * this.classes + c];
    for (const v of this.counts) total += v;
    return total > 0 ? tp / total : 0;
  }
}
