/**
 * FFmpeg as a child process, for video files: `ffprobe` counts a video's frames and reads its
 * frame rate, `ffmpeg` decodes the frames asked for to raw RGB on a pipe.
 *
 * Which binaries: FFMPEG_PATH and FFPROBE_PATH if set; else the npm packages
 * `@ffmpeg-installer/ffmpeg` and `@ffprobe-installer/ffprobe` if installed next to spikeport;
 * else `ffmpeg` and `ffprobe` on the PATH.
 *
 * A file is handed to FFmpeg so that it reads that file and nothing else: an argument array
 * (no shell), the path absolute behind `file:` (never read as an option or as another protocol,
 * e.g. `concat:` or `http:`), only the file protocol allowed, and the demuxer forced from the
 * extension (a playlist or concat script renamed `.mp4` is not followed). Frames come as RGB at
 * the size the probe reported (a frame of another size is scaled to it), so each frame on the
 * pipe has a known, bounded size; colours are converted with BT.601 coefficients, as PyAV's
 * `to_rgb()` (torchvision's video reader) does whatever the file's colour tags say.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { SpikeportError } from '../errors.js';

export interface FfmpegTools {
  readonly ffmpeg: string;
  readonly ffprobe: string;
  /** Where they were found, for messages. */
  readonly from: string;
}

/** The demuxer FFmpeg is told to use for each video extension. */
export const DEMUXERS: Readonly<Record<string, string>> = {
  '.mp4': 'mov',
  '.avi': 'avi',
  '.webm': 'matroska',
  '.mkv': 'matroska',
};

/** Largest frame decoded (pixels): 8192 × 8192. */
export const MAX_VIDEO_PIXELS = 2 ** 26;

/** Bytes of a child's output kept for messages (stderr) or parsing (ffprobe's JSON). */
const MAX_TEXT = 1 << 16;

let tools: FfmpegTools | null = null;

function fromPackage(name: string): string | null {
  try {
    const require = createRequire(import.meta.url);
    const p = (require(name) as { path?: unknown }).path;
    return typeof p === 'string' ? p : null;
  } catch {
    return null;
  }
}

function runs(bin: string): boolean {
  const r = spawnSync(bin, ['-version'], { stdio: ['ignore', 'ignore', 'ignore'], timeout: 30_000 });
  return r.status === 0;
}

/** The FFmpeg binaries to use (found once); a one-line error saying how to get them otherwise. */
export function findFfmpeg(): FfmpegTools {
  if (tools) return tools;
  const env = process.env;
  const candidates: FfmpegTools[] = [];
  if (env.FFMPEG_PATH || env.FFPROBE_PATH) {
    const ffmpeg = env.FFMPEG_PATH ?? 'ffmpeg';
    const ffprobe = env.FFPROBE_PATH ?? path.join(path.dirname(ffmpeg), 'ffprobe');
    candidates.push({ ffmpeg, ffprobe, from: 'FFMPEG_PATH / FFPROBE_PATH' });
  } else {
    const ffmpeg = fromPackage('@ffmpeg-installer/ffmpeg');
    const ffprobe = fromPackage('@ffprobe-installer/ffprobe');
    if (ffmpeg && ffprobe) candidates.push({ ffmpeg, ffprobe, from: 'the npm packages @ffmpeg-installer/*' });
    candidates.push({ ffmpeg: 'ffmpeg', ffprobe: 'ffprobe', from: 'the PATH' });
  }
  for (const c of candidates) {
    if (runs(c.ffmpeg) && runs(c.ffprobe)) {
      tools = c;
      return c;
    }
  }
  const tried = candidates.map((c) => `${c.ffmpeg} and ${c.ffprobe} (${c.from})`).join('; ');
  throw new SpikeportError(
    'invalid-data',
    `video files are decoded with FFmpeg, whose ffmpeg and ffprobe did not run (tried ${tried}): install FFmpeg (e.g. apt-get install ffmpeg), or npm install @ffmpeg-installer/ffmpeg @ffprobe-installer/ffprobe, or name the binaries in FFMPEG_PATH and FFPROBE_PATH`,
  );
}

