/**
 * Detection heads: which outputs a detector has, and how they become boxes. RetinaNet and FCOS
 * are decoded as torchvision 0.14 decodes them (`postprocess_detections`): per pyramid level the
 * scores above a threshold, the best `topCandidates` of them, their boxes from the anchors (or
 * points) and the box coder, clipped to the image; then class-wise NMS over all levels and the
 * best `detectionsPerImage`, by score. The arithmetic is float32 where torchvision's is, so the
 * same head outputs give the same boxes, scores, labels and order (test/heads.test.ts checks it
 * against torchvision's own output). The CenterNet-style head of the bundled model is the third.
 *
 *   retinanet  cls_logits [n, HWA, C], bbox_regression [n, HWA, 4]; 9 anchors per position
 *              (sizes 32·2^(k/3) … 512·2^(k/3) on P3–P7, aspect ratios 0.5, 1, 2), box coder
 *              weights (1, 1, 1, 1), log-size deltas clipped at log(1000/16); score sigmoid(logit)
 *   fcos       cls_logits [n, HW, C], bbox_regression [n, HW, 4], bbox_ctrness [n, HW, 1]; one
 *              point per position (an anchor of the level's stride), the linear box coder
 *              (distances to the sides in units of the stride); score √(sigmoid(cls)·sigmoid(ctr))
 *   centernet  one output [n, C + 4, h, w] (tasks/detection.ts)
 *
 * Pyramid levels P3–P7 have strides 8, 16, 32, 64, 128: for an H×W input, level l's grid is
 * ⌈H/2^l⌉ × ⌈W/2^l⌉ (what torchvision's ResNet-FPN with its P6/P7 block makes) and its stride,
 * as torchvision's anchor generator computes it, ⌊H/grid_h⌋ × ⌊W/grid_w⌋.
 */
import { SpikeportError, optionError } from '../errors.js';
import { decode as decodeCenterNet, type Detection } from './detection.js';

export const HEADS = ['retinanet', 'fcos', 'centernet'] as const;
export type HeadKind = (typeof HEADS)[number];

/** How detections are made from a head's outputs; every field has a default per head (HEAD_DEFAULTS). */
export interface DetectionOptions {
  /** The head; default: recognised from the outputs' shapes (and names). */
  readonly head?: HeadKind;
  /** Keep scores above this (RetinaNet, FCOS: strictly above, as torchvision; CenterNet: at least). */
  readonly scoreThreshold?: number;
  /** Candidates kept per pyramid level, the best by score (RetinaNet, FCOS). */
  readonly topCandidates?: number;
  /** IoU above which NMS drops a lower-scoring box of the same class. */
  readonly nmsThreshold?: number;
  /** Detections kept per image, the best by score. */
  readonly detectionsPerImage?: number;
}

export interface ResolvedDetectionOptions {
  readonly scoreThreshold: number;
  readonly topCandidates: number;
  readonly nmsThreshold: number;
  readonly detectionsPerImage: number;
}

/** torchvision's defaults (RetinaNet, FCOS) and the bundled CenterNet's. */
export const HEAD_DEFAULTS: Readonly<Record<HeadKind, ResolvedDetectionOptions>> = {
  retinanet: { scoreThreshold: 0.05, topCandidates: 1000, nmsThreshold: 0.5, detectionsPerImage: 300 },
  fcos: { scoreThreshold: 0.2, topCandidates: 1000, nmsThreshold: 0.6, detectionsPerImage: 100 },
  centernet: { scoreThreshold: 0.05, topCandidates: 0, nmsThreshold: 0.5, detectionsPerImage: 100 },
};

/** Check the detection options (before any work); returns them. */
export function checkDetectionOptions(o: DetectionOptions): DetectionOptions {
  if (o.head !== undefined && !(HEADS as readonly string[]).includes(o.head))
    throw optionError('head', `"${String(o.head)}" is not a detection head (known: ${HEADS.join(', ')})`);
  for (const k of ['scoreThreshold', 'nmsThreshold'] as const) {
    const v = o[k];
    if (v !== undefined && !(typeof v === 'number' && v >= 0 && v <= 1))
      throw optionError(k, `must be a number from 0 to 1 (got ${String(v)})`);
  }
  for (const k of ['topCandidates', 'detectionsPerImage'] as const) {
    const v = o[k];
    if (v !== undefined && !(Number.isSafeInteger(v) && v >= 1 && v <= 1_000_000))
      throw optionError(k, `must be an integer from 1 to 1000000 (got ${String(v)})`);
  }
  return o;
}

