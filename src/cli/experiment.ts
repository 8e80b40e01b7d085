/** spikeport experiment ablation|iterations|delay|energy|plugplay: the paper's experiments on the user's model. */
import { Command } from 'commander';
import { SpikeportError } from '../errors.js';
import { loadModel, type LoadedModel } from '../model/load.js';
import { isSnnGraph } from '../snn/format.js';
import { dataFiles, openDataset } from '../data/sources.js';
import { checkPaths } from '../files.js';
import type { Dataset } from '../data/dataset.js';
import type { Task } from '../tasks/task.js';
import { CONVERT_DEFAULTS, declaredInputShape, resolveConvertOptions } from '../api/convert.js';
import type { Engine } from '../runtime/engines.js';
import { SIMULATE_DEFAULTS } from '../api/simulate-options.js';
import {
  ablation,
  delaySweep,
  energyTable,
  iterationSweep,
  plugplay,
  type ExperimentOptions,
} from '../experiments/experiments.js';
import { STEP_CALIBRATIONS, fewerSteps, type StepCalibration } from '../experiments/fewer-steps.js';
import type { RunRecord } from '../report/record.js';
import { reportMarkdown } from '../report/markdown.js';
import {
  calibrationOptions,
  calibrationSpec,
  convertOptionsFrom,
  dataSpecs,
  imageOptions,
  energyFrom,
  energyOptions,
  engineOption,
  inputPaths,
  int,
  integers,
  outputOptions,
  stepsOption,
  taskOption,
  type CalibFlags,
  type EnergyFlags,
  type OutputFlags,
} from './options.js';
import { progressReporter } from './progress.js';
import { outputPaths, recordFiles, writeOutputs } from './output.js';

interface ExpFlags extends CalibFlags, OutputFlags {
  data: string;
  calib?: string;
  limit?: number;
  T: number[];
  task?: Task;
  engine: Engine;
}

type Run = (models: readonly LoadedModel[], calib: Dataset, test: Dataset, o: ExperimentOptions) => Promise<RunRecord>;

async function runExperiment(files: readonly string[], f: ExpFlags, run: Run): Promise<void> {
  const prog = progressReporter(!f.quiet);
  try {
    if (f.method !== CONVERT_DEFAULTS.method)
      process.stderr.write(`spikeport: note: experiments choose their own methods; --method ${f.method} is ignored\n`);
    checkPaths(
      [
        ...inputPaths(files, f),
        ...dataFiles(calibrationSpec(f.data, f.calib)).map((p) => ({ path: p, role: 'the calibration data' })),
      ],
      outputPaths(f),
    );
    const { method: _method, ...convertOptions } = convertOptionsFrom(f, prog.report);
    resolveConvertOptions(convertOptions); // bad options fail before any reading
    const models = files.map((file) => {
      const m = loadModel(file);
      if (isSnnGraph(m.graph))
        throw new SpikeportError('invalid-file', `${file} is already a spiking network; experiments take the ANN`);
      return m;
    });
    // Image data decodes to the (first) model's input shape.
    const shape = declaredInputShape(models[0]);
    const calib = openDataset(
      calibrationSpec(f.data, f.calib),
      f.calibLimit,
      imageOptions(f, shape, f.preprocess, false),
    );
    const test = openDataset(f.data, f.limit, imageOptions(f, shape));
    const record = await run(models, calib, test, { ...convertOptions, T: f.T, task: f.task, engine: f.engine });
    prog.stop();
    writeOutputs(await recordFiles(record, f));
    process.stdout.write(reportMarkdown(record));
  } finally {
    prog.stop();
  }
}

function experimentCommand(name: string, description: string, steps: readonly number[]): Command {
  return calibrationOptions(
    outputOptions(
      new Command(name)
        .description(description)
        .requiredOption('--data <spec>', `test data: ${dataSpecs('test')}`)
        .option('--calib <spec>', 'calibration data (default: the train split of --data)')
        .option('--limit <n>', 'use only the first N test samples', int(1))
        .addOption(stepsOption(steps))
        .addOption(taskOption())
        .addOption(engineOption()),
    ),
  );
}

