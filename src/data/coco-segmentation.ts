/**
 * COCO for semantic segmentation (`coco:IMAGES@ANNOTATIONS.json` opened with masks): each
 * image's objects drawn into one class map as torchvision's segmentation reference does
 * (data/coco-masks.ts), streamed with the images.
 *
 * Classes: with `categories` (COCO category ids; the position is the class, 0 = background,
 * e.g. the `voc` preset), annotations of other categories are left out and the rest renumbered,
 * as the reference's FilterAndRemapCocoCategories does; without it, every category of the file
 * in its order, after background (class 0). Images in id order (torchvision's CocoDetection),
 * all of them, with or without objects. Every segmentation is checked when the set is opened.
 */
import path from 'node:path';
import { SpikeportError } from '../errors.js';
import { MAX_TEXT_BYTES, readRegularFile } from '../files.js';
import type { Dataset } from './dataset.js';
import { checkIndices } from './dataset.js';
import { checkImageShape, decodeImage, readWithMasks, type ImageOptions } from './images.js';
import { formatPreprocess } from './preprocess.js';
import { dataFolder } from './folder.js';
import {
  areaOf,
  classMap,
  imagesWithObjects,
  keptCategories,
  parseSegmentation,
  type MaskObject,
} from './coco-masks.js';

export interface CocoSegmentationOptions extends ImageOptions {
  /** COCO category ids by class index (0 = background); default: all, in the file's order, after background. */
  readonly categories?: readonly number[];
  /** Keep only images whose kept objects' areas add up to more than this (data/coco-masks.ts imagesWithObjects). */
  readonly minArea?: number;
}

interface CocoImage {
  readonly id: number;
  readonly file: string;
  readonly width: number;
  readonly height: number;
  readonly objects: MaskObject[];
}

/** Most classes a mask can hold (its bytes; 255 means ignore). */
const MAX_CLASSES = 255;

/** Read and parse the annotation file (a one-line error when it is not JSON). */
export function readAnnotations(file: string, spec: string): unknown {
  let text: string;
  try {
    text = readRegularFile(file, MAX_TEXT_BYTES, 'a text file').toString('utf8');
  } catch (e) {
    if (e instanceof SpikeportError) throw new SpikeportError(e.code, `${e.message} (the annotations of ${spec})`);
    throw e;
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new SpikeportError('invalid-data', `${file} is not JSON (${(e as Error).message})`);
  }
}

