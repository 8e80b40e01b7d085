/** spikeport export nir: a converted network (unit-spike form) as a NIR file for a neuromorphic target. */
import path from 'node:path';
import { Command, Option } from 'commander';
import { TARGETS, exportNir } from '../api/nir.js';
import { loadSnn } from '../snn/network.js';
import { checkPaths } from '../files.js';
import { int } from './options.js';

interface ExportFlags {
  out: string;
  target: string;
  weightBits?: number;
}

export function exportCommand(): Command {
  const nir = new Command('nir')
    .description(
      "write a converted network (convert --spikes unit) as a NIR graph (HDF5) for a neuromorphic target: max pooling built from IF neurons, the target's arithmetic (docs/nir.md); refuses what NIR cannot express",
    )
    .argument('<file>', 'a spiking network from spikeport convert --spikes unit (.snn.onnx)')
    .requiredOption('--out <file>', 'where to write the NIR file (.nir)')
    .addOption(
      new Option(
        '--target <profile>',
        "the importer or chip: sinabs and speck (MultiSpike, subtract), spinnaker2 (subtract), loihi2, norse and generic (NIR's IF: reset to 0); speck, spinnaker2 and loihi2 get integer weights; simulate --as-target shows what each costs",
      )
        .choices([...TARGETS])
        .default('generic'),
    )
    .option(
      '--weight-bits <n>',
      "weights as N-bit integers, one scale per neuron node (in the file's metadata), on any target",
      int(0),
    )
    .action(async (file: string, f: ExportFlags) => {
      checkPaths([{ path: file, role: 'the converted network' }], [{ path: f.out, role: '--out' }]);
      const snn = await loadSnn(file, { ann: null });
      const g = await exportNir(snn, f.out, f.target, [file], { weightBits: f.weightBits });
      const counts = new Map<string, number>();
      for (const n of g.nodes.values()) counts.set(n.type, (counts.get(n.type) ?? 0) + 1);
      process.stdout.write(
        `wrote ${f.out}: NIR graph of ${path.basename(file)} for ${f.target}, ${g.nodes.size} nodes (${[...counts].map(([k, v]) => `${v} ${k}`).join(', ')}), ${g.edges.length} edges\n${g.notes.map((n) => `  - ${n}\n`).join('')}`,
      );
    });
  return new Command('export').description('write a converted network in another format').addCommand(nir);
}
