/**
 * What long work says while it runs and besides its results, through callbacks and records;
 * the library never prints it itself.
 */
export interface Progress {
  /** What is running, e.g. "calibrate" or "simulate". */
  readonly phase: string;
  readonly done: number;
  readonly total: number;
  /** What `done` and `total` count, e.g. "batches" (absent: unnamed). */
  readonly unit?: string;
}

export type OnProgress = (p: Progress) => void;

/** The same callback with every phase prefixed by `tag` (e.g. which experiment setting runs). */
export function tagged(onProgress: OnProgress | undefined, tag: string): OnProgress | undefined {
  return onProgress ? (p) => onProgress({ ...p, phase: `${tag}: ${p.phase}` }) : undefined;
}

/**
 * Something the user should know about a result that may not be what they meant: one sentence,
 * naming option fields (never command-line flags), like errors do. A caller prints each on a line.
 */
export interface Notice {
  /** What it is about, for programs: e.g. "no-normalization", "no-reference", "clipping". */
  readonly code: string;
  readonly message: string;
  /** The option field that changes it, when one does (the CLI names its flag instead). */
  readonly field?: string;
}

export type OnNotice = (n: Notice) => void;
