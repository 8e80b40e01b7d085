/**
 * A whole run at the user's cost: the CLI as a user runs it, one child process per command, wall
 * clock and CPU time (user + sys of the child, from /proc) of the whole command, against ONNX
 * Runtime running the ANN over the same images in this process. The targets (docs/benchmarks.md):
 *
 *   - defaults ÷ the best of `--workers 1|2` × `--engine steps|fused` (wall), fashion-vgg (1000
 *     test images × T = 32, batch 100) and mobilenet_v2 at 224 (64 images × T = 8, batch 16);
 *   - the fixed setup of a `simulate` at 224 (defaults): t(T = 8) − 8 · (t(T = 32) − t(T = 8)) / 24;
 *   - a short run at 224 (64 images × T = 8, defaults) per image-step ÷ the ANN per image;
 *   - `convert` (defaults: 100 iterations × 100 training images) ÷ the ANN's inference over
 *     10 000 training images (session created, batches read and normalised, data already in memory,
 *     best of two in this warm process: the target's baseline, which pays none of a process's
 *     start, loading or reading); and ÷ the same inference as a whole process of its own
 *     (bench/ann-process.ts: start, load, read, infer), the like-for-like comparison.
 *
 *   npm run build && node dist/bench/whole-run.js [--rounds 1] [--parts vgg,224,setup,convert]
 *     [--convert-models fashion-vgg,mnist-cnn,fashion-resnet,fashion-mobilenet] [--model-224 FILE]
 *     [--setup-flags "--workers 1 --engine steps"]
 *
 * Every file it makes lives in a temporary folder, removed at the end; commands run with
 * `--site-errors 0` and the ANN next to the SNN (so the ANN references run, as for a user who
 * keeps them together). mobilenet_v2 at
 * 224 (random weights) comes from `out/torchvision/` when it is there, else from
 * tools/export_torchvision.py with Debian's PyTorch (/usr/bin/python3); without it the 224 part
 * is skipped. Runs of one part alternate within a round, so that other jobs' load falls on all
 * of them alike; read the ratios, and the CPU times, which load disturbs less.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadModel } from '../src/model/load.js';
import { prepareModel } from '../src/model/prepare.js';
import { instrument } from '../src/calibrate/instrument.js';
import { Session, defaultThreads } from '../src/ort/session.js';
import { openDataset, limitDataset } from '../src/data/sources.js';
import { readBatch, sequentialBatches, memoryDataset, type Dataset } from '../src/data/dataset.js';
import { encodeDatasetNpz } from '../src/data/npz.js';
import { ROOT, arg } from './args.js';

const CLI = path.join(ROOT, 'dist', 'src', 'cli', 'main.js');
const ANN_PROCESS = path.join(ROOT, 'dist', 'bench', 'ann-process.js');
const rounds = Number(arg('rounds', '1'));
const parts = arg('parts', 'vgg,224,setup,convert').split(',');
const convertModels = arg('convert-models', 'fashion-vgg,mnist-cnn,fashion-resnet,fashion-mobilenet').split(',');
const threads = defaultThreads();
/** Flags for the setup runs at 224 (default none: the defaults), e.g. `--setup-flags "--workers 1 --engine steps"`. */
const setupFlags = arg('setup-flags', '').split(' ').filter(Boolean);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'spikeport-bench-whole-'));
const log = (s: string): void => {
  process.stderr.write(`${s}\n`);
};
const out = (s: string): void => {
  process.stdout.write(`${s}\n`);
};

/** CPU seconds (user + sys) of this process's waited-for children so far: /proc/self/stat's cutime + cstime. */
function childCpu(): number {
  try {
    const stat = fs.readFileSync('/proc/self/stat', 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[13]) + Number(fields[14])) / 100; // clock ticks (USER_HZ = 100 on Linux)
  } catch {
    return Number.NaN;
  }
}

