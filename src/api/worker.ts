/**
 * One worker process of simulate's `workers` (api/workers.ts starts it with its job file): opens
 * the network and the data as the parent did, simulates its shard, writes the shard file, and
 * tells the parent its progress, notices and an error in the input as lines on stdout (nobody
 * reads them but the parent). Any other failure is a bug: its trace goes to stderr.
 */
import fs from 'node:fs';
import { loadSnn } from '../snn/network.js';
import { openDataset } from '../data/sources.js';
import { SpikeportError } from '../errors.js';
import { writeFileAtomic } from '../files.js';
import { simulateShard } from './simulate.js';
import { shardJson } from './shard-file.js';
import { NOTICE_PREFIX, PROGRESS_PREFIX, workerErrorLine, type WorkerJob } from './workers.js';

async function main(): Promise<void> {
  const job = JSON.parse(fs.readFileSync(process.argv[2], 'utf8')) as WorkerJob;
  const { threads, device } = job.options;
  const snn = await loadSnn(job.snn, { ann: job.ann, threads, device });
  const data = openDataset(job.data, job.limit, job.open);
  let last = 0;
  const shard = await simulateShard(snn, data, {
    ...job.options,
    onProgress: (p) => {
      const now = performance.now();
      if (now - last < 200 && p.done < p.total) return;
      last = now;
      process.stdout.write(`${PROGRESS_PREFIX}${JSON.stringify(p)}\n`);
    },
    onNotice: (n) => process.stdout.write(`${NOTICE_PREFIX}${JSON.stringify(n)}\n`),
  });
  writeFileAtomic(job.out, shardJson(shard));
}

try {
  await main();
} catch (e) {
  if (e instanceof SpikeportError) {
    process.stdout.write(workerErrorLine(e));
    process.exitCode = 1;
  } else {
    process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
    process.exitCode = 2;
  }
}
