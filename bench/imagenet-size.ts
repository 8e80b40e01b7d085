/**
 * ImageNet-size run on a streamed image folder: torchvision's resnet18 (random weights) on
 * generated 500×375 JPEGs with --preprocess imagenet (Resize(256), CenterCrop(224)).
 *
 *   /usr/bin/python3 tools/export_torchvision.py out/torchvision resnet18-224
 *   node dist/bench/imagenet-size.js gen out/jpegs-5000 5000       # generated JPEGs (not committed)
 *   node dist/bench/imagenet-size.js run out/torchvision/resnet18-224.onnx out/jpegs-5000 [--images 500] [--snn-images 32] [--T 32] [--rss 500,5000]
 *
 * Prints: decoding alone (images/s); ANN images/s and the share of its time spent waiting for
 * decoded batches; the SNN at T (images/s, waiting share); the decoding work as a share of each
 * run (images × decode time per image ÷ run time: what decoding costs, overlapped or not); max
 * RSS of a child running the ANN over the first N images, streamed, for each N in --rss (the
 * SNN's data path is the same; its own state is per batch, bench/memory.ts).
 */
import './args.js'; // --help prints the header above and stops
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { openDataset } from '../src/data/sources.js';
import { prefetchBatches, rng, sequentialBatches, type Dataset } from '../src/data/dataset.js';
import { parsePreprocess } from '../src/data/preprocess.js';
import { loadModel } from '../src/model/load.js';
import { prepareModel } from '../src/model/prepare.js';
import { instrument } from '../src/calibrate/instrument.js';
import { Session, defaultThreads } from '../src/ort/session.js';
import { convert } from '../src/api/convert.js';
import { simulateBatches as simulateSnn } from '../src/runtime/batches.js';
import { loadSnn } from '../src/snn/network.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

const W = 500;
const H = 375;
const CLASSES = 10;
const threads = defaultThreads();
const BATCH = Number(arg('batch', '16'));

/** N seeded 500×375 JPEGs (smooth colour fields with texture and a few shapes) in 10 class folders. */
async function generate(dir: string, n: number): Promise<void> {
  for (let c = 0; c < CLASSES; c++) fs.mkdirSync(path.join(dir, `class${c}`), { recursive: true });
  const px = new Uint8Array(W * H * 3);
  for (let i = 0; i < n; i++) {
    const file = path.join(dir, `class${i % CLASSES}`, `${String(i).padStart(6, '0')}.jpg`);
    if (fs.existsSync(file)) continue;
    const r = rng(i + 1);
    const f = [r() * 0.05, r() * 0.05, r() * 0.05, r() * 0.05, r() * 6, r() * 6];
    const cx = r() * W;
    const cy = r() * H;
    const rad = 40 + r() * 120;
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const k = 3 * (y * W + x);
        const inside = (x - cx) ** 2 + (y - cy) ** 2 < rad * rad;
        px[k] = 128 + 100 * Math.sin(x * f[0] + y * f[1] + f[4]) + (inside ? 27 : -27);
        px[k + 1] = 128 + 100 * Math.cos(x * f[2] - y * f[3] + f[5]);
        px[k + 2] = (((x ^ y) & 15) * 8 + (inside ? 100 : 0)) & 255;
      }
    }
    await sharp(px, { raw: { width: W, height: H, channels: 3 } })
      .jpeg({ quality: 90 })
      .toFile(file);
  }
}

function open(dir: string, n: number): Dataset {
  return openDataset(`imagefolder:${dir}`, n, { sampleShape: [3, 224, 224], preprocess: parsePreprocess('imagenet') });
}

async function decodeAlone(dir: string, n: number): Promise<number> {
  const d = open(dir, n);
  const batches = sequentialBatches(d.size, BATCH);
  const t = performance.now();
  for await (const b of prefetchBatches(d, batches.length, (i) => batches[i], null)) void b;
  return (performance.now() - t) / 1000 / d.size;
}

async function annRun(
  model: string,
  dir: string,
  n: number,
): Promise<{ perSecond: number; waiting: number; seconds: number }> {
  const m = await prepareModel(loadModel(model), { threads });
  const inst = instrument(m, { mode: 'ann', granularity: 'layer' });
  const s = await Session.create(inst.graph, { threads });
  const d = open(dir, n);
  const batches = sequentialBatches(d.size, BATCH);
  const stream = prefetchBatches(d, batches.length, (i) => batches[i], m.normalize);
  let waiting = 0;
  const t0 = performance.now();
  for (;;) {
    const t = performance.now();
    const next = await stream.next();
    waiting += performance.now() - t;
    if (next.done) break;
    await s.run({ [m.inputName]: { dims: [next.value.n, ...m.inputShape], data: next.value.x } }, [inst.readout]);
  }
  const seconds = (performance.now() - t0) / 1000;
  await s.release();
  return { perSecond: d.size / seconds, waiting: waiting / 1000 / seconds, seconds };
}

