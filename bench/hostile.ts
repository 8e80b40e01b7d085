/**
 * Hostile sizes, end to end: makes the inputs that once took gigabytes or minutes, runs each
 * command under /usr/bin/time -v (capped: 20 GB of address space, 200 s) and prints, per input,
 * the peak memory, the time, the exit code and the first line of the error.
 *
 *   node dist/bench/hostile.js [CLI]     CLI: another build's dist/src/cli/main.js, to compare
 *
 * Then the COCO mAP's cost against the number of boxes on one image (ratios within one run).
 * Needs /usr/bin/time (apt-get install time).
 */
import './args.js'; // --help prints the header above and stops
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { Deflate, Zlib } from 'fflate';
import { crc32, encodePng } from '../src/data/png.js';
import { meanAveragePrecision, type Detection } from '../src/tasks/detection.js';
import type { DetectionBox } from '../src/data/dataset.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = process.argv[2] ?? path.join(ROOT, 'dist', 'src', 'cli', 'main.js');
const OURS = path.join(ROOT, 'dist', 'src', 'cli', 'main.js');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spikeport-hostile-bench-'));
const at = (...p: string[]): string => path.join(dir, ...p);

function put(file: string, data: Uint8Array | string): string {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, data);
  return file;
}

/** A gray PNG whose header says w × h and whose image data is `idat` (already deflated). */
function png(w: number, h: number, idat: Uint8Array): Buffer {
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
    chunk('IDAT', idat),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** Deflate `total` zero bytes in 1 MiB pieces (never all in memory): raw, or in a zlib wrapper (PNG). */
function deflateZeros(total: number, raw = false): Buffer {
  const parts: Uint8Array[] = [];
  const stream = raw ? new Deflate({ level: 9 }) : new Zlib({ level: 9 });
  stream.ondata = (chunk) => parts.push(chunk);
  const block = new Uint8Array(2 ** 20);
  for (let done = 0; done < total; done += block.length)
    stream.push(block.subarray(0, Math.min(block.length, total - done)));
  stream.push(new Uint8Array(0), true);
  return Buffer.concat(parts);
}

/** A zip archive of deflated members (as numpy's savez_compressed writes x.npy, y.npy). */
function zip(members: { name: string; deflated: Buffer; size: number }[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const { name, deflated, size } of members) {
    const n = Buffer.from(name);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(8, 8);
    local.writeUInt32LE(deflated.length, 18);
    local.writeUInt32LE(size, 22);
    local.writeUInt16LE(n.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(8, 10);
    central.writeUInt32LE(deflated.length, 20);
    central.writeUInt32LE(size, 24);
    central.writeUInt16LE(n.length, 28);
    central.writeUInt32LE(offset, 42);
    locals.push(local, n, deflated);
    centrals.push(central, n);
    offset += 30 + n.length + deflated.length;
  }
  const dir = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(members.length, 8);
  end.writeUInt16LE(members.length, 10);
  end.writeUInt32LE(dir.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, dir, end]);
}

/** An .npy header for a uint8 array of `shape`. */
function npyHeader(shape: number[]): Buffer {
  let header = `{'descr': '|u1', 'fortran_order': False, 'shape': (${shape.length === 1 ? `${shape[0]},` : shape.join(', ')}), }`;
  while ((10 + header.length + 1) % 64 !== 0) header += ' ';
  header += '\n';
  const head = Buffer.concat([
    Buffer.from([0x93, ...Buffer.from('NUMPY'), 1, 0]),
    Buffer.alloc(2),
    Buffer.from(header),
  ]);
  head.writeUInt16LE(header.length, 8);
  return head;
}

/** A deflated .npy member of zeros (never all in memory). */
function npyZeros(name: string, shape: number[]): { name: string; deflated: Buffer; size: number } {
  const head = npyHeader(shape);
  const body = shape.reduce((a, b) => a * b, 1);
  const z = zlib.deflateRawSync(head, { finishFlush: zlib.constants.Z_SYNC_FLUSH });
  return { name, deflated: Buffer.concat([z, deflateZeros(body, true)]), size: head.length + body };
}

function cli(args: string[]): void {
  execFileSync(process.execPath, [OURS, ...args, '-q'], { cwd: dir, stdio: 'ignore' });
}

// The converted networks and the well-formed data the hostile files are put into.
process.stdout.write(`inputs in ${dir}\n`);
cli([
  'convert',
  path.join(ROOT, 'models/mnist-cnn.onnx'),
  '--data',
  'mnist:train',
  '--iterations',
  '2',
  '--out',
  'cnn.snn.onnx',
]);
cli([
  'convert',
  path.join(ROOT, 'models/mnist-fcn.onnx'),
  '--data',
  'mnist-seg:train',
  '--iterations',
  '2',
  '--out',
  'fcn.snn.onnx',
]);
cli([
  'convert',
  path.join(ROOT, 'models/mnist-centernet.onnx'),
  '--data',
  'mnist-det:train',
  '--iterations',
  '2',
  '--out',
  'cn.snn.onnx',
]);
cli(['data', 'mnist-seg:test', '--format', 'voc', '--limit', '2', '--out', 'voc']);
cli(['data', 'mnist-det:test', '--format', 'coco', '--limit', '1', '--out', 'coco']);
cli([
  'simulate',
  'cnn.snn.onnx',
  '--data',
  'mnist:test',
  '--limit',
  '50',
  '--T',
  '4,8',
  '--site-errors',
  '0',
  '--json',
  'rec.json',
]);

// 1. A 1 000 000 × 2 PNG (2 KB) with the imagenet preset: the enlarging resize.
put(
  at('wide', 'a', 'wide.png'),
  encodePng({ width: 1_000_000, height: 2, channels: 1, data: new Uint8Array(2e6).fill(128) }),
);
// 2. A 64 × 64 VOC mask whose image data inflates to 1.5 GB (1.5 MB on disk).
put(at('voc', 'SegmentationClass', '0.png'), png(64, 64, deflateZeros(1500 * 2 ** 20)));
// 3. COCO: 100 000 annotations on one image.
const ann = JSON.parse(fs.readFileSync(at('coco', 'annotations.json'), 'utf8')) as { annotations: unknown[] };
ann.annotations = Array.from({ length: 100_000 }, (_, k) => ({
  id: k + 1,
  image_id: 0,
  category_id: 1 + (k % 10),
  bbox: [(k * 7) % 50, (k * 13) % 50, 10, 10],
  area: 100,
  iscrowd: 0,
}));
put(at('coco', 'ann100k.json'), JSON.stringify(ann));
// 4. An npz whose deflated x.npy (1 MB) holds 1.3 M samples of 28 × 28 (1 GB), with their labels.
const n = 1_300_000;
put(at('bomb.npz'), zip([npyZeros('x.npy', [n, 1, 28, 28]), npyZeros('y.npy', [n])]));
// 5. A record of 400 000 result rows (one T repeated).
const rec = JSON.parse(fs.readFileSync(at('rec.json'), 'utf8')) as { results: { T: number }[] };
rec.results = Array.from({ length: 400_000 }, (_, k) => ({ ...rec.results[0], T: 1 + (k % 2) }));
put(at('rec400k.json'), JSON.stringify(rec));
// 6. A 1 GiB file named .png (sparse), and one over 2 GiB.
for (const [name, size] of [
  ['big', 2 ** 30],
  ['huge', 2 ** 31 + 2 ** 20],
] as const) {
  put(at(name, 'a', `${name}.png`), '');
  fs.truncateSync(at(name, 'a', `${name}.png`), size);
}

const SIM = ['--T', '4', '--site-errors', '0', '-q'];
const rows: [string, string[]][] = [
  [
    '1 000 000 × 2 PNG, --preprocess imagenet',
    ['simulate', 'cnn.snn.onnx', '--data', 'imagefolder:wide', '--preprocess', 'imagenet', ...SIM],
  ],
  ['VOC mask: 64 × 64 inflating to 1.5 GB', ['simulate', 'fcn.snn.onnx', '--data', 'voc:voc:test', ...SIM]],
  [
    'COCO: 100 000 annotations on one image',
    ['simulate', 'cn.snn.onnx', '--data', 'coco:coco/images@coco/ann100k.json', ...SIM],
  ],
  [
    'npz: x.npy of 1.3 M samples, --limit 50',
    ['simulate', 'cnn.snn.onnx', '--data', 'npz:bomb.npz', '--limit', '50', ...SIM],
  ],
  ['report: 400 000 result rows', ['report', 'rec400k.json', '--out', 'rep.html']],
  [
    '1 GiB file named .png (sparse)',
    ['simulate', 'cnn.snn.onnx', '--data', 'imagefolder:big', '--preprocess', 'imagenet', ...SIM],
  ],
  [
    '2 GiB + 1 MiB file named .png (sparse)',
    ['simulate', 'cnn.snn.onnx', '--data', 'imagefolder:huge', '--preprocess', 'imagenet', ...SIM],
  ],
];
process.stdout.write(
  `\n| input | on disk | peak RSS | time | exit | first line of stderr |\n|---|---|---|---|---|---|\n`,
);
const onDisk: Record<string, string> = {
  '1 000 000 × 2 PNG, --preprocess imagenet': 'wide/a/wide.png',
  'VOC mask: 64 × 64 inflating to 1.5 GB': 'voc/SegmentationClass/0.png',
  'COCO: 100 000 annotations on one image': 'coco/ann100k.json',
  'npz: x.npy of 1.3 M samples, --limit 50': 'bomb.npz',
  'report: 400 000 result rows': 'rec400k.json',
};
for (const [label, args] of rows) {
  const timing = at('time.txt');
  const quoted = [process.execPath, CLI, ...args].map((a) => `'${a}'`).join(' ');
  const r = spawnSync('bash', ['-c', `ulimit -v 20000000; /usr/bin/time -v -o '${timing}' timeout 200 ${quoted}`], {
    cwd: dir,
    encoding: 'utf8',
  });
  const t = fs.readFileSync(timing, 'utf8');
  const rss = Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(t)?.[1] ?? 0) / 1024;
  const wall = /Elapsed \(wall clock\) time .*: (\S+)/.exec(t)?.[1] ?? '?';
  const code = /Exit status: (\d+)/.exec(t)?.[1] ?? String(r.status);
  const first = r.stderr.split('\n').find((l) => l.trim()) ?? '';
  const file = onDisk[label];
  const bytes = file ? fs.statSync(at(file)).size : 0;
  const size = !file
    ? 'sparse'
    : bytes < 2 ** 20
      ? `${(bytes / 1024).toFixed(1)} KB`
      : `${(bytes / 2 ** 20).toFixed(1)} MB`;
  process.stdout.write(`| ${label} | ${size} | ${rss.toFixed(0)} MB | ${wall} | ${code} | ${first.slice(0, 160)} |\n`);
}

// The mAP against the number of boxes on one image: linear means ×10 boxes, about ×10 time.
process.stdout.write('\nCOCO mAP, boxes on one image (100 detections):\n');
let last = 0;
for (const count of [10_000, 100_000]) {
  const gts: DetectionBox[] = Array.from({ length: count }, (_, i) => ({
    image: 0,
    label: 0,
    x: (i % 300) * 10,
    y: Math.floor(i / 300) * 10,
    w: 5,
    h: 5,
  }));
  const dets: Detection[] = gts.slice(0, 100).map((g, i) => ({ ...g, score: 1 - i / 1000 }));
  const start = performance.now();
  meanAveragePrecision(dets, gts, 1);
  const ms = performance.now() - start;
  process.stdout.write(
    `  ${count} boxes: ${ms.toFixed(0)} ms${last ? ` (×${(ms / last).toFixed(1)} for ×10 boxes)` : ''}\n`,
  );
  last = ms;
}
fs.rmSync(dir, { recursive: true, force: true });
