/**
 * Image data: image folders read in torchvision's order, pixels checked against PNGs encoded
 * here by hand and against PIL (Debian's python3-pil, when present) for JPEG decoding and the
 * imagenet resize + crop; PNG folders written by `spikeport data` give the npz path's results
 * exactly; bad image input is one line, exit 1, nothing left behind.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import sharp from 'sharp';
import { openDataset, openMemoryDataset } from '../src/data/sources.js';
import { readBatch } from '../src/data/dataset.js';
import { geometry, parsePreprocess, roundHalfEven, toOriginal } from '../src/data/preprocess.js';
import { convert, loadSnn, simulate, snnFromGraph } from '../src/advanced.js';
import { decodeModel, encodeModel } from '../src/onnx/codec.js';
import { KEYS } from '../src/snn/format.js';
import { tempDir } from './temp.js';

const CLI = path.join(process.cwd(), 'dist', 'src', 'cli', 'main.js');
const MNIST = path.join(process.cwd(), 'models', 'mnist-cnn.onnx');
const tmp = tempDir('spikeport-images-');
// The digit model's classes by name: class folders 0, 1 (not all ten) map to its outputs 0, 1.
const DIGITS = path.join(tmp, 'digits.txt');
fs.writeFileSync(DIGITS, Array.from({ length: 10 }, (_, d) => `${d}\n`).join(''));
const PYTHON = '/usr/bin/python3';
const hasPil = spawnSync(PYTHON, ['-c', 'import PIL, numpy'], { encoding: 'utf8' }).status === 0;

/** CRC-32 of PNG chunks (the polynomial of the PNG specification), written out here. */
function crc32(bytes: Uint8Array): number {
  let c = ~0;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

/** A PNG of 8-bit pixels (colour type 0 gray, 2 RGB, 6 RGBA), row filter 0: an encoder independent of sharp. */
function png(width: number, height: number, channels: 1 | 3 | 4, px: Uint8Array): Buffer {
  const chunk = (type: string, data: Uint8Array): Buffer => {
    const head = Buffer.alloc(8);
    head.writeUInt32BE(data.length, 0);
    head.write(type, 4, 'latin1');
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
    return Buffer.concat([head, data, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, channels === 1 ? 0 : channels === 3 ? 2 : 6, 0, 0, 0], 8);
  const raw = Buffer.alloc(height * (1 + width * channels));
  for (let y = 0; y < height; y++)
    raw.set(px.subarray(y * width * channels, (y + 1) * width * channels), y * (1 + width * channels) + 1);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(raw)),
    chunk('IEND', new Uint8Array(0)),
  ]);
}

const pattern = (n: number, seed: number): Uint8Array =>
  Uint8Array.from({ length: n }, (_, i) => (i * 37 + seed * 101 + ((i * i) % 13)) % 256);

function cli(args: string[]): { code: number | null; stderr: string; stdout: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', cwd: tmp });
  return { code: r.status, stderr: r.stderr, stdout: r.stdout };
}

