/**
 * Data files as other tools write them: npz files written by numpy itself (float64 and uint8
 * arrays, savez and savez_compressed, format version 2 headers), and video folders of PNG frames
 * (pixels, clips sampled from longer videos, frame names with and without zero padding).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import sharp from 'sharp';
import { openDataset } from '../src/data/sources.js';
import { readBatch } from '../src/data/dataset.js';
import { clipFrame, frameOrder } from '../src/data/images.js';
import { tempDir } from './temp.js';

const python = '/usr/bin/python3';
const numpy = fs.existsSync(python) && spawnSync(python, ['-c', 'import numpy'], { encoding: 'utf8' }).status === 0;

/** Run a numpy script with the output folder as argv[1]; returns its stdout parsed as JSON. */
function py(script: string, dir: string): unknown {
  const r = spawnSync(python, ['-c', script, dir], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout);
}

test(
  'npz files written by numpy: float64 x used as given, uint8 x scaled by 1/255, int64/int32/uint8 labels, stored or compressed, version 1 and 2 headers',
  { skip: numpy ? false : 'python3-numpy is not installed' },
  async (t) => {
    const dir = tempDir('spikeport-npz-', t);
    // Each file: x [4, 1, 3, 2] and y [4]; numpy writes them, and prints what a reader must find.
    const made = py(
      `
import io, json, sys, zipfile
import numpy as np
d = sys.argv[1]
rng = np.random.default_rng(3)
x64 = rng.normal(size=(4, 1, 3, 2))                     # float64: '<f8'
x8 = rng.integers(0, 256, size=(4, 1, 3, 2), dtype=np.uint8)
np.savez(d + '/f8.npz', x=x64, y=np.array([3, 1, 4, 1]))  # y int64
np.savez_compressed(d + '/u8.npz', x=x8, y=np.array([2, 7, 1, 8], dtype=np.int32))
# Format version 2.0 (a 4-byte header length), written member by member.
with zipfile.ZipFile(d + '/v2.npz', 'w') as z:  # stored: the header is visible in the file
  for name, a in [('x', x64.astype(np.float32)), ('y', np.array([0, 9, 5, 5], dtype=np.uint8))]:
    b = io.BytesIO()
    np.lib.format.write_array(b, a, version=(2, 0))
    z.writestr(name + '.npy', b.getvalue())
print(json.dumps({
  'f8': {'x': x64.astype(np.float32).ravel().tolist(), 'y': [3, 1, 4, 1]},
  'u8': {'x': (x8 / 255).ravel().tolist(), 'y': [2, 7, 1, 8]},
  'v2': {'x': x64.astype(np.float32).ravel().tolist(), 'y': [0, 9, 5, 5]},
}))
`,
      dir,
    ) as Record<string, { x: number[]; y: number[] }>;
    const v2 = fs.readFileSync(path.join(dir, 'v2.npz'));
    assert.ok(v2.includes(Buffer.from([0x93, ...Buffer.from('NUMPY'), 2, 0])), 'numpy wrote a version 2.0 header');
    for (const [name, want] of Object.entries(made)) {
      const d = openDataset(`npz:${path.join(dir, `${name}.npz`)}`);
      assert.equal(d.size, 4, name);
      assert.deepEqual(d.sampleShape, [1, 3, 2], name);
      assert.equal(d.scale, name === 'u8' ? 1 / 255 : 1, `${name}: scale`);
      const b = await readBatch(d, [0, 1, 2, 3], null);
      assert.deepEqual(Array.from(b.y ?? []), want.y, `${name}: labels`);
      assert.equal(b.x.length, 24);
      // float64 → float32 rounds once, as numpy's astype does; uint8 / 255 within float32 rounding.
      b.x.forEach((v, i) =>
        assert.ok(
          name === 'u8' ? Math.abs(v - want.x[i]) <= 1e-7 : v === want.x[i],
          `${name}: x[${i}] = ${v}, numpy ${want.x[i]}`,
        ),
      );
    }
  },
);

test('video frames in time order: numbers in names compare by value, padded or not', () => {
  assert.deepEqual(frameOrder(['10.png', '2.png', '1.png', '9.png']), ['1.png', '2.png', '9.png', '10.png']);
  assert.deepEqual(frameOrder(['img_00010.jpg', 'img_00002.jpg', 'img_00001.jpg']), [
    'img_00001.jpg',
    'img_00002.jpg',
    'img_00010.jpg',
  ]);
  assert.deepEqual(frameOrder(['f12.png', 'f3.png', 'e20.png', 'f3b.png']), [
    'e20.png',
    'f3.png',
    'f3b.png',
    'f12.png',
  ]);
  // Clip frames ⌊i·n/L⌋: 12 frames into a clip of 4 take frames 0, 3, 6, 9; 3 frames into 4 repeat one.
  assert.deepEqual(
    [0, 1, 2, 3].map((i) => clipFrame(i, 12, 4)),
    [0, 3, 6, 9],
  );
  assert.deepEqual(
    [0, 1, 2, 3].map((i) => clipFrame(i, 3, 4)),
    [0, 0, 1, 2],
  );
});

test('videofolder: the pixels of the frames a clip takes, in time order, from videos longer than the clip, with names padded or not', async (t) => {
  const dir = tempDir('spikeport-video-', t);
  const [H, W, L] = [3, 4, 4];
  // Frame k of video v: gray, pixel (y, x) = 10·k + 3·y + x + 100·v (distinct everywhere).
  const value = (v: number, k: number, y: number, x: number): number => 10 * k + 3 * y + x + 100 * v;
  const videos = [
    { cls: 'a', name: 'v0', frames: 12, file: (k: number) => `${k + 1}.png` }, // 1.png … 12.png: not padded
    { cls: 'a', name: 'v1', frames: 4, file: (k: number) => `frame_${String(k).padStart(4, '0')}.png` },
    { cls: 'b', name: 'v2', frames: 6, file: (k: number) => `img${k * 5}.png` }, // 0, 5, 10, …, 25
  ];
  for (const [v, vid] of videos.entries()) {
    const folder = path.join(dir, vid.cls, vid.name);
    fs.mkdirSync(folder, { recursive: true });
    for (let k = 0; k < vid.frames; k++) {
      const px = Uint8Array.from({ length: H * W }, (_, i) => value(v, k, Math.floor(i / W), i % W));
      await sharp(px, { raw: { width: W, height: H, channels: 1 } })
        .png()
        .toFile(path.join(folder, vid.file(k)));
    }
  }
  const d = openDataset(`videofolder:${dir}`, undefined, { sampleShape: [1, L, H, W] });
  assert.equal(d.size, 3);
  assert.deepEqual(Array.from(d.labels ?? []), [0, 0, 1]);
  const { x } = await d.read([0, 1, 2]);
  for (const [v, vid] of videos.entries()) {
    // Frames ⌊i·n/L⌋ in time order: 12 → 0, 3, 6, 9 (files 1, 4, 7, 10.png; by name 1, 12, 4, 7.png would be taken);
    // 4 → all; 6 → 0, 1, 3, 4.
    const taken = [0, 1, 2, 3].map((i) => Math.floor((i * vid.frames) / L));
    const want = taken.flatMap((k) => Array.from({ length: H * W }, (_, i) => value(v, k, Math.floor(i / W), i % W)));
    assert.deepEqual(Array.from(x.subarray(v * L * H * W, (v + 1) * L * H * W)), want, `${vid.name}: frames ${taken}`);
  }
  assert.equal(d.scale, 1 / 255);
});
