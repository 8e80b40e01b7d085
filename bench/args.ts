/** What every bench script reads: the project's root and its command-line flags (`--name value`). */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The project's root (the scripts run from dist/bench/). */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const argv = process.argv.slice(2);

// A bench can run for many minutes: --help prints the script's own header comment (what it
// measures, its flags, the command) and stops, instead of running the defaults.
if (argv.includes('--help') || argv.includes('-h')) {
  const text = fs.readFileSync(process.argv[1], 'utf8');
  const head = /\/\*\*([\s\S]*?)\*\//.exec(text)?.[1] ?? ' * (no description)';
  process.stdout.write(head.replace(/^\s*\* ?/gm, '').trim() + '\n');
  process.exit(0);
}

/** The value after `--name`, or the fallback. */
export function arg(name: string, fallback: string): string {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : fallback;
}
