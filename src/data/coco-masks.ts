/**
 * COCO segmentations as per-pixel class maps, computed as pycocotools computes them and as
 * torchvision's segmentation reference merges them:
 *
 * - A polygon is rasterised through run-length encoding the way pycocotools' `frPoly` does it:
 *   vertices scaled by 5 and rounded (C's truncating cast of x·5 + 0.5), the boundary walked
 *   point by point on that finer grid, and a pixel column toggled where the boundary crosses
 *   its centre; the toggles sorted into runs. In effect a pixel is inside when its centre is.
 * - RLE comes as a list of counts or as pycocotools' compressed string (6 bits per character,
 *   characters 48–111, each count after the third stored as a difference to the count two
 *   before). Counts run down the columns (column-major), first a run of 0s.
 * - An object is the union of its polygons. The class map holds each pixel's object class; a
 *   pixel covered by two or more objects is 255 (ignored), as torchvision's
 *   `ConvertCocoPolysToMask` does; crowd regions are objects like the others there.
 *
 * Input is checked first (everything here may come from a downloaded file): counts must be
 * non-negative integers that sum to the image, an RLE's size must be the image's, a polygon
 * needs at least three vertices, finite and within the image (one pixel of slack).
 */
import { SpikeportError } from '../errors.js';

/** A vertex may lie this many pixels outside the image (annotation tools round to the border). */
export const POLYGON_SLACK = 1;

/** One annotation's segmentation, checked: polygons (x, y pairs) or RLE counts (column-major). */
export type Segmentation =
  | { readonly kind: 'polygons'; readonly polygons: readonly Float64Array[] }
  | { readonly kind: 'rle'; readonly counts: Uint32Array };

function bad(where: string, what: string): SpikeportError {
  return new SpikeportError('invalid-data', `${where} ${what}`);
}

/**
 * Decode pycocotools' compressed RLE string: each count in 5-bit groups, low first, a group's
 * 0x20 bit saying another follows and the last group's 0x10 bit its sign; from the fourth count
 * on, the value is the difference to the count two before.
 */
export function rleFromString(s: string, where: string): number[] {
  const counts: number[] = [];
  let p = 0;
  while (p < s.length) {
    let x = 0;
    let k = 0;
    let more = true;
    while (more) {
      if (p >= s.length) throw bad(where, 'has a compressed RLE string that ends inside a count');
      const c = s.charCodeAt(p) - 48;
      if (c < 0 || c > 63)
        throw bad(where, `has a compressed RLE string with the character "${s[p]}" (only ASCII 48–111 are used)`);
      // Seven groups carry 35 bits, more than any count of an image: a longer run is not a count.
      if (k === 7) throw bad(where, 'has a compressed RLE string with a count longer than 7 characters');
      x += (c & 0x1f) * 2 ** (5 * k);
      more = (c & 0x20) !== 0;
      p++;
      k++;
      if (!more && c & 0x10) x -= 2 ** (5 * k);
    }
    if (counts.length > 2) x += counts[counts.length - 2];
    if (x < 0) throw bad(where, `has a compressed RLE string whose count ${counts.length + 1} is negative`);
    counts.push(x);
  }
  return counts;
}

/** Encode counts as pycocotools' compressed string (the inverse of rleFromString). */
export function rleToString(counts: readonly number[]): string {
  let s = '';
  for (let i = 0; i < counts.length; i++) {
    let x = counts[i] - (i > 2 ? counts[i - 2] : 0);
    let more = true;
    while (more) {
      let c = ((x % 32) + 32) % 32; // the low 5 bits of x in two's complement
      x = Math.floor(x / 32); // an arithmetic shift
      more = c & 0x10 ? x !== -1 : x !== 0;
      if (more) c |= 0x20;
      s += String.fromCharCode(c + 48);
    }
  }
  return s;
}

/** C's (int) cast of a double: towards zero. */
const trunc = Math.trunc;

/**
 * pycocotools' `rleFrPoly`: the RLE counts (column-major) of one polygon on an h × w image.
 * `xy` holds x0, y0, x1, y1, …
 */
