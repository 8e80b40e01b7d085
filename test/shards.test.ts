/**
 * Shards, merge, resume and workers: a run cut into shards and merged, resumed after a kill, or
 * spread over worker processes gives exactly the record of one uninterrupted run; the states
 * behind it merge as a scorer that saw everything; bad shard sets are one-line errors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { convert } from '../src/api/convert.js';
import { simulate, simulateShard } from '../src/api/simulate.js';
import { configHash } from '../src/api/run-config.js';
import { mergeShards } from '../src/api/merge.js';
import { parseShard, shardRange } from '../src/api/shards.js';
import { parseShardFile, shardJson, type ShardFile } from '../src/api/shard-file.js';
import { openMemoryDataset } from '../src/data/sources.js';
import { makeScorer, mergeStates, scoresOf, type Task } from '../src/tasks/task.js';
import { mergeTallies, type Tally } from '../src/evaluate/tally.js';
import { memoryDataset, type DetectionBox } from '../src/data/dataset.js';
import { shardFromEnv } from '../src/cli/job-array.js';
import { checkCudaInstalled } from '../src/ort/session.js';
import type { SimulateRecord } from '../src/report/record.js';
import type { Progress } from '../src/progress.js';
import { randn } from './helpers.js';
import { tempDir } from './temp.js';

const HOLD = pathToFileURL(
  path.join(path.dirname(fileURLToPath(import.meta.url)), 'hooks', 'hold-at-checkpoint.js'),
).href;
const CLI = path.join(process.cwd(), 'dist', 'src', 'cli', 'main.js');
const tmp = tempDir('spikeport-shards-');
const model = (name: string): string => path.join(process.cwd(), 'models', `${name}.onnx`);

function cli(
  args: readonly string[],
  env: NodeJS.ProcessEnv = {},
): { code: number | null; stdout: string; stderr: string } {
  const clean = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !/^(SLURM_|JOB_COMPLETION_INDEX)/.test(k)),
  );
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', cwd: tmp, env: { ...clean, ...env } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/**
 * A record without what differs between two runs of the same work: when, how long, and which
 * engine `auto` chose for which batch (kept: how many batches ran in all).
 */
function comparable(r: SimulateRecord | Record<string, unknown>): Record<string, unknown> {
  const { created: _c, simulationSeconds: _s, times: _t, engines, ...rest } = r as Record<string, unknown>;
  const batches = Object.values((engines ?? {}) as Record<string, number>).reduce((a, k) => a + k, 0);
  return JSON.parse(JSON.stringify({ ...rest, batches })) as Record<string, unknown>;
}

test('scorer states of parts of a data set merge into the state of one scorer that saw every batch (classification, segmentation, detection)', () => {
  const n = 12;
  const windows = 2;
  const cases: { task: Task; dims: number[]; data: ReturnType<typeof memoryDataset> }[] = [
    {
      task: 'classification',
      dims: [n, 10],
      data: memoryDataset({
        name: 'c',
        size: n,
        sampleShape: [1],
        x: new Float32Array(n),
        scale: 1,
        labels: Int32Array.from({ length: n }, (_, i) => (i * 7) % 10),
      }),
    },
    {
      task: 'segmentation',
      dims: [n, 3, 2, 2],
      data: memoryDataset({
        name: 's',
        size: n,
        sampleShape: [1],
        x: new Float32Array(n),
        scale: 1,
        labels: null,
        masks: { shape: [2, 2], data: Uint8Array.from({ length: n * 4 }, (_, i) => (i % 5 === 0 ? 255 : i % 3)) },
      }),
    },
    {
      task: 'detection',
      dims: [n, 6, 4, 4],
      data: {
        ...memoryDataset({
          name: 'd',
          size: n,
          sampleShape: [1, 16, 16],
          x: new Float32Array(n * 256),
          scale: 1,
          labels: null,
        }),
        // Boxes listed out of image order: the merged truth must still match one run's.
        boxes: Array.from({ length: 2 * n }, (_, k): DetectionBox => ({
          image: (k * 5) % n,
          label: k % 2,
          x: 2 + (k % 4),
          y: 3,
          w: 6,
          h: 5,
        })),
      },
    },
  ];
  for (const c of cases) {
    const per = c.dims.slice(1).reduce((a, b) => a * b, 1);
    const outputs = c.task === 'detection' ? detectionHeads(n, c.data.boxes ?? []) : randn(7, n * per, 2);
    const whole = makeScorer(c.task, windows, c.data);
    const parts = [makeScorer(c.task, windows, c.data), makeScorer(c.task, windows, c.data)];
    // Batches of 4: batch 0 to part 0, batches 1 and 2 to part 1.
    for (let b = 0; b < 3; b++) {
      const indices = [0, 1, 2, 3].map((k) => 4 * b + k);
      const masks = c.data.masks ? c.data.masks.data.subarray(16 * b, 16 * (b + 1)) : undefined;
      for (let w = 0; w < windows; w++) {
        const out = outputs.slice(4 * b * per, 4 * (b + 1) * per).map((v) => v + w);
        const dims = [4, ...c.dims.slice(1)];
        whole.add(w, [{ name: 'out', dims, data: out }], { indices, ...(masks ? { masks } : {}) });
        parts[b === 0 ? 0 : 1].add(w, [{ name: 'out', dims, data: out }], { indices, ...(masks ? { masks } : {}) });
      }
    }
    const merged = mergeStates(parts.map((p) => p.state()));
    assert.deepEqual(merged, whole.state(), `${c.task}: merged state`);
    // Tallies (what shard files carry) in any order merge in batch order: detections as one run found them.
    const tally = (k: number, batches: number[]): Tally => ({
      batches,
      samples: 4 * batches.length,
      spikesPerStep: [[k + 1, 2]],
      sopsPerStep: [],
      scores: parts[k].state(),
      seconds: 1,
    });
    const tallied = mergeTallies([tally(1, [1, 2]), tally(0, [0])]);
    assert.deepEqual(tallied.scores, whole.state(), `${c.task}: merged tallies`);
    assert.deepEqual([tallied.batches, tallied.samples, tallied.spikesPerStep], [[0, 1, 2], 12, [[3, 4]]]);
    assert.deepEqual(scoresOf(merged), whole.scores(), `${c.task}: scores of the merged state`);
    assert.ok(
      whole.scores().some((x) => x.metric > 0.05 && x.metric < 0.95),
      `${c.task}: scores away from 0 and 1 (${JSON.stringify(whole.scores())})`,
    );
    // Not vacuous: each part alone scores differently from the whole, on some window.
    assert.notDeepEqual(scoresOf(parts[1].state()), whole.scores(), `${c.task}: a part alone`);
    // Continuing a scorer from a state (a resumed run) gives the same as never stopping.
    const resumed = makeScorer(c.task, windows, c.data, parts[0].state());
    for (let b = 1; b < 3; b++) {
      const indices = [0, 1, 2, 3].map((k) => 4 * b + k);
      const masks = c.data.masks ? c.data.masks.data.subarray(16 * b, 16 * (b + 1)) : undefined;
      for (let w = 0; w < windows; w++)
        resumed.add(
          w,
          [
            {
              name: 'out',
              dims: [4, ...c.dims.slice(1)],
              data: outputs.slice(4 * b * per, 4 * (b + 1) * per).map((v) => v + w),
            },
          ],
          { indices, ...(masks ? { masks } : {}) },
        );
    }
    assert.deepEqual(resumed.state(), whole.state(), `${c.task}: resumed`);
  }
  assert.throws(
    () =>
      mergeStates([
        makeScorer('classification', 2, cases[0].data).state(),
        makeScorer('classification', 3, cases[0].data).state(),
      ]),
    /different numbers of windows/,
  );
});

