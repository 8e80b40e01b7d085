/**
 * A user's own setup: numbers that would be wrong without a word (class folders in another
 * order, a missing class, no normalisation, the source ANN elsewhere, thresholds that clip) are
 * refused or come with one line that says so; and the first steps of a new user work.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { convert } from '../src/api/convert.js';
import { simulate } from '../src/api/simulate.js';
import { loadSnn } from '../src/snn/network.js';
import { openDataset, openMemoryDataset } from '../src/data/sources.js';
import { memoryDataset, type MemoryDataset } from '../src/data/dataset.js';
import { writeLayout } from '../src/data/layouts.js';
import { decodeModel, encodeModel } from '../src/onnx/codec.js';
import { KEYS } from '../src/snn/format.js';
import { classOrderNotice, makeScorer, mergeStates, stateProblem, type ScorerState } from '../src/tasks/task.js';
import type { Dataset } from '../src/data/dataset.js';
import { clippingNotice } from '../src/api/merge.js';
import type { SimulateRecord } from '../src/report/record.js';
import { barChart, renderSvg } from '../src/report/charts.js';
import type { Progress } from '../src/progress.js';
import { tempDir } from './temp.js';

const ROOT = process.cwd();
const CLI = path.join(ROOT, 'dist', 'src', 'cli', 'main.js');
const MNIST = path.join(ROOT, 'models', 'mnist-cnn.onnx');
const tmp = tempDir('spikeport-setup-');
const WORDS = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine'];
const N = 300;

function cli(args: readonly string[], cwd = tmp) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', cwd });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The first N MNIST test digits as class folders named by word (sorted: eight, five, four, …), lossless PNG. */
async function wordFolders(name: string, drop: readonly string[] = []): Promise<string> {
  const dir = path.join(tmp, name);
  const digits = path.join(tmp, `${name}-digits`);
  await writeLayout(openMemoryDataset('mnist:test', N), 'imagefolder', digits);
  fs.mkdirSync(dir);
  WORDS.forEach((w, d) => {
    if (!drop.includes(w)) fs.renameSync(path.join(digits, String(d)), path.join(dir, w));
  });
  return dir;
}

/** The samples of `d` whose label is not in `without`, as a data set of their own. */
function withoutLabels(d: MemoryDataset, without: readonly number[]): MemoryDataset {
  const labels = d.labels as Int32Array;
  const keep = Array.from({ length: d.size }, (_, i) => i).filter((i) => !without.includes(labels[i]));
  const x = new Uint8Array(keep.length * 784);
  keep.forEach((i, k) => x.set(d.x.subarray(i * 784, (i + 1) * 784), k * 784));
  return memoryDataset({
    name: `${d.name} without ${without.join(',')}`,
    size: keep.length,
    sampleShape: d.sampleShape,
    scale: d.scale,
    x,
    labels: Int32Array.from(keep, (i) => labels[i]),
  });
}

const snnPromise = convert(MNIST, 'mnist:train', { iterations: 5, threads: 1 });
const opts = { T: [4], references: true, threads: 1 } as const;
const pct = (v: number | undefined): string => (100 * (v ?? NaN)).toFixed(1);

