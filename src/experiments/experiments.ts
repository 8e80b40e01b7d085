/**
 * The paper's experiments as functions on any model (Fig. 3a ablation, Fig. 3b iterations,
 * Fig. 4 delay sweep, Appendix F energy table). Each calibrates once per setting and simulates
 * T_max once per threshold set; every T and delay is read from that one run.
 */
import path from 'node:path';
import type { Dataset } from '../data/dataset.js';
import type { LoadedModel } from '../model/load.js';
import type { Method } from '../calibrate/methods.js';
import type { Engine } from '../runtime/engines.js';
import type { Snn } from '../snn/network.js';
import { inferTask, type Score, type Task } from '../tasks/task.js';
import { energyOf, type EnergyConstants } from '../energy/energy.js';
import { annReference } from '../evaluate/reference.js';
import {
  checkSteps,
  delayAt,
  firingRates,
  simulateWindows,
  type Window,
  type WindowOptions,
} from '../evaluate/windows.js';
import { convert, resolveConvertOptions, type ConvertOptions, type ResolvedConvertOptions } from '../api/convert.js';
import { delayFor, type DelayRule } from '../api/simulate-options.js';
import type { Curve, CurvesRecord, DelayRecord, EnergyRecord, EnergyRow } from '../report/record.js';
import { tagged } from '../progress.js';
import { optionError } from '../errors.js';

/** Conversion options for every setting (the method and iteration count are the experiment's), and what to simulate. */
export interface ExperimentOptions extends Omit<ConvertOptions, 'method'> {
  /** Numbers of time steps (default as in simulate: 8 … 256). */
  readonly T?: readonly number[];
  /** The task to score (default: inferred from the test data). */
  readonly task?: Task;
  readonly engine?: Engine;
}

type Resolved = ResolvedConvertOptions & Pick<ExperimentOptions, 'task' | 'engine'> & { readonly T: readonly number[] };

function resolve(opts: ExperimentOptions, T: readonly number[] = [8, 16, 32, 64, 128, 256]): Resolved {
  return { ...opts, ...resolveConvertOptions(opts), T: checkSteps(opts.T ?? T) };
}

async function convertWith(
  model: LoadedModel,
  calib: Dataset,
  opts: Resolved,
  method: Method,
  tag: string,
  iterations = opts.iterations,
  extra: ConvertOptions = {},
): Promise<Snn> {
  return convert(model, calib, { ...opts, method, iterations, ...extra, onProgress: tagged(opts.onProgress, tag) });
}

function windowOptions(opts: Resolved, tag: string): WindowOptions {
  return {
    batchSize: opts.batchSize,
    task: opts.task,
    engine: opts.engine,
    threads: opts.threads,
    onProgress: tagged(opts.onProgress, tag),
  };
}

async function annScore(snn: Snn, test: Dataset, opts: Resolved): Promise<Score> {
  return (
    await annReference(snn.source as NonNullable<Snn['source']>, test, snn.thresholds(), {
      batchSize: opts.batchSize,
      threads: opts.threads,
      task: opts.task,
    })
  ).ann;
}

function info(
  model: LoadedModel,
  test: Dataset,
  opts: Resolved,
): { task: Task; model: string; data: string; samples: number; created: string } {
  return {
    task: inferTask(test, opts.task),
    model: path.basename(model.path),
    data: test.name,
    samples: test.size,
    created: new Date().toISOString(),
  };
}

/** Fig. 3a: RobustNorm, LTB, CLTB without delay, CLTB with delayed evaluation. */
export async function ablation(
  model: LoadedModel,
  calib: Dataset,
  test: Dataset,
  options: ExperimentOptions = {},
): Promise<CurvesRecord> {
  const opts = resolve(options);
  const Ts = opts.T;
  const curves: Curve[] = [];
  let ann: Score | null = null;
  for (const method of ['robustnorm', 'ltb', 'cltb'] as const) {
    const snn = await convertWith(model, calib, opts, method, method);
    const seconds = snn.timing?.calibrate;
    const dhat = snn.meta.delay.estimated;
    const windows: Window[] = [
      ...Ts.map((T) => ({ T, delay: 0 })),
      ...(method === 'cltb' ? Ts.map((T) => ({ T, delay: delayAt(T, dhat) })) : []),
    ];
    const run = await simulateWindows(snn, test, windows, windowOptions(opts, method));
    const label = { robustnorm: 'RobustNorm', ltb: 'LTB', cltb: 'CLTB' }[method];
    curves.push({ label, seconds, points: Ts.map((T, i) => ({ T, metric: run.scores[i].metric })) });
    if (method === 'cltb') {
      curves.push({
        label: 'CLTB + delayed evaluation',
        seconds,
        delay: dhat,
        points: Ts.map((T, i) => ({ T, metric: run.scores[Ts.length + i].metric })),
      });
      ann = await annScore(snn, test, opts);
    }
  }
  return {
    kind: 'ablation',
    ...info(model, test, opts),
    ann,
    curves,
    notes: [
      `Thresholds from ${calib.name}, ${opts.iterations} iterations × batch ${opts.batchSize} for LTB and CLTB; RobustNorm at the ${opts.percentile}th percentile. Delay at T: min(d̂, ⌊T/2⌋).`,
    ],
  };
}

