/**
 * Files on disk: outputs written whole or not at all, never over an input or over each other.
 * Every command names its inputs and outputs here before any work starts (`checkPaths`), and
 * writes all its outputs at the end in one step (`writeFilesAtomic`).
 *
 * What an output path may be, decided here once for every output of every command:
 *   - nothing yet, or a regular file: the file is written beside it and renamed into place;
 *   - a symbolic link: followed; a link to a regular file keeps being a link (the file it points
 *     to is replaced), a link to nothing is refused (name the file itself);
 *   - a character device or a FIFO (`/dev/null`, `/dev/stdout`, a named pipe): written in place,
 *     never replaced (a FIFO waits for its reader, as a shell's `>` does);
 *   - anything else (a folder, a block device, a socket): refused.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SpikeportError } from './errors.js';

/** A path and what it is to the user (a flag, "MODEL", "the source ANN"), for messages. */
export interface NamedPath {
  readonly path: string;
  readonly role: string;
}

/** The largest file read whole: Node reads at most 2 GiB into one buffer (and an ONNX model is one protobuf message, at most 2 GiB). */
export const MAX_READ_BYTES = 2 ** 31 - 1;
/** The largest text file parsed whole (JSON): a JavaScript string's length limit. */
export const MAX_TEXT_BYTES = 0x1fffffe8;

function sizeText(bytes: number): string {
  return bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(1)} GiB` : `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

/**
 * Read a regular file whole; a missing file, a folder, a device or a file over `maxBytes`
 * (checked before reading) is a one-line error. `what` names the kind of file in that error.
 */
export function readRegularFile(file: string, maxBytes = MAX_READ_BYTES, what = 'a file'): Buffer {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    throw new SpikeportError('io', `no such file: ${file}`);
  }
  if (st.isDirectory()) throw new SpikeportError('io', `${file} is a folder, not a file`);
  if (!st.isFile()) throw new SpikeportError('io', `${file} is not a regular file`);
  if (st.size > maxBytes)
    throw new SpikeportError(
      'io',
      `${file} is ${sizeText(st.size)}, more than spikeport reads as ${what} (at most ${sizeText(maxBytes)})`,
    );
  return fs.readFileSync(file);
}

