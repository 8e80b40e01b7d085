/**
 * Video files (`videofiles:`): the clips torchvision's VideoClips + UniformClipSampler choose and
 * their frames, against a fixture made once by tools/video_reference.py with Debian's torchvision
 * and PyAV (committed with its videos); the arithmetic that picks frames (resampling, linspace)
 * and resizes them (torch's bilinear without antialiasing) against torch's own numbers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { clipCount, resampledFrames, uniformClips } from '../src/data/clip-sampler.js';
import { resizeTensorBilinear } from '../src/data/tensor-resize.js';
import { decodeFrames, findFfmpeg, probeVideo } from '../src/data/ffmpeg.js';
import { openDataset } from '../src/data/sources.js';
import { encodeModel } from '../src/onnx/codec.js';
import { convert, simulate } from '../src/index.js';
import { simulateShard } from '../src/api/simulate.js';
import { mergeShards } from '../src/api/merge.js';
import { simulateWindows } from '../src/evaluate/windows.js';
import { buildGraph } from './helpers.js';
import { floatTensor, type Graph } from '../src/graph/ir.js';
import { tempDir } from './temp.js';
import { checkClassCount } from '../src/tasks/task.js';
import type { SpikeportError } from '../src/errors.js';

const FIXTURE = path.join(process.cwd(), 'test', 'fixtures', 'video');
const CLI = path.join(process.cwd(), 'dist', 'src', 'cli', 'main.js');

interface Reference {
  clip_len: number;
  clips_per_video: number;
  frame_rate: number;
  crop: number;
  videos: {
    file: string;
    timestamps: number;
    fps: number;
    clips: number;
    sampled: { clip: number; frames: string; kinetics: string }[];
  }[];
  linspace: { start: number; length: number; K: number; clips: number[] }[];
  resample: { frames: number; fps: number; rate: number; indices: number[] }[];
  bilinear: { height: number; width: number; outHeight: number; outWidth: number; input: string; output: string }[];
}

const ref = JSON.parse(fs.readFileSync(path.join(FIXTURE, 'reference.json'), 'utf8')) as Reference;

/** The FFmpeg tests need ffmpeg and ffprobe (.ci/run installs Debian's ffmpeg). */
const needsFfmpeg = ((): { skip: string | false } => {
  try {
    findFfmpeg();
    return { skip: false };
  } catch {
    return { skip: 'needs FFmpeg: ffmpeg and ffprobe on the PATH (Debian ffmpeg)' };
  }
})();

test('frames resampled to another rate are the ones torchvision takes (integer and fractional steps, up and down)', () => {
  for (const c of ref.resample)
    assert.deepEqual(resampledFrames(c.frames, c.fps, c.rate), c.indices, `${c.frames} frames at ${c.fps} fps`);
  // By hand: 30 → 15 fps takes every second frame (7 give 4); 10 → 15 fps repeats every other frame.
  assert.deepEqual(resampledFrames(7, 30, 15), [0, 2, 4, 6]);
  assert.deepEqual(resampledFrames(5, 10, 15), [0, 0, 1, 2, 2, 3, 4]);
});

test("clip positions are UniformClipSampler's: torch.linspace in float32, from 0 for each video", () => {
  let offsetCases = 0;
  for (const c of ref.linspace) {
    const ours = uniformClips(c.length, c.K);
    // torchvision counts from the clips of all videos before; where float32 holds its quarter
    // steps (K − 1 a power of two, fewer than 2²² clips) that changes nothing.
    const exact = c.start === 0 || ([2, 3, 5, 9, 17].includes(c.K) && c.start < 2 ** 22);
    if (c.start > 0) offsetCases++;
    if (exact) assert.deepEqual(ours, c.clips, `linspace(${c.start}, +${c.length - 1}, ${c.K})`);
  }
  assert.ok(offsetCases > 50);
  // By hand: 28 clips, 5 positions at 0, 6.75, 13.5, 20.25, 27.
  assert.deepEqual(uniformClips(28, 5), [0, 6, 13, 20, 27]);
  // Fewer clips than K: clips repeat.
  assert.deepEqual(uniformClips(2, 5), [0, 0, 0, 0, 1]);
});

