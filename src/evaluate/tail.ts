/** The ops after the readout, run as ANN on (averaged) readouts; the identity when there are none. */
import type { Graph } from '../graph/ir.js';
import { numel } from '../graph/ir.js';
import { tailGraph, tailShapeInputs } from '../graph/plan.js';
import type { PreparedModel } from '../model/prepare.js';
import { Session, probeShapes, type Array32, type RuntimeOptions } from '../ort/session.js';
import { SpikeportError } from '../errors.js';

export class TailRunner {
  private constructor(
    private readonly session: Session | null,
    private readonly input: string,
  ) {}

  static async create(tail: Graph | null, readout: string, opts: RuntimeOptions): Promise<TailRunner> {
    if (!tail) return new TailRunner(null, readout);
    if (tail.outputs.length !== 1) {
      throw new SpikeportError(
        'unsupported-model',
        `the model has ${tail.outputs.length} outputs after the readout; spikeport scores one output (end the model with one tensor, e.g. concatenate detection heads)`,
      );
    }
    return new TailRunner(await Session.create(tail, opts), readout);
  }

  async apply(readout: Float32Array, dims: readonly number[]): Promise<Array32> {
    if (!this.session) return { dims, data: readout };
    const out = await this.session.run({ [this.input]: { dims, data: readout } });
    return Object.values(out)[0];
  }

  async release(): Promise<void> {
    await this.session?.release();
  }
}

/**
 * A prepared model's tail (graph/plan.ts tailGraph), with the per-sample shapes of the tensors
 * from before the readout whose shapes it reads (probed once when not known yet).
 */
export async function modelTail(m: PreparedModel, opts: RuntimeOptions = {}): Promise<Graph | null> {
  const known = new Map<string, readonly number[]>([...m.shapes, [m.inputName, m.inputShape]]);
  const missing = tailShapeInputs(m.graph, m.plan).filter((t) => !known.has(t));
  if (missing.length > 0) {
    const probed = await probeShapes(
      m.graph,
      m.inputName,
      { dims: [2, ...m.inputShape], data: new Float32Array(2 * numel(m.inputShape)) },
      missing,
      opts,
    );
    for (const [k, dims] of probed) known.set(k, dims.slice(1));
  }
  return tailGraph(m.graph, m.plan, (t) => known.get(t));
}
