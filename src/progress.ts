/** Progress of long work, reported through a callback; the library never prints it itself. */
export interface Progress {
  /** What is running, e.g. "calibrate" or "simulate". */
  readonly phase: string;
  readonly done: number;
  readonly total: number;
}

export type OnProgress = (p: Progress) => void;

/** The same callback with every phase prefixed by `tag` (e.g. which experiment setting runs). */
export function tagged(onProgress: OnProgress | undefined, tag: string): OnProgress | undefined {
  return onProgress ? (p) => onProgress({ ...p, phase: `${tag}: ${p.phase}` }) : undefined;
}
