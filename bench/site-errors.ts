/**
 * What the per-site error analysis costs next to the run it explains, in one process, the two
 * alternated so that the machine's load hits both alike:
 *
 *   node dist/bench/site-errors.js [--model fashion-vgg] [--data fashion-mnist:test] [--limit 200]
 *                                  [--T 256] [--samples 32,100] [--repeats 2]
 *
 * Prints per repeat the seconds of the simulation of `limit` samples (one ONNX Runtime thread,
 * steps engine) and of the analysis on each sample count, and their ratios per sample: how much
 * one sample of the analysis costs against one sample of the run. It also prints how far each
 * site's errors on fewer samples lie from those on the most.
 */
import path from 'node:path';
import { ROOT, arg } from './args.js';
import { convert } from '../src/api/convert.js';
import { simulate } from '../src/api/simulate.js';
import { siteErrors } from '../src/analysis/site-errors.js';
import { openMemoryDataset } from '../src/data/sources.js';
import type { SiteErrors } from '../src/analysis/site-errors.js';

const model = arg('model', 'fashion-vgg');
const spec = arg('data', 'fashion-mnist:test');
const limit = Number(arg('limit', '200'));
const T = Number(arg('T', '256'));
const counts = arg('samples', '32,100').split(',').map(Number);
const repeats = Number(arg('repeats', '2'));

const snn = await convert(path.join(ROOT, 'models', `${model}.onnx`), spec.replace(':test', ':train'), {
  iterations: 100,
  threads: 1,
});
const source = snn.source;
if (!source) throw new Error('no source ANN');
const data = openMemoryDataset(spec, limit);
const largest = Math.max(...counts);
const results = new Map<number, SiteErrors>();
for (let r = 0; r < repeats; r++) {
  const t0 = performance.now();
  await simulate(snn, data, { T: [T], threads: 1, engine: 'steps' });
  const sim = (performance.now() - t0) / 1000;
  const parts = [`repeat ${r + 1}: simulate ${limit} samples ${sim.toFixed(1)} s`];
  for (const n of counts) {
    const t1 = performance.now();
    const e = await siteErrors(source, snn.graph, snn.spec, snn.thresholds(), data, {
      T,
      delay: Math.min(snn.meta.delay.estimated, Math.floor(T / 2)),
      samples: n,
      threads: 1,
    });
    const s = (performance.now() - t1) / 1000;
    results.set(n, e);
    parts.push(
      `site errors on ${n}: ${s.toFixed(1)} s (${(s / sim).toFixed(2)} of the run, ${(s / n / (sim / limit)).toFixed(2)}× per sample)`,
    );
  }
  console.log(parts.join('; '));
}
const ref = results.get(largest) as SiteErrors;
for (const n of counts.filter((c) => c !== largest)) {
  const e = results.get(n) as SiteErrors;
  const diff = (k: 'clipError' | 'snnVsAnn' | 'snnVsClipped'): number =>
    Math.max(...e.sites.map((s, i) => Math.abs(s[k] - ref.sites[i][k])));
  console.log(
    `${n} against ${largest} samples, largest difference over ${e.sites.length} sites: clip error ${diff('clipError').toFixed(4)}, SNN vs ANN ${diff('snnVsAnn').toFixed(4)}, SNN vs clipped ANN ${diff('snnVsClipped').toFixed(4)}`,
  );
}
