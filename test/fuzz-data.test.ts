/**
 * Seeded, bounded fuzzing of what spikeport reads besides models: image folders, VOC, COCO and
 * video folders (damaged and oversized images, links leading out, FIFOs, mask bombs, broken
 * annotation JSON), NIR export of tampered converted files, and the inputs of report and merge.
 * Each mutant goes through the loaders (every sample read) or the command's library call. The
 * only acceptable outcomes are success or a one-line SpikeportError: never another exception,
 * never a hang, never a file outside the test folder opened (a FIFO outside stays unread).
 *
 *   SPIKEPORT_FUZZ_DATA_CASES=400 SPIKEPORT_FUZZ_SEED=7 node --test dist/test/fuzz-data.test.js
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { spawnSync } from 'node:child_process';
import pkg from 'onnx-proto';
import { zipSync } from 'fflate';
import { SpikeportError, convert, mergeShards, openDataset, parseRecord, readShardFile } from '../src/index.js';
import { simulate, simulateShard } from '../src/api/simulate.js';
import { TARGETS, exportNir } from '../src/api/nir.js';
import { loadSnn } from '../src/snn/network.js';
import { rng } from '../src/data/dataset.js';
import { crc32, encodePng } from '../src/data/png.js';
import { parsePreprocess } from '../src/data/preprocess.js';
import { reportHtml } from '../src/report/html.js';
import { reportMarkdown } from '../src/report/markdown.js';
import { npy, uniform } from './helpers.js';
import { ZOO } from './zoo.js';
import { tempDir } from './temp.js';

const { onnx } = pkg;
const CASES = Number(process.env.SPIKEPORT_FUZZ_DATA_CASES ?? 60);
const SEED = Number(process.env.SPIKEPORT_FUZZ_SEED ?? 1);
const tmp = tempDir('spikeport-fuzz-data-');
const outside = tempDir('spikeport-fuzz-outside-');

// Every path the library hands to node:fs while a case runs must lie in the test folder (or be
// Node's own, or a dependency's).
const opened: string[] = [];
let recording = false;
for (const name of ['readFileSync', 'openSync', 'readdirSync', 'statSync', 'existsSync', 'realpathSync'] as const) {
  const original = fs[name] as (...args: unknown[]) => unknown;
  (fs as unknown as Record<string, unknown>)[name] = (...args: unknown[]): unknown => {
    if (recording && typeof args[0] === 'string') opened.push(path.resolve(args[0]));
    return original.apply(fs, args);
  };
}

type Outcome = 'ok' | SpikeportError['code'];
const tally = new Map<string, Map<Outcome, number>>();
const unexpected: string[] = [];

function count(kind: string, o: Outcome): void {
  const m = tally.get(kind) ?? new Map<Outcome, number>();
  m.set(o, (m.get(o) ?? 0) + 1);
  tally.set(kind, m);
}

/** Run a case with a time limit; record what came out. */
const seconds = new Map<string, number>();

async function attempt(kind: string, label: string, work: () => Promise<unknown>): Promise<void> {
  const start = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('timed out after 30 s')), 30_000);
  });
  try {
    recording = true;
    if (process.env.FUZZ_DEBUG)
      process.stderr.write(
        `${kind} ${label} ${(performance.now() / 1000).toFixed(1)} ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MB\n`,
      );
    await Promise.race([work(), limit]);
    count(kind, 'ok');
  } catch (e) {
    if (e instanceof SpikeportError) {
      count(kind, e.code);
      if (e.message.includes('\n')) unexpected.push(`${kind} ${label}: a message of several lines: ${e.message}`);
    } else {
      unexpected.push(`${kind} ${label}: ${(e as Error)?.stack ?? String(e)}`);
    }
  } finally {
    recording = false;
    clearTimeout(timer);
    seconds.set(kind, (seconds.get(kind) ?? 0) + (performance.now() - start) / 1000);
  }
}

type Rand = () => number;
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
const int = (r: Rand, n: number): number => Math.floor(r() * n);