test('class folders named by class: with the class names the model scores its own accuracy; without, a note names the class order', async () => {
  const snn = await snnPromise;
  const dir = await wordFolders('words');
  const truth = await simulate(snn, openMemoryDataset('mnist:test', N), opts);
  // Sorted by name, label 0 is "eight": the ANN is right only where the order happens to agree.
  const sorted = await simulate(snn, openDataset(`imagefolder:${dir}`, undefined, { sampleShape: [1, 28, 28] }), opts);
  assert.ok((sorted.ann?.metric ?? 1) < 0.5, `sorted by name the labels are not the model's: ${sorted.ann?.metric}`);
  const note = sorted.notices?.find((n) => n.code === 'class-order');
  assert.ok(note, `a note on the class order: ${JSON.stringify(sorted.notices)}`);
  assert.match(
    note.message,
    new RegExp(
      `scores top-1 ${pct(sorted.ann?.metric)} % on these labels \\(chance 10\\.0 %\\) but ${pct(truth.ann?.metric)} % once its outputs are matched`,
    ),
  );
  assert.equal(note.field, 'classNames');
  // With the model's class names, folders map by name: the ANN's own accuracy on these samples.
  const named = await simulate(
    snn,
    openDataset(`imagefolder:${dir}`, undefined, { sampleShape: [1, 28, 28], classNames: WORDS }),
    opts,
  );
  assert.equal(named.ann?.metric, truth.ann?.metric);
  assert.deepEqual(
    named.results.map((r) => r.metric),
    truth.results.map((r) => r.metric),
  );
  assert.equal(
    named.notices?.some((n) => n.code === 'class-order' || n.code === 'near-chance'),
    false,
  );
  // The command line: --classes FILE with imagefolder (it was ignored there), and the note in the CLI's words.
  const snnFile = path.join(tmp, 'words.snn.onnx');
  snn.save(snnFile);
  fs.writeFileSync(path.join(tmp, 'words.txt'), WORDS.join('\n') + '\n');
  const args = [
    'simulate',
    snnFile,
    '--ann',
    MNIST,
    '--data',
    `imagefolder:${dir}`,
    '--T',
    '4',
    '--site-errors',
    '0',
    '-q',
  ];
  const plain = cli(args);
  assert.equal(plain.code, 0, plain.stderr);
  assert.match(
    plain.stderr,
    /note: the ANN scores top-1 .* the data's class order is probably not the model's \(name the model's classes in its order, one per line, with --classes\)/,
  );
  const given = cli([...args, '--classes', 'words.txt']);
  assert.equal(given.code, 0, given.stderr);
  assert.match(given.stdout, new RegExp(`ANN top-1 ${(100 * (truth.ann?.metric ?? 0)).toFixed(2)} %`));
  assert.doesNotMatch(given.stderr, /class order/);
});

test('a missing class folder is refused with both counts; with the class names the others keep their labels', async () => {
  const snn = await snnPromise;
  const dir = await wordFolders('nine-words', ['one']);
  const data = openDataset(`imagefolder:${dir}`, undefined, { sampleShape: [1, 28, 28] });
  await assert.rejects(simulate(snn, data, opts), (e: Error & { field?: string }) => {
    assert.match(e.message, /has 9 classes but the model scores 10/);
    assert.equal(e.field, 'classNames');
    return true;
  });
  const named = await simulate(
    snn,
    openDataset(`imagefolder:${dir}`, undefined, { sampleShape: [1, 28, 28], classNames: WORDS }),
    opts,
  );
  const truth = await simulate(snn, withoutLabels(openMemoryDataset('mnist:test', N), [1]), opts);
  assert.equal(named.samples, truth.samples);
  assert.equal(named.ann?.metric, truth.ann?.metric);
  // A folder that is not one of the names is an error naming it.
  fs.mkdirSync(path.join(dir, 'ten'));
  const two = path.join(dir, 'two');
  fs.copyFileSync(path.join(two, fs.readdirSync(two)[0]), path.join(dir, 'ten', 'a.png'));
  assert.throws(
    () => openDataset(`imagefolder:${dir}`, undefined, { sampleShape: [1, 28, 28], classNames: WORDS }),
    /the class folder .*ten is not one of the 10 class names in classNames/,
  );
});

test('videofolder maps class folders by name too; class names are refused where a source has none', async () => {
  const clips = openMemoryDataset('mnist-video:test', 60);
  const dir = path.join(tmp, 'video');
  await writeLayout(clips, 'videofolder', dir);
  // Renamed so that sorting by name reverses the digit order.
  const renamed = path.join(tmp, 'video-named');
  fs.mkdirSync(renamed);
  for (const d of fs.readdirSync(dir)) fs.renameSync(path.join(dir, d), path.join(renamed, `c${9 - Number(d)}`));
  const names = Array.from({ length: 10 }, (_, d) => `c${9 - d}`);
  const shape = [1, 16, 32, 32];
  const opened = openDataset(`videofolder:${renamed}`, undefined, { sampleShape: shape, classNames: names });
  const sortedLabels = (l: Int32Array | null): number[] => [...(l ?? [])].sort((a, b) => a - b);
  assert.deepEqual(sortedLabels(opened.labels), sortedLabels(clips.labels));
  assert.deepEqual(opened.classes, names);
  // Sorted by name (no class names), c0 … c9 would be labels 0 … 9: the digits reversed.
  const byName = openDataset(`videofolder:${renamed}`, undefined, { sampleShape: shape });
  assert.deepEqual(
    [...(byName.labels ?? [])],
    [...(opened.labels ?? [])].map((l) => 9 - l),
  );
  assert.throws(
    () => openDataset('mnist:test', 10, { classNames: WORDS }),
    /classNames apply to imagefolder, videofolder, videofiles, coco data/,
  );
  fs.writeFileSync(path.join(tmp, 'digits.txt'), WORDS.join('\n'));
  const r = cli(['simulate', MNIST, '--data', 'mnist:test', '--limit', '10', '--classes', 'digits.txt', '-q']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /--classes apply to imagefolder, videofolder, videofiles, coco data/);
});

test('coco categories other than the model classes are refused with both counts before simulating', async () => {
  const dir = path.join(tmp, 'coco');
  await writeLayout(openMemoryDataset('mnist-det:test', 6), 'coco', dir);
  const annFile = path.join(dir, 'annotations.json');
  const j = JSON.parse(fs.readFileSync(annFile, 'utf8')) as {
    categories: { id: number; name: string }[];
    annotations: { category_id: number }[];
  };
  const dropped = j.categories[j.categories.length - 1].id;
  j.categories = j.categories.slice(0, -1);
  j.annotations = j.annotations.filter((a) => a.category_id !== dropped);
  fs.writeFileSync(annFile, JSON.stringify(j));
  const snnFile = path.join(tmp, 'det.snn.onnx');
  const model = path.join(ROOT, 'models', 'mnist-centernet.onnx');
  const made = cli([
    'convert',
    model,
    '--data',
    'mnist-det:train',
    '--iterations',
    '1',
    '--batch',
    '4',
    '--out',
    snnFile,
    '-q',
  ]);
  assert.equal(made.code, 0, made.stderr);
  const args = [
    'simulate',
    snnFile,
    '--data',
    `coco:${path.join(dir, 'images')}@${annFile}`,
    '--T',
    '2',
    '--site-errors',
    '0',
    '-q',
  ];
  const r = cli(args);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /has 9 classes but the model scores 10/);
  // With the model's class names (the digits), categories map by name and the run goes ahead.
  fs.writeFileSync(path.join(tmp, 'det-classes.txt'), Array.from({ length: 10 }, (_, d) => String(d)).join('\n'));
  const ok = cli([...args, '--classes', 'det-classes.txt']);
  assert.equal(ok.code, 0, ok.stderr);
});