interface Timed {
  readonly wall: number;
  readonly cpu: number;
  readonly record?: Record<string, unknown>;
}

/** One spikeport command in a child process; its record when it wrote --json. */
function spikeport(args: string[], env: Record<string, string> = {}): Timed {
  return child(CLI, args, env);
}

/** A node script in a child process, timed; its record when it wrote --json. */
function child(script: string, args: string[], env: Record<string, string> = {}): Timed {
  const json = path.join(tmp, 'record.json');
  fs.rmSync(json, { force: true });
  const c0 = childCpu();
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [script, ...args], {
    encoding: 'utf8',
    cwd: tmp,
    env: { ...process.env, ...env },
    maxBuffer: 1 << 26,
  });
  const wall = (performance.now() - t0) / 1000;
  const cpu = childCpu() - c0;
  if (r.status !== 0) throw new Error(`${path.basename(script)} ${args.join(' ')}:\n${r.stderr}`);
  const record = args.includes('--json')
    ? (JSON.parse(fs.readFileSync(args[args.indexOf('--json') + 1], 'utf8')) as Record<string, unknown>)
    : undefined;
  return { wall, cpu, record };
}

/** The ANN's inference over a data set already in memory: session created, every batch read, normalised and run. */
async function annSeconds(file: string, data: Dataset, batch: number): Promise<number> {
  const m = await prepareModel(loadModel(file), { threads });
  const inst = instrument(m, { mode: 'ann', granularity: 'channel' });
  let best = Infinity;
  for (let r = 0; r < 2; r++) {
    const t0 = performance.now();
    const s = await Session.create(inst.graph, { threads });
    for (const idx of sequentialBatches(data.size, batch)) {
      const b = await readBatch(data, idx, m.normalize);
      await s.run({ [m.inputName]: { dims: [b.n, ...m.inputShape], data: b.x } }, [inst.readout]);
    }
    await s.release();
    best = Math.min(best, (performance.now() - t0) / 1000);
  }
  return best;
}