/**
 * Heads [n, 2 + 4, 4, 4] (stride 4) with a peak near each image's first box, in its class, with
 * its size and centre up to noise, and low noise elsewhere: some detections match, some do not.
 */
function detectionHeads(n: number, boxes: readonly DetectionBox[]): Float32Array {
  const plane = 16;
  const out = randn(11, n * 6 * plane, 0.5).map((v) => v - 4);
  const noise = randn(12, n * 4, 0.3);
  for (let i = 0; i < n; i++) {
    const b = boxes.find((x) => x.image === i);
    if (!b) continue;
    const base = i * 6 * plane;
    const cell = 1 * 4 + 1;
    out[base + b.label * plane + cell] = 2 + noise[4 * i];
    const at = (ch: number, v: number): void => {
      out[base + (2 + ch) * plane + cell] = v;
    };
    at(0, b.w / 4 + noise[4 * i + 1]);
    at(1, b.h / 4 + noise[4 * i + 2]);
    at(2, (b.x + b.w / 2) / 4 - 1 + noise[4 * i + 3]);
    at(3, (b.y + b.h / 2) / 4 - 1);
  }
  return out;
}

test('shard ranges: contiguous, covering every batch once, sizes within one; the environment of a Slurm array or an Indexed Job picks the shard', () => {
  for (const [batches, count] of [
    [10, 3],
    [7, 7],
    [100, 8],
    [5, 1],
  ]) {
    const ranges = Array.from({ length: count }, (_, index) => shardRange({ index, count }, batches));
    assert.equal(ranges[0].first, 0);
    assert.equal(ranges[count - 1].end, batches);
    ranges.forEach((r, k) => {
      if (k > 0) assert.equal(r.first, ranges[k - 1].end);
      assert.ok(r.end - r.first >= Math.floor(batches / count) && r.end - r.first <= Math.ceil(batches / count));
    });
  }
  assert.throws(() => shardRange({ index: 3, count: 3 }, 10), /shard 3\/3: the index must be in 0\.\.2/);
  assert.throws(() => shardRange({ index: 0, count: 8 }, 5), /8 shards for 5 batches/);
  assert.deepEqual(parseShard('2/3'), { index: 2, count: 3 });
  for (const v of [' 2/3', '2 / 3', '2/3 ', '+2/3', '2/3.0', '2/1e1', '0x2/3', '2/', '/3'])
    assert.throws(() => parseShard(v), /is not K\/N/, JSON.stringify(v));
  assert.deepEqual(shardFromEnv({ SLURM_ARRAY_TASK_ID: '5', SLURM_ARRAY_TASK_MIN: '4', SLURM_ARRAY_TASK_COUNT: '3' }), {
    shard: { index: 1, count: 3 },
    from: 'SLURM_ARRAY_TASK_ID',
    source: "the Slurm array's shard 1 of 3 (SLURM_ARRAY_TASK_ID=5, SLURM_ARRAY_TASK_MIN=4, SLURM_ARRAY_TASK_COUNT=3)",
  });
  assert.deepEqual(shardFromEnv({ SLURM_ARRAY_TASK_ID: '2' }, 3), {
    shard: { index: 2, count: 3 },
    from: 'SLURM_ARRAY_TASK_ID',
    source: "the Slurm array's shard 2 of 3 (SLURM_ARRAY_TASK_ID=2, --shard-count 3)",
  });
  assert.deepEqual(shardFromEnv({ JOB_COMPLETION_INDEX: '2' }, 4), {
    shard: { index: 2, count: 4 },
    from: 'JOB_COMPLETION_INDEX',
    source: "the Indexed Job's shard 2 of 4 (JOB_COMPLETION_INDEX=2, --shard-count 4)",
  });
  assert.equal(shardFromEnv({}), null);
  assert.throws(() => shardFromEnv({ JOB_COMPLETION_INDEX: '2' }), /give --shard-count N/);
  // A bad shard from the environment names the variables (and --shard-count when it gave the count), never --shard.
  const envError = (env: NodeJS.ProcessEnv, count: number | undefined, message: RegExp): void => {
    assert.throws(
      () => shardFromEnv(env, count),
      (e: Error) => {
        assert.match(e.message, message);
        assert.doesNotMatch(e.message, /--shard(?!-count)/);
        return true;
      },
    );
  };
  envError(
    { JOB_COMPLETION_INDEX: '4' },
    4,
    /^the Indexed Job's shard 4 of 4 \(JOB_COMPLETION_INDEX=4, --shard-count 4\): the index must be in 0\.\.3 \(got 4\)$/,
  );
  envError(
    { JOB_COMPLETION_INDEX: '0' },
    70000,
    /^the Indexed Job's shard 0 of 70000 \(JOB_COMPLETION_INDEX=0, --shard-count 70000\): at most 65536 shards \(got 70000\)$/,
  );
  envError(
    { SLURM_ARRAY_TASK_ID: '5', SLURM_ARRAY_TASK_COUNT: '70000' },
    undefined,
    /^the Slurm array's shard 5 of 70000 \(SLURM_ARRAY_TASK_ID=5, SLURM_ARRAY_TASK_COUNT=70000\): at most 65536 shards \(got 70000\)$/,
  );
  envError(
    { SLURM_ARRAY_TASK_ID: '3', SLURM_ARRAY_TASK_COUNT: '0' },
    undefined,
    /\(SLURM_ARRAY_TASK_ID=3, SLURM_ARRAY_TASK_COUNT=0\): the count must be an integer ≥ 1 \(got 0\)$/,
  );
  // An index outside the array: the array is not numbered as its count says (the hint starts at its minimum).
  envError(
    { SLURM_ARRAY_TASK_ID: '4', SLURM_ARRAY_TASK_MIN: '1', SLURM_ARRAY_TASK_COUNT: '3' },
    undefined,
    /^the Slurm array's shard 3 of 3 \(SLURM_ARRAY_TASK_ID=4, SLURM_ARRAY_TASK_MIN=1, SLURM_ARRAY_TASK_COUNT=3\): the index must be in 0\.\.2 \(got 3\) \(the array must be contiguous, e\.g\. --array=1-3\)$/,
  );
  assert.throws(
    () => shardFromEnv({ SLURM_ARRAY_TASK_ID: 'x', SLURM_ARRAY_TASK_COUNT: '3' }),
    /SLURM_ARRAY_TASK_ID="x" is not a non-negative integer/,
  );
  assert.throws(() => shardFromEnv({}, 3), /--shard-count needs JOB_COMPLETION_INDEX/);
});

