/**
 * The library's front door, used as a script would use it: convert in memory, simulate without a
 * file, save and load, describe, a caller's own threshold method, defaults, errors in the
 * library's words, and the SNN file's validating decode.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  CONVERT_DEFAULTS,
  KEYS,
  SIMULATE_DEFAULTS,
  SpikeportError,
  convert,
  loadModel,
  loadSnn,
  openDataset,
  simulate,
  snnFromGraph,
  memoryDataset,
  type CalibrationContext,
  type SimulateRecord,
  type ThresholdMethod,
} from '../src/advanced.js';
import { decodeModel, encodeModel } from '../src/onnx/codec.js';
import { messageOf } from '../src/cli/options.js';
import { field, optionError } from '../src/errors.js';
import { floatTensor } from '../src/graph/ir.js';
import { buildGraph } from './helpers.js';
import { simulateBatches as simulateSteps } from '../src/runtime/batches.js';
import type { Snn } from '../src/snn/network.js';
import type { Dataset } from '../src/data/dataset.js';
import { tempDir } from './temp.js';

const MNIST = path.join(process.cwd(), 'models', 'mnist-cnn.onnx');
const tmp = tempDir('spikeport-api-');
const train = openDataset('mnist:train', 2000);
const test500 = openDataset('mnist:test', 300);

/** Everything a simulation measured, without the clock and the file names. */
function measured(r: SimulateRecord): unknown {
  return {
    results: r.results,
    firingRates: r.firingRates,
    ann: r.ann,
    clippedAnn: r.clippedAnn,
    sops: r.energy?.perT.map((p) => p.sops),
    delay: r.delay,
  };
}

test('convert → simulate in memory gives exactly what the saved and reloaded file gives', async () => {
  const snn = await convert(MNIST, train, { iterations: 20, threads: 1 });
  assert.ok(snn.source, 'convert keeps the prepared ANN for references');
  // One engine for both: `auto` picks by timing, and the engines' float rounding differs slightly.
  const opts = { T: [4, 16, 32], references: true, threads: 1, engine: 'steps' } as const;
  const inMemory = await simulate(snn, test500, opts);
  const file = path.join(tmp, 'cnn.snn.onnx');
  snn.save(file);
  fs.copyFileSync(MNIST, path.join(tmp, 'mnist-cnn.onnx')); // found next to the SNN by name and hash
  const loaded = await loadSnn(file);
  assert.ok(loaded.source, 'the source ANN is found next to the file');
  const fromFile = await simulate(loaded, test500, opts);
  assert.deepEqual(measured(fromFile), measured(inMemory));
  assert.equal(inMemory.samples, 300);
  assert.ok(inMemory.ann && inMemory.ann.metric > 0.95, `ANN top-1 ${inMemory.ann?.metric}`);
  assert.ok(inMemory.results[2].metric > 0.9);
  // Each window's top-1, with and without the delay, from the readouts of every step averaged here by hand.
  const hand = await windowTop1(snn, test500, inMemory.results);
  assert.deepEqual(
    inMemory.results.map((r) => [r.metric, r.metricNoDelay]),
    hand,
  );
  assert.ok(
    hand.some(([a, b]) => a !== b),
    `the delay changes some top-1 (else the comparison cannot tell the windows apart): ${JSON.stringify(hand)}`,
  );
  // Without the ANN: no references, and asking for them is an error naming the option.
  const bare = await loadSnn(file, { ann: null });
  assert.equal(bare.source, null);
  await assert.rejects(
    simulate(bare, test500, { T: [4], references: true }),
    (e: unknown) => e instanceof SpikeportError && e.field === 'references',
  );
});

