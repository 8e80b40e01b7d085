/**
 * Seeded, bounded fuzzing of everything spikeport reads: ONNX models (bytes and protobuf fields:
 * dims, dtypes, attributes, ops, opsets, external-data locations, subgraphs), converted files'
 * metadata, and npz data. Each mutant goes through the library's loaders and a short conversion
 * or simulation. The only acceptable outcomes are success or a SpikeportError: never another
 * exception, never a hang, never a read of a file outside the test folder.
 *
 *   SPIKEPORT_FUZZ_CASES=2000 SPIKEPORT_FUZZ_SEED=7 node --test dist/test/fuzz.test.js
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import pkg from 'onnx-proto';
import { strToU8, unzipSync, zipSync } from 'fflate';
import { SpikeportError, convert, openDataset, simulate, snnFromGraph } from '../src/advanced.js';
import { decodeModel, encodeModel } from '../src/onnx/codec.js';
import { loadModel } from '../src/model/load.js';
import { rng } from '../src/data/dataset.js';
import { buildGraph, conv, gemm, maxpool, npy, uniform } from './helpers.js';
import { tempDir } from './temp.js';

const { onnx } = pkg;
const CASES = Number(process.env.SPIKEPORT_FUZZ_CASES ?? 400);
const SEED = Number(process.env.SPIKEPORT_FUZZ_SEED ?? 1);
const tmp = tempDir('spikeport-fuzz-');
const CANARY = 'canary.bin';

// Every file the library opens through node:fs must lie in the test folder (or be Node's own).
const opened: string[] = [];
for (const name of ['readFileSync', 'openSync', 'readdirSync', 'statSync', 'existsSync', 'realpathSync'] as const) {
  const original = fs[name] as (...args: unknown[]) => unknown;
  (fs as unknown as Record<string, unknown>)[name] = (...args: unknown[]): unknown => {
    if (typeof args[0] === 'string') opened.push(path.resolve(args[0]));
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

/**
 * Run a case; record what came out. No clock: each case's work is bounded by its input (a model
 * of a few kB, 6 samples, at most 3 steps), and a case that hangs shows as the whole test
 * exceeding its timeout, far above its duration on any machine.
 */
async function attempt(kind: string, label: string, work: () => Promise<unknown>): Promise<Outcome | 'unexpected'> {
  try {
    await work();
    count(kind, 'ok');
    return 'ok';
  } catch (e) {
    if (e instanceof SpikeportError) {
      count(kind, e.code);
      if (e.message.includes('\n')) unexpected.push(`${kind} ${label}: a message of several lines: ${e.message}`);
      return e.code;
    }
    unexpected.push(`${kind} ${label}: ${(e as Error)?.stack ?? String(e)}`);
    return 'unexpected';
  }
}

// The seeds: a small CNN (conv, ReLU, max pool, conv, ReLU, linear) and data that fits it.
const N = 6;
const model = buildGraph([1, 8, 8], (b, x) => {
  const h = maxpool(b, b.op('Relu', [conv(b, x, 1, 3, 3, { seed: 1 })]));
  const h2 = b.op('Relu', [conv(b, h, 3, 4, 3, { seed: 2 })]);
  return gemm(b, b.op('Flatten', [h2], { axis: 1 }), 4 * 16, 3, 3);
});
const modelBytes = encodeModel(model);
const x = uniform(9, N * 64);
const npzBytes = zipSync({
  'x.npy': npy([N, 1, 8, 8], '<f4', x),
  'y.npy': npy(
    [N],
    '<i8',
    BigInt64Array.from({ length: N }, (_, i) => BigInt(i % 3)),
  ),
});
fs.writeFileSync(path.join(tmp, 'data.npz'), npzBytes);
const data = openDataset(`npz:${path.join(tmp, 'data.npz')}`);

type Rand = () => number;
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
const int = (r: Rand, n: number): number => Math.floor(r() * n);
const WEIRD = [0, -1, 1, 3, 2 ** 31, 1e10, Number.NaN, 0.5];

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

