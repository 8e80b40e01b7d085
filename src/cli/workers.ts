/**
 * Many processes on one machine (`--workers N`), and shards from a cluster's environment.
 *
 * N workers each simulate one shard of the run in their own process (cli/worker.ts), with
 * threads/N ONNX Runtime threads each; the parent merges their shard files. ONNX Runtime's
 * intra-op threads scale poorly on small networks, so separate processes can use the cores
 * better (docs/benchmarks.md measures both).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MAX_SHARDS, shardProblem, type Shard } from '../api/shards.js';
import { mergeShards } from '../api/merge.js';
import { readShardFile, type ShardFile } from '../api/shard-file.js';
import type { SimulateOptions } from '../api/simulate.js';
import type { SimulateRecord } from '../report/record.js';
import type { Notice, Progress } from '../progress.js';
import { SpikeportError } from '../errors.js';
import { scratchDir } from '../files.js';

/** What a worker process is asked to do: everything resolved, as JSON. */
export interface WorkerJob {
  /** The converted network's file. */
  readonly snn: string;
  /** The source ANN (for references and site errors); null: none. */
  readonly ann: string | null;
  readonly data: string;
  readonly limit?: number;
  readonly open: {
    readonly preprocess?: string;
    readonly clipLength?: number;
    readonly classNames?: readonly string[];
    readonly frameRate?: number;
    readonly clipsPerVideo?: number;
    readonly categories?: readonly number[];
    readonly masks?: boolean;
    readonly followLinks?: boolean;
  };
  readonly options: Omit<SimulateOptions, 'onProgress'>;
  /** Where the worker writes its shard file. */
  readonly out: string;
}

/** A worker's progress line on stdout. */
export const PROGRESS_PREFIX = 'spikeport-progress ';
/** A worker's notice line on stdout (e.g. that it resumes from its checkpoint). */
export const NOTICE_PREFIX = 'spikeport-notice ';

const WORKER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'worker.js');

/**
 * Run `count` workers on shards 0..count-1 of the job and merge their shard files into the
 * run's record. Worker k's checkpoint (when asked for) is `<checkpoint>.<k>`.
 */
export async function runWorkers(
  job: Omit<WorkerJob, 'out'>,
  count: number,
  threads: number,
  onProgress: (p: Progress) => void,
  overrides: Parameters<typeof mergeShards>[1],
  onInterrupt?: () => void,
  onNotice?: (n: Notice) => void,
): Promise<SimulateRecord> {
  const dir = scratchDir('spikeport-workers-');
  const children = new Set<ChildProcess>();
  // SIGKILL: a worker inside an ONNX Runtime call would see a gentler signal only when the call
  // ends; all it writes is atomic (its shard file in our folder, its checkpoint), so nothing is lost.
  const stopAll = (): void => {
    for (const c of children) c.kill('SIGKILL');
  };
  // Interrupted (Ctrl-C, a job's time limit): end the workers and leave no temporary files. A
  // signal is delivered, not instant: leave once every worker has exited, so none outlives the run.
  const onSignal = (signal: NodeJS.Signals): void => {
    const running = [...children].filter((c) => c.exitCode === null && c.signalCode === null);
    const gone = Promise.all(running.map((c) => new Promise((resolve) => c.once('exit', resolve))));
    stopAll();
    fs.rmSync(dir, { recursive: true, force: true });
    onInterrupt?.();
    void gone.then(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const perWorker = Math.max(1, Math.floor(threads / count));
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
      const checkpoint = job.options.checkpoint === undefined ? undefined : `${job.options.checkpoint}.${k}`;
      const w: WorkerJob = {
        ...job,
        out,
        options: { ...job.options, shard, threads: perWorker, ...(checkpoint ? { checkpoint } : {}) },
      };
      const jobFile = path.join(dir, `job-${k}.json`);
      fs.writeFileSync(jobFile, JSON.stringify(w));
      try {
        await runOne(
          jobFile,
          k,
          children,
          (p) => {
            progress[k].set(p.phase, p);
            report(p.phase);
          },
          onNotice,
        );
      } catch (e) {
        failure ??= e; // the first to fail says why; the others were stopped because of it
        stopAll(); // one worker failed: the run cannot finish, so stop the others now
        throw e;
      }
      return { name: `worker ${k}`, shard: readShardFile(out) as ShardFile };
    });
    const settled = await Promise.allSettled(runs);
    if (failure !== null) throw failure;
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) throw failed.reason;
    return mergeShards(
      settled.map((s) => (s as PromiseFulfilledResult<{ name: string; shard: ShardFile }>).value),
      overrides,
    );
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function runOne(
  jobFile: string,
  k: number,
  children: Set<ChildProcess>,
  onProgress: (p: Progress) => void,
  onNotice?: (n: Notice) => void,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [WORKER, jobFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let err = '';
    let buffered = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      buffered += chunk;
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const l of lines) {
        try {
          if (l.startsWith(PROGRESS_PREFIX)) onProgress(JSON.parse(l.slice(PROGRESS_PREFIX.length)) as Progress);
          else if (l.startsWith(NOTICE_PREFIX)) onNotice?.(JSON.parse(l.slice(NOTICE_PREFIX.length)) as Notice);
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
            `worker ${k} was stopped by ${signal}${signal === 'SIGKILL' ? ' (out of memory? fewer --workers or a smaller --batch need less)' : ''}`,
          ),
        );
      // A user error in a worker is the run's user error (one line); anything else is a bug, with its trace.
      const line = err.trim().split('\n').filter(Boolean).pop() ?? '';
      if (code === 1 && line.startsWith('spikeport: error: '))
        return reject(new SpikeportError('invalid-data', `worker ${k}: ${line.slice('spikeport: error: '.length)}`));
      reject(new Error(`worker ${k} of the run failed (${signal ?? `exit code ${String(code)}`}):\n${err.trim()}`));
    });
  });
}

