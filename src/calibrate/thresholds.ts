/**
 * Thresholds: one θ per channel (channel-wise) or one per site (layer-wise), and how a θ vector
 * lines up with a site's tensor (docs/algorithm.md §1).
 */
export type Granularity = 'channel' | 'layer';

export interface Thresholds {
  readonly granularity: Granularity;
  /** Per site, front to back: θ per channel (length C) or one value (layer-wise). */
  readonly values: readonly Float32Array[];
}

/** θ's shape for a site input of this rank (with batch axis): [1, C, 1, …] channel-wise, all ones layer-wise. */
export function thetaShape(rank: number, channels: number, g: Granularity): number[] {
  const s = new Array<number>(rank).fill(1);
  if (g === 'channel') s[1] = channels;
  return s;
}

/** Every axis but the channel axis (1), or all axes layer-wise: the axes a per-θ statistic reduces. */
export function reducedAxes(rank: number, g: Granularity): number[] {
  return Array.from({ length: rank }, (_, i) => i).filter((i) => g === 'layer' || i !== 1);
}

/**
 * θ of every element of one sample's site tensor (channel-major: `perSample / channels`
 * elements per channel), for element-wise work in JS.
 */
export function thetaPerElement(theta: ArrayLike<number>, perSample: number, channels: number): Float32Array {
  const out = new Float32Array(perSample);
  if (theta.length === 1) return out.fill(theta[0]);
  const spatial = perSample / channels;
  for (let k = 0; k < perSample; k++) out[k] = theta[Math.floor(k / spatial)];
  return out;
}
