/**
 * Image files as a streamed data set: the file list is read when the set is opened, the pixels
 * only when a batch asks for them. Decoding, resizing and cropping run in sharp's (libvips)
 * worker threads, a few images at a time, so batches read ahead (prefetchBatches) are decoded
 * while the network runs. Nothing but the file list and the labels stays in memory.
 *
 *   imagefolder:DIR   torchvision's ImageFolder: DIR/<class>/…/<image>, classes sorted by name
 *                     give the label indices (or, with the model's class names, each folder
 *                     is the class of its name), files in sorted order (sub-folders included)
 *   videofolder:DIR   DIR/<class>/<video>/<frame images>: one clip per video, its frames in
 *                     time order (frameOrder) sampled evenly (frame ⌊i·n/L⌋ of n, i < L = the
 *                     model's clip length); classes as for imagefolder
 *   voc:DIR[:split]   Pascal VOC segmentation: the ids of ImageSets/Segmentation/<split>.txt
 *                     (default train, as torchvision), JPEGImages/<id>.jpg (or .png) and the
 *                     SegmentationClass/<id>.png palette masks (index = class, 255 = ignore),
 *                     else SegmentationClassAug/<id>.png (the SBD-augmented set's, e.g. for the
 *                     train_aug list); masks follow the image's resize (nearest) and crop
 *   coco:IMAGES@ANN   COCO detection: the images of the annotation file in id order (as
 *                     torchvision's CocoDetection), categories in the file's order → class
 *                     0, 1, …; crowd boxes (iscrowd 1) kept as regions to ignore, as COCO
 *                     scores them; predictions are mapped back to the
 *                     original image's pixels before scoring
 */
import fs from 'node:fs';
import path from 'node:path';
import { SpikeportError, field } from '../errors.js';
import { MAX_TEXT_BYTES, readRegularFile } from '../files.js';
import type { Dataset } from './dataset.js';
import { checkIndices } from './dataset.js';
import {
  cropPixels,
  formatPreprocess,
  geometry,
  placeMask,
  resizeBilinear,
  toPlanes,
  type Placement,
  type Preprocess,
} from './preprocess.js';
import { decodeLabelPng } from './png.js';
import { resizeTensorBilinear } from './tensor-resize.js';
import { checkInside, dataFolder, type DataFolder } from './folder.js';
import type { DetectionBox } from './dataset.js';
import { areaOf, imagesWithObjects, keptCategories } from './coco-masks.js';

/** The image files a folder source reads (lower-case extensions, as torchvision compares them). */
export const IMAGE_EXTENSIONS = ['.jpg', '.jpeg', '.png', '.webp'] as const;

/** How images become model input: the model's sample shape [C, H, W] and the preprocessing. */
export interface ImageOptions {
  /** [C, H, W] with C = 1 (gray) or 3 (RGB). */
  readonly sampleShape: readonly number[];
  /** null: no --preprocess given (images must have the model's size). */
  readonly preprocess: Preprocess | null;
  /**
   * The model's class names in its order. Class folders (and COCO categories) are then matched
   * by name; without them, folders sorted by name (COCO: the file's categories in order) give
   * the label indices.
   */
  readonly classNames?: readonly string[];
  /** Follow symbolic links that lead outside the data set's folder (default: refuse them). */
  readonly followLinks?: boolean;
}

/** Where an image file comes from: the folder it must stay in, and the list that named it (VOC, COCO), if any. */
export interface FileOrigin {
  readonly folder: DataFolder;
  readonly listedIn?: string;
}

/** The most pixels of an image decoded (sharp's default limit: 16384 × 16384). */
export const MAX_IMAGE_PIXELS = 2 ** 28;

/** Images decoded at once per source (more only queue in libuv's pool ahead of ONNX Runtime). */
export const DECODE_CONCURRENCY = 2;

type Sharp = (typeof import('sharp'))['default'];
let sharpModule: Promise<Sharp> | null = null;

/** sharp, loaded on first use (the MNIST paths never load libvips), its cache off (memory stays flat). */
async function loadSharp(): Promise<Sharp> {
  sharpModule ??= import('sharp').then(
    (m) => {
      const sharp = m.default;
      sharp.cache(false);
      return sharp;
    },
    (e: unknown) => {
      sharpModule = null;
      throw new SpikeportError(
        'invalid-data',
        `image data needs the npm package sharp, which did not load (${(e as Error).message.split('\n')[0]}); run npm ci in the spikeport folder`,
      );
    },
  );
  return sharpModule;
}