function externalTensor(name: string, location: string): pkg.onnx.ITensorProto {
  return {
    name,
    dataType: 1,
    dims: [1],
    dataLocation: 1,
    externalData: [
      { key: 'location', value: location },
      { key: 'length', value: '4' },
    ],
  };
}

/** Structural damage through the protobuf schema. */
function damageModel(r: Rand, bytes: Uint8Array): Uint8Array {
  const m = onnx.ModelProto.decode(bytes);
  const g = m.graph as pkg.onnx.GraphProto;
  const init = pick(r, g.initializer) as pkg.onnx.TensorProto;
  const node = pick(r, g.node) as pkg.onnx.NodeProto;
  switch (int(r, 12)) {
    case 0:
      init.dims = init.dims.map((d) => (r() < 0.5 ? pick(r, WEIRD) : d)) as number[];
      break;
    case 1:
      init.dataType = pick(r, [0, 2, 3, 6, 7, 9, 10, 11, 13, 16, 99]);
      break;
    case 2:
      init.rawData = init.rawData.subarray(0, int(r, init.rawData.length));
      break;
    case 3:
      Object.assign(init, externalTensor(init.name ?? 'w', pick(r, [CANARY, `../${CANARY}`, '/etc/passwd'])));
      break;
    case 4: {
      // An If node whose branch stores a tensor outside the file.
      const branch = (n: string): pkg.onnx.IGraphProto => ({
        name: n,
        node: [{ opType: 'Identity', input: [`${n}_w`], output: [`${n}_o`] }],
        initializer: [externalTensor(`${n}_w`, CANARY)],
        output: [{ name: `${n}_o`, type: { tensorType: { elemType: 1 } } }],
      });
      g.initializer.push({ name: 'cond', dataType: 9, dims: [], rawData: Uint8Array.of(1) });
      g.node.push({
        opType: 'If',
        name: 'fuzz_if',
        input: ['cond'],
        output: ['fuzz_out'],
        attribute: [
          { name: 'then_branch', type: 5, g: branch('t') },
          { name: 'else_branch', type: 5, g: branch('e') },
        ],
      });
      break;
    }
    case 5: {
      const a = pick(
        r,
        node.attribute.length
          ? node.attribute
          : [onnx.AttributeProto.create({ name: 'kernel_shape', type: 7, ints: [3, 3] })],
      );
      if (a.ints && a.ints.length) a.ints = a.ints.map(() => pick(r, [0, -1, 1, 2, 99, 1e9]));
      else if (a.type === 2) a.i = pick(r, [0, -1, 1e9]);
      else a.f = pick(r, [Number.NaN, -1, 1e30]);
      if (!node.attribute.includes(a)) node.attribute.push(a);
      break;
    }
    case 6:
      node.opType = pick(r, ['Sigmoid', 'Gelu', 'Foo', 'If', 'Loop', 'MaxPool', 'Softmax', 'Mul', 'Relu', 'Tanh']);
      break;
    case 7:
      node.domain = pick(r, ['com.microsoft', 'ai.onnx.ml', 'x.y']);
      break;
    case 8:
      g.node.splice(int(r, g.node.length), 1);
      break;
    case 9:
      (m.opsetImport[0] as pkg.onnx.OperatorSetIdProto).version = pick(r, [0, 1, 6, 7, 8, 25, 100]);
      break;
    case 10: {
      const dims = g.input[0].type?.tensorType?.shape?.dim ?? [];
      const d = pick(r, dims);
      if (d)
        Object.assign(d, r() < 0.5 ? { dimValue: pick(r, [0, 1, 7, 1e9]) } : { dimParam: 'H', dimValue: undefined });
      break;
    }
    default:
      node.input = node.input.map((i) => (r() < 0.3 ? pick(r, ['missing', '', g.output[0].name ?? 'x']) : i));
      break;
  }
  return onnx.ModelProto.encode(m).finish();
}

