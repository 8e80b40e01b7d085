/**
 * A run split over worker processes on this machine (simulate's `workers`): worker k simulates
 * shard k of N in its own process (api/worker.ts) with threads/N ONNX Runtime threads, and the
 * shard files are merged into the run's record, the same record one process gives. ONNX
 * Runtime's intra-op threads scale poorly on small networks, so separate processes can use the
 * cores better (docs/benchmarks.md measures both).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Dataset } from '../data/dataset.js';
import type { OpenOptions } from '../data/sources.js';
import type { Snn } from '../snn/network.js';
import type { SimulateRecord } from '../report/record.js';
import type { Notice, Progress } from '../progress.js';
import { autoWorkerCount, autoWorkerPlan, type WorkerPlan } from '../runtime/auto.js';
import { defaultThreads } from '../ort/session.js';
import { SpikeportError, field, optionError, type ErrorCode } from '../errors.js';
import { scratchDir, scratchWrite } from '../files.js';
import { type Shard } from './shards.js';
import { mergeShards } from './merge.js';
import { readShardFile, type ShardFile } from './shard-file.js';
import type { SimulateOptions } from './simulate-options.js';

/** What a worker process is asked to do: everything resolved, as JSON. */
export interface WorkerJob {
  /** The converted network's file (a copy of the caller's network, byte for byte). */
  readonly snn: string;
  /** The source ANN (for references and site errors); null: none. */
  readonly ann: string | null;
  /** The data: its spec, and how it was opened. */
  readonly data: string;
  readonly limit?: number;
  readonly open: OpenOptions;
  readonly options: SimulateOptions;
  /** Where the worker writes its shard file. */
  readonly out: string;
}

/** A worker's progress line on stdout. */
export const PROGRESS_PREFIX = 'spikeport-progress ';
/** A worker's notice line on stdout (e.g. that it resumes from its checkpoint). */
export const NOTICE_PREFIX = 'spikeport-notice ';
/** A worker's error in the input (a SpikeportError as data), its last line on stdout. */
export const ERROR_PREFIX = 'spikeport-error ';

/** A SpikeportError as a worker sends it: its message with the fields marked, so that the caller words them. */
export interface WorkerError {
  readonly code: ErrorCode;
  readonly message: string;
  readonly field?: string;
  readonly values?: SpikeportError['values'];
}

/** The error as a line a worker writes. */
export function workerErrorLine(e: SpikeportError): string {
  const d: WorkerError = { code: e.code, message: e.render(field), field: e.field, values: e.values };
  return `${ERROR_PREFIX}${JSON.stringify(d)}\n`;
}

// The worker's entry, beside this module (in dist/ and in the installed package alike).
const WORKER = fileURLToPath(new URL('./worker.js', import.meta.url));

/** Worker k's checkpoint, for a run kept in `checkpoint`: one file per worker beside the one named. */
export function workerCheckpoints(checkpoint: string, count: number): string[] {
  return Array.from({ length: count }, (_, k) => `${checkpoint}.${k}`);
}

/** What deciding the number of workers needs of a run's options (resolved). */
export interface WorkerRun {
  readonly workers: number | 'auto';
  readonly T: readonly number[];
  readonly batchSize: number;
  readonly threads?: number;
  readonly checkpoint?: string;
  /** The engine asked for: with `auto`, large-state networks may get fused workers. */
  readonly engine?: string;
  /** `asTarget` given: the comparison runs in one process. */
  readonly asTarget: boolean;
}

/**
 * How many processes `workers` means for this run, and the engine each starts with: a number as
 * given; `auto` one per thread when the run is long enough for each worker's setup to pay, its
 * layers are small and every worker gets at least two batches (runtime/auto.ts autoWorkerCount);
 * with engine `auto`, large-state networks also get one fused worker per thread when all their
 * peaks fit in the memory available (autoWorkerPlan); else one. A run resumed from worker
 * checkpoints keeps the number of workers it had (whatever the threads now). `auto` is one when
 * the data cannot be opened again by another process (made in memory) or with `asTarget`.
 */
