/** Writing results to disk: whole or not at all. */
import fs from 'node:fs';
import path from 'node:path';
import { SpikeportError } from './errors.js';

/** Write atomically: a half-written file never appears under the final name. */
export function writeFileAtomic(file: string, data: Uint8Array | string): void {
  const dir = path.dirname(path.resolve(file));
  if (!fs.existsSync(dir)) throw new SpikeportError('io', `cannot write ${file}: folder ${dir} does not exist`);
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.tmp`);
  try {
    fs.writeFileSync(tmp, data);
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw new SpikeportError('io', `cannot write ${file}: ${(e as Error).message}`);
  }
}