/** A model output as the decoders see it: its name and dims (batch first). */
export interface OutputShape {
  readonly name: string;
  readonly dims: readonly number[];
}

/** The strides and grids of P3–P7 for an input of H×W, as torchvision's ResNet-FPN and anchor generator make them. */
export interface Level {
  readonly gridH: number;
  readonly gridW: number;
  readonly strideH: number;
  readonly strideW: number;
}

export function pyramidLevels(H: number, W: number): Level[] {
  const levels: Level[] = [];
  let [h, w] = [H, W];
  for (let l = 1; l <= 7; l++) {
    h = Math.ceil(h / 2);
    w = Math.ceil(w / 2);
    if (l >= 3) levels.push({ gridH: h, gridW: w, strideH: Math.floor(H / h), strideW: Math.floor(W / w) });
  }
  return levels;
}

const f32 = Math.fround;

/** Round half to even, as torch.round. */
function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** RetinaNet's sizes per level: 32·2^(k/3) … for k = 0, 1, 2, as Python's int() of the product. */
export function retinanetSizes(): number[][] {
  return [32, 64, 128, 256, 512].map((x) => [x, Math.trunc(x * 2 ** (1 / 3)), Math.trunc(x * 2 ** (2 / 3))]);
}

/** The zero-centred cell anchors [x1, y1, x2, y2] of one level (AnchorGenerator.generate_anchors, float32). */
export function cellAnchors(sizes: readonly number[], ratios: readonly number[]): Float32Array {
  const out = new Float32Array(sizes.length * ratios.length * 4);
  let k = 0;
  for (const ar of ratios) {
    const hRatio = f32(Math.sqrt(f32(ar)));
    const wRatio = f32(1 / hRatio);
    for (const s of sizes) {
      const ws = f32(wRatio * s);
      const hs = f32(hRatio * s);
      out[k++] = roundHalfEven(f32(-ws / 2));
      out[k++] = roundHalfEven(f32(-hs / 2));
      out[k++] = roundHalfEven(f32(ws / 2));
      out[k++] = roundHalfEven(f32(hs / 2));
    }
  }
  return out;
}

/** A head recognised on a model's outputs, ready to decode batches of them. */
export interface DetectionHead {
  readonly kind: HeadKind;
  readonly classes: number;
  readonly options: ResolvedDetectionOptions;
  /** The detections of a batch (its outputs in the order the model gives them), in input pixels; `images` names the n samples. */
  decode(
    outputs: readonly { readonly dims: readonly number[]; readonly data: Float32Array }[],
    images: readonly number[],
  ): Detection[];
}

/** One image's detections in corner form, as torchvision returns them (the order is its order). */
export interface CornerDetections {
  readonly boxes: Float32Array; // [k, 4] x1, y1, x2, y2
  readonly scores: Float32Array;
  readonly labels: Int32Array;
}

const shapeText = (o: readonly OutputShape[]): string => o.map((x) => `${x.name} [${x.dims.join(', ')}]`).join(', ');

/**
 * The head for these outputs of a model with an H×W input: `o.head` if given (checked), else the
 * one whose layout the outputs have. A one-line error when none fits.
 */
export function detectionHead(
  outputs: readonly OutputShape[],
  H: number,
  W: number,
  o: DetectionOptions = {},
): DetectionHead {
  const kinds: readonly HeadKind[] = o.head ? [o.head] : HEADS;
  const why: string[] = [];
  for (const kind of kinds) {
    const fit = fits(kind, outputs, H, W);
    if (typeof fit === 'string') {
      why.push(`${kind}: ${fit}`);
      continue;
    }
    const options: ResolvedDetectionOptions = {
      scoreThreshold: o.scoreThreshold ?? HEAD_DEFAULTS[kind].scoreThreshold,
      topCandidates: o.topCandidates ?? HEAD_DEFAULTS[kind].topCandidates,
      nmsThreshold: o.nmsThreshold ?? HEAD_DEFAULTS[kind].nmsThreshold,
      detectionsPerImage: o.detectionsPerImage ?? HEAD_DEFAULTS[kind].detectionsPerImage,
    };
    return makeHead(kind, fit, H, W, options);
  }
  throw new SpikeportError(
    o.head ? 'invalid-option' : 'unsupported-model',
    `detection: the outputs ${shapeText(outputs)} fit ${o.head ? `no ${o.head} head` : 'no detection head'} for a ${H}×${W} input (${why.join('; ')})`,
    o.head ? 'head' : undefined,
  );
}

