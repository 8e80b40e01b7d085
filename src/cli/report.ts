/** spikeport report: a JSON record rendered again as HTML and Markdown. */
import { Command, Option } from 'commander';
import { SpikeportError } from '../errors.js';
import { parseRecord, type RunRecord } from '../report/record.js';
import { outputPaths, recordFiles, writeOutputs } from './output.js';
import { checkPaths, readRegularFile } from '../files.js';

/** The largest record read: one from spikeport is a few megabytes (pictures included). */
const MAX_RECORD_BYTES = 256 * 2 ** 20;

function readRecord(file: string): RunRecord {
  let v: unknown;
  try {
    v = JSON.parse(readRegularFile(file, MAX_RECORD_BYTES, 'a record').toString('utf8'));
  } catch (e) {
    if (e instanceof SpikeportError) throw e;
    throw new SpikeportError('invalid-file', `${file} is not JSON (${(e as Error).message})`);
  }
  return parseRecord(v, file);
}

export function reportCommand(): Command {
  return (
    new Command('report')
      .description(
        'render a JSON record (from simulate --json or experiment --json) as an HTML report (with the pictures a simulate record holds) and/or Markdown',
      )
      .argument('<record>', 'the JSON file')
      .option('--report <file>', "HTML report to write, as simulate --report (default: the record's name with .html)")
      .option('--markdown <file>', 'also write a Markdown summary')
      // The name this option had first; kept so that scripts written for it still work.
      .addOption(new Option('--out <file>', 'the same as --report').hideHelp())
      .action(async (file: string, f: { report?: string; out?: string; markdown?: string }) => {
        if (f.report !== undefined && f.out !== undefined)
          throw new SpikeportError('invalid-option', '--out is another name for --report: give one of them');
        const out = f.report ?? f.out ?? file.replace(/\.json$/i, '') + '.html';
        checkPaths([{ path: file, role: 'RECORD' }], outputPaths({ report: out, markdown: f.markdown }));
        const record = readRecord(file);
        writeOutputs(await recordFiles(record, { report: out, markdown: f.markdown }));
        process.stdout.write(`wrote ${out}${f.markdown ? ` and ${f.markdown}` : ''}\n`);
      })
  );
}
