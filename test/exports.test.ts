/** The package's two entry points, resolved as a user resolves them (the package's `exports`). */
import { test } from 'node:test';
import assert from 'node:assert/strict';

test("the front door ('spikeport') holds what a user needs and no internals; 'spikeport/advanced' holds it all", async () => {
  const front = await import('spikeport');
  const advanced = await import('spikeport/advanced');
  const names = Object.keys(front);
  for (const n of ['convert', 'simulate', 'loadSnn', 'openDataset', 'exportNir', 'mergeShards', 'SpikeportError'])
    assert.ok(names.includes(n), `front door: ${n}`);
  // Internals: the options resolved with their defaults, checks the CLI runs, the file format's keys.
  const internals = [
    'resolveConvertOptions',
    'checkPreprocess',
    'openSimulationData',
    'delayFor',
    'KEYS',
    'snnFromGraph',
  ];
  assert.deepEqual(
    internals.filter((n) => names.includes(n)),
    [],
  );
  assert.ok(names.length <= 40, `front door: ${names.length} values`);
  const all = Object.keys(advanced);
  assert.deepEqual(
    names.filter((n) => !all.includes(n)),
    [],
    'advanced re-exports the front door',
  );
  for (const n of internals) assert.ok(all.includes(n), `advanced: ${n}`);
  // The same objects, not copies: an Snn made through one is an Snn to the other.
  assert.equal(front.convert, advanced.convert);
  assert.equal(front.Snn, advanced.Snn);
});
