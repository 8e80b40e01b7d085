/**
 * The integrate-and-fire neuron with reset by subtraction (docs/algorithm.md §1), as ONNX ops.
 *
 * The membrane is stored as u = m − m₀ (m₀ its value at t = 0, θ/2 by default), so every
 * state starts at zero: the neuron fires when u ≥ θ − m₀ (its firing level, θ/2 by default),
 * emits θ and subtracts θ. A channel with θ = 0 never fires (its firing level is +∞).
 */
import { floatTensor, int64Tensor, type Tensor } from '../graph/ir.js';
import type { GraphBuilder } from '../onnx/builder.js';

export interface NeuronPorts {
  /** The input current of this step (the site's pre-activation). */
  readonly current: string;
  /** Where the spikes (θ per spike, 0 elsewhere) go: the site's output tensor. */
  readonly spikes: string;
  /** The membrane state u in, and the next u out. */
  readonly state: { readonly input: string; readonly output: string };
}

export interface NeuronOptions {
  /** The firing level θ − m₀, broadcast against the membrane (default θ/2, shaped like θ). */
  readonly fireLevel?: Tensor;
  /** A current added at every step (bias calibration), broadcast against the input current. */
  readonly bias?: Tensor;
}

/**
 * Add one step of the neuron. `theta` is per channel (shaped `dims`, e.g. [1, C, 1, 1]) or one
 * value; five passes over the membrane: integrate, compare, cast, emit θ, reset (six with a bias).
 */
export function addIfNeuron(
  b: GraphBuilder,
  ports: NeuronPorts,
  theta: Float32Array,
  dims: readonly number[],
  hint: string,
  opts: NeuronOptions = {},
): void {
  const thetaName = b.constant(`theta_${hint}`, floatTensor(dims, theta));
  const levelName = b.constant(
    `fire_level_${hint}`,
    opts.fireLevel ??
      floatTensor(
        dims,
        Array.from(theta, (v) => (v > 0 ? v / 2 : Infinity)),
      ),
  );
  const current = opts.bias ? b.op('Add', [ports.current, b.constant(`bias_${hint}`, opts.bias)]) : ports.current;
  const u1 = b.op('Add', [ports.state.input, current]);
  const fired = b.opset >= 12 ? b.op('GreaterOrEqual', [u1, levelName]) : b.op('Not', [b.op('Less', [u1, levelName])]);
  // Where(fired, θ, 0) would save a pass but runs 3× slower in ONNX Runtime than Cast + Mul (profiled).
  b.add('Mul', [b.op('Cast', [fired], { to: 1 }), thetaName], {}, [ports.spikes]);
  b.add('Sub', [u1, ports.spikes], {}, [ports.state.output]);
}

/**
 * A site's neuron made of K binary IF neurons (docs/algorithm.md §11), so that one step carries
 * K + 1 levels instead of two:
 *
 * - `population`: K ordinary IF neurons share the input current; neuron i (i = 0 … K−1) starts
 *   at m₀ = θ(i + s)/K (s the site's start, ½ by default), fires at θ and subtracts θ, and each
 *   spike carries 1/K of the outgoing weight. On a constant input their spike count over T
 *   steps equals one neuron's over K·T steps (Hermite's identity).
 * - `shared`: K binary neurons on one membrane m that starts at s·θ/K; neuron i (i = 1 … K)
 *   fires when m ≥ i·θ/K, and the membrane loses θ/K per spike (a shared reset by
 *   subtraction). Each spike carries θ/K.
 */
export const GROUP_KINDS = ['population', 'shared'] as const;
export type GroupKind = (typeof GROUP_KINDS)[number];

export interface NeuronGroup {
  /** K: binary neurons per ANN neuron (≥ 2). */
  readonly size: number;
  readonly kind: GroupKind;
}

/**
 * A population of K IF neurons per ANN neuron: the current tiled K times along axis 1 (member
 * i of channel c at index i·C + c), one IF neuron per member (addIfNeuron: the same five ops,
 * so every engine that runs an IF site runs these), and the mean of the members' spikes as the
 * site's output. `level` is the members' firing level θ − m₀, shaped [1, K·C, …] (or per
 * neuron). Returns the members' spike tensor ([N, K·C, …], θ per spike), which the counters read.
 */
export function addPopulation(
  b: GraphBuilder,
  ports: NeuronPorts,
  thetaK: Tensor,
  level: Tensor,
  K: number,
  shape: readonly number[],
  hint: string,
  bias?: Tensor,
): string {
  const current = bias ? b.op('Add', [ports.current, b.constant(`bias_${hint}`, bias)]) : ports.current;
  const tiled = b.op('Concat', new Array<string>(K).fill(current), { axis: 1 });
  const members = b.fresh(`members_${hint}`);
  addIfNeuron(
    b,
    { current: tiled, spikes: members, state: ports.state },
    thetaK.data as Float32Array,
    thetaK.dims,
    hint,
    { fireLevel: level },
  );
  const split = b.op('Reshape', [
    members,
    b.constant(`members_shape_${hint}`, int64Tensor([shape.length + 2], [0, K, ...shape])),
  ]);
  b.reduce('ReduceMean', split, [1], false, `group_mean_${hint}`, ports.spikes);
  return members;
}

/**
 * K binary neurons on one membrane (shared reset): with u = m − m₀ (m₀ = s·θ/K, or per neuron
 * after potential calibration, given as `start`), n = min(max(⌊(u + m₀)·K/θ⌋, 0), K) neurons
 * fire, the output is n·θ/K and u loses n·θ/K. A channel with θ = 0 never fires (K/θ taken as 0).
 */
export function addSharedGroup(
  b: GraphBuilder,
  ports: NeuronPorts,
  theta: Float32Array,
  dims: readonly number[],
  K: number,
  start: Tensor,
  hint: string,
  bias?: Tensor,
): void {
  const stepName = b.constant(
    `group_step_${hint}`,
    floatTensor(
      dims,
      Array.from(theta, (t) => (t > 0 ? t / K : 0)),
    ),
  );
  const perStep = b.constant(
    `group_inv_step_${hint}`,
    floatTensor(
      dims,
      Array.from(theta, (t) => (t > 0 ? K / t : 0)),
    ),
  );
  const current = bias ? b.op('Add', [ports.current, b.constant(`bias_${hint}`, bias)]) : ports.current;
  const u1 = b.op('Add', [ports.state.input, current]);
  const levels = b.op('Mul', [b.op('Add', [u1, b.constant(`group_start_${hint}`, start)]), perStep]);
  const fired = b.op('Min', [b.op('Relu', [b.op('Floor', [levels])]), b.scalar(K, `group_size_${hint}`)]);
  b.add('Mul', [fired, stepName], {}, [ports.spikes]);
  b.add('Sub', [u1, ports.spikes], {}, [ports.state.output]);
}
