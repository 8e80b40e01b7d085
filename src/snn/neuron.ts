/**
 * The integrate-and-fire neuron with reset by subtraction (docs/algorithm.md §1), as ONNX ops.
 *
 * The membrane is stored as u = m − m₀ (m₀ its value at t = 0, θ/2 by default), so every
 * state starts at zero: the neuron fires when u ≥ θ − m₀ (its firing level, θ/2 by default),
 * emits θ and subtracts θ. A channel with θ = 0 never fires (its firing level is +∞).
 */
import { floatTensor, type Tensor } from '../graph/ir.js';
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
