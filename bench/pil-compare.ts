/**
 * How close spikeport's image pipeline is to torchvision's PIL one, on your own JPEGs:
 * --preprocess imagenet (Resize(256) bilinear on the short side, CenterCrop(224)) against PIL
 * (Debian's python3-pil) on each file, and the plain decode against PIL's.
 *
 *   node dist/bench/pil-compare.js photo1.jpg photo2.jpg …
 */
import './args.js'; // --help prints the header above and stops
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import sharp from 'sharp';
import { openDataset } from '../src/data/sources.js';
import { parsePreprocess } from '../src/data/preprocess.js';

const PIL = `
import sys, numpy as np
from PIL import Image
im = Image.open(sys.argv[1]).convert('RGB')
sys.stdout.buffer.write(np.asarray(im, dtype=np.uint8).tobytes())
w, h = im.size
nw, nh = (256, int(256 * h / w)) if w <= h else (int(256 * w / h), 256)
im = im.resize((nw, nh), Image.BILINEAR)
l, t = int(round((nw - 224) / 2.0)), int(round((nh - 224) / 2.0))
sys.stdout.buffer.write(np.asarray(im.crop((l, t, l + 224, t + 224)), dtype=np.uint8).transpose(2, 0, 1).tobytes())
`;

function diff(a: Uint8Array, b: Uint8Array): { max: number; mean: number; share0: number } {
  let max = 0;
  let sum = 0;
  let zero = 0;
  for (let i = 0; i < a.length; i++) {
    const e = Math.abs(a[i] - b[i]);
    max = Math.max(max, e);
    sum += e;
    if (e === 0) zero++;
  }
  return { max, mean: sum / a.length, share0: zero / a.length };
}

process.stdout.write(
  '| file | size | decode: max / mean diff | imagenet: max / mean diff | equal values |\n|---|---|---|---|---|\n',
);
for (const file of process.argv.slice(2)) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spikeport-pil-'));
  fs.mkdirSync(path.join(dir, 'c'));
  fs.copyFileSync(file, path.join(dir, 'c', 'a.jpg'));
  const meta = await sharp(file).metadata();
  const decoded = await sharp(file).removeAlpha().toColourspace('srgb').raw().toBuffer();
  const r = spawnSync('/usr/bin/python3', ['-c', PIL, file], { maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(String(r.stderr));
  const out = new Uint8Array(r.stdout);
  const pilDecoded = out.subarray(0, out.length - 3 * 224 * 224);
  const pilCrop = out.subarray(out.length - 3 * 224 * 224);
  const d = openDataset(`imagefolder:${dir}`, undefined, {
    sampleShape: [3, 224, 224],
    preprocess: parsePreprocess('imagenet'),
  });
  const mine = (await d.read([0])).x as Uint8Array;
  const a = diff(new Uint8Array(decoded), pilDecoded);
  const b = diff(mine, pilCrop);
  process.stdout.write(
    `| ${path.basename(file)} | ${meta.width}×${meta.height} | ${a.max} / ${a.mean.toFixed(3)} | ${b.max} / ${b.mean.toFixed(3)} | ${(100 * b.share0).toFixed(1)} % |\n`,
  );
  fs.rmSync(dir, { recursive: true, force: true });
}