test("torch's bilinear resize without antialiasing, on uint8: within one level, nearly every value equal", () => {
  let total = 0;
  let differ = 0;
  for (const c of ref.bilinear) {
    const chw = Buffer.from(c.input, 'base64');
    const hw = c.height * c.width;
    const hwc = new Uint8Array(hw * 3);
    for (let p = 0; p < hw; p++) for (let ch = 0; ch < 3; ch++) hwc[p * 3 + ch] = chw[ch * hw + p];
    const got = resizeTensorBilinear(hwc, c.width, c.height, 3, c.outWidth, c.outHeight);
    const want = Buffer.from(c.output, 'base64');
    const ohw = c.outWidth * c.outHeight;
    for (let p = 0; p < ohw; p++)
      for (let ch = 0; ch < 3; ch++) {
        const d = Math.abs(got[p * 3 + ch] - want[ch * ohw + p]);
        assert.ok(d <= 1, `resize ${c.width}×${c.height} → ${c.outWidth}×${c.outHeight}: off by ${d}`);
        total++;
        if (d) differ++;
      }
  }
  // 22 of 68 016 when written, each a value within a float32 bit of a half, rounded the other way
  // (torch's last bit is not reproduced everywhere).
  assert.ok(total > 50_000 && differ / total < 1e-3, `${differ} of ${total} values differ`);
});

test('FFmpeg counts the frames and reads the rate that torchvision (PyAV) does', needsFfmpeg, async () => {
  for (const v of ref.videos) {
    const info = await probeVideo(path.join(FIXTURE, v.file));
    assert.equal(info.frames, v.timestamps, v.file);
    assert.equal(info.fps, v.fps, v.file);
    assert.equal(
      clipCount(resampledFrames(info.frames, info.fps, ref.frame_rate).length, ref.clip_len),
      v.clips,
      v.file,
    );
  }
});

test(
  "each sampled clip's decoded frames are torchvision's, byte for byte (mp4 with B-frames and BT.709 tags, webm, avi)",
  needsFfmpeg,
  async () => {
    for (const v of ref.videos) {
      const file = path.join(FIXTURE, v.file);
      const info = await probeVideo(file);
      const frames = resampledFrames(info.frames, info.fps, ref.frame_rate);
      const starts = uniformClips(clipCount(frames.length, ref.clip_len), ref.clips_per_video);
      assert.deepEqual(
        starts,
        v.sampled.map((s) => s.clip),
        v.file,
      );
      for (const s of v.sampled) {
        const wanted = Array.from({ length: ref.clip_len }, (_, i) => frames[s.clip + i]);
        const got = new Map<number, Buffer>();
        await decodeFrames(file, info, new Set(wanted), (i, rgb) => got.set(i, Buffer.from(rgb)));
        const hash = createHash('sha256');
        for (const f of wanted) hash.update(got.get(f) as Buffer);
        assert.equal(hash.digest('hex'), s.frames, `${v.file} clip ${s.clip}`);
      }
    }
  },
);

test(
  'videofiles: with the kinetics preset, every clip equals torchvision’s transformed clip',
  needsFfmpeg,
  async (t) => {
    const dir = tempDir('spikeport-videofiles-', t);
    // One class per video, in the fixture's order: sample k·5 + j is clip j of video k.
    ref.videos.forEach((v, k) => {
      fs.mkdirSync(path.join(dir, `class${k}`));
      fs.copyFileSync(path.join(FIXTURE, v.file), path.join(dir, `class${k}`, v.file));
    });
    const S = ref.crop;
    const L = ref.clip_len;
    const K = ref.clips_per_video;
    const d = openDataset(`videofiles:${dir}`, undefined, {
      sampleShape: [3, L, S, S],
      preprocess: { kind: 'kinetics' },
      frameRate: ref.frame_rate,
      clipsPerVideo: K,
    });
    assert.equal(d.size, ref.videos.length * K);
    assert.equal(d.clipsPerVideo, K);
    assert.deepEqual(
      Array.from(d.labels ?? []),
      ref.videos.flatMap((_, k) => Array<number>(K).fill(k)),
    );
    // Read in an order that mixes videos and clips, across two batches.
    const order = Array.from({ length: d.size }, (_, i) => (i * 7) % d.size);
    for (const part of [order.slice(0, 9), order.slice(9)]) {
      const { x } = await d.read(part);
      part.forEach((sample, k) => {
        const want = Buffer.from(ref.videos[Math.floor(sample / K)].sampled[sample % K].kinetics, 'base64'); // L×S×S×3
        const per = 3 * L * S * S;
        for (let c = 0; c < 3; c++)
          for (let f = 0; f < L; f++)
            for (let p = 0; p < S * S; p++)
              assert.equal(
                x[k * per + (c * L + f) * S * S + p],
                want[(f * S * S + p) * 3 + c],
                `sample ${sample}, channel ${c}, frame ${f}, pixel ${p}`,
              );
      });
    }
  },
);

