/**
 * Errors caused by what the caller gave (a file, an option, a data set), as opposed to bugs.
 * Messages speak the library's language: an option is named by its field (`iterations`,
 * `readoutNode`), never by a command-line flag. An error is data: its code, the field at fault,
 * every field its message names (marked with `field()`) and the values involved; the CLI renders
 * the message with each field as the flag that sets it (`render`), a library caller may word it
 * as it likes.
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

const OPEN = '\u{E000}';
const CLOSE = '\u{E001}';
const MARKED = /\u{E000}([A-Za-z][\w.]*)\u{E001}/gu;

/**
 * An option field named inside a message. The error keeps it as data: `message` shows the field's
 * own name, `render` lets the caller say it in its own words (the CLI names the flag that sets it).
 */
export function field(name: string): string {
  return `${OPEN}${name}${CLOSE}`;
}

/** Text with its marked fields named by `name` (their own names where it returns undefined). */
function renderText(text: string, name: (field: string) => string | undefined): string {
  return text.replace(MARKED, (_, f: string) => name(f) ?? f);
}

export class SpikeportError extends Error {
  readonly code: ErrorCode;
  /** The option field at fault (or the one that fixes the problem), e.g. "iterations"; absent when no option is involved. */
  readonly field?: string;
  /** Every option field the message names, in order (the field at fault first when it is named). */
  readonly fields: readonly string[];
  /** The values the error is about (the value given, the limit, …), for callers that word errors themselves. */
  readonly values?: Readonly<Record<string, string | number | boolean | null>>;
  /** The message with its fields marked (`field()`), for `render`. */
  readonly #template: string;

  constructor(
    code: ErrorCode,
    message: string,
    field?: string,
    values?: Readonly<Record<string, string | number | boolean | null>>,
  ) {
    // One line: parts quoted from files (a JSON parser's excerpt, say) may hold line breaks.
    const template = message.replace(/\s*[\r\n]+\s*/g, ' ');
    super(renderText(template, () => undefined));
    this.name = 'SpikeportError';
    this.code = code;
    this.#template = template;
    const named = [...template.matchAll(MARKED)].map((m) => m[1]);
    this.fields = [...new Set(field === undefined ? named : [field, ...named])];
    if (field !== undefined) this.field = field;
    if (values !== undefined) this.values = values;
  }

  /** The message with each option field it names said as `name(field)` says (its own name where that is undefined). */
  render(name: (field: string) => string | undefined): string {
    return renderText(this.#template, name);
  }

  /** This error inside the option `name` (a file it names failed, say): `name: message`, its marks kept. */
  within(name: string): SpikeportError {
    return new SpikeportError(this.code, `${field(name)}: ${this.#template}`, name, this.values);
  }
}

/** An option with a bad value: the message starts with the field's name. */
export function optionError(
  name: string,
  detail: string,
  values?: Readonly<Record<string, string | number | boolean | null>>,
): SpikeportError {
  return new SpikeportError('invalid-option', `${field(name)} ${detail}`, name, values);
}

/** Check that an option is an integer ≥ min (and ≤ max, when given; the error names the limit). */
export function checkInteger(field: string, value: number, min: number, max?: number, why?: string): void {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min)
    throw optionError(field, `must be an integer ≥ ${min} (got ${String(value)})`, { got: String(value), min });
  if (max !== undefined && value > max)
    throw optionError(field, `must be at most ${max}${why ? ` (${why})` : ''} (got ${value})`, { got: value, max });
}

/** Text without control characters, so that printing it cannot drive a terminal (for text read from files). */
export function isPrintable(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || (c >= 0x7f && c <= 0x9f)) return false;
  }
  return true;
}
