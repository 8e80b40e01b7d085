/**
 * What each NIR target scores against spikeport, before and after conversion for the target,
 * and what integer weights cost: one conversion per model (and one for a target that resets to
 * 0), one simulation per network, every T read from that run (docs/nir.md has the tables).
 *
 *   npm run build && node dist/bench/nir-targets.js --models fashion-vgg-avg,fashion-vgg --limit 2000 --T 8,16,32,64
 */
import path from 'node:path';
import { convert } from '../src/api/convert.js';
import { simulate } from '../src/api/simulate.js';
import { targetNetwork } from '../src/api/nir.js';
import { openDataset } from '../src/data/sources.js';
import type { Snn } from '../src/snn/network.js';
import { ROOT, arg } from './args.js';

const models = arg('models', 'fashion-vgg-avg').split(',');
const limit = Number(arg('limit', '2000'));
const Ts = arg('T', '8,16,32,64').split(',').map(Number);
const zeroT = Number(arg('zero-T', '64'));
const which = arg('rows', 'sinabs,spinnaker2,norse,int8').split(',');
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
  const none = plain.spec.sites.map(() => null);
  const start = { bias: none, threshold: none, start: true };
  for (const target of ['sinabs', 'spinnaker2'] as const) {
    if (!which.includes(target)) continue;
    const before = await run(targetNetwork(plain, target, { corrections: null }).snn);
    const after = targetNetwork(plain, target, { corrections: start });
    const a = await run(after.snn);
    row([model, target, 'as converted', ...before.map(pct)]);
    row([model, target, `--target ${target}`, ...a.map((v, i) => `${pct(v)} (${(100 * (v - own[i])).toFixed(2)})`)]);
  }
  if (which.includes('int8')) {
    for (const [target, bits] of [
      ['sinabs', 8],
      ['speck', undefined],
      ['spinnaker2', 0],
      ['loihi2', 0],
      ['loihi2', undefined],
    ] as const) {
      const net = targetNetwork(plain, target, { corrections: start, weightBits: bits });
      const r = await run(net.snn);
      row([
        model,
        target,
        bits === undefined ? 'its integers' : bits === 0 ? 'float weights' : `${bits}-bit weights`,
        ...r.map(pct),
      ]);
    }
  }
  if (which.includes('norse')) {
    const before = await run(targetNetwork(plain, 'norse', { corrections: null }).snn);
    row([model, 'norse', 'as converted', ...before.map(pct)]);
    const tuned = await convert(file, calib, { target: 'norse', targetT: zeroT });
    const a = await run(targetNetwork(tuned, 'norse').snn);
    row([
      model,
      'norse',
      `--target norse --target-T ${zeroT}`,
      ...a.map((v, i) => `${pct(v)} (${(100 * (v - own[i])).toFixed(2)})`),
    ]);
  }
  process.stdout.write(`(${model}: ${((performance.now() - t0) / 1000).toFixed(0)} s)\n`);
}
process.stdout.write(
  `\n| model | target | network | ${Ts.map((T) => `T=${T}`).join(' | ')} |\n|---|---|---|${Ts.map(() => '---:').join('|')}|\n${rows.join('\n')}\n`,
);