test('the class-order check: a permutation of the labels is found, a weak model is not blamed, near chance is said', () => {
  const state = (pairs: [number, number, number][]): ScorerState => {
    const seen = pairs.reduce((a, p) => a + p[2], 0);
    const hits = pairs.reduce((a, p) => a + (p[0] === p[1] ? p[2] : 0), 0);
    return { kind: 'topk', classes: 4, top1: [hits], top5: [seen], seen: [seen], pairs };
  };
  // Labels 0↔1 and 2↔3 swapped: 10 % right as labelled, 90 % once matched.
  const swapped = classOrderNotice(
    state([
      [0, 1, 45],
      [1, 0, 45],
      [2, 3, 40],
      [3, 2, 50],
      [0, 0, 5],
      [1, 1, 5],
      [2, 2, 10],
    ]),
    'imagefolder:x',
    'top-1',
  );
  assert.equal(swapped?.code, 'class-order');
  assert.match(swapped?.message ?? '', /scores top-1 10\.0 % on these labels \(chance 25\.0 %\) but 90\.0 % once/);
  // A weak model (60 %, confusing neighbours both ways) gains nothing from a matching.
  const weak = state([
    [0, 0, 30],
    [0, 1, 20],
    [1, 1, 30],
    [1, 0, 20],
    [2, 2, 30],
    [2, 3, 20],
    [3, 3, 30],
    [3, 2, 20],
  ]);
  assert.equal(classOrderNotice(weak, 'npz:x', 'top-1'), null);
  // Predictions spread evenly: near chance, and no matching helps.
  const flat = state(Array.from({ length: 16 }, (_, k) => [Math.floor(k / 4), k % 4, 10] as [number, number, number]));
  const chance = classOrderNotice(flat, 'npz:x', 'top-1');
  assert.equal(chance?.code, 'near-chance');
  assert.equal(chance?.field, undefined, 'npz labels are not named: no --classes to suggest');
  assert.match(chance?.message ?? '', /25\.0 % on these labels, near chance \(25\.0 %\)/);
});

/** mnist-cnn without its normalisation metadata. */
function unnormalizedModel(): string {
  const g = decodeModel(fs.readFileSync(MNIST), 'mnist-cnn.onnx');
  const metadata = Object.fromEntries(Object.entries(g.metadata).filter(([k]) => k !== KEYS.normalize));
  const file = path.join(tmp, 'raw-cnn.onnx');
  fs.writeFileSync(file, encodeModel({ ...g, metadata }));
  return file;
}