for (const c of [
  { model: 'mnist-cnn', data: 'mnist', n: 90, batch: 20, iterations: 3, T: [3, 8] },
  { model: 'mnist-fcn', data: 'mnist-seg', n: 45, batch: 10, iterations: 3, T: [3, 8] },
  { model: 'mnist-centernet', data: 'mnist-det', n: 45, batch: 10, iterations: 20, T: [6, 16] },
]) {
  test(`${c.model}: 3 shards merged give the single run's record field by field; a checkpoint resumed after an interruption gives it too`, async () => {
    const snn = await convert(model(c.model), `${c.data}:train`, {
      iterations: c.iterations,
      batchSize: 16,
      threads: 1,
    });
    const data = openMemoryDataset(`${c.data}:test`, c.n);
    const opts = { T: c.T, batchSize: c.batch, references: true, siteErrors: 8, pictures: 2, threads: 1 } as const;
    const single = await simulate(snn, data, opts);
    assert.ok(single.results[1].metric > 0.02, `a metric to compare (${single.results[1].metric})`);
    const shards: { name: string; shard: ShardFile }[] = [];
    // Each shard with another engine: their results are the same bit for bit, so they merge.
    const engines = ['steps', 'fused', 'auto'] as const;
    for (let index = 0; index < 3; index++) {
      const s = await simulateShard(snn, data, { ...opts, engine: engines[index], shard: { index, count: 3 } });
      if (engines[index] !== 'auto')
        assert.deepEqual(
          Object.keys(s.tally.engines ?? {}),
          [engines[index]],
          `shard ${index}: the engine asked for ran`,
        );
      // Through JSON and back, as the files travel.
      shards.push({ name: `s${index}`, shard: parseShardFile(JSON.parse(shardJson(s)), `s${index}`) });
    }
    assert.equal(
      shards.reduce((a, s) => a + s.shard.tally.samples, 0),
      c.n,
      'the shards cover every sample once',
    );
    assert.ok(shards.every((s) => s.shard.tally.samples < c.n));
    const merged = mergeShards([shards[2], shards[0], shards[1]]);
    assert.deepEqual(comparable(merged), comparable(single));
    // Not every shard, or one twice: refused, not merged into a smaller run.
    assert.throws(() => mergeShards([shards[0], shards[2]]), /shard 1 of 3 is missing/);
    assert.throws(() => mergeShards([shards[0], shards[1], shards[1], shards[2]]), /shard 1 of 3 is given twice/);
    assert.ok(
      single.ann !== null &&
        single.siteErrors !== null &&
        single.energy !== null &&
        (single.pictures?.samples.length ?? 0) > 0,
      'references, site errors, energy and pictures are part of what is compared',
    );
    // A shard alone is not the whole: its scores differ somewhere (the comparison can fail).
    assert.notDeepEqual(
      scoresOf(shards[0].shard.tally.scores),
      scoresOf(mergeStates(shards.map((s) => s.shard.tally.scores))),
    );

    // Resume: stop after the first batch (an error in the middle of the run), then run again.
    const checkpoint = path.join(tmp, `${c.model}.ckpt.json`);
    let batchesSeen = 0;
    await assert.rejects(
      simulate(snn, data, {
        ...opts,
        checkpoint,
        checkpointSeconds: 0,
        onProgress: (p) => {
          if (p.phase === 'simulate' && p.done > 0 && p.done % c.T[1] === 0 && ++batchesSeen === 2)
            throw new Error('killed');
        },
      }),
      /killed/,
    );
    const partial = JSON.parse(fs.readFileSync(checkpoint, 'utf8')) as ShardFile;
    assert.equal(partial.complete, false);
    assert.deepEqual(partial.tally.batches, [0], 'the checkpoint lists the finished batch');
    // Progress counts every batch from the start, those in the checkpoint as done.
    const seen: Progress[] = [];
    const resumed = await simulate(snn, data, {
      ...opts,
      checkpoint,
      checkpointSeconds: 0,
      onProgress: (p) => {
        if (p.phase === 'simulate') seen.push(p);
      },
    });
    const batches = Math.ceil(c.n / c.batch);
    assert.deepEqual(seen[0], { phase: 'simulate', done: c.T[1], total: c.T[1] * batches, unit: seen[0].unit });
    assert.equal(
      seen[seen.length - 1].done - seen[0].done,
      c.T[1] * (batches - 1),
      'only the batches not in the checkpoint are simulated again',
    );
    assert.deepEqual(comparable(resumed), comparable(single));
    // A checkpoint of another run is refused.
    await assert.rejects(
      simulate(snn, data, { ...opts, T: [3, 9], checkpoint }),
      /checkpoint .*is the checkpoint of another run/,
    );
    const notShard = path.join(tmp, 'record.json');
    fs.writeFileSync(notShard, JSON.stringify({ kind: 'simulate' }));
    await assert.rejects(
      simulate(snn, data, { ...opts, checkpoint: notShard }),
      /checkpoint: .*record\.json is not a spikeport shard file/,
    );
  });
}