/** Top-1 over steps [delay+1, T] and [1, T] for each result, from the step engine's readouts and the labels. */
async function windowTop1(snn: Snn, data: Dataset, results: SimulateRecord['results']): Promise<number[][]> {
  const Tmax = Math.max(...results.map((r) => r.T));
  const hits = results.map(() => [0, 0]);
  await simulateSteps(
    snn.graph,
    snn.spec,
    data,
    { steps: Tmax, batchSize: 100, normalize: snn.meta.normalize, threads: 1, engine: 'steps' },
    (b) => {
      const r = b.readouts as Float32Array;
      const classes = b.size;
      for (let i = 0; i < b.n; i++) {
        results.forEach(({ T, delay }, k) => {
          [delay, 0].forEach((d, j) => {
            const sum = new Float64Array(classes);
            for (let t = d; t < T; t++) for (let c = 0; c < classes; c++) sum[c] += r[(t * b.n + i) * classes + c];
            if (sum.indexOf(Math.max(...sum)) === (b.labels as Int32Array)[i]) hits[k][j]++;
          });
        });
      }
    },
  );
  return hits.map((h) => h.map((x) => x / data.size));
}

test('defaults live in the library: convert and simulate with no options use them', async () => {
  const snn = await convert(MNIST, openDataset('mnist:train', 500), { threads: 1 });
  const cal = snn.meta.calibration;
  assert.deepEqual(
    [cal.method, cal.iterations, cal.batchSize],
    [CONVERT_DEFAULTS.method, CONVERT_DEFAULTS.iterations, CONVERT_DEFAULTS.batchSize],
  );
  assert.equal(snn.spec.maxpool, CONVERT_DEFAULTS.maxpool);
  assert.equal(cal.samples, CONVERT_DEFAULTS.iterations * CONVERT_DEFAULTS.batchSize);
  const r = await simulate(snn, openDataset('mnist:test', 20), { threads: 1 });
  assert.deepEqual(
    r.results.map((x) => x.T),
    [...SIMULATE_DEFAULTS.T],
  );
  // The default window rule: d = min(d̂, ⌊T/2⌋).
  for (const x of r.results) assert.equal(x.delay, Math.min(snn.meta.delay.estimated, Math.floor(x.T / 2)));
  assert.equal(r.ann, null, 'references only when asked');
  assert.equal(r.energy?.constants.name, SIMULATE_DEFAULTS.energy);
});

test('describe() reports the thresholds, latencies and costs the file carries', async () => {
  const snn = await convert(MNIST, train, { iterations: 5, method: 'ltb', threads: 1 });
  const d = snn.describe();
  assert.equal(d.sites.length, snn.spec.sites.length);
  d.sites.forEach((s, i) => {
    const th = snn.spec.sites[i].theta;
    assert.equal(s.thresholds, 1, 'layer-wise: one θ per site');
    assert.equal(s.thetaMean, th[0]);
    assert.equal(s.latency, snn.meta.delay.latencies[i]);
  });
  assert.equal(
    d.annMacs,
    (snn.spec.layers ?? []).reduce((a, l) => a + l.macs, 0),
  );
  assert.ok(d.annMacs > 1e5);
  assert.equal(d.delay, snn.meta.delay.estimated);
  assert.equal(d.hasSource, true);
});

test('describe() of a hand-worked network: θ statistics, silent channels, latencies r = 1/(2·mean ρ), d̂ and MACs as worked out here', async () => {
  // x [2] → Gemm(I) → ReLU (θ = 2, 0) → Gemm(I) → ReLU (θ = 0.5, 4) → Gemm(I) readout; one sample x = (1, 3).
  const eye = floatTensor([2, 2], [1, 0, 0, 1]);
  const graph = buildGraph([2], (b, x) => {
    const r0 = b.op('Relu', [b.op('Gemm', [x, b.constant('I', eye)], { transB: 1 })], {}, 'a');
    const r1 = b.op('Relu', [b.op('Gemm', [r0, b.constant('I', eye)], { transB: 1 })], {}, 'b');
    return b.op('Gemm', [r1, b.constant('I', eye)], { transB: 1 }, 'readout');
  });
  const [a, b] = graph.nodes.filter((n) => n.opType === 'Relu').map((n) => n.name);
  const data = memoryDataset({
    name: 'x',
    size: 1,
    sampleShape: [2],
    x: Float32Array.of(1, 3),
    scale: 1,
    labels: null,
  });
  const snn = await convert({ path: 'eye.onnx', sha256: '0'.repeat(64), graph }, data, {
    method: 'fixed',
    thresholds: { [a]: [2, 0], [b]: [0.5, 4] },
    threads: 1,
  });
  const d = snn.describe();
  // Site a: inputs (1, 3), θ (2, 0): ρ = 1/2 from channel 0 only (θ = 0 says nothing) → r = 1.
  // Site b: inputs clip(1, 0, 2) = 1 and clip(3, 0, 0) = 0, θ (0.5, 4): ρ = (2 + 0)/2 = 1 → r = 0.5.
  // d̂ = ⌈1 + 0.5⌉ = 2. MACs: three 2×2 dense layers, 4 each.
  assert.deepEqual(
    d.sites.map((s) => [s.neurons, s.thresholds, s.thetaMin, s.thetaMean, s.thetaMax, s.silent, s.latency]),
    [
      [2, 2, 0, 1, 2, 1, 1],
      [2, 2, 0.5, 2.25, 4, 0, 0.5],
    ],
  );
  assert.equal(d.delay, 2);
  assert.equal(d.annMacs, 12);
  assert.deepEqual(
    d.layers.map((l) => [l.where, l.macs]),
    [
      ['input', 4],
      ['spiking', 4],
      ['spiking', 4],
    ],
  );
  assert.equal(d.granularity, 'channel');
});