test('normalisation: a model without it converts with a note; simulate takes --mean/--std for a converted file, prints and records what is in effect', async () => {
  const raw = unnormalizedModel();
  const snn = await convert(raw, 'mnist:train', { iterations: 2, threads: 1 });
  assert.equal(snn.meta.normalize, null);
  assert.deepEqual(
    snn.notices.map((n) => [n.code, n.field]),
    [['no-normalization', 'normalize']],
  );
  const made = cli(['convert', raw, '--data', 'mnist:train', '--iterations', '2', '--out', 'raw.snn.onnx', '-q']);
  assert.equal(made.code, 0, made.stderr);
  assert.match(
    made.stderr,
    /note: no input normalisation: raw-cnn\.onnx has no spikeport\.normalize metadata and none was given.*give its mean and std as --mean\/--std/,
  );
  const withMeta = cli([
    'convert',
    MNIST,
    '--data',
    'mnist:train',
    '--iterations',
    '2',
    '--out',
    'meta.snn.onnx',
    '-q',
  ]);
  assert.doesNotMatch(withMeta.stderr, /normalisation/);

  // The override reaches the ANN reference too: the same ANN score as a conversion made with it.
  const given = { mean: [0.1307], std: [0.3081] };
  const data = openMemoryDataset('mnist:test', 200);
  const convertedWith = await convert(raw, 'mnist:train', { iterations: 2, threads: 1, normalize: given });
  const a = await simulate(convertedWith, data, opts);
  const b = await simulate(snn, data, { ...opts, normalize: given });
  const none = await simulate(snn, data, opts);
  assert.deepEqual(b.ann, a.ann);
  assert.notDeepEqual(none.ann, a.ann, 'the normalisation changes the ANN score (the comparison can fail)');
  assert.deepEqual(b.normalize, given);
  assert.equal(none.normalize, null);
  assert.ok(none.notices?.some((n) => n.code === 'no-normalization'));
  assert.equal(
    b.notices?.some((n) => n.code === 'no-normalization'),
    false,
  );

  const args = ['simulate', 'raw.snn.onnx', '--data', 'mnist:test', '--limit', '200', '--T', '4', '--site-errors', '0'];
  const sim = cli([...args, '--mean', '0.1307', '--std', '0.3081', '--json', 'raw.json', '-q']);
  assert.equal(sim.code, 0, sim.stderr);
  assert.match(sim.stdout, /; normalisation mean 0\.1307, std 0\.3081 \(--mean\/--std\)\n/);
  const rec = JSON.parse(fs.readFileSync(path.join(tmp, 'raw.json'), 'utf8')) as SimulateRecord;
  assert.deepEqual(rec.normalize, given);
  const plain = cli([...args, '-q']);
  assert.equal(plain.code, 0, plain.stderr);
  assert.match(plain.stdout, /; no input normalisation\n/);
  assert.match(plain.stderr, /note: no input normalisation/);
  assert.match(cli([...args, '--mean', '0.1', '-q']).stderr, /--mean and --std go together/);
});

test('a NIR file takes --mean/--std as an override too, and its first line says which normalisation is in effect', () => {
  const made = cli([
    'convert',
    MNIST,
    '--data',
    'mnist:train',
    '--iterations',
    '2',
    '--spikes',
    'unit',
    '--out',
    'u.snn.onnx',
    '-q',
  ]);
  assert.equal(made.code, 0, made.stderr);
  const nir = cli(['export', 'nir', 'u.snn.onnx', '--out', 'u.nir']);
  assert.equal(nir.code, 0, nir.stderr);
  const args = ['simulate', 'u.nir', '--data', 'mnist:test', '--limit', '20', '--T', '4', '-q'];
  const own = cli(args);
  assert.equal(own.code, 0, own.stderr);
  assert.match(own.stdout, /^u\.nir: NIR graph.*; normalisation mean 0\.1307, std 0\.3081\n/);
  const given = cli([...args, '--mean', '0.5', '--std', '0.25', '--json', 'u.json']);
  assert.equal(given.code, 0, given.stderr);
  assert.match(given.stdout, /^u\.nir: NIR graph.*; normalisation mean 0\.5, std 0\.25 \(--mean\/--std\)\n/);
  const rec = JSON.parse(fs.readFileSync(path.join(tmp, 'u.json'), 'utf8')) as SimulateRecord;
  assert.deepEqual(rec.normalize, { mean: [0.5], std: [0.25] });
});

