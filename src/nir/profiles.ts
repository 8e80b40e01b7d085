/**
 * Target profiles: what each NIR importer or chip computes from a NIR graph, as far as its own
 * code documents it (docs/nir.md cites the files each number comes from). A profile decides
 * how `--as-target` simulates, how `convert --target` calibrates and how `export nir` writes.
 */
import { SpikeportError } from '../errors.js';

/** Where the exported file will run. */
export const TARGETS = ['sinabs', 'speck', 'spinnaker2', 'loihi2', 'norse', 'generic'] as const;
export type Target = (typeof TARGETS)[number];

/** How weights become integers on the target; absent: float weights. */
export interface Quantisation {
  /** Signed weight bits: weights become integers in [−(2^(bits−1) − 1), 2^(bits−1) − 1]. */
  readonly bits: number;
  /** How the importer makes integers of a file's scaled weights: to nearest (ties to even, as numpy and torch round) or toward zero (a cast). */
  readonly rounding: 'nearest' | 'truncate';
  /**
   * How spikeport rounds when it writes the integers itself, where that differs from the
   * importer's: a file whose weights are already integers with the largest at the range's end
   * is scaled by exactly 1 on import, so the importer's cast leaves them as written.
   */
  readonly written?: 'nearest';
  /** Biases share the weights' scale and bit width (Speck), become integers with any range (Loihi 2's mantissa and exponent), or stay float (SpiNNaker2's i_offset). */
  readonly bias: 'bits' | 'integer' | 'float';
  /** The threshold becomes an integer in weight units (Speck, Loihi 2) or stays a float (SpiNNaker2). */
  readonly threshold: 'integer' | 'float';
  /** The membrane saturates at ± this many weight units (its register's range); absent: not documented, not simulated. */
  readonly membrane?: number;
  /**
   * One scale per neuron node (what the chip's register or the importer documents), or one per
   * output channel: each channel's weights, bias and threshold scaled by 2^(bits−1) − 1 over that
   * channel's largest weight (absent: per node). Per channel needs a float threshold per neuron,
   * so it is what `weightBits` gives a profile that documents no integers of its own.
   */
  readonly per?: 'node' | 'channel';
}

export interface Profile {
  readonly name: Target;
  /** After a spike the threshold is subtracted, or the membrane is set to 0. */
  readonly reset: 'subtract' | 'zero';
  /** `single`: at most one spike per step, where v > θ; `multi`: ⌊v/θ⌋ spikes where v ≥ θ (sinabs' MultiSpike). */
  readonly spikes: 'single' | 'multi';
  /** The membrane is held at or above −floor·θ after each step (sinabs' min_v_mem = −v_threshold); absent: unbounded. */
  readonly floor?: number;
  readonly quantisation?: Quantisation;
  /** The pooling node the importer reads: sinabs reads SumPool2d only (average pooling is written as a sum, its 1/k² folded into the next layer). */
  readonly pool: 'AvgPool2d' | 'SumPool2d';
  /** The importer takes Affine, not Linear (sinabs): a Linear is written as an Affine with zero bias. */
  readonly affineOnly: boolean;
  /**
   * The importer reads Scale nodes. Where it does not (or its sources do not say), a Scale is
   * folded into the layer with weights that feeds it, or the export is refused naming it.
   */
  readonly readsScale: boolean;
  /** One threshold per IF node (the chip's register): per-neuron thresholds are folded into the incoming weights. */
  readonly scalarThreshold: boolean;
  /** One line for the record. */
  readonly summary: string;
}

