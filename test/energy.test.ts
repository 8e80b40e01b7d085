import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Graph, Node } from '../src/graph/ir.js';
import { floatTensor, numel } from '../src/graph/ir.js';
import { fanout, macs } from '../src/graph/fanout.js';
import { prepareModel } from '../src/model/prepare.js';
import { calibrate } from '../src/calibrate/calibrate.js';
import { buildSnn } from '../src/snn/build.js';
import { simulateBatches } from '../src/runtime/batches.js';
import { Session, type Array32 } from '../src/ort/session.js';
import { energyReport, PRESETS } from '../src/energy/energy.js';
import { buildGraph, conv, gemm, memDataset, uniform } from './helpers.js';

/**
 * Plain enumeration of a 2-D conv's synapses: for every output channel, output position and
 * kernel tap that lands inside the input, the input element it reads gets one more synapse.
 */
function bruteFanout2d(
  inShape: number[],
  cout: number,
  groups: number,
  k: number[],
  s: number[],
  d: number[],
  p: number[],
  outHW: number[],
  transposed = false,
): Float32Array {
  const [cin, H, W] = inShape;
  const f = new Float32Array(cin * H * W);
  const cinG = cin / groups;
  const coutG = cout / groups;
  for (let oc = 0; oc < cout; oc++) {
    const g = Math.floor(oc / coutG);
    for (let ic = g * cinG; ic < (g + 1) * cinG; ic++) {
      for (let ky = 0; ky < k[0]; ky++)
        for (let kx = 0; kx < k[1]; kx++) {
          if (!transposed) {
            for (let oy = 0; oy < outHW[0]; oy++)
              for (let ox = 0; ox < outHW[1]; ox++) {
                const iy = oy * s[0] - p[0] + ky * d[0];
                const ix = ox * s[1] - p[1] + kx * d[1];
                if (iy >= 0 && iy < H && ix >= 0 && ix < W) f[(ic * H + iy) * W + ix]++;
              }
          } else {
            for (let iy = 0; iy < H; iy++)
              for (let ix = 0; ix < W; ix++) {
                const oy = iy * s[0] - p[0] + ky * d[0];
                const ox = ix * s[1] - p[1] + kx * d[1];
                if (oy >= 0 && oy < outHW[0] && ox >= 0 && ox < outHW[1]) f[(ic * H + iy) * W + ix]++;
              }
          }
        }
    }
  }
  return f;
}

function convNode(op: string, w: number[], attrs: Record<string, number[] | number | string>): { g: Graph; n: Node } {
  const inits = new Map([['W', floatTensor(w, new Float32Array(numel(w)))]]);
  const n: Node = {
    name: 'c',
    opType: op,
    domain: '',
    inputs: ['x', 'W'],
    outputs: ['y'],
    attrs: Object.fromEntries(
      Object.entries(attrs).map(([k, v]) => [
        k,
        Array.isArray(v)
          ? { kind: 'ints' as const, value: v }
          : typeof v === 'string'
            ? { kind: 'string' as const, value: v }
            : { kind: 'int' as const, value: v },
      ]),
    ),
  };
  const g: Graph = {
    name: 'g',
    nodes: [n],
    initializers: inits,
    inputs: [],
    outputs: [],
    opset: 13,
    irVersion: 8,
    metadata: {},
  };
  return { g, n };
}

