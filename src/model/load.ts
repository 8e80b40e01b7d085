/** Reading an ONNX file into the IR, with the hash that later identifies it. */
import crypto from 'node:crypto';
import path from 'node:path';
import type { Graph } from '../graph/ir.js';
import { decodeModel } from '../onnx/codec.js';
import { readRegularFile } from '../files.js';

export interface LoadedModel {
  /** Where it was read from (as given); names the model in messages and records. */
  readonly path: string;
  readonly sha256: string;
  readonly graph: Graph;
}

export function sha256(bytes: Uint8Array): string {
  return crypto.createHash('sha256').update(bytes).digest('hex');
}

export function loadModel(file: string): LoadedModel {
  const bytes = readRegularFile(file);
  return { path: file, sha256: sha256(bytes), graph: decodeModel(bytes, path.basename(file)) };
}