test("imagefolder: classes sorted by name, files in torchvision's order, pixels exactly as encoded, gray from RGB by PIL's luma", async () => {
  const dir = path.join(tmp, 'folder');
  const W = 5;
  const H = 4;
  const files: { rel: string; px: Uint8Array; channels: 1 | 3 | 4 }[] = [
    { rel: 'b/2.png', px: pattern(W * H * 3, 1), channels: 3 },
    { rel: 'b/10.png', px: pattern(W * H * 4, 2), channels: 4 },
    { rel: 'a/z.png', px: pattern(W * H, 3), channels: 1 },
    { rel: 'a/sub/y.png', px: pattern(W * H * 3, 4), channels: 3 },
    { rel: 'a/m.PNG', px: pattern(W * H * 3, 5), channels: 3 },
  ];
  for (const f of files) {
    fs.mkdirSync(path.dirname(path.join(dir, f.rel)), { recursive: true });
    fs.writeFileSync(path.join(dir, f.rel), png(W, H, f.channels, f.px));
  }
  fs.writeFileSync(path.join(dir, 'a', 'notes.txt'), 'not an image, not listed');
  const d = openDataset(`imagefolder:${dir}`, undefined, { sampleShape: [3, H, W] });
  // torchvision: classes a, b; in a: a/m.PNG, a/z.png (the folder's files), then a/sub/y.png; in b: 10.png before 2.png.
  const order = ['a/m.PNG', 'a/z.png', 'a/sub/y.png', 'b/10.png', 'b/2.png'];
  assert.deepEqual(d.classes, ['a', 'b']);
  assert.deepEqual(Array.from(d.labels ?? []), [0, 0, 0, 1, 1]);
  assert.equal(d.size, 5);
  const { x } = await d.read([0, 1, 2, 3, 4]);
  order.forEach((rel, k) => {
    const f = files.find((g) => g.rel === rel) ?? files[0];
    for (let p = 0; p < W * H; p++) {
      for (let c = 0; c < 3; c++) {
        const want = f.channels === 1 ? f.px[p] : f.px[p * f.channels + c];
        assert.equal(x[k * 3 * W * H + c * W * H + p], want, `${rel} pixel ${p} channel ${c}`);
      }
    }
  });
  // A gray model: ITU-R 601-2 luma, rounded as PIL's convert('L') does, worked out in floating point here.
  const gray = openDataset(`imagefolder:${dir}`, undefined, { sampleShape: [1, H, W] });
  const g = (await gray.read([4])).x;
  const rgb = files[0].px;
  for (let p = 0; p < W * H; p++)
    assert.equal(
      g[p],
      Math.floor(rgb[3 * p] * 0.299 + rgb[3 * p + 1] * 0.587 + rgb[3 * p + 2] * 0.114 + 0.5),
      `luma ${p}`,
    );
  // Normalised batches: ToTensor's /255, then (x − mean) / std per channel.
  const b = await readBatch(d, [3], { mean: [0.5, 0.25, 0], std: [0.5, 1, 2] });
  const px = files[1].px;
  assert.ok(Math.abs(b.x[W * H + 7] - (px[7 * 4 + 1] / 255 - 0.25) / 1) < 1e-6);
  // Without --preprocess, another size is refused, naming the presets.
  const other = openDataset(`imagefolder:${dir}`, undefined, { sampleShape: [3, 8, 8] });
  await assert.rejects(
    other.read([0]),
    /a\/m\.PNG is 5×4 but the model takes 8×8: choose a preprocessing with preprocess \(imagenet, kinetics, resize:H,W or none\)/,
  );
});

test('imagenet preset geometry follows torchvision: int() on the long side, round-half-even crop offsets', () => {
  const p = parsePreprocess('imagenet');
  assert.equal(roundHalfEven(58.5), 58);
  assert.equal(roundHalfEven(59.5), 60);
  assert.equal(roundHalfEven(-0.5), -0);
  // 500×375: the short side 375 → 256, the long side int(256 · 500 / 375) = int(341.33) = 341; crop (341 − 224)/2 = 58.5 → 58, (256 − 224)/2 = 16.
  assert.deepEqual(geometry(p, 500, 375, 224, 224, 'x'), {
    resize: { width: 341, height: 256 },
    crop: { left: 58, top: 16, width: 224, height: 224 },
  });
  assert.deepEqual(geometry(p, 375, 500, 224, 224, 'x'), {
    resize: { width: 256, height: 341 },
    crop: { left: 16, top: 58, width: 224, height: 224 },
  });
  // A 128 input: short side round(128 · 256/224) = 146.
  assert.deepEqual(geometry(p, 300, 200, 128, 128, 'x').resize, { width: 219, height: 146 });
  assert.deepEqual(geometry(parsePreprocess('resize:8,6'), 20, 10, 8, 6, 'x'), {
    resize: { width: 6, height: 8 },
    crop: null,
  });
  assert.throws(
    () => geometry(parsePreprocess('resize:8,8'), 20, 10, 8, 6, 'x'),
    /resize:8,8 does not give the model's input size 8×6/,
  );
  // A detection at the model's (0, 0) and (224, 224) maps back through the crop offset and the scale: x · 500/341, y · 375/256.
  const placed = { ...geometry(p, 500, 375, 224, 224, 'x'), width: 500, height: 375 };
  const close = (a: number, b: number): void => assert.ok(Math.abs(a - b) < 1e-9, `${a} vs ${b}`);
  const [x0, y0] = toOriginal(placed, 0, 0);
  close(x0, (58 * 500) / 341);
  close(y0, (16 * 375) / 256);
  const [x1, y1] = toOriginal(placed, 224, 224);
  close(x1, (282 * 500) / 341);
  close(y1, (240 * 375) / 256);
  assert.equal(parsePreprocess('resize:0,3'), null);
  assert.equal(parsePreprocess('bicubic'), null);
});

