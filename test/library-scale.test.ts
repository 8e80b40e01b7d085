/**
 * The library runs what the CLI runs: `simulate(…, { workers })` splits a run over worker
 * processes and gives the record of one process; an AbortSignal ends the workers, leaves no
 * process or temporary file and keeps the checkpoints, from which the same call resumes;
 * `asTarget` adds the target's results, the same the CLI's `--as-target` writes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { convert } from '../src/api/convert.js';
import { simulate, simulateShard } from '../src/api/simulate.js';
import { asTarget, targetNetwork } from '../src/api/nir.js';
import { openDataset } from '../src/data/sources.js';
import { memoryDataset } from '../src/data/dataset.js';
import { SpikeportError } from '../src/errors.js';
import type { Notice, Progress } from '../src/progress.js';
import type { SimulateRecord } from '../src/report/record.js';
import { tempDir } from './temp.js';

const CLI = path.join(process.cwd(), 'dist', 'src', 'cli', 'main.js');
const MODEL = path.join(process.cwd(), 'models', 'mnist-cnn.onnx');
const twoCores = os.availableParallelism() >= 2;

const snnPromise = convert(MODEL, openDataset('mnist:train', 300), { iterations: 3, batchSize: 100, threads: 1 });

/** A record without what differs between two runs of the same work: when, how long, which engine ran which batch. */
function comparable(r: SimulateRecord): Record<string, unknown> {
  const {
    created: _c,
    simulationSeconds: _s,
    times: _t,
    engines: _e,
    ...rest
  } = r as unknown as Record<string, unknown>;
  return JSON.parse(JSON.stringify(rest)) as Record<string, unknown>;
}

/** This process's children (pgrep never lists itself). */
function children(): number[] {
  const r = spawnSync('pgrep', ['-P', String(process.pid)], { encoding: 'utf8' });
  return r.stdout.split('\n').filter(Boolean).map(Number);
}

