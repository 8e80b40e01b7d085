/**
 * Writing a data set in the on-disk layouts the image sources read back, losslessly (PNG):
 *
 *   imagefolder   OUT/<label>/<index>.png
 *   videofolder   OUT/<label>/<index>/<frame>.png
 *   voc           OUT/JPEGImages/<index>.png, OUT/SegmentationClass/<index>.png (8-bit, the
 *                 class ids; 255 = ignore), OUT/ImageSets/Segmentation/<split>.txt
 *   coco          OUT/images/<index>.png, OUT/annotations.json (image id = index, category
 *                 id = label + 1, in label order)
 *
 * Names are zero-padded so that sorted names keep the label order and, within a class, the
 * data set's order; the voc and coco layouts keep the data set's order exactly. The folder is
 * built under a temporary name next to OUT and renamed into place at the end: OUT appears whole
 * or not at all.
 */
import fs from 'node:fs';
import path from 'node:path';
import { SpikeportError, field } from '../errors.js';
import { occupied } from '../files.js';
import type { OnProgress } from '../progress.js';
import type { MemoryDataset } from './dataset.js';

export const LAYOUTS = ['imagefolder', 'videofolder', 'voc', 'coco'] as const;
export type Layout = (typeof LAYOUTS)[number];

/** Samples read per step while writing. */
const CHUNK = 256;

/** A zero-padded name of i among n, e.g. 00042 of 10000. */
export function padded(i: number, n: number): string {
  return String(i).padStart(String(Math.max(0, n - 1)).length, '0');
}

/** What a layout needs of the data set: [C, H, W] (or [C, F, H, W] for video) bytes, and labels, masks or boxes. */
function checkWritable(d: MemoryDataset, layout: Layout): void {
  const s = d.sampleShape;
  const video = layout === 'videofolder';
  if (s.length !== (video ? 4 : 3) || (s[0] !== 1 && s[0] !== 3)) {
    throw new SpikeportError(
      'invalid-data',
      `${d.name}: ${field('layout')} ${layout} writes ${video ? 'clips of [1 or 3, frames, H, W]' : 'images of [1 or 3, H, W]'}; the samples are ${s.join('x')}`,
    );
  }
  if (d.scale !== 1 / 255)
    throw new SpikeportError(
      'invalid-data',
      `${d.name}: ${field('layout')} ${layout} writes 8-bit images; these samples are not bytes (0–255)`,
    );
  if ((layout === 'imagefolder' || video) && !d.labels)
    throw new SpikeportError('invalid-data', `${d.name}: ${field('layout')} ${layout} needs a label per sample`);
  if (layout === 'voc' && !d.masks)
    throw new SpikeportError('invalid-data', `${d.name}: ${field('layout')} voc needs per-pixel labels (masks)`);
  if (
    layout === 'voc' &&
    d.masks &&
    (d.masks.shape.length !== 2 || d.masks.shape[0] !== s[1] || d.masks.shape[1] !== s[2])
  ) {
    throw new SpikeportError(
      'invalid-data',
      `${d.name}: ${field('layout')} voc needs masks of the images' size (${s[1]}x${s[2]}); they are ${d.masks.shape.join('x')}`,
    );
  }
  if (layout === 'coco' && !d.boxes)
    throw new SpikeportError('invalid-data', `${d.name}: ${field('layout')} coco needs boxes`);
}

/** Class folders need every label 0..max present: an empty one is refused when read, and leaving it out would shift the labels after it. */
function classCount(d: MemoryDataset): number {
  const labels = d.labels as Int32Array;
  const bad = labels.find((l) => l < 0);
  if (bad !== undefined)
    throw new SpikeportError('invalid-data', `${d.name} has the label ${bad}; class folders need labels ≥ 0`);
  const classes = labels.reduce((a, l) => Math.max(a, l + 1), 0);
  const counts = new Int32Array(classes);
  for (const l of labels) counts[l]++;
  const missing = counts.findIndex((c) => c === 0);
  if (missing >= 0)
    throw new SpikeportError(
      'invalid-data',
      `${d.name} has no sample of class ${missing} (labels 0..${classes - 1}); class folders need every class (take more samples)`,
    );
  return classes;
}

