/**
 * Fewer steps for the same accuracy, on one model (docs/fewer-steps.md): against T, the ANN, the
 * clipped ANN, the ceiling (the ANN quantised to what IF neurons can output in T steps), what
 * the project offered before (CLTB with delayed evaluation, the delay fit, bias and potential
 * calibration) and the options that carry more per step (groups of K binary neurons) or correct
 * the timing error (calibrations after conversion), each with its SOPs and energy per sample.
 *
 * One CLTB calibration serves every row: the others reuse its thresholds. Rows that are tuned for
 * one T (the calibrations after conversion) are converted and simulated once per T; the others
 * are simulated once to the largest T.
 */
import path from 'node:path';
import type { Dataset } from '../data/dataset.js';
import type { LoadedModel } from '../model/load.js';
import type { Snn } from '../snn/network.js';
import { inferTask } from '../tasks/task.js';
import { energyOf, type EnergyConstants } from '../energy/energy.js';
import { annReference } from '../evaluate/reference.js';
import { checkSteps, simulateWindows, type Window } from '../evaluate/windows.js';
import { convert, resolveConvertOptions, type ConvertOptions } from '../api/convert.js';
import { delayFor, type DelayRule } from '../api/simulate-options.js';
import type { StepsRecord, StepsRow } from '../report/record.js';
import { tagged } from '../progress.js';
import { checkInteger, optionError } from '../errors.js';
import { MAX_GROUP } from '../snn/format.js';
import type { ExperimentOptions } from './experiments.js';

/** Calibrations after conversion the experiment compares, each tuned for one T (ConvertOptions fields). */
export const STEP_CALIBRATIONS = {
  bias: { option: 'biasCalibration', label: 'bias calibration', before: true },
  potential: { option: 'potentialCalibration', label: 'potential calibration', before: true },
  scale: { option: 'scaleCalibration', label: 'bias + threshold-scale calibration', before: false },
  stepBias: { option: 'stepBiasCalibration', label: 'per-step bias calibration', before: false },
} as const;
export type StepCalibration = keyof typeof STEP_CALIBRATIONS;

export interface FewerStepsOptions extends ExperimentOptions {
  /** Group sizes K to compare (default 2 and 4). */
  readonly groups?: readonly number[];
  /** Calibrations after conversion to compare (default all of STEP_CALIBRATIONS). */
  readonly calibrations?: readonly StepCalibration[];
  /** The T at which the calibrations after conversion run (default every T of the table); each costs a conversion and a simulation. */
  readonly calibrateAt?: readonly number[];
  /** Energy constants (default: the paper's). */
  readonly energy: EnergyConstants;
}