/** The input arguments that make FFmpeg read exactly this file. */
function inputArgs(file: string): string[] {
  const demuxer = DEMUXERS[path.extname(file).toLowerCase()];
  if (!demuxer) throw new Error(`no demuxer for ${file}`);
  return ['-f', demuxer, '-protocol_whitelist', 'file', '-i', `file:${path.resolve(file)}`];
}

/** Children still running, killed if the process exits first (an error path, a signal handler). */
const live = new Set<ChildProcess>();
let exitHook = false;

function track(child: ChildProcess): void {
  live.add(child);
  child.once('close', () => live.delete(child));
  if (!exitHook) {
    exitHook = true;
    process.once('exit', () => {
      for (const c of live) c.kill('SIGKILL');
    });
  }
}

/** A bounded text sink: keeps the first MAX_TEXT bytes. */
function collector(): { add(b: Buffer): void; text(): string } {
  const parts: Buffer[] = [];
  let size = 0;
  return {
    add(b) {
      if (size >= MAX_TEXT) return;
      const part = b.subarray(0, MAX_TEXT - size);
      parts.push(part);
      size += part.length;
    },
    text: () => Buffer.concat(parts).toString('utf8'),
  };
}

/** FFmpeg's complaint in one line (its first error line, without the program's prefix). */
function complaint(stderr: string, fallback: string): string {
  const line = stderr
    .split(/\r?\n/)
    .map((l) => l.trim())
    .find((l) => l.length > 0);
  // Without FFmpeg's "[demuxer @ 0x…]" prefix, which names memory, not the problem.
  return (line ?? fallback).replace(/^\[[^\]]*@ 0x[0-9a-f]+\]\s*/, '').slice(0, 300);
}

export interface VideoInfo {
  /** Frames (packets with a timestamp) of the first video stream. */
  readonly frames: number;
  /** Its average frame rate. */
  readonly fps: number;
  readonly width: number;
  readonly height: number;
}