/**
 * Videos made with FFmpeg from frames generated here, DIR/<class>/<name>.mp4: gray noise around
 * a brightness `level` that swings with time (so clips of one video look different).
 */
function makeVideos(
  dir: string,
  videos: readonly { cls: string; name: string; frames: number; fps: number; level: number; seed: number }[],
  size = { width: 12, height: 10 },
): void {
  const { ffmpeg } = findFfmpeg();
  for (const v of videos) {
    fs.mkdirSync(path.join(dir, v.cls), { recursive: true });
    const { width, height } = size;
    const plane = width * height * 3;
    const raw = new Uint8Array(v.frames * plane);
    let s = v.seed;
    for (let i = 0; i < raw.length; i++) {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      const t = Math.floor(i / plane);
      const swing = 70 * Math.sin((t + 3 * v.seed) / 2.5);
      raw[i] = Math.max(0, Math.min(255, Math.round(v.level + swing + ((s >>> 16) % 40) - 20)));
    }
    const r = spawnSync(
      ffmpeg,
      [
        '-v',
        'error',
        '-f',
        'rawvideo',
        '-pix_fmt',
        'rgb24',
        '-s',
        `${width}x${height}`,
        '-r',
        String(v.fps),
        '-i',
        'pipe:0',
        '-c:v',
        'libx264',
        '-pix_fmt',
        'yuv420p',
        path.join(dir, v.cls, `${v.name}.mp4`),
      ],
      { input: raw },
    );
    assert.equal(r.status, 0, r.stderr?.toString());
  }
}

/**
 * A video classifier of brightness: 1×1×1 Conv3d + ReLU, global mean m, and three logits
 * (−12m + 3.6, 0, 12m − 8.4): dark clips are class 0, bright ones class 2.
 */
function brightnessNet(): Graph {
  return buildGraph([1, 4, 8, 8], (b, x) => {
    const w = b.constant('W', floatTensor([1, 1, 1, 1, 1], [1]));
    const h = b.op('Relu', [b.op('Conv', [x, w, b.constant('B', floatTensor([1], [0]))], { kernel_shape: [1, 1, 1] })]);
    const m = b.op('Flatten', [b.op('GlobalAveragePool', [h])], { axis: 1 });
    const g = b.constant('G', floatTensor([3, 1], [-12, 0, 12]));
    return b.op('Gemm', [m, g, b.constant('C', floatTensor([3], [3.6, 0, -8.4]))], { transB: 1 });
  });
}

