/** Reading an ONNX file into the IR, with the hash that later identifies it. */
import fs from 'node:fs';
import crypto from 'node:crypto';
import path from 'node:path';
import type { Graph } from '../graph/ir.js';
import { decodeModel } from '../onnx/codec.js';
import { SpikeportError } from '../errors.js';

export interface LoadedModel {
  /** Where it was read from (as given); names the model in messages and records. */
  readonly path: string;
  readonly sha256: string;
  readonly graph: Graph;
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

export function sha256(bytes: Uint8Array): string {
  return crypto.createHash('sha256').update(bytes).digest('hex');
}

export function loadModel(file: string): LoadedModel {
  const bytes = readRegularFile(file);
  return { path: file, sha256: sha256(bytes), graph: decodeModel(bytes, path.basename(file)) };
}