/** Check [C, H, W] with C 1 or 3. */
export function checkImageShape(spec: string, shape: readonly number[] | undefined): [number, number, number] {
  if (!shape)
    throw new SpikeportError(
      'invalid-data',
      `data set ${spec}: image data is read for a model; open it with the model's input shape`,
    );
  if (shape.length !== 3 || (shape[0] !== 1 && shape[0] !== 3) || !(shape[1] > 0 && shape[2] > 0)) {
    throw new SpikeportError(
      'invalid-data',
      `data set ${spec}: images need a model input of shape [1 or 3, H, W] per sample (this model takes ${shape.join('x')})`,
    );
  }
  return [shape[0], shape[1], shape[2]];
}

/**
 * Decode one image file into `out` at `offset`: C planes of H × W bytes, `channelStride` apart
 * (default H × W); returns where the pixels came from. `shape`: [C, H, W].
 */
export async function decodeImage(
  file: string,
  shape: readonly number[],
  preprocess: Preprocess | null,
  out: Uint8Array,
  offset: number,
  channelStride?: number,
  origin?: FileOrigin,
): Promise<Placement> {
  const sharp = await loadSharp();
  const [C, H, W] = shape;
  await checkDataFile(file, origin);
  try {
    // From the path: libvips reads the header first (the pixel limit applies before any
    // decoding) and then only what it decodes; the file is never read whole into memory.
    const img = sharp(file, { failOn: 'error', limitInputPixels: MAX_IMAGE_PIXELS });
    const meta = await img.metadata();
    if (!meta.width || !meta.height) throw new Error('no image size');
    const g = geometry(preprocess, meta.width, meta.height, H, W, file);
    // Shrinking: sharp's linear kernel (widened, as PIL's) in its threads, within 2 levels of PIL.
    // Enlarging: sharp's interpolation is off by tens of levels, so PIL's own arithmetic, here.
    // The kinetics preset resizes as torchvision resizes video tensors (no widening), here too.
    const tensor = preprocess?.kind === 'kinetics';
    const enlarge = g.resize !== null && (tensor || g.resize.width > meta.width || g.resize.height > meta.height);
    if (g.resize && !enlarge) img.resize(g.resize.width, g.resize.height, { fit: 'fill', kernel: 'linear' });
    if (g.crop && !enlarge) img.extract(g.crop);
    const { data, info } = await img.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
    let px: Uint8Array = data;
    if (enlarge && g.resize) {
      const { width: rw, height: rh } = g.resize;
      if (tensor) {
        // (the kinetics sizes are the preset's, not the image's: the whole resized frame is small)
        px = resizeTensorBilinear(data, info.width, info.height, info.channels, rw, rh);
        if (g.crop) px = cropPixels(px, rw, info.channels, g.crop);
      } else px = resizeBilinear(data, info.width, info.height, info.channels, rw, rh, g.crop ?? undefined);
    } else if (info.width !== W || info.height !== H) {
      throw new Error(`decoded to ${info.width}×${info.height}, expected ${W}×${H}`);
    }
    toPlanes(px, W * H, info.channels, C, out, offset, channelStride);
    return { ...g, width: meta.width, height: meta.height };
  } catch (e) {
    if (e instanceof SpikeportError) throw e;
    const why = (e as Error).message.split('\n')[0].trim();
    throw new SpikeportError(
      'invalid-data',
      /pixel limit/.test(why)
        ? `${file} has more than ${MAX_IMAGE_PIXELS} pixels (2^28, the most spikeport decodes; 16384 × 16384)`
        : `${file} is not a readable image (${why})`,
    );
  }
}

/**
 * A data file checked before it is read: inside its folder (links), there, and a regular file.
 * A file a list names (VOC's split, COCO's annotations) may never have existed; one found by
 * listing a folder was there then.
 */
