/**
 * What each NIR target scores against spikeport, before and after conversion for the target,
 * and what integer weights cost: one conversion per model (and one per target that resets to
 * 0), one simulation per network, every T read from that run (docs/nir.md has the tables).
 * Rows (--rows): sinabs, speck, spinnaker2, norse, loihi2, int8 (sinabs with 8-bit weights: one scale per
 * channel, per node, float), sinabs-parts (sinabs without its membrane floor, with one spike per step).
 *
 *   npm run build && node dist/bench/nir-targets.js --models fashion-vgg-avg,fashion-vgg --limit 2000 --T 8,16,32,64
 */
import path from 'node:path';
import { convert } from '../src/api/convert.js';
import { simulate } from '../src/api/simulate.js';
import {
  PROFILES,
  profileWith,
  targetNetwork,
  type NirGraph,
  type Profile,
  type TargetCorrections,
} from '../src/api/nir.js';
import type { Quantisation } from '../src/nir/profiles.js';
import { deployFor } from '../src/nir/deploy.js';
import { nirStepGraph } from '../src/nir/onnx.js';
import { Snn as SnnClass } from '../src/snn/network.js';
import { openDataset } from '../src/data/sources.js';
import type { Snn } from '../src/snn/network.js';
import { ROOT, arg } from './args.js';

const models = arg('models', 'fashion-vgg-avg').split(',');
const limit = Number(arg('limit', '2000'));
const Ts = arg('T', '8,16,32,64').split(',').map(Number);
const zeroT = Number(arg('zero-T', '64'));
const which = arg('rows', 'sinabs,speck,spinnaker2,norse,int8').split(',');
const data = (model: string): string => (model.startsWith('mnist') ? 'mnist' : 'fashion-mnist');

const pct = (v: number): string => (100 * v).toFixed(2);
const rows: string[] = [];
const row = (cells: (string | number)[]): void => {
  const line = `| ${cells.join(' | ')} |`;
  rows.push(line);
  process.stdout.write(`${line}\n`);
};