export const PROFILES: Readonly<Record<Target, Profile>> = {
  sinabs: {
    name: 'sinabs',
    reset: 'subtract',
    spikes: 'multi',
    floor: 1,
    pool: 'SumPool2d',
    affineOnly: true,
    readsScale: false,
    scalarThreshold: false,
    summary:
      'sinabs.from_nir: IF → IAFSqueeze (MultiSpike: ⌊v/θ⌋ spikes where v ≥ θ, subtracts them, membrane held ≥ −θ); reads Affine, Conv1d/2d, SumPool2d, Flatten (no AvgPool2d, Linear, Scale); float weights',
  },
  speck: {
    name: 'speck',
    reset: 'subtract',
    spikes: 'multi',
    floor: 1,
    pool: 'SumPool2d',
    affineOnly: true,
    readsScale: false,
    scalarThreshold: true,
    quantisation: { bits: 8, rounding: 'nearest', bias: 'bits', threshold: 'integer', membrane: 2 ** 15 - 1 },
    summary:
      'sinabs on Speck (DYNAP-CNN): as sinabs, with 8-bit weights and biases, one scale per layer (weights, bias and the 16-bit threshold), rounded to nearest; 16-bit membrane',
  },
  spinnaker2: {
    name: 'spinnaker2',
    reset: 'subtract',
    spikes: 'single',
    pool: 'AvgPool2d',
    affineOnly: false,
    readsScale: false,
    scalarThreshold: false,
    quantisation: { bits: 8, rounding: 'truncate', written: 'nearest', bias: 'float', threshold: 'float' },
    summary:
      'py-spinnaker2 s2_nir (ResetMethod.SUBTRACT, the default): one spike per step at v > θ, subtracts θ; with scale_weights the weights into each population are scaled to [−127, 127] and cast to int8 (toward zero), threshold and i_offset scaled alike as floats (spikeport writes the integers rounded to nearest, largest at ±127: the import scales them by 1 and the cast keeps them)',
  },
  loihi2: {
    name: 'loihi2',
    reset: 'zero',
    spikes: 'single',
    pool: 'AvgPool2d',
    affineOnly: false,
    readsScale: false,
    scalarThreshold: true,
    quantisation: { bits: 8, rounding: 'nearest', bias: 'integer', threshold: 'integer', membrane: (2 ** 23 - 1) / 64 },
    summary:
      "lava's bit-accurate LIF (du = 4095, dv = 0 is an IF): v > vth·2⁶ fires, v is set to 0; 8-bit weights, integer threshold and bias, 24-bit membrane held at ±(2²³ − 1) (in 2⁻⁶ weight units)",
  },
  norse: {
    name: 'norse',
    reset: 'zero',
    spikes: 'single',
    pool: 'SumPool2d',
    affineOnly: true,
    readsScale: false,
    scalarThreshold: false,
    summary:
      'norse.torch.from_nir: IF → IAFCell (fires at v > θ, v set to v_reset = 0); reads Affine, Conv2d, SumPool2d (as LPPool2d of norm 1), Flatten (no AvgPool2d, Scale); float weights',
  },
  generic: {
    name: 'generic',
    reset: 'zero',
    spikes: 'single',
    pool: 'AvgPool2d',
    affineOnly: false,
    readsScale: true,
    scalarThreshold: false,
    summary: "NIR's IF as its definition says: fires at v > θ, v ← v_reset = 0; float weights",
  },
};

export function checkTarget(target: string, field = 'target'): Target {
  if (!(TARGETS as readonly string[]).includes(target)) {
    throw new SpikeportError(
      'invalid-option',
      `${field}: unknown target "${target}" (known: ${TARGETS.join(', ')})`,
      field,
    );
  }
  return target as Target;
}

/** The most weight bits `weightBits` takes (a float32 holds integers exactly up to 2^24). */
export const MAX_WEIGHT_BITS = 16;

/**
 * The profile with `weightBits` applied: N-bit weights on top of what the profile documents (its
 * rounding, threshold and scale per node kept); a profile that documents no integers gets them
 * rounded to nearest with one scale per output channel where its thresholds are float per
 * neuron (a channel of small weights keeps its own 2^(bits−1) − 1 steps), else one per neuron
 * node; 0 takes the profile's integers away (float weights).
 */
export function profileWith(target: Target, weightBits?: number): Profile {
  const p = PROFILES[target];
  if (weightBits === undefined) return p;
  if (!Number.isInteger(weightBits) || weightBits < 0 || weightBits === 1 || weightBits > MAX_WEIGHT_BITS)
    throw new SpikeportError(
      'invalid-option',
      `weightBits must be 0 (float weights) or an integer from 2 to ${MAX_WEIGHT_BITS} (got ${weightBits})`,
      'weightBits',
    );
  // 0: the profile's neuron with float weights, to measure what its integers cost.
  if (weightBits === 0) {
    const { quantisation: _, ...rest } = p;
    return rest;
  }
  const q = p.quantisation;
  return {
    ...p,
    quantisation: {
      bits: weightBits,
      rounding: q?.rounding ?? 'nearest',
      ...(q?.written ? { written: q.written } : {}),
      bias: q?.bias ?? 'float',
      threshold: q?.threshold ?? 'float',
      ...(q?.membrane !== undefined ? { membrane: q.membrane } : {}),
      per: q ? (q.per ?? 'node') : p.scalarThreshold ? 'node' : 'channel',
    },
  };
}