export async function checkDataFile(file: string, origin?: FileOrigin): Promise<void> {
  if (origin) checkInside(origin.folder, file);
  let st: fs.Stats;
  try {
    st = await fs.promises.stat(file);
  } catch {
    throw new SpikeportError(
      'io',
      origin?.listedIn
        ? `no such file: ${file} (listed in ${origin.listedIn})`
        : `no such file: ${file} (was it removed while the data set was read?)`,
    );
  }
  if (!st.isFile()) throw new SpikeportError('io', `${file} is not a regular file`);
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

/**
 * Images with a per-pixel class mask each (segmentation), decoded a few at a time: `one(i, x, at)`
 * decodes sample i into `x` from `at` and returns its mask at the image's own size with where the
 * image was placed; the mask is placed the same way (nearest) into the [H, W] plane.
 */
export async function readWithMasks(
  indices: readonly number[],
  per: number,
  [H, W]: readonly [number, number],
  one: (i: number, x: Uint8Array, at: number) => Promise<{ mask: Uint8Array; placed: Placement }>,
): Promise<{ x: Uint8Array; masks: Uint8Array }> {
  const x = new Uint8Array(indices.length * per);
  const masks = new Uint8Array(indices.length * H * W);
  await limited(
    indices.map((i, k) => async () => {
      const { mask, placed } = await one(i, x, k * per);
      masks.set(placeMask(mask, placed, H, W), k * H * W);
    }),
    DECODE_CONCURRENCY,
  );
  return { x, masks };
}

/** A streamed data set over a list of image files (in `origin`'s folder, when given). */
export function imageDataset(
  name: string,
  files: readonly string[],
  labels: Int32Array | null,
  opts: ImageOptions,
  extra: Partial<Pick<Dataset, 'classes'>> = {},
  origin?: FileOrigin,
): Dataset {
  const per = opts.sampleShape.reduce((a, b) => a * b, 1);
  return {
    name,
    size: files.length,
    sampleShape: opts.sampleShape,
    scale: 1 / 255,
    labels,
    ...extra,
    ...(opts.preprocess ? { preprocess: formatPreprocess(opts.preprocess) } : {}),
    async read(indices) {
      checkIndices(name, files.length, indices);
      const x = new Uint8Array(indices.length * per);
      await limited(
        indices.map((i, k) => async () => {
          await decodeImage(files[i], opts.sampleShape, opts.preprocess, x, k * per, undefined, origin);
        }),
        DECODE_CONCURRENCY,
      );
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
    throw new SpikeportError(
      'io',
      code === 'ENOENT'
        ? `no such folder: ${dir}`
        : code === 'ENOTDIR'
          ? `${dir} is not a folder`
          : `cannot list ${dir} (${code ?? (e as Error).message})`,
    );
  }
}

/**
 * Is this entry (following a symbolic link) a folder / a regular file? A link that leads
 * outside `folder` is refused (unless it follows links).
 */
function kindOf(dir: string, e: fs.Dirent, folder?: DataFolder): 'dir' | 'file' | 'other' {
  if (e.isDirectory()) return 'dir';
  if (e.isFile()) return 'file';
  if (!e.isSymbolicLink()) return 'other';
  if (folder) checkInside(folder, path.join(dir, e.name));
  try {
    const st = fs.statSync(path.join(dir, e.name));
    return st.isDirectory() ? 'dir' : st.isFile() ? 'file' : 'other';
  } catch {
    return 'other';
  }
}

/** The image files under `dir` in torchvision's order: os.walk's folders sorted by path, files sorted by name. */
export function imageFiles(dir: string, folder?: DataFolder): string[] {
  return filesUnder(dir, isImageName, folder);
}

/**
 * The files under `dir` whose names `accept` takes, in torchvision's order (os.walk's folders
 * sorted by path, files by name); a link leaving `folder` is refused.
 */
export function filesUnder(dir: string, accept: (name: string) => boolean, folder?: DataFolder): string[] {
  const groups: { root: string; files: string[] }[] = [];
  const seen = new Set<string>();
  const walk = (root: string): void => {
    const real = fs.realpathSync(root);
    if (seen.has(real)) return; // a link back up the tree
    seen.add(real);
    const entries = readDir(root);
    groups.push({
      root,
      files: sortedNames(
        entries.filter((e) => accept(e.name) && kindOf(root, e, folder) === 'file').map((e) => e.name),
      ),
    });
    for (const e of entries) if (kindOf(root, e, folder) === 'dir') walk(path.join(root, e.name));
  };
  walk(dir);
  groups.sort((a, b) => (a.root < b.root ? -1 : a.root > b.root ? 1 : 0));
  return groups.flatMap((g) => g.files.map((f) => path.join(g.root, f)));
}

/** The sub-folders of `dir` (links to folders included; a link leaving `folder` refused), sorted by name. */
export function classFolders(dir: string, folder?: DataFolder): string[] {
  return sortedNames(
    readDir(dir)
      .filter((e) => kindOf(dir, e, folder) === 'dir')
      .map((e) => e.name),
  );
}

/**
 * The label of each class folder: its place among the folders sorted by name (torchvision's
 * rule, which only matches the model when it was trained on the same folders), or with the
 * model's class names, the place of its name there (a folder of no known name is an error).
 */
export function folderLabels(
  spec: string,
  dir: string,
  folders: readonly string[],
  classNames: readonly string[] | undefined,
): { classes: readonly string[]; labelOf: (folder: string) => number } {
  if (!classNames) return { classes: folders, labelOf: (f) => folders.indexOf(f) };
  const index = new Map(classNames.map((n, i) => [n, i]));
  const odd = folders.find((f) => !index.has(f));
  if (odd !== undefined)
    throw new SpikeportError(
      'invalid-data',
      `${spec}: the class folder ${path.join(dir, odd)} is not one of the ${classNames.length} class names in classNames (each folder must be named as one of the model's classes)`,
      'classNames',
    );
  return { classes: classNames, labelOf: (f) => index.get(f) as number };
}

/** torchvision's ImageFolder layout, streamed. */
export function openImageFolder(spec: string, dir: string, opts: ImageOptions): Dataset {
  checkImageShape(spec, opts.sampleShape);
  const folder = dataFolder(spec, dir, opts.followLinks);
  const folders = sortedNames(
    readDir(dir)
      .filter((e) => kindOf(dir, e, folder) === 'dir')
      .map((e) => e.name),
  );
  if (folders.length === 0)
    throw new SpikeportError('invalid-data', `${spec}: no class folders in ${dir} (expected ${dir}/<class>/<image>)`);
  const { classes, labelOf } = folderLabels(spec, dir, folders, opts.classNames);
  const files: string[] = [];
  const labels: number[] = [];
  folders.forEach((c) => {
    const label = labelOf(c);
    const found = imageFiles(path.join(dir, c), folder);
    if (found.length === 0)
      throw new SpikeportError(
        'invalid-data',
        `${spec}: the class folder ${path.join(dir, c)} has no image files (${IMAGE_EXTENSIONS.join(', ')})`,
      );
    for (const f of found) {
      files.push(f);
      labels.push(label);
    }
  });
  return imageDataset(spec, files, Int32Array.from(labels), opts, { classes }, { folder });
}

/**
 * Frame names in time order: numbers in the names compared by value, so frame_2 comes before
 * frame_10 whether or not the numbers are zero-padded (name order for the rest).
 */
export function frameOrder(names: string[]): string[] {
  const parts = (s: string): string[] => s.match(/\d+|\D+/g) ?? [];
  const compare = (a: string, b: string): number => {
    const [pa, pb] = [parts(a), parts(b)];
    for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
      const [x, y] = [pa[i], pb[i]];
      if (x === y) continue;
      if (/^\d/.test(x) && /^\d/.test(y)) {
        const [u, v] = [x.replace(/^0+(?=\d)/, ''), y.replace(/^0+(?=\d)/, '')];
        if (u.length !== v.length) return u.length - v.length;
        if (u !== v) return u < v ? -1 : 1;
        continue;
      }
      return x < y ? -1 : 1;
    }
    return pa.length !== pb.length ? pa.length - pb.length : a < b ? -1 : a > b ? 1 : 0;
  };
  return names.sort(compare);
}

/** Image files directly in a folder, in time order (frameOrder). */
async function framesOf(dir: string, folder: DataFolder): Promise<string[]> {
  let entries: fs.Dirent[];
  try {
    entries = await fs.promises.readdir(dir, { withFileTypes: true });
  } catch {
    throw new SpikeportError('io', `cannot list ${dir} (was it removed while the data set was read?)`);
  }
  return frameOrder(
    entries.filter((e) => isImageName(e.name) && kindOf(dir, e, folder) === 'file').map((e) => e.name),
  ).map((f) => path.join(dir, f));
}

/** Frame i of the L taken evenly from n frames. */
export function clipFrame(i: number, n: number, L: number): number {
  return Math.floor((i * n) / L);
}

/** Video clips as frame folders, streamed: [C, L, H, W] per sample. */
export function openVideoFolder(spec: string, dir: string, opts: ImageOptions): Dataset {
  const shape = opts.sampleShape;
  if (shape.length !== 4 || (shape[0] !== 1 && shape[0] !== 3)) {
    throw new SpikeportError(
      'invalid-data',
      `data set ${spec}: video clips need a model input of shape [1 or 3, frames, H, W] per sample (this model takes ${shape.join('x') || 'nothing known'})`,
    );
  }
  const [C, L, H, W] = shape;
  const folder = dataFolder(spec, dir, opts.followLinks);
  const folders = sortedNames(
    readDir(dir)
      .filter((e) => kindOf(dir, e, folder) === 'dir')
      .map((e) => e.name),
  );
  if (folders.length === 0)
    throw new SpikeportError(
      'invalid-data',
      `${spec}: no class folders in ${dir} (expected ${dir}/<class>/<video>/<frames>)`,
    );
  const { classes, labelOf } = folderLabels(spec, dir, folders, opts.classNames);
  const videos: string[] = [];
  const labels: number[] = [];
  folders.forEach((c) => {
    const label = labelOf(c);
    const cdir = path.join(dir, c);
    const found = sortedNames(
      readDir(cdir)
        .filter((e) => kindOf(cdir, e, folder) === 'dir')
        .map((e) => e.name),
    );
    if (found.length === 0)
      throw new SpikeportError('invalid-data', `${spec}: the class folder ${cdir} has no video folders`);
    for (const v of found) {
      videos.push(path.join(cdir, v));
      labels.push(label);
    }
  });
  const per = C * L * H * W;
  return {
    name: spec,
    size: videos.length,
    sampleShape: shape,
    scale: 1 / 255,
    labels: Int32Array.from(labels),
    classes,
    ...(opts.preprocess ? { preprocess: formatPreprocess(opts.preprocess) } : {}),
    async read(indices) {
      checkIndices(spec, videos.length, indices);
      const x = new Uint8Array(indices.length * per);
      const jobs: (() => Promise<void>)[] = [];
      for (let k = 0; k < indices.length; k++) {
        const frames = await framesOf(videos[indices[k]], folder);
        if (frames.length === 0)
          throw new SpikeportError(
            'invalid-data',
            `${spec}: the video folder ${videos[indices[k]]} has no frame images (${IMAGE_EXTENSIONS.join(', ')})`,
          );
        for (let i = 0; i < L; i++) {
          const file = frames[clipFrame(i, frames.length, L)];
          jobs.push(async () => {
            await decodeImage(file, [C, H, W], opts.preprocess, x, k * per + i * H * W, L * H * W, { folder });
          });
        }
      }
      await limited(jobs, DECODE_CONCURRENCY);
      return { x };
    },
  };
}

function readText(file: string, what: string): string {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    throw new SpikeportError('io', `no such file: ${file} (${what})`);
  }
  if (!st.isFile()) throw new SpikeportError('io', `${file} is not a regular file`);
  if (st.size > MAX_TEXT_BYTES)
    throw new SpikeportError(
      'invalid-data',
      `${file} is ${(st.size / 2 ** 20).toFixed(0)} MiB, more than a text file spikeport reads (${(MAX_TEXT_BYTES / 2 ** 20).toFixed(0)} MiB, a JavaScript string's limit)`,
    );
  return fs.readFileSync(file, 'utf8');
}