test(
  "mp4 files, 5 clips per video: video-level accuracy is the clips' averaged softmax, whole or in shards",
  needsFfmpeg,
  async (t) => {
    const dir = tempDir('spikeport-videoacc-', t);
    // 3 classes × 2 videos; 30 fps resampled to 15; the model takes clips of 4 frames of 8 × 8 (gray).
    const videos = ['a', 'b', 'c'].flatMap((cls, c) =>
      [0, 1].map((k) => ({
        cls,
        name: `v${k}`,
        frames: 24 + 9 * k + 4 * c,
        fps: 30,
        level: 40 + 75 * c,
        seed: 3 * c + k + 1,
      })),
    );
    makeVideos(dir, videos);
    const modelFile = path.join(dir, 'video3d.onnx');
    fs.writeFileSync(modelFile, encodeModel(brightnessNet()));
    const open = {
      sampleShape: [1, 4, 8, 8],
      preprocess: { kind: 'resize', height: 8, width: 8 } as const,
      frameRate: 15,
    };
    const data = openDataset(`videofiles:${dir}`, undefined, { ...open, clipsPerVideo: 5 });
    assert.equal(data.size, 30);
    const snn = await convert(modelFile, openDataset(`videofiles:${dir}`, undefined, { ...open, clipsPerVideo: 2 }), {
      iterations: 3,
      batchSize: 4,
    });
    assert.equal(snn.meta.frameRate, 15);
    const T = [4, 16];
    const record = await simulate(snn, data, { T, batchSize: 7 });
    assert.deepEqual(record.metrics, ['video top-1', 'clip top-1']);

    // The same clips' readouts, caught as the scorer sees them; each video's softmax summed here.
    const windows = T.flatMap((T) => [
      { T, delay: Math.min(snn.meta.delay.estimated, Math.floor(T / 2)) },
      { T, delay: 0 },
    ]);
    const outs = windows.map(() => new Map<number, number[]>());
    await simulateWindows(snn, data, windows, {
      batchSize: 7,
      task: 'video',
      onOutputs: (w, outputs, b) => {
        const [o] = outputs;
        const C = o.dims[1];
        b.indices.forEach((s, k) => outs[w].set(s, Array.from(o.data.subarray(k * C, (k + 1) * C))));
      },
    });
    const labels = data.labels as Int32Array;
    const argmax = (v: readonly number[]): number => v.reduce((best, x, i) => (x > v[best] ? i : best), 0);
    const expected = outs.map((byClip) => {
      let videoHits = 0;
      let clipHits = 0;
      for (let v = 0; v < 6; v++) {
        const sum = new Array<number>(3).fill(0);
        for (let j = 0; j < 5; j++) {
          const r = byClip.get(v * 5 + j) as number[];
          const m = Math.max(...r);
          const e = r.map((x) => Math.exp(x - m));
          const z = e.reduce((a, b) => a + b, 0);
          e.forEach((x, c) => (sum[c] += x / z));
          if (argmax(r) === labels[v * 5 + j]) clipHits++;
        }
        if (argmax(sum) === labels[v * 5]) videoHits++;
      }
      return { video: videoHits / 6, clip: clipHits / 30 };
    });
    // Neither trivial nor the same number: some clips and videos are wrong.
    assert.ok(
      expected.some((e) => e.clip > 0.3 && e.clip < 1 && e.video !== e.clip),
      JSON.stringify(expected),
    );
    record.results.forEach((r, i) => {
      assert.equal(r.metric, expected[2 * i].video, `video top-1 at T = ${r.T}`);
      assert.equal(r.secondary, expected[2 * i].clip, `clip top-1 at T = ${r.T}`);
      assert.equal(r.metricNoDelay, expected[2 * i + 1].video);
      assert.equal(r.secondaryNoDelay, expected[2 * i + 1].clip);
    });
    // Two shards cut video 2 (samples 10–14) between them: merged, the same record.
    const shards = await Promise.all(
      [0, 1].map((index) => simulateShard(snn, data, { T, batchSize: 7, shard: { index, count: 2 } })),
    );
    assert.ok(shards[0].tally.scores.kind === 'videos' && shards[0].tally.scores.open.every((o) => o.length === 1));
    const merged = mergeShards(shards.map((shard, k) => ({ name: `shard ${k}`, shard })));
    assert.deepEqual(merged.results, record.results);
  },
);

