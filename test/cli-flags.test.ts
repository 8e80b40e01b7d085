/**
 * Numeric flags read numbers only as written in plain decimal: an integer flag takes digits
 * (not 1e1, 0x2, 2.0 or " 2", which Number() would quietly turn into 10, 2, 2 and 2), a decimal
 * flag takes decimal notation. Every flag of every command with a parser is checked, so a new
 * numeric flag must be sorted into one of the two kinds here.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { Command, InvalidArgumentError, type Option } from 'commander';
import { convertCommand } from '../src/cli/convert.js';
import { simulateCommand } from '../src/cli/simulate.js';
import { mergeCommand } from '../src/cli/merge.js';
import { demoCommand } from '../src/cli/demo.js';
import { dataCommand } from '../src/cli/data.js';
import { reportCommand } from '../src/cli/report.js';
import { experimentCommands } from '../src/cli/experiment.js';
import { exportCommand } from '../src/cli/export.js';

const CLI = path.join(process.cwd(), 'dist', 'src', 'cli', 'main.js');
const MNIST = path.join(process.cwd(), 'models', 'mnist-cnn.onnx');

/** Flags whose values are whole numbers (lists of them for --T and --counts; --delay and --workers also take words). */
const INTEGER = new Set([
  '--iterations',
  '--batch',
  '--seed',
  '--calib-limit',
  '--bias-calibration',
  '--potential-calibration',
  '--scale-calibration',
  '--step-bias-calibration',
  '--group',
  '--groups',
  '--calibrate-at',
  '--delay-fit',
  '--delay-fit-samples',
  '--clip-len',
  '--clips-per-video',
  '--threads',
  '--T',
  '--delay',
  '--limit',
  '--site-errors',
  '--site-errors-T',
  '--pictures',
  '--shard-count',
  '--workers',
  '--counts',
  '--top-candidates',
  '--norm-samples',
  '--detections-per-image',
  '--weight-bits',
  '--target-T',
]);
/** Flags whose values are real numbers (lists of them for --mean and --std). */
const DECIMAL = new Set([
  '--step-size',
  '--percentile',
  '--mean',
  '--std',
  '--e-sop',
  '--e-mac',
  '--checkpoint-every',
  '--frame-rate',
  '--min-area',
  '--score-threshold',
  '--nms-threshold',
]);
/** Flags whose values are lists of ids, with ranges and preset names (checked on their own below). */
const IDS = new Set(['--categories']);
const LISTS = new Set(['--T', '--counts', '--mean', '--std', '--groups', '--calibrate-at']);

/** Written forms that Number() reads as a number but that are not plain decimal. */
const NOT_DECIMAL = ['0x2', '0b1', '0o7', ' 2', '2 ', '\t2', '', '1_0', 'Infinity', '2,', '.'];
/** Forms of an integer that are not plain digits. */
const NOT_INTEGER = [...NOT_DECIMAL, '1e1', '2.0', '2.', '+2', '1E1', '2.5', '9007199254740993'];

function commands(): Command[] {
  const all = (c: Command): Command[] => [c, ...c.commands.flatMap(all)];
  return [
    convertCommand(),
    simulateCommand(),
    mergeCommand(),
    demoCommand(),
    dataCommand(),
    reportCommand(),
    experimentCommands(),
    exportCommand(),
  ].flatMap(all);
}

/** The options whose values go through a parser of our own (choices have commander's). */
function parsed(): { command: string; option: Option; parse: (v: string) => unknown }[] {
  return commands().flatMap((c) =>
    c.options
      .filter((o) => o.parseArg !== undefined && o.argChoices === undefined)
      .map((o) => ({
        command: c.name(),
        option: o,
        parse: (v: string): unknown => (o.parseArg as (v: string, p: unknown) => unknown)(v, o.defaultValue),
      })),
  );
}

function rejects(parse: (v: string) => unknown, v: string, what: string): void {
  assert.throws(
    () => parse(v),
    (e: unknown) => e instanceof InvalidArgumentError,
    `${what} ${JSON.stringify(v)} is accepted (as ${JSON.stringify(tryParse(parse, v))})`,
  );
}