async function snnRun(
  snnFile: string,
  dir: string,
  n: number,
  T: number,
): Promise<{ perSecond: number; seconds: number; rss: number }> {
  const snn = await loadSnn(snnFile, { ann: null });
  const t0 = performance.now();
  const stats = await simulateSnn(
    snn.graph,
    snn.spec,
    open(dir, n),
    { steps: T, batchSize: BATCH, normalize: snn.meta.normalize, threads, checkpoints: [T] },
    () => undefined,
  );
  const seconds = (performance.now() - t0) / 1000;
  return { perSecond: stats.samples / seconds, seconds, rss: process.resourceUsage().maxRSS / 1024 };
}

async function main(): Promise<void> {
  const mode = process.argv[2];
  if (mode === 'gen') {
    const n = Number(process.argv[4] ?? '500');
    await generate(process.argv[3], n);
    process.stdout.write(`generated ${n} JPEGs of ${W}×${H} in ${process.argv[3]}\n`);
    return;
  }
  if (mode === 'child') {
    const [model, dir, n] = process.argv.slice(3);
    const r = await annRun(model, dir, Number(n));
    process.stdout.write(JSON.stringify({ ...r, rss: process.resourceUsage().maxRSS / 1024 }));
    return;
  }
  if (mode !== 'run')
    throw new Error(
      'usage: imagenet-size.js gen DIR N | run MODEL DIR [--images N] [--snn-images N] [--T T] [--rss 500,5000]',
    );
  const [model, dir] = process.argv.slice(3);
  const n = Number(arg('images', '500'));
  const snnImages = Number(arg('snn-images', '32'));
  const T = Number(arg('T', '32'));
  const rssCounts = arg('rss', '500,5000').split(',').filter(Boolean).map(Number);
  process.stdout.write(
    `resnet18 (random weights), ${threads} ONNX Runtime threads, batch ${BATCH}, --preprocess imagenet, ${os.cpus().length} cores\n`,
  );

  const decode = await decodeAlone(dir, n);
  process.stdout.write(
    `decode + resize + crop alone: ${(1 / decode).toFixed(1)} images/s (${(decode * 1000).toFixed(1)} ms per image, ${n} images)\n`,
  );

  const ann = await annRun(model, dir, n);
  process.stdout.write(
    `ANN: ${ann.perSecond.toFixed(1)} images/s over ${n} images; waiting for decoded batches ${(100 * ann.waiting).toFixed(1)} % of the run; decoding work ${((100 * (n * decode)) / ann.seconds).toFixed(1)} % of the run time\n`,
  );

  // Conversion: MaxNorm on 2 batches of 8 (16 images read of the list, seeded), then T steps.
  const snnFile = path.join(os.tmpdir(), `spikeport-bench-resnet18-${process.pid}.snn.onnx`);
  const snn = await convert(model, open(dir, n), { method: 'maxnorm', iterations: 2, batchSize: 8, threads });
  fs.writeFileSync(snnFile, snn.toBytes());
  try {
    const s = await snnRun(snnFile, dir, snnImages, T);
    process.stdout.write(
      `SNN at T = ${T}: ${s.perSecond.toFixed(2)} images/s over ${snnImages} images (${(s.perSecond * T).toFixed(1)} image-steps/s); decoding work ${((100 * (snnImages * decode)) / s.seconds).toFixed(2)} % of the run time\n`,
    );
    for (const count of rssCounts) {
      const here = path.dirname(fileURLToPath(import.meta.url));
      const r = spawnSync(process.execPath, [path.join(here, 'imagenet-size.js'), 'child', model, dir, String(count)], {
        encoding: 'utf8',
      });
      if (r.status !== 0) throw new Error(r.stderr);
      const c = JSON.parse(r.stdout) as { perSecond: number; rss: number; waiting: number };
      process.stdout.write(
        `max RSS of the ANN over ${count} images (streamed): ${c.rss.toFixed(0)} MB (${c.perSecond.toFixed(1)} images/s, waiting for data ${(100 * c.waiting).toFixed(1)} %)\n`,
      );
    }
  } finally {
    fs.rmSync(snnFile, { force: true });
  }
}

await main();
