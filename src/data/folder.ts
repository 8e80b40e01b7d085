/**
 * A data set's folder and what may be read through it. A folder downloaded from anywhere can hold
 * symbolic links; one that leads outside the folder the user named (to /etc/passwd, to /usr) is
 * refused, naming the link, unless the user asks to follow links (`followLinks`). Links that stay
 * inside are fine. Only regular files are read as data.
 */
import fs from 'node:fs';
import path from 'node:path';
import { SpikeportError } from '../errors.js';

export interface DataFolder {
  /** The data set's spec, for messages. */
  readonly spec: string;
  /** The folder as the user named it. */
  readonly root: string;
  /** The folder after links (the folder the user named may itself be a link). */
  readonly real: string;
  readonly followLinks: boolean;
}

/** The folder of a data set; a missing folder or a file is a one-line error. */
export function dataFolder(spec: string, root: string, followLinks = false): DataFolder {
  let real: string;
  try {
    real = fs.realpathSync(root);
  } catch {
    throw new SpikeportError('io', `no such folder: ${root}`);
  }
  if (!fs.statSync(real).isDirectory()) throw new SpikeportError('io', `${root} is not a folder`);
  return { spec, root, real, followLinks };
}

function isInside(real: string, dir: string): boolean {
  return real === dir || real.startsWith(dir.endsWith(path.sep) ? dir : dir + path.sep);
}

/**
 * Check that `p` (a path under the folder, as the source builds it) does not lead outside the
 * folder through a link. A path that does not exist passes: its reader says it is missing.
 */
export function checkInside(f: DataFolder, p: string): void {
  if (f.followLinks) return;
  let real: string;
  try {
    real = fs.realpathSync(p);
  } catch {
    return;
  }
  if (isInside(real, f.real)) return;
  // Name the link: the first part of the path, below the folder, that is one.
  const rel = path.relative(f.root, p);
  let link = p;
  if (!rel.startsWith('..') && !path.isAbsolute(rel)) {
    let at = f.root;
    for (const part of rel.split(path.sep)) {
      at = path.join(at, part);
      if (fs.lstatSync(at, { throwIfNoEntry: false })?.isSymbolicLink()) {
        link = at;
        break;
      }
    }
  }
  throw new SpikeportError(
    'invalid-data',
    `${f.spec}: ${link} is a link to ${real}, outside the data set's folder ${f.root}; such links are refused (followLinks to follow them)`,
    'followLinks',
  );
}