/** Which output is which, and the number of classes; or why the outputs do not fit the head. */
interface Roles {
  readonly cls: number;
  readonly box: number;
  readonly ctr: number;
  readonly classes: number;
  readonly anchors: number;
}

function fits(kind: HeadKind, outputs: readonly OutputShape[], H: number, W: number): Roles | string {
  if (kind === 'centernet') {
    if (outputs.length !== 1) return `one output [n, C + 4, h, w], not ${outputs.length}`;
    const d = outputs[0].dims;
    if (d.length !== 4 || d[1] < 5) return `one output [n, C + 4, h, w] with C ≥ 1`;
    return { cls: 0, box: 0, ctr: -1, classes: d[1] - 4, anchors: 0 };
  }
  const want = kind === 'retinanet' ? 2 : 3;
  const names = kind === 'retinanet' ? 'cls_logits, bbox_regression' : 'cls_logits, bbox_regression, bbox_ctrness';
  if (outputs.length !== want || outputs.some((x) => x.dims.length !== 3))
    return `${want} outputs [n, positions, channels] (${names})`;
  const A = kind === 'retinanet' ? 9 : 1;
  const positions = pyramidLevels(H, W).reduce((a, l) => a + l.gridH * l.gridW, 0);
  const rows = positions * A;
  const bad = outputs.find((x) => x.dims[1] !== rows);
  if (bad)
    return `${rows} rows (${A > 1 ? `${A} anchors × ` : ''}${positions} positions of P3–P7), "${bad.name}" has ${bad.dims[1]}`;
  // Roles by name where names say (torchvision's), else by the channel counts, else in torchvision's order.
  const byName = (re: RegExp): number => outputs.findIndex((x) => re.test(x.name));
  let box = byName(/bbox_reg|regression|box/i);
  let ctr = kind === 'fcos' ? byName(/ctr|center/i) : -1;
  if (box < 0 || outputs[box].dims[2] !== 4) box = outputs.findIndex((x, i) => x.dims[2] === 4 && i !== ctr && i !== 0);
  if (box < 0) box = outputs.findIndex((x, i) => x.dims[2] === 4 && i !== ctr);
  if (kind === 'fcos' && (ctr < 0 || ctr === box || outputs[ctr].dims[2] !== 1))
    ctr = outputs.findIndex((x, i) => x.dims[2] === 1 && i !== box && i !== 0);
  if (kind === 'fcos' && ctr < 0) ctr = outputs.findIndex((x, i) => x.dims[2] === 1 && i !== box);
  if (box < 0) return 'a box regression output with 4 channels';
  if (kind === 'fcos' && ctr < 0) return 'a centerness output with 1 channel';
  const cls = outputs.findIndex((_, i) => i !== box && i !== ctr);
  const classes = outputs[cls].dims[2];
  if (classes < 1) return 'a classification output with at least 1 class';
  return { cls, box, ctr, classes, anchors: A };
}

function makeHead(kind: HeadKind, r: Roles, H: number, W: number, options: ResolvedDetectionOptions): DetectionHead {
  if (kind === 'centernet') {
    return {
      kind,
      classes: r.classes,
      options,
      decode(outputs, images) {
        const d = outputs[0].dims;
        return decodeCenterNet(outputs[0].data, d[0], d[2], d[3], images, {
          classes: r.classes,
          stride: W / d[3],
          minScore: options.scoreThreshold,
          maxDets: options.detectionsPerImage,
          nmsIou: options.nmsThreshold,
        });
      },
    };
  }
  const levels = pyramidLevels(H, W);
  const anchors = kind === 'retinanet' ? retinanetAnchors(levels) : fcosAnchors(levels);
  return {
    kind,
    classes: r.classes,
    options,
    decode(outputs, images) {
      const n = outputs[0].dims[0];
      const dets: Detection[] = [];
      for (let i = 0; i < n; i++) {
        const c = decodeImage(kind, outputs, r, i, levels, anchors, H, W, options);
        for (let k = 0; k < c.scores.length; k++) {
          const [x1, y1, x2, y2] = c.boxes.subarray(4 * k, 4 * k + 4);
          dets.push({ image: images[i], label: c.labels[k], score: c.scores[k], x: x1, y: y1, w: x2 - x1, h: y2 - y1 });
        }
      }
      return dets;
    },
  };
}