test(
  'bad video files: unreadable, empty, without video, shorter than a clip → one line, exit 1, nothing written',
  needsFfmpeg,
  async (t) => {
    const dir = tempDir('spikeport-videobad-', t);
    makeVideos(dir, [{ cls: 'a', name: 'good', frames: 20, fps: 30, level: 90, seed: 1 }]);
    const model = path.join(dir, 'net.onnx');
    fs.writeFileSync(model, encodeModel(brightnessNet()));
    const { ffmpeg } = findFfmpeg();
    const bad = path.join(dir, 'b', 'bad.mp4');
    fs.mkdirSync(path.dirname(bad));
    const cases: [string, () => void, RegExp][] = [
      [
        'random bytes',
        () => fs.writeFileSync(bad, Buffer.alloc(3000, 7)),
        /bad\.mp4 is not a video FFmpeg can read \(/,
      ],
      ['an empty file', () => fs.writeFileSync(bad, ''), /bad\.mp4 is empty \(a zero-length video\)/],
      [
        'sound only',
        () => spawnSync(ffmpeg, ['-v', 'error', '-y', '-f', 'lavfi', '-i', 'sine=d=0.5', bad]),
        /bad\.mp4 has no video stream/,
      ],
      [
        'three frames',
        () =>
          spawnSync(ffmpeg, [
            '-v',
            'error',
            '-y',
            '-f',
            'lavfi',
            '-i',
            'testsrc2=s=16x16:r=30',
            '-frames:v',
            '3',
            '-pix_fmt',
            'yuv420p',
            bad,
          ]),
        /bad\.mp4 has 2 frames at 15 frames per second, fewer than one clip of 4/,
      ],
    ];
    for (const [what, make, re] of cases) {
      make();
      const json = path.join(dir, 'run.json');
      const r = spawnSync(
        process.execPath,
        [
          CLI,
          'simulate',
          model,
          '--data',
          `videofiles:${dir}`,
          '--calib',
          `videofiles:${dir}`,
          '--frame-rate',
          '15',
          '--preprocess',
          'resize:8,8',
          '--T',
          '2',
          '--iterations',
          '1',
          '--batch',
          '10',
          '--json',
          json,
          '-q',
        ],
        { encoding: 'utf8' },
      );
      assert.equal(r.status, 1, `${what}: ${r.stderr}`);
      assert.match(r.stderr, re, what);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.ok(!fs.existsSync(json), what);
    }
  },
);

test(
  "the kinetics preset brings Kinetics' mean and std, unless the model has its own; the frame rate is stored",
  needsFfmpeg,
  async (t) => {
    const dir = tempDir('spikeport-kinnorm-', t);
    ref.videos.slice(0, 2).forEach((v, k) => {
      fs.mkdirSync(path.join(dir, `c${k}`));
      fs.copyFileSync(path.join(FIXTURE, v.file), path.join(dir, `c${k}`, v.file));
    });
    const rgbNet = (metadata: Record<string, string>): Graph => {
      const g = buildGraph([3, 4, 16, 16], (b, x) => {
        const w = b.constant('W', floatTensor([2, 3, 1, 1, 1], [1, 0, 0, 0, 0, 1]));
        const h = b.op('Relu', [b.op('Conv', [x, w], { kernel_shape: [1, 1, 1] })]);
        const m = b.op('Flatten', [b.op('GlobalAveragePool', [h])], { axis: 1 });
        const g2 = b.constant('G', floatTensor([2, 2], [1, -1, -1, 1]));
        return b.op('Gemm', [m, g2, b.constant('C', floatTensor([2], [0, 0]))], { transB: 1 });
      });
      return { ...g, metadata };
    };
    const file = path.join(dir, 'rgb.onnx');
    fs.writeFileSync(file, encodeModel(rgbNet({ 'spikeport.frameRate': '15' })));
    const spec = `videofiles:${dir}`;
    const snn = await convert(file, spec, { preprocess: 'kinetics', iterations: 1, batchSize: 2, clipsPerVideo: 2 });
    assert.deepEqual(snn.meta.normalize, { mean: [0.43216, 0.394666, 0.37645], std: [0.22803, 0.22145, 0.216989] });
    assert.equal(snn.meta.frameRate, 15); // from the model's metadata
    assert.equal(snn.meta.preprocess, 'kinetics');
    const own = { mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] };
    fs.writeFileSync(file, encodeModel(rgbNet({ 'spikeport.normalize': JSON.stringify(own) })));
    const again = await convert(file, spec, { preprocess: 'kinetics', iterations: 1, batchSize: 2, frameRate: 10 });
    assert.deepEqual(again.meta.normalize, own);
    assert.equal(again.meta.frameRate, 10);
    // Another rate, other frames: the last clip of the 29.97 fps video at 10 and at 15 frames per second.
    const at = (rate: number) =>
      openDataset(spec, undefined, { sampleShape: [3, 4, 16, 16], preprocess: { kind: 'kinetics' }, frameRate: rate });
    const [x10, x15] = await Promise.all([at(10).read([9]), at(15).read([9])]);
    assert.notDeepEqual(x10.x, x15.x);
  },
);