/** Frame count, frame rate and size of a video file's first video stream. */
export async function probeVideo(file: string): Promise<VideoInfo> {
  const t = findFfmpeg();
  let st: fs.Stats;
  try {
    st = await fs.promises.stat(file);
  } catch {
    throw new SpikeportError('io', `no such file: ${file} (was it removed while the data set was read?)`);
  }
  if (!st.isFile()) throw new SpikeportError('io', `${file} is not a regular file`);
  if (st.size === 0) throw new SpikeportError('invalid-data', `${file} is empty (a zero-length video)`);
  const args = [
    '-v',
    'error',
    '-select_streams',
    'v:0',
    '-count_packets',
    '-show_entries',
    'stream=nb_read_packets,avg_frame_rate,width,height',
    '-of',
    'json',
    ...inputArgs(file),
  ];
  const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>(
    (resolve, reject) => {
      const child = spawn(t.ffprobe, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      track(child);
      const out = collector();
      const err = collector();
      child.stdout.on('data', (b: Buffer) => out.add(b));
      child.stderr.on('data', (b: Buffer) => err.add(b));
      child.once('error', (e) => reject(new SpikeportError('io', `cannot run ${t.ffprobe} (${e.message})`)));
      child.once('close', (c) => resolve({ code: c, stdout: out.text(), stderr: err.text() }));
    },
  );
  if (code !== 0) throw unreadable(file, complaint(stderr, `ffprobe exited with ${String(code)}`));
  let stream: { nb_read_packets?: unknown; avg_frame_rate?: unknown; width?: unknown; height?: unknown } | undefined;
  try {
    stream = (JSON.parse(stdout) as { streams?: (typeof stream)[] }).streams?.[0];
  } catch {
    throw unreadable(file, 'ffprobe gave no readable answer');
  }
  if (!stream) throw new SpikeportError('invalid-data', `${file} has no video stream`);
  const frames = Number(stream.nb_read_packets ?? 0);
  const [num, den] = String(stream.avg_frame_rate ?? '0/0')
    .split('/')
    .map(Number);
  const width = Number(stream.width);
  const height = Number(stream.height);
  if (!Number.isSafeInteger(frames) || frames <= 0)
    throw new SpikeportError('invalid-data', `${file} has no video frames (a zero-length video)`);
  if (!(num > 0 && den > 0))
    throw new SpikeportError('invalid-data', `${file}: FFmpeg knows no frame rate for its video`);
  if (!(Number.isSafeInteger(width) && Number.isSafeInteger(height) && width > 0 && height > 0))
    throw unreadable(file, 'no frame size');
  if (width * height > MAX_VIDEO_PIXELS)
    throw new SpikeportError(
      'invalid-data',
      `${file}: frames of ${width}×${height} are more than the ${MAX_VIDEO_PIXELS} pixels a video frame may have`,
    );
  return { frames, fps: num / den, width, height };
}

function unreadable(file: string, why: string): SpikeportError {
  return new SpikeportError('invalid-data', `${file} is not a video FFmpeg can read (${why})`);
}

/**
 * Decode frames 0..last of a video (as probed) and hand each frame whose index is in `wanted`
 * to `onFrame` as width × height × 3 RGB bytes (the buffer is reused: copy what you keep).
 * FFmpeg stops after the last frame wanted; it is killed if `onFrame` throws.
 */
export async function decodeFrames(
  file: string,
  info: VideoInfo,
  wanted: ReadonlySet<number>,
  onFrame: (index: number, rgb: Uint8Array) => void,
): Promise<void> {
  if (wanted.size === 0) return;
  const t = findFfmpeg();
  const last = Math.max(...wanted);
  const { width, height } = info;
  const frameBytes = width * height * 3;
  const args = [
    '-nostdin',
    '-hide_banner',
    '-v',
    'error',
    '-threads',
    '1',
    ...inputArgs(file),
    '-map',
    '0:v:0',
    '-an',
    '-sn',
    '-dn',
    '-vsync',
    'passthrough',
    '-frames:v',
    String(last + 1),
    '-vf',
    `scale=w=${width}:h=${height}:in_color_matrix=bt601`,
    '-pix_fmt',
    'rgb24',
    '-f',
    'rawvideo',
    'pipe:1',
  ];
  await new Promise<void>((resolve, reject) => {
    const child = spawn(t.ffmpeg, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    track(child);
    const err = collector();
    const frame = new Uint8Array(frameBytes);
    let filled = 0;
    let index = 0;
    let failed: unknown = null;
    const fail = (e: unknown): void => {
      failed ??= e;
      child.kill('SIGKILL');
    };
    child.stdout.on('data', (b: Buffer) => {
      if (failed !== null) return;
      try {
        let off = 0;
        while (off < b.length) {
          const n = Math.min(frameBytes - filled, b.length - off);
          frame.set(b.subarray(off, off + n), filled);
          filled += n;
          off += n;
          if (filled === frameBytes) {
            if (index > last) throw unreadable(file, 'FFmpeg gave more frames than asked for');
            if (wanted.has(index)) onFrame(index, frame);
            index++;
            filled = 0;
          }
        }
      } catch (e) {
        fail(e);
      }
    });
    child.stderr.on('data', (b: Buffer) => err.add(b));
    child.once('error', (e) => fail(new SpikeportError('io', `cannot run ${t.ffmpeg} (${e.message})`)));
    child.once('close', (code) => {
      if (failed !== null) reject(failed);
      else if (code !== 0) reject(unreadable(file, complaint(err.text(), `ffmpeg exited with ${String(code)}`)));
      else if (index <= last)
        reject(
          new SpikeportError(
            'invalid-data',
            `${file}: FFmpeg decoded ${index} frames, but the clips need frame ${last + 1} of the ${info.frames} it counted (a damaged or truncated video?)`,
          ),
        );
      else resolve();
    });
  });
}
