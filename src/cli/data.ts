/** spikeport data: any data set written as .npz, or as an image folder (PNG). */
import { Command, Option } from 'commander';
import { dataFiles, openMemoryDataset } from '../data/sources.js';
import { encodeDatasetNpz } from '../data/npz.js';
import { LAYOUTS, writeLayout, type Layout } from '../data/layouts.js';
import { checkPaths, writeFileAtomic } from '../files.js';
import { int } from './options.js';
import { progressReporter } from './progress.js';

export function dataCommand(): Command {
  return new Command('data')
    .description('write a data set (e.g. the generated mnist-seg, mnist-det, mnist-video, or fashion-mnist:test) as .npz: x (uint8), y, masks, boxes (image, class, x, y, w, h); or as an image folder of PNGs (OUT/<label>/<index>.png, lossless; read back with imagefolder:OUT)')
    .argument('<spec>', 'mnist-seg:train, mnist-det:test, mnist-video:train, mnist:test, fashion-mnist:test, …')
    .requiredOption('--out <path>', 'the .npz file to write (--format npz) or the folder to create (--format imagefolder; must not exist)')
    .addOption(new Option('--format <layout>', 'npz, or an on-disk layout').choices(['npz', ...LAYOUTS]).default('npz'))
    .option('--limit <n>', 'only the first N samples', int(1))
    .option('-q, --quiet', 'no progress output')
    .action(async (spec: string, f: { out: string; limit?: number; format: 'npz' | Layout; quiet?: boolean }) => {
      checkPaths(dataFiles(spec).map((p) => ({ path: p, role: 'SPEC' })), [{ path: f.out, role: '--out' }]);
      const d = openMemoryDataset(spec, f.limit);
      if (f.format === 'npz') {
        writeFileAtomic(f.out, encodeDatasetNpz(d));
        process.stdout.write(`wrote ${f.out}: ${d.size} samples of ${d.sampleShape.join('x')}${d.masks ? ', masks' : ''}${d.boxes ? `, ${d.boxes.length} boxes` : ''}\n`);
        return;
      }
      const prog = progressReporter(!f.quiet);
      try {
        const { classes } = await writeLayout(d, f.format, f.out, prog.report);
        prog.stop();
        process.stdout.write(`wrote ${f.out}: ${d.size} PNG images of ${d.sampleShape.join('x')} in ${classes} class folders (read it as imagefolder:${f.out})\n`);
      } finally {
        prog.stop();
      }
    });
}