const f2 = (v: number): string => (Number.isFinite(v) ? v.toFixed(2) : '–');
const median = (v: readonly number[]): number => {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const CONFIGS: readonly { readonly name: string; readonly args: readonly string[] }[] = [
  { name: 'defaults', args: [] },
  { name: 'workers 1, steps', args: ['--workers', '1', '--engine', 'steps'] },
  { name: 'workers 1, fused', args: ['--workers', '1', '--engine', 'fused'] },
  { name: 'workers 2, steps', args: ['--workers', '2', '--engine', 'steps'] },
  { name: 'workers 2, fused', args: ['--workers', '2', '--engine', 'fused'] },
];

/** The five configurations in one round each (alternating), as a table; returns defaults ÷ best per round. */
function configRounds(title: string, args: (extra: readonly string[]) => string[]): void {
  out(`\n### ${title}\n`);
  out(
    '| round | ' +
      CONFIGS.map((c) => `${c.name}: wall s (CPU s)`).join(' | ') +
      ' | defaults ÷ best (wall) | defaults ÷ best (CPU) |',
  );
  out('|---|' + CONFIGS.map(() => '---|').join('') + '---|---|');
  const ratios: number[] = [];
  const cpuRatios: number[] = [];
  for (let r = 1; r <= rounds; r++) {
    const times = CONFIGS.map((c) => {
      log(`${title}: round ${r}, ${c.name}`);
      return spikeport(args(c.args));
    });
    const best = Math.min(...times.slice(1).map((t) => t.wall));
    const bestCpu = Math.min(...times.slice(1).map((t) => t.cpu));
    ratios.push(times[0].wall / best);
    cpuRatios.push(times[0].cpu / bestCpu);
    out(
      `| ${r} | ${times.map((t) => `${f2(t.wall)} (${f2(t.cpu)})`).join(' | ')} | ${f2(times[0].wall / best)} | ${f2(times[0].cpu / bestCpu)} |`,
    );
  }
  // On a machine shared with other jobs the wall clock of one configuration varies by ±20 % and
  // more between runs; CPU time (what each run was given) varies less.
  out(
    `\ndefaults ÷ best, median of ${rounds}: **${f2(median(ratios))}** wall (target ≤ 1.05), **${f2(median(cpuRatios))}** CPU`,
  );
}

out(
  `# Whole runs (${new Date().toISOString()}, ${threads} threads, load average ${os
    .loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')})`,
);
try {
  if (parts.includes('vgg')) {
    const ann = path.join(tmp, 'fashion-vgg.onnx');
    fs.copyFileSync(path.join(ROOT, 'models', 'fashion-vgg.onnx'), ann);
    const snn = path.join(tmp, 'fashion-vgg.snn.onnx');
    log('fashion-vgg: convert');
    spikeport(['convert', ann, '--data', 'fashion-mnist:train', '--out', snn, '-q']);
    configRounds('fashion-vgg, 1000 test images × T = 32, batch 100', (extra) => [
      'simulate',
      snn,
      '--data',
      'fashion-mnist:test',
      '--limit',
      '1000',
      '--T',
      '32',
      '--batch',
      '100',
      '--site-errors',
      '0',
      '-q',
      ...extra,
    ]);
  }

  if (parts.includes('224') || parts.includes('setup')) {
    let model = arg('model-224', path.join(ROOT, 'out', 'torchvision', 'mobilenet_v2-224.onnx'));
    if (!fs.existsSync(model)) {
      log('mobilenet_v2 at 224: exporting with /usr/bin/python3 tools/export_torchvision.py');
      const r = spawnSync(
        '/usr/bin/python3',
        [path.join(ROOT, 'tools', 'export_torchvision.py'), path.join(tmp, 'tv'), 'mobilenet_v2-224'],
        { encoding: 'utf8' },
      );
      model = path.join(tmp, 'tv', 'mobilenet_v2-224.onnx');
      if (r.status !== 0 || !fs.existsSync(model)) model = '';
    }
    if (!model) {
      out('\n(mobilenet_v2 at 224 skipped: no out/torchvision/mobilenet_v2-224.onnx and no PyTorch to export it)');
    } else {
      const ann = path.join(tmp, 'mobilenet_v2-224.onnx');
      fs.copyFileSync(model, ann);
      // 64 seeded random images (uint8, as a photo's pixels) with labels: the cost does not depend on what they show.
      let seed = 12345;
      const x = new Uint8Array(64 * 3 * 224 * 224).map(() => {
        seed = (seed * 1103515245 + 12345) >>> 0;
        return seed >>> 24;
      });
      const images = memoryDataset({
        name: 'random images at 224',
        size: 64,
        x,
        sampleShape: [3, 224, 224],
        labels: Int32Array.from({ length: 64 }, (_, i) => (i * 37) % 1000),
        scale: 1 / 255,
      });
      const npz = path.join(tmp, 'images224.npz');
      fs.writeFileSync(npz, encodeDatasetNpz(images));
      const snn = path.join(tmp, 'mobilenet_v2-224.snn.onnx');
      log('mobilenet_v2 at 224: convert (4 iterations × 16)');
      spikeport(['convert', ann, '--data', `npz:${npz}`, '--iterations', '4', '--batch', '16', '--out', snn, '-q']);
      const sim = (T: number, extra: readonly string[]): string[] => [
        'simulate',
        snn,
        '--data',
        `npz:${npz}`,
        '--T',
        String(T),
        '--batch',
        '16',
        '--site-errors',
        '0',
        '-q',
        ...extra,
      ];
      if (parts.includes('224'))
        configRounds('mobilenet_v2 at 224, 64 images × T = 8, batch 16', (extra) => sim(8, extra));
      if (parts.includes('setup')) {
        const annPerImage = (await annSeconds(ann, images, 16)) / images.size;
        out(`\nANN at 224 alone: ${(1000 * annPerImage).toFixed(2)} ms per image (batch 16, ${threads} threads)\n`);
        out(
          '| round | T = 8: wall s (CPU s) | T = 32: wall s (CPU s) | fixed setup s: wall (CPU) | ms per image-step, marginal | short run ÷ ANN per image-step |',
        );
        out('|---|---|---|---|---|---|');
        const shortRatios: number[] = [];
        const setups: number[] = [];
        for (let r = 1; r <= rounds; r++) {
          log(`mobilenet_v2 at 224: setup, round ${r}`);
          const t8 = spikeport(sim(8, setupFlags));
          const t32 = spikeport(sim(32, setupFlags));
          const slope = (t32.wall - t8.wall) / 24;
          const slopeCpu = (t32.cpu - t8.cpu) / 24;
          const setup = t8.wall - 8 * slope;
          setups.push(setup);
          const short = t8.wall / (64 * 8) / annPerImage;
          shortRatios.push(short);
          out(
            `| ${r} | ${f2(t8.wall)} (${f2(t8.cpu)}) | ${f2(t32.wall)} (${f2(t32.cpu)}) | ${f2(setup)} (${f2(t8.cpu - 8 * slopeCpu)}) | ${((1000 * slope) / 64).toFixed(1)} | ${f2(short)} |`,
          );
        }
        out(
          `\nfixed setup at 224 (${setupFlags.length ? setupFlags.join(' ') : 'defaults'}), median: **${f2(median(setups))} s** (target ≤ 3 s); short run ÷ ANN per image-step: **${f2(median(shortRatios))}** (target ≤ 5)`,
        );
      }
    }
  }

  if (parts.includes('convert')) {
    out('\n### convert, whole process ÷ ANN inference over the same number of images\n');
    out(
      '| model | round | convert: wall s (CPU s) | its calibration s (record) | ANN over 10 000 images s | convert ÷ ANN (wall) | ANN as a whole process: wall s (CPU s) | convert ÷ ANN process (wall) |',
    );
    out('|---|---|---|---|---|---|---|---|');
    const ratios: number[] = [];
    const processRatios: number[] = [];
    for (const name of convertModels) {
      const file = path.join(ROOT, 'models', `${name}.onnx`);
      const manifest = JSON.parse(fs.readFileSync(file.replace(/\.onnx$/, '.json'), 'utf8')) as { dataset: string };
      const train = limitDataset(openDataset(`${manifest.dataset}:train`), 10000);
      for (let r = 1; r <= rounds; r++) {
        log(`convert ${name}: round ${r}`);
        const summary = path.join(tmp, 'convert.json');
        const c = spikeport([
          'convert',
          file,
          '--data',
          `${manifest.dataset}:train`,
          '--out',
          path.join(tmp, 'c.snn.onnx'),
          '--json',
          summary,
          '-q',
        ]);
        const ann = await annSeconds(file, train, 100);
        ratios.push(c.wall / ann);
        const p = child(ANN_PROCESS, [file, `${manifest.dataset}:train`, '--images', '10000', '--batch', '100']);
        processRatios.push(c.wall / p.wall);
        out(
          `| ${name} | ${r} | ${f2(c.wall)} (${f2(c.cpu)}) | ${f2(Number(c.record?.seconds))} | ${f2(ann)} | ${f2(c.wall / ann)} | ${f2(p.wall)} (${f2(p.cpu)}) | ${f2(c.wall / p.wall)} |`,
        );
      }
    }
    out(`\nconvert ÷ ANN, median: **${f2(median(ratios))}** (target ≤ 1.5)`);
    out(
      `convert ÷ the ANN as a whole process (start, load, read the data, infer), median: **${f2(median(processRatios))}**`,
    );
  }
} finally {
  fs.rmSync(tmp, { recursive: true, force: true });
}