test("a caller's ThresholdMethod sees every site's input: a JS channel max equals the built-in in-graph cmaxnorm", async () => {
  let batchesSeen = 0;
  const jsChannelMax: ThresholdMethod = {
    name: 'js-channel-max',
    async thresholds(ctx: CalibrationContext) {
      const best = ctx.channels.map((c) => new Float32Array(c));
      await ctx.forEachBatch((inputs) => {
        batchesSeen++;
        inputs.forEach(({ dims, data }, i) => {
          const C = dims[1];
          const spatial = data.length / (dims[0] * C);
          for (let j = 0; j < data.length; j++) {
            const c = Math.floor(j / spatial) % C;
            if (data[j] > best[i][c]) best[i][c] = data[j];
          }
        });
      });
      return { granularity: 'channel', values: best };
    },
  };
  const data = openDataset('mnist:train', 300);
  const mine = await convert(MNIST, data, { method: jsChannelMax, iterations: 3, threads: 1 });
  const builtIn = await convert(MNIST, data, { method: 'cmaxnorm', iterations: 3, threads: 1 });
  assert.equal(batchesSeen, 3);
  assert.equal(mine.meta.calibration.method, 'js-channel-max');
  assert.deepEqual(
    mine.spec.sites.map((s) => s.theta),
    builtIn.spec.sites.map((s) => s.theta),
  );
  assert.ok(mine.spec.sites.every((s) => s.theta.some((t) => t > 0)));
  // A method returning the wrong shape is refused, naming the method option.
  const bad: ThresholdMethod = {
    name: 'bad',
    thresholds: async () => ({ granularity: 'channel', values: [new Float32Array(1)] }),
  };
  await assert.rejects(
    convert(MNIST, data, { method: bad, iterations: 1, threads: 1 }),
    (e: unknown) => e instanceof SpikeportError && e.field === 'method',
  );
});

