/**
 * A run's identity: what every shard of one run must share (the networks' hashes, the data's
 * fingerprint, the options that change results), and its hash, a shard file's `config`.
 */
import { createHash } from 'node:crypto';
import type { Snn } from '../snn/network.js';
import type { Dataset } from '../data/dataset.js';
import { type RecordContext } from './shard-file.js';

/** What every shard of one run must share; its hash is the shard file's `config`. */
export interface RunConfig {
  /** The source ANN's sha256, and the converted network's (its ONNX bytes: thresholds, options, corrections). */
  readonly model: { readonly source: string; readonly snn: string };
  /** sha256 of the thresholds (also inside the network; kept apart to say what differs). */
  readonly thresholds: string;
  /** The data's spec and size, and a hash of its sample shape, labels and boxes (known without reading the samples). */
  readonly data: { readonly name: string; readonly size: number; readonly fingerprint: string };
  /** The simulation options that change results (threads and device do not). */
  readonly options: Readonly<Record<string, unknown>>;
  /** Batches of the data (size ÷ batchSize, rounded up), and into how many shards they are cut. */
  readonly batches: number;
  readonly shards: number;
}

/** JSON with keys sorted: the same value always gives the same text (for hashing). */
export function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    return `{${Object.keys(v)
      .sort()
      .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

function sha256(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** The hash every shard of a run shares: of its configuration and of what its record says besides the statistics. */
export function configHash(run: RunConfig, context: RecordContext): string {
  return sha256(canonical({ run, context }));
}

/** The identity of a run of `snn` on data of this name and size with these options, cut into `shards`. */
export function runConfig(
  snn: Snn,
  data: Dataset,
  options: Record<string, unknown>,
  batchSize: number,
  shards: number,
): RunConfig {
  const th = snn.thresholds();
  return {
    model: { source: snn.meta.source.sha256, snn: sha256(snn.toBytes()) },
    thresholds: sha256(canonical({ granularity: th.granularity, values: th.values.map((v) => Array.from(v)) })),
    data: { name: data.name, size: data.size, fingerprint: dataFingerprint(data) },
    options,
    batches: Math.ceil(data.size / batchSize),
    shards,
  };
}

/**
 * What can be known of a data set without reading its samples: its shape, labels and boxes.
 * Two folders of the same name and size with other labels differ here; images that differ
 * only in their pixels do not (reading them all would cost what a shard is meant to save).
 */
export function dataFingerprint(d: Dataset): string {
  const h = createHash('sha256').update(
    canonical({ sampleShape: d.sampleShape, maskShape: d.maskShape ?? null, scale: d.scale }),
  );
  if (d.labels) h.update(new Uint8Array(d.labels.buffer, d.labels.byteOffset, d.labels.byteLength));
  if (d.boxes) h.update(canonical(d.boxes));
  return h.digest('hex');
}