test('the source ANN: found from another folder at the path recorded relative to the SNN; outside its folder it is named, not read', async () => {
  // The README's layout: the ANN in models/, the SNN written in the working folder (and in out/).
  const project = path.join(tmp, 'project');
  fs.mkdirSync(path.join(project, 'models'), { recursive: true });
  fs.mkdirSync(path.join(project, 'out'));
  fs.copyFileSync(MNIST, path.join(project, 'models', 'mnist-cnn.onnx'));
  for (const out of ['cnn.snn.onnx', 'out/cnn.snn.onnx']) {
    const r = cli(
      ['convert', 'models/mnist-cnn.onnx', '--data', 'mnist:train', '--iterations', '2', '--out', out, '-q'],
      project,
    );
    assert.equal(r.code, 0, r.stderr);
  }
  const source = (f: string): Record<string, string> =>
    (
      JSON.parse(decodeModel(fs.readFileSync(path.join(project, f)), f).metadata[KEYS.snn]) as {
        source: Record<string, string>;
      }
    ).source;
  assert.equal(source('cnn.snn.onnx').relative, 'models/mnist-cnn.onnx');
  assert.equal(source('cnn.snn.onnx').path, 'models/mnist-cnn.onnx');
  assert.equal(source('out/cnn.snn.onnx').relative, '../models/mnist-cnn.onnx');

  const elsewhere = path.join(tmp, 'elsewhere');
  fs.mkdirSync(elsewhere);
  const args = ['--data', 'mnist:test', '--limit', '100', '--T', '4,8', '--site-errors', '0', '-q'];
  const found = cli(['simulate', path.join(project, 'cnn.snn.onnx'), ...args], elsewhere);
  assert.equal(found.code, 0, found.stderr);
  assert.match(found.stdout, /ANN top-1 [\d.]+ %, clipped ANN top-1/);
  assert.match(found.stdout, /SOPs90 /);
  assert.doesNotMatch(found.stderr, /source ANN/);
  const snn = await loadSnn(path.join(project, 'cnn.snn.onnx'));
  assert.equal(snn.source?.source.path, fs.realpathSync(path.join(project, 'models', 'mnist-cnn.onnx')));

  // out/ → ../models: outside the SNN's folder, not followed; one line says so and how to give it.
  const outside = cli(['simulate', 'out/cnn.snn.onnx', ...args], project);
  assert.equal(outside.code, 0, outside.stderr);
  assert.doesNotMatch(outside.stdout, /ANN top-1/);
  assert.match(outside.stdout, /SOPs90\/SOPs95: need the ANN reference \(--ann FILE\)/);
  const notes = outside.stderr.trim().split('\n');
  assert.equal(notes.length, 1, outside.stderr);
  assert.match(
    notes[0],
    /^spikeport: note: the source ANN mnist-cnn\.onnx \(converted from models\/mnist-cnn\.onnx\) was outside the folder of cnn\.snn\.onnx \(at \.\.\/models\/mnist-cnn\.onnx from there\).*are skipped; give it with --ann models\/mnist-cnn\.onnx$/,
  );
  const given = cli(['simulate', 'out/cnn.snn.onnx', '--ann', 'models/mnist-cnn.onnx', ...args], project);
  assert.match(given.stdout, /ANN top-1/);
  const moved = path.join(elsewhere, 'moved.snn.onnx');
  fs.copyFileSync(path.join(project, 'cnn.snn.onnx'), moved);
  const gone = await loadSnn(moved);
  assert.equal(gone.source, null);
  assert.match(
    gone.notices[0].message,
    /is not in the folder of moved\.snn\.onnx \(no models\/mnist-cnn\.onnx or mnist-cnn\.onnx there with its sha256\).*give it with ann FILE/,
  );
});

test("a converted file's recorded source path cannot make spikeport read outside the SNN's folder, or a file not named .onnx", async () => {
  const base = path.join(tmp, 'hostile');
  const inner = path.join(base, 'inner');
  fs.mkdirSync(path.join(inner, 'sub'), { recursive: true });
  const good = fs.readFileSync(MNIST);
  const g = decodeModel((await snnPromise).toBytes(), 'x');
  const meta = JSON.parse(g.metadata[KEYS.snn]) as { source: Record<string, string> };
  const write = (name: string, source: Record<string, string>): string => {
    const f = path.join(inner, name);
    const text = JSON.stringify({ ...meta, source: { ...meta.source, ...source } });
    fs.writeFileSync(f, encodeModel({ ...g, metadata: { ...g.metadata, [KEYS.snn]: text } }));
    return f;
  };
  // The right bytes one folder up: not read from there, whatever the metadata says.
  fs.writeFileSync(path.join(base, 'up.onnx'), good);
  assert.equal((await loadSnn(write('a.snn.onnx', { relative: '../up.onnx', file: 'up.onnx' }))).source, null);
  // Nor through a link inside the folder that points out of it.
  fs.symlinkSync(path.join(base, 'up.onnx'), path.join(inner, 'sub', 'link.onnx'));
  assert.equal((await loadSnn(write('b.snn.onnx', { relative: 'sub/link.onnx', file: 'link.onnx' }))).source, null);
  // The right bytes inside, but not named .onnx: not read.
  fs.writeFileSync(path.join(inner, 'sub', 'weights.bin'), good);
  assert.equal((await loadSnn(write('c.snn.onnx', { relative: 'sub/weights.bin', file: 'weights.bin' }))).source, null);
  // Inside, named .onnx, with the recorded hash: found (the same rules let the right file through).
  fs.writeFileSync(path.join(inner, 'sub', 'ann.onnx'), good);
  assert.notEqual((await loadSnn(write('d.snn.onnx', { relative: 'sub/ann.onnx', file: 'ann.onnx' }))).source, null);
  // Text that messages print: control characters are refused when the file is read.
  await assert.rejects(
    loadSnn(write('e.snn.onnx', { path: 'models/\u001b[2Jx.onnx' })),
    /field source\.path: must not hold control characters/,
  );
  await assert.rejects(
    loadSnn(write('f.snn.onnx', { relative: '/etc/x.onnx' })),
    /field source\.relative: must be a relative path/,
  );
});