/** Raw byte damage: flips, a cut, a splice of random bytes. */
function damageBytes(r: Rand, bytes: Uint8Array): Uint8Array {
  const out = Uint8Array.from(bytes);
  switch (int(r, 3)) {
    case 0:
      for (let k = 0; k < 1 + int(r, 8); k++) out[int(r, out.length)] ^= 1 << int(r, 8);
      return out;
    case 1:
      return out.subarray(0, int(r, out.length));
    default: {
      const at = int(r, out.length);
      const junk = Uint8Array.from({ length: 1 + int(r, 16) }, () => int(r, 256));
      const res = new Uint8Array(out.length + junk.length);
      res.set(out.subarray(0, at));
      res.set(junk, at);
      res.set(out.subarray(at), at + junk.length);
      return res;
    }
  }
}

function gray(w: number, h: number, seed: number, max = 255): Uint8Array {
  const data = Uint8Array.from(uniform(seed, w * h, 0, max), Math.floor);
  return encodePng({ width: w, height: h, channels: 1, data });
}

/** A gray PNG whose header says w × h and whose image data inflates to `bytes` zeros. */
function claimPng(w: number, h: number, bytes: number): Uint8Array {
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

/** Write a file, replacing whatever is there (a folder, a link, a FIFO). */
function put(file: string, data: Uint8Array | string): void {
  fs.rmSync(file, { recursive: true, force: true });
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, data);
}

/** Every file under a folder (links and FIFOs included, not followed). */
function filesUnder(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? filesUnder(p) : [p];
  });
}

// Outside every data set: a good image, a folder of them, and a FIFO named like an image.
const CANARY = path.join(outside, 'canary.png');
spawnSync('mkfifo', [CANARY]);
put(path.join(outside, 'good.png'), gray(28, 28, 1));
put(path.join(outside, 'dir', 'x.png'), gray(28, 28, 2));
const fifos: string[] = [CANARY];

/** Replace `file` by something hostile. */
function damageFile(r: Rand, file: string, root: string, size: [number, number]): void {
  const [w, h] = size;
  const others = filesUnder(root).filter((f) => f !== file);
  fs.rmSync(file, { recursive: true, force: true });
  switch (int(r, 12)) {
    case 0:
      return put(file, damageBytes(r, gray(w, h, 3)));
    case 1:
      return put(file, claimPng(pick(r, [60000, 1, 2 ** 31 - 1]), pick(r, [60000, 3, 2 ** 20]), 64));
    case 2: {
      // Far from square: the enlarging resize (one side to 32, the other to 320 000).
      const [ww, hh] = pick(r, [
        [20000, 2],
        [2, 20000],
        [1, 1],
      ]);
      return put(file, gray(ww, hh, 4));
    }
    case 3:
      return fs.symlinkSync(
        pick(r, [CANARY, path.join(outside, 'good.png'), path.join(outside, 'dir'), '/etc/passwd']),
        file,
      );
    case 4:
      if (others.length) return fs.symlinkSync(path.relative(path.dirname(file), pick(r, others)), file);
      return put(file, '');
    case 5:
      return fs.symlinkSync('nothing-here', file);
    case 6:
      spawnSync('mkfifo', [file]);
      fifos.push(file);
      return;
    case 7:
      return put(file, '');
    case 8:
      return fs.mkdirSync(file);
    case 9:
      return; // removed
    case 10:
      return fs.symlinkSync('.', file); // a loop
    default:
      return put(file, gray(w, h, 5, 300));
  }
}

function imageFolder(root: string): void {
  for (const c of ['a', 'b', 'c']) for (let i = 0; i < 2; i++) put(path.join(root, c, `${i}.png`), gray(28, 28, i + 7));
}

function voc(root: string): void {
  put(path.join(root, 'ImageSets', 'Segmentation', 'val.txt'), '0\n1\n2\n');
  for (let i = 0; i < 3; i++) {
    put(path.join(root, 'JPEGImages', `${i}.png`), gray(64, 64, i + 11));
    put(path.join(root, 'SegmentationClass', `${i}.png`), gray(64, 64, i + 21, 4));
  }
}

