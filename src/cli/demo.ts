/** spikeport demo: the whole pipeline on a bundled model and its bundled data set. */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { SpikeportError } from '../errors.js';
import { SIMULATE_DEFAULTS } from '../api/simulate-options.js';
import {
  calibrationOptions,
  energyOptions,
  engineOption,
  int,
  outputOptions,
  SITE_ERRORS_SAMPLES,
  stepsOption,
  type SimFlags,
} from './options.js';
import { runSimulate } from './simulate.js';

const MODELS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'models');

function bundledModel(name: string): { file: string; dataset: string } {
  const known = fs.existsSync(MODELS_DIR)
    ? fs
        .readdirSync(MODELS_DIR)
        .filter((f) => f.endsWith('.onnx'))
        .map((f) => f.slice(0, -5))
    : [];
  if (!known.includes(name))
    throw new SpikeportError('invalid-option', `no bundled model "${name}" (bundled: ${known.join(', ')})`);
  const file = path.join(MODELS_DIR, `${name}.onnx`);
  const manifest = JSON.parse(fs.readFileSync(path.join(MODELS_DIR, `${name}.json`), 'utf8')) as { dataset: string };
  return { file, dataset: manifest.dataset };
}

export function demoCommand(): Command {
  return calibrationOptions(
    outputOptions(
      energyOptions(
        new Command('demo')
          .description('convert and simulate a bundled model on its bundled data set, and print accuracy against T')
          .option(
            '--model <name>',
            'bundled model: mnist-cnn (needs only npm), fashion-vgg, fashion-resnet, fashion-mobilenet (need dataset-fashion-mnist), mnist-fcn, mnist-deeplab (segmentation), mnist-centernet (detection), mnist-r3d (video)',
            'mnist-cnn',
          )
          .addOption(stepsOption())
          .addOption(engineOption())
          .option('--limit <n>', 'test samples', int(1), 2000),
      ),
    ),
  ).action(async (f: SimFlags & { model: string }) => {
    const { file, dataset } = bundledModel(f.model);
    await runSimulate(
      file,
      { ...f, data: `${dataset}:test`, delay: SIMULATE_DEFAULTS.delay, siteErrors: SITE_ERRORS_SAMPLES, pictures: 4 },
      { jobArray: false },
    );
  });
}
