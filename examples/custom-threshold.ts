/**
 * A threshold method of your own: θ per channel = mean + k·std of the positive pre-activations,
 * computed from the calibration batches the library hands over. Compared with CLTB.
 *
 *   npm run build && node dist/examples/custom-threshold.js [TEST_SAMPLES]
 */
import { convert, loadModel, openDataset, simulate, type CalibrationContext, type ThresholdMethod } from 'spikeport';

const samples = Number(process.argv[2] ?? 1000);

function meanPlusStd(k: number): ThresholdMethod {
  return {
    name: `mean+${k}std`,
    async thresholds(ctx: CalibrationContext) {
      // Running sums per site and channel of x, x² and the count, over positive x only.
      const sums = ctx.channels.map((c) => ({
        n: new Float64Array(c),
        s: new Float64Array(c),
        s2: new Float64Array(c),
      }));
      await ctx.forEachBatch((inputs) =>
        inputs.forEach(({ dims, data }, i) => {
          const C = dims[1];
          const perChannel = data.length / (dims[0] * C);
          for (let j = 0; j < data.length; j++) {
            const x = data[j];
            if (x <= 0) continue;
            const c = Math.floor(j / perChannel) % C;
            sums[i].n[c]++;
            sums[i].s[c] += x;
            sums[i].s2[c] += x * x;
          }
        }),
      );
      const values = sums.map(({ n, s, s2 }) =>
        Float32Array.from(n, (count, c) => {
          if (count === 0) return 0; // never positive: this channel never fires
          const mean = s[c] / count;
          return mean + k * Math.sqrt(Math.max(0, s2[c] / count - mean * mean));
        }),
      );
      return { granularity: 'channel', values };
    },
  };
}

const model = loadModel('models/mnist-cnn.onnx');
const train = openDataset('mnist:train');
const test = openDataset('mnist:test', samples);
for (const method of [meanPlusStd(3), 'cltb'] as const) {
  const snn = await convert(model, train, { method, iterations: 20 });
  const run = await simulate(snn, test, { T: [8, 32] });
  const name = typeof method === 'string' ? method : method.name;
  console.log(`${name}: ${run.results.map((r) => `T=${r.T} ${(100 * r.metric).toFixed(2)} %`).join(', ')}`);
}
