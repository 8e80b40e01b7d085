/** spikeport data: any data set written as .npz. */
import { Command } from 'commander';
import { dataFiles, openDataset } from '../data/sources.js';
import { encodeDatasetNpz } from '../data/npz.js';
import { checkPaths, writeFileAtomic } from '../files.js';
import { int } from './options.js';

export function dataCommand(): Command {
  return new Command('data')
    .description('write a data set (e.g. the generated mnist-seg, mnist-det, mnist-video) as .npz: x (uint8), y, masks, boxes (image, class, x, y, w, h)')
    .argument('<spec>', 'mnist-seg:train, mnist-det:test, mnist-video:train, mnist:test, …')
    .requiredOption('--out <file>', 'the .npz file to write')
    .option('--limit <n>', 'only the first N samples', int(1))
    .action((spec: string, f: { out: string; limit?: number }) => {
      checkPaths(dataFiles(spec).map((p) => ({ path: p, role: 'SPEC' })), [{ path: f.out, role: '--out' }]);
      const d = openDataset(spec, f.limit);
      writeFileAtomic(f.out, encodeDatasetNpz(d));
      process.stdout.write(`wrote ${f.out}: ${d.size} samples of ${d.sampleShape.join('x')}${d.masks ? ', masks' : ''}${d.boxes ? `, ${d.boxes.length} boxes` : ''}\n`);
    });
}
