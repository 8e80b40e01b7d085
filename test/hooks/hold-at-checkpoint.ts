/**
 * Loaded into a spikeport process with `node --import` (test/shards.test.ts): when the checkpoint
 * named by SPIKEPORT_TEST_HOLD is renamed into place listing a finished batch, the process writes
 * "held" to stdout and blocks for good, so the test kills it at that point, on any machine,
 * instead of racing the run with a timer. Without the variable (e.g. when `node --test` loads
 * this file) it does nothing.
 */
import fs from 'node:fs';
import path from 'node:path';
import { syncBuiltinESMExports } from 'node:module';

const target = process.env.SPIKEPORT_TEST_HOLD;
if (target) {
  const rename = fs.renameSync;
  fs.renameSync = (from: fs.PathLike, to: fs.PathLike): void => {
    rename(from, to);
    if (path.resolve(String(to)) !== path.resolve(target)) return;
    const batches = (JSON.parse(fs.readFileSync(to, 'utf8')) as { tally?: { batches?: unknown[] } }).tally?.batches;
    if (!batches || batches.length === 0) return;
    fs.writeSync(1, 'held\n');
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
  };
  syncBuiltinESMExports();
}