/** COCO with per-pixel class maps from the segmentations, streamed. */
export function openCocoSegmentation(
  spec: string,
  imagesDir: string,
  annotations: string,
  opts: CocoSegmentationOptions,
): Dataset {
  const [C, H, W] = checkImageShape(spec, opts.sampleShape);
  if (opts.classNames)
    throw new SpikeportError(
      'invalid-option',
      'classNames match COCO categories by name for detection; a segmentation class map takes categories (COCO category ids by class, 0 = background)',
      'classNames',
    );
  const folder = dataFolder(spec, imagesDir, opts.followLinks);
  const j = readAnnotations(annotations, spec) as { images?: unknown; annotations?: unknown; categories?: unknown };
  const where = (what: string): SpikeportError => new SpikeportError('invalid-data', `${annotations}: ${what}`);
  if (!Array.isArray(j.images) || !Array.isArray(j.annotations) || !Array.isArray(j.categories))
    throw where('expected arrays "images", "annotations" and "categories" (COCO format)');
  const images: CocoImage[] = (j.images as { id?: unknown; file_name?: unknown; width?: unknown; height?: unknown }[])
    .map((im, k) => {
      if (!Number.isSafeInteger(im.id) || typeof im.file_name !== 'string')
        throw where(`images[${k}] needs an integer "id" and a "file_name"`);
      const size = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) > 0;
      if (!size(im.width) || !size(im.height))
        throw where(`images[${k}] needs its "width" and "height" in pixels (the masks are drawn at that size)`);
      const name = im.file_name;
      if (path.isAbsolute(name) || name.split(/[\\/]/).includes('..'))
        throw where(`images[${k}].file_name "${name}" leaves the images folder`);
      return { id: im.id as number, file: path.join(imagesDir, name), width: im.width, height: im.height, objects: [] };
    })
    .sort((a, b) => a.id - b.id);
  if (images.length === 0) throw where('no images');
  const index = new Map(images.map((im, i) => [im.id, i]));
  if (index.size !== images.length) throw where('two images have the same id');

  const names = new Map<number, string>();
  (j.categories as { id?: unknown; name?: unknown }[]).forEach((c, k) => {
    if (!Number.isSafeInteger(c.id) || (c.id as number) <= 0)
      throw where(`categories[${k}] needs an integer "id" ≥ 1 (0 is background)`);
    if (names.has(c.id as number)) throw where(`categories[${k}] repeats the category id ${String(c.id)}`);
    names.set(c.id as number, typeof c.name === 'string' ? c.name : String(c.id));
  });
  const ids = opts.categories ?? [0, ...names.keys()];
  if (ids.length > MAX_CLASSES)
    throw new SpikeportError(
      'invalid-option',
      `categories lists ${ids.length} classes; masks hold at most ${MAX_CLASSES} (255 marks ignored pixels)`,
      'categories',
    );
  const labelOf = keptCategories(ids, names, annotations);
  const classes = ids.map((id) => (id === 0 ? 'background' : (names.get(id) as string)));

  const areas: number[][] = images.map(() => []);
  (j.annotations as { image_id?: unknown; category_id?: unknown; segmentation?: unknown; area?: unknown }[]).forEach(
    (a, k) => {
      const i = typeof a.image_id === 'number' ? index.get(a.image_id) : undefined;
      if (i === undefined)
        throw where(`annotations[${k}] refers to the image id ${JSON.stringify(a.image_id)}, which is not in "images"`);
      if (typeof a.category_id !== 'number' || !names.has(a.category_id))
        throw where(
          `annotations[${k}] has the category id ${JSON.stringify(a.category_id)}, which is not in "categories"`,
        );
      const label = labelOf.get(a.category_id);
      if (label === undefined) return; // a category left out
      const im = images[i];
      const segmentation = parseSegmentation(
        a.segmentation,
        im.height,
        im.width,
        `${annotations}: annotations[${k}].segmentation`,
      );
      im.objects.push({ label, segmentation });
      if (opts.minArea !== undefined) areas[i].push(areaOf(a, `${annotations}: annotations[${k}]`));
    },
  );
  if (opts.minArea !== undefined) {
    const kept = imagesWithObjects(areas, opts.minArea).map((i) => images[i]);
    if (kept.length === 0)
      throw new SpikeportError(
        'invalid-data',
        `${annotations}: no image has objects of more than ${opts.minArea} pixels in all (minArea)`,
      );
    images.splice(0, images.length, ...kept);
  }

  const per = C * H * W;
  return {
    name: spec,
    size: images.length,
    sampleShape: opts.sampleShape,
    scale: 1 / 255,
    labels: null,
    maskShape: [H, W],
    classes,
    ...(opts.preprocess ? { preprocess: formatPreprocess(opts.preprocess) } : {}),
    async read(indices) {
      checkIndices(spec, images.length, indices);
      return readWithMasks(indices, per, [H, W], async (i, x, at) => {
        const im = images[i];
        const placed = await decodeImage(im.file, opts.sampleShape, opts.preprocess, x, at, undefined, {
          folder,
          listedIn: annotations,
        });
        if (placed.width !== im.width || placed.height !== im.height)
          throw new SpikeportError(
            'invalid-data',
            `${im.file} is ${placed.width}×${placed.height} but ${annotations} says ${im.width}×${im.height} (image id ${im.id})`,
          );
        return { mask: classMap(im.objects, im.height, im.width), placed };
      });
    },
  };
}