test('fan-out of every input element matches a plain enumeration of synapses (stride, padding, dilation, groups, transposed); Σ fan-out = MACs', () => {
  const cases = [
    { op: 'Conv', in: [2, 7, 6], cout: 3, g: 1, k: [3, 3], s: [1, 1], d: [1, 1], p: [1, 1], out: [7, 6] },
    { op: 'Conv', in: [4, 9, 8], cout: 6, g: 2, k: [3, 2], s: [2, 2], d: [1, 1], p: [1, 0], out: [5, 4] },
    { op: 'Conv', in: [3, 10, 10], cout: 3, g: 3, k: [3, 3], s: [1, 2], d: [2, 1], p: [2, 1], out: [10, 5] },
    { op: 'ConvTranspose', in: [2, 4, 5], cout: 3, g: 1, k: [3, 3], s: [2, 2], d: [1, 1], p: [1, 1], out: [7, 9] },
  ];
  for (const c of cases) {
    const w = c.op === 'Conv' ? [c.cout, c.in[0] / c.g, ...c.k] : [c.in[0], c.cout / c.g, ...c.k];
    const { g, n } = convNode(c.op, w, {
      kernel_shape: c.k,
      strides: c.s,
      dilations: c.d,
      pads: [...c.p, ...c.p],
      group: c.g,
    });
    const outShape = [c.cout, ...c.out];
    const got = fanout(g, n, c.in, outShape);
    const want = bruteFanout2d(c.in, c.cout, c.g, c.k, c.s, c.d, c.p, c.out, c.op === 'ConvTranspose');
    assert.deepEqual(Array.from(got), Array.from(want), `${c.op} ${JSON.stringify(c)}`);
    assert.equal(
      macs(g, n, c.in, outShape),
      want.reduce((a, b) => a + b, 0),
    );
  }
  // auto_pad SAME_UPPER on a stride-2 conv: 8 → 4, total pad 1, all at the end.
  const { g, n } = convNode('Conv', [2, 1, 3, 3], { kernel_shape: [3, 3], strides: [2, 2], auto_pad: 'SAME_UPPER' });
  assert.deepEqual(
    Array.from(fanout(g, n, [1, 8, 8], [2, 4, 4])),
    Array.from(bruteFanout2d([1, 8, 8], 2, 1, [3, 3], [2, 2], [1, 1], [0, 0], [4, 4])),
  );
});

/**
 * Runs the step graph by hand, reads each spiking layer's input, counts events × fan-out per
 * step, and checks every engine's SOP counts against that.
 */
async function checkSops(
  graph: Graph,
  shape: number[],
  n: number,
  kinds: string[],
  fanouts: (spiking: Node[]) => Float32Array[],
): Promise<void> {
  const m = await prepareModel({ path: 'e.onnx', sha256: '', graph }, { threads: 1 });
  const x = uniform(5, n * numel(shape), 0, 1);
  const data = memDataset(x, shape);
  const cal = await calibrate(m, data, { method: 'maxnorm', iterations: 1, batchSize: n, threads: 1 });
  const snn = buildSnn(m, cal.thresholds);
  const layers = snn.spec.layers ?? [];
  assert.deepEqual(
    layers.map((l) => l.where),
    kinds,
  );
  const T = 12;

  // Reference: run the step graph by hand, read each spiking layer's input, count events × fan-out.
  const spiking = layers.filter((l) => l.sops).map((l) => m.graph.nodes.find((nd) => nd.name === l.node) as Node);
  const probe: Graph = {
    ...snn.graph,
    outputs: [
      ...snn.graph.outputs,
      ...spiking.map((nd) => ({ name: nd.inputs[0], dtype: 'float32' as const, shape: null })),
    ],
  };
  const s = await Session.create(probe, { threads: 1 });
  const fan = fanouts(spiking);
  const want = spiking.map(() => new Float64Array(T));
  const feeds: Record<string, Array32> = { input: { dims: [n, ...shape], data: x } };
  for (const st of snn.spec.states)
    feeds[st.input] = { dims: [n, ...st.shape], data: new Float32Array(n * numel(st.shape)) };
  let events = 0;
  for (let t = 0; t < T; t++) {
    const out = await s.run(feeds);
    for (const st of snn.spec.states) feeds[st.input] = out[st.output];
    spiking.forEach((nd, li) => {
      const v = out[nd.inputs[0]].data;
      const per = fan[li].length;
      for (let i = 0; i < v.length; i++) {
        if (v[i] !== 0) {
          want[li][t] += fan[li][i % per];
          events++;
        }
      }
    });
  }
  await s.release();
  assert.ok(events > 100, `the test network must spike (events: ${events})`);
  for (const engine of ['steps', 'loop', 'fused'] as const) {
    const stats = await simulateBatches(
      snn.graph,
      snn.spec,
      data,
      { steps: T, batchSize: n, normalize: null, threads: 1, engine },
      () => {},
    );
    assert.deepEqual(stats.engines, { [engine]: 1 }, `the ${engine} engine ran (no fallback)`);
    assert.equal(stats.sopsPerStep.length, spiking.length);
    stats.sopsPerStep.forEach((got, li) =>
      assert.deepEqual(Array.from(got), Array.from(want[li]), `${engine}: layer ${li}`),
    );
  }
}