test('thresholds that clip: when the clipped ANN falls far below the ANN, one line says so with both numbers and what to change', async () => {
  const sites = (await snnPromise).spec.sites;
  const snn = await convert(MNIST, 'mnist:train', {
    method: 'fixed',
    thresholds: Object.fromEntries(sites.map((s) => [s.node, 0.02])),
    threads: 1,
  });
  const r = await simulate(snn, openMemoryDataset('mnist:test', 200), opts);
  const clipped = r.clippedAnn?.metric ?? 1;
  const ann = r.ann?.metric ?? 0;
  assert.ok(ann - clipped > 0.05, `the clip costs: ${ann} → ${clipped}`);
  const note = r.notices?.find((n) => n.code === 'clipping');
  assert.ok(note, JSON.stringify(r.notices));
  assert.match(note.message, new RegExp(`clipped ANN scores top-1 ${pct(clipped)} % against the ANN's ${pct(ann)} %`));
  assert.equal(note.field, 'thresholds');
  // The rule itself: a gap of 5 points says it, a smaller one does not; the fix follows the method.
  const ctx = { task: 'classification', method: 'cltb', iterations: 10 } as Parameters<typeof clippingNotice>[2];
  const det = clippingNotice(
    { metric: 0.826, secondary: null },
    { metric: 0, secondary: null },
    { ...ctx, task: 'detection' },
  );
  assert.match(
    det?.message ?? '',
    /mAP@\[\.50:\.95\] 0\.0 % against the ANN's 82\.6 %.*more iterations \(10 now\) raise them/,
  );
  assert.equal(det?.field, 'iterations');
  assert.equal(clippingNotice({ metric: 0.93, secondary: null }, { metric: 0.89, secondary: null }, ctx), null);
  // The CLI prints it with the flag.
  const file = path.join(tmp, 'clip.snn.onnx');
  snn.save(file);
  const out = cli([
    'simulate',
    file,
    '--ann',
    MNIST,
    '--data',
    'mnist:test',
    '--limit',
    '200',
    '--T',
    '4',
    '--site-errors',
    '0',
    '-q',
  ]);
  assert.equal(out.code, 0, out.stderr);
  assert.match(out.stderr, /note: the thresholds clip the activations: .*larger fixed --thresholds \(method fixed\)/);
});

test('the built bin is executable (npx runs it as it is) and answers --help; CI runs npx spikeport --help', () => {
  const mode = fs.statSync(CLI).mode;
  assert.equal(mode & 0o111, 0o111, `dist/src/cli/main.js mode ${mode.toString(8)}`);
  const r = spawnSync(CLI, ['--help'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /Usage: spikeport/);
  assert.match(
    fs.readFileSync(path.join(ROOT, '.ci', 'run'), 'utf8'),
    /\nnpm test\n[\s\S]*\nnpx --no-install spikeport --help/,
  );
});

test('the per-site error analysis shows progress, and the command line runs it on 32 samples unless told', async () => {
  const seen: Progress[] = [];
  const r = await simulate(await snnPromise, openMemoryDataset('mnist:test', 40), {
    T: [6],
    siteErrors: 20,
    threads: 1,
    onProgress: (p) => seen.push(p),
  });
  assert.equal(r.siteErrors?.samples, 20);
  const errs = seen.filter((p) => p.phase === 'site errors');
  assert.deepEqual(
    errs.map((p) => p.done),
    [1, 2, 3, 4, 5, 6],
  );
  assert.ok(errs.every((p) => p.total === 6 && p.unit === 'time steps of 20 samples'));
  assert.match(cli(['simulate', '--help']).stdout, /--site-errors <n>[\s\S]*?\(default: 32\)/);
});

test('the demo runs the per-site error analysis on as many samples as simulate does by default, not 100', () => {
  const r = cli(['demo', '--limit', '120', '--T', '4', '--iterations', '2', '--calib-limit', '200']);
  assert.equal(r.code, 0, r.stderr);
  // Progress lines name the sample count of the analysis; 120 test samples would allow 100.
  assert.match(r.stderr, /site errors: \d+\/4 time steps of 32 samples/);
  assert.doesNotMatch(r.stderr, /of 100 samples/);
});

test('progress names its unit, and with workers its total is the whole run from the first line', () => {
  const r = cli([
    'simulate',
    MNIST,
    '--data',
    'mnist:test',
    '--limit',
    '400',
    '--iterations',
    '2',
    '--T',
    '8',
    '--workers',
    '2',
    '--site-errors',
    '0',
  ]);
  assert.equal(r.code, 0, r.stderr);
  // (stderr is not a terminal: plain lines.)
  const lines = [...r.stderr.matchAll(/^simulate \(2 workers\): (\d+)\/(\d+) ([^(]*) \(/gm)];
  assert.ok(lines.length >= 2, r.stderr);
  for (const m of lines) {
    assert.equal(Number(m[2]), 4 * 8, r.stderr);
    assert.equal(m[3], 'time steps, 8 per batch');
  }
  assert.match(r.stderr, /^calibrate: \d+\/2 batches /m);
});

/** Run the CLI, send `signal` once `ready(stderr so far)` holds; its exit code and stderr. */
function interrupt(args: readonly string[], ready: (stderr: string) => boolean) {
  return new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: tmp, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    let sent = false;
    const check = (): void => {
      if (!sent && ready(stderr)) {
        sent = true;
        child.kill('SIGINT');
      }
    };
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
      check();
    });
    // The checkpoint appears on disk between progress lines: look again now and then.
    const poll = setInterval(check, 20);
    child.on('error', reject);
    child.on('close', (code) => {
      clearInterval(poll);
      resolve({ code, stderr });
    });
  });
}

