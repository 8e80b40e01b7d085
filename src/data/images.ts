/**
 * Image files as a streamed data set: the file list is read when the set is opened, the pixels
 * only when a batch asks for them. Decoding, resizing and cropping run in sharp's (libvips)
 * worker threads, a few images at a time, so batches read ahead (prefetchBatches) are decoded
 * while the network runs. Nothing but the file list and the labels stays in memory.
 *
 *   imagefolder:DIR   torchvision's ImageFolder: DIR/<class>/…/<image>, classes sorted by name
 *                     give the label indices, files in sorted order (sub-folders included)
 */
import fs from 'node:fs';
import path from 'node:path';
import { SpikeportError } from '../errors.js';
import type { Dataset } from './dataset.js';
import { checkIndices } from './dataset.js';
import { formatPreprocess, geometry, toPlanes, type Preprocess } from './preprocess.js';

/** The image files a folder source reads (lower-case extensions, as torchvision compares them). */
export const IMAGE_EXTENSIONS = ['.jpg', '.jpeg', '.png', '.webp'] as const;

/** How images become model input: the model's sample shape [C, H, W] and the preprocessing. */
export interface ImageOptions {
  /** [C, H, W] with C = 1 (gray) or 3 (RGB). */
  readonly sampleShape: readonly number[];
  /** null: no --preprocess given (images must have the model's size). */
  readonly preprocess: Preprocess | null;
}

/** Images decoded at once per source (more only queue in libuv's pool ahead of ONNX Runtime). */
export const DECODE_CONCURRENCY = 2;

type Sharp = (typeof import('sharp'))['default'];
let sharpModule: Promise<Sharp> | null = null;

/** sharp, loaded on first use (the MNIST paths never load libvips), its cache off (memory stays flat). */
async function loadSharp(): Promise<Sharp> {
  sharpModule ??= import('sharp').then((m) => {
    const sharp = m.default;
    sharp.cache(false);
    return sharp;
  }, (e: unknown) => {
    sharpModule = null;
    throw new SpikeportError('invalid-data', `image data needs the npm package sharp, which did not load (${(e as Error).message.split('\n')[0]}); run npm ci in the spikeport folder`);
  });
  return sharpModule;
}

/** Check [C, H, W] with C 1 or 3. */
export function checkImageShape(spec: string, shape: readonly number[] | undefined): [number, number, number] {
  if (!shape) throw new SpikeportError('invalid-data', `data set ${spec}: image data is read for a model; open it with the model's input shape`);
  if (shape.length !== 3 || (shape[0] !== 1 && shape[0] !== 3) || !(shape[1] > 0 && shape[2] > 0)) {
    throw new SpikeportError('invalid-data', `data set ${spec}: images need a model input of shape [1 or 3, H, W] per sample (this model takes ${shape.join('x')})`);
  }
  return [shape[0], shape[1], shape[2]];
}

/** Decode one image file into `out` at `offset`: C planes of H × W bytes. */
export async function decodeImage(file: string, opts: ImageOptions, out: Uint8Array, offset: number): Promise<void> {
  const sharp = await loadSharp();
  const [C, H, W] = opts.sampleShape;
  const bytes = await readFileChecked(file);
  try {
    const img = sharp(bytes, { failOn: 'error', limitInputPixels: 2 ** 28 });
    const meta = await img.metadata();
    if (!meta.width || !meta.height) throw new Error('no image size');
    const g = geometry(opts.preprocess, meta.width, meta.height, H, W, file);
    if (g.resize) img.resize(g.resize.width, g.resize.height, { fit: 'fill', kernel: 'linear' });
    if (g.crop) img.extract(g.crop);
    const { data, info } = await img.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
    if (info.width !== W || info.height !== H) throw new Error(`decoded to ${info.width}×${info.height}, expected ${W}×${H}`);
    toPlanes(data, W * H, info.channels, C, out, offset);
  } catch (e) {
    if (e instanceof SpikeportError) throw e;
    throw new SpikeportError('invalid-data', `${file} is not a readable image (${(e as Error).message.split('\n')[0].trim()})`);
  }
}

async function readFileChecked(file: string): Promise<Buffer> {
  let st: fs.Stats;
  try {
    st = await fs.promises.stat(file);
  } catch {
    throw new SpikeportError('io', `no such file: ${file} (was it removed while the data set was read?)`);
  }
  if (!st.isFile()) throw new SpikeportError('io', `${file} is not a regular file`);
  return fs.promises.readFile(file);
}