/** Damage to the spikeport.snn metadata (JSON), to the other keys, or to the file's bytes. */
function damageSnn(r: Rand, good: Uint8Array): Uint8Array {
  if (r() < 0.2) return damageBytes(r, good);
  const g = decodeModel(good, 'snn.onnx');
  const meta = { ...g.metadata };
  const key = pick(r, [
    'spikeport.snn',
    'spikeport.snn',
    'spikeport.snn',
    'spikeport.delay',
    'spikeport.normalize',
    'spikeport.form',
    'spikeport.tail',
  ]);
  if (key !== 'spikeport.snn') {
    meta[key] = pick(r, ['', '{', 'null', '-1', '1e12', 'loop', 'AAAA', '{"mean":[0],"std":[0]}']);
  } else {
    const j = JSON.parse(meta[key]) as Record<string, unknown>;
    // Walk to a random place in the JSON and break it.
    let parent: Record<string, unknown> | unknown[] = j;
    let k: string | number = pick(r, Object.keys(j));
    for (let depth = 0; depth < 4; depth++) {
      const v = (parent as Record<string, unknown>)[k];
      if (typeof v !== 'object' || v === null || r() < 0.3) break;
      parent = v as Record<string, unknown>;
      const keys = Object.keys(parent);
      if (keys.length === 0) break;
      k = Array.isArray(parent) ? int(r, parent.length) : pick(r, keys);
    }
    const target = parent as Record<string | number, unknown>;
    if (r() < 0.3) delete target[k];
    else target[k] = pick(r, [null, 'x', -1, 1e12, Number.MAX_SAFE_INTEGER, [], {}, [1, 2, 3], true, 0.5]);
    meta[key] = JSON.stringify(j);
  }
  return encodeModel({ ...g, metadata: meta });
}

/** Damage to npz data: the zip, an array's header, its values. */
function damageNpz(r: Rand): Uint8Array {
  if (r() < 0.3) return damageBytes(r, npzBytes);
  const files = unzipSync(npzBytes);
  const name = pick(r, Object.keys(files));
  const arr = files[name];
  switch (int(r, 4)) {
    case 0: {
      const header = new TextDecoder().decode(
        arr.subarray(10, 10 + new DataView(arr.buffer, arr.byteOffset).getUint16(8, true)),
      );
      const broken = header
        .replace(/'shape': \([^)]*\)/, `'shape': (${pick(r, ['-1,', '1e9, 1', 'x', '3,', '', '6, 1, 8, 9'])})`)
        .replace(
          /'descr': '[^']*'/,
          r() < 0.5 ? `'descr': '${pick(r, ['<f4', '<c8', 'constructor', '|b1', '>f4'])}'` : '$&',
        );
      const head = strToU8(broken);
      const out = new Uint8Array(10 + head.length + arr.length);
      out.set(arr.subarray(0, 10));
      new DataView(out.buffer).setUint16(8, head.length, true);
      out.set(head, 10);
      out.set(arr.subarray(10 + new DataView(arr.buffer, arr.byteOffset).getUint16(8, true)), 10 + head.length);
      files[name] = out;
      break;
    }
    case 1:
      files[name] = Uint8Array.from(arr.subarray(0, int(r, arr.length)));
      break;
    case 2:
      delete files[name];
      break;
    default:
      files['masks.npy'] = Uint8Array.from(
        npy(
          [N, 8, 8],
          '|u1',
          Uint8Array.from({ length: N * 64 }, () => int(r, 300)),
        ),
      );
      break;
  }
  return zipSync(files);
}

