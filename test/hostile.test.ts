/**
 * Hostile input, second pass: outputs that are devices, FIFOs or links; tensors stored outside
 * the model wherever ONNX allows them; data folders whose links lead elsewhere; files that claim
 * far more than they hold; tampered attributes; a read-only or full disk; and messages that
 * pointed the wrong way. Each test failed before the change it comes with.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import pkg from 'onnx-proto';
import { zipSync } from 'fflate';
import { SpikeportError, convert, openDataset } from '../src/index.js';
import { encodeModel } from '../src/onnx/codec.js';
import { floatTensor } from '../src/graph/ir.js';
import { loadModel } from '../src/model/load.js';
import { prepareModel } from '../src/model/prepare.js';
import { openMemoryDataset } from '../src/data/sources.js';
import { writeLayout } from '../src/data/layouts.js';
import { crc32, decodeLabelPng, encodePng } from '../src/data/png.js';
import { decodeImage } from '../src/data/images.js';
import { geometry, resizeBilinear } from '../src/data/preprocess.js';
import { meanAveragePrecision, type Detection } from '../src/tasks/detection.js';
import * as session from '../src/ort/session.js';
import type { DetectionBox } from '../src/data/dataset.js';
import { buildGraph, conv, gemm, npy, randn, uniform } from './helpers.js';
import { ZOO } from './zoo.js';
import { tempDir } from './temp.js';

const { onnx } = pkg;
const CLI = path.join(process.cwd(), 'dist', 'src', 'cli', 'main.js');
const MNIST = path.join(process.cwd(), 'models', 'mnist-cnn.onnx');
const tmp = tempDir('spikeport-hostile-');
const at = (...p: string[]): string => path.join(tmp, ...p);

/** The CLI in the test folder; a hang (reading a FIFO nobody writes) fails after two minutes. */
function run(args: string[]): { code: number | null; stderr: string; stdout: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', cwd: tmp, timeout: 120_000 });
  return { code: r.status, stderr: r.stderr, stdout: r.stdout };
}