export function rleFromPolygon(xy: ArrayLike<number>, h: number, w: number): number[] {
  const k = Math.floor(xy.length / 2);
  const scale = 5;
  const x = new Int32Array(k + 1);
  const y = new Int32Array(k + 1);
  for (let j = 0; j < k; j++) x[j] = trunc(scale * xy[2 * j] + 0.5);
  for (let j = 0; j < k; j++) y[j] = trunc(scale * xy[2 * j + 1] + 0.5);
  x[k] = x[0];
  y[k] = y[0];
  let m = 0;
  for (let j = 0; j < k; j++) m += Math.max(Math.abs(x[j] - x[j + 1]), Math.abs(y[j] - y[j + 1])) + 1;
  // The boundary, point by point on the 5× grid.
  const u = new Int32Array(m);
  const v = new Int32Array(m);
  m = 0;
  for (let j = 0; j < k; j++) {
    let xs = x[j];
    let xe = x[j + 1];
    let ys = y[j];
    let ye = y[j + 1];
    const dx = Math.abs(xe - xs);
    const dy = Math.abs(ys - ye);
    const flip = (dx >= dy && xs > xe) || (dx < dy && ys > ye);
    if (flip) {
      [xs, xe] = [xe, xs];
      [ys, ye] = [ye, ys];
    }
    const s = dx >= dy ? (ye - ys) / dx : (xe - xs) / dy;
    if (dx >= dy) {
      for (let d = 0; d <= dx; d++) {
        const t = flip ? dx - d : d;
        u[m] = t + xs;
        v[m] = trunc(ys + s * t + 0.5);
        m++;
      }
    } else {
      for (let d = 0; d <= dy; d++) {
        const t = flip ? dy - d : d;
        v[m] = t + ys;
        u[m] = trunc(xs + s * t + 0.5);
        m++;
      }
    }
  }
  // Where the boundary crosses a pixel column's centre: that column toggles at the row below.
  const toggles: number[] = [];
  for (let j = 1; j < m; j++) {
    if (u[j] === u[j - 1]) continue;
    let xd = u[j] < u[j - 1] ? u[j] : u[j] - 1;
    xd = (xd + 0.5) / scale - 0.5;
    if (Math.floor(xd) !== xd || xd < 0 || xd > w - 1) continue;
    let yd = v[j] < v[j - 1] ? v[j] : v[j - 1];
    yd = (yd + 0.5) / scale - 0.5;
    yd = Math.ceil(yd < 0 ? 0 : yd > h ? h : yd);
    toggles.push(xd * h + yd);
  }
  toggles.push(h * w);
  toggles.sort((a, b) => a - b);
  // Toggle positions → run lengths; a zero-length run (two toggles at one place) cancels out.
  let prev = 0;
  for (let j = 0; j < toggles.length; j++) {
    const t = toggles[j];
    toggles[j] -= prev;
    prev = t;
  }
  const counts: number[] = [toggles[0]];
  for (let j = 1; j < toggles.length;) {
    if (toggles[j] > 0) counts.push(toggles[j++]);
    else {
      j++;
      if (j < toggles.length) counts[counts.length - 1] += toggles[j++];
    }
  }
  return counts;
}

/** Set `value` where the RLE (column-major counts over h × w) is 1, in a row-major h × w mask. */
export function paintRle(counts: ArrayLike<number>, h: number, w: number, mask: Uint8Array, value = 1): void {
  let pos = 0;
  for (let j = 0; j < counts.length; j++) {
    const end = pos + counts[j];
    if (j % 2 === 1) {
      let col = Math.floor(pos / h);
      let row = pos - col * h;
      for (let q = pos; q < end; q++) {
        mask[row * w + col] = value;
        if (++row === h) {
          row = 0;
          col++;
        }
      }
    }
    pos = end;
  }
}

function isNumberArray(v: unknown): v is number[] {
  return Array.isArray(v) && v.every((x) => typeof x === 'number');
}

/**
 * Check an annotation's `segmentation` for an h × w image (`where` names it in messages) and
 * return it parsed. pycocotools reads a list of polygons, or {counts, size} with counts a list
 * or a compressed string.
 */
export function parseSegmentation(seg: unknown, h: number, w: number, where: string): Segmentation {
  if (Array.isArray(seg)) {
    if (seg.length === 0) throw bad(where, 'is an empty list (expected polygons [[x, y, x, y, …], …])');
    const polygons = seg.map((p, i) => {
      const at = `${where}[${i}]`;
      if (!isNumberArray(p)) throw bad(at, 'is not a list of numbers (a polygon x0, y0, x1, y1, …)');
      if (p.length % 2 !== 0) throw bad(at, `has ${p.length} numbers; a polygon takes x, y pairs`);
      if (p.length < 6) throw bad(at, `has ${p.length / 2} vertices; a polygon needs at least 3`);
      for (let j = 0; j < p.length; j += 2) {
        const [x, y] = [p[j], p[j + 1]];
        if (!Number.isFinite(x) || !Number.isFinite(y)) throw bad(at, `has a vertex that is not a finite number`);
        const s = POLYGON_SLACK;
        if (x < -s || y < -s || x > w + s || y > h + s)
          throw bad(
            at,
            `has the vertex (${x}, ${y}) outside the ${w}×${h} image (polygons are in the image's pixel coordinates)`,
          );
      }
      return Float64Array.from(p);
    });
    return { kind: 'polygons', polygons };
  }
  if (typeof seg === 'object' && seg !== null && 'counts' in seg && 'size' in seg) {
    const { counts, size } = seg as { counts: unknown; size: unknown };
    if (!isNumberArray(size) || size.length !== 2) throw bad(where, 'has an RLE "size" that is not [height, width]');
    if (size[0] !== h || size[1] !== w)
      throw bad(where, `is an RLE of ${size[1]}×${size[0]} pixels, but its image is ${w}×${h}`);
    let list: number[];
    if (typeof counts === 'string') list = rleFromString(counts, where);
    else if (isNumberArray(counts)) {
      const badCount = counts.findIndex((c) => !Number.isSafeInteger(c) || c < 0);
      if (badCount >= 0) throw bad(where, `has the RLE count ${counts[badCount]}; counts are integers ≥ 0`);
      list = counts;
    } else throw bad(where, 'has RLE "counts" that are neither a list of numbers nor a compressed string');
    let sum = 0;
    for (const c of list) sum += c;
    if (sum !== h * w)
      throw bad(where, `has RLE counts that sum to ${sum}, but the ${w}×${h} image has ${h * w} pixels`);
    return { kind: 'rle', counts: Uint32Array.from(list) };
  }
  throw bad(where, 'is neither a list of polygons nor an RLE {"counts", "size"}');
}

