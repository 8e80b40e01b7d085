/**
 * The attributes of the windowed ops (convolutions and pooling) checked where a graph is read:
 * every later reader (ONNX Runtime, the NIR export, the MAC count) then sees the same valid
 * values, and a tampered file fails the same way whichever command reads it.
 */
import type { Node } from './ir.js';
import { SpikeportError } from '../errors.js';

/** Ops with a window over spatial axes, and the integer-list attributes they take. */
const WINDOWED: Readonly<Record<string, readonly string[]>> = {
  Conv: ['kernel_shape', 'strides', 'dilations', 'pads'],
  ConvTranspose: ['kernel_shape', 'strides', 'dilations', 'pads', 'output_padding', 'output_shape'],
  MaxPool: ['kernel_shape', 'strides', 'dilations', 'pads'],
  AveragePool: ['kernel_shape', 'strides', 'dilations', 'pads'],
  LpPool: ['kernel_shape', 'strides', 'dilations', 'pads'],
};

/**
 * The largest value of a window attribute: no spatial axis of a sample is longer (a model input
 * has at most 2²⁶ values), so larger strides, dilations, pads or kernels are tampering, and
 * every size computed from them stays an exact integer.
 */
export const MAX_WINDOW = 2 ** 26;

/** Check every windowed node of a graph; `where` names the file in the one-line error. */
export function checkAttributes(nodes: readonly Node[], where: string): void {
  for (const n of nodes) {
    const names = WINDOWED[n.opType];
    if (names && (n.domain === '' || n.domain === 'ai.onnx')) checkWindowed(n, names, where);
  }
}

function checkWindowed(n: Node, names: readonly string[], where: string): void {
  const bad = (what: string): SpikeportError =>
    new SpikeportError('invalid-file', `${where}: node "${n.name}" (${n.opType}) has ${what}`);
  const lists = new Map<string, number[]>();
  for (const name of names) {
    const a = n.attrs[name];
    if (a === undefined) continue;
    if (a.kind !== 'ints') throw bad(`${name} that is not a list of integers`);
    const min = name === 'pads' || name === 'output_padding' ? 0 : 1;
    const v = a.value.find((x) => !Number.isSafeInteger(x) || x < min || x > MAX_WINDOW);
    if (v !== undefined)
      throw bad(`${name} [${a.value.join(', ')}]: each must be an integer from ${min} to ${MAX_WINDOW} (got ${v})`);
    lists.set(name, [...a.value]);
  }
  // Spatial axes: every list (pads: begin and end per axis) must count the same.
  const axes = new Map<string, number>();
  for (const [name, v] of lists) {
    if (name === 'pads' && v.length % 2 !== 0) throw bad(`pads [${v.join(', ')}]: a begin and an end per axis`);
    axes.set(name, name === 'pads' ? v.length / 2 : v.length);
  }
  const counts = [...new Set(axes.values())];
  if (counts.length > 1)
    throw bad(
      `attributes for different numbers of spatial axes (${[...axes].map(([k, c]) => `${k} ${c}`).join(', ')})`,
    );
  if (counts[0] === 0) throw bad(`empty window attributes`);
  const group = n.attrs.group;
  if (group !== undefined && (group.kind !== 'int' || !Number.isSafeInteger(group.value) || group.value < 1))
    throw bad(`group ${group.kind === 'int' ? group.value : '(not an integer)'}: it must be an integer ≥ 1`);
  for (const flag of ['ceil_mode', 'count_include_pad', 'storage_order']) {
    const a = n.attrs[flag];
    if (a !== undefined && (a.kind !== 'int' || (a.value !== 0 && a.value !== 1)))
      throw bad(`${flag} ${a.kind === 'int' ? a.value : '(not an integer)'}: it must be 0 or 1`);
  }
}
