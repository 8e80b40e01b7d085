/**
 * Video files as a streamed data set of clips, the Kinetics way: `videofiles:DIR` reads
 * DIR/<class>/…/<video>.mp4|.avi|.webm|.mkv (classes sorted by name give the labels, files in
 * torchvision's order), decodes with FFmpeg (data/ffmpeg.ts) and takes K clips of L frames from
 * each video as torchvision's VideoClips + UniformClipSampler choose them (data/clip-sampler.ts):
 * frames resampled to `frameRate`, K evenly spaced clips. Sample k·K + j is clip j of video k.
 *
 * Nothing is decoded when the set is opened. A batch probes its videos (frame count and rate)
 * and decodes each once, up to the last frame its clips need, keeping only those frames after
 * the preprocessing: memory holds the batch, never a whole video, and does not grow with the
 * number of videos. A video FFmpeg cannot read, a zero-length video and a video shorter than
 * one clip stop the run with one line naming the file (torchvision leaves the last two out
 * quietly, which changes the number of videos scored).
 */
import path from 'node:path';
import { SpikeportError, checkInteger } from '../errors.js';
import type { Dataset } from './dataset.js';
import { checkIndices } from './dataset.js';
import { checkDataFile, classFolders, filesUnder, folderLabels, limited } from './images.js';
import { dataFolder } from './folder.js';
import { cropPixels, formatPreprocess, geometry, toPlanes, type Preprocess } from './preprocess.js';
import { resizeTensorBilinear } from './tensor-resize.js';
import { DEMUXERS, decodeFrames, findFfmpeg, probeVideo } from './ffmpeg.js';
import { clipCount, resampledFrames, uniformClips } from './clip-sampler.js';

/** The video files a folder source reads (lower-case extensions). */
export const VIDEO_EXTENSIONS = Object.keys(DEMUXERS);

/** Clips per video unless told (torchvision's video reference evaluates 5). */
export const DEFAULT_CLIPS_PER_VIDEO = 5;

/** Videos decoded at once (each an FFmpeg process). */
const DECODE_CONCURRENCY = 2;

export interface VideoFileOptions {
  /** [C, L, H, W]: channels (1 or 3), frames per clip, frame size. */
  readonly sampleShape: readonly number[];
  readonly preprocess: Preprocess | null;
  /** Resample every video to this many frames per second (absent: each video's own rate). */
  readonly frameRate?: number;
  /** Clips taken from each video (default 5). */
  readonly clipsPerVideo?: number;
  /** The model's class names in its order: class folders are then matched by name. */
  readonly classNames?: readonly string[];
  /** Follow symbolic links that lead outside the data set's folder (default: refuse them). */
  readonly followLinks?: boolean;
}

function isVideoName(name: string): boolean {
  const lower = name.toLowerCase();
  return VIDEO_EXTENSIONS.some((e) => lower.endsWith(e));
}

/** Check a frame rate option: a number of frames per second > 0. */
export function checkFrameRate(rate: number | undefined): void {
  if (rate !== undefined && !(typeof rate === 'number' && Number.isFinite(rate) && rate > 0 && rate <= 1000))
    throw new SpikeportError(
      'invalid-option',
      `frameRate must be a number of frames per second in (0, 1000] (got ${String(rate)})`,
      'frameRate',
    );
}

