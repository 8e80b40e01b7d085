/**
 * What a run leaves behind, as JSON: `simulate --json` writes a SimulateRecord, each
 * `experiment` its own record. The report renders any of them (report/html.ts, markdown.ts).
 */
import type { EnergyReport } from '../energy/energy.js';
import type { SiteErrors } from '../analysis/site-errors.js';
import type { Score, Task } from '../tasks/task.js';

/** The SNN's scores at one T. */
export interface SimulationResult {
  readonly T: number;
  /** The delay d used at this T. */
  readonly delay: number;
  /** The task's main metric with the readout averaged over steps delay+1..T, and its second metric. */
  readonly metric: number;
  readonly secondary: number | null;
  /** The same with the readout averaged over all T steps. */
  readonly metricNoDelay: number;
  readonly secondaryNoDelay: number | null;
}

export interface RunInfo {
  /** What was scored (absent in records made before tasks: classification). */
  readonly task?: Task;
  readonly model: string;
  readonly data: string;
  readonly samples: number;
  readonly created: string;
}

export interface SimulateRecord extends RunInfo {
  readonly kind: 'simulate';
  readonly method: string;
  readonly iterations: number;
  readonly calibration: Readonly<Record<string, unknown>>;
  readonly maxpool: string;
  readonly ann: Score | null;
  readonly clippedAnn: Score | null;
  readonly delay: { readonly estimated: number; readonly latencies: readonly number[]; readonly rule: string };
  readonly results: readonly SimulationResult[];
  readonly firingRates: readonly { readonly site: string; readonly rate: number }[];
  readonly energy: EnergyReport | null;
  readonly siteErrors: SiteErrors | null;
  readonly simulationSeconds: number;
}

/** One curve of metric against T (a method, an iteration count, ...). */
export interface Curve {
  readonly label: string;
  readonly points: readonly { readonly T: number; readonly metric: number }[];
  readonly seconds?: number;
  readonly delay?: number;
}

export interface CurvesRecord extends RunInfo {
  readonly kind: 'ablation' | 'iterations';
  readonly ann: Score | null;
  readonly curves: readonly Curve[];
  readonly notes: readonly string[];
}

export interface DelayRecord extends RunInfo {
  readonly kind: 'delay';
  readonly ann: Score | null;
  readonly estimated: number;
  /** Per T: accuracy at each delay tried; `best` is the delay with the highest accuracy. */
  readonly sweeps: readonly {
    readonly T: number; readonly rule: number; readonly best: number;
    readonly points: readonly { readonly delay: number; readonly metric: number }[];
  }[];
}

export interface EnergyRow {
  readonly model: string;
  readonly ann: Score | null;
  readonly energy: EnergyReport;
  readonly firingRate: number;
}

export interface EnergyRecord extends RunInfo {
  readonly kind: 'energy';
  readonly rows: readonly EnergyRow[];
  readonly notes: readonly string[];
}

export type RunRecord = SimulateRecord | CurvesRecord | DelayRecord | EnergyRecord;

export const RECORD_KINDS = ['simulate', 'ablation', 'iterations', 'delay', 'energy'] as const;

export function isRunRecord(v: unknown): v is RunRecord {
  return typeof v === 'object' && v !== null && RECORD_KINDS.includes((v as { kind?: string }).kind as (typeof RECORD_KINDS)[number]);
}
