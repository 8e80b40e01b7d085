/**
 * Errors caused by what the caller gave (a file, an option, a data set), as opposed to bugs.
 * Messages speak the library's language: an option is named by its field (`iterations`,
 * `readoutNode`), never by a command-line flag; the CLI maps fields to flags.
 */

/** What kind of input was at fault. */
export type ErrorCode =
  /** An option's value is out of range or inconsistent with another option. */
  | 'invalid-option'
  /** A file is not what it claims to be (not ONNX, not a spikeport SNN, malformed metadata or JSON). */
  | 'invalid-file'
  /** A valid model that spikeport cannot convert (an op that cannot carry spikes, no ReLU, …). */
  | 'unsupported-model'
  /** A data set is missing, empty, malformed or does not fit the model. */
  | 'invalid-data'
  /** A file cannot be read or written. */
  | 'io'
  /** ONNX Runtime refused to load or run a graph. */
  | 'runtime';

export class SpikeportError extends Error {
  readonly code: ErrorCode;
  /** The option field at fault (or the one that fixes the problem), e.g. "iterations"; absent when no option is involved. */
  readonly field?: string;

  constructor(code: ErrorCode, message: string, field?: string) {
    // One line: parts quoted from files (a JSON parser's excerpt, say) may hold line breaks.
    super(message.replace(/\s*[\r\n]+\s*/g, ' '));
    this.name = 'SpikeportError';
    this.code = code;
    if (field !== undefined) this.field = field;
  }
}

/** An option with a bad value: the message starts with the field's name. */
export function optionError(field: string, detail: string): SpikeportError {
  return new SpikeportError('invalid-option', `${field} ${detail}`, field);
}

/** Check that an option is an integer ≥ min (and ≤ max, when given; the error names the limit). */
export function checkInteger(field: string, value: number, min: number, max?: number, why?: string): void {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min)
    throw optionError(field, `must be an integer ≥ ${min} (got ${String(value)})`);
  if (max !== undefined && value > max)
    throw optionError(field, `must be at most ${max}${why ? ` (${why})` : ''} (got ${value})`);
}

/** Text without control characters, so that printing it cannot drive a terminal (for text read from files). */
export function isPrintable(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || (c >= 0x7f && c <= 0x9f)) return false;
  }
  return true;
}