test('file names that look like options or protocols are still files', needsFfmpeg, async (t) => {
  const dir = tempDir('spikeport-videonames-', t);
  fs.mkdirSync(path.join(dir, 'a'));
  // A name FFmpeg would read as an option, one as a protocol URL, one with a shell's specials.
  const names = ['-f.mp4', 'concat:x.mp4|y.mp4', "it's $(x) & y.mp4"];
  for (const n of names) fs.copyFileSync(path.join(FIXTURE, 'a30.mp4'), path.join(dir, 'a', n));
  const d = openDataset(`videofiles:${dir}`, undefined, {
    sampleShape: [3, 4, 16, 16],
    preprocess: { kind: 'kinetics' },
    frameRate: 15,
    clipsPerVideo: 5,
  });
  assert.equal(d.size, 15);
  const { x } = await d.read([0, 5, 10]);
  const per = 3 * 4 * 16 * 16;
  const want = Buffer.from(ref.videos[0].sampled[0].kinetics, 'base64');
  for (let k = 0; k < 3; k++)
    for (let c = 0; c < 3; c++)
      for (let f = 0; f < 4; f++)
        for (let p = 0; p < 256; p++) assert.equal(x[k * per + (c * 4 + f) * 256 + p], want[(f * 256 + p) * 3 + c]);
});

test(
  "video files: class folders matched by the model's class names, and links out of the folder refused",
  needsFfmpeg,
  (t) => {
    const dir = tempDir('spikeport-videonamed-', t);
    const outside = tempDir('spikeport-videoout-', t);
    for (const [c, v] of [
      ['a', 'a30.mp4'],
      ['b', 'b2997.mp4'],
    ]) {
      fs.mkdirSync(path.join(dir, c));
      fs.copyFileSync(path.join(FIXTURE, v), path.join(dir, c, v));
    }
    const open = (o: { classNames?: string[]; followLinks?: boolean } = {}) =>
      openDataset(`videofiles:${dir}`, undefined, { sampleShape: [3, 4, 16, 16], clipsPerVideo: 2, ...o });
    // Folders sorted by name give the labels; with the model's names, each folder is the class of its name.
    assert.deepEqual(Array.from(open().labels ?? []), [0, 0, 1, 1]);
    const named = open({ classNames: ['b', 'a', 'c'] });
    assert.deepEqual(Array.from(named.labels ?? []), [1, 1, 0, 0]);
    assert.deepEqual(named.classes, ['b', 'a', 'c']);
    assert.throws(
      () => open({ classNames: ['a', 'c'] }),
      (e: SpikeportError) => e.field === 'classNames' && e.message.includes(path.join(dir, 'b')),
    );
    // Two class folders for a model of three classes: refused, pointing to classNames.
    assert.throws(
      () => checkClassCount(open(), 3),
      (e: SpikeportError) => e.field === 'classNames' && /2 classes but the model scores 3/.test(e.message),
    );
    checkClassCount(named, 3);
    // A video reached by a link that leaves the data set's folder: refused, naming the link, unless followed.
    fs.copyFileSync(path.join(FIXTURE, 'a30.mp4'), path.join(outside, 'x.mp4'));
    fs.symlinkSync(path.join(outside, 'x.mp4'), path.join(dir, 'a', 'link.mp4'));
    assert.throws(
      () => open(),
      (e: SpikeportError) => e.field === 'followLinks' && e.message.includes(path.join(dir, 'a', 'link.mp4')),
    );
    assert.equal(open({ followLinks: true }).size, 6);
  },
);