const COCO = {
  images: [0, 1, 2].map((id) => ({ id, file_name: `${id}.png`, width: 28, height: 28 })),
  categories: [
    { id: 1, name: 'a' },
    { id: 7, name: 'b' },
  ],
  annotations: [
    { id: 1, image_id: 0, category_id: 1, bbox: [2, 3, 10, 12], iscrowd: 0 },
    { id: 2, image_id: 1, category_id: 7, bbox: [5, 5, 8, 8], iscrowd: 0 },
    { id: 3, image_id: 1, category_id: 1, bbox: [0, 0, 28, 28], iscrowd: 1 },
    { id: 4, image_id: 2, category_id: 7, bbox: [10, 1, 4, 20], iscrowd: 0 },
  ],
};

function coco(root: string, ann: unknown): void {
  for (let i = 0; i < 3; i++) put(path.join(root, 'images', `${i}.png`), gray(28, 28, i + 31));
  put(path.join(root, 'ann.json'), typeof ann === 'string' ? ann : JSON.stringify(ann));
}

function video(root: string): void {
  for (const c of ['a', 'b'])
    for (const v of ['v0', 'v1'])
      for (let f = 0; f < 3; f++) put(path.join(root, c, v, `${f}.png`), gray(28, 28, f + 41));
}

const WEIRD_JSON: readonly unknown[] = [
  null,
  'x',
  '0',
  '../x',
  '/etc/passwd',
  '<script>',
  -1,
  0,
  1.5,
  1e308,
  -1e308,
  2 ** 53,
  [],
  {},
  [1, 2, 3],
  true,
];

/** A copy of a JSON value broken at one random place: a field removed, retyped, or an array repeated. */
function damageJson(r: Rand, value: unknown): unknown {
  const root = structuredClone(value) as Record<string, unknown>;
  let parent: Record<string | number, unknown> = root;
  let key: string | number = pick(r, Object.keys(root));
  for (let depth = 0; depth < 5; depth++) {
    const v: unknown = parent[key];
    if (typeof v !== 'object' || v === null || r() < 0.25) break;
    const keys = Object.keys(v);
    if (keys.length === 0) break;
    parent = v as Record<string | number, unknown>;
    key = Array.isArray(v) ? int(r, v.length) : pick(r, keys);
  }
  const v: unknown = parent[key];
  const action = int(r, 4);
  if (action === 0) delete parent[key];
  else if (action === 1 && Array.isArray(v) && v.length)
    // Rows repeated: duplicates, and sometimes more than any record holds.
    parent[key] = Array.from({ length: pick(r, [2 * v.length, 3 * v.length, 100_001]) }, (_, i) => v[i % v.length]);
  else if (action === 2 && Array.isArray(parent)) parent.push(structuredClone(parent[key]));
  else parent[key] = pick(r, WEIRD_JSON);
  return root;
}

/** Read every sample of a data set, four at a time. */
async function readAll(spec: string, sampleShape: number[], preprocess: string | null): Promise<void> {
  const d = openDataset(spec, undefined, {
    sampleShape,
    preprocess: preprocess === null ? null : parsePreprocess(preprocess),
  });
  for (let i = 0; i < d.size; i += 4) await d.read(Array.from({ length: Math.min(4, d.size - i) }, (_, k) => i + k));
}