export async function fewerSteps(
  model: LoadedModel,
  calib: Dataset,
  test: Dataset,
  options: FewerStepsOptions,
): Promise<StepsRecord> {
  const opts = { ...options, ...resolveConvertOptions(options), T: checkSteps(options.T ?? [1, 2, 4, 8, 16, 32]) };
  const groups = [...new Set(options.groups ?? [2, 4])].sort((a, b) => a - b);
  for (const K of groups) checkInteger('groups', K, 2, MAX_GROUP);
  const calibrations = options.calibrations ?? (Object.keys(STEP_CALIBRATIONS) as StepCalibration[]);
  const unknown = calibrations.find((c) => !(c in STEP_CALIBRATIONS));
  if (unknown !== undefined)
    throw optionError(
      'calibrations',
      `"${String(unknown)}" is not a calibration (known: ${Object.keys(STEP_CALIBRATIONS).join(', ')})`,
    );
  const Ts = opts.T;
  const Tmax = Ts[Ts.length - 1];
  const calibrateAt = options.calibrateAt === undefined ? Ts : checkSteps(options.calibrateAt);
  const stray = calibrateAt.find((T) => !Ts.includes(T));
  if (stray !== undefined)
    throw optionError('calibrateAt', `lists T = ${stray}, which is not among the T of the table`);
  const rows: StepsRow[] = [];
  const convertWith = (tag: string, extra: ConvertOptions): Promise<Snn> =>
    convert(model, calib, { ...opts, ...extra, onProgress: tagged(opts.onProgress, tag) });
  /** Simulate once to the largest T asked for and read every (label, T, delay rule) from it. */
  const measure = async (
    snn: Snn,
    tag: string,
    steps: readonly number[],
    list: readonly { label: string; rule: DelayRule; before: boolean; seconds: number }[],
  ): Promise<void> => {
    const windows: Window[] = list.flatMap(({ rule }) =>
      steps.map((T) => ({ T, delay: delayFor(rule, T, snn.meta.delay) })),
    );
    const run = await simulateWindows(snn, test, windows, {
      batchSize: opts.batchSize,
      task: opts.task,
      engine: opts.engine,
      threads: opts.threads,
      onProgress: tagged(opts.onProgress, tag),
    });
    list.forEach(({ label, before, seconds }, r) => {
      const points = steps.map((T, i) => ({ T, metric: run.scores[r * steps.length + i].metric }));
      const cost = energyOf(snn.spec, run.stats, points, null, opts.energy)?.perT ?? [];
      const row = rows.find((x) => x.label === label) ?? { label, before, seconds: 0, points: [] };
      if (!rows.includes(row)) rows.push(row);
      (row as { seconds: number }).seconds += seconds;
      (row.points as StepsRow['points'][number][]).push(
        ...points.map((p, i) => ({
          T: p.T,
          delay: windows[r * steps.length + i].delay,
          metric: p.metric,
          sops: cost[i]?.sops ?? Number.NaN,
          energy: cost[i]?.energy ?? Number.NaN,
        })),
      );
    });
  };
  const seconds = (snn: Snn, refine = false): number =>
    (snn.timing?.calibrate ?? Number.NaN) + (refine ? (snn.timing?.refine ?? Number.NaN) : 0);

  const cltb = await convertWith('cltb', { method: 'cltb', delayFit: Tmax });
  await measure(cltb, 'cltb', Ts, [
    { label: 'CLTB + DE', rule: 'auto', before: true, seconds: seconds(cltb) },
    { label: 'CLTB + DE (fit)', rule: 'fit', before: true, seconds: seconds(cltb, true) },
  ]);
  const thresholds = Object.fromEntries(cltb.spec.sites.map((s) => [s.node, s.theta]));
  const fixed = { method: 'fixed', thresholds } as const;
  for (const K of groups) {
    const snn = await convertWith(`groups of ${K}`, { ...fixed, group: K, delayFit: Tmax });
    await measure(snn, `groups of ${K}`, Ts, [
      { label: `groups of ${K} + DE`, rule: 'auto', before: false, seconds: seconds(cltb) },
      { label: `groups of ${K} + DE (fit)`, rule: 'fit', before: false, seconds: seconds(cltb) + seconds(snn, true) },
    ]);
  }
  for (const c of calibrations) {
    const { option, label, before } = STEP_CALIBRATIONS[c];
    for (const T of calibrateAt) {
      const tag = `${label}, T=${T}`;
      const snn = await convertWith(tag, { ...fixed, [option]: T });
      // The row's conversion cost: CLTB's thresholds once, the calibration at every T.
      const refine = (snn.timing?.refine ?? Number.NaN) + (T === calibrateAt[0] ? seconds(cltb) : 0);
      await measure(
        snn,
        tag,
        [T],
        [
          { label: `CLTB + ${label} + DE`, rule: 'auto', before, seconds: refine },
          { label: `CLTB + ${label}`, rule: 'off', before, seconds: refine },
        ],
      );
    }
  }
  const levels = [...new Set([1, ...groups].flatMap((K) => Ts.map((T) => K * T)))].sort((a, b) => a - b);
  const source = cltb.source as NonNullable<Snn['source']>;
  const refs = await annReference(source, test, cltb.thresholds(), {
    batchSize: opts.batchSize,
    threads: opts.threads,
    task: opts.task,
    ceiling: levels,
  });
  return {
    kind: 'steps',
    task: inferTask(test, opts.task),
    model: path.basename(model.path),
    data: test.name,
    samples: test.size,
    created: new Date().toISOString(),
    ann: refs.ann,
    clippedAnn: refs.clipped,
    ceiling: levels.map((L, i) => ({ levels: L, metric: refs.ceiling?.[i].metric ?? Number.NaN })),
    T: Ts,
    groups,
    energyConstants: { name: opts.energy.name, eSop: opts.energy.eSop, eMac: opts.energy.eMac },
    annMacs: (cltb.spec.layers ?? []).reduce((a, l) => a + l.macs, 0),
    rows,
    notes: [
      `Thresholds from ${calib.name}: CLTB ${opts.iterations} iterations × batch ${opts.batchSize}, shared by every row.`,
      'DE: delayed evaluation at min(d̂, ⌊T/2⌋) (d̂ of a group network is the latencies divided by K); DE (fit): the delay fitted per T without labels on calibration samples. Rows without DE average all T steps.',
      `Calibrations after conversion: one calibration batch, one conversion per T (at T = ${calibrateAt.join(', ')}); their seconds add up over those T.`,
      'Groups of K: each ANN neuron a group of K binary IF neurons (shared reset; a population gives the same spikes), K + 1 levels per step; K× the neurons.',
      "Before: the settings the project offered before groups and the new calibrations; 'best before' is, at each T, the highest of them (chosen with the test labels, so it flatters them).",
      'SOPs and energy per sample over all T steps (the discarded window start too); energy = SOPs · e_SOP + analog MACs · e_MAC.',
    ],
  };
}
