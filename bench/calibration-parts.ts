/**
 * Where a whole CLTB calibration's time goes (issue 14): the same N training images through
 * (1) one ANN pass per batch (session creation and batch reading timed apart), (2) the LTB
 * graph's updates alone, (3) the d̂ estimate, and (4) `calibrate()` as the library runs it;
 * `calibrate() ÷ ANN` is the ratio bench/all.ts reports. Two rounds in one process.
 *
 *   node dist/bench/calibration-parts.js fashion-vgg [--images 10000] [--batch 100]
 */
import fs from 'node:fs';
import path from 'node:path';
import { loadModel } from '../src/model/load.js';
import { prepareModel, siteChannels } from '../src/model/prepare.js';
import { instrument, thetaFeeds } from '../src/calibrate/instrument.js';
import { calibrate, estimateDelay } from '../src/calibrate/calibrate.js';
import type { Thresholds } from '../src/calibrate/thresholds.js';
import { Session, defaultThreads } from '../src/ort/session.js';
import { prefetchBatches, readBatch, sequentialBatches } from '../src/data/dataset.js';
import { limitDataset, openDataset } from '../src/data/sources.js';
import { ROOT, argv, arg } from './args.js';

const name = argv[0] ?? 'fashion-vgg';
const images = Number(arg('images', '10000'));
const batch = Number(arg('batch', '100'));
const threads = Number(arg('threads', String(defaultThreads())));
const file = path.join(ROOT, 'models', `${name}.onnx`);
const manifest = JSON.parse(fs.readFileSync(file.replace(/\.onnx$/, '.json'), 'utf8')) as { dataset: string };
const m = await prepareModel(loadModel(file), { threads });
const train = limitDataset(openDataset(`${manifest.dataset}:train`), images);
const batches = sequentialBatches(train.size, batch);
const ms = (t0: number): number => performance.now() - t0;

process.stdout.write(
  `${name}: ${train.size} training images, batch ${batch}, ${threads} threads (ms)\n\n| round | ANN: create | ANN: batches (reading) | LTB: create | LTB: updates | d̂ | calibrate() | calibrate() ÷ ANN |\n|---|---|---|---|---|---|---|---|\n`,
);
for (let round = 1; round <= 2; round++) {
  let t0 = performance.now();
  const inst = instrument(m, { mode: 'ann', granularity: 'channel' });
  const ann = await Session.create(inst.graph, { threads });
  const annCreate = ms(t0);
  t0 = performance.now();
  let reading = 0;
  for (const idx of batches) {
    const r0 = performance.now();
    const b = await readBatch(train, idx, m.normalize);
    reading += ms(r0);
    await ann.run({ [m.inputName]: { dims: [b.n, ...m.inputShape], data: b.x } }, [inst.readout]);
  }
  const annRun = ms(t0);
  await ann.release();

  t0 = performance.now();
  const ltb = instrument(m, { mode: 'ltb', granularity: 'channel', stepSize: 1 });
  const ls = await Session.create(ltb.graph, { threads });
  const ltbCreate = ms(t0);
  let th: Thresholds = { granularity: 'channel', values: siteChannels(m).map((c) => new Float32Array(c)) };
  t0 = performance.now();
  for await (const b of prefetchBatches(train, batches.length, (i) => batches[i], m.normalize)) {
    const out = await ls.run(
      { [m.inputName]: { dims: [b.n, ...m.inputShape], data: b.x }, ...thetaFeeds(ltb, th) },
      ltb.thetaOutputs,
    );
    th = { granularity: 'channel', values: ltb.thetaOutputs.map((o) => Float32Array.from(out[o].data)) };
  }
  const ltbRun = ms(t0);
  await ls.release();
  t0 = performance.now();
  await estimateDelay(m, train, batches[0], th, { threads });
  const delay = ms(t0);

  t0 = performance.now();
  await calibrate(m, train, { iterations: batches.length, batchSize: batch, shuffle: false, threads });
  const whole = ms(t0);
  const f = (v: number): string => v.toFixed(0);
  process.stdout.write(
    `| ${round} | ${f(annCreate)} | ${f(annRun)} (${f(reading)}) | ${f(ltbCreate)} | ${f(ltbRun)} | ${f(delay)} | ${f(whole)} | ${(whole / (annCreate + annRun)).toFixed(2)} |\n`,
  );
}