/** Write `d` in `layout` at `out` (which must not exist yet). */
export async function writeLayout(
  d: MemoryDataset,
  layout: Layout,
  out: string,
  onProgress?: OnProgress,
  split = 'val',
): Promise<{ files: number; classes: number | null }> {
  checkWritable(d, layout);
  if (occupied(out)) throw new SpikeportError('io', `${field('out')} ${out} exists; name a new folder`, 'out');
  const parent = path.dirname(path.resolve(out));
  if (!fs.existsSync(parent))
    throw new SpikeportError('io', `${field('out')} ${out}: folder ${parent} does not exist`, 'out');
  const classes = layout === 'imagefolder' || layout === 'videofolder' ? classCount(d) : null;
  const sharp = (await import('sharp')).default;
  const s = d.sampleShape;
  const C = s[0];
  const [H, W] = [s[s.length - 2], s[s.length - 1]];
  const frames = layout === 'videofolder' ? s[1] : 1;
  const plane = H * W;
  const per = C * frames * plane;
  const hwc = new Uint8Array(C * plane);
  const png = (src: Uint8Array, base: number, channelStride: number, channels: number): Promise<Buffer> => {
    for (let p = 0; p < plane; p++)
      for (let c = 0; c < channels; c++) hwc[p * channels + c] = src[base + c * channelStride + p];
    const img = sharp(hwc.subarray(0, channels * plane), { raw: { width: W, height: H, channels: channels as 1 | 3 } });
    // One channel stays one (8-bit gray PNG): sharp would otherwise write it as RGB.
    return (channels === 1 ? img.toColourspace('b-w') : img).png({ compressionLevel: 6 }).toBuffer();
  };
  // A read-only or full disk is the user's to fix: one line, and nothing left behind.
  const cannot = (e: unknown): SpikeportError =>
    e instanceof SpikeportError ? e : new SpikeportError('io', `cannot write ${out}: ${(e as Error).message}`);
  let tmp: string;
  try {
    tmp = fs.mkdtempSync(path.join(parent, `.${path.basename(out)}.tmp-`));
  } catch (e) {
    throw cannot(e);
  }
  let files = 0;
  const put = (rel: string, data: Uint8Array | string): void => {
    fs.writeFileSync(path.join(tmp, rel), data);
    files++;
  };
  try {
    if (classes !== null) for (let l = 0; l < classes; l++) fs.mkdirSync(path.join(tmp, padded(l, classes)));
    if (layout === 'voc')
      for (const f of ['JPEGImages', 'SegmentationClass', path.join('ImageSets', 'Segmentation')])
        fs.mkdirSync(path.join(tmp, f), { recursive: true });
    if (layout === 'coco') fs.mkdirSync(path.join(tmp, 'images'));
    for (let start = 0; start < d.size; start += CHUNK) {
      const idx = Array.from({ length: Math.min(CHUNK, d.size - start) }, (_, k) => start + k);
      const { x, masks } = await d.read(idx);
      for (let k = 0; k < idx.length; k++) {
        const i = idx[k];
        const name = padded(i, d.size);
        const x8 = x as Uint8Array;
        if (layout === 'imagefolder')
          put(
            path.join(padded((d.labels as Int32Array)[i], classes as number), `${name}.png`),
            await png(x8, k * per, plane, C),
          );
        else if (layout === 'videofolder') {
          const dir = path.join(padded((d.labels as Int32Array)[i], classes as number), name);
          fs.mkdirSync(path.join(tmp, dir));
          for (let f = 0; f < frames; f++)
            put(path.join(dir, `${padded(f, frames)}.png`), await png(x8, k * per + f * plane, frames * plane, C));
        } else if (layout === 'voc') {
          put(path.join('JPEGImages', `${name}.png`), await png(x8, k * per, plane, C));
          put(path.join('SegmentationClass', `${name}.png`), await png(masks as Uint8Array, k * plane, plane, 1));
        } else {
          put(path.join('images', `${name}.png`), await png(x8, k * per, plane, C));
        }
      }
      onProgress?.({ phase: 'write', done: start + idx.length, total: d.size, unit: 'samples' });
    }
    if (layout === 'voc')
      put(
        path.join('ImageSets', 'Segmentation', `${split}.txt`),
        Array.from({ length: d.size }, (_, i) => `${padded(i, d.size)}\n`).join(''),
      );
    if (layout === 'coco') {
      const boxes = d.boxes ?? [];
      const labels = boxes.reduce((a, b) => Math.max(a, b.label + 1), 0);
      put(
        'annotations.json',
        JSON.stringify({
          images: Array.from({ length: d.size }, (_, i) => ({
            id: i,
            file_name: `${padded(i, d.size)}.png`,
            width: W,
            height: H,
          })),
          categories: Array.from({ length: labels }, (_, l) => ({ id: l + 1, name: String(l) })),
          annotations: boxes.map((b, k) => ({
            id: k + 1,
            image_id: b.image,
            category_id: b.label + 1,
            bbox: [b.x, b.y, b.w, b.h],
            area: b.w * b.h,
            iscrowd: b.crowd ? 1 : 0,
          })),
        }),
      );
    }
    if (occupied(out))
      throw new SpikeportError(
        'io',
        `${field('out')} ${out} appeared while the data set was written; name a new folder`,
        'out',
      );
    fs.renameSync(tmp, out);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw (e as NodeJS.ErrnoException).code ? cannot(e) : e;
  }
  return { files, classes };
}
