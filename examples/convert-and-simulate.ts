/**
 * Convert the bundled MNIST CNN and simulate it, without writing a file in between.
 *
 *   npm run build && node dist/examples/convert-and-simulate.js [TEST_SAMPLES]
 */
import os from 'node:os';
import path from 'node:path';
import { convert, openDataset, simulate } from 'spikeport';

const samples = Number(process.argv[2] ?? 1000);

// Calibrate thresholds on training images (channel-wise LTB; 50 batches of 100).
const snn = await convert('models/mnist-cnn.onnx', 'mnist:train', { iterations: 50 });
const d = snn.describe();
console.log(`${d.sites.length} neuron sites, estimated delay d̂ = ${d.delay}`);
for (const s of d.sites)
  console.log(
    `  ${s.node}: ${s.neurons} neurons, θ mean ${s.thetaMean.toFixed(3)}, latency ${s.latency.toFixed(2)} steps`,
  );

// Simulate the largest T once; every smaller T comes from the same run. Ask for the ANN references.
const run = await simulate(snn, openDataset('mnist:test', samples), { T: [4, 8, 16, 32], references: true });
console.log(`ANN top-1 ${(100 * (run.ann?.metric ?? 0)).toFixed(2)} %`);
for (const r of run.results) {
  console.log(
    `T=${r.T}: top-1 ${(100 * r.metric).toFixed(2)} % with delay ${r.delay}, ${(100 * r.metricNoDelay).toFixed(2)} % without`,
  );
}

// The same network as a file any ONNX Runtime can run (one time step per call).
const file = path.join(os.tmpdir(), 'mnist-cnn.snn.onnx');
snn.save(file);
console.log(`saved ${file}`);