function running(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

test(
  'simulate with 2 workers gives the record of one process (metrics, rates, energy, references, site errors), from 2 processes',
  { skip: !twoCores },
  async () => {
    const snn = await snnPromise;
    const opts = { T: [4, 16], batchSize: 50, references: true, siteErrors: 20, threads: 2 } as const;
    const one = await simulate(snn, openDataset('mnist:test', 300), { ...opts, workers: 1 });
    const phases = new Set<string>();
    const seen = new Set<number>();
    const two = await simulate(snn, openDataset('mnist:test', 300), {
      ...opts,
      workers: 2,
      onProgress: (p: Progress) => {
        phases.add(p.phase);
        // While the workers simulate, two of them are children of this process.
        if (p.phase.startsWith('simulate')) for (const c of children()) seen.add(c);
      },
    });
    assert.deepEqual(comparable(two), comparable(one));
    assert.equal(two.samples, 300);
    assert.ok(two.siteErrors && two.ann, 'references and site errors came back from the workers');
    // Really two processes: each shard's times, and two children seen while simulating.
    assert.deepEqual(
      two.times?.workers?.map((w) => [w.shard, w.batches]),
      [
        [0, 3],
        [1, 3],
      ],
    );
    assert.equal(one.times?.workers, undefined);
    assert.ok(phases.has('simulate (2 workers)'), [...phases].join(', '));
    assert.equal(seen.size, 2, `children seen: ${[...seen].join(', ')}`);
    // A data set given as its spec is opened by each worker the same way.
    const spec = { T: [2], batchSize: 1000, threads: 2 } as const;
    const bySpec = await simulate(snn, 'mnist:test', { ...spec, workers: 2 });
    const whole = await simulate(snn, 'mnist:test', { ...spec, workers: 1 });
    assert.deepEqual(comparable(bySpec), comparable(whole));
    assert.equal(bySpec.samples, 10000);
  },
);

test('workers: data from memory is refused for N > 1 and runs here for auto; bad counts and combinations name their field', async () => {
  const snn = await snnPromise;
  const mnist = openDataset('mnist:test', 100);
  const mem = memoryDataset({
    name: 'mine',
    size: 100,
    sampleShape: [1, 28, 28],
    scale: 1 / 255,
    x: new Uint8Array(100 * 784),
    labels: new Int32Array(100),
  });
  const fails = async (p: Promise<unknown>, field: string, text: RegExp): Promise<void> => {
    await assert.rejects(p, (e: unknown) => {
      assert.ok(e instanceof SpikeportError, String(e));
      assert.equal(e.field, field);
      assert.match(e.message, text);
      assert.doesNotMatch(e.message, /--/);
      return true;
    });
  };
  if (twoCores)
    await fails(
      simulate(snn, mem, { T: [2], batchSize: 50, workers: 2 }),
      'workers',
      /each worker opens the data itself, so it must come from a spec/,
    );
  const auto = await simulate(snn, mem, { T: [2], batchSize: 10, workers: 'auto', threads: 1 });
  assert.equal(auto.times?.workers, undefined, 'auto on data in memory: one process');
  if (twoCores)
    await fails(
      simulate(snn, mnist, { T: [2], batchSize: 100, workers: 2 }),
      'workers',
      /^workers 2: the run has one batch of 100; every worker needs at least one \(use at most 1, or a smaller batchSize\)/,
    );
  await fails(simulate(snn, mnist, { T: [2], workers: 0 }), 'workers', /^workers must be an integer ≥ 1/);
  await fails(simulate(snn, mnist, { T: [2], workers: 10_000 }), 'workers', /more processes than the \d+ cores/);
  if (twoCores)
    await fails(
      simulate(snn, mnist, { T: [2], workers: 2, asTarget: 'norse' }),
      'asTarget',
      /^asTarget runs in one process, without workers$/,
    );
  await fails(simulateShard(snn, mnist, { T: [2], asTarget: 'norse' }), 'asTarget', /give it to simulate/);
  await fails(simulate(snn, mnist, { T: [2], asTarget: 'loihi' as 'loihi2' }), 'asTarget', /unknown target "loihi"/);
});

test(
  'an abort ends the workers (none left running), removes the temporary files, keeps the checkpoints; the same call resumes from them to the uninterrupted record',
  { skip: !twoCores },
  async (t) => {
    const snn = await snnPromise;
    const dir = tempDir('spikeport-library-abort-', t);
    // The workers' temporary folder goes where os.tmpdir() says: a folder of this test's own.
    const privateTmp = path.join(dir, 'tmp');
    fs.mkdirSync(privateTmp);
    const saved = process.env.TMPDIR;
    process.env.TMPDIR = privateTmp;
    t.after(() => {
      if (saved === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = saved;
    });
    const ck = path.join(dir, 'run.ckpt');
    const opts = { T: [4, 32], batchSize: 50, threads: 2, checkpoint: ck, checkpointSeconds: 0 } as const;
    const data = openDataset('mnist:test', 1000);
    const stop = new AbortController();
    let workers: number[] = [];
    // Abort once both workers have a checkpoint (a batch each done), with most of the run still ahead.
    const run = simulate(snn, data, {
      ...opts,
      workers: 2,
      signal: stop.signal,
      onProgress: (p) => {
        if (stop.signal.aborted || !p.phase.startsWith('simulate')) return;
        if (fs.existsSync(`${ck}.0`) && fs.existsSync(`${ck}.1`)) {
          workers = children();
          stop.abort(new Error('stopped by the test'));
        }
      },
    });
    await assert.rejects(run, /stopped by the test/);
    assert.equal(workers.length, 2, 'both workers ran when the run was stopped');
    for (const w of workers) assert.ok(!running(w), `worker ${w} still runs after the abort`);
    assert.deepEqual(children(), [], 'no child process left');
    assert.deepEqual(fs.readdirSync(privateTmp), [], 'temporary files left');
    const kept = [0, 1].map(
      (k) => (JSON.parse(fs.readFileSync(`${ck}.${k}`, 'utf8')) as { tally: { batches: number[] } }).tally.batches,
    );
    assert.ok(
      kept.every((b) => b.length >= 1 && b.length < 10),
      `batches kept per worker: ${kept.map((b) => b.length).join(', ')}`,
    );
    // The same call continues from the checkpoints (each worker says so) to the record of one uninterrupted process.
    const notices: Notice[] = [];
    const resumed = await simulate(snn, data, { ...opts, workers: 'auto', onNotice: (n) => notices.push(n) });
    assert.equal(resumed.times?.workers?.length, 2, 'auto keeps the number of workers of the checkpoints');
    assert.deepEqual(notices.filter((n) => n.code === 'resumed').length, 2, notices.map((n) => n.message).join('; '));
    const whole = await simulate(snn, data, { ...opts, checkpoint: undefined, workers: 1 });
    assert.deepEqual(comparable(resumed), comparable(whole));
    // A signal already aborted starts nothing.
    await assert.rejects(
      simulate(snn, data, { T: [2], workers: 2, signal: AbortSignal.abort(new Error('early')) }),
      /early/,
    );
    assert.deepEqual(fs.readdirSync(privateTmp), []);
  },
);

test("asTarget: the record's asTarget holds the target's results on the same samples (as simulating the target network gives) and equals what simulate --as-target writes", async (t) => {
  const dir = tempDir('spikeport-library-target-', t);
  const unit = await convert(MODEL, openDataset('mnist:train', 200), {
    iterations: 2,
    batchSize: 100,
    threads: 1,
    spikes: 'unit',
  });
  const file = path.join(dir, 'unit.snn.onnx');
  unit.save(file);
  const opts = { T: [4, 16], batchSize: 50, threads: 1, references: false, siteErrors: 0 } as const;
  const data = openDataset('mnist:test', 150);
  for (const [as, flags] of [
    ['sinabs', ['--as-target', 'sinabs']],
    [{ target: 'loihi2', weightBits: 6 }, ['--as-target', 'loihi2', '--weight-bits', '6']],
  ] as const) {
    const lib = await simulate(unit, data, { ...opts, asTarget: as, modelName: 'unit.snn.onnx' });
    const target = typeof as === 'string' ? as : as.target;
    const weightBits = typeof as === 'string' ? undefined : as.weightBits;
    // Independently: the target network simulated as any network is.
    const direct = await simulate(asTarget(unit, target, { weightBits }), data, opts);
    assert.ok(lib.asTarget, 'the record has its asTarget part');
    assert.deepEqual(lib.asTarget.results, direct.results);
    assert.deepEqual(lib.asTarget.notes, targetNetwork(unit, target, { weightBits }).notes);
    assert.equal(lib.asTarget.target, target);
    assert.equal(lib.asTarget.weightBits, weightBits);
    // spikeport's own results are those of a run without asTarget.
    const plain = await simulate(unit, data, { ...opts, modelName: 'unit.snn.onnx' });
    assert.deepEqual(lib.results, plain.results);
    // The CLI writes the same.
    const json = path.join(dir, `${target}.json`);
    const r = spawnSync(
      process.execPath,
      [CLI, 'simulate', file, '--data', 'mnist:test', '--limit', '150', '--batch', '50', '--T', '4,16']
        .concat(['--site-errors', '0', '--threads', '1', '--json', json, '-q'])
        .concat(flags),
      { encoding: 'utf8', cwd: dir },
    );
    assert.equal(r.status, 0, r.stderr);
    const written = JSON.parse(fs.readFileSync(json, 'utf8')) as SimulateRecord;
    assert.deepEqual(written.asTarget, JSON.parse(JSON.stringify(lib.asTarget)));
    assert.deepEqual(
      written.results.map((x) => x.metric),
      lib.results.map((x) => x.metric),
    );
  }
});