function tryParse(parse: (v: string) => unknown, v: string): unknown {
  try {
    return parse(v);
  } catch {
    return undefined;
  }
}

test('every numeric flag is an integer flag or a decimal flag, and reads only plain decimal', () => {
  const options = parsed();
  const flags = new Set(options.map((o) => o.option.long as string));
  // The lists above name real flags (a renamed flag would otherwise go unchecked).
  for (const f of [...INTEGER, ...DECIMAL]) assert.ok(flags.has(f), `${f} is not a flag of any command`);
  for (const { command, option, parse } of options) {
    const flag = option.long as string;
    const what = `${command} ${flag}`;
    assert.ok(
      INTEGER.has(flag) || DECIMAL.has(flag) || IDS.has(flag),
      `${what} has a parser: add it to INTEGER or DECIMAL in this test`,
    );
    if (IDS.has(flag)) {
      assert.deepEqual(parse('0,5,2'), [0, 5, 2], what);
      assert.deepEqual(parse('0-3'), [0, 1, 2, 3], what);
      assert.equal((parse('voc') as number[]).length, 21, what);
      for (const b of [...NOT_INTEGER, '-1', '3-1', '1,,2', '0x2,1']) rejects(parse, b, what);
      continue;
    }
    const list = LISTS.has(flag);
    const one = (v: string): string => (list ? `4,${v}` : v);
    const value = (n: number): unknown => (list ? [4, n] : n);
    // In a list, spaces around the commas are fine ("8, 16"); a space inside an item is not.
    const bad = (forms: readonly string[]): string[] => forms.filter((f) => !list || f.trim() === f || f.trim() === '');
    if (list) {
      assert.deepEqual(parse(one(' 2 ')), value(2), `${what}: spaces around a comma`);
      rejects(parse, one('1 0'), what);
    }
    if (INTEGER.has(flag)) {
      for (const b of bad(NOT_INTEGER)) rejects(parse, one(b), what);
      assert.deepEqual(parse(one('2')), value(2), what);
      assert.deepEqual(parse(one('16')), value(16), what);
      if (flag === '--delay' || flag === '--seed') assert.deepEqual(parse('0'), 0, what);
    } else {
      for (const b of bad(NOT_DECIMAL)) rejects(parse, one(b), what);
      assert.deepEqual(parse(one('0.5')), value(0.5), what);
      assert.deepEqual(parse(one('2')), value(2), what);
      assert.deepEqual(parse(one('7.7e-2')), value(0.077), what);
    }
  }
  // The words some integer flags also take.
  const byFlag = (f: string): ((v: string) => unknown) =>
    (options.find((o) => o.option.long === f) as { parse: (v: string) => unknown }).parse;
  assert.equal(byFlag('--workers')('auto'), 'auto');
  for (const w of ['auto', 'off', 'fit']) assert.equal(byFlag('--delay')(w), w);
});

test('a flag with a number in another notation is one line naming the flag and the value, exit 1', () => {
  for (const [flag, value] of [
    ['--workers', '1e1'],
    ['--workers', '0x2'],
    ['--batch', '2.0'],
    ['--limit', ' 2'],
    ['--T', '4,1e1'],
    ['--threads', '+1'],
  ]) {
    // (Small enough to finish quickly should the value be taken.)
    const small = ['--limit', '2', '--T', '1', '--site-errors', '0', '--iterations', '1', '--calib-limit', '16', '-q'];
    const r = spawnSync(process.execPath, [CLI, 'simulate', MNIST, '--data', 'mnist:test', ...small, flag, value], {
      encoding: 'utf8',
    });
    assert.equal(r.status, 1, `${flag} ${value}: ${r.stderr}`);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.ok(
      lines[0].startsWith('spikeport: ') && lines[0].includes(flag) && lines[0].includes(`'${value}'`),
      `${flag} ${value}: ${lines[0]}`,
    );
  }
});
