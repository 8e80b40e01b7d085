/**
 * Builds the browser demo (`npm run web`): a static folder with the page, a converted MNIST
 * network (step form, with each site's spikes as extra outputs for the rasters), its source
 * ANN, a few test digits, and onnxruntime-web's wasm files (served from the folder: no CDN).
 *
 *   npm run web                 # builds web/dist
 *   npm run web -- --serve      # and serves it on http://127.0.0.1:8080
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { convert } from '../src/api/convert.js';
import { openDataset } from '../src/data/sources.js';
import { readBatch } from '../src/data/dataset.js';
import { encodeModel } from '../src/onnx/codec.js';
import { numel } from '../src/graph/ir.js';

const here = path.dirname(fileURLToPath(import.meta.url));
/** The repository root (this file runs from dist/web/). */
export const ROOT = path.resolve(here, fs.existsSync(path.join(here, 'index.html')) ? '..' : '../..');
const ORT_FILES = ['ort.wasm.min.mjs', 'ort-wasm-simd-threaded.mjs', 'ort-wasm-simd-threaded.wasm'];

export interface WebBuild {
  readonly dir: string;
  /** The step graph the page runs (ONNX bytes), and what the page reads from demo.json. */
  readonly snn: Uint8Array;
  readonly meta: DemoMeta;
}

export interface DemoMeta {
  readonly input: string;
  readonly inputShape: readonly number[];
  readonly readout: string;
  readonly states: readonly { input: string; output: string; shape: readonly number[] }[];
  readonly sites: readonly { node: string; output: string; shape: readonly number[] }[];
  readonly normalize: { mean: readonly number[]; std: readonly number[] } | null;
  readonly delay: number;
  readonly annInput: string;
  readonly annOutput: string;
  /** A few MNIST test digits (pixels in [0, 1], 28×28) with their labels. */
  readonly digits: readonly { label: number; pixels: number[] }[];
}

export async function buildWeb(dir: string, opts: { calibLimit?: number; threads?: number } = {}): Promise<WebBuild> {
  const model = path.join(ROOT, 'models/mnist-cnn.onnx');
  const snn = await convert(model, openDataset('mnist:train', opts.calibLimit ?? 2000), { threads: opts.threads });
  const source = snn.source;
  if (!source) throw new Error('convert keeps the source ANN');
  const g = snn.toGraph('step');
  const sites = source.plan.sites.map((s, k) => ({
    node: s.node,
    output: s.output,
    shape: snn.spec.states.find((st) => st.input === `state.site${k}`)?.shape ?? [],
  }));
  const withSpikes = {
    ...g,
    outputs: [...g.outputs, ...sites.map((s) => ({ name: s.output, dtype: 'float32' as const, shape: null }))],
  };
  const bytes = encodeModel(withSpikes);
  const test = openDataset('mnist:test', 10);
  const batch = await readBatch(
    test,
    Array.from({ length: 10 }, (_, i) => i),
    null,
  );
  const per = numel(test.sampleShape);
  const digits = Array.from({ length: 10 }, (_, i) => ({
    label: (test.labels as Int32Array)[i],
    pixels: Array.from(batch.x.subarray(i * per, (i + 1) * per), (v) => Math.round(v * 1000) / 1000),
  }));
  const ann = source.graph;
  const meta: DemoMeta = {
    input: snn.spec.input,
    inputShape: snn.spec.inputShape,
    readout: snn.spec.readout,
    states: snn.spec.states,
    sites,
    normalize: snn.meta.normalize,
    delay: snn.meta.delay.estimated,
    annInput: source.inputName,
    annOutput: ann.outputs[0].name,
    digits,
  };
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'snn.onnx'), bytes);
  fs.copyFileSync(model, path.join(dir, 'ann.onnx'));
  fs.writeFileSync(path.join(dir, 'demo.json'), JSON.stringify(meta));
  fs.copyFileSync(path.join(ROOT, 'web/index.html'), path.join(dir, 'index.html'));
  const ortDir = path.join(path.dirname(createRequire(import.meta.url).resolve('onnxruntime-web')), '');
  for (const f of ORT_FILES) {
    const src = [path.join(ortDir, f), path.join(ortDir, '..', f)].find((p) => fs.existsSync(p));
    if (!src) throw new Error(`onnxruntime-web: ${f} not found (npm ci installs it)`);
    fs.copyFileSync(src, path.join(dir, f));
  }
  return { dir, snn: bytes, meta };
}

const TYPES: Record<string, string> = {
  '.html': 'text/html',
  '.mjs': 'text/javascript',
  '.js': 'text/javascript',
  '.wasm': 'application/wasm',
  '.json': 'application/json',
  '.onnx': 'application/octet-stream',
};

/** A static server for the folder (files directly in it only), on 127.0.0.1. */
export function serve(dir: string, port = 0): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const name = decodeURIComponent((req.url ?? '/').split('?')[0]).replace(/^\/+/, '') || 'index.html';
    const file = path.join(dir, path.basename(name));
    if (name.includes('/') || !fs.existsSync(file)) {
      res.writeHead(404).end();
      return;
    }
    res
      .writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream' })
      .end(fs.readFileSync(file));
  });
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve(server)));
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const dir = path.join(ROOT, 'web/dist');
  const b = await buildWeb(dir);
  process.stdout.write(
    `built ${path.relative(process.cwd(), b.dir) || '.'}: mnist-cnn converted (${b.meta.sites.length} sites, d̂ = ${b.meta.delay}), onnxruntime-web served locally\n`,
  );
  if (process.argv.includes('--serve')) {
    const s = await serve(dir, 8080);
    const a = s.address();
    process.stdout.write(`open http://127.0.0.1:${typeof a === 'object' && a ? a.port : 8080}/ (Ctrl-C stops)\n`);
  }
}