test(`fuzz: ${CASES} mutants each of image folders, VOC, COCO and video folders, tampered NIR exports, records and shard files (seed ${SEED}): success or a SpikeportError, nothing else`, async (t) => {
  const r = rng(SEED);
  const preset = (): string | null => pick(r, [null, 'imagenet', 'resize:28,28']);
  for (let i = 0; i < CASES; i++) {
    const root = path.join(tmp, `if${i}`);
    imageFolder(root);
    for (let k = 0; k <= int(r, 3); k++) damageFile(r, pick(r, filesUnder(root)), root, [28, 28]);
    if (r() < 0.2) fs.symlinkSync(pick(r, [path.join(outside, 'dir'), outside, '..', '.']), path.join(root, 'z'));
    await attempt('image folder', root, () => readAll(`imagefolder:${root}`, [1, 28, 28], preset()));
  }
  for (let i = 0; i < CASES; i++) {
    const root = path.join(tmp, `voc${i}`);
    voc(root);
    const files = filesUnder(root);
    for (let k = 0; k <= int(r, 2); k++) {
      const f = pick(r, files);
      if (f.endsWith('val.txt') && r() < 0.7)
        put(
          f,
          Array.from({ length: 1 + int(r, 4) }, () =>
            pick(r, ['0', '1', '../x', '', 'a'.repeat(300), '..', 'nope', '0\r', '/etc/passwd']),
          ).join('\n'),
        );
      else if (f.includes('SegmentationClass') && r() < 0.5)
        put(
          f,
          pick(r, [
            claimPng(64, 64, 64 * 2 ** 20),
            claimPng(64, 64, 100),
            gray(32, 32, 1),
            claimPng(1 << 16, 1 << 16, 10),
          ]),
        );
      else damageFile(r, f, root, [64, 64]);
    }
    await attempt('voc', root, () =>
      readAll(`voc:${root}:val`, [1, 64, 64], preset() === null ? null : 'resize:64,64'),
    );
  }
  for (let i = 0; i < CASES; i++) {
    const root = path.join(tmp, `coco${i}`);
    const ann =
      r() < 0.15 ? new TextDecoder().decode(damageBytes(r, Buffer.from(JSON.stringify(COCO)))) : damageJson(r, COCO);
    coco(root, ann);
    if (r() < 0.5) damageFile(r, pick(r, filesUnder(path.join(root, 'images'))), root, [28, 28]);
    await attempt('coco', root, () =>
      readAll(`coco:${path.join(root, 'images')}@${path.join(root, 'ann.json')}`, [1, 28, 28], preset()),
    );
  }
  for (let i = 0; i < CASES; i++) {
    const root = path.join(tmp, `vid${i}`);
    video(root);
    for (let k = 0; k <= int(r, 2); k++) damageFile(r, pick(r, filesUnder(root)), root, [28, 28]);
    if (r() < 0.2) fs.symlinkSync(pick(r, [path.join(outside, 'dir'), '..']), path.join(root, 'a', 'v9'));
    await attempt('video folder', root, () => readAll(`videofolder:${root}`, [1, 2, 28, 28], preset()));
  }

  // NIR export of a unit-spike network whose file was tampered with.
  const x16 = uniform(3, 8 * 768);
  put(
    path.join(tmp, 'd16.npz'),
    zipSync({
      'x.npy': npy([8, 3, 16, 16], '<f4', x16),
      'y.npy': npy(
        [8],
        '<i4',
        Int32Array.from({ length: 8 }, (_, k) => k % 4),
      ),
    }),
  );
  const d16 = openDataset(`npz:${path.join(tmp, 'd16.npz')}`);
  const unit = await convert({ path: 'm.onnx', sha256: '0'.repeat(64), graph: ZOO.mobilenetv2.graph() }, d16, {
    iterations: 1,
    batchSize: 8,
    threads: 1,
    spikes: 'unit',
  });
  const unitBytes = unit.toBytes();
  const WEIRD_INTS = [0, -1, 1, 2, 3, 2 ** 20, 1e9, 2 ** 40];
  for (let i = 0; i < CASES; i++) {
    const file = path.join(tmp, `n${i}.snn.onnx`);
    const out = path.join(tmp, `n${i}.nir`);
    let bytes: Uint8Array;
    if (r() < 0.15) bytes = damageBytes(r, unitBytes);
    else {
      const m = onnx.ModelProto.decode(unitBytes);
      const g = m.graph as pkg.onnx.GraphProto;
      const windowed = g.node.filter((n) =>
        ['Conv', 'AveragePool', 'GlobalAveragePool', 'Gemm', 'Flatten'].includes(n.opType ?? ''),
      );
      const node = pick(r, windowed);
      if (r() < 0.8) {
        const name = pick(r, [
          'strides',
          'pads',
          'dilations',
          'kernel_shape',
          'group',
          'axis',
          'transB',
          'ceil_mode',
          'alpha',
        ]);
        const attr = onnx.AttributeProto.create(
          r() < 0.7
            ? name === 'group' || name === 'axis' || name === 'transB' || name === 'ceil_mode'
              ? { name, type: 2, i: pick(r, WEIRD_INTS) }
              : { name, type: 7, ints: Array.from({ length: pick(r, [1, 2, 4, 3]) }, () => pick(r, WEIRD_INTS)) }
            : { name, type: pick(r, [1, 3, 6]), f: 2, s: Buffer.from('x'), floats: [1.5] },
        );
        node.attribute = [...(node.attribute ?? []).filter((a) => a.name !== name), attr];
      } else {
        const init = g.initializer.find((t) => (node.input ?? []).includes(t.name ?? '')) ?? pick(r, g.initializer);
        init.dims = (init.dims ?? []).map((d) => (r() < 0.5 ? pick(r, WEIRD_INTS) : d));
      }
      bytes = onnx.ModelProto.encode(m).finish();
    }
    fs.writeFileSync(file, bytes);
    await attempt('NIR export', file, async () => {
      try {
        await exportNir(await loadSnn(file, { ann: null }), out, pick(r, TARGETS), [file]);
      } catch (e) {
        assert.ok(!fs.existsSync(out), `${out} left behind by a failed export`);
        throw e;
      }
    });
  }

  // Records for report, shard files for merge: real ones, then broken.
  const labelled = openDataset(`npz:${path.join(tmp, 'd16.npz')}`);
  const amp = await convert({ path: 'm.onnx', sha256: '0'.repeat(64), graph: ZOO.mobilenetv2.graph() }, labelled, {
    iterations: 1,
    batchSize: 4,
    threads: 1,
  });
  const rec = JSON.parse(
    JSON.stringify(
      await simulate(amp, labelled, { T: [2, 4], threads: 1, batchSize: 4, references: false, siteErrors: 0 }),
    ),
  ) as unknown;
  for (let i = 0; i < CASES; i++) {
    const text =
      r() < 0.15
        ? new TextDecoder().decode(damageBytes(r, Buffer.from(JSON.stringify(rec))))
        : JSON.stringify(damageJson(r, rec));
    const html = r() < 0.2;
    await attempt('record', `#${i}`, async () => {
      let v: unknown;
      try {
        v = JSON.parse(text);
      } catch {
        return; // report says "not JSON" before the schema
      }
      const parsed = parseRecord(v, `r${i}.json`);
      reportMarkdown(parsed);
      if (html) await reportHtml(parsed);
    });
  }
  const shards = await Promise.all(
    [0, 1].map((index) =>
      simulateShard(amp, labelled, {
        T: [2, 4],
        threads: 1,
        batchSize: 4,
        references: false,
        siteErrors: 0,
        shard: { index, count: 2 },
      }),
    ),
  );
  const shardText = shards.map((s) => JSON.stringify(s));
  for (let i = 0; i < CASES; i++) {
    const k = int(r, 2);
    const files = [0, 1].map((j) => path.join(tmp, `s${i}-${j}.json`));
    files.forEach((f, j) => fs.writeFileSync(f, shardText[j]));
    fs.writeFileSync(
      files[k],
      r() < 0.2 ? damageBytes(r, Buffer.from(shardText[k])) : JSON.stringify(damageJson(r, JSON.parse(shardText[k]))),
    );
    await attempt('shard file', files[k], async () => {
      mergeShards(files.map((name) => ({ name, shard: readShardFile(name) })));
    });
  }

  for (const [kind, m] of tally)
    t.diagnostic(
      `${kind}: ${[...m].map(([o, n]) => `${o} ${n}`).join(', ')} (${(seconds.get(kind) ?? 0).toFixed(1)} s)`,
    );
  t.diagnostic(`unexpected: ${unexpected.length}`);
  // A FIFO someone opened for reading would hold them: let them go before asserting.
  const heldOpen = fifos.filter((f) => {
    if (!fs.lstatSync(f, { throwIfNoEntry: false })?.isFIFO()) return false; // replaced by a later mutation
    try {
      fs.closeSync(fs.openSync(f, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK));
      return true;
    } catch {
      return false;
    }
  });
  assert.deepEqual(unexpected, []);
  assert.deepEqual(heldOpen, [], 'no FIFO opened for reading');
  const cwd = process.cwd();
  const strays = [...new Set(opened)].filter(
    (p) =>
      !p.startsWith(tmp) &&
      !p.startsWith(path.join(os.tmpdir(), 'spikeport-nir-')) && // the NIR writer's own temporary folder
      !p.startsWith('/proc/') &&
      !p.includes(`${path.sep}node_modules${path.sep}`) &&
      p !== cwd &&
      !p.startsWith(path.join(cwd, 'dist')),
  );
  assert.deepEqual(strays, [], 'nothing outside the test folder handed to node:fs');
});