test('SOPs counted in the SNN graph equal a plain JS count of input events × fan-out, step by step (every engine)', async () => {
  // Layers fed by a site's spikes (counted with the spikes), the max pool moved in front of its neuron.
  await checkSops(
    buildGraph([2, 8, 8], (b, x) => {
      let h = b.op('Relu', [conv(b, x, 2, 4, 3, { seed: 1 })]);
      h = b.op('Relu', [conv(b, h, 4, 6, 3, { stride: 2, seed: 2 })]);
      h = b.op('MaxPool', [h], { kernel_shape: [2, 2], strides: [2, 2] });
      h = b.op('Flatten', [h], { axis: 1 });
      return gemm(b, h, 6 * 2 * 2, 5, 3);
    }),
    [2, 8, 8],
    6,
    ['input', 'spiking', 'spiking'],
    () => [bruteFanout2d([4, 8, 8], 6, 1, [3, 3], [2, 2], [1, 1], [1, 1], [4, 4]), new Float32Array(24).fill(5)],
  );
  // A layer fed by spikes through an average pool: its events are the pool's non-zero outputs (fractions of θ), not their values.
  await checkSops(
    buildGraph([2, 8, 8], (b, x) => {
      let h = b.op('Relu', [conv(b, x, 2, 4, 3, { seed: 4 })]);
      h = b.op('AveragePool', [h], { kernel_shape: [2, 2], strides: [2, 2] });
      h = b.op('Flatten', [h], { axis: 1 });
      return gemm(b, h, 4 * 4 * 4, 3, 5);
    }),
    [2, 8, 8],
    6,
    ['input', 'spiking'],
    () => [new Float32Array(64).fill(3)],
  );
});

test("energy: the paper's ResNet-34 figures follow from its constants (3.6 G MACs → 22 FPS/W; 20.86 G SOPs → 622 FPS/W); SOPs90/95 pick the first T reaching 90 %/95 % of the ANN", () => {
  const T = 64;
  // One spiking layer with a constant 20.86e9/32 SOPs per frame per step; 10 samples.
  const perStep = new Float64Array(T).fill((20.86e9 / 32) * 10);
  const r = energyReport({
    layers: [{ node: 'a', opType: 'Conv', where: 'spiking', macs: 3.6e9, sops: 'sops.layer0' }],
    sopsPerStep: [perStep],
    samples: 10,
    points: [
      { T: 16, metric: 0.5 },
      { T: 32, metric: 0.67 },
      { T: 64, metric: 0.71 },
    ],
    annMetric: 0.7331,
    constants: PRESETS.paper,
  });
  assert.equal(Math.round(r.ann.fpsPerW), 22);
  assert.equal(r.sops90?.T, 32);
  assert.ok(Math.abs((r.sops90?.sops ?? 0) - 20.86e9) < 1e3);
  assert.equal(Math.round(r.sops90?.fpsPerW ?? 0), 623); // 1 / (20.86e9 · 77e-15) = 622.6
  assert.equal(r.sops95?.T, 64);
  assert.equal(r.layers[0].density, (20.86e9 * 2) / (3.6e9 * 64));
  // An analog first layer adds its MACs once per frame, whatever T.
  const r2 = energyReport({
    layers: [
      { node: 'f', opType: 'Conv', where: 'input', macs: 1e6 },
      { node: 'a', opType: 'Conv', where: 'spiking', macs: 1e7, sops: 's' },
    ],
    sopsPerStep: [new Float64Array(4).fill(2e6)],
    samples: 2,
    points: [
      { T: 2, metric: null },
      { T: 4, metric: null },
    ],
    annMetric: null,
    constants: PRESETS['45nm'],
  });
  assert.deepEqual(
    r2.perT.map((p) => p.sops),
    [2e6, 4e6],
  );
  assert.ok(Math.abs(r2.perT[1].energy - (4e6 * 0.9e-12 + 1e6 * 4.6e-12)) < 1e-18);
  assert.equal(r2.sops90, null);
  assert.ok(Math.abs(r2.ann.energy - 1.1e7 * 4.6e-12) < 1e-18);
});