test('library errors name the option field, never a flag, and the CLI turns the field into its flag', async () => {
  const cases: [() => Promise<unknown>, string][] = [
    [() => convert(MNIST, train, { iterations: 0 }), 'iterations'],
    [() => convert(MNIST, train, { batchSize: 2.5 }), 'batchSize'],
    [() => convert(MNIST, train, { stepSize: Number.NaN }), 'stepSize'],
    [() => convert(MNIST, train, { readoutNode: 'nope', iterations: 1 }), 'readoutNode'],
    [() => convert(MNIST, train, { method: 'fixed' }), 'thresholds'],
    [() => convert(MNIST, train, { normalize: { mean: [0], std: [0] } }), 'normalize'],
    [() => convert(MNIST, train, { iterations: 1, threads: 0 }), 'threads'],
  ];
  const snn = await convert(MNIST, train, { iterations: 1, threads: 1 });
  cases.push(
    [() => simulate(snn, test500, { T: [0] }), 'T'],
    [() => simulate(snn, test500, { delay: -1 }), 'delay'],
    [() => simulate(snn, test500, { energy: 'nuclear' }), 'energy'],
  );
  for (const [run, field] of cases) {
    const e = await run().then(
      () => null,
      (x: unknown) => x,
    );
    assert.ok(e instanceof SpikeportError, `${field}: ${String(e)}`);
    assert.equal(e.code, 'invalid-option', field);
    assert.equal(e.field, field);
    assert.doesNotMatch(e.message, /--/, `no flag in "${e.message}"`);
    assert.match(e.message, new RegExp(`\\b${field}\\b`));
  }
  assert.equal(
    messageOf(new SpikeportError('invalid-option', 'T must list integers ≥ 1 (got 0)', 'T')),
    '--T must list integers ≥ 1 (got 0)',
  );
  assert.equal(
    messageOf(new SpikeportError('invalid-option', 'batchSize must be an integer ≥ 1 (got 0)', 'batchSize')),
    '--batch must be an integer ≥ 1 (got 0)',
  );
  assert.equal(
    messageOf(
      new SpikeportError(
        'unsupported-model',
        'cannot convert node "s": …; set readoutNode to a node before it',
        'readoutNode',
      ),
    ),
    'cannot convert node "s": …; set --readout to a node before it',
  );
  // Errors as data: every field a message names is listed and rendered by the caller (the CLI as flags).
  const e = new SpikeportError(
    'invalid-data',
    `x.png is 30×30 but the model takes 28×28: choose a preprocessing with ${field('preprocess')} (none); or ${field('engine')} steps`,
    undefined,
    { width: 30, height: 30 },
  );
  assert.equal(
    e.message,
    'x.png is 30×30 but the model takes 28×28: choose a preprocessing with preprocess (none); or engine steps',
  );
  assert.deepEqual(e.fields, ['preprocess', 'engine']);
  assert.deepEqual(e.values, { width: 30, height: 30 });
  assert.equal(
    messageOf(e),
    'x.png is 30×30 but the model takes 28×28: choose a preprocessing with --preprocess (none); or --engine steps',
  );
  assert.equal(
    e.render((f) => `options.${f}`),
    'x.png is 30×30 but the model takes 28×28: choose a preprocessing with options.preprocess (none); or options.engine steps',
  );
  // Wrapped inside another option, the marks survive.
  const inner = optionError('batchSize', 'must be an integer ≥ 1 (got 0)', { got: 0, min: 1 });
  assert.equal(messageOf(inner.within('checkpoint')), '--checkpoint: --batch must be an integer ≥ 1 (got 0)');
  assert.deepEqual(inner.within('checkpoint').fields, ['checkpoint', 'batchSize']);
  assert.equal(inner.within('checkpoint').message, 'checkpoint: batchSize must be an integer ≥ 1 (got 0)');
});

