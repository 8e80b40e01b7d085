/** What every bench script reads: the project's root and its command-line flags (`--name value`). */
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The project's root (the scripts run from dist/bench/). */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const argv = process.argv.slice(2);

/** The value after `--name`, or the fallback. */
export function arg(name: string, fallback: string): string {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : fallback;
}