/** Fig. 3b: CLTB with several iteration counts (with delayed evaluation). */
export async function iterationSweep(
  model: LoadedModel,
  calib: Dataset,
  test: Dataset,
  counts: readonly number[],
  options: ExperimentOptions = {},
): Promise<CurvesRecord> {
  const opts = resolve(options);
  if (!Array.isArray(counts) || counts.length === 0 || counts.some((n) => !Number.isInteger(n) || n < 1)) {
    throw optionError('counts', `must list iteration counts, integers ≥ 1 (got ${String(counts)})`);
  }
  const Ts = opts.T;
  const curves: Curve[] = [];
  let ann: Score | null = null;
  for (const its of counts) {
    const snn = await convertWith(model, calib, opts, 'cltb', `${its} iterations`, its);
    const dhat = snn.meta.delay.estimated;
    const run = await simulateWindows(
      snn,
      test,
      Ts.map((T) => ({ T, delay: delayAt(T, dhat) })),
      windowOptions(opts, `${its} iterations`),
    );
    curves.push({
      label: `${its} iterations (d̂ = ${dhat})`,
      seconds: snn.timing?.calibrate,
      delay: dhat,
      points: Ts.map((T, i) => ({ T, metric: run.scores[i].metric })),
    });
    ann ??= await annScore(snn, test, opts);
  }
  return {
    kind: 'iterations',
    ...info(model, test, opts),
    ann,
    curves,
    notes: [
      `CLTB thresholds from ${calib.name}, batch ${opts.batchSize}; each curve with delayed evaluation at min(d̂, ⌊T/2⌋).`,
    ],
  };
}

/** The delays tried at T: a grid over [0, T−1] that always contains d̂ and the rule's d. */
export function delayGrid(T: number, dhat: number, points = 24): number[] {
  const step = Math.max(1, Math.floor(T / points));
  const ds = new Set<number>([0, Math.min(dhat, T - 1), delayAt(T, dhat), T - 1]);
  for (let d = 0; d < T; d += step) ds.add(d);
  return [...ds].sort((a, b) => a - b);
}

/** Fig. 4: accuracy against the delay at several T, from one CLTB simulation. */
export async function delaySweep(
  model: LoadedModel,
  calib: Dataset,
  test: Dataset,
  options: ExperimentOptions = {},
): Promise<DelayRecord> {
  const opts = resolve(options);
  const Ts = opts.T;
  const snn = await convertWith(model, calib, opts, 'cltb', 'cltb');
  const dhat = snn.meta.delay.estimated;
  const grids = Ts.map((T) => delayGrid(T, dhat));
  const windows: Window[] = Ts.flatMap((T, i) => grids[i].map((delay) => ({ T, delay })));
  const run = await simulateWindows(snn, test, windows, windowOptions(opts, 'cltb'));
  let k = 0;
  const sweeps = Ts.map((T, i) => {
    const points = grids[i].map((delay) => ({ delay, metric: run.scores[k++].metric }));
    const best = points.reduce((a, b) => (b.metric > a.metric ? b : a)).delay;
    return { T, rule: delayAt(T, dhat), best, points };
  });
  const ann = await annScore(snn, test, opts);
  return { kind: 'delay', ...info(model, test, opts), ann, estimated: dhat, sweeps };
}

/** Appendix F: SOPs90/SOPs95 and FPS/W, one row per model (CLTB, delayed evaluation). */
export async function energyTable(
  models: readonly { model: LoadedModel; calib: Dataset; test: Dataset }[],
  constants: EnergyConstants,
  options: ExperimentOptions = {},
): Promise<EnergyRecord> {
  const opts = resolve(options);
  const Ts = opts.T;
  const rows: EnergyRow[] = [];
  for (const { model, calib, test } of models) {
    const name = path.basename(model.path);
    const snn = await convertWith(model, calib, opts, 'cltb', name);
    const dhat = snn.meta.delay.estimated;
    const run = await simulateWindows(
      snn,
      test,
      Ts.map((T) => ({ T, delay: delayAt(T, dhat) })),
      windowOptions(opts, name),
    );
    const ann = await annScore(snn, test, opts);
    const Tmax = Ts[Ts.length - 1];
    const energy = energyOf(
      snn.meta.spec,
      { samples: test.size, sopsPerStep: run.stats.sopsPerStep },
      Ts.map((T, i) => ({ T, metric: run.scores[i].metric })),
      ann.metric,
      constants,
    );
    if (!energy) throw new Error('energyTable: a freshly converted SNN has no layer costs (a bug)');
    const rates = firingRates(snn.meta.spec, run.stats, Tmax);
    const neurons = snn.meta.spec.sites.reduce((a, s) => a + s.neurons, 0);
    const firingRate = rates.reduce((a, r, i) => a + r.rate * snn.meta.spec.sites[i].neurons, 0) / neurons;
    rows.push({ model: name, ann, energy, firingRate });
  }
  const first = models[0];
  return {
    kind: 'energy',
    task: first ? inferTask(first.test, opts.task) : 'classification',
    model: models.map((m) => path.basename(m.model.path)).join(', '),
    data: first ? first.test.name : '',
    samples: first ? first.test.size : 0,
    created: new Date().toISOString(),
    rows,
    notes: [
      `CLTB, ${opts.iterations} iterations × batch ${opts.batchSize}, delay min(d̂, ⌊T/2⌋); T from ${Ts.join(', ')}.`,
    ],
  };
}