test('CLI: shards from --shard and from a Kubernetes index merge to the single run; --workers 2 gives it too; a run killed with SIGKILL resumes to it', async () => {
  const snnFile = path.join(tmp, 'cnn.snn.onnx');
  assert.equal(
    cli([
      'convert',
      model('mnist-cnn'),
      '--data',
      'mnist:train',
      '--calib-limit',
      '500',
      '--iterations',
      '5',
      '--out',
      snnFile,
      '-q',
    ]).code,
    0,
  );
  const common = [
    'simulate',
    snnFile,
    '--ann',
    model('mnist-cnn'),
    '--data',
    'mnist:test',
    '--limit',
    '300',
    '--batch',
    '50',
    '--T',
    '4,16',
    '--site-errors',
    '20',
    '--threads',
    '1',
    '-q',
  ];
  const single = cli([...common, '--json', 'single.json']);
  assert.equal(single.code, 0, single.stderr);
  const shardFiles = ['a.json', 'b.json', 'c.json'];
  assert.equal(cli([...common, '--shard', '0/3', '--json', 'a.json']).code, 0);
  assert.equal(cli([...common, '--json', 'b.json', '--shard-count', '3'], { JOB_COMPLETION_INDEX: '1' }).code, 0);
  const r2 = cli([...common, '--json', 'c.json'], {
    SLURM_ARRAY_TASK_ID: '3',
    SLURM_ARRAY_TASK_MIN: '1',
    SLURM_ARRAY_TASK_COUNT: '3',
  });
  assert.equal(r2.code, 0, r2.stderr);
  assert.match(r2.stdout, /shard 2 of 3 \(SLURM_ARRAY_TASK_ID\): batches 4\.\.5 of 6, 100 samples/);
  const m = cli(['merge', ...shardFiles, '--json', 'merged.json', '--report', 'merged.html']);
  assert.equal(m.code, 0, m.stderr);
  const read = (f: string): Record<string, unknown> =>
    JSON.parse(fs.readFileSync(path.join(tmp, f), 'utf8')) as Record<string, unknown>;
  assert.deepEqual(comparable(read('merged.json')), comparable(read('single.json')));
  assert.ok(fs.statSync(path.join(tmp, 'merged.html')).size > 1000);

  // The Slurm example as an array of 3 tasks numbered from 1, then its merge step.
  const slurm = path.join(process.cwd(), 'examples', 'cluster');
  const env = {
    ...process.env,
    SPIKEPORT: `${process.execPath} ${CLI}`,
    MODEL: snnFile,
    DATA: 'mnist:test',
    T: '4,16',
    BATCH: '50',
    OUT: path.join(tmp, 'slurm'),
    EXTRA: `--limit 300 --ann ${model('mnist-cnn')} --site-errors 20`,
    SLURM_ARRAY_TASK_MIN: '1',
    SLURM_ARRAY_TASK_COUNT: '3',
    SLURM_CPUS_PER_TASK: '1',
  };
  for (const id of ['1', '2', '3']) {
    const r = spawnSync('bash', [path.join(slurm, 'slurm-array.sh')], {
      env: { ...env, SLURM_ARRAY_TASK_ID: id },
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
  }
  const sm = spawnSync('bash', [path.join(slurm, 'slurm-merge.sh')], { env, encoding: 'utf8' });
  assert.equal(sm.status, 0, sm.stderr);
  assert.deepEqual(comparable(read('slurm/results.json')), comparable(read('single.json')));
  // The Kubernetes example: as many shards as completions, each pod its own index's files.
  const job = fs.readFileSync(path.join(slurm, 'k8s-indexed-job.yaml'), 'utf8');
  assert.equal(/completions: (\d+)/.exec(job)?.[1], /--shard-count (\d+)/.exec(job)?.[1]);
  assert.match(job, /completionMode: Indexed/);
  assert.match(job, /--json \S*shard-\$\{JOB_COMPLETION_INDEX\}\.json/);

  const w = cli([
    ...common.filter((a) => a !== '-q'),
    '--threads',
    String(Math.min(2, os.availableParallelism())),
    '--workers',
    '2',
    '--json',
    'workers.json',
  ]);
  assert.equal(w.code, 0, w.stderr);
  assert.deepEqual(comparable(read('workers.json')), comparable(read('single.json')));

  // A real kill: SIGKILL once the checkpoint lists a finished batch, then the same command again.
  // The run is held right after that write (test/hooks/hold-at-checkpoint.ts) and killed there:
  // the point of the kill does not depend on how fast this machine runs the batches.
  const ck = path.join(tmp, 'kill.ckpt');
  const args = [CLI, ...common, '--T', '4,64', '--json', 'killed.json', '--checkpoint', ck, '--checkpoint-every', '0'];
  const child = spawn(process.execPath, ['--import', HOLD, ...args], {
    cwd: tmp,
    stdio: ['ignore', 'pipe', 'ignore'],
    env: { ...process.env, SPIKEPORT_TEST_HOLD: ck },
  });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  const held = await new Promise<boolean>((resolve) => {
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      if (d.includes('held')) resolve(true);
    });
    child.on('exit', () => resolve(false));
  });
  assert.ok(held, 'the run reached its first checkpoint with a finished batch');
  child.kill('SIGKILL');
  await exited;
  const at = JSON.parse(fs.readFileSync(ck, 'utf8')) as ShardFile;
  assert.ok(!at.complete, 'killed midway');
  assert.deepEqual(at.tally.batches, [0], 'killed after its first batch of 6');
  assert.ok(!fs.existsSync(path.join(tmp, 'killed.json')), 'a killed run leaves no result behind');
  const again = spawnSync(process.execPath, args, { cwd: tmp, encoding: 'utf8' });
  assert.equal(again.status, 0, again.stderr);
  const full = cli([...common, '--T', '4,64', '--json', 'full.json']);
  assert.equal(full.code, 0, full.stderr);
  assert.deepEqual(comparable(read('killed.json')), comparable(read('full.json')));
  // A checkpoint of this run whose contents were edited (batches outside the shard) is refused.
  const edited = path.join(tmp, 'edited.ckpt');
  fs.writeFileSync(edited, JSON.stringify({ ...at, tally: { ...at.tally, batches: [0, 9] } }));
  const e = spawnSync(process.execPath, [CLI, ...common, '--T', '4,64', '--json', 'x.json', '--checkpoint', edited], {
    cwd: tmp,
    encoding: 'utf8',
  });
  assert.equal(e.status, 1, e.stderr);
  assert.match(e.stderr, /--checkpoint: .*edited\.ckpt: its batches are not ascending within 0\.\.5/);
});