/** One object of an image: its class and its (checked) segmentation. */
export interface MaskObject {
  readonly label: number;
  readonly segmentation: Segmentation;
}

/**
 * The class map of an h × w image (row-major): each pixel the class of the object covering it,
 * 0 where none does, 255 where two or more do.
 */
export function classMap(objects: readonly MaskObject[], h: number, w: number): Uint8Array {
  const out = new Uint8Array(h * w);
  if (objects.length === 0) return out;
  const covered = new Uint8Array(h * w); // objects over each pixel, saturating at 2
  const mask = new Uint8Array(h * w);
  for (const o of objects) {
    mask.fill(0);
    const s = o.segmentation;
    if (s.kind === 'rle') paintRle(s.counts, h, w, mask);
    else for (const p of s.polygons) paintRle(rleFromPolygon(p, h, w), h, w, mask);
    for (let q = 0; q < mask.length; q++) {
      if (!mask[q]) continue;
      if (covered[q] === 0) {
        covered[q] = 1;
        out[q] = o.label;
      } else {
        covered[q] = 2;
        out[q] = 255;
      }
    }
  }
  return out;
}

/**
 * Category presets: the COCO category ids whose position is the class index (0 =
 * background, no category). `voc`: the 20 Pascal VOC classes, in VOC's order, as torchvision's
 * segmentation reference selects them from COCO.
 */
export const CATEGORY_PRESETS: Readonly<Record<string, readonly number[]>> = {
  voc: [0, 5, 2, 16, 9, 44, 6, 3, 17, 62, 21, 67, 18, 19, 4, 1, 64, 20, 63, 7, 72],
};

/** The category list of a preset name or of ids written out ("0,5,2" or ranges "0-90"); null if it is neither. */
export function parseCategories(text: string): number[] | null {
  const preset = CATEGORY_PRESETS[text];
  if (preset) return [...preset];
  if (!/^\d+(-\d+)?(,\d+(-\d+)?)*$/.test(text)) return null;
  const ids: number[] = [];
  for (const part of text.split(',')) {
    const [a, b] = part.split('-').map(Number);
    const end = b ?? a;
    // Category ids are small integers; a range is at most a few hundred of them.
    if (!Number.isSafeInteger(end) || end > 2 ** 31 || end < a || end - a > 100_000) return null;
    for (let i = a; i <= end; i++) ids.push(i);
  }
  return ids;
}

/**
 * `categories` (COCO ids by class index, 0 = no category) against a file's categories: each
 * id's class. Every id must be one of the file's, and listed once.
 */
export function keptCategories(
  ids: readonly number[],
  names: ReadonlyMap<number, string>,
  file: string,
): Map<number, number> {
  const kept = new Map<number, number>();
  ids.forEach((id, label) => {
    if (id === 0) return;
    if (!names.has(id))
      throw new SpikeportError(
        'invalid-option',
        `categories: the category id ${id} is not in the categories of ${file}`,
        'categories',
      );
    if (kept.has(id))
      throw new SpikeportError('invalid-option', `categories lists the category id ${id} twice`, 'categories');
    kept.set(id, label);
  });
  return kept;
}

/**
 * The images torchvision's segmentation reference trains on: those with objects (of the kept
 * categories) whose COCO `area` fields add up to more than `minArea` pixels (the reference uses
 * 1000). `areas[i]`: the areas of image i's kept objects. Returns the indices kept, ascending.
 */
export function imagesWithObjects(areas: readonly (readonly number[])[], minArea: number): number[] {
  const kept: number[] = [];
  areas.forEach((a, i) => {
    if (a.length > 0 && a.reduce((p, q) => p + q, 0) > minArea) kept.push(i);
  });
  return kept;
}

/** An annotation's `area`, checked (for minArea). */
export function areaOf(a: { area?: unknown }, where: string): number {
  if (typeof a.area !== 'number' || !Number.isFinite(a.area) || a.area < 0)
    throw new SpikeportError('invalid-data', `${where} has no "area" (a number of pixels ≥ 0), which minArea needs`);
  return a.area;
}