/** Run `jobs` with at most `limit` at a time; the first failure rejects (after the running ones end). */
export async function limited(jobs: readonly (() => Promise<void>)[], limit: number): Promise<void> {
  let next = 0;
  let failed: unknown = null;
  const worker = async (): Promise<void> => {
    while (next < jobs.length && failed === null) {
      const job = jobs[next++];
      try {
        await job();
      } catch (e) {
        failed ??= e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, jobs.length) }, worker));
  if (failed !== null) throw failed;
}

/** A streamed data set over a list of image files. */
export function imageDataset(name: string, files: readonly string[], labels: Int32Array | null, opts: ImageOptions, extra: Partial<Pick<Dataset, 'classes'>> = {}): Dataset {
  const per = opts.sampleShape.reduce((a, b) => a * b, 1);
  return {
    name, size: files.length, sampleShape: opts.sampleShape, scale: 1 / 255, labels, ...extra,
    ...(opts.preprocess ? { preprocess: formatPreprocess(opts.preprocess) } : {}),
    async read(indices) {
      checkIndices(name, files.length, indices);
      const x = new Uint8Array(indices.length * per);
      await limited(indices.map((i, k) => () => decodeImage(files[i], opts, x, k * per)), DECODE_CONCURRENCY);
      return { x };
    },
  };
}

function isImageName(name: string): boolean {
  const lower = name.toLowerCase();
  return IMAGE_EXTENSIONS.some((e) => lower.endsWith(e));
}

function sortedNames(names: string[]): string[] {
  return names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

function readDir(dir: string): fs.Dirent[] {
  try {
    return fs.readdirSync(dir, { withFileTypes: true });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new SpikeportError('io', code === 'ENOENT' ? `no such folder: ${dir}` : code === 'ENOTDIR' ? `${dir} is not a folder` : `cannot list ${dir} (${code ?? (e as Error).message})`);
  }
}

/** Is this entry (following a symbolic link) a folder / a regular file? */
function kindOf(dir: string, e: fs.Dirent): 'dir' | 'file' | 'other' {
  if (e.isDirectory()) return 'dir';
  if (e.isFile()) return 'file';
  if (!e.isSymbolicLink()) return 'other';
  try {
    const st = fs.statSync(path.join(dir, e.name));
    return st.isDirectory() ? 'dir' : st.isFile() ? 'file' : 'other';
  } catch {
    return 'other';
  }
}

/** The image files under `dir` in torchvision's order: os.walk's folders sorted by path, files sorted by name. */
export function imageFiles(dir: string): string[] {
  const groups: { root: string; files: string[] }[] = [];
  const seen = new Set<string>();
  const walk = (root: string): void => {
    const real = fs.realpathSync(root);
    if (seen.has(real)) return; // a link back up the tree
    seen.add(real);
    const entries = readDir(root);
    groups.push({ root, files: sortedNames(entries.filter((e) => kindOf(root, e) === 'file' && isImageName(e.name)).map((e) => e.name)) });
    for (const e of entries) if (kindOf(root, e) === 'dir') walk(path.join(root, e.name));
  };
  walk(dir);
  groups.sort((a, b) => (a.root < b.root ? -1 : a.root > b.root ? 1 : 0));
  return groups.flatMap((g) => g.files.map((f) => path.join(g.root, f)));
}

/** torchvision's ImageFolder layout, streamed. */
export function openImageFolder(spec: string, dir: string, opts: ImageOptions): Dataset {
  checkImageShape(spec, opts.sampleShape);
  const classes = sortedNames(readDir(dir).filter((e) => kindOf(dir, e) === 'dir').map((e) => e.name));
  if (classes.length === 0) throw new SpikeportError('invalid-data', `${spec}: no class folders in ${dir} (expected ${dir}/<class>/<image>)`);
  const files: string[] = [];
  const labels: number[] = [];
  classes.forEach((c, label) => {
    const found = imageFiles(path.join(dir, c));
    if (found.length === 0) throw new SpikeportError('invalid-data', `${spec}: the class folder ${path.join(dir, c)} has no image files (${IMAGE_EXTENSIONS.join(', ')})`);
    for (const f of found) {
      files.push(f);
      labels.push(label);
    }
  });
  return imageDataset(spec, files, Int32Array.from(labels), opts, { classes });
}