test('shards of an npz file and of an image folder merge to their single run too', () => {
  const snnFile = path.join(tmp, 'cnn.snn.onnx');
  assert.equal(cli(['data', 'mnist:test', '--limit', '120', '--out', 'd.npz', '-q']).code, 0);
  assert.equal(
    cli(['data', 'mnist:test', '--limit', '120', '--format', 'imagefolder', '--out', 'folder', '-q']).code,
    0,
  );
  for (const [tag, spec] of [
    ['npz', `npz:${path.join(tmp, 'd.npz')}`],
    ['folder', `imagefolder:${path.join(tmp, 'folder')}`],
  ]) {
    const common = ['simulate', snnFile, '--data', spec, '--batch', '25', '--T', '4,16', '--threads', '1', '-q'];
    assert.equal(cli([...common, '--json', `${tag}-single.json`]).code, 0);
    for (const k of [0, 1]) {
      const r = cli([...common, '--shard', `${k}/2`, '--json', `${tag}-${k}.json`]);
      assert.equal(r.code, 0, r.stderr);
    }
    assert.equal(cli(['merge', `${tag}-1.json`, `${tag}-0.json`, '--json', `${tag}-merged.json`]).code, 0);
    const read = (f: string): Record<string, unknown> =>
      JSON.parse(fs.readFileSync(path.join(tmp, f), 'utf8')) as Record<string, unknown>;
    assert.deepEqual(comparable(read(`${tag}-merged.json`)), comparable(read(`${tag}-single.json`)), tag);
    assert.equal(read(`${tag}-merged.json`).samples, 120);
  }
});