test('no message the library writes names a command-line flag (src/ outside cli/, comments left out)', () => {
  const files = fs
    .readdirSync('src', { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts') && !f.startsWith('cli'));
  assert.ok(files.length > 80, `${files.length} files`);
  const found: string[] = [];
  for (const f of files) {
    const code = fs
      .readFileSync(path.join('src', f), 'utf8')
      .replace(/\/\*[\s\S]*?\*\//g, '')
      .replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
    // Inside string and template literals only (`--depth` in code is a decrement).
    for (const lit of code.matchAll(/(['"`])((?:\\.|(?!\1)[^\\])*)\1/g))
      for (const m of lit[2].matchAll(/(?<![\w-])--[a-z][\w-]*/g)) found.push(`${f}: ${m[0]}`);
  }
  assert.deepEqual(found, []);
});

test('a converted file with missing or mistyped metadata is a one-line error naming the field', async () => {
  const snn = await convert(MNIST, train, { iterations: 2, threads: 1 });
  const good = snn.toGraph();
  assert.equal(snnFromGraph(good, 'good.onnx').meta.spec.sites.length, 3);
  const meta = JSON.parse(good.metadata[KEYS.snn]);
  const tampered = (change: (m: typeof meta) => void, graph = good): ReturnType<typeof decodeModel> => {
    const m = structuredClone(meta);
    change(m);
    return { ...graph, metadata: { ...graph.metadata, [KEYS.snn]: JSON.stringify(m) } };
  };
  const expectInvalid = (g: ReturnType<typeof decodeModel>, pattern: RegExp): void => {
    assert.throws(
      () => snnFromGraph(decodeModel(encodeModel(g), 'bad.onnx'), 'bad.onnx'),
      (e: unknown) => {
        assert.ok(e instanceof SpikeportError, String(e));
        assert.equal(e.code, 'invalid-file');
        assert.equal(e.message.split('\n').length, 1);
        assert.match(e.message, pattern);
        return true;
      },
    );
  };
  expectInvalid(
    tampered((m) => {
      delete m.spec.sites[1].theta;
    }),
    /^bad\.onnx: .*field spec\.sites\.1\.theta/,
  );
  expectInvalid(
    tampered((m) => {
      m.spec.sites[0].theta[2] = null;
    }),
    /field spec\.sites\.0\.theta\.2/,
  );
  expectInvalid(
    tampered((m) => {
      m.spec.sites[0].theta[0] = -1;
    }),
    /field spec\.sites\.0\.theta\.0/,
  );
  expectInvalid(
    tampered((m) => {
      m.calibration.iterations = 'many';
    }),
    /field calibration\.iterations/,
  );
  expectInvalid(
    tampered((m) => {
      m.source.file = '../../etc/passwd';
    }),
    /field source\.file: must be a file name without a folder/,
  );
  expectInvalid(
    tampered((m) => {
      m.spec.format = 'spikeport-step/9';
    }),
    /unknown SNN format "spikeport-step\/9"/,
  );
  expectInvalid(
    tampered((m) => {
      m.spec.readout = 'not_there';
    }),
    /no output "not_there"/,
  );
  // The parts must agree with each other and with the graph.
  expectInvalid(
    tampered((m) => {
      m.spec.sites[0].theta = m.spec.sites[0].theta.slice(0, 7);
    }),
    /field spec\.sites\.0\.theta: 7 values, expected 16/,
  );
  expectInvalid(
    tampered((m) => {
      m.spec.granularity = 'layer';
    }),
    /field spec\.sites\.0\.theta: 16 values, expected 1/,
  );
  expectInvalid(
    tampered((m) => {
      m.spec.sites[0].neurons = 16;
    }),
    /field spec\.sites\.0\.neurons: 16, but its state holds 3136/,
  );
  expectInvalid(
    tampered((m) => {
      m.spec.readoutShape = [11];
    }),
    /field spec\.readoutShape: 11 is not the readout output's shape/,
  );
  expectInvalid(
    tampered((m) => {
      m.spec.sites[0].spikes = m.spec.readout;
    }),
    /names the output "logits" twice/,
  );
  expectInvalid(
    tampered((m) => {
      [m.spec.sites[0].spikes, m.spec.sites[1].spikes] = [m.spec.sites[1].spikes, m.spec.sites[0].spikes];
    }),
    /field spec\.sites\.0\.spikes: expected "spikes\.site0"/,
  );
  expectInvalid(
    tampered((m) => {
      m.spec.layers[1].where = 'input';
    }),
    /field spec\.layers\.1: a layer has a SOP counter exactly when/,
  );
  expectInvalid(
    tampered((m) => {
      m.delay.latencies.pop();
    }),
    /field delay\.latencies: 2 values for 3 sites/,
  );
  expectInvalid(
    { ...good, metadata: { ...good.metadata, [KEYS.delay]: '99' } },
    /spikeport\.delay is "99" but spikeport\.snn says \d+/,
  );
  expectInvalid(
    { ...good, metadata: { ...good.metadata, [KEYS.normalize]: '{"mean":[0.5],"std":[0.5]}' } },
    /spikeport\.normalize does not match/,
  );
  expectInvalid(
    { ...good, metadata: { ...good.metadata, [KEYS.snn]: '{"spec":{"format":"spikeport-step/1"},\n"x":1' } },
    /is not JSON/,
  );
  expectInvalid({ ...good, metadata: { ...good.metadata, [KEYS.snn]: '{not json' } }, /is not JSON/);
  expectInvalid({ ...good, metadata: { ...good.metadata, [KEYS.form]: 'spiral' } }, /spikeport\.form is "spiral"/);
  const { [KEYS.snn]: _gone, ...rest } = good.metadata;
  expectInvalid({ ...good, metadata: rest }, /not a spiking network made by spikeport convert/);
});

test('forms: an in-memory network saves as a Loop; a loop-form file cannot become a step graph', async () => {
  const snn = await convert(loadModel(MNIST), train, { iterations: 2, threads: 1 });
  const loop = snnFromGraph(snn.toGraph('loop'), 'loop.onnx');
  assert.equal(loop.form, 'loop');
  assert.deepEqual(loop.meta.spec, snn.meta.spec);
  assert.throws(
    () => loop.toGraph('step'),
    (e: unknown) => e instanceof SpikeportError && e.field === 'form',
  );
  // The in-memory step graph driven by an ONNX Loop equals the saved Loop file.
  const a = await simulate(snn, openDataset('mnist:test', 100), { T: [8, 24], threads: 1, engine: 'loop' });
  const b = await simulate(loop, openDataset('mnist:test', 100), { T: [8, 24], threads: 1 });
  assert.deepEqual(b.results, a.results);
  assert.deepEqual(b.firingRates, a.firingRates);
});

test('a network with ops after the readout (bilinear ×4 upsampling) scores the same from its Loop file', async () => {
  const fcn = path.join(process.cwd(), 'models', 'mnist-fcn.onnx');
  const snn = await convert(fcn, openDataset('mnist-seg:train', 500), { iterations: 100, batchSize: 20, threads: 1 });
  assert.ok(snn.tail, 'the upsampling runs after the readout');
  const loop = snnFromGraph(decodeModel(snn.toBytes('loop'), 'fcn.loop.onnx'), 'fcn.loop.onnx');
  assert.ok(loop.tail, 'the loop file keeps the tail for scoring windows');
  const data = openDataset('mnist-seg:test', 20);
  const a = await simulate(snn, data, { T: [8, 16], threads: 1, engine: 'loop' });
  const b = await simulate(loop, data, { T: [8, 16], threads: 1 });
  assert.equal(a.task, 'segmentation');
  assert.deepEqual(b.results, a.results);
  assert.ok(a.results[1].metric > 0.3, `mIoU ${a.results[1].metric}`);
});

test('options the library refuses, each naming its field: thresholds, custom methods, energy, T, normalize, form', async () => {
  const data = openDataset('mnist:train', 200);
  const sites = ['/Relu', '/Relu_1', '/Relu_2'];
  const refuses = async (run: () => Promise<unknown> | unknown, field: string, pattern: RegExp): Promise<void> => {
    const e = await (async () => run())().then(
      () => null,
      (x: unknown) => x,
    );
    assert.ok(e instanceof SpikeportError, `${field}: ${String(e)}`);
    assert.equal(e.field, field, e.message);
    assert.match(e.message, pattern);
    assert.equal(e.message.includes('\n'), false);
  };
  const fixed = (thresholds: unknown) => () =>
    convert(MNIST, data, { method: 'fixed', thresholds: thresholds as Record<string, number>, threads: 1 });
  await refuses(
    fixed({ [sites[0]]: null, [sites[1]]: 1, [sites[2]]: 1 }),
    'thresholds',
    /for site "\/Relu": expected a number or an array/,
  );
  await refuses(
    fixed({ [sites[0]]: { a: 1 }, [sites[1]]: 1, [sites[2]]: 1 }),
    'thresholds',
    /expected a number or an array/,
  );
  await refuses(
    fixed({ [sites[0]]: 1, [sites[1]]: 1, [sites[2]]: 1, '/Relu_9': 2 }),
    'thresholds',
    /names "\/Relu_9", which is not a neuron site/,
  );
  await refuses(
    () => convert(MNIST, data, { method: 'cltb', thresholds: { [sites[0]]: 1 } }),
    'thresholds',
    /only used by method "fixed"/,
  );
  const nan: ThresholdMethod = {
    name: 'nan',
    thresholds: async (ctx) => ({ granularity: 'layer', values: ctx.channels.map(() => Float32Array.of(Number.NaN)) }),
  };
  await refuses(
    () => convert(MNIST, data, { method: nan, iterations: 1, threads: 1 }),
    'method',
    /"nan" returned the threshold NaN at neuron site "\/Relu"/,
  );
  const impostor: ThresholdMethod = { name: 'cltb', thresholds: nan.thresholds };
  await refuses(() => convert(MNIST, data, { method: impostor }), 'method', /"cltb" is the name of a built-in method/);
  await refuses(
    () => convert(MNIST, data, { normalize: { mean: [0.1, 0.2, 0.3], std: [0.3, 0.3, 0.3] }, threads: 1 }),
    'normalize',
    /3 mean and 3 std values for an input with 1 channel/,
  );
  const snn = await convert(MNIST, data, { iterations: 1, threads: 1 });
  await refuses(() => simulate(snn, test500, { T: 8 as unknown as number[] }), 'T', /must be an array/);
  await refuses(
    () => simulate(snn, test500, { delay: 'x' as unknown as number }),
    'delay',
    /"auto", "fit", "half", "off" or an integer/,
  );
  await refuses(() => simulate(snn, test500, { delay: 'fit' }), 'delay', /needs delays fitted at conversion/);
  await refuses(
    () => convert(MNIST, data, { delayFit: 5000 }),
    'delayFit',
    /at most 4096 \(the fit compares every window/,
  );
  await refuses(() => convert(MNIST, data, { biasCalibration: 1.5 }), 'biasCalibration', /must be an integer ≥ 1/);
  await refuses(
    () => convert(MNIST, data, { method: 'qcfs', threads: 1 }),
    'method',
    /site "\/Relu" is a ReLU without one/,
  );
  await refuses(
    () => simulate(snn, test500, { energy: { name: 'mine', eSop: -1, eMac: 1e-12, note: '' } }),
    'energy',
    /finite and > 0/,
  );
  await refuses(
    () => snn.save(path.join(tmp, 'x.onnx'), { form: 'spiral' as 'step' }),
    'form',
    /must be "step" or "loop"/,
  );
  assert.equal(fs.existsSync(path.join(tmp, 'x.onnx')), false);
  // A method that looks at no data records no iterations; the recorded batch is the one used.
  const small = openDataset('mnist:train', 50);
  const f = await convert(MNIST, small, {
    method: 'fixed',
    thresholds: { [sites[0]]: 1, [sites[1]]: 1, [sites[2]]: 1 },
    threads: 1,
  });
  assert.deepEqual(
    [f.meta.calibration.iterations, f.meta.calibration.samples, f.meta.calibration.batchSize],
    [0, 0, 50],
  );
  const c = await convert(MNIST, small, { iterations: 3, threads: 1 });
  assert.deepEqual([c.meta.calibration.batchSize, c.meta.calibration.samples], [50, 150]);
});

test('records read back from JSON are checked field by field; every record committed under docs/ parses', async () => {
  const { parseRecord } = await import('../src/report/record.js');
  const dirs = ['docs/generated/experiments', 'docs/generated/tasks', 'docs/generated/results'];
  const files = dirs.flatMap((d) =>
    fs
      .readdirSync(d)
      .filter((f) => f.endsWith('.json'))
      .map((f) => path.join(d, f)),
  );
  assert.ok(files.length >= 10);
  for (const f of files) parseRecord(JSON.parse(fs.readFileSync(f, 'utf8')), f);
  assert.throws(
    () => parseRecord({ kind: 'simulate' }, 'r.json'),
    (e: unknown) => e instanceof SpikeportError && /r\.json: a simulate record with a bad field model/.test(e.message),
  );
  assert.throws(() => parseRecord({ kind: 'nope' }, 'r.json'), /not a spikeport record/);
  const good = JSON.parse(fs.readFileSync('docs/generated/experiments/fashion-vgg-delay.json', 'utf8'));
  good.sweeps[0].points[2].metric = 'high';
  assert.throws(() => parseRecord(good, 'd.json'), /field sweeps\.0\.points\.2\.metric/);
});
