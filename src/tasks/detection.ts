/**
 * Object detection: decoding a CenterNet-style head, non-maximum suppression, and COCO's mAP.
 *
 * Head layout (one tensor, [n, C + 4, h, w], the model's readout or its output): channels 0..C−1
 * are class heat-map logits, C..C+1 the box width and height in units of the stride, C+2..C+3
 * the centre offset within the cell. The same decode + NMS runs on the ANN's output and on the
 * SNN's averaged output.
 *
 * mAP follows COCO (pycocotools' COCOeval, bbox, area "all"): per IoU threshold 0.50:0.05:0.95
 * and per class, detections sorted by score (at most `maxDets` per image) are matched greedily to
 * the unmatched ground truth of highest IoU ≥ threshold; precision is made monotone and read at
 * 101 recall points; AP is averaged over classes that have ground truth, then over thresholds.
 * Crowd regions (DetectionBox.crowd) are COCO's ignore regions: detections matched to them are
 * left out, and they are not ground truth to find.
 */
import type { DetectionBox } from '../data/dataset.js';

export interface Detection {
  readonly image: number;
  readonly label: number;
  readonly score: number;
  readonly x: number;
  readonly y: number;
  readonly w: number;
  readonly h: number;
}

export interface DecodeOptions {
  readonly classes: number;
  /** Input pixels per output cell. */
  readonly stride: number;
  /** Keep peaks scoring at least this (after the sigmoid). */
  readonly minScore?: number;
  /** Detections kept per image. */
  readonly maxDets?: number;
  /** IoU above which a lower-scoring box of the same class is suppressed. */
  readonly nmsIou?: number;
}

type Box = Pick<DetectionBox, 'x' | 'y' | 'w' | 'h'>;

export function iou(a: Box, b: Box): number {
  const ix = Math.max(0, Math.min(a.x + a.w, b.x + b.w) - Math.max(a.x, b.x));
  const iy = Math.max(0, Math.min(a.y + a.h, b.y + b.h) - Math.max(a.y, b.y));
  const inter = ix * iy;
  const union = a.w * a.h + b.w * b.h - inter;
  return union > 0 ? inter / union : 0;
}

/** Greedy class-wise NMS: keep the highest score, drop same-class boxes overlapping it by > iouMax. */
export function nms(dets: readonly Detection[], iouMax: number): Detection[] {
  const sorted = [...dets].sort((a, b) => b.score - a.score);
  const kept: Detection[] = [];
  for (const d of sorted) {
    if (kept.every((k) => k.label !== d.label || k.image !== d.image || iou(k, d) <= iouMax)) kept.push(d);
  }
  return kept;
}

const sigmoid = (v: number): number => 1 / (1 + Math.exp(-v));

/** Heat-map peaks (3×3 local maxima) → boxes, then NMS; `head` is [n, C+4, h, w]; `images` names the n images. */
export function decode(
  head: ArrayLike<number>,
  n: number,
  h: number,
  w: number,
  images: readonly number[],
  o: DecodeOptions,
): Detection[] {
  const C = o.classes;
  const plane = h * w;
  const per = (C + 4) * plane;
  if (head.length !== n * per)
    throw new Error(`detection: head has ${head.length} values, expected ${n}×${C + 4}×${h}×${w}`);
  const minScore = o.minScore ?? 0.05;
  const out: Detection[] = [];
  for (let i = 0; i < n; i++) {
    const base = i * per;
    const found: Detection[] = [];
    for (let c = 0; c < C; c++) {
      const hm = base + c * plane;
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          const v = head[hm + y * w + x];
          const score = sigmoid(v);
          if (score < minScore) continue;
          let peak = true;
          for (let dy = -1; dy <= 1 && peak; dy++) {
            for (let dx = -1; dx <= 1; dx++) {
              const yy = y + dy;
              const xx = x + dx;
              if ((dy || dx) && yy >= 0 && yy < h && xx >= 0 && xx < w && head[hm + yy * w + xx] > v) {
                peak = false;
                break;
              }
            }
          }
          if (!peak) continue;
          const at = (ch: number): number => head[base + (C + ch) * plane + y * w + x];
          const bw = Math.max(0, at(0)) * o.stride;
          const bh = Math.max(0, at(1)) * o.stride;
          const cx = (x + at(2)) * o.stride;
          const cy = (y + at(3)) * o.stride;
          found.push({ image: images[i], label: c, score, x: cx - bw / 2, y: cy - bh / 2, w: bw, h: bh });
        }
      }
    }
    out.push(...nms(found, o.nmsIou ?? 0.5).slice(0, o.maxDets ?? 100));
  }
  return out;
}

export const COCO_IOUS = Array.from({ length: 10 }, (_, i) => 0.5 + 0.05 * i);

/** A detection's overlap with a crowd region: intersection over the detection's area (as COCO). */
export function crowdOverlap(d: Box, crowd: Box): number {
  const ix = Math.max(0, Math.min(d.x + d.w, crowd.x + crowd.w) - Math.max(d.x, crowd.x));
  const iy = Math.max(0, Math.min(d.y + d.h, crowd.y + crowd.h) - Math.max(d.y, crowd.y));
  const area = d.w * d.h;
  return area > 0 ? (ix * iy) / area : 0;
}

/**
 * One class's detections (by score) and, for each, the boxes it can ever match: those of its
 * image with IoU (crowd regions: crowdOverlap) of at least the lowest threshold, in the order
 * matching tries them (per image the boxes to find first, then the crowd regions, as COCO sorts
 * the ignored last). Worked out once for all ten thresholds: a detection is compared with every
 * box of its image once, not ten times.
 */
