/** The ops after the readout, run as ANN on (averaged) readouts; the identity when there are none. */
import type { Graph } from '../graph/ir.js';
import { numel } from '../graph/ir.js';
import { tailGraph, tailShapeInputs } from '../graph/plan.js';
import type { PreparedModel } from '../model/prepare.js';
import { Session, probeShapes, type RuntimeOptions } from '../ort/session.js';
import type { ModelOutputs } from '../tasks/task.js';

export class TailRunner {
  private constructor(
    private readonly session: Session | null,
    private readonly input: string,
    /** The model's outputs, in the order of its graph outputs. */
    readonly outputs: readonly string[],
  ) {}

  static async create(tail: Graph | null, readout: string, opts: RuntimeOptions): Promise<TailRunner> {
    if (!tail) return new TailRunner(null, readout, [readout]);
    return new TailRunner(
      await Session.create(tail, opts),
      readout,
      tail.outputs.map((o) => o.name),
    );
  }

  /** The model's outputs (every one, named, in order) from a batch's (averaged) readout. */
  async apply(readout: Float32Array, dims: readonly number[]): Promise<ModelOutputs> {
    if (!this.session) return [{ name: this.input, dims, data: readout }];
    const out = await this.session.run({ [this.input]: { dims, data: readout } }, this.outputs);
    return this.outputs.map((name) => ({ name, dims: out[name].dims, data: out[name].data }));
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

/** The model's outputs (names, per-sample shapes) a tail makes of a readout of this per-sample shape: one run on zeros. */
export async function outputShapes(
  tail: Graph | null,
  readout: string,
  readoutShape: readonly number[],
  opts: RuntimeOptions = {},
): Promise<ModelOutputs> {
  const runner = await TailRunner.create(tail, readout, opts);
  try {
    return await runner.apply(new Float32Array(numel(readoutShape)), [1, ...readoutShape]);
  } finally {
    await runner.release();
  }
}
