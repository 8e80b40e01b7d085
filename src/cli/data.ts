/** spikeport data: any data set written as .npz, or as PNGs in an on-disk layout. */
import path from 'node:path';
import { Command, Option } from 'commander';
import { dataFiles, openMemoryDataset } from '../data/sources.js';
import { encodeDatasetNpz } from '../data/npz.js';
import { LAYOUTS, writeLayout, type Layout } from '../data/layouts.js';
import { checkPaths, writeFileAtomic } from '../files.js';
import { int } from './options.js';
import { progressReporter } from './progress.js';

export function dataCommand(): Command {
  return new Command('data')
    .description(
      'write a data set (e.g. the generated mnist-seg, mnist-det, mnist-video, or fashion-mnist:test) as .npz: x (uint8), y, masks, boxes (image, class, x, y, w, h); or as PNGs (lossless) in an on-disk layout: imagefolder (OUT/<label>/<index>.png), videofolder (OUT/<label>/<index>/<frame>.png), voc (JPEGImages, SegmentationClass, ImageSets/Segmentation/<split>.txt), coco (images/, annotations.json)',
    )
    .argument('<spec>', 'mnist-seg:train, mnist-det:test, mnist-video:train, mnist:test, fashion-mnist:test, …')
    .requiredOption(
      '--out <path>',
      'the .npz file to write (--format npz) or the folder to create (a layout; must not exist)',
    )
    .addOption(new Option('--format <layout>', 'npz, or an on-disk layout').choices(['npz', ...LAYOUTS]).default('npz'))
    .option('--limit <n>', 'only the first N samples', int(1))
    .option('-q, --quiet', 'no progress output')
    .action(async (spec: string, f: { out: string; limit?: number; format: 'npz' | Layout; quiet?: boolean }) => {
      checkPaths(
        dataFiles(spec).map((p) => ({ path: p, role: 'SPEC' })),
        [{ path: f.out, role: '--out' }],
      );
      const d = openMemoryDataset(spec, f.limit);
      if (f.format === 'npz') {
        writeFileAtomic(f.out, encodeDatasetNpz(d));
        process.stdout.write(
          `wrote ${f.out}: ${d.size} samples of ${d.sampleShape.join('x')}${d.masks ? ', masks' : ''}${d.boxes ? `, ${d.boxes.length} boxes` : ''}\n`,
        );
        return;
      }
      const prog = progressReporter(!f.quiet);
      try {
        const split = /:(train|test)\b/.exec(spec)?.[1] ?? 'val';
        const { files } = await writeLayout(d, f.format, f.out, prog.report, split);
        prog.stop();
        const readBack =
          f.format === 'voc'
            ? `voc:${f.out}:${split}`
            : f.format === 'coco'
              ? `coco:${path.join(f.out, 'images')}@${path.join(f.out, 'annotations.json')}`
              : `${f.format}:${f.out}`;
        process.stdout.write(
          `wrote ${f.out}: ${d.size} samples of ${d.sampleShape.join('x')} as ${files} files (read it as ${readBack})\n`,
        );
      } finally {
        prog.stop();
      }
    });
}