test('Ctrl-C says what is kept, resuming says where from; without a checkpoint, that nothing was kept', async () => {
  const ckpt = path.join(tmp, 'run.ckpt.json');
  const args = [
    'simulate',
    MNIST,
    '--data',
    'mnist:test',
    '--limit',
    '600',
    '--batch',
    '50',
    '--iterations',
    '2',
    '--T',
    '64',
    '--workers',
    '1',
    '--site-errors',
    '0',
  ];
  const saved = (): number => {
    try {
      return (JSON.parse(fs.readFileSync(ckpt, 'utf8')) as { tally: { batches: number[] } }).tally.batches.length;
    } catch {
      return 0;
    }
  };
  const withCheckpoint = [...args, '--checkpoint', ckpt, '--checkpoint-every', '0'];
  const r = await interrupt(withCheckpoint, () => saved() >= 1);
  assert.equal(r.code, 130, r.stderr);
  const kept = saved();
  assert.ok(kept >= 1 && kept < 12, `${kept} batches saved`);
  assert.equal(
    r.stderr.trim().split('\n').pop(),
    `spikeport: interrupted: ${kept} of 12 batches saved in ${ckpt}; the same command resumes`,
  );
  const again = cli([...withCheckpoint, '-q']);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(again.stderr.split('\n')[0], `spikeport: resuming from ${ckpt}: ${kept} of 12 batches done`);

  const bare = await interrupt(args, (stderr) => /^simulate: /m.test(stderr));
  assert.equal(bare.code, 130, bare.stderr);
  assert.match(
    bare.stderr.trim().split('\n').pop() ?? '',
    /^spikeport: interrupted: nothing saved \(with --checkpoint FILE the batches done are kept, and the same command continues from them\)$/,
  );
});