test(
  `fuzz: ${CASES} mutants each of models, converted files and npz data (seed ${SEED}): success or a SpikeportError, nothing else; the untouched seeds and some mutants of each load`,
  { timeout: 60 * 60_000 },
  async (t) => {
    spawnSync('mkfifo', [path.join(tmp, CANARY)]);
    const r = rng(SEED);
    const snnGood = (
      await convert({ path: path.join(tmp, 'model.onnx'), sha256: '0'.repeat(64), graph: model }, data, {
        iterations: 2,
        batchSize: 3,
        threads: 1,
      })
    ).toBytes();
    const cwd = process.cwd();
    process.chdir(tmp); // relative locations resolve here, where the canary is
    const seeds: (Outcome | 'unexpected')[] = [];
    try {
      // The untouched seeds go through the same paths as their mutants and load: a loader that
      // refused everything would pass every other check here.
      fs.writeFileSync(path.join(tmp, 'seed.onnx'), modelBytes);
      seeds.push(
        await attempt('seed', 'model', async () => {
          const snn = await convert(loadModel(path.join(tmp, 'seed.onnx')), data, {
            iterations: 1,
            batchSize: 3,
            threads: 1,
          });
          await simulate(snn, data, { T: [3], threads: 1 });
        }),
        await attempt('seed', 'converted file', async () => {
          await simulate(snnFromGraph(decodeModel(snnGood, 'seed.snn.onnx'), 'seed.snn.onnx'), data, {
            T: [2],
            threads: 1,
          });
        }),
        await attempt('seed', 'npz', async () => {
          const d = openDataset(`npz:${path.join(tmp, 'data.npz')}`);
          const r = await simulate(snnFromGraph(decodeModel(snnGood, 'snn.onnx'), 'snn.onnx'), d, {
            T: [2],
            threads: 1,
          });
          assert.equal(r.samples, N);
        }),
      );
      for (let i = 0; i < CASES; i++) {
        const bytes = r() < 0.25 ? damageBytes(r, modelBytes) : damageModel(r, modelBytes);
        const file = path.join(tmp, `m${i}.onnx`);
        fs.writeFileSync(file, bytes);
        await attempt('model', file, async () => {
          const snn = await convert(loadModel(file), data, { iterations: 1, batchSize: 3, threads: 1 });
          await simulate(snn, data, { T: [3], threads: 1 });
        });
        fs.rmSync(file);
      }
      for (let i = 0; i < CASES; i++) {
        const bytes = damageSnn(r, snnGood);
        await attempt('converted file', `#${i}`, async () => {
          const snn = snnFromGraph(decodeModel(bytes, `s${i}.onnx`), `s${i}.onnx`);
          await simulate(snn, data, { T: [2], threads: 1 });
        });
      }
      for (let i = 0; i < CASES; i++) {
        const file = path.join(tmp, `d${i}.npz`);
        fs.writeFileSync(file, damageNpz(r));
        await attempt('npz', file, async () => {
          const d = openDataset(`npz:${file}`);
          await simulate(snnFromGraph(decodeModel(snnGood, 'snn.onnx'), 'snn.onnx'), d, { T: [2], threads: 1 });
        });
        fs.rmSync(file);
      }
    } finally {
      process.chdir(cwd);
    }
    for (const [kind, m] of tally) t.diagnostic(`${kind}: ${[...m].map(([o, n]) => `${o} ${n}`).join(', ')}`);
    t.diagnostic(`unexpected: ${unexpected.length}`);
    assert.deepEqual(unexpected, []);
    assert.deepEqual(seeds, ['ok', 'ok', 'ok'], 'the untouched model, converted file and npz data load and run');
    // Each kind of input also has mutants that load (damage that leaves a usable file: a flipped
    // weight bit, a changed attribute the model tolerates): the loaders do not refuse everything.
    if (CASES >= 100)
      for (const kind of ['model', 'converted file', 'npz'])
        assert.ok((tally.get(kind)?.get('ok') ?? 0) > 0, `some ${kind} mutants load (${CASES} tried)`);
    // Nothing outside the test folder (and Node's own modules) was opened through node:fs …
    const outside = [...new Set(opened)].filter(
      (p) =>
        !p.startsWith(tmp) &&
        !p.includes(`${path.sep}node_modules${path.sep}`) &&
        p !== cwd &&
        !p.startsWith(path.join(cwd, 'dist')),
    );
    assert.deepEqual(outside, []);
    // … and nobody opened the canary FIFO (opening its write end without blocking fails with ENXIO while no reader holds it).
    assert.throws(() => fs.openSync(path.join(tmp, CANARY), fs.constants.O_WRONLY | fs.constants.O_NONBLOCK), /ENXIO/);
  },
);
