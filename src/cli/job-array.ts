/**
 * Shards from a cluster's environment: a Slurm job array or a Kubernetes Indexed Job names the
 * shard this process runs (docs/scale.md).
 */
import { MAX_SHARDS, shardProblem, type Shard } from '../api/shards.js';
import { SpikeportError } from '../errors.js';

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