/** Anchors of every level, concatenated: [Σ HWA, 4] (AnchorGenerator.grid_anchors). */
function gridAnchors(levels: readonly Level[], cells: readonly Float32Array[]): Float32Array[] {
  return levels.map((l, li) => {
    const cell = cells[li];
    const A = cell.length / 4;
    const out = new Float32Array(l.gridH * l.gridW * A * 4);
    let k = 0;
    for (let y = 0; y < l.gridH; y++) {
      for (let x = 0; x < l.gridW; x++) {
        const sx = x * l.strideW;
        const sy = y * l.strideH;
        for (let a = 0; a < A; a++) {
          out[k++] = sx + cell[4 * a];
          out[k++] = sy + cell[4 * a + 1];
          out[k++] = sx + cell[4 * a + 2];
          out[k++] = sy + cell[4 * a + 3];
        }
      }
    }
    return out;
  });
}

function retinanetAnchors(levels: readonly Level[]): Float32Array[] {
  const sizes = retinanetSizes();
  return gridAnchors(
    levels,
    sizes.map((s) => cellAnchors(s, [0.5, 1, 2])),
  );
}

function fcosAnchors(levels: readonly Level[]): Float32Array[] {
  return gridAnchors(
    levels,
    [8, 16, 32, 64, 128].map((s) => cellAnchors([s], [1])),
  );
}

const sigmoid = (v: number): number => f32(1 / (1 + Math.exp(-v)));

/** torch.clamp(log(1000/16)) in float32. */
const BBOX_CLIP = f32(Math.log(1000 / 16));

/**
 * One image's detections, as torchvision's postprocess_detections makes them: per level, the
 * scores above the threshold, the top candidates, their boxes clipped to the image; then
 * class-wise NMS and the best detections by score.
 */
export function decodeImage(
  kind: 'retinanet' | 'fcos',
  outputs: readonly { readonly dims: readonly number[]; readonly data: Float32Array }[],
  r: Pick<Roles, 'cls' | 'box' | 'ctr' | 'classes'>,
  image: number,
  levels: readonly Level[],
  anchors: readonly Float32Array[],
  H: number,
  W: number,
  o: ResolvedDetectionOptions,
): CornerDetections {
  const C = r.classes;
  const cls = outputs[r.cls];
  const rows = cls.dims[1];
  const logits = cls.data.subarray(image * rows * C, (image + 1) * rows * C);
  const box = outputs[r.box].data.subarray(image * rows * 4, (image + 1) * rows * 4);
  const ctr = r.ctr >= 0 ? outputs[r.ctr].data.subarray(image * rows, (image + 1) * rows) : null;
  const thr = f32(o.scoreThreshold);
  // A logit below this cannot pass the threshold (sigmoid is monotone; a margin for float32 rounding).
  const logitFloor = thr > 0 && thr < 1 ? Math.log(thr / (1 - thr)) - 1e-4 : -Infinity;
  const boxes: number[] = [];
  const scores: number[] = [];
  const labels: number[] = [];
  let row0 = 0;
  levels.forEach((_, li) => {
    const A = anchors[li];
    const count = A.length / 4;
    const cand: { idx: number; score: number }[] = [];
    for (let a = 0; a < count; a++) {
      const row = row0 + a;
      const ctrSig = ctr ? sigmoid(ctr[row]) : 1;
      for (let c = 0; c < C; c++) {
        const v = logits[row * C + c];
        if (!ctr && !(v > logitFloor)) continue;
        const s = ctr ? f32(Math.sqrt(f32(sigmoid(v) * ctrSig))) : sigmoid(v);
        if (s > thr) cand.push({ idx: a * C + c, score: s });
      }
    }
    // topk: the best by score (ties: the earlier index first).
    cand.sort((p, q) => q.score - p.score || p.idx - q.idx);
    for (const { idx, score } of cand.slice(0, o.topCandidates)) {
      const a = Math.floor(idx / C);
      const code = box.subarray((row0 + a) * 4, (row0 + a) * 4 + 4);
      const [x1, y1, x2, y2] = A.subarray(4 * a, 4 * a + 4);
      const b = kind === 'retinanet' ? decodeDelta(code, x1, y1, x2, y2) : decodeLinear(code, x1, y1, x2, y2);
      boxes.push(clamp(b[0], W), clamp(b[1], H), clamp(b[2], W), clamp(b[3], H));
      scores.push(score);
      labels.push(idx % C);
    }
    row0 += count;
  });
  const keep = batchedNms(boxes, scores, labels, o.nmsThreshold).slice(0, o.detectionsPerImage);
  return {
    boxes: Float32Array.from(keep.flatMap((k) => boxes.slice(4 * k, 4 * k + 4))),
    scores: Float32Array.from(keep.map((k) => scores[k])),
    labels: Int32Array.from(keep.map((k) => labels[k])),
  };
}

