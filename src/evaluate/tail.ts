/** The ops after the readout, run as ANN on (averaged) readouts; the identity when there are none. */
import type { Graph } from '../graph/ir.js';
import { Session, type Array32, type RuntimeOptions } from '../ort/session.js';
import { SpikeportError } from '../errors.js';

export class TailRunner {
  private constructor(private readonly session: Session | null, private readonly input: string) {}

  static async create(tail: Graph | null, readout: string, opts: RuntimeOptions): Promise<TailRunner> {
    if (!tail) return new TailRunner(null, readout);
    if (tail.outputs.length !== 1) {
      throw new SpikeportError('unsupported-model', `the model has ${tail.outputs.length} outputs after the readout; spikeport scores one output (end the model with one tensor, e.g. concatenate detection heads)`);
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
