/** spikeport merge: the shard files of a run (simulate --shard K/N) into the run's record, exactly. */
import { Command } from 'commander';
import { mergeShards } from '../api/merge.js';
import { readShardFile } from '../api/shard-file.js';
import { checkPaths } from '../files.js';
import { outputOptions, type OutputFlags } from './options.js';
import { energySummary, outputPaths, printNotices, recordFiles, resultsTable, writeOutputs } from './output.js';

export function mergeCommand(): Command {
  return outputOptions(
    new Command('merge')
      .summary('merge the shard files of one run (simulate --shard K/N) into its results, exactly')
      .description(
        'merge the shard files of one run (simulate --shard K/N --json FILE, one per shard) into its results: the same as one run over all samples. Checks that every shard is there once and that all simulated the same model, thresholds, data and options',
      )
      .argument('<shards...>', 'the shard files, in any order'),
  ).action(async (files: string[], f: OutputFlags) => {
    checkPaths(
      files.map((p) => ({ path: p, role: 'shard file' })),
      outputPaths(f),
    );
    const record = mergeShards(files.map((name) => ({ name, shard: readShardFile(name) })));
    const out = await recordFiles(record, f);
    writeOutputs(out);
    process.stdout.write(
      `${record.model} on ${record.data}: ${files.length} shard${files.length === 1 ? '' : 's'}, ${record.samples} samples\n\n`,
    );
    process.stdout.write(resultsTable(record));
    if (record.energy) process.stdout.write(energySummary(record.energy));
    printNotices(record.notices ?? []);
  });
}