test('help and docs agree with the behaviour: every --data source listed, one default T, report --report, firing rates tabled, site names whole on chart axes, the generated sets described', async () => {
  for (const cmd of [['convert'], ['simulate'], ['experiment', 'ablation']]) {
    const help = cli([...cmd, '--help']).stdout.replace(/\s+/g, ' ');
    for (const source of [
      'imagefolder:DIR',
      'videofolder:DIR',
      'voc:DIR',
      'coco:IMAGES_DIR@ANNOTATIONS.json',
      'npz:FILE',
    ])
      assert.ok(help.includes(source), `${cmd.join(' ')} --help lists ${source}`);
  }
  const defaultT = (cmd: string[]): string =>
    /--T <list>[^(]*\([^)]*\)\s+\(default:\s+([^)]*)\)/.exec(cli([...cmd, '--help']).stdout)?.[1] ?? '';
  assert.equal(defaultT(['demo']), defaultT(['simulate']));
  assert.equal(defaultT(['experiment', 'delay']), defaultT(['simulate']));
  assert.match(defaultT(['simulate']), /256/);

  // report writes with --report, as simulate and merge do.
  const rec = await simulate(await snnPromise, openMemoryDataset('mnist:test', 50), { T: [2, 4], threads: 1 });
  fs.writeFileSync(path.join(tmp, 'rec.json'), JSON.stringify(rec));
  const r = cli(['report', 'rec.json', '--report', 'rec.html', '--markdown', 'rec.md']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(fs.readFileSync(path.join(tmp, 'rec.html'), 'utf8'), /^<!doctype html>/);
  // The Markdown's firing-rate section has its table (it had only a heading and a sentence).
  const md = fs.readFileSync(path.join(tmp, 'rec.md'), 'utf8');
  const rates = /## Firing rates\n\n[^\n]*\n\n(\| site \| firing rate % \|\n\|---\|---:\|\n(?:\| .* \|\n)+)/.exec(md);
  assert.ok(rates, md);
  assert.equal(rates[1].trim().split('\n').length, 2 + rec.firingRates.length);
  assert.match(md, /Input normalisation: mean 0\.1307, std 0\.3081\./);

  // Long site names are drawn whole on the bar chart's axis (Vega cuts labels at 180 px by default).
  const long = '/features/features.10/conv_block_with_a_long_name/Relu_output_0';
  const svg = await renderSvg(
    barChart({
      title: 't',
      rows: [{ site: long, rate: 0.1 }],
      x: { field: 'site', title: 'site' },
      y: { field: 'rate', title: 'rate' },
    }),
  );
  assert.ok(svg.includes(long), 'the whole name is in the SVG');

  // The generated sets are described where the manual points, and npm run web keeps dist/.
  const cliDoc = fs.readFileSync(path.join(ROOT, 'docs', 'cli.md'), 'utf8');
  assert.match(
    cliDoc,
    /`mnist-video:train\|test` \(what they hold: \[docs\/data\.md\]\(data\.md#the-generated-task-sets\)\)/,
  );
  const data = fs.readFileSync(path.join(ROOT, 'docs', 'data.md'), 'utf8');
  assert.match(data, /## The generated task sets/);
  assert.match(data, /0 = background, 1 \+ d for a pixel of digit d/);
  const library = fs.readFileSync(path.join(ROOT, 'docs', 'library.md'), 'utf8');
  assert.match(library, /reportHtml\(record\)` renders the record as an HTML page \(a Promise/);
  const scripts = (
    JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }
  ).scripts;
  assert.doesNotMatch(scripts.web, /npm run build|clean/);
});

test('several clips per video: a wrong class order is found clip by clip, across shard merges, and a missing class is refused', () => {
  // 60 videos of 3 clips over 4 classes; the model is right on every clip, but the data's labels
  // are its classes rotated by one (a folder order that is not the model's).
  const K = 3;
  const size = 180;
  const rotated = Int32Array.from({ length: size }, (_, i) => ((Math.floor(i / K) % 4) + 1) % 4);
  const video = (labels: Int32Array, classes?: readonly string[]): Dataset => ({
    name: 'videofolder:clips',
    size,
    sampleShape: [3, 2, 4, 4],
    scale: 1,
    labels,
    clipsPerVideo: K,
    ...(classes ? { classes } : {}),
    read: () => Promise.reject(new Error('not read')),
  });
  // The model's class of sample i is the video's true class (i / K) mod 4.
  const outputs = (from: number, n: number) => {
    const data = new Float32Array(n * 4);
    for (let k = 0; k < n; k++) data[k * 4 + (Math.floor((from + k) / K) % 4)] = 5;
    return [{ name: 'y', dims: [n, 4], data }];
  };
  const run = (data: Dataset, from: number, to: number): ScorerState => {
    const s = makeScorer('video', 1, data, undefined, { pairs: true });
    for (let b = from; b < to; b += 25) {
      const n = Math.min(25, to - b);
      s.add(0, outputs(b, n), { indices: Array.from({ length: n }, (_, k) => b + k) });
    }
    return s.state();
  };
  const whole = run(video(rotated), 0, size);
  const note = classOrderNotice(whole, 'videofolder:clips', 'video top-1');
  assert.equal(note?.code, 'class-order', JSON.stringify(whole).slice(0, 200));
  assert.match(note?.message ?? '', /scores clip top-1 0\.0 % on these labels \(chance 25\.0 %\) but 100\.0 % once/);
  // Two shards cut through a video merge into the same pairs (and the notice).
  const merged = mergeStates([run(video(rotated), 0, 100), run(video(rotated), 100, size)]);
  assert.deepEqual(merged.kind === 'videos' && merged.pairs, whole.kind === 'videos' && whole.pairs);
  assert.equal(classOrderNotice(merged, 'videofolder:clips', 'video top-1')?.code, 'class-order');
  // Tampered pairs in a shard file are caught.
  const all = Array.from({ length: size }, (_, i) => i);
  assert.equal(stateProblem(whole, 1, all), null);
  const forged = { ...whole, pairs: [[0, 0, size]] } as ScorerState;
  assert.match(stateProblem(forged, 1, all) ?? '', /pairs count 180 samples and 180 hits, not 180 and 0/);
  // Labels in the model's order: no notice.
  const right = Int32Array.from({ length: size }, (_, i) => Math.floor(i / K) % 4);
  assert.equal(classOrderNotice(run(video(right), 0, size), 'videofolder:clips', 'video top-1'), null);
  // Three class folders for a model of four: refused, as for single clips.
  assert.throws(() => run(video(right, ['a', 'b', 'c']), 0, 25), /has 3 classes but the model scores 4/);
});
