/**
 * How far SpiNNaker2's int8 network is from the same network with float weights, more finely
 * than top-1 can tell on a few hundred images: the readout averaged over T steps, mean |Δ| per
 * logit, and on how many images the two agree on the top class. Two int8 files: the θ/2 start
 * spread over more clock pairs where its weight would set a population's scale (what export
 * writes), and not spread (docs/nir.md).
 *
 *   npm run build && node dist/bench/nir-int8-readout.js --models fashion-vgg-avg --limit 500 --T 16,64
 */
import path from 'node:path';
import { convert } from '../src/api/convert.js';
import { PROFILES } from '../src/api/nir.js';
import { toNir, type NirGraph } from '../src/nir/graph.js';
import { deployFor } from '../src/nir/deploy.js';
import { nirStepGraph } from '../src/nir/onnx.js';
import type { Profile } from '../src/nir/profiles.js';
import { openDataset } from '../src/data/sources.js';
import { readBatch } from '../src/data/dataset.js';
import { numel } from '../src/graph/ir.js';
import { Session, type Array32 } from '../src/ort/session.js';
import { ROOT, arg } from './args.js';

const models = arg('models', 'fashion-vgg-avg').split(',');
const limit = Number(arg('limit', '500'));
const Ts = arg('T', '16,64').split(',').map(Number);
const data = (model: string): string => (model.startsWith('mnist') ? 'mnist' : 'fashion-mnist');

/** The readout averaged over the first T steps, for each T, per image and logit. */
async function readouts(
  graph: NirGraph,
  profile: Profile,
  test: ReturnType<typeof openDataset>,
  norm: Parameters<typeof readBatch>[2],
): Promise<Map<number, number[]>> {
  const step = nirStepGraph(graph, profile, 'bench');
  const s = await Session.create(step.graph, { threads: 2 });
  const out = new Map<number, number[]>(Ts.map((T) => [T, []]));
  const last = Math.max(...Ts);
  try {
    for (let b0 = 0; b0 < limit; b0 += 50) {
      const idx = Array.from({ length: Math.min(50, limit - b0) }, (_, i) => b0 + i);
      const batch = await readBatch(test, idx, norm);
      const n = idx.length;
      const feeds: Record<string, Array32> = {
        [step.spec.input]: { dims: [n, ...step.spec.inputShape], data: batch.x },
      };
      for (const st of step.spec.states)
        feeds[st.input] = { dims: [n, ...st.shape], data: new Float32Array(n * numel(st.shape)) };
      let acc: Float64Array | null = null;
      for (let t = 1; t <= last; t++) {
        const r = await s.run(feeds);
        for (const st of step.spec.states) feeds[st.input] = r[st.output];
        const y = r[step.spec.readout].data;
        acc = acc ? acc.map((v, i) => v + y[i]) : Float64Array.from(y);
        if (Ts.includes(t)) (out.get(t) as number[]).push(...Array.from(acc, (v) => v / t));
      }
    }
  } finally {
    await s.release();
  }
  return out;
}

for (const model of models) {
  const calib = openDataset(`${data(model)}:train`);
  const test = openDataset(`${data(model)}:test`, limit);
  const snn = await convert(path.join(ROOT, 'models', `${model}.onnx`), calib, { spikes: 'unit' });
  const none = snn.spec.sites.map(() => null);
  const g = toNir({ form: snn.form, graph: snn.graph, meta: snn.meta, tail: null }, 'spinnaker2', model, {
    bias: none,
    threshold: none,
    start: true,
  });
  const s2 = PROFILES.spinnaker2;
  // Float weights with the same graph the integers are made from (average pooling as a sum, its 1/k² folded).
  const float: Profile = { ...s2, quantisation: undefined, pool: 'SumPool2d' };
  const norm = snn.meta.normalize;
  const ref = await readouts(deployFor(g, float).graph, float, test, norm);
  const classes = snn.spec.readoutShape.reduce((a, c) => a * c, 1);
  for (const [name, graph] of [
    ['start spread (export)', deployFor(g, s2, { clocks: g.clocks }).graph],
    ['start not spread', deployFor(g, s2).graph],
  ] as const) {
    const r = await readouts(graph, s2, test, norm);
    const cells = Ts.map((T) => {
      const [a, f] = [r.get(T) as number[], ref.get(T) as number[]];
      let d = 0;
      for (let i = 0; i < a.length; i++) d += Math.abs(a[i] - f[i]);
      let agree = 0;
      const top = (v: number[], j: number): number => {
        let m = j;
        for (let k = j; k < j + classes; k++) if (v[k] > v[m]) m = k;
        return m - j;
      };
      for (let j = 0; j < a.length; j += classes) if (top(a, j) === top(f, j)) agree++;
      return `T=${T}: mean |Δ readout| ${(d / a.length).toFixed(4)}, top-1 as float on ${agree}/${a.length / classes}`;
    });
    process.stdout.write(`${model} | int8, ${name} | ${cells.join(' | ')}\n`);
  }
}
