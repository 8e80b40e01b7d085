/**
 * Memory of a simulation over video files against the number of videos: frames are decoded per
 * batch, so the peak must not grow with the data set.
 *
 *   node dist/bench/video-memory.js [--videos 8,32,128] [--frames 90] [--size 160x120] [--batch 10]
 *
 * Makes the videos with FFmpeg (its testsrc2 pattern, hue turned per video, mp4, 30 fps), a small
 * video network for 3 × 16 × 112 × 112 clips (the Kinetics preset, 15 fps, 5 clips per video),
 * converts it once, then simulates each set in a fresh process (T = 4) and prints its peak RSS.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { GraphBuilder, floatInput } from '../src/onnx/builder.js';
import { encodeModel } from '../src/onnx/codec.js';
import { floatTensor, type Graph } from '../src/graph/ir.js';
import { findFfmpeg } from '../src/data/ffmpeg.js';
import { openDataset } from '../src/data/sources.js';
import { convert, loadSnn, simulate } from '../src/index.js';
import { arg, argv } from './args.js';

const OPEN = { sampleShape: [3, 16, 112, 112], preprocess: { kind: 'kinetics' } as const, frameRate: 15 };

/** Conv3d 3 → 4 (1×1×1) + ReLU, global mean, 4 logits: as small as a video network gets. */
function net(): Graph {
  const b = new GraphBuilder(13);
  const w = b.constant('W', floatTensor([4, 3, 1, 1, 1], [1, 0, 0, 0, 1, 0, 0, 0, 1, 0.5, 0.5, 0]));
  const h = b.op('Relu', [b.op('Conv', ['input', w], { kernel_shape: [1, 1, 1] })]);
  const m = b.op('Flatten', [b.op('GlobalAveragePool', [h])], { axis: 1 });
  const g = b.constant('G', floatTensor([4, 4], [1, -1, 0, 0, -1, 1, 0, 0, 0, 0, 1, -1, 0, 0, -1, 1]));
  const out = b.op('Gemm', [m, g, b.constant('C', floatTensor([4], [0, 0, 0, 0]))], { transB: 1 });
  return {
    name: 'video-memory',
    nodes: b.nodes,
    initializers: b.initializers,
    inputs: [floatInput('input', ['N', 3, 16, 112, 112])],
    outputs: [floatInput(out, null)],
    opset: 13,
    irVersion: 8,
    metadata: {},
  };
}

if (argv[0] === '--child') {
  // One simulation over a folder of videos, in its own process: print the peak RSS in MB.
  const [, snnFile, dir, batch] = argv;
  const snn = await loadSnn(snnFile);
  const data = openDataset(`videofiles:${dir}`, undefined, OPEN);
  const t0 = performance.now();
  const r = await simulate(snn, data, { T: [4], batchSize: Number(batch), threads: 1 });
  const seconds = (performance.now() - t0) / 1000;
  process.stdout.write(
    JSON.stringify({
      rss: process.resourceUsage().maxRSS / 1024,
      clips: r.samples,
      seconds,
      metric: r.results[0].metric,
    }) + '\n',
  );
} else {
  const counts = arg('videos', '8,32,128').split(',').map(Number);
  const frames = Number(arg('frames', '90'));
  const [w, h] = arg('size', '160x120').split('x').map(Number);
  const batch = arg('batch', '10');
  const { ffmpeg } = findFfmpeg();
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'spikeport-video-memory-'));
  try {
    const model = path.join(root, 'net.onnx');
    fs.writeFileSync(model, encodeModel(net()));
    const sets = counts.map((n) => {
      const dir = path.join(root, `videos-${n}`);
      for (let v = 0; v < n; v++) {
        const cls = path.join(dir, `class${v % 4}`);
        fs.mkdirSync(cls, { recursive: true });
        const r = spawnSync(ffmpeg, [
          '-v',
          'error',
          '-f',
          'lavfi',
          '-i',
          `testsrc2=s=${w}x${h}:r=30`,
          '-frames:v',
          String(frames),
          '-vf',
          `hue=h=${(v * 37) % 360}`,
          '-pix_fmt',
          'yuv420p',
          path.join(cls, `${v}.mp4`),
        ]);
        if (r.status !== 0) throw new Error(r.stderr.toString());
      }
      return { n, dir };
    });
    const snnFile = path.join(root, 'net.snn.onnx');
    const snn = await convert(model, openDataset(`videofiles:${sets[0].dir}`, undefined, OPEN), {
      iterations: 2,
      batchSize: 5,
    });
    snn.save(snnFile);
    process.stdout.write(
      `videos of ${w}×${h}, ${frames} frames at 30 fps; clips 3×16×112×112, 5 per video, batch ${batch}\n\n`,
    );
    process.stdout.write('| videos | clips | peak RSS (MB) | × the smallest | seconds |\n|---:|---:|---:|---:|---:|\n');
    let first = 0;
    for (const { n, dir } of sets) {
      const me = fileURLToPath(import.meta.url);
      const r = spawnSync(process.execPath, [me, '--child', snnFile, dir, batch], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(r.stderr);
      const m = JSON.parse(r.stdout) as { rss: number; clips: number; seconds: number };
      first ||= m.rss;
      process.stdout.write(
        `| ${n} | ${m.clips} | ${m.rss.toFixed(0)} | ${(m.rss / first).toFixed(2)} | ${m.seconds.toFixed(1)} |\n`,
      );
    }
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}