test(
  'JPEG decoding equals PIL; the imagenet resize + crop is within 2 levels of PIL when shrinking, exact when enlarging (Resize(256) bilinear, CenterCrop(224))',
  { skip: hasPil ? false : 'needs /usr/bin/python3 with PIL and numpy (Debian python3-pil)' },
  async () => {
    const dir = path.join(tmp, 'jpeg');
    fs.mkdirSync(path.join(dir, 'c'), { recursive: true });
    const W = 500;
    const H = 375;
    // Smooth colour gradients with some texture, as photographs have; encoded once, read by both.
    const px = new Uint8Array(W * H * 3);
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const i = 3 * (y * W + x);
        px[i] = Math.round(127.5 + 127 * Math.sin(x / 37 + y / 61));
        px[i + 1] = Math.round((x * 255) / W);
        px[i + 2] = Math.round(127.5 + 100 * Math.cos((x * y) / 5000) + 27 * Math.sin(x / 3));
      }
    }
    const names = ['a.jpg', 'b.jpg', 'c.jpg'];
    await sharp(px, { raw: { width: W, height: H, channels: 3 } })
      .jpeg({ quality: 90 })
      .toFile(path.join(dir, 'c', names[0]));
    await sharp(px, { raw: { width: W, height: H, channels: 3 } })
      .rotate(90)
      .jpeg({ quality: 85 })
      .toFile(path.join(dir, 'c', names[1]));
    // A small image: Resize(256) enlarges it (PIL's arithmetic, expected exactly).
    await sharp(px, { raw: { width: W, height: H, channels: 3 } })
      .extract({ left: 100, top: 50, width: 150, height: 113 })
      .jpeg({ quality: 90 })
      .toFile(path.join(dir, 'c', names[2]));
    const py = `
import sys, numpy as np
from PIL import Image
for f in sys.argv[1:]:
    im = Image.open(f).convert('RGB')
    w, h = im.size
    s = 256
    nw, nh = (s, int(s * h / w)) if w <= h else (int(s * w / h), s)
    im = im.resize((nw, nh), Image.BILINEAR)
    l, t = int(round((nw - 224) / 2.0)), int(round((nh - 224) / 2.0))
    a = np.asarray(im.crop((l, t, l + 224, t + 224)), dtype=np.uint8).transpose(2, 0, 1)
    sys.stdout.buffer.write(a.tobytes())
`;
    const r = spawnSync(PYTHON, ['-c', py, ...names.map((n) => path.join(dir, 'c', n))], { maxBuffer: 1 << 24 });
    assert.equal(r.status, 0, String(r.stderr));
    const pil = new Uint8Array(r.stdout);
    const d = openDataset(`imagefolder:${dir}`, undefined, {
      sampleShape: [3, 224, 224],
      preprocess: parsePreprocess('imagenet'),
    });
    const { x } = await d.read([0, 1, 2]);
    assert.equal(pil.length, x.length);
    const per = 3 * 224 * 224;
    let max = 0;
    let sum = 0;
    for (let i = 0; i < 2 * per; i++) {
      const e = Math.abs(x[i] - pil[i]);
      max = Math.max(max, e);
      sum += e;
    }
    assert.ok(max <= 2, `shrinking: max difference ${max} levels`);
    assert.ok(sum / (2 * per) < 0.5, `shrinking: mean difference ${sum / (2 * per)}`);
    assert.deepEqual(
      Array.from(x.subarray(2 * per)),
      Array.from(pil.subarray(2 * per)),
      "enlarging: PIL's values exactly",
    );
    // The decoded JPEG itself (no resize) equals PIL's pixels.
    const dec = spawnSync(
      PYTHON,
      [
        '-c',
        'import sys, numpy as np\nfrom PIL import Image\nsys.stdout.buffer.write(np.asarray(Image.open(sys.argv[1]).convert("RGB")).tobytes())',
        path.join(dir, 'c', names[0]),
      ],
      { maxBuffer: 1 << 24 },
    );
    const mine = await sharp(path.join(dir, 'c', names[0]))
      .raw()
      .toBuffer();
    assert.ok(Buffer.from(dec.stdout).equals(mine), 'JPEG decoded as PIL decodes it');
  },
);