/** Video files in class folders, streamed as clips: [C, L, H, W] per sample. */
export function openVideoFiles(spec: string, dir: string, opts: VideoFileOptions): Dataset {
  const shape = opts.sampleShape;
  if (shape.length !== 4 || (shape[0] !== 1 && shape[0] !== 3) || !shape.every((d) => d > 0)) {
    throw new SpikeportError(
      'invalid-data',
      `data set ${spec}: video clips need a model input of shape [1 or 3, frames, H, W] per sample (this model takes ${shape.join('x') || 'nothing known'})`,
    );
  }
  checkFrameRate(opts.frameRate);
  const K = opts.clipsPerVideo ?? DEFAULT_CLIPS_PER_VIDEO;
  checkInteger('clipsPerVideo', K, 1, 1000);
  const [C, L, H, W] = shape;
  const folder = dataFolder(spec, dir, opts.followLinks);
  const folders = classFolders(dir, folder);
  if (folders.length === 0)
    throw new SpikeportError(
      'invalid-data',
      `${spec}: no class folders in ${dir} (expected ${dir}/<class>/<video>${VIDEO_EXTENSIONS.join('|')})`,
    );
  const videos: string[] = [];
  const videoLabels: number[] = [];
  const { classes, labelOf } = folderLabels(spec, dir, folders, opts.classNames);
  folders.forEach((c) => {
    const label = labelOf(c);
    const found = filesUnder(path.join(dir, c), isVideoName, folder);
    if (found.length === 0)
      throw new SpikeportError(
        'invalid-data',
        `${spec}: the class folder ${path.join(dir, c)} has no video files (${VIDEO_EXTENSIONS.join(', ')})`,
      );
    for (const f of found) {
      videos.push(f);
      videoLabels.push(label);
    }
  });
  findFfmpeg(); // say now, not at the first batch, when FFmpeg is missing
  const labels = new Int32Array(videos.length * K);
  videoLabels.forEach((l, v) => labels.fill(l, v * K, (v + 1) * K));
  const plane = H * W;
  const per = C * L * plane;
  return {
    name: spec,
    size: videos.length * K,
    sampleShape: shape,
    scale: 1 / 255,
    labels,
    classes,
    clipsPerVideo: K,
    ...(opts.frameRate !== undefined ? { frameRate: opts.frameRate } : {}),
    ...(opts.preprocess ? { preprocess: formatPreprocess(opts.preprocess) } : {}),
    async read(indices) {
      checkIndices(spec, videos.length * K, indices);
      const x = new Uint8Array(indices.length * per);
      // The batch's samples by video: each video is probed and decoded once.
      const byVideo = new Map<number, { sample: number; clip: number }[]>();
      indices.forEach((s, k) => {
        const v = Math.floor(s / K);
        const list = byVideo.get(v) ?? [];
        list.push({ sample: k, clip: s % K });
        byVideo.set(v, list);
      });
      await limited(
        [...byVideo].map(([v, slots]) => async () => {
          const file = videos[v];
          // FFmpeg opens the path itself: a link out of the folder or a FIFO is refused first.
          await checkDataFile(file, { folder });
          const info = await probeVideo(file);
          const frames = resampledFrames(info.frames, info.fps, opts.frameRate);
          const clips = clipCount(frames.length, L);
          if (clips === 0)
            throw new SpikeportError(
              'invalid-data',
              `${file} has ${frames.length} frames${opts.frameRate !== undefined ? ` at ${opts.frameRate} frames per second` : ''}, fewer than one clip of ${L}: remove it from the data set (torchvision leaves such videos out)`,
            );
          const starts = uniformClips(clips, K);
          // Where each decoded frame goes: (sample slot, frame position in the clip).
          const targets = new Map<number, number[]>();
          for (const { sample, clip } of slots) {
            for (let i = 0; i < L; i++) {
              const f = frames[starts[clip] + i];
              const list = targets.get(f) ?? [];
              list.push(sample * per + i * plane);
              targets.set(f, list);
            }
          }
          const g = geometry(opts.preprocess, info.width, info.height, H, W, file);
          const planes = new Uint8Array(C * plane);
          await decodeFrames(file, info, new Set(targets.keys()), (f, rgb) => {
            let px: Uint8Array = rgb;
            let width = info.width;
            if (g.resize) {
              px = resizeTensorBilinear(px, width, info.height, 3, g.resize.width, g.resize.height);
              width = g.resize.width;
            }
            if (g.crop) px = cropPixels(px, width, 3, g.crop);
            toPlanes(px, plane, 3, C, planes, 0);
            for (const at of targets.get(f) as number[])
              for (let c = 0; c < C; c++) x.set(planes.subarray(c * plane, (c + 1) * plane), at + c * L * plane);
          });
        }),
        DECODE_CONCURRENCY,
      );
      return { x };
    },
  };
}