/** The first file that exists of `dir/name` + each extension. */
function withExtension(dir: string, name: string, exts: readonly string[]): string {
  for (const e of exts) {
    const f = path.join(dir, name + e);
    if (fs.existsSync(f)) return f;
  }
  return path.join(dir, name + exts[0]);
}

/** Pascal VOC segmentation, streamed: images and masks read per batch. */
export function openVoc(spec: string, dir: string, split: string, opts: ImageOptions): Dataset {
  const [C, H, W] = checkImageShape(spec, opts.sampleShape);
  if (!/^[\w.-]+$/.test(split))
    throw new SpikeportError('invalid-data', `${spec}: the split "${split}" is not a file name`);
  const folder = dataFolder(spec, dir, opts.followLinks);
  const list = path.join(dir, 'ImageSets', 'Segmentation', `${split}.txt`);
  checkInside(folder, list);
  const ids = readText(list, `the ${split} split of ${spec}`)
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter(Boolean);
  if (ids.length === 0) throw new SpikeportError('invalid-data', `${spec}: ${list} lists no images`);
  const bad = ids.find((id) => !/^[\w.-]+$/.test(id) || id === '.' || id === '..');
  if (bad !== undefined)
    throw new SpikeportError('invalid-data', `${spec}: ${list} lists "${bad}", which is not a file name`);
  const per = C * H * W;
  return {
    name: spec,
    size: ids.length,
    sampleShape: opts.sampleShape,
    scale: 1 / 255,
    labels: null,
    maskShape: [H, W],
    ...(opts.preprocess ? { preprocess: formatPreprocess(opts.preprocess) } : {}),
    async read(indices) {
      checkIndices(spec, ids.length, indices);
      return readWithMasks(indices, per, [H, W], async (i, x, at) => {
        const image = withExtension(path.join(dir, 'JPEGImages'), ids[i], ['.jpg', '.jpeg', '.png']);
        // The SBD-augmented set (train_aug) keeps its masks in SegmentationClassAug.
        let maskFile = path.join(dir, 'SegmentationClass', `${ids[i]}.png`);
        const aug = path.join(dir, 'SegmentationClassAug', `${ids[i]}.png`);
        if (!fs.existsSync(maskFile) && fs.existsSync(aug)) maskFile = aug;
        const origin = { folder, listedIn: list };
        const placed = await decodeImage(image, opts.sampleShape, opts.preprocess, x, at, undefined, origin);
        await checkDataFile(maskFile, origin);
        // A mask has its image's size (checked on its header, before inflating anything), and
        // its file is about that many bytes at most: deflate adds a few bytes per 16 KiB to
        // rows it cannot compress; 1 MiB more for other chunks.
        const { width: mw, height: mh } = placed;
        const bytes = readRegularFile(
          maskFile,
          Math.ceil(mh * (mw + 1) * 1.01) + 2 ** 20,
          `the mask of a ${mw}×${mh} image`,
        );
        return { mask: decodeLabelPng(bytes, maskFile, { width: mw, height: mh, of: image }).data, placed };
      });
    },
  };
}