test("PNG folders written by spikeport data give the npz path's results exactly (mnist-cnn, same samples)", async () => {
  const out = path.join(tmp, 'mnist-png');
  const r = cli(['data', 'mnist:test', '--format', 'imagefolder', '--limit', '100', '--out', out, '-q']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(
    r.stdout,
    /wrote .*mnist-png: 100 samples of 1x28x28 as 100 files \(read it as imagefolder:.*mnist-png\)/,
  );
  const mem = openMemoryDataset('mnist:test', 100);
  const folder = openDataset(`imagefolder:${out}`, undefined, { sampleShape: [1, 28, 28] });
  // Same samples: every PNG holds its sample's bytes, in the class of its label.
  const all = Array.from({ length: folder.size }, (_, i) => i);
  const { x } = await folder.read(all);
  const files = fs.readdirSync(out).flatMap((c) =>
    fs
      .readdirSync(path.join(out, c))
      .sort()
      .map((f) => Number(f.slice(0, -4))),
  );
  files.forEach((i, k) => {
    assert.equal(folder.labels?.[k], mem.labels?.[i]);
    assert.deepEqual(
      Array.from(x.subarray(k * 784, (k + 1) * 784)),
      Array.from(mem.x.subarray(i * 784, (i + 1) * 784)),
      `sample ${i}`,
    );
  });
  // The same SNN on both: identical scores at every T, and identical ANN references.
  const snn = await convert(MNIST, 'mnist:train', { iterations: 3, batchSize: 50, threads: 1 });
  const opts = { T: [4, 16], batchSize: 25, references: true, threads: 1 } as const;
  const a = await simulate(snn, mem, opts);
  const b = await simulate(snn, folder, opts);
  assert.deepEqual(b.results, a.results);
  assert.deepEqual([b.ann, b.clippedAnn], [a.ann, a.clippedAnn]);
});

test('bad image input: not an image, a truncated JPEG, an empty class folder: one line, exit 1, no output left', async () => {
  const good = await sharp({ create: { width: 28, height: 28, channels: 3, background: { r: 10, g: 200, b: 30 } } })
    .jpeg()
    .toBuffer();
  const cases: { name: string; setup: (dir: string) => void; message: RegExp }[] = [
    {
      name: 'text',
      setup: (dir) => fs.writeFileSync(path.join(dir, '1', 'x.png'), 'hello, not a PNG'),
      message: /1\/x\.png is not a readable image/,
    },
    {
      name: 'truncated',
      setup: (dir) => fs.writeFileSync(path.join(dir, '1', 'x.jpg'), good.subarray(0, good.length >> 1)),
      message: /1\/x\.jpg is not a readable image/,
    },
    {
      name: 'empty',
      setup: (dir) => fs.mkdirSync(path.join(dir, '2')),
      message: /the class folder .*\/2 has no image files/,
    },
  ];
  for (const c of cases) {
    const dir = path.join(tmp, `bad-${c.name}`);
    for (const cls of ['0', '1']) {
      fs.mkdirSync(path.join(dir, cls), { recursive: true });
      fs.writeFileSync(path.join(dir, cls, 'a.jpg'), good);
    }
    c.setup(dir);
    const snn = path.join(tmp, `bad-${c.name}.snn.onnx`);
    const json = path.join(tmp, `bad-${c.name}.json`);
    for (const args of [
      [
        'convert',
        MNIST,
        '--data',
        `imagefolder:${dir}`,
        '--out',
        snn,
        '--json',
        json,
        '--iterations',
        '2',
        '--batch',
        '4',
        '-q',
      ],
      [
        'simulate',
        MNIST,
        '--data',
        `imagefolder:${dir}`,
        '--calib',
        'mnist:train',
        '--calib-limit',
        '20',
        '--iterations',
        '1',
        '--T',
        '2',
        '--classes',
        DIGITS,
        '--json',
        json,
        '-q',
      ],
    ]) {
      const r = cli(args);
      assert.equal(r.code, 1, `${c.name}: ${r.stderr}`);
      const lines = r.stderr.trim().split('\n');
      assert.equal(lines.length, 1, `${c.name}: one line, got ${r.stderr}`);
      assert.match(lines[0], c.message);
      assert.doesNotMatch(r.stderr, /\n\s+at /);
      assert.equal(fs.existsSync(snn) || fs.existsSync(json), false, `${c.name}: nothing written`);
    }
  }
  assert.deepEqual(
    fs.readdirSync(tmp).filter((f) => f.includes('.tmp')),
    [],
    'no temp file left',
  );
});

test('the preprocessing is stored in the converted file and repeated by simulate; a bad stored preset is refused', async () => {
  const dir = path.join(tmp, 'sized');
  for (let i = 0; i < 12; i++) {
    const cls = String(i % 2);
    fs.mkdirSync(path.join(dir, cls), { recursive: true });
    fs.writeFileSync(path.join(dir, cls, `${i}.png`), png(40, 30, 3, pattern(40 * 30 * 3, i)));
  }
  const snnFile = path.join(tmp, 'sized.snn.onnx');
  // Without --preprocess the 40×30 images do not fit the 28×28 model: the presets are named.
  const refused = cli([
    'convert',
    MNIST,
    '--data',
    `imagefolder:${dir}`,
    '--out',
    snnFile,
    '--iterations',
    '1',
    '--batch',
    '4',
    '-q',
  ]);
  assert.equal(refused.code, 1);
  assert.match(
    refused.stderr,
    /is 40×30 but the model takes 28×28: choose a preprocessing with --preprocess \(imagenet, kinetics, resize:H,W or none\)/,
  );
  const badPreset = cli([
    'convert',
    MNIST,
    '--data',
    `imagefolder:${dir}`,
    '--out',
    snnFile,
    '--preprocess',
    'bicubic',
    '-q',
  ]);
  assert.match(
    badPreset.stderr,
    /--preprocess "bicubic" is not a preprocessing \(known: imagenet, kinetics, resize:H,W or none\)/,
  );
  const made = cli([
    'convert',
    MNIST,
    '--data',
    `imagefolder:${dir}`,
    '--out',
    snnFile,
    '--iterations',
    '2',
    '--batch',
    '4',
    '--preprocess',
    'resize:28,28',
    '-q',
  ]);
  assert.equal(made.code, 0, made.stderr);
  const snnMeta = JSON.parse(decodeModel(fs.readFileSync(snnFile), 'f').metadata[KEYS.snn]);
  assert.equal(snnMeta.preprocess, 'resize:28,28');
  // simulate repeats it: the same scores as with the option given again, and as the library on a data set opened with it.
  const json = (name: string): string => path.join(tmp, name);
  const a = cli([
    'simulate',
    snnFile,
    '--data',
    `imagefolder:${dir}`,
    '--T',
    '2,4',
    '--site-errors',
    '0',
    '--classes',
    DIGITS,
    '--json',
    json('a.json'),
    '-q',
  ]);
  assert.equal(a.code, 0, a.stderr);
  const b = cli([
    'simulate',
    snnFile,
    '--data',
    `imagefolder:${dir}`,
    '--T',
    '2,4',
    '--site-errors',
    '0',
    '--preprocess',
    'resize:28,28',
    '--classes',
    DIGITS,
    '--json',
    json('b.json'),
    '-q',
  ]);
  assert.equal(b.code, 0, b.stderr);
  const ra = JSON.parse(fs.readFileSync(json('a.json'), 'utf8'));
  assert.deepEqual(ra.results, JSON.parse(fs.readFileSync(json('b.json'), 'utf8')).results);
  const snn = await loadSnn(snnFile, { ann: null });
  const lib = await simulate(
    snn,
    openDataset(`imagefolder:${dir}`, undefined, {
      sampleShape: [1, 28, 28],
      preprocess: parsePreprocess('resize:28,28'),
      classNames: Array.from({ length: 10 }, (_, d) => String(d)),
    }),
    { T: [2, 4], threads: 1 },
  );
  assert.deepEqual(lib.results, ra.results);
  // A converted file whose stored preset is not one is refused, naming the field.
  const g = decodeModel(fs.readFileSync(snnFile), 'f');
  const bad = {
    ...g,
    metadata: { ...g.metadata, [KEYS.snn]: JSON.stringify({ ...snnMeta, preprocess: 'resize:0,28' }) },
  };
  assert.throws(
    () => snnFromGraph(decodeModel(encodeModel(bad), 'bad.onnx'), 'bad.onnx'),
    /bad\.onnx: .*field preprocess: must be a preprocessing preset/,
  );
});

test('voc, coco and videofolder layouts written by spikeport data give the in-memory results exactly (mnist-fcn, mnist-centernet, mnist-r3d)', async () => {
  const cases = [
    { model: 'mnist-fcn', spec: 'mnist-seg:test', layout: 'voc', n: 16, read: (o: string) => `voc:${o}:test` },
    {
      model: 'mnist-centernet',
      spec: 'mnist-det:test',
      layout: 'coco',
      n: 16,
      read: (o: string) => `coco:${path.join(o, 'images')}@${path.join(o, 'annotations.json')}`,
    },
    {
      model: 'mnist-r3d',
      spec: 'mnist-video:test',
      layout: 'videofolder',
      n: 40,
      read: (o: string) => `videofolder:${o}`,
    },
  ] as const;
  for (const c of cases) {
    const out = path.join(tmp, `layout-${c.layout}`);
    const r = cli(['data', c.spec, '--format', c.layout, '--limit', String(c.n), '--out', out, '-q']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`read it as ${c.layout}:`));
    const model = path.join(process.cwd(), 'models', `${c.model}.onnx`);
    const snn = await convert(model, c.spec.replace(':test', ':train'), { iterations: 2, batchSize: 8, threads: 1 });
    const mem = openMemoryDataset(c.spec, c.n);
    const disk = openDataset(c.read(out), undefined, { sampleShape: snn.spec.inputShape });
    assert.equal(disk.size, mem.size);
    if (c.layout !== 'videofolder') {
      // Same samples in the same order: pixels (and masks) byte for byte.
      const all = Array.from({ length: mem.size }, (_, i) => i);
      const [a, b] = [await mem.read(all), await disk.read(all)];
      assert.deepEqual(Array.from(b.x), Array.from(a.x), `${c.layout}: pixels`);
      if (c.layout === 'voc') assert.deepEqual(Array.from(b.masks ?? []), Array.from(a.masks ?? [0]), 'voc: masks');
      if (c.layout === 'coco') assert.deepEqual(disk.boxes, mem.boxes, 'coco: boxes');
    }
    const opts = { T: [2, 6], batchSize: 8, references: true, threads: 1 } as const;
    const [ra, rb] = [await simulate(snn, mem, opts), await simulate(snn, disk, opts)];
    assert.equal(rb.task, ra.task);
    assert.deepEqual(rb.results, ra.results, `${c.layout}: SNN scores`);
    assert.deepEqual([rb.ann, rb.clippedAnn], [ra.ann, ra.clippedAnn], `${c.layout}: ANN scores`);
  }
});