test('energy of a hand-worked network with every kind of layer: input (MACs once), spiking (SOPs), dense (MACs every step), tail (MACs once)', async () => {
  // Per sample: x [1, 2, 2] → Conv 1×1 (1→2) → ReLU → MatMul(A [2, 2], ·) → ReLU → Flatten → Gemm 8→3 (readout) → Gemm 3→2 (tail).
  // The MatMul's time-varying input is its second: it is not a synaptic layer fed by spikes, so it costs its MACs every step.
  const graph = buildGraph([1, 2, 2], (b, x) => {
    const c = b.op('Conv', [x, b.constant('W0', floatTensor([2, 1, 1, 1], [1, 0.5]))], { kernel_shape: [1, 1] });
    const r0 = b.op('Relu', [c], {}, 'site0');
    const mm = b.op('MatMul', [b.constant('A', floatTensor([2, 2], [1, 0.5, 0.25, 1])), r0], {}, 'mix');
    const r1 = b.op('Relu', [mm], {}, 'site1');
    const f = b.op('Flatten', [r1], { axis: 1 });
    const g1 = b.op(
      'Gemm',
      [f, b.constant('W1', floatTensor([3, 8], uniform(3, 24, -1, 1)))],
      { transB: 1 },
      'readout',
    );
    return b.op('Gemm', [g1, b.constant('W2', floatTensor([2, 3], uniform(4, 6, -1, 1)))], { transB: 1 }, 'tail');
  });
  const readoutNode = graph.nodes.find((n) => n.outputs[0].startsWith('readout'))?.name as string;
  const m = await prepareModel({ path: 'kinds.onnx', sha256: '', graph }, { threads: 1, readoutNode });
  const data = memDataset(Float32Array.of(0.6, 0.3, 0.9, 0.45, 0.2, 0.7, 0.35, 0.8), [1, 2, 2]);
  const cal = await calibrate(m, data, { method: 'maxnorm', iterations: 1, batchSize: 2, threads: 1 });
  const snn = buildSnn(m, cal.thresholds);
  // MACs per sample by hand: conv 2 outputs × 4 positions × 1 input channel; MatMul 2 × 2 × 2 outputs × 2 terms;
  // Gemm 3 outputs × 8 inputs; tail 2 × 3.
  assert.deepEqual(
    (snn.spec.layers ?? []).map((l) => [l.where, l.macs]),
    [
      ['input', 8],
      ['dense', 16],
      ['spiking', 24],
      ['tail', 6],
    ],
  );
  const T = 6;
  const stats = await simulateBatches(
    snn.graph,
    snn.spec,
    data,
    { steps: T, batchSize: 2, normalize: null, threads: 1, engine: 'steps' },
    () => {},
  );
  // The readout Gemm is fed by site 1's spikes: 3 synaptic operations per spike.
  const spikes1 = Array.from(stats.spikesPerStep[1]);
  assert.ok(spikes1.reduce((a, v) => a + v, 0) > 0, 'site 1 spikes');
  assert.deepEqual(
    Array.from(stats.sopsPerStep[0]),
    spikes1.map((s) => 3 * s),
  );
  const k = PRESETS['45nm'];
  const r = energyReport({
    layers: snn.spec.layers ?? [],
    sopsPerStep: stats.sopsPerStep,
    samples: 2,
    points: [2, 6].map((t) => ({ T: t, metric: null })),
    annMetric: null,
    constants: k,
  });
  assert.equal(r.ann.macs, 8 + 16 + 24 + 6);
  assert.ok(Math.abs(r.ann.energy - 54 * 4.6e-12) < 1e-24);
  for (const p of r.perT) {
    const sops = (3 * spikes1.slice(0, p.T).reduce((a, v) => a + v, 0)) / 2; // per frame
    assert.equal(p.sops, sops, `SOPs per frame at T=${p.T}`);
    assert.equal(p.macs, 8 + 6 + 16 * p.T, `MACs per frame at T=${p.T}: input and tail once, dense every step`);
    const energy = sops * 0.9e-12 + (8 + 6 + 16 * p.T) * 4.6e-12;
    assert.ok(Math.abs(p.energy - energy) <= 1e-12 * energy, `energy at T=${p.T}: ${p.energy} vs ${energy}`);
    assert.ok(Math.abs(p.fpsPerW - 1 / energy) <= 1e-12 / energy);
  }
  // Per layer: only the spiking one has SOPs, over all T steps; its density is SOPs ÷ (MACs · T).
  const sopsAll = (3 * spikes1.reduce((a, v) => a + v, 0)) / 2;
  assert.deepEqual(
    r.layers.map((l) => [l.sops, l.density]),
    [
      [null, null],
      [null, null],
      [sopsAll, sopsAll / (24 * T)],
      [null, null],
    ],
  );
});
