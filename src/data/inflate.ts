/**
 * Inflating only what is needed: the first bytes of a deflate or gzip stream, read in small
 * slices and stopped as soon as they are out. A few kilobytes of deflate can claim gigabytes;
 * here memory follows what the caller asks for, never what the stream claims.
 */
import { Gunzip, Inflate } from 'fflate';

/** Compressed bytes read per step: one slice inflates to at most about a thousand times its size. */
const SLICE = 16384;

/**
 * Bytes skip..want−1 of the inflated stream whose compressed bytes `read(pos, len)` gives
 * (`size` of them), in a buffer of their own. Fewer when the stream ends first: `have` says how
 * many bytes the stream gave in all (up to where it stopped). Throws what the inflater throws on
 * a broken stream.
 */
export function inflatePrefix(
  read: (pos: number, len: number) => Uint8Array,
  size: number,
  want: number,
  opts: { readonly skip?: number; readonly gzip?: boolean } = {},
): { readonly data: Uint8Array<ArrayBuffer>; readonly have: number } {
  const skip = opts.skip ?? 0;
  const data = new Uint8Array(Math.max(0, want - skip));
  let have = 0;
  let ended = false;
  const onData = (chunk: Uint8Array, final: boolean): void => {
    // The part of this chunk that falls in skip..want−1.
    const from = Math.max(0, skip - have);
    const to = Math.min(chunk.length, want - have);
    if (to > from) data.set(chunk.subarray(from, to), have + from - skip);
    have += chunk.length;
    if (final) ended = true;
  };
  const stream = opts.gzip ? new Gunzip(onData) : new Inflate(onData);
  for (let pos = 0; have < want && !ended && pos < size; pos += SLICE) {
    const len = Math.min(SLICE, size - pos);
    stream.push(read(pos, len), pos + len >= size);
  }
  return { data, have };
}