/** Is there anything at `p` (a dangling link included)? */
export function occupied(p: string): boolean {
  try {
    fs.lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

/**
 * Where an output goes, by the rules above: `new` or `file` (written beside `target` and renamed
 * over it; `target` is the link's file for a link) or `stream` (opened and written in place).
 * `name` says the output in messages (a flag and its path, or the path).
 */
export function outputTarget(p: string, name: string): { kind: 'new' | 'file' | 'stream'; target: string } {
  if (p === '') throw new SpikeportError('io', `${name.trim()}: the file name is empty`);
  let st: fs.Stats;
  try {
    st = fs.lstatSync(p);
  } catch {
    return { kind: 'new', target: path.resolve(p) };
  }
  const link = st.isSymbolicLink();
  if (link) {
    try {
      st = fs.statSync(p);
    } catch {
      throw new SpikeportError(
        'io',
        `${name} is a link to ${fs.readlinkSync(p)}, which does not exist; name the file itself`,
      );
    }
  }
  if (st.isFile()) {
    if (!link) return { kind: 'file', target: path.resolve(p) };
    try {
      return { kind: 'file', target: fs.realpathSync(p) };
    } catch (e) {
      throw new SpikeportError('io', `${name}: cannot follow the link (${(e as Error).message})`);
    }
  }
  if (st.isCharacterDevice() || st.isFIFO()) return { kind: 'stream', target: p };
  const what = st.isDirectory() ? 'a folder' : st.isBlockDevice() ? 'a block device' : 'not a regular file';
  throw new SpikeportError(
    'io',
    `${name} is ${what}; name a file (outputs are regular files, or written in place to a character device or FIFO)`,
  );
}

/** What identifies a file after links: its device and inode, or (not there yet) its resolved path. */
function identity(p: string): string {
  try {
    const st = fs.statSync(p); // follows symbolic links
    return `inode ${st.dev}:${st.ino}`;
  } catch {
    let dir: string;
    try {
      dir = fs.realpathSync(path.dirname(path.resolve(p)));
    } catch {
      return `path ${path.resolve(p)}`;
    }
    return `path ${path.join(dir, path.basename(p))}`;
  }
}

/**
 * Check a command's files before it reads or computes anything: every output's folder exists,
 * no output is a folder, and no output is an input or another output (after resolving links,
 * hard ones included).
 */
export function checkPaths(inputs: readonly NamedPath[], outputs: readonly NamedPath[]): void {
  const seen = new Map<string, NamedPath>();
  for (const i of inputs) seen.set(identity(i.path), i);
  for (const o of outputs) {
    const { kind, target } = outputTarget(o.path, `${o.role} ${o.path}`);
    const dir = path.dirname(target);
    if (kind === 'new' && !fs.existsSync(dir))
      throw new SpikeportError('io', `${o.role} ${o.path}: folder ${dir} does not exist`);
    const id = identity(o.path);
    const other = seen.get(id);
    if (other) {
      const what = inputs.includes(other)
        ? `would overwrite ${other.role} ${other.path}`
        : `is also ${other.role} ${other.path}`;
      throw new SpikeportError('io', `${o.role} ${o.path} ${what}; choose another file`);
    }
    seen.set(id, o);
  }
}

function tempName(file: string, pid = process.pid): string {
  return path.join(path.dirname(path.resolve(file)), `.${path.basename(file)}.${pid}.tmp`);
}

/** Temp files of `file` left by processes that no longer run (killed while writing). */
function removeStaleTemps(file: string): void {
  const dir = path.dirname(path.resolve(file));
  const prefix = `.${path.basename(file)}.`;
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    if (!name.startsWith(prefix) || !name.endsWith('.tmp')) continue;
    const pid = Number(name.slice(prefix.length, -'.tmp'.length));
    if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid || isRunning(pid)) continue;
    fs.rmSync(path.join(dir, name), { force: true });
  }
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Write several files as one step: each is written to a temp file beside it first (devices and
 * FIFOs are written in place, after every temp file is written), and only when all are written
 * are they renamed into place. If writing any fails, none appears.
 */
export function writeFilesAtomic(
  files: readonly { readonly path: string; readonly data: Uint8Array | string }[],
): void {
  const targets = files.map((f) => outputTarget(f.path, f.path));
  const staged: (string | null)[] = [];
  const placed: number[] = [];
  const existed = targets.map((t) => t.kind === 'file');
  try {
    files.forEach((f, i) => {
      const { kind, target } = targets[i];
      if (kind === 'stream') return void staged.push(null);
      const dir = path.dirname(target);
      if (!fs.existsSync(dir)) throw new SpikeportError('io', `cannot write ${f.path}: folder ${dir} does not exist`);
      removeStaleTemps(target);
      const tmp = tempName(target);
      staged.push(tmp);
      try {
        fs.writeFileSync(tmp, f.data);
      } catch (e) {
        throw new SpikeportError('io', `cannot write ${f.path}: ${(e as Error).message}`);
      }
    });
    files.forEach((f, i) => {
      if (targets[i].kind === 'stream') writeInPlace(f.path, f.data);
    });
    files.forEach((f, i) => {
      const tmp = staged[i];
      if (tmp === null) return;
      try {
        fs.renameSync(tmp, targets[i].target);
        placed.push(i);
      } catch (e) {
        // Take back the new files this call already put in place; replaced ones cannot come back.
        for (const j of placed) if (!existed[j]) fs.rmSync(targets[j].target, { force: true });
        throw new SpikeportError('io', `cannot write ${f.path}: ${(e as Error).message}`);
      }
    });
  } finally {
    for (const tmp of staged) if (tmp !== null) fs.rmSync(tmp, { force: true });
  }
}

/** Write to a character device or FIFO that exists: opened without creating or truncating anything. */
function writeInPlace(file: string, data: Uint8Array | string): void {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_WRONLY);
  } catch (e) {
    throw new SpikeportError('io', `cannot write ${file}: ${(e as Error).message}`);
  }
  try {
    fs.writeFileSync(fd, data);
  } catch (e) {
    throw new SpikeportError('io', `cannot write ${file}: ${(e as Error).message}`);
  } finally {
    fs.closeSync(fd);
  }
}

/** Write one file atomically: a half-written file never appears under the final name. */
export function writeFileAtomic(file: string, data: Uint8Array | string): void {
  writeFilesAtomic([{ path: file, data }]);
}

/**
 * A private folder for the run's own temporary files, in the system's temporary folder. One that
 * cannot be made (a missing, read-only or full TMPDIR) is the user's to fix: one line.
 */
export function scratchDir(prefix: string): string {
  try {
    return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  } catch (e) {
    throw scratchError(e);
  }
}

/** Write a temporary file into a scratchDir folder; a full disk is one line. */
export function scratchWrite(file: string, data: Uint8Array | string): void {
  try {
    fs.writeFileSync(file, data);
  } catch (e) {
    throw scratchError(e);
  }
}

function scratchError(e: unknown): SpikeportError {
  return scratchFailure(String((e as Error).message).split('\n')[0]);
}

/** A temporary file could not be written (full disk, file size limit): one line with the reason. */
export function scratchFailure(why: string): SpikeportError {
  return new SpikeportError(
    'io',
    `cannot write temporary files in ${os.tmpdir()} (${why}); set TMPDIR to a writable folder with room`,
  );
}