/** A shard and where it came from: `from` in short (--shard or the variable with the index), `source` with its values, for messages. */
export interface PickedShard {
  readonly shard: Shard;
  readonly from: string;
  readonly source: string;
}

/**
 * The shard a cluster job array gives this process, when no --shard is given: Slurm's
 * SLURM_ARRAY_TASK_ID − SLURM_ARRAY_TASK_MIN of SLURM_ARRAY_TASK_COUNT, or Kubernetes'
 * JOB_COMPLETION_INDEX of --shard-count (the Job's completions). Null outside a job array.
 * Its errors name the variables (and --shard-count when it gave the count), not --shard.
 */
export function shardFromEnv(env: NodeJS.ProcessEnv, shardCount?: number): PickedShard | null {
  const fail = (m: string): SpikeportError => new SpikeportError('invalid-option', m);
  const int = (name: string): number => {
    const v = env[name] ?? '';
    if (!/^\d{1,9}$/.test(v)) throw fail(`${name}=${JSON.stringify(v)} is not a non-negative integer`);
    return Number(v);
  };
  let shard: Shard;
  let from: string;
  let source: string;
  let min = 0;
  if (env.SLURM_ARRAY_TASK_ID !== undefined) {
    const id = int('SLURM_ARRAY_TASK_ID');
    if (env.SLURM_ARRAY_TASK_MIN !== undefined) min = int('SLURM_ARRAY_TASK_MIN');
    if (shardCount === undefined && env.SLURM_ARRAY_TASK_COUNT === undefined)
      throw fail('SLURM_ARRAY_TASK_ID is set without SLURM_ARRAY_TASK_COUNT: give --shard-count N or --shard K/N');
    const slurmCount = env.SLURM_ARRAY_TASK_COUNT === undefined ? undefined : int('SLURM_ARRAY_TASK_COUNT');
    if (shardCount !== undefined && slurmCount !== undefined && shardCount !== slurmCount)
      throw fail(`--shard-count ${shardCount} but SLURM_ARRAY_TASK_COUNT=${slurmCount}: give one of them`);
    shard = { index: id - min, count: shardCount ?? (slurmCount as number) };
    from = 'SLURM_ARRAY_TASK_ID';
    const vars = [
      `SLURM_ARRAY_TASK_ID=${id}`,
      ...(env.SLURM_ARRAY_TASK_MIN !== undefined ? [`SLURM_ARRAY_TASK_MIN=${min}`] : []),
      slurmCount !== undefined ? `SLURM_ARRAY_TASK_COUNT=${slurmCount}` : `--shard-count ${shard.count}`,
    ];
    source = `the Slurm array's shard ${shard.index} of ${shard.count} (${vars.join(', ')})`;
  } else if (env.JOB_COMPLETION_INDEX !== undefined) {
    if (shardCount === undefined)
      throw fail(
        "JOB_COMPLETION_INDEX is set (a Kubernetes Indexed Job): give --shard-count N (the Job's completions), or --shard K/N",
      );
    shard = { index: int('JOB_COMPLETION_INDEX'), count: shardCount };
    from = 'JOB_COMPLETION_INDEX';
    source = `the Indexed Job's shard ${shard.index} of ${shard.count} (JOB_COMPLETION_INDEX=${shard.index}, --shard-count ${shard.count})`;
  } else {
    if (shardCount !== undefined)
      throw fail(
        '--shard-count needs JOB_COMPLETION_INDEX or SLURM_ARRAY_TASK_ID in the environment (or give --shard K/N)',
      );
    return null;
  }
  const problem = shardProblem(shard);
  if (problem) {
    // An index outside a valid count: the array's tasks are not numbered min..min+count−1.
    const numbering =
      from === 'SLURM_ARRAY_TASK_ID' && shard.count >= 1 && shard.count <= MAX_SHARDS
        ? ` (the array must be contiguous, e.g. --array=${min}-${min + shard.count - 1})`
        : '';
    throw fail(`${source}: ${problem}${numbering}`);
  }
  return { shard, from, source };
}