interface ClassMatches {
  readonly real: number;
  readonly boxes: readonly DetectionBox[];
  readonly sorted: readonly Detection[];
  /** Per detection: [box index, overlap] pairs, in the order of `boxes`. */
  readonly cands: readonly (readonly number[])[];
}

function classMatches(dets: readonly Detection[], gts: readonly DetectionBox[], lowest: number): ClassMatches {
  const boxes = [...gts.filter((b) => !b.crowd), ...gts.filter((b) => b.crowd)];
  const real = boxes.length - gts.filter((b) => b.crowd).length;
  const byImage = groupBy(
    boxes.map((box, j) => j),
    (j) => boxes[j].image,
  );
  const sorted = [...dets].sort((a, b) => b.score - a.score);
  const floor = Math.min(lowest, 1 - 1e-10);
  const cands = sorted.map((d) => {
    const out: number[] = [];
    for (const j of byImage.get(d.image) ?? []) {
      const g = boxes[j];
      const v = g.crowd ? crowdOverlap(d, g) : iou(d, g);
      if (v >= floor) out.push(j, v);
    }
    return out;
  });
  return { real, boxes, sorted, cands };
}

/**
 * AP of one class at one IoU threshold (101-point interpolation); null if the class has no
 * ground truth to find (crowd regions do not count). A detection is matched to the unmatched
 * ground truth of highest IoU ≥ t; failing that, to the crowd region it overlaps most (overlap
 * = crowdOverlap ≥ t; a crowd takes any number of detections), and is then left out: neither
 * found nor false.
 */
function averagePrecision(m: ClassMatches, t: number): number | null {
  const { real, boxes, sorted, cands } = m;
  if (real === 0) return null;
  const used = new Uint8Array(boxes.length);
  const tp = new Float64Array(sorted.length);
  const ignored = new Uint8Array(sorted.length);
  for (let k = 0; k < sorted.length; k++) {
    const c = cands[k];
    let best = -1;
    let bestIou = Math.min(t, 1 - 1e-10);
    for (let i = 0; i < c.length; i += 2) {
      const j = c[i];
      const crowd = boxes[j].crowd === true;
      if (used[j] && !crowd) continue;
      // A box to find was matched: crowd regions come after and do not compete.
      if (best >= 0 && !boxes[best].crowd && crowd) break;
      if (c[i + 1] >= bestIou) {
        bestIou = c[i + 1];
        best = j;
      }
    }
    if (best < 0) continue;
    if (boxes[best].crowd) ignored[k] = 1;
    else {
      used[best] = 1;
      tp[k] = 1;
    }
  }
  const precision: number[] = [];
  const recall: number[] = [];
  let ctp = 0;
  let counted = 0;
  sorted.forEach((_, k) => {
    if (ignored[k]) return;
    ctp += tp[k];
    counted++;
    precision.push(ctp / counted);
    recall.push(ctp / real);
  });
  for (let k = precision.length - 2; k >= 0; k--) precision[k] = Math.max(precision[k], precision[k + 1]);
  // Recall never falls as detections are added: one pass finds the first k reaching each point.
  let sum = 0;
  let k = 0;
  for (let r = 0; r <= 100; r++) {
    const target = r / 100;
    while (k < recall.length && recall[k] < target - 1e-12) k++;
    sum += k < recall.length ? precision[k] : 0;
  }
  return sum / 101;
}

/** Items grouped by a key, each group in the items' order (linear: no list is copied). */
function groupBy<T>(items: readonly T[], key: (x: T) => number): Map<number, T[]> {
  const out = new Map<number, T[]>();
  for (const x of items) {
    const list = out.get(key(x));
    if (list) list.push(x);
    else out.set(key(x), [x]);
  }
  return out;
}

export interface MapResult {
  /** mAP over IoU 0.50:0.05:0.95. */
  readonly map: number;
  readonly map50: number;
  readonly map75: number;
  /** Per class AP over IoU 0.50:0.95 (null: no ground truth). */
  readonly perClass: readonly (number | null)[];
}

/** COCO mAP of detections against ground truth; `maxDets` per image by score. */
export function meanAveragePrecision(
  dets: readonly Detection[],
  gts: readonly DetectionBox[],
  classes: number,
  maxDets = 100,
): MapResult {
  const kept: Detection[] = [];
  for (const list of groupBy(dets, (d) => d.image).values())
    for (const d of list.sort((a, b) => b.score - a.score).slice(0, maxDets)) kept.push(d);
  const detsOf = groupBy(kept, (d) => d.label);
  const gtsOf = groupBy(gts, (g) => g.label);
  const lowest = Math.min(...COCO_IOUS);
  const matches = Array.from({ length: classes }, (_, c) =>
    classMatches(detsOf.get(c) ?? [], gtsOf.get(c) ?? [], lowest),
  );
  const table = COCO_IOUS.map((t) => matches.map((m) => averagePrecision(m, t)));
  const meanOf = (xs: readonly (number | null)[]): number => {
    const v = xs.filter((x): x is number => x !== null);
    return v.length ? v.reduce((a, b) => a + b, 0) / v.length : 0;
  };
  const perT = table.map(meanOf);
  return {
    map: perT.reduce((a, b) => a + b, 0) / perT.length,
    map50: perT[0],
    map75: perT[5],
    perClass: Array.from({ length: classes }, (_, c) =>
      table[0][c] === null ? null : meanOf(table.map((row) => row[c])),
    ),
  };
}