test('in a job array: --shard 0/1 is a whole run with its report, the demo ignores the array; a worker killed or a parent stopped ends the run in one line and leaves no temporary files', async () => {
  const snnFile = path.join(tmp, 'cnn.snn.onnx');
  const base = [
    'simulate',
    snnFile,
    '--data',
    'mnist:test',
    '--limit',
    '300',
    '--batch',
    '50',
    '--T',
    '4,16',
    '--threads',
    '1',
    '-q',
  ];
  const slurm = { SLURM_ARRAY_TASK_ID: '2', SLURM_ARRAY_TASK_COUNT: '3' };
  const whole = cli([...base, '--shard', '0/1', '--json', 'whole.json', '--report', 'whole.html'], slurm);
  assert.equal(whole.code, 0, whole.stderr);
  const plain = cli([...base, '--json', 'plain.json']);
  assert.equal(plain.code, 0, plain.stderr);
  const read = (f: string): Record<string, unknown> =>
    JSON.parse(fs.readFileSync(path.join(tmp, f), 'utf8')) as Record<string, unknown>;
  assert.deepEqual(comparable(read('whole.json')), comparable(read('plain.json')));
  const demo = cli(['demo', '--limit', '100', '--T', '4', '--iterations', '2', '--calib-limit', '200', '-q'], {
    JOB_COMPLETION_INDEX: '0',
  });
  assert.equal(demo.code, 0, demo.stderr);

  // Workers of a longer run: kill one, or stop the parent.
  if (os.availableParallelism() < 2) return;
  // The runs get a temporary folder of their own, so other processes' files cannot be mistaken for theirs.
  const privateTmp = path.join(tmp, 'tmpdir');
  fs.mkdirSync(privateTmp, { recursive: true });
  const temps = (): string[] =>
    fs.readdirSync(privateTmp).filter((d) => d.startsWith('spikeport-workers-') || d.startsWith('spikeport-snn-'));
  const before = new Set(temps());
  const long = [
    CLI,
    'simulate',
    model('mnist-cnn'),
    '--data',
    'mnist:test',
    '--limit',
    '4000',
    '--batch',
    '50',
    '--T',
    '4,64',
    '--calib-limit',
    '300',
    '--iterations',
    '3',
    '--threads',
    '2',
    '--workers',
    '2',
    '-q',
  ];
  const pids = (parent: number): number[] => {
    const r = spawnSync('pgrep', ['-P', String(parent)], { encoding: 'utf8' });
    return r.stdout.split('\n').filter(Boolean).map(Number);
  };
  for (const how of ['kill a worker', 'stop the parent'] as const) {
    // Without -q: the parent's first progress line of the workers' simulation is the moment to act
    // (both workers run by then, and most of the run is still ahead), whatever the machine's speed.
    const child = spawn(process.execPath, [...long.filter((a) => a !== '-q'), '--json', `w-${how.length}.json`], {
      cwd: tmp,
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, TMPDIR: privateTmp },
    });
    let stderr = '';
    const simulating = new Promise<boolean>((resolve) => {
      child.stderr.setEncoding('utf8').on('data', (d: string) => {
        stderr += d;
        if (/^simulate \(2 workers\): /m.test(stderr)) resolve(true);
      });
      child.on('exit', () => resolve(false));
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    assert.ok(await simulating, `the workers started simulating (${how}): ${stderr}`);
    const workers = pids(child.pid as number);
    assert.equal(workers.length, 2, `two workers run (${how})`);
    if (how === 'kill a worker') process.kill(workers[0], 'SIGKILL');
    else process.kill(child.pid as number, 'SIGTERM');
    const code = await exited;
    const lines = stderr
      .trim()
      .split('\n')
      .filter((l) => !/^[^:]+: \d+\/\d+ [^(]*\(\d+%\), /.test(l)); // progress lines (done/total, the unit, the share)
    if (how === 'kill a worker') {
      assert.equal(code, 1, stderr);
      assert.match(lines[0] ?? '', /^spikeport: error: worker [01] was stopped by SIGKILL \(out of memory\?/);
      assert.equal(lines.length, 1, stderr);
    } else {
      assert.equal(code, 143, stderr);
    }
    // The parent leaves only after its workers are gone: nothing to wait for here.
    // (A killed worker whose parent is gone may stay a zombie until init reaps it: not running.)
    const running = (pid: number): boolean => {
      try {
        return !/^\d+ \(.*\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
      } catch {
        return false;
      }
    };
    for (const w of workers) assert.ok(!running(w), `worker ${w} still runs after: ${how}`);
    assert.deepEqual(
      temps().filter((d) => !before.has(d)),
      [],
      `temporary folders left after: ${how}`,
    );
    assert.ok(!fs.existsSync(path.join(tmp, `w-${how.length}.json`)));
  }
});

test('bad shard sets and options: one line, exit 1, nothing written', () => {
  // (The shard files of the previous test.)
  const snnFile = path.join(tmp, 'cnn.snn.onnx');
  const common = [
    'simulate',
    snnFile,
    '--data',
    'mnist:test',
    '--limit',
    '300',
    '--batch',
    '50',
    '--T',
    '4,16',
    '--threads',
    '1',
    '-q',
  ];
  const shard = (f: string): ShardFile => JSON.parse(fs.readFileSync(path.join(tmp, f), 'utf8')) as ShardFile;
  const write = (f: string, s: unknown): string => {
    fs.writeFileSync(path.join(tmp, f), JSON.stringify(s));
    return f;
  };
  const b = shard('b.json');
  const other = (run: ShardFile['run']): ShardFile => ({ ...b, run, config: configHash(run, b.context) });
  const cases: [string[], RegExp][] = [
    [[...common, '--shard', '3/3', '--json', 'x.json'], /--shard 3\/3: the index must be in 0\.\.2/],
    [[...common, '--shard', '0/7', '--json', 'x.json'], /7 shards for 6 batches/],
    [
      [...common, '--workers', '2', '--limit', '50', '--json', 'x.json'],
      /--workers 2: the run has one batch of 50; every worker needs at least one/,
    ],
    [[...common, '--json', 'x.json', '--checkpoint-every', '5'], /--checkpoint-every: give --checkpoint FILE too/],
    [['report', 'a.json', '--out', 'x.html'], /a\.json is a shard file: merge the shards of its run/],
    [[...common, '--shard', 'one', '--json', 'x.json'], /"one" is not K\/N/],
    [[...common, '--shard', '0/3'], /running as one shard \(--shard\): give --json FILE/],
    [
      [...common, '--shard', '0/3', '--json', 'x.json', '--report', 'x.html'],
      /--report: a shard has no results of its own/,
    ],
    [[...common, '--json', 'x.json', '--checkpoint', snnFile], /--checkpoint .* would overwrite MODEL/],
    [
      [...common, '--json', 'x.json', '--device', 'cuda'],
      /--device cuda: onnxruntime-node was installed without its CUDA libraries \(.*libonnxruntime_providers_cuda\.so.*ONNXRUNTIME_NODE_INSTALL=cuda12/,
    ],
    [[...common, '--json', 'x.json', '--device', 'tpu'], /--device "tpu" is not a device \(cpu, cuda or cuda:N\)/],
    [['merge', 'a.json', 'b.json', '--json', 'x.json'], /shard 2 of 3 is missing \(given: 0, 1\)/],
    [
      ['merge', 'a.json', 'b.json', 'b.json', 'c.json', '--json', 'x.json'],
      /shard 1 of 3 is given twice: b\.json and b\.json/,
    ],
    [
      [
        'merge',
        'a.json',
        write('m.json', other({ ...b.run, model: { ...b.run.model, source: 'f'.repeat(64) } })),
        'c.json',
        '--json',
        'x.json',
      ],
      /a\.json and m\.json are not shards of one run: they simulate different models/,
    ],
    [
      [
        'merge',
        'a.json',
        write('t.json', other({ ...b.run, thresholds: '0'.repeat(64) })),
        'c.json',
        '--json',
        'x.json',
      ],
      /not shards of one run: they simulate the same model with different thresholds/,
    ],
    [
      [
        'merge',
        'a.json',
        write('o.json', {
          ...other({ ...b.run, options: { ...b.run.options, engine: 'loop' } }),
          tally: { ...b.tally, engines: { loop: b.tally.batches.length } },
        }),
        'c.json',
        '--json',
        'x.json',
      ],
      /not shards of one run: they ran with different options: engine "auto, fused, steps" and "loop"/,
    ],
    [
      [
        'merge',
        'a.json',
        write('g.json', { ...b, tally: { ...b.tally, engines: { steps: 1, fused: 4 } } }),
        'c.json',
        '--json',
        'x.json',
      ],
      /g\.json: its engines ran 5 batches, it counts 2/,
    ],
    [
      [
        'merge',
        'a.json',
        write('q.json', {
          ...other({ ...b.run, options: { ...b.run.options, engines: 'loop' } }),
          tally: { ...b.tally, engines: { fused: 2 } },
        }),
        'c.json',
        '--json',
        'x.json',
      ],
      /q\.json: engine loop does not run batches with fused/,
    ],
    [
      [
        'merge',
        'a.json',
        write('f.json', other({ ...b.run, data: { ...b.run.data, fingerprint: '1'.repeat(64) } })),
        'c.json',
        '--json',
        'x.json',
      ],
      /not shards of one run: they read different data under the same name mnist:test/,
    ],
    [
      [
        'merge',
        'a.json',
        write('i.json', {
          ...b,
          tally: { ...b.tally, scores: { ...b.tally.scores, top1: [b.tally.samples + 50, 0, 0, 0] } },
        }),
        'c.json',
        '--json',
        'x.json',
      ],
      /i\.json: its statistics do not fit its batches: window 0: top-1 150, top-5 \d+ of 100 is impossible/,
    ],
    [
      [
        'merge',
        'a.json',
        write('s.json', { ...b, tally: { ...b.tally, samples: 99999 } }),
        'c.json',
        '--json',
        'x.json',
      ],
      /s\.json: 99999 samples counted, its batches hold 100/,
    ],
    [
      [
        'merge',
        'a.json',
        write('k.json', { ...b, context: { ...b.context, T: [4, 8] } }),
        'c.json',
        '--json',
        'x.json',
      ],
      /k\.json: its record context \(T, delays, task\) does not match its options/,
    ],
    [
      [
        'merge',
        'a.json',
        write('h.json', { ...b, context: { ...b.context, model: 'other.onnx' } }),
        'c.json',
        '--json',
        'x.json',
      ],
      /h\.json: its configuration does not match its hash/,
    ],
    [
      [
        'merge',
        'a.json',
        write('e.json', {
          ...b,
          run: { ...b.run, options: { ...b.run.options, references: !b.run.options.references } },
        }),
        'c.json',
        '--json',
        'x.json',
      ],
      /e\.json: its configuration does not match its hash/,
    ],
    [
      ['merge', 'a.json', write('p.json', { ...b, complete: false }), 'c.json', '--json', 'x.json'],
      /p\.json is the checkpoint of an unfinished shard/,
    ],
    [
      ['merge', 'a.json', write('n.json', { ...b, tally: { ...b.tally, samples: -1 } }), 'c.json', '--json', 'x.json'],
      /n\.json: a shard file with a bad field tally\.samples/,
    ],
    [['merge', 'single.json', '--json', 'x.json'], /single\.json is not a spikeport shard file/],
    [['merge', 'a.json', 'b.json', 'c.json', '--json', 'a.json'], /--json a\.json would overwrite shard file a\.json/],
  ];
  // A shard from a job array's environment: its errors name the variables (or --shard-count), never --shard.
  const slurm = (id: string, count: string, min?: string): NodeJS.ProcessEnv => ({
    SLURM_ARRAY_TASK_ID: id,
    SLURM_ARRAY_TASK_COUNT: count,
    ...(min ? { SLURM_ARRAY_TASK_MIN: min } : {}),
  });
  const fromEnv: [string[], RegExp, NodeJS.ProcessEnv][] = [
    [
      [...common, '--json', 'x.json'],
      /^spikeport: error: the Slurm array's shard 5 of 70000 \(SLURM_ARRAY_TASK_ID=5, SLURM_ARRAY_TASK_COUNT=70000\): at most 65536 shards \(got 70000\)/,
      slurm('5', '70000'),
    ],
    [
      [...common, '--json', 'x.json'],
      /^spikeport: error: the Slurm array's shard 2 of 7 \(SLURM_ARRAY_TASK_ID=3, SLURM_ARRAY_TASK_MIN=1, SLURM_ARRAY_TASK_COUNT=7\): 7 shards for 6 batches: every shard needs at least one/,
      slurm('3', '7', '1'),
    ],
    [
      [...common, '--json', 'x.json', '--shard-count', '7'],
      /^spikeport: error: the Indexed Job's shard 6 of 7 \(JOB_COMPLETION_INDEX=6, --shard-count 7\): 7 shards for 6 batches/,
      { JOB_COMPLETION_INDEX: '6' },
    ],
    [
      [...common, '--json', 'x.json', '--as-target', 'sinabs'],
      /^spikeport: error: --as-target runs the whole run in one process, not one shard \(SLURM_ARRAY_TASK_ID\)/,
      slurm('1', '3'),
    ],
  ];
  for (const [args, message, env] of [
    ...cases.map(([a, m]): [string[], RegExp, NodeJS.ProcessEnv] => [a, m, {}]),
    ...fromEnv,
  ]) {
    const r = cli(args, env);
    assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    if (Object.keys(env).length)
      assert.doesNotMatch(r.stderr, /--shard(?!-count)/, 'a shard from the environment is not --shard');
    assert.ok(
      !fs.existsSync(path.join(tmp, 'x.json')) && !fs.existsSync(path.join(tmp, 'x.html')),
      `${args.join(' ')} left a file`,
    );
  }
  // The CUDA check names the binding's folder: a folder with both libraries passes it.
  const fake = fs.mkdtempSync(path.join(tmp, 'ort-'));
  assert.throws(
    () => checkCudaInstalled(fake),
    /libonnxruntime_providers_shared\.so, libonnxruntime_providers_cuda\.so not in/,
  );
  for (const lib of ['libonnxruntime_providers_shared.so', 'libonnxruntime_providers_cuda.so'])
    fs.writeFileSync(path.join(fake, lib), '');
  if (process.platform === 'linux' && process.arch === 'x64') checkCudaInstalled(fake);
});
