/**
 * Temporary folders for tests, removed when done: a test file's folder after its last test, a
 * test's own folder when that test ends (passed or failed). Tests make temporary folders only
 * here (test/temp-dirs.test.ts checks), so none is left behind in the system's temp folder.
 */
import { after } from 'node:test';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** What removes the folder when it ends: a test's context (`t`); without one, the test file. */
export interface Owner {
  after(fn: () => void): void;
}

/** A new folder `<tmpdir>/<prefix>XXXXXX`, removed with everything in it when `owner` ends (default: the file's tests). */
export function tempDir(prefix: string, owner?: Owner): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const remove = (): void => fs.rmSync(dir, { recursive: true, force: true });
  if (owner) owner.after(remove);
  else after(remove);
  return dir;
}