const clamp = (v: number, hi: number): number => Math.min(Math.max(v, 0), hi);

/** BoxCoder.decode_single with weights (1, 1, 1, 1), float32. */
function decodeDelta(code: ArrayLike<number>, x1: number, y1: number, x2: number, y2: number): number[] {
  const w = f32(x2 - x1);
  const h = f32(y2 - y1);
  const cx = f32(x1 + f32(0.5 * w));
  const cy = f32(y1 + f32(0.5 * h));
  const dw = Math.min(code[2], BBOX_CLIP);
  const dh = Math.min(code[3], BBOX_CLIP);
  const px = f32(f32(code[0] * w) + cx);
  const py = f32(f32(code[1] * h) + cy);
  const pw = f32(f32(Math.exp(dw)) * w);
  const ph = f32(f32(Math.exp(dh)) * h);
  const hw = f32(0.5 * pw);
  const hh = f32(0.5 * ph);
  return [f32(px - hw), f32(py - hh), f32(px + hw), f32(py + hh)];
}

/** BoxLinearCoder.decode with normalize_by_size, float32. */
function decodeLinear(code: ArrayLike<number>, x1: number, y1: number, x2: number, y2: number): number[] {
  const cx = f32(0.5 * f32(x1 + x2));
  const cy = f32(0.5 * f32(y1 + y2));
  const w = f32(x2 - x1);
  const h = f32(y2 - y1);
  return [
    f32(cx - f32(code[0] * w)),
    f32(cy - f32(code[1] * h)),
    f32(cx + f32(code[2] * w)),
    f32(cy + f32(code[3] * h)),
  ];
}

/**
 * Class-wise greedy NMS (torchvision's batched_nms): boxes by score, highest first (ties: the
 * earlier first); a box is dropped when its IoU with a kept box of its class exceeds `iou`.
 * Returns the kept indices, highest score first. Up to 1000 boxes torchvision moves each class
 * to its own region (coordinates + label·(max + 1), in float32) and runs one NMS; the same
 * shift is made here, so IoUs round as there.
 */
export function batchedNms(
  boxes: readonly number[],
  scores: readonly number[],
  labels: readonly number[],
  iou: number,
): number[] {
  let b: ArrayLike<number> = boxes;
  if (boxes.length > 0 && boxes.length <= 4000) {
    const max = boxes.reduce((m, v) => Math.max(m, v), -Infinity);
    const step = f32(max + 1);
    b = Float32Array.from(boxes, (v, k) => f32(v + f32(labels[k >> 2] * step)));
  }
  const order = scores.map((_, i) => i).sort((p, q) => scores[q] - scores[p] || p - q);
  const kept = new Map<number, number[]>();
  const out: number[] = [];
  const area = (i: number): number => f32(f32(b[4 * i + 2] - b[4 * i]) * f32(b[4 * i + 3] - b[4 * i + 1]));
  for (const i of order) {
    const same = kept.get(labels[i]) ?? [];
    const ai = area(i);
    let drop = false;
    for (const j of same) {
      const w = Math.max(0, f32(Math.min(b[4 * i + 2], b[4 * j + 2]) - Math.max(b[4 * i], b[4 * j])));
      const h = Math.max(0, f32(Math.min(b[4 * i + 3], b[4 * j + 3]) - Math.max(b[4 * i + 1], b[4 * j + 1])));
      const inter = f32(w * h);
      if (f32(inter / f32(f32(area(j) + ai) - inter)) > iou) {
        drop = true;
        break;
      }
    }
    if (drop) continue;
    same.push(i);
    kept.set(labels[i], same);
    out.push(i);
  }
  return out;
}