export function experimentCommands(): Command {
  const experiment = new Command('experiment').description(
    "the paper's experiments on your model: ablation (Fig. 3a), iterations (Fig. 3b), delay (Fig. 4), energy (Appendix F), plugplay (Table 1); and steps (fewer steps for the same accuracy)",
  );
  experiment.addCommand(
    experimentCommand(
      'ablation',
      'RobustNorm, LTB, CLTB and CLTB with delayed evaluation against T',
      SIMULATE_DEFAULTS.T,
    )
      .argument('<model>', 'the ANN, an ONNX file')
      .action(async (model: string, f: ExpFlags) =>
        runExperiment([model], f, async ([m], calib, test, o) => ablation(m, calib, test, o)),
      ),
  );
  experiment.addCommand(
    experimentCommand('iterations', 'CLTB with several iteration counts against T', SIMULATE_DEFAULTS.T)
      .argument('<model>', 'the ANN, an ONNX file')
      .option('--counts <list>', 'iteration counts to compare', integers, [10, 50, 100, 200, 800])
      .action(async (model: string, f: ExpFlags & { counts: number[] }, cmd: Command) => {
        if (cmd.getOptionValueSource('iterations') === 'cli')
          throw new SpikeportError(
            'invalid-option',
            '--iterations: experiment iterations takes its iteration counts from --counts',
          );
        await runExperiment([model], f, async ([m], calib, test, o) => iterationSweep(m, calib, test, f.counts, o));
      }),
  );
  experiment.addCommand(
    experimentCommand('delay', 'accuracy against the chosen delay at several T, with d̂ marked', SIMULATE_DEFAULTS.T)
      .argument('<model>', 'the ANN, an ONNX file')
      .action(async (model: string, f: ExpFlags) =>
        runExperiment([model], f, async ([m], calib, test, o) => delaySweep(m, calib, test, o)),
      ),
  );
  experiment.addCommand(
    energyOptions(
      experimentCommand(
        'energy',
        'SOPs90/SOPs95 and FPS/W for one or more models (same data)',
        SIMULATE_DEFAULTS.T,
      ).argument('<models...>', 'ANN ONNX files'),
    ).action(async (files: string[], f: ExpFlags & EnergyFlags) =>
      runExperiment(files, f, async (models, calib, test, o) =>
        energyTable(
          models.map((model) => ({ model, calib, test })),
          energyFrom(f),
          o,
        ),
      ),
    ),
  );
  experiment.addCommand(
    experimentCommand(
      'plugplay',
      "QCFS (if the model has it), CLTB, delayed evaluation (d̂ rule and label-free fit), bias and potential calibration against T, with each row's conversion time (T from 1 to 64 by default, as the paper's Table 1: these corrections matter at small T, and each T costs a conversion)",
      [1, 2, 4, 8, 16, 32, 64],
    )
      .argument('<model>', 'the ANN, an ONNX file')
      .action(async (model: string, f: ExpFlags) =>
        runExperiment([model], f, async ([m], calib, test, o) => plugplay(m, calib, test, o)),
      ),
  );
  experiment.addCommand(
    energyOptions(
      experimentCommand(
        'steps',
        'fewer steps for the same accuracy: the ceiling, the best before, groups of K binary neurons and calibrations after conversion against T, with SOPs and energy (docs/fewer-steps.md)',
        [1, 2, 4, 8, 16, 32],
      ),
    )
      .argument('<model>', 'the ANN, an ONNX file')
      .option('--groups <list>', 'group sizes K to compare', integers, [2, 4])
      .option(
        '--calibrations <list>',
        `calibrations after conversion to compare, each converted once per T (${Object.keys(STEP_CALIBRATIONS).join(', ')})`,
        Object.keys(STEP_CALIBRATIONS).join(','),
      )
      .option('--calibrate-at <list>', 'the T at which the calibrations run (default: every --T)', integers)
      .action(
        async (
          model: string,
          f: ExpFlags & EnergyFlags & { groups: number[]; calibrations: string; calibrateAt?: number[] },
        ) =>
          runExperiment([model], f, async ([m], calib, test, o) =>
            fewerSteps(m, calib, test, {
              ...o,
              calibrateAt: f.calibrateAt,
              groups: f.groups,
              calibrations: f.calibrations.split(',').map((x) => x.trim()) as StepCalibration[],
              energy: energyFrom(f),
            }),
          ),
      ),
  );
  return experiment;
}
