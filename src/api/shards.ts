/**
 * Shard arithmetic: which batches shard K of N runs (contiguous ranges whose sizes differ by at
 * most one), and how a shard is written and checked.
 */
import { optionError } from '../errors.js';

/** Which part of a run: shard `index` (0-based) of `count`. */
export interface Shard {
  readonly index: number;
  readonly count: number;
}

/** Shard K of N: its contiguous range of the `batches` batches (sizes differ by at most one). */
export function shardRange(shard: Shard, batches: number): { first: number; end: number } {
  checkShard(shard, batches);
  return {
    first: Math.floor((shard.index * batches) / shard.count),
    end: Math.floor(((shard.index + 1) * batches) / shard.count),
  };
}

/** What is wrong with a shard (index in range, no more shards than batches: each gets one), or null. */
export function shardProblem(shard: Shard, batches?: number): string | null {
  const { index, count } = shard;
  if (!Number.isInteger(count) || count < 1) return `the count must be an integer ≥ 1 (got ${String(count)})`;
  if (count > MAX_SHARDS) return `at most ${MAX_SHARDS} shards (got ${count})`;
  if (!Number.isInteger(index) || index < 0 || index >= count)
    return `the index must be in 0..${count - 1} (got ${String(index)})`;
  if (batches !== undefined && count > batches) {
    return `${count} shards for ${batches} batch${batches === 1 ? '' : 'es'}: every shard needs at least one (use at most ${batches === 1 ? 'one shard' : `${batches} shards`}, or a smaller batch size)`;
  }
  return null;
}

export function checkShard(shard: Shard, batches?: number): void {
  const problem = shardProblem(shard, batches);
  if (problem) throw optionError('shard', `${String(shard.index)}/${String(shard.count)}: ${problem}`);
}

/** "K/N" → a shard (decimal digits only, as every integer the command line reads). */
export function parseShard(v: string): Shard {
  const m = /^(\d{1,9})\/(\d{1,9})$/.exec(v);
  if (!m) throw optionError('shard', `"${v}" is not K/N (shard K of N, K from 0)`);
  const shard = { index: Number(m[1]), count: Number(m[2]) };
  checkShard(shard);
  return shard;
}

/** Most shards a run may be cut into. */
export const MAX_SHARDS = 65536;
