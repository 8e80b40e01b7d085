/**
 * Which frames of a video make its clips, as torchvision's video datasets choose them
 * (`VideoClips` with `frame_rate`, then `UniformClipSampler`):
 *
 * 1. Resampling to `rate` frames per second from the video's `fps`: with step = fps / rate an
 *    integer, every step-th frame (⌈n / step⌉ of them); otherwise ⌊n · rate / fps⌋ frames, frame
 *    ⌊i · step⌋ for the i-th, computed in float32 as torch computes it. No rate: every frame.
 * 2. Clips: every run of L consecutive resampled frames (one frame apart), n' − L + 1 of them.
 * 3. K clips per video, evenly spaced: ⌊linspace(0, clips − 1, K)⌋ in float32, repeating clips
 *    when a video has fewer than K.
 *
 * torchvision computes step 3 with an offset, the number of clips of all videos before, and in
 * float32; here each video's positions are computed from 0. The two agree wherever float32 holds
 * the positions exactly, which for K = 5 (quarter steps) is every data set of fewer than 2²²
 * clips (Kinetics-400's validation set has about 2.7 million at 15 fps).
 */

const f32 = Math.fround;

/** The original frame index of each resampled frame of a video of `n` frames at `fps`, resampled to `rate` (undefined: none). */
export function resampledFrames(n: number, fps: number, rate?: number): number[] {
  if (rate === undefined || rate === fps) return Array.from({ length: n }, (_, i) => i);
  const step = fps / rate;
  if (Number.isInteger(step)) return Array.from({ length: Math.ceil(n / step) }, (_, i) => i * step);
  const total = Math.floor(n * (rate / fps));
  const s = f32(step);
  return Array.from({ length: total }, (_, i) => Math.floor(f32(f32(i) * s)));
}

/** Floats per vector in torch's CPU kernels on AVX2 machines (8 × 32 bits). */
const VECTOR = 8;

/** a·b + c rounded once to float32, as an FMA instruction computes it (the product is exact in a double). */
function fma32(a: number, b: number, c: number): number {
  return f32(a * b + c);
}

/**
 * torch.linspace(start, end, steps) in float32 as its AVX2 CPU kernel computes it (the build
 * x86-64 machines run; its compiler fuses multiply-adds): the first half from the start
 * (start + step·i), the rest from the end (end − step·(steps − 1 − i)), element by element;
 * but runs of 2 × 8 values go through the vector path, which computes each vector's first
 * element that way and the others as first + k·step. Fewer than 16 values: elements only.
 */
export function linspace32(start: number, end: number, steps: number): number[] {
  const a = f32(start);
  const b = f32(end);
  if (steps === 1) return [a];
  const step = f32(f32(b - a) / (steps - 1));
  const half = Math.floor(steps / 2);
  const at = (i: number): number => (i < half ? fma32(step, i, a) : fma32(-step, steps - i - 1, b));
  const out: number[] = [];
  let i = 0;
  for (; i + 2 * VECTOR <= steps; i += 2 * VECTOR) {
    for (const v of [i, i + VECTOR]) {
      const base = at(v);
      out.push(base);
      for (let k = 1; k < VECTOR; k++) out.push(fma32(k, step, base));
    }
  }
  for (; i < steps; i++) out.push(at(i));
  return out;
}

/** UniformClipSampler's K clip positions among a video's `clips` clips (clips ≥ 1). */
export function uniformClips(clips: number, K: number): number[] {
  return linspace32(0, clips - 1, K).map((v) => Math.floor(v));
}

/** Clips of L frames in `frames` resampled frames (0 when the video is shorter than one clip). */
export function clipCount(frames: number, L: number): number {
  return Math.max(0, frames - L + 1);
}
