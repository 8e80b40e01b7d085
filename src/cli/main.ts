#!/usr/bin/env node
/**
 * The spikeport command line: one file per command parses its options, calls the library and
 * prints. Library errors arrive naming option fields; here they name flags.
 */
import { Command } from 'commander';
import { reportError } from './output.js';
import { convertCommand } from './convert.js';
import { exportCommand } from './export.js';
import { simulateCommand } from './simulate.js';
import { demoCommand } from './demo.js';
import { dataCommand } from './data.js';
import { reportCommand } from './report.js';
import { mergeCommand } from './merge.js';
import { experimentCommands } from './experiment.js';

export function buildProgram(): Command {
  const program = new Command('spikeport')
    .description(
      'Convert pretrained ReLU networks (ONNX) into spiking neural networks without retraining (Bu et al., CVPR 2025).',
    )
    .version('0.1.0')
    .configureOutput({ outputError: (str, write) => write(`spikeport: ${str.trim()} (see --help)\n`) });
  for (const cmd of [
    convertCommand(),
    simulateCommand(),
    mergeCommand(),
    demoCommand(),
    dataCommand(),
    reportCommand(),
    experimentCommands(),
    exportCommand(),
  ])
    program.addCommand(cmd);
  // Subcommands report option errors the same way as the program.
  const all = (c: Command): Command[] => [c, ...c.commands.flatMap(all)];
  for (const c of all(program))
    c.configureOutput({ outputError: (str, write) => write(`spikeport: ${str.trim()} (see --help)\n`) });
  return program;
}

async function main(): Promise<void> {
  // Output piped into a reader that stops early (| head): stop quietly, as other tools do.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(0);
    throw e;
  });
  try {
    await buildProgram().parseAsync(process.argv);
  } catch (e) {
    reportError(e);
  }
}

await main();