test('voc masks and coco boxes follow the preprocessing: masks resized nearest and cropped with their image, boxes mapped back to the original pixels', async () => {
  const dir = path.join(tmp, 'voc-resize');
  for (const f of ['JPEGImages', 'SegmentationClass', 'ImageSets/Segmentation'])
    fs.mkdirSync(path.join(dir, f), { recursive: true });
  // A 40×20 image whose left half is class 1 and right half class 2 (255 on the border column).
  const W = 40;
  const H = 20;
  const mask = Uint8Array.from({ length: W * H }, (_, i) => (i % W < 19 ? 1 : i % W === 19 ? 255 : 2));
  fs.writeFileSync(
    path.join(dir, 'JPEGImages', 'a.png'),
    png(
      W,
      H,
      1,
      mask.map((v) => v * 50),
    ),
  );
  fs.writeFileSync(path.join(dir, 'SegmentationClass', 'a.png'), png(W, H, 1, mask));
  fs.writeFileSync(path.join(dir, 'ImageSets/Segmentation/val.txt'), 'a\n');
  const d = openDataset(`voc:${dir}:val`, undefined, {
    sampleShape: [1, 10, 20],
    preprocess: parsePreprocess('resize:10,20'),
  });
  const { masks } = await d.read([0]);
  // Nearest: output column x takes input column ⌊(x + 0.5) · 2⌋ = 2x + 1.
  for (let y = 0; y < 10; y++)
    for (let x = 0; x < 20; x++) assert.equal(masks?.[y * 20 + x], mask[(2 * y + 1) * W + 2 * x + 1], `mask ${x},${y}`);
  // A mask of another size than its image is refused.
  fs.writeFileSync(path.join(dir, 'SegmentationClass', 'a.png'), png(W - 1, H, 1, mask.subarray(0, (W - 1) * H)));
  await assert.rejects(d.read([0]), /SegmentationClass\/a\.png is 39×20 but its image .*a\.png is 40×20/);
});

