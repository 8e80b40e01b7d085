/**
 * Writing a data set in an on-disk layout the image sources read back, losslessly (PNG):
 *
 *   imagefolder   OUT/<label>/<index>.png, labels and indices zero-padded so that sorted names
 *                 keep the label order and, within a class, the data set's order
 *
 * The folder is built under a temporary name next to OUT and renamed into place at the end:
 * OUT appears whole or not at all.
 */
import fs from 'node:fs';
import path from 'node:path';
import { SpikeportError } from '../errors.js';
import type { OnProgress } from '../progress.js';
import type { Dataset } from './dataset.js';

export const LAYOUTS = ['imagefolder'] as const;
export type Layout = (typeof LAYOUTS)[number];

/** Samples read per step while writing. */
const CHUNK = 256;

/** The file name of sample i of n (zero-padded index), e.g. 00042.png. */
export function sampleFileName(i: number, n: number): string {
  return `${String(i).padStart(String(Math.max(0, n - 1)).length, '0')}.png`;
}

/** The folder name of label l of `classes` labels (zero-padded), e.g. 3 or 03. */
export function classFolderName(l: number, classes: number): string {
  return String(l).padStart(String(Math.max(0, classes - 1)).length, '0');
}

/** Check that a data set can be written as 8-bit images: [1 or 3, H, W] samples of bytes. */
function checkWritable(d: Dataset, layout: Layout): [number, number, number] {
  const s = d.sampleShape;
  if (s.length !== 3 || (s[0] !== 1 && s[0] !== 3)) throw new SpikeportError('invalid-data', `${d.name}: --format ${layout} writes images of 1 or 3 channels; the samples are ${s.join('x')}`);
  if (d.scale !== 1 / 255) throw new SpikeportError('invalid-data', `${d.name}: --format ${layout} writes 8-bit images; these samples are not bytes (0–255)`);
  if (!d.labels) throw new SpikeportError('invalid-data', `${d.name}: --format ${layout} needs a label per sample`);
  return [s[0], s[1], s[2]];
}

/** Write `d` as an image folder at `out` (which must not exist yet). Returns the number of classes. */
export async function writeLayout(d: Dataset, layout: Layout, out: string, onProgress?: OnProgress): Promise<{ classes: number }> {
  const [C, H, W] = checkWritable(d, layout);
  const labels = d.labels as Int32Array;
  if (fs.existsSync(out)) throw new SpikeportError('io', `--out ${out} exists; name a new folder`);
  const parent = path.dirname(path.resolve(out));
  if (!fs.existsSync(parent)) throw new SpikeportError('io', `--out ${out}: folder ${parent} does not exist`);
  const bad = labels.find((l) => l < 0);
  if (bad !== undefined) throw new SpikeportError('invalid-data', `${d.name} has the label ${bad}; class folders need labels ≥ 0`);
  const classes = labels.reduce((a, l) => Math.max(a, l + 1), 0);
  // An empty class folder is refused when read (as torchvision does), and leaving it out would shift the labels after it.
  const counts = new Int32Array(classes);
  for (const l of labels) counts[l]++;
  const missing = counts.findIndex((c) => c === 0);
  if (missing >= 0) throw new SpikeportError('invalid-data', `${d.name} has no sample of class ${missing} (labels 0..${classes - 1}); an image folder needs every class (take more samples)`);
  const sharp = (await import('sharp')).default;
  const tmp = fs.mkdtempSync(path.join(parent, `.${path.basename(out)}.tmp-`));
  try {
    for (let l = 0; l < classes; l++) fs.mkdirSync(path.join(tmp, classFolderName(l, classes)));
    const per = C * H * W;
    const hwc = new Uint8Array(per);
    for (let start = 0; start < d.size; start += CHUNK) {
      const idx = Array.from({ length: Math.min(CHUNK, d.size - start) }, (_, k) => start + k);
      const { x } = await d.read(idx);
      for (let k = 0; k < idx.length; k++) {
        const i = idx[k];
        const base = k * per;
        for (let p = 0; p < H * W; p++) for (let c = 0; c < C; c++) hwc[p * C + c] = x[base + c * H * W + p];
        const png = await sharp(hwc, { raw: { width: W, height: H, channels: C as 1 | 3 } }).png({ compressionLevel: 6 }).toBuffer();
        fs.writeFileSync(path.join(tmp, classFolderName(labels[i], classes), sampleFileName(i, d.size)), png);
      }
      onProgress?.({ phase: 'write', done: start + idx.length, total: d.size });
    }
    fs.renameSync(tmp, out);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  return { classes };
}