for (const model of models) {
  const file = path.join(ROOT, 'models', `${model}.onnx`);
  const calib = openDataset(`${data(model)}:train`);
  const test = openDataset(`${data(model)}:test`, limit);
  const t0 = performance.now();
  const plain = await convert(file, calib, { spikes: 'unit' });
  const run = async (snn: Snn): Promise<number[]> =>
    (await simulate(snn, test, { T: Ts, siteErrors: 0 })).results.map((r) => r.metric);
  const own = await run(plain);
  row([model, 'spikeport', '', ...own.map(pct)]);
  const vs = (r: number[]): string[] => r.map((v, i) => `${pct(v)} (${(100 * (v - own[i])).toFixed(2)})`);
  const none = plain.spec.sites.map(() => null);
  // What convert --target gives a subtracting target: the θ/2 start, nothing tuned (refine/target.ts).
  const start = { bias: none, threshold: none, start: true };
  for (const target of ['sinabs', 'speck', 'spinnaker2'] as const) {
    if (!which.includes(target)) continue;
    if (target !== 'speck')
      row([
        model,
        target,
        'as converted',
        ...(await run(targetNetwork(plain, target, { corrections: null }).snn)).map(pct),
      ]);
    const after = await run(targetNetwork(plain, target, { corrections: start }).snn);
    row([model, target, `--target ${target}${target === 'sinabs' ? '' : ' (its integers)'}`, ...vs(after)]);
    if (target === 'sinabs') continue;
    const float = await run(targetNetwork(plain, target, { corrections: start, weightBits: 0 }).snn);
    row([model, target, 'float weights', ...vs(float)]);
    if (target === 'spinnaker2') {
      // The float file's weights cast to int8 by the importer itself (what spikeport wrote before it rounded them).
      const r = await run(importerCast(plain, start));
      row([model, target, 'int8 cast toward zero by the importer', ...vs(r)]);
    }
    row([model, target, 'integers − float weights', ...after.map((v, i) => (100 * (v - float[i])).toFixed(2))]);
  }
  if (which.includes('sinabs-parts')) {
    // Which of sinabs' two differences from spikeport's neuron (with the clock) costs what: its
    // membrane floor at −θ, its several spikes per step at v ≥ θ (one spike at v > θ instead).
    const exported = targetNetwork(plain, 'sinabs', { corrections: start }).nir;
    if (!exported) throw new Error('no NIR form');
    const parts: [string, Profile][] = [
      ['sinabs without its floor', { ...PROFILES.sinabs, floor: undefined }],
      ['sinabs with one spike per step (v > θ)', { ...PROFILES.sinabs, spikes: 'single' }],
      ['sinabs with neither', { ...PROFILES.sinabs, spikes: 'single', floor: undefined }],
    ];
    for (const [what, p] of parts) row([model, 'sinabs', what, ...vs(await run(stepSnn(plain, exported, p)))]);
  }
  if (which.includes('int8')) {
    const r = await run(targetNetwork(plain, 'sinabs', { corrections: start, weightBits: 8 }).snn);
    row([model, 'sinabs', '--weight-bits 8 (one scale per output channel)', ...vs(r)]);
    const float = await run(targetNetwork(plain, 'sinabs', { corrections: start }).snn);
    row([model, 'sinabs', 'float weights', ...vs(float)]);
    row([model, 'sinabs', 'integers − float weights', ...r.map((v, i) => (100 * (v - float[i])).toFixed(2))]);
    // One scale per neuron node, as --weight-bits gave sinabs before.
    const p8 = profileWith('sinabs', 8);
    const perNode = { ...p8, quantisation: { ...(p8.quantisation as Quantisation), per: 'node' as const } };
    const exported = targetNetwork(plain, 'sinabs', { corrections: start, weightBits: 0 }).nir;
    if (!exported) throw new Error('no NIR form');
    const node = await run(stepSnn(plain, deployFor(exported, perNode).graph, perNode));
    row([model, 'sinabs', '--weight-bits 8, one scale per node', ...vs(node)]);
  }
  for (const target of ['norse', 'loihi2'] as const) {
    if (!which.includes(target)) continue;
    if (target === 'norse')
      row([
        model,
        target,
        'as converted',
        ...(await run(targetNetwork(plain, target, { corrections: null }).snn)).map(pct),
      ]);
    const tuned = await convert(file, calib, { target, targetT: zeroT });
    const after = await run(targetNetwork(tuned, target).snn);
    row([
      model,
      target,
      `--target ${target} --target-T ${zeroT}${target === 'loihi2' ? ' (its integers)' : ''}`,
      ...vs(after),
    ]);
    if (target === 'loihi2') {
      const float = await run(targetNetwork(tuned, target, { weightBits: 0 }).snn);
      row([model, target, 'float weights', ...vs(float)]);
      row([model, target, 'integers − float weights', ...after.map((v, i) => (100 * (v - float[i])).toFixed(2))]);
    }
  }
  process.stdout.write(`(${model}: ${((performance.now() - t0) / 1000).toFixed(0)} s)\n`);
}
process.stdout.write(
  `\n| model | target | network | ${Ts.map((T) => `T=${T}`).join(' | ')} |\n|---|---|---|${Ts.map(() => '---:').join('|')}|\n${rows.join('\n')}\n`,
);

/** SpiNNaker2 given float weights: its importer scales each population to ±127 and casts toward zero. */
function importerCast(snn: Snn, corrections: TargetCorrections): Snn {
  const float = targetNetwork(snn, 'spinnaker2', { corrections, weightBits: 0 }).nir;
  if (!float) throw new Error('no NIR form');
  const profile = PROFILES.spinnaker2;
  return stepSnn(snn, deployFor(float, profile, { byImporter: true }).graph, profile);
}

/** A deployed NIR graph as a network to simulate with `profile`'s neuron. */
function stepSnn(snn: Snn, graph: NirGraph, profile: Profile): Snn {
  const step = nirStepGraph(graph, profile, snn.meta.source.file);
  const { unit: _u, target: _t, ...rest } = snn.meta;
  return new SnnClass({
    form: 'step',
    graph: step.graph,
    meta: { ...rest, spec: step.spec, delay: { ...snn.meta.delay, latencies: step.spec.sites.map(() => 0) } },
    tail: snn.tail,
  });
}