test('bad layout input: a mask whose size differs from its image, a COCO annotation of an unknown category: one line, exit 1, no output left', async () => {
  const voc = path.join(tmp, 'bad-voc');
  for (const f of ['JPEGImages', 'SegmentationClass', 'ImageSets/Segmentation'])
    fs.mkdirSync(path.join(voc, f), { recursive: true });
  fs.writeFileSync(path.join(voc, 'JPEGImages', 'a.png'), png(64, 64, 1, pattern(64 * 64, 1)));
  fs.writeFileSync(path.join(voc, 'SegmentationClass', 'a.png'), png(64, 60, 1, new Uint8Array(64 * 60)));
  fs.writeFileSync(path.join(voc, 'ImageSets/Segmentation/val.txt'), 'a\n');
  const coco = path.join(tmp, 'bad-coco');
  fs.mkdirSync(path.join(coco, 'images'), { recursive: true });
  fs.writeFileSync(path.join(coco, 'images', 'a.png'), png(64, 64, 1, pattern(64 * 64, 2)));
  fs.writeFileSync(
    path.join(coco, 'ann.json'),
    JSON.stringify({
      images: [{ id: 7, file_name: 'a.png', width: 64, height: 64 }],
      categories: [
        { id: 1, name: 'zero' },
        { id: 2, name: 'one' },
      ],
      annotations: [
        { id: 1, image_id: 7, category_id: 2, bbox: [1, 2, 10, 12], iscrowd: 0 },
        { id: 2, image_id: 7, category_id: 91, bbox: [1, 2, 10, 12], iscrowd: 0 },
      ],
    }),
  );
  const cases = [
    {
      model: 'mnist-fcn',
      calib: 'mnist-seg:train',
      data: `voc:${voc}:val`,
      message: /SegmentationClass\/a\.png is 64×60 but its image .*a\.png is 64×64/,
    },
    {
      model: 'mnist-centernet',
      calib: 'mnist-det:train',
      data: `coco:${coco}/images@${coco}/ann.json`,
      message: /ann\.json: annotations\[1\] has the category id 91, which is not in "categories"/,
    },
  ];
  for (const c of cases) {
    const json = path.join(tmp, `bad-${c.model}.json`);
    const save = path.join(tmp, `bad-${c.model}.snn.onnx`);
    const r = cli([
      'simulate',
      path.join(process.cwd(), 'models', `${c.model}.onnx`),
      '--data',
      c.data,
      '--calib',
      c.calib,
      '--calib-limit',
      '16',
      '--iterations',
      '1',
      '--batch',
      '8',
      '--T',
      '2',
      '--json',
      json,
      '--save',
      save,
      '-q',
    ]);
    assert.equal(r.code, 1, r.stderr);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0], c.message);
    assert.equal(fs.existsSync(json) || fs.existsSync(save), false, 'nothing written');
  }
  // A COCO file naming an image outside its folder is refused before anything is read.
  fs.writeFileSync(
    path.join(coco, 'escape.json'),
    JSON.stringify({ images: [{ id: 1, file_name: '../../etc/passwd' }], categories: [], annotations: [] }),
  );
  assert.throws(
    () => openDataset(`coco:${coco}/images@${coco}/escape.json`, undefined, { sampleShape: [1, 64, 64] }),
    /file_name "\.\.\/\.\.\/etc\/passwd" leaves the images folder/,
  );
});