/** Exit 1, one line matching `re`, no stack trace. */
function oneLine(r: { code: number | null; stderr: string }, re: RegExp): void {
  assert.equal(r.code, 1, r.stderr);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line, got:\n${r.stderr}`);
  assert.match(lines[0], re);
  assert.doesNotMatch(r.stderr, /\n\s+at |internal error/);
}

function ok(args: string[]): string {
  const r = run(args);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}

/** A library call that must fail with a SpikeportError matching `re`. */
async function refuses(work: () => unknown, re: RegExp, code?: SpikeportError['code']): Promise<SpikeportError> {
  let caught: unknown = null;
  try {
    await work();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof SpikeportError, `a SpikeportError, got ${String((caught as Error)?.stack ?? caught)}`);
  assert.match(caught.message, re);
  assert.doesNotMatch(caught.message, /\n/);
  if (code) assert.equal(caught.code, code);
  return caught;
}

/** A gray PNG of w × h with pixel values from `seed`. */
function png(w: number, h: number, seed = 1): Uint8Array {
  const data = Uint8Array.from(uniform(seed, w * h, 0, 255), (v) => Math.floor(v));
  return encodePng({ width: w, height: h, channels: 1, data });
}

function write(file: string, data: Uint8Array | string): string {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, data);
  return file;
}

/** No process holds the FIFO open for reading (opening its write end without blocking fails with ENXIO). */
function unread(fifo: string): void {
  assert.throws(() => fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK), /ENXIO/);
}

let record: string | null = null;
/** A small simulate record (the input of report's tests). */
function makeRecord(): string {
  if (record) return record;
  fs.copyFileSync(MNIST, at('a.onnx'));
  ok(
    ['simulate', 'a.onnx', '--data', 'mnist:test', '--limit', '20', '--T', '2,4', '--iterations', '1'].concat([
      '--site-errors',
      '0',
      '--threads',
      '1',
      '--json',
      'rec.json',
      '-q',
    ]),
  );
  record = at('rec.json');
  return record;
}

let snnFile: string | null = null;
/** mnist-cnn converted (1×28×28 input), saved in the test folder. */
async function mnistSnn(): Promise<string> {
  if (snnFile) return snnFile;
  const snn = await convert(MNIST, openDataset('mnist:train', 100), { iterations: 1, batchSize: 50, threads: 1 });
  snnFile = at('cnn.snn.onnx');
  snn.save(snnFile);
  return snnFile;
}

test('1. an output that is a FIFO, a device or a link is written through it, never replaced; a link to nothing and an empty name are refused', async () => {
  makeRecord();
  // A FIFO with a reader: the report goes through it, and it stays a FIFO.
  const fifo = at('pipe.html');
  spawnSync('mkfifo', [fifo]);
  const got = fs.openSync(at('got.html'), 'w');
  const reader = spawn('cat', [fifo], { stdio: ['ignore', got, 'ignore'] });
  fs.closeSync(got);
  const done = new Promise<void>((resolve) => reader.on('exit', () => resolve()));
  const r = run(['report', 'rec.json', '--out', 'pipe.html']);
  const stop = setTimeout(() => reader.kill(), 10_000); // a FIFO replaced by a file is never opened
  await done;
  clearTimeout(stop);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(fs.lstatSync(fifo).isFIFO(), 'still a FIFO');
  assert.match(fs.readFileSync(at('got.html'), 'utf8'), /^<!doctype html>/);
  // A link to a regular file: the file gets the output, the link stays a link.
  write(at('real.md'), 'old');
  fs.symlinkSync('real.md', at('link.md'));
  ok(['report', 'rec.json', '--out', 'r.html', '--markdown', 'link.md']);
  assert.equal(fs.readlinkSync(at('link.md')), 'real.md');
  assert.match(fs.readFileSync(at('real.md'), 'utf8'), /^# SNN simulation/);
  // A link to a character device: written in place, the link and the device stay.
  fs.symlinkSync('/dev/null', at('null.html'));
  ok(['report', 'rec.json', '--out', 'null.html']);
  assert.equal(fs.readlinkSync(at('null.html')), '/dev/null');
  assert.ok(fs.statSync('/dev/null').isCharacterDevice());
  if (spawnSync('mknod', [at('mynull'), 'c', '1', '3']).status === 0) {
    // A device node of one's own (as root: what `--json /dev/null` would have replaced).
    ok(['report', 'rec.json', '--out', 'x.html', '--markdown', 'mynull']);
    assert.ok(fs.lstatSync(at('mynull')).isCharacterDevice(), 'still a device');
  }
  // A link to nothing: refused, and nothing created at either end.
  fs.symlinkSync('missing.html', at('dangling.html'));
  oneLine(
    run(['report', 'rec.json', '--out', 'dangling.html']),
    /dangling\.html is a link to missing\.html, which does not exist/,
  );
  assert.ok(fs.lstatSync(at('dangling.html')).isSymbolicLink());
  assert.ok(!fs.existsSync(at('missing.html')));
  // An empty name is not "no output".
  oneLine(run(['report', 'rec.json', '--out', 'e.html', '--markdown', '']), /--markdown: the file name is empty/);
  assert.ok(!fs.existsSync(at('e.html')));
  // A folder, a block device: refused.
  fs.mkdirSync(at('dir.html'));
  oneLine(run(['report', 'rec.json', '--out', 'dir.html']), /dir\.html is a folder/);
  assert.deepEqual(
    fs.readdirSync(tmp).filter((f) => f.endsWith('.tmp')),
    [],
  );
});

test('2. external data in a Constant sparse_value, a function or training info is refused before ONNX Runtime sees it; the file it names is never opened', () => {
  const canary = at('canary.bin');
  spawnSync('mkfifo', [canary]);
  const ext = (name: string): pkg.onnx.ITensorProto => ({
    name,
    dataType: 1,
    dims: [1],
    dataLocation: 1,
    externalData: [
      { key: 'location', value: 'canary.bin' },
      { key: 'length', value: '4' },
    ],
  });
  const tamper = (name: string, change: (m: pkg.onnx.ModelProto) => void): void => {
    const m = onnx.ModelProto.decode(fs.readFileSync(MNIST));
    change(m);
    fs.writeFileSync(at(name), onnx.ModelProto.encode(m).finish());
  };
  tamper('sparse.onnx', (m) =>
    (m.graph as pkg.onnx.GraphProto).node.unshift(
      onnx.NodeProto.create({
        opType: 'Constant',
        name: 'sparse_const',
        output: ['sp'],
        attribute: [
          {
            name: 'sparse_value',
            type: 11,
            sparseTensor: {
              dims: [4],
              values: ext('v'),
              indices: { name: 'i', dataType: 7, dims: [1], int64Data: [0] },
            },
          },
        ],
      }),
    ),
  );
  tamper('function.onnx', (m) => {
    m.functions = [
      onnx.FunctionProto.create({
        name: 'f',
        domain: 'local',
        node: [{ opType: 'Constant', output: ['c'], attribute: [{ name: 'value', type: 4, t: ext('c') }] }],
      }),
    ];
  });
  tamper('training.onnx', (m) => {
    m.trainingInfo = [
      onnx.TrainingInfoProto.create({ initialization: { name: 'init', initializer: [ext('w0')], node: [] } }),
    ];
  });
  for (const [file, where] of [
    ['sparse.onnx', /attribute sparse_value of node "sparse_const"/],
    ['function.onnx', /the function "f"/],
    ['training.onnx', /"w0" in the training initialization/],
  ] as const) {
    const r = run(['convert', file, '--data', 'mnist:train', '--iterations', '1', '--out', 'x.onnx', '-q']);
    oneLine(r, where);
    assert.match(r.stderr, /uses external data/);
    assert.ok(!fs.existsSync(at('x.onnx')));
  }
  unread(canary);
  // ONNX Runtime's own refusals come as one short line: no source file, no C++ signature.
  const raw =
    '/onnxruntime_src/onnxruntime/core/graph/graph.cc:1295 onnxruntime::Graph::Graph(const onnxruntime::Model&, onnx::GraphProto*, const std::unordered_map<std::__cxx11::basic_string<char>, int>&, onnxruntime::Version, onnxruntime::IOnnxRuntimeOpSchemaCollectionPtr, onnxruntime::Graph*, const onnxruntime::Node*, const onnxruntime::logging::Logger&, bool) [ONNXRuntimeError] : 1 : FAIL : tensorprotoutils.cc:434 ValidateExternalDataPathFromDir Absolute path not allowed for external data location';
  assert.equal(session.ortMessage(raw), 'Absolute path not allowed for external data location');
  assert.equal(
    session.ortMessage(
      "Non-zero status code returned while running Conv node. Name:'c' Status Message: /onnxruntime_src/onnxruntime/core/providers/cpu/nn/conv.cc:123 virtual onnxruntime::common::Status onnxruntime::Conv<float>::Compute(onnxruntime::OpKernelContext*) const X num_dims does not match W num_dims.\nStacktrace:\n",
    ),
    "Non-zero status code returned while running Conv node. Name:'c' Status Message: X num_dims does not match W num_dims.",
  );
});

/** Folders for the link tests: one good image outside every data set, and data sets linking to it. */
function linkedFolders(): { outside: string } {
  const outside = at('outside');
  write(path.join(outside, 'evil.png'), png(28, 28, 5));
  write(at('outside64', 'evil64.png'), png(64, 64, 6));
  return { outside };
}

test('3. links that leave an image folder, a VOC or COCO folder or a video folder are refused naming the link; followLinks follows them; links inside are fine', async () => {
  const { outside } = linkedFolders();
  const shape = { sampleShape: [1, 28, 28] };
  // imagefolder: a file link and a folder link leading out.
  write(at('if1', 'a', 'ok.png'), png(28, 28, 1));
  fs.symlinkSync(path.join(outside, 'evil.png'), at('if1', 'a', 'evil.png'));
  const e = await refuses(
    () => openDataset(`imagefolder:${at('if1')}`, undefined, shape),
    /if1\/a\/evil\.png is a link to .*outside\/evil\.png, outside the data set's folder .*followLinks/,
    'invalid-data',
  );
  assert.equal(e.field, 'followLinks');
  write(at('if2', 'a', 'ok.png'), png(28, 28, 1));
  fs.symlinkSync(outside, at('if2', 'b'));
  await refuses(() => openDataset(`imagefolder:${at('if2')}`, undefined, shape), /if2\/b is a link to .*outside/);
  // Asked for: followed.
  const followed = openDataset(`imagefolder:${at('if2')}`, undefined, { ...shape, followLinks: true });
  assert.deepEqual(followed.classes, ['a', 'b']);
  await followed.read([0, 1]);
  // Links inside the folder are the layout's business.
  write(at('if3', 'b', 'y.png'), png(28, 28, 2));
  fs.mkdirSync(at('if3', 'a'));
  fs.symlinkSync('../b/y.png', at('if3', 'a', 'x.png'));
  const inside = openDataset(`imagefolder:${at('if3')}`, undefined, shape);
  const { x } = await inside.read([0, 1]);
  assert.deepEqual(x.subarray(0, 784), x.subarray(784));
  // VOC: an image, a mask and the split list that lead out.
  const voc = at('voc');
  write(path.join(voc, 'ImageSets', 'Segmentation', 'val.txt'), '0\n1\n2\n');
  write(path.join(voc, 'JPEGImages', '0.png'), png(64, 64, 3));
  write(path.join(voc, 'SegmentationClass', '0.png'), png(64, 64, 4));
  fs.symlinkSync(at('outside64', 'evil64.png'), path.join(voc, 'JPEGImages', '1.png'));
  write(path.join(voc, 'SegmentationClass', '1.png'), png(64, 64, 4));
  write(path.join(voc, 'JPEGImages', '2.png'), png(64, 64, 3));
  fs.symlinkSync(at('outside64', 'evil64.png'), path.join(voc, 'SegmentationClass', '2.png'));
  const vd = openDataset(`voc:${voc}:val`, undefined, { sampleShape: [1, 64, 64] });
  await vd.read([0]);
  await refuses(() => vd.read([1]), /JPEGImages\/1\.png is a link to .*outside/);
  await refuses(() => vd.read([2]), /SegmentationClass\/2\.png is a link to .*outside/);
  fs.mkdirSync(at('outside64', 'sets'));
  write(path.join(outside, 'sets', 'train.txt'), '0\n');
  fs.symlinkSync(path.join(outside, 'sets', 'train.txt'), path.join(voc, 'ImageSets', 'Segmentation', 'train.txt'));
  await refuses(() => openDataset(`voc:${voc}:train`, undefined, { sampleShape: [1, 64, 64] }), /train\.txt is a link/);
  // COCO: an image that leads out.
  write(at('coco', 'images', '0.png'), png(28, 28, 1));
  fs.symlinkSync(path.join(outside, 'evil.png'), at('coco', 'images', '1.png'));
  write(
    at('coco', 'ann.json'),
    JSON.stringify({
      images: [0, 1].map((id) => ({ id, file_name: `${id}.png`, width: 28, height: 28 })),
      categories: [{ id: 1, name: 'a' }],
      annotations: [{ id: 1, image_id: 0, category_id: 1, bbox: [1, 1, 5, 5], iscrowd: 0 }],
    }),
  );
  const cd = openDataset(`coco:${at('coco', 'images')}@${at('coco', 'ann.json')}`, undefined, shape);
  await cd.read([0]);
  await refuses(() => cd.read([1]), /images\/1\.png is a link to .*outside/);
  // Video folders: a frame and a video that lead out.
  write(at('vid', 'a', 'v0', '0.png'), png(28, 28, 1));
  write(at('vid', 'a', 'v0', '1.png'), png(28, 28, 2));
  fs.mkdirSync(at('vid', 'a', 'v1'));
  write(at('vid', 'a', 'v1', '0.png'), png(28, 28, 1));
  fs.symlinkSync(path.join(outside, 'evil.png'), at('vid', 'a', 'v1', '1.png'));
  const vv = openDataset(`videofolder:${at('vid')}`, undefined, { sampleShape: [1, 2, 28, 28] });
  await vv.read([0]);
  await refuses(() => vv.read([1]), /v1\/1\.png is a link to .*outside/);
  fs.symlinkSync(outside, at('vid', 'a', 'v2'));
  await refuses(
    () => openDataset(`videofolder:${at('vid')}`, undefined, { sampleShape: [1, 2, 28, 28] }),
    /a\/v2 is a link to .*outside/,
  );
  // The command line names the flag that follows links, and the flag works.
  const snn = await mnistSnn();
  // One class folder of the model's ten: --classes says which one it is.
  const classes = at('classes.txt');
  fs.writeFileSync(classes, 'abcdefghij'.split('').join('\n') + '\n');
  const args = [
    'simulate',
    snn,
    '--data',
    `imagefolder:${at('if1')}`,
    '--classes',
    classes,
    '--T',
    '2',
    '--site-errors',
    '0',
    '-q',
  ];
  oneLine(run(args), /evil\.png is a link to .*outside.*\(--follow-links to follow them\)/);
  ok([...args, '--follow-links']);
});

test('4. the enlarging resize computes only the crop: the same values as resizing whole and cropping, and a 10⁶ × 2 image costs a 224 × 224 crop', async () => {
  const w = 300;
  const h = 5;
  const px = Uint8Array.from(uniform(7, w * h * 3, 0, 255), Math.floor);
  const g = geometry({ kind: 'imagenet' }, w, h, 28, 28, 'x');
  assert.ok(g.resize && g.crop && g.resize.height > h);
  const whole = resizeBilinear(px, w, h, 3, g.resize.width, g.resize.height);
  assert.equal(whole.length, g.resize.width * g.resize.height * 3);
  const c = g.crop;
  const cropped = new Uint8Array(c.width * c.height * 3);
  for (let y = 0; y < c.height; y++)
    for (let x = 0; x < c.width * 3; x++)
      cropped[y * c.width * 3 + x] = whole[((c.top + y) * g.resize.width + c.left) * 3 + x];
  assert.deepEqual(resizeBilinear(px, w, h, 3, g.resize.width, g.resize.height, c), cropped);
  // 10⁶ × 2 → 128 000 000 × 256 whole (98 GB): only the 224 × 224 window is made.
  const wide = write(at('wide', 'a', 'w.png'), png(1_000_000, 2, 3));
  const out = new Uint8Array(224 * 224);
  const placed = await decodeImage(wide, [1, 224, 224], { kind: 'imagenet' }, out, 0);
  assert.deepEqual(placed.resize, { width: 128_000_000, height: 256 });
  assert.ok(out.some((v) => v > 0));
});

/** A gray label PNG declaring w × h whose image data inflates to `bytes` zeros. */
function maskBomb(w: number, h: number, bytes: number): Uint8Array {
  const chunk = (type: string, body: Uint8Array): Buffer => {
    const head = Buffer.alloc(8);
    head.writeUInt32BE(body.length);
    head.write(type, 4, 'latin1');
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), body])));
    return Buffer.concat([head, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w);
  ihdr.writeUInt32BE(h, 4);
  ihdr.set([8, 0, 0, 0, 0], 8);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(Buffer.alloc(bytes), { level: 9 })),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

test('4. a label PNG is inflated to its declared size at most; a mask file larger than its image can be is refused unread', async () => {
  // 64 × 64 declared, 64 MB of image data in 62 KB.
  const bomb = maskBomb(64, 64, 64 * 2 ** 20);
  assert.ok(bomb.length < 2 ** 16);
  await refuses(() => decodeLabelPng(bomb, 'm.png'), /inflates to more than the 4160 bytes of 64×64 pixels/);
  const voc = at('vocbomb');
  write(path.join(voc, 'ImageSets', 'Segmentation', 'val.txt'), '0\n1\n');
  write(path.join(voc, 'JPEGImages', '0.png'), png(64, 64, 3));
  write(path.join(voc, 'SegmentationClass', '0.png'), bomb);
  write(path.join(voc, 'JPEGImages', '1.png'), png(64, 64, 3));
  write(path.join(voc, 'SegmentationClass', '1.png'), Buffer.alloc(3 * 2 ** 20, 1));
  const d = openDataset(`voc:${voc}:val`, undefined, { sampleShape: [1, 64, 64] });
  await refuses(() => d.read([0]), /inflates to more than/);
  await refuses(() => d.read([1]), /1\.png is 3\.0 MiB, more than spikeport reads as the mask of a 64×64 image/);
});

test('4. COCO mAP is linear in the boxes: 100 000 boxes on one image score exactly', { timeout: 60_000 }, () => {
  const n = 100_000;
  const gts: DetectionBox[] = Array.from({ length: n }, (_, i) => ({
    image: 0,
    label: 0,
    x: (i % 300) * 10,
    y: Math.floor(i / 300) * 10,
    w: 5,
    h: 5,
  }));
  // The first 100 boxes found exactly: recall reaches 100 / 100 000 < 1 %, so of COCO's 101
  // recall points only 0 is reached, at precision 1: AP = 1/101 at every IoU threshold.
  const dets: Detection[] = gts.slice(0, 100).map((g, i) => ({ ...g, score: 1 - i / 1000 }));
  const r = meanAveragePrecision(dets, gts, 1);
  assert.ok(Math.abs(r.map - 1 / 101) < 1e-15, String(r.map));
  assert.ok(Math.abs(r.map50 - 1 / 101) < 1e-15, String(r.map50));
});

/** A zip archive of deflated members (`data` already deflated, `size` its inflated length), as numpy writes one. */
function zipOf(members: { name: string; data: Uint8Array; size: number }[]): Buffer {
  const locals: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const m of members) {
    const name = Buffer.from(m.name);
    const head = Buffer.alloc(30);
    head.writeUInt32LE(0x04034b50, 0);
    head.writeUInt16LE(20, 4);
    head.writeUInt16LE(8, 8);
    head.writeUInt32LE(m.data.length, 18);
    head.writeUInt32LE(m.size, 22);
    head.writeUInt16LE(name.length, 26);
    const dir = Buffer.alloc(46);
    dir.writeUInt32LE(0x02014b50, 0);
    dir.writeUInt16LE(20, 4);
    dir.writeUInt16LE(20, 6);
    dir.writeUInt16LE(8, 10);
    dir.writeUInt32LE(m.data.length, 20);
    dir.writeUInt32LE(m.size, 24);
    dir.writeUInt16LE(name.length, 28);
    dir.writeUInt32LE(offset, 42);
    locals.push(head, name, Buffer.from(m.data));
    central.push(dir, name);
    offset += 30 + name.length + m.data.length;
  }
  const cd = Buffer.concat(central);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(members.length, 8);
  end.writeUInt16LE(members.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, end]);
}

test('4. an npz is inflated only as far as limit needs; an array beyond 2 GiB is refused before anything is inflated', async () => {
  const N = 1000;
  const xs = uniform(11, N * 64);
  const x = npy([N, 1, 8, 8], '<f4', xs);
  const y = npy(
    [N],
    '<i4',
    Int32Array.from({ length: N }, (_, i) => i % 10),
  );
  // x's deflate stream holds its first 100 samples, then a block of the reserved type 3: whoever
  // inflates past them fails.
  const head = x.length - N * 256;
  const start = zlib.deflateRawSync(x.subarray(0, head + 100 * 256), { finishFlush: zlib.constants.Z_SYNC_FLUSH });
  const broken = zipOf([
    { name: 'x.npy', data: Buffer.concat([start, Buffer.from([0x07, 0, 0, 0])]), size: x.length },
    { name: 'y.npy', data: zlib.deflateRawSync(y), size: y.length },
  ]);
  write(at('broken.npz'), broken);
  const d = openMemoryDataset(`npz:${at('broken.npz')}`, 50);
  assert.equal(d.size, 50);
  assert.deepEqual(d.x, xs.subarray(0, 50 * 64));
  assert.deepEqual(
    Array.from(d.labels ?? []),
    Array.from({ length: 50 }, (_, i) => i % 10),
  );
  await refuses(() => openMemoryDataset(`npz:${at('broken.npz')}`), /x\.npy cannot be inflated/, 'invalid-data');
  await refuses(() => openMemoryDataset(`npz:${at('broken.npz')}`, 101), /x\.npy cannot be inflated/, 'invalid-data');
  // A header claiming 10⁸ images: refused on the header, whatever the data.
  write(at('claims.npz'), zipSync({ 'x.npy': npy([1e8, 1, 28, 28], '|u1', new Uint8Array(16)) }));
  await refuses(
    () => openMemoryDataset(`npz:${at('claims.npz')}`),
    /73\.0 GiB, more than spikeport reads of an npz array/,
  );
  // With a limit the same file is read as far as the limit (and then found short).
  await refuses(() => openMemoryDataset(`npz:${at('claims.npz')}`, 2), /truncated array data/);
});

test('4. report: duplicate or too many rows are refused in one line; a file over the record limit is refused before it is read', () => {
  const rec = JSON.parse(fs.readFileSync(makeRecord(), 'utf8')) as { results: { T: number }[] };
  const dup = { ...rec, results: [rec.results[0], rec.results[0]] };
  write(at('dup.json'), JSON.stringify(dup));
  oneLine(run(['report', 'dup.json', '--out', 'dup.html']), /results: each T once, in ascending order/);
  const many = { ...rec, results: Array.from({ length: 70_000 }, (_, i) => ({ ...rec.results[0], T: i + 1 })) };
  write(at('many.json'), JSON.stringify(many));
  oneLine(run(['report', 'many.json', '--out', 'many.html']), /a simulate record with a bad field results/);
  // Each worker's times: as many as there are rows allowed, no more.
  const workers = Array.from({ length: 100_001 }, (_, i) => ({ shard: i, batches: 1, seconds: 1 }));
  write(at('workers.json'), JSON.stringify({ ...rec, times: { workers } }));
  oneLine(run(['report', 'workers.json', '--out', 'workers.html']), /bad field times\.workers: at most 100000 rows/);
  const big = at('big.json');
  fs.writeFileSync(big, '');
  fs.truncateSync(big, 300 * 2 ** 20);
  oneLine(
    run(['report', 'big.json', '--out', 'big.html']),
    /big\.json is 300\.0 MiB, more than spikeport reads as a record/,
  );
  for (const f of ['dup.html', 'many.html', 'workers.html', 'big.html']) assert.ok(!fs.existsSync(at(f)));
});

test('5. an image file over 2 GiB is one line, not a crash; nothing is read whole', async () => {
  const file = write(at('huge', 'a', 'h.png'), '');
  fs.truncateSync(file, 2 ** 31 + 2 ** 20);
  await refuses(
    () => decodeImage(file, [1, 28, 28], null, new Uint8Array(784), 0),
    /h\.png is not a readable image/,
    'invalid-data',
  );
});

test('5. export nir and simulate agree on tampered Conv attributes (strides 0, negative pads, huge dilations, group 0 or not dividing): one line each', async () => {
  const npz = zipSync({
    'x.npy': npy([4, 3, 16, 16], '<f4', uniform(3, 4 * 768)),
    'y.npy': npy([4], '<i4', Int32Array.of(0, 1, 2, 3)),
  });
  const data = openDataset('npz:' + write(at('d16.npz'), npz));
  const snn = await convert({ path: 'm.onnx', sha256: '0'.repeat(64), graph: ZOO.mobilenetv2.graph() }, data, {
    iterations: 1,
    batchSize: 4,
    threads: 1,
    spikes: 'unit',
  });
  snn.save(at('m.snn.onnx'));
  const good = fs.readFileSync(at('m.snn.onnx'));
  ok(['export', 'nir', 'm.snn.onnx', '--out', 'm.nir']);
  const cases: [string, pkg.onnx.IAttributeProto, RegExp][] = [
    ['strides0', { name: 'strides', type: 7, ints: [0, 0] }, /strides \[0, 0\]: each must be an integer from 1/],
    ['pads', { name: 'pads', type: 7, ints: [-1, -1, -1, -1] }, /pads \[-1, -1, -1, -1\]/],
    ['dilation', { name: 'dilations', type: 7, ints: [1e9, 1e9] }, /dilations \[1000000000, 1000000000\]/],
    ['dilation20', { name: 'dilations', type: 7, ints: [2 ** 20, 2 ** 20] }, /does not fit|cannot load|failed to run/],
    ['group0', { name: 'group', type: 2, i: 0 }, /group 0: it must be an integer ≥ 1/],
    ['group5', { name: 'group', type: 2, i: 5 }, /groups do not fit|cannot load|failed to run/],
  ];
  for (const [name, attr, re] of cases) {
    const m = onnx.ModelProto.decode(good);
    const node = (m.graph as pkg.onnx.GraphProto).node.find((n) => n.opType === 'Conv') as pkg.onnx.NodeProto;
    node.attribute = [...node.attribute.filter((a) => a.name !== attr.name), onnx.AttributeProto.create(attr)];
    fs.writeFileSync(at(`${name}.snn.onnx`), onnx.ModelProto.encode(m).finish());
    oneLine(run(['export', 'nir', `${name}.snn.onnx`, '--out', `${name}.nir`]), re);
    oneLine(run(['simulate', `${name}.snn.onnx`, '--data', `npz:${at('d16.npz')}`, '--T', '2', '-q']), re);
    assert.ok(!fs.existsSync(at(`${name}.nir`)));
  }
});

test('5. data --format imagefolder on a read-only or full disk: one line, nothing left behind', async () => {
  const d = openMemoryDataset('mnist:test', 100);
  const parent = tempDir('spikeport-hostile-layout-');
  const patch = <K extends 'mkdtempSync' | 'writeFileSync'>(name: K, after: number, code: string): (() => void) => {
    const original = fs[name];
    let calls = 0;
    (fs as unknown as Record<string, unknown>)[name] = (...args: unknown[]): unknown => {
      if (++calls > after) throw Object.assign(new Error(`${code}: simulated, ${name}`), { code });
      return (original as (...a: unknown[]) => unknown).apply(fs, args);
    };
    return () => {
      (fs as unknown as Record<string, unknown>)[name] = original;
    };
  };
  for (const [name, after, code] of [
    ['mkdtempSync', 0, 'EROFS'],
    ['writeFileSync', 10, 'ENOSPC'],
  ] as const) {
    const restore = patch(name, after, code);
    try {
      await refuses(
        () => writeLayout(d, 'imagefolder', path.join(parent, 'out')),
        new RegExp(`cannot write .*out: ${code}`),
        'io',
      );
    } finally {
      restore();
    }
    assert.deepEqual(fs.readdirSync(parent), [], 'nothing left');
  }
});

test("5. a missing or read-only TMPDIR (the NIR reader's copy, --workers' shard files) is one line, not an internal error", () => {
  // An HDF5 signature: the file is taken for NIR and copied to a temporary folder for the reader.
  write(
    at('tmpdir', 'x.nir'),
    Buffer.concat([Buffer.from([0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.alloc(64)]),
  );
  fs.copyFileSync(MNIST, at('tmpdir', 'a.onnx'));
  for (const [tmpdir, args] of [
    [at('tmpdir', 'missing'), ['simulate', 'tmpdir/x.nir', '--data', 'mnist:test', '--limit', '4', '--T', '2', '-q']],
    [
      '/proc',
      [
        'simulate',
        'tmpdir/a.onnx',
        '--data',
        'mnist:test',
        '--limit',
        '4',
        '--T',
        '2',
        '--workers',
        '2',
        '--batch',
        '2',
        '--iterations',
        '1',
        '-q',
      ],
    ],
  ] as const) {
    const r = spawnSync(process.execPath, [CLI, ...args], {
      encoding: 'utf8',
      cwd: tmp,
      timeout: 120_000,
      env: { ...process.env, TMPDIR: tmpdir },
    });
    oneLine({ code: r.status, stderr: r.stderr }, new RegExp(`cannot write temporary files in ${tmpdir} .*set TMPDIR`));
  }
});

test('5. a NIR file whose temporary copy cannot be written whole (a file size limit, as a full disk) is one line, and nothing is left', () => {
  ok(['convert', MNIST, '--data', 'mnist:train', '--iterations', '1', '--spikes', 'unit', '--out', 'u.snn.onnx', '-q']);
  const scratch = at('scratch-full');
  fs.mkdirSync(scratch);
  // bash ignores SIGXFSZ for node, so a write past 64 KiB fails with EFBIG instead of ending the process.
  const r = spawnSync(
    'bash',
    [
      '-c',
      'trap "" XFSZ; ulimit -f 64; exec "$0" "$@"',
      process.execPath,
      CLI,
      'export',
      'nir',
      'u.snn.onnx',
      '--out',
      'u.nir',
    ],
    { encoding: 'utf8', cwd: tmp, timeout: 120_000, env: { ...process.env, TMPDIR: scratch } },
  );
  oneLine(
    { code: r.status, stderr: r.stderr },
    new RegExp(`cannot write temporary files in ${scratch} \\(File too large\\); set TMPDIR`),
  );
  assert.equal(fs.existsSync(at('u.nir')), false, 'no output file');
  assert.deepEqual(fs.readdirSync(scratch), [], 'no temporary folder left');
});

test('6. --workers 2: the error is the first real one (the unreadable image), not the worker stopped because of it', async () => {
  const snn = await mnistSnn();
  const dir = at('w');
  ok(['data', 'mnist:test', '--limit', '1000', '--format', 'imagefolder', '--out', dir, '-q']);
  // Worker 1 takes the second half: break its first image (class folders in order), while
  // worker 0 still has 50 batches to go.
  const files = fs
    .readdirSync(dir)
    .sort()
    .flatMap((c) =>
      fs
        .readdirSync(path.join(dir, c))
        .sort()
        .map((f) => path.join(dir, c, f)),
    );
  const bad = files[500];
  fs.writeFileSync(bad, 'not an image');
  const r = run(
    ['simulate', snn, '--data', `imagefolder:${dir}`, '--batch', '10', '--workers', '2', '--T', '64'].concat([
      '--site-errors',
      '0',
      '--threads',
      '2',
      '-q',
    ]),
  );
  oneLine(r, new RegExp(`worker 1: ${bad.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is not a readable image`));
});

test('6. the dynamic-batch hint only when the model runs one sample at a time; NaN weights are found before calibrating', async () => {
  const cycle = buildGraph([1, 8, 8], (b, x) => {
    const h = b.op('Relu', [b.op('Add', [conv(b, x, 1, 2, 3), 'loop'])]);
    b.nodes.push({ name: 'c', opType: 'Identity', domain: '', inputs: [h], outputs: ['loop'], attrs: {} });
    return gemm(b, b.op('Flatten', [h], { axis: 1 }), 128, 3);
  });
  const e = await refuses(
    () => prepareModel({ path: 'c.onnx', sha256: '0', graph: cycle }, { threads: 1 }),
    /not acyclic/,
  );
  assert.doesNotMatch(e.message, /batch/);
  const fixed = buildGraph([1, 8, 8], (b, x) => {
    const h = b.op('Relu', [conv(b, x, 1, 2, 3)]);
    const shape = b.constant('s', { dtype: 'int64', dims: [2], data: BigInt64Array.of(1n, -1n) });
    return gemm(b, b.op('Reshape', [h, shape]), 128, 4);
  });
  await refuses(() => prepareModel({ path: 'f.onnx', sha256: '0', graph: fixed }, { threads: 1 }), /fixed batch size/);
  const nan = buildGraph([1, 8, 8], (b, x) => {
    const w = randn(3, 2 * 9, 0.3);
    w[5] = Number.NaN;
    const h = b.op('Relu', [
      b.op('Conv', [x, b.constant('W', floatTensor([2, 1, 3, 3], w))], { kernel_shape: [3, 3] }),
    ]);
    return gemm(b, b.op('Flatten', [h], { axis: 1 }), 72, 3);
  });
  await refuses(
    () => prepareModel({ path: 'n.onnx', sha256: '0', graph: nan }, { threads: 1 }),
    /the weights "W.*" of node ".*" hold NaN \(value 5 of 18\)/,
    'unsupported-model',
  );
});

test('6. COCO: a repeated category id, a string image id; VOC: a listed file that never existed; extreme mean/std: each said as it is', async () => {
  const ann = (over: object): string =>
    write(
      at('c2', 'ann.json'),
      JSON.stringify({
        images: [{ id: 0, file_name: '0.png', width: 28, height: 28 }],
        categories: [
          { id: 1, name: 'a' },
          { id: 2, name: 'b' },
        ],
        annotations: [{ id: 1, image_id: 0, category_id: 1, bbox: [1, 1, 5, 5], iscrowd: 0 }],
        ...over,
      }),
    );
  write(at('c2', 'images', '0.png'), png(28, 28, 1));
  const open = (): unknown =>
    openDataset(`coco:${at('c2', 'images')}@${at('c2', 'ann.json')}`, undefined, { sampleShape: [1, 28, 28] });
  ann({
    categories: [
      { id: 1, name: 'a' },
      { id: 1, name: 'b' },
    ],
  });
  await refuses(open, /categories\[1\] has the id 1, as an earlier category/);
  ann({ annotations: [{ id: 1, image_id: '0', category_id: 1, bbox: [1, 1, 5, 5], iscrowd: 0 }] });
  await refuses(open, /annotations\[0\]\.image_id must be an integer \(got "0"\)/);
  const voc = at('voc2');
  write(path.join(voc, 'ImageSets', 'Segmentation', 'val.txt'), '0\n');
  const d = openDataset(`voc:${voc}:val`, undefined, { sampleShape: [1, 64, 64] });
  const e = await refuses(() => d.read([0]), /no such file: .*JPEGImages\/0\.jpg \(listed in .*val\.txt\)/);
  assert.doesNotMatch(e.message, /removed/);
  for (const [mean, std, re] of [
    ['0', '1e-320', /--mean\/--std std 1e-320 is outside 1e-10\.\.1e10/],
    ['1e308', '1', /--mean\/--std mean 1e\+308 is outside ±1e10/],
  ] as const)
    oneLine(
      run(['convert', MNIST, '--data', 'mnist:train', '--mean', mean, '--std', std, '--out', 'o.onnx', '-q']),
      re,
    );
});

test('6. the Markdown summary shows names as text: no HTML, no Markdown from a model or class name', () => {
  const rec = JSON.parse(fs.readFileSync(makeRecord(), 'utf8')) as Record<string, unknown>;
  write(
    at('xss.json'),
    JSON.stringify({ ...rec, model: '<script>alert(1)</script>', data: 'imagefolder:[x](javascript:y)|*z*' }),
  );
  ok(['report', 'xss.json', '--out', 'xss.html', '--markdown', 'xss.md']);
  const md = fs.readFileSync(at('xss.md'), 'utf8');
  assert.doesNotMatch(md, /<script>/);
  assert.match(md, /&lt;script&gt;alert\(1\)&lt;\/script&gt;/);
  assert.match(md, /imagefolder:\\\[x\\\]\(javascript:y\)\\\|\\\*z\\\*/);
  assert.doesNotMatch(fs.readFileSync(at('xss.html'), 'utf8'), /<script>alert/);
});

test('loadModel of a Conv whose attributes a file cannot mean is one line naming node and attribute', () => {
  const g = buildGraph([1, 8, 8], (b, x) => b.op('Relu', [conv(b, x, 1, 2, 3)]));
  const m = onnx.ModelProto.decode(encodeModel(g));
  const node = (m.graph as pkg.onnx.GraphProto).node[0] as pkg.onnx.NodeProto;
  node.attribute.push(onnx.AttributeProto.create({ name: 'dilations', type: 1, f: 2 }));
  fs.writeFileSync(at('typed.onnx'), onnx.ModelProto.encode(m).finish());
  assert.throws(
    () => loadModel(at('typed.onnx')),
    (e: unknown) =>
      e instanceof SpikeportError &&
      /node "Conv_\d+" \(Conv\) has dilations that is not a list of integers/.test(e.message),
  );
});