/**
 * The paper's Table 1 on one model: its threshold balancing and delayed evaluation plugged into
 * a QCFS model (when the model has QCFS activations) and combined with calibrations after
 * conversion. Each row's `seconds` is its conversion cost measured in this run: thresholds once
 * for CLTB (the delay fit adds one simulation), bias / potential calibration once per T.
 */
export async function plugplay(
  model: LoadedModel,
  calib: Dataset,
  test: Dataset,
  options: ExperimentOptions = {},
): Promise<CurvesRecord> {
  const opts = resolve(options, [1, 2, 4, 8, 16, 32, 64]);
  const Ts = opts.T;
  const Tmax = Ts[Ts.length - 1];
  const curves: Curve[] = [];
  /** One simulation of an SNN, read with several delay rules. */
  const rows = async (
    snn: Snn,
    tag: string,
    list: readonly { label: string; rule: DelayRule; seconds: number }[],
  ): Promise<void> => {
    const windows = list.flatMap(({ rule }) => Ts.map((T) => ({ T, delay: delayFor(rule, T, snn.meta.delay) })));
    const run = await simulateWindows(snn, test, windows, windowOptions(opts, tag));
    list.forEach(({ label, seconds }, r) =>
      curves.push({ label, seconds, points: Ts.map((T, i) => ({ T, metric: run.scores[r * Ts.length + i].metric })) }),
    );
  };
  const seconds = (snn: Snn, refine = false): number =>
    (snn.timing?.calibrate ?? NaN) + (refine ? (snn.timing?.refine ?? NaN) : 0);

  const cltb = await convertWith(model, calib, opts, 'cltb', 'cltb', opts.iterations, { delayFit: Tmax });
  const source = cltb.source as NonNullable<Snn['source']>;
  const qcfs = source.plan.sites.every((s) => s.activation === 'qcfs');
  const prefix = qcfs ? 'QCFS + ' : '';
  if (qcfs) {
    const own = await convertWith(model, calib, opts, 'qcfs', 'qcfs');
    await rows(own, 'qcfs', [
      { label: 'QCFS', rule: 'off', seconds: seconds(own) },
      { label: 'QCFS + DE', rule: 'auto', seconds: seconds(own) },
    ]);
  }
  await rows(cltb, 'cltb', [
    { label: `${prefix}CLTB`, rule: 'off', seconds: seconds(cltb) },
    { label: `${prefix}CLTB + DE`, rule: 'auto', seconds: seconds(cltb) },
    { label: `${prefix}CLTB + DE (fit)`, rule: 'fit', seconds: seconds(cltb, true) },
  ]);
  // Calibrations after conversion are tuned for one T: one conversion (on CLTB's thresholds) per T.
  const thresholds = Object.fromEntries(cltb.spec.sites.map((s) => [s.node, s.theta]));
  for (const kind of ['biasCalibration', 'potentialCalibration'] as const) {
    const label = `${prefix}CLTB + ${kind === 'biasCalibration' ? 'bias' : 'potential'} calibration`;
    const points: { T: number; metric: number }[] = [];
    let total = seconds(cltb);
    for (const T of Ts) {
      const snn = await convertWith(model, calib, opts, 'fixed', `${label}, T=${T}`, opts.iterations, {
        thresholds,
        [kind]: T,
      });
      total += snn.timing?.refine ?? NaN;
      const run = await simulateWindows(snn, test, [{ T, delay: 0 }], windowOptions(opts, `${label}, T=${T}`));
      points.push({ T, metric: run.scores[0].metric });
    }
    curves.push({ label, seconds: total, points });
  }
  return {
    kind: 'plugplay',
    ...info(model, test, opts),
    ann: await annScore(cltb, test, opts),
    curves,
    notes: [
      `Thresholds from ${calib.name}: CLTB ${opts.iterations} iterations × batch ${opts.batchSize}${qcfs ? '; QCFS: the trained λ of every activation' : ''}.`,
      'DE: delayed evaluation at min(d̂, ⌊T/2⌋); DE (fit): the delay fitted per T without labels on one calibration batch. Rows without DE average all T steps.',
      'Bias / potential calibration: one calibration batch, one conversion per T (its seconds add up over the T of the table), on the CLTB thresholds, no delay.',
      'seconds: conversion cost of the row (threshold calibration, plus the fit or the per-T calibrations), measured in this run.',
    ],
  };
}