export function workerPlan(snn: Snn, data: Dataset, run: WorkerRun): WorkerPlan {
  if (run.workers !== 'auto') return { workers: run.workers };
  if (!data.reopen || run.asTarget) return { workers: 1 };
  if (run.checkpoint && fs.existsSync(`${run.checkpoint}.0`)) {
    try {
      return { workers: readShardFile(`${run.checkpoint}.0`).shard.count };
    } catch {
      // not a worker checkpoint: the worker reading it says what is wrong
    }
  }
  const batches = Math.ceil(data.size / run.batchSize);
  if (batches < 2) return { workers: 1 };
  const threads = run.threads ?? defaultThreads();
  const steps = Math.max(...run.T);
  const r = { samples: data.size, steps, batchSize: run.batchSize, threads };
  if ((run.engine ?? 'auto') !== 'auto') return { workers: autoWorkerCount(snn.spec, r) };
  return autoWorkerPlan(snn.spec, r, availableMemory());
}

/** Bytes of memory this process could still take: what the system has available, within a cgroup's limit. */
function availableMemory(): number {
  const limit = process.constrainedMemory?.() ?? 0;
  return limit > 0 ? Math.min(os.freemem(), limit) : os.freemem();
}

/** The checks of `workers` against the run, before any process starts. */
export function checkWorkers(data: Dataset, count: number, batchSize: number): void {
  if (count <= 1) return;
  if (!data.reopen)
    throw optionError(
      'workers',
      `${count}: each worker opens the data itself, so it must come from a spec (a spec string or openDataset), not from memory`,
    );
  const batches = Math.ceil(data.size / batchSize);
  if (count > batches)
    throw optionError(
      'workers',
      `${count}: the run has ${batches === 1 ? 'one batch' : `${batches} batches`} of ${batchSize}; every worker needs at least one (use at most ${batches}, or a smaller ${field('batchSize')})`,
    );
}

/**
 * The run as `run.count` shards in as many processes, merged: the record `simulate` gives in
 * one. The network goes to the workers as a temporary copy of its file; each worker opens the
 * data from its spec as `data` was opened, and gets `options` as given (without the callbacks).
 * Worker k's checkpoint (when asked for) is `<checkpoint>.<k>`. On `options.signal`, every
 * worker is ended (none outlives the call), the temporary files are removed, the checkpoints
 * kept, and the promise rejects with the signal's reason.
 */
