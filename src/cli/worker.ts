#!/usr/bin/env node
/**
 * One worker of `simulate --workers N` (cli/workers.ts): reads its job (a JSON file), simulates
 * its shard, writes the shard file, and reports progress as lines on stdout.
 */
import fs from 'node:fs';
import { loadSnn } from '../snn/network.js';
import { openDataset } from '../data/sources.js';
import { checkPreprocess } from '../api/convert.js';
import { simulateShard } from '../api/simulate.js';
import { shardJson } from '../api/shard-file.js';
import { writeFileAtomic } from '../files.js';
import { reportError } from './output.js';
import { NOTICE_PREFIX, PROGRESS_PREFIX, type WorkerJob } from './workers.js';

async function main(): Promise<void> {
  const job = JSON.parse(fs.readFileSync(process.argv[2], 'utf8')) as WorkerJob;
  const { threads, device } = job.options;
  const snn = await loadSnn(job.snn, { ann: job.ann, threads, device });
  const preprocess = job.open.preprocess ?? snn.meta.preprocess;
  const data = openDataset(job.data, job.limit, {
    sampleShape: snn.spec.inputShape,
    preprocess: preprocess === undefined ? null : checkPreprocess(preprocess),
    clipLength: job.open.clipLength,
    classNames: job.open.classNames,
    frameRate: job.open.frameRate,
    clipsPerVideo: job.open.clipsPerVideo,
    categories: job.open.categories,
    masks: job.open.masks,
    followLinks: job.open.followLinks,
  });
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
  reportError(e);
}