/** COCO detection, streamed: the annotation file read whole (boxes, names), images per batch. */
export function openCoco(
  spec: string,
  imagesDir: string,
  annotations: string,
  opts: ImageOptions & {
    readonly categories?: readonly number[];
    readonly minArea?: number;
  },
): Dataset {
  checkImageShape(spec, opts.sampleShape);
  const folder = dataFolder(spec, imagesDir, opts.followLinks);
  let json: unknown;
  try {
    json = JSON.parse(readText(annotations, `the annotations of ${spec}`));
  } catch (e) {
    if (e instanceof SpikeportError) throw e;
    throw new SpikeportError('invalid-data', `${annotations} is not JSON (${(e as Error).message})`);
  }
  const j = json as { images?: unknown; annotations?: unknown; categories?: unknown };
  const where = (what: string): SpikeportError => new SpikeportError('invalid-data', `${annotations}: ${what}`);
  if (!Array.isArray(j.images) || !Array.isArray(j.annotations) || !Array.isArray(j.categories))
    throw where('expected arrays "images", "annotations" and "categories" (COCO detection format)');
  for (const key of ['images', 'annotations', 'categories'] as const) {
    const k = (j[key] as unknown[]).findIndex((x) => typeof x !== 'object' || x === null || Array.isArray(x));
    if (k >= 0) throw where(`${key}[${k}] is not an object`);
  }
  const images = (j.images as { id?: unknown; file_name?: unknown }[])
    .map((im, k) => {
      if (!Number.isSafeInteger(im.id) || typeof im.file_name !== 'string')
        throw where(`images[${k}] needs an integer "id" and a "file_name"`);
      const name = im.file_name;
      if (path.isAbsolute(name) || name.split(/[\\/]/).includes('..'))
        throw where(`images[${k}].file_name "${name}" leaves the images folder`);
      return { id: im.id as number, file: path.join(imagesDir, name) };
    })
    .sort((a, b) => a.id - b.id);
  if (images.length === 0) throw where('no images');
  const index = new Map(images.map((im, i) => [im.id, i]));
  if (index.size !== images.length) throw where('two images have the same id');
  const categories = new Map<number, number>();
  const names = new Map<number, string>();
  const order = opts.classNames ? new Map(opts.classNames.map((n, i) => [n, i])) : null;
  (j.categories as { id?: unknown; name?: unknown }[]).forEach((c, k) => {
    if (!Number.isSafeInteger(c.id)) throw where(`categories[${k}] needs an integer "id"`);
    if (names.has(c.id as number)) throw where(`categories[${k}] has the id ${String(c.id)}, as an earlier category`);
    const name = typeof c.name === 'string' ? c.name : String(c.id);
    names.set(c.id as number, name);
    // With the model's class names: a category is the class of its name (absent: not the model's).
    const label = order ? order.get(name) : opts.categories ? undefined : k;
    if (label !== undefined) categories.set(c.id as number, label);
  });
  const kept = opts.categories ? keptCategories(opts.categories, names, annotations) : null;
  if (kept) for (const [id, label] of kept) categories.set(id, label);
  const classes = opts.classNames
    ? [...opts.classNames]
    : opts.categories
      ? opts.categories.map((id) => (id === 0 ? 'background' : (names.get(id) as string)))
      : [...names.values()];
  let boxes: DetectionBox[] = [];
  const areas: number[][] = images.map(() => []);
  (
    j.annotations as { image_id?: unknown; category_id?: unknown; bbox?: unknown; iscrowd?: unknown; area?: unknown }[]
  ).forEach((a, k) => {
    // COCO's ids are numbers: "0" (a string) is not the image 0.
    for (const key of ['image_id', 'category_id'] as const)
      if (!Number.isSafeInteger(a[key]))
        throw where(`annotations[${k}].${key} must be an integer (got ${JSON.stringify(a[key]) ?? 'nothing'})`);
    const image = index.get(a.image_id as number);
    if (image === undefined)
      throw where(`annotations[${k}] refers to the image id ${String(a.image_id)}, which is not in "images"`);
    const label = categories.get(a.category_id as number);
    if (label === undefined && kept && names.has(a.category_id as number)) return; // a category left out
    if (label === undefined) {
      const name = names.get(a.category_id as number);
      throw where(
        name === undefined
          ? `annotations[${k}] has the category id ${String(a.category_id)}, which is not in "categories"`
          : `annotations[${k}] has the category "${name}", which is not one of the model's classes (${field('classNames')})`,
      );
    }
    const b = a.bbox;
    if (!Array.isArray(b) || b.length !== 4 || !b.every((v) => typeof v === 'number' && Number.isFinite(v)))
      throw where(`annotations[${k}].bbox must be [x, y, w, h]`);
    boxes.push({
      image,
      label,
      x: b[0],
      y: b[1],
      w: b[2],
      h: b[3],
      ...(a.iscrowd === 1 ? { crowd: true as const } : {}),
    });
    if (opts.minArea !== undefined) areas[image].push(areaOf(a, `${annotations}: annotations[${k}]`));
  });
  if (opts.minArea !== undefined) {
    // Only images with enough object pixels (torchvision's segmentation reference trains on these).
    const kept = imagesWithObjects(areas, opts.minArea);
    if (kept.length === 0) throw where(`no image has objects of more than ${opts.minArea} pixels in all (minArea)`);
    const renumber = new Map(kept.map((old, i) => [old, i]));
    boxes = boxes.filter((b) => renumber.has(b.image)).map((b) => ({ ...b, image: renumber.get(b.image) as number }));
    images.splice(0, images.length, ...kept.map((i) => images[i]));
  }
  const per = opts.sampleShape.reduce((p, q) => p * q, 1);
  return {
    name: spec,
    size: images.length,
    sampleShape: opts.sampleShape,
    scale: 1 / 255,
    labels: null,
    boxes,
    classes,
    ...(opts.preprocess ? { preprocess: formatPreprocess(opts.preprocess) } : {}),
    async read(indices) {
      checkIndices(spec, images.length, indices);
      const x = new Uint8Array(indices.length * per);
      const placements: Placement[] = new Array<Placement>(indices.length);
      await limited(
        indices.map((i, k) => async () => {
          placements[k] = await decodeImage(images[i].file, opts.sampleShape, opts.preprocess, x, k * per, undefined, {
            folder,
            listedIn: annotations,
          });
        }),
        DECODE_CONCURRENCY,
      );
      return { x, placements };
    },
  };
}