export async function simulateInWorkers(
  snn: Snn,
  data: Dataset,
  options: SimulateOptions,
  run: { readonly count: number; readonly batchSize: number },
): Promise<SimulateRecord> {
  const { count } = run;
  checkWorkers(data, count, run.batchSize);
  const reopen = data.reopen as NonNullable<Dataset['reopen']>;
  const { onProgress, onNotice, signal, workers: _w, asTarget: _t, ...rest } = options;
  signal?.throwIfAborted();
  const dir = scratchDir('spikeport-workers-');
  const children = new Set<ChildProcess>();
  const exits = new Set<Promise<unknown>>();
  // SIGKILL: a worker inside an ONNX Runtime call would see a gentler signal only when the call
  // ends; all it writes is atomic (its shard file in our folder, its checkpoint), so nothing is lost.
  const stopAll = (): void => {
    for (const c of children) c.kill('SIGKILL');
  };
  let aborted = false;
  const onAbort = (): void => {
    aborted = true;
    stopAll();
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const snnFile = path.join(dir, 'network.snn.onnx');
    scratchWrite(snnFile, snn.toBytes());
    const perWorker = Math.max(1, Math.floor((options.threads ?? defaultThreads()) / count));
    // Each worker's latest progress per phase. The simulation's total is the sum of the workers'
    // totals, shown once every worker has reported it (each says its whole total at the start),
    // so it does not grow as workers start; a phase only some run (site errors: worker 0) shows
    // theirs once no worker is still simulating.
    const progress = Array.from({ length: count }, () => new Map<string, Progress>());
    const simulating = (m: Map<string, Progress>): boolean => {
      const p = m.get('simulate');
      return p !== undefined && p.done < p.total;
    };
    const report = (phase: string): void => {
      if (!onProgress) return;
      if (phase === 'simulate' && progress.some((m) => !m.has(phase))) return;
      if (phase !== 'simulate' && progress.some(simulating)) return;
      const ps = progress.flatMap((m) => m.get(phase) ?? []);
      onProgress({
        phase: `${phase} (${count} workers)`,
        done: ps.reduce((a, p) => a + p.done, 0),
        total: ps.reduce((a, p) => a + p.total, 0),
        ...(ps[0]?.unit ? { unit: ps[0].unit } : {}),
      });
    };
    let failure: unknown = null;
    const runs = Array.from({ length: count }, async (_, k) => {
      const shard: Shard = { index: k, count };
      const out = path.join(dir, `shard-${k}.json`);
      const job: WorkerJob = {
        snn: snnFile,
        ann: snn.source?.source.path ?? null,
        data: data.name,
        ...(reopen.limit !== undefined ? { limit: reopen.limit } : {}),
        open: reopen.options,
        out,
        options: {
          ...rest,
          shard,
          threads: perWorker,
          ...(options.checkpoint !== undefined ? { checkpoint: workerCheckpoints(options.checkpoint, count)[k] } : {}),
        },
      };
      const jobFile = path.join(dir, `job-${k}.json`);
      scratchWrite(jobFile, JSON.stringify(job));
      try {
        await runOne(jobFile, k, children, exits, {
          onProgress: (p) => {
            progress[k].set(p.phase, p);
            report(p.phase);
          },
          onNotice,
        });
      } catch (e) {
        failure ??= e; // the first to fail says why; the others were stopped because of it
        stopAll(); // one worker failed: the run cannot finish, so stop the others now
        throw e;
      }
      return { name: `worker ${k}`, shard: readShardFile(out) };
    });
    const settled = await Promise.allSettled(runs);
    if (aborted) throw signal?.reason;
    if (failure !== null) throw failure;
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) throw failed.reason;
    return mergeShards(
      settled.map((s) => (s as PromiseFulfilledResult<{ name: string; shard: ShardFile }>).value),
      { model: options.modelName, timing: snn.timing ?? undefined, notices: snn.notices },
    );
  } finally {
    signal?.removeEventListener('abort', onAbort);
    stopAll();
    // Leave once every worker has exited: none outlives the run, and none writes into the folder removed here.
    await Promise.all(exits);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function runOne(
  jobFile: string,
  k: number,
  children: Set<ChildProcess>,
  exits: Set<Promise<unknown>>,
  on: { onProgress: (p: Progress) => void; onNotice?: (n: Notice) => void },
): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [WORKER, jobFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    exits.add(
      new Promise((done) => {
        child.once('close', done);
        child.once('error', done);
      }),
    );
    let err = '';
    let reported: WorkerError | null = null;
    let buffered = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      buffered += chunk;
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const l of lines) {
        try {
          if (l.startsWith(PROGRESS_PREFIX)) on.onProgress(JSON.parse(l.slice(PROGRESS_PREFIX.length)) as Progress);
          else if (l.startsWith(NOTICE_PREFIX)) on.onNotice?.(JSON.parse(l.slice(NOTICE_PREFIX.length)) as Notice);
          else if (l.startsWith(ERROR_PREFIX)) reported = JSON.parse(l.slice(ERROR_PREFIX.length)) as WorkerError;
        } catch {
          // a line cut short: the next one will do
        }
      }
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      err += chunk;
    });
    child.on('error', (e) => reject(new SpikeportError('runtime', `worker ${k} could not start: ${e.message}`)));
    child.on('close', (code, signal) => {
      children.delete(child);
      if (code === 0) return resolve();
      if (signal)
        return reject(
          new SpikeportError(
            'runtime',
            `worker ${k} was stopped by ${signal}${signal === 'SIGKILL' ? ` (out of memory? fewer ${field('workers')} or a smaller ${field('batchSize')} need less)` : ''}`,
          ),
        );
      // An error in the input is the run's (one line, its fields kept); anything else is a bug, with its trace.
      const e = reported as WorkerError | null;
      if (code === 1 && e) return reject(new SpikeportError(e.code, `worker ${k}: ${e.message}`, e.field, e.values));
      reject(new Error(`worker ${k} of the run failed (${signal ?? `exit code ${String(code)}`}):\n${err.trim()}`));
    });
  });
}
