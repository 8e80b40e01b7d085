/**
 * Files on disk: outputs written whole or not at all, never over an input or over each other.
 * Every command names its inputs and outputs here before any work starts (`checkPaths`), and
 * writes all its outputs at the end in one step (`writeFilesAtomic`).
 */
import fs from 'node:fs';
import path from 'node:path';
import { SpikeportError } from './errors.js';

/** A path and what it is to the user (a flag, "MODEL", "the source ANN"), for messages. */
export interface NamedPath {
  readonly path: string;
  readonly role: string;
}

/** Read a regular file whole; a missing file, a folder or a device is a one-line error. */
export function readRegularFile(file: string): Buffer {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    throw new SpikeportError('io', `no such file: ${file}`);
  }
  if (st.isDirectory()) throw new SpikeportError('io', `${file} is a folder, not a file`);
  if (!st.isFile()) throw new SpikeportError('io', `${file} is not a regular file`);
  return fs.readFileSync(file);
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
    const dir = path.dirname(path.resolve(o.path));
    if (!fs.existsSync(dir)) throw new SpikeportError('io', `${o.role} ${o.path}: folder ${dir} does not exist`);
    if (fs.existsSync(o.path) && fs.statSync(o.path).isDirectory())
      throw new SpikeportError('io', `${o.role} ${o.path} is a folder`);
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
 * Write several files as one step: each is written to a temp file beside it first, and only
 * when all are written are they renamed into place. If writing any fails, none appears.
 */
export function writeFilesAtomic(
  files: readonly { readonly path: string; readonly data: Uint8Array | string }[],
): void {
  const staged: string[] = [];
  const placed: number[] = [];
  const existed = files.map((f) => fs.existsSync(f.path));
  try {
    for (const f of files) {
      const dir = path.dirname(path.resolve(f.path));
      if (!fs.existsSync(dir)) throw new SpikeportError('io', `cannot write ${f.path}: folder ${dir} does not exist`);
      removeStaleTemps(f.path);
      const tmp = tempName(f.path);
      staged.push(tmp);
      try {
        fs.writeFileSync(tmp, f.data);
      } catch (e) {
        throw new SpikeportError('io', `cannot write ${f.path}: ${(e as Error).message}`);
      }
    }
    files.forEach((f, i) => {
      try {
        fs.renameSync(staged[i], f.path);
        placed.push(i);
      } catch (e) {
        // Take back the new files this call already put in place; replaced ones cannot come back.
        for (const j of placed) if (!existed[j]) fs.rmSync(files[j].path, { force: true });
        throw new SpikeportError('io', `cannot write ${f.path}: ${(e as Error).message}`);
      }
    });
  } finally {
    for (const tmp of staged) fs.rmSync(tmp, { force: true });
  }
}

/** Write one file atomically: a half-written file never appears under the final name. */
export function writeFileAtomic(file: string, data: Uint8Array | string): void {
  writeFilesAtomic([{ path: file, data }]);
}