test('coco categories follow --classes by name (any order in the file); a category the model lacks is one line', async () => {
  const dir = path.join(tmp, 'coco-classes');
  fs.mkdirSync(path.join(dir, 'images'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'images', 'a.png'), png(8, 8, 1, pattern(64, 3)));
  const ann = (cats: { id: number; name: string }[], boxCats: number[]): string =>
    JSON.stringify({
      images: [{ id: 1, file_name: 'a.png' }],
      categories: cats,
      annotations: boxCats.map((c, k) => ({ id: k + 1, image_id: 1, category_id: c, bbox: [k, 0, 2, 2], iscrowd: 0 })),
    });
  fs.writeFileSync(
    path.join(dir, 'a.json'),
    ann(
      [
        { id: 5, name: 'cat' },
        { id: 9, name: 'dog' },
      ],
      [9, 5],
    ),
  );
  const spec = `coco:${dir}/images@${dir}/a.json`;
  // The file's order: cat 0, dog 1. The model's order dog, cat: dog 0, cat 1.
  assert.deepEqual(
    openDataset(spec, undefined, { sampleShape: [1, 8, 8] }).boxes?.map((b) => b.label),
    [1, 0],
  );
  const named = openDataset(spec, undefined, { sampleShape: [1, 8, 8], classNames: ['dog', 'cat'] });
  assert.deepEqual(
    named.boxes?.map((b) => b.label),
    [0, 1],
  );
  assert.deepEqual(named.classes, ['dog', 'cat']);
  assert.throws(
    () => openDataset(spec, undefined, { sampleShape: [1, 8, 8], classNames: ['dog', 'bird'] }),
    /annotations\[1\] has the category "cat", which is not one of the model's classes \(classNames\)/,
  );
  fs.writeFileSync(path.join(dir, 'classes.txt'), 'dog\ndog\n');
  const r = cli([
    'simulate',
    path.join(process.cwd(), 'models', 'mnist-centernet.onnx'),
    '--data',
    spec,
    '--calib',
    'mnist-det:train',
    '--classes',
    path.join(dir, 'classes.txt'),
    '-q',
  ]);
  assert.equal(r.code, 1);
  assert.match(r.stderr.trim(), /^spikeport: error: --classes .*classes\.txt: "dog" is listed twice$/);
});
