#!/usr/bin/env node
// Planted bugs: does the test suite notice a wrong implementation of the core?
//
//   npm run mutants                   # build, then every mutant below
//   node tools/mutants.mjs ID …       # only these (after npm run build)
//   node tools/mutants.mjs --list     # the mutants, without running them
//
// Each mutant is one small textual change to one source file (a plausible bug: reset to zero,
// a lost factor 2, a dropped ×T, …). The build (dist/) is copied to a temporary folder once; for
// each mutant the changed file is transpiled alone (TypeScript's transpileModule; kernels.wat is
// assembled by tools/wasm.mjs) into that copy, the tests that should notice run there (only those
// files, and within them the tests named by `only`), and the original file is put back. A mutant
// is killed when a test fails; it survives when they all pass. The working tree is never touched.
// Before the mutants, the same selection runs on the unchanged copy and must pass.
// Exit code: 0 when every mutant is killed, 1 when one survives (or the baseline fails).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { assemble, render } from './wasm.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/**
 * The mutants: `file` (under src/), `find` (must occur exactly once) and `replace` — or `edits`,
 * a list of those, for one misunderstanding written in several places — the test files that
 * should notice (`tests`, names under test/ without .test.ts) and optionally `only`, regular
 * expressions naming the tests within them to run (all tests of those files otherwise).
 */
const MUTANTS = [
  // The IF neuron in the step graph (steps and loop engines; the fused engine cannot plan a changed neuron and falls back to steps).
  {
    id: 'neuron-integrate',
    what: 'the membrane forgets its past: u′ = z instead of u + z',
    file: 'src/snn/neuron.ts',
    // The next line names addIfNeuron's own comparison: the shared-reset group has the same first line.
    find: "const u1 = b.op('Add', [ports.state.input, current]);\n  const fired = b.opset",
    replace: "const u1 = b.op('Identity', [current]);\n  const fired = b.opset",
    tests: ['if-neuron'],
    only: ['hand-worked'],
  },
  {
    id: 'neuron-reset-zero',
    what: 'reset to zero instead of by subtraction: m ← 0 after a spike (u ← −θ/2)',
    file: 'src/snn/neuron.ts',
    find: "thetaName], {}, [ports.spikes]);\n  b.add('Sub', [u1, ports.spikes], {}, [ports.state.output]);",
    replace:
      "thetaName], {}, [ports.spikes]);\n  const s = b.op('Cast', [fired], { to: 1 });\n  b.add('Sub', [b.op('Mul', [u1, b.op('Sub', [b.scalar(1, 'one'), s])]), b.op('Mul', [s, b.op('Mul', [thetaName, b.scalar(0.5, 'half')])])], {}, [ports.state.output]);",
    tests: ['if-neuron'],
    only: ['hand-worked'],
  },
  {
    id: 'neuron-reset-start',
    what: 'reset to the start instead of by subtraction: m ← θ/2 after a spike (u ← 0)',
    file: 'src/snn/neuron.ts',
    find: "thetaName], {}, [ports.spikes]);\n  b.add('Sub', [u1, ports.spikes], {}, [ports.state.output]);",
    replace:
      "thetaName], {}, [ports.spikes]);\n  b.add('Mul', [u1, b.op('Sub', [b.scalar(1, 'one'), b.op('Cast', [fired], { to: 1 })])], {}, [ports.state.output]);",
    tests: ['if-neuron'],
    only: ['hand-worked'],
  },
  {
    id: 'neuron-fire-strict',
    what: 'fires at m > θ instead of m ≥ θ',
    file: 'src/snn/neuron.ts',
    find: "b.op('GreaterOrEqual', [u1, levelName])",
    replace: "b.op('Greater', [u1, levelName])",
    tests: ['if-neuron'],
    only: ['hand-worked'],
  },
  {
    id: 'neuron-start-zero',
    what: 'the θ/2 start is lost: the membrane starts at 0 (firing level θ)',
    file: 'src/snn/neuron.ts',
    find: '(v > 0 ? v / 2 : Infinity)',
    replace: '(v > 0 ? v : Infinity)',
    tests: ['if-neuron'],
    only: ['hand-worked'],
  },
  {
    id: 'neuron-unit-amplitude',
    what: 'a spike carries 1 instead of θ',
    file: 'src/snn/neuron.ts',
    find: "b.add('Mul', [b.op('Cast', [fired], { to: 1 }), thetaName], {}, [ports.spikes]);",
    replace: "b.add('Identity', [b.op('Cast', [fired], { to: 1 })], {}, [ports.spikes]);",
    tests: ['if-neuron'],
    only: ['hand-worked'],
  },
  {
    id: 'start-potential-sign',
    what: "potential calibration's initial membrane enters the firing level with the wrong sign",
    file: 'src/snn/build.ts',
    find: '(t > 0 ? t * (1 - start) - offset : Infinity)',
    replace: '(t > 0 ? t * (1 - start) + offset : Infinity)',
    tests: ['refine'],
    only: ['potential calibration equals'],
  },
  {
    id: 'start-qcfs-shift',
    what: "a QCFS site's start φ·θ read as (1 − φ)·θ",
    file: 'src/snn/build.ts',
    find: '(t > 0 ? t * (1 - start) - offset : Infinity)',
    replace: '(t > 0 ? t * start - offset : Infinity)',
    tests: ['qcfs'],
    only: ['at T = L'],
  },
  // The fused engine's neuron: WebAssembly (four neurons per instruction, then one by one) and its plain-JS twin.
  {
    id: 'wasm-reset-zero-vector',
    what: 'fused (WebAssembly, four at a time): reset to zero, m ← 0 (u ← level − θ)',
    file: 'src/runtime/kernels.wat',
    find: '(v128.store (local.get $u) (f32x4.sub (local.get $u1) (local.get $s)))\n        ;; the mask',
    replace:
      '(v128.store (local.get $u) (v128.bitselect (f32x4.sub (v128.load (local.get $level)) (v128.load (local.get $theta))) (local.get $u1) (local.get $m)))\n        ;; the mask',
    tests: ['if-neuron'],
    only: ['fused engine.*hand-worked'],
  },
  {
    id: 'wasm-reset-zero-scalar',
    what: 'fused (WebAssembly, the neurons left over after groups of four): reset to zero, m ← 0',
    file: 'src/runtime/kernels.wat',
    find: '(f32.store (local.get $u) (f32.sub (local.get $f) (f32.load (local.get $theta))))',
    replace: '(f32.store (local.get $u) (f32.sub (f32.load (local.get $level)) (f32.load (local.get $theta))))',
    tests: ['if-neuron'],
    only: ['fused engine.*hand-worked'],
  },
  {
    id: 'wasm-reset-zero-channels',
    what: 'fused (WebAssembly, θ per channel): reset to zero, m ← 0',
    file: 'src/runtime/kernels.wat',
    find: '(v128.store (local.get $u) (f32x4.sub (local.get $u1) (local.get $s)))\n        (local.set $cnt',
    replace:
      '(v128.store (local.get $u) (v128.bitselect (f32x4.sub (local.get $lvv) (local.get $thv)) (local.get $u1) (local.get $m)))\n        (local.set $cnt',
    tests: ['fused'],
    only: ['bundled mnist-cnn'],
  },
  {
    id: 'wasm-fire-strict',
    what: 'fused (WebAssembly, four at a time): fires at u > level',
    file: 'src/runtime/kernels.wat',
    find: '(f32x4.ge (local.get $u1) (v128.load (local.get $level)))',
    replace: '(f32x4.gt (local.get $u1) (v128.load (local.get $level)))',
    tests: ['if-neuron'],
    only: ['fused engine.*hand-worked'],
  },
  {
    id: 'js-kernel-reset-zero',
    what: 'fused (plain JS kernels): reset to zero, m ← 0',
    file: 'src/runtime/kernels.ts',
    find: 'u[e] = u1 - theta[c];',
    replace: 'u[e] = level[c] - theta[c];',
    tests: ['fused'],
    only: ['WebAssembly SIMD and plain JS'],
  },
  {
    id: 'js-kernel-sops',
    what: 'fused (plain JS kernels): a spike counts 1 SOP instead of its fan-out',
    file: 'src/runtime/kernels.ts',
    find: 'if (fan) sops += fan[p];',
    replace: 'if (fan) sops += 1;',
    tests: ['fused'],
    only: ['WebAssembly SIMD and plain JS'],
  },
  {
    id: 'fused-silent-fallback',
    what: 'the fused engine never plans a graph, and every run asked of it falls back to steps (the same numbers)',
    file: 'src/runtime/fused.ts',
    find: 'return stages ? { prefix: split.prefix, stages } : null;',
    replace: 'return stages ? null : null;',
    tests: ['if-neuron', 'energy'],
    only: ['fused engine.*hand-worked', 'SOPs counted'],
  },
  // Local threshold balancing: θ ← θ + 2c · mean((x − θ)⁺), greedy front to back.
  {
    id: 'ltb-step-c',
    what: 'the LTB step is c · mean((x − θ)⁺) instead of 2c · mean',
    file: 'src/calibrate/instrument.ts',
    find: "b.scalar(2 * (opts.stepSize ?? 1), 'two_c')",
    replace: "b.scalar(opts.stepSize ?? 1, 'two_c')",
    tests: ['calibrate'],
    only: ['^CLTB', '^LTB'],
  },
  {
    id: 'ltb-no-relu',
    what: 'the LTB step averages x − θ instead of (x − θ)⁺',
    file: 'src/calibrate/instrument.ts',
    find: "const excess = b.op('Relu', [b.op('Sub', [relu, theta])]);",
    replace: "const excess = b.op('Sub', [relu, theta]);",
    tests: ['calibrate'],
    only: ['^CLTB', '^LTB'],
  },
  {
    id: 'ltb-not-greedy',
    what: 'a site clips with the θ it had before this batch, not the updated one',
    file: 'src/calibrate/instrument.ts',
    find: "b.add('Min', [relu, clipAt], {}, [site.output]);",
    replace: "b.add('Min', [relu, theta], {}, [site.output]);",
    tests: ['calibrate'],
    only: ['^CLTB', '^LTB'],
  },
  {
    id: 'ltb-layerwise-mean',
    what: 'channel-wise LTB averages over every element (layer-wise)',
    file: 'src/calibrate/instrument.ts',
    find: 'reducedAxes(rank, opts.granularity), true)',
    replace: "reducedAxes(rank, 'layer'), true)",
    tests: ['calibrate'],
    only: ['^CLTB', '^LTB'],
  },
  {
    id: 'ltb-no-feedback',
    what: 'each batch starts again from θ = 0 (the updated θ is not fed back)',
    file: 'src/calibrate/methods.ts',
    find: '() => thetaFeeds(inst, th),',
    replace:
      '() => thetaFeeds(inst, { granularity, values: ctx.channels.map((c) => new Float32Array(granularity === "channel" ? c : 1)) }),',
    tests: ['calibrate'],
    only: ['^CLTB', '^LTB'],
  },
  // The estimated delay d̂.
  {
    id: 'delay-latency-half',
    what: 'site latency 1/ρ instead of 1/(2ρ)',
    file: 'src/calibrate/delay.ts',
    find: 'return rho > 0 ? 1 / (2 * rho) : Infinity;',
    replace: 'return rho > 0 ? 1 / rho : Infinity;',
    tests: ['delay'],
  },
  {
    id: 'delay-silent-channels',
    what: 'channels with θ = 0 count in the mean ρ',
    file: 'src/calibrate/delay.ts',
    find: 'if (!(th > 0)) continue;',
    replace: 'if (!(th > 0)) {\n      count++;\n      continue;\n    }',
    tests: ['delay'],
  },
  {
    id: 'delay-latest-branch',
    what: 'an Add waits for its latest input instead of its earliest',
    file: 'src/calibrate/delay.ts',
    find: 'const t = times.length === 0 ? Infinity : Math.min(...times);',
    replace: 'const t = times.length === 0 ? Infinity : Math.max(...times);',
    tests: ['delay'],
  },
  {
    id: 'delay-floor',
    what: 'd̂ rounded down instead of up',
    file: 'src/calibrate/delay.ts',
    find: 'Math.ceil(readoutIn - 1e-9)',
    replace: 'Math.floor(readoutIn)',
    tests: ['delay'],
  },
  // Synaptic operations.
  {
    id: 'sops-theta-weighted',
    what: 'SOPs counted from the spikes θ·s without dividing by θ',
    file: 'src/snn/counters.ts',
    find: 'fed.map((l) => l.fanout.map((f, k) => f * invTheta[k]))',
    replace: 'fed.map((l) => l.fanout.map((f) => f))',
    tests: ['energy'],
    only: ['SOPs counted'],
  },
  {
    id: 'sops-event-values',
    what: "a layer fed through an average pool counts its input's values instead of its events",
    file: 'src/snn/counters.ts',
    find: "const events = b.op('Sign', [b.op('Abs', [input])]);",
    replace: "const events = b.op('Abs', [input]);",
    tests: ['energy'],
    only: ['SOPs counted'],
  },
  {
    id: 'fanout-padding',
    what: "a convolution's taps on the padding are counted at the border",
    file: 'src/graph/fanout.ts',
    find: 'if (i >= 0 && i < I) counts[i]++;',
    replace: 'counts[Math.min(Math.max(i, 0), I - 1)]++;',
    tests: ['energy'],
    only: ['fan-out of every input'],
  },
  {
    id: 'fanout-dense',
    what: 'a dense layer fed by spikes: fan-out 1 instead of its outputs',
    file: 'src/graph/fanout.ts',
    find: 'fill(outShape[outShape.length - 1] ?? 1)',
    replace: 'fill(1)',
    tests: ['energy'],
    only: ['SOPs counted', 'hand-worked network'],
  },
  {
    id: 'layer-kind-dense',
    what: 'a layer fed by the time-varying signal through another input is costed once, as on the analog input',
    file: 'src/snn/build.ts',
    find: "? 'dense' : 'input'",
    replace: "? 'input' : 'input'",
    tests: ['energy'],
    only: ['hand-worked network'],
  },
  // Energy.
  {
    id: 'energy-dense-once',
    what: "dense layers' MACs counted once instead of at every step",
    file: 'src/energy/energy.ts',
    find: 'const macs = onceMacs + denseMacs * T;',
    replace: 'const macs = onceMacs + denseMacs;',
    tests: ['energy'],
  },
  {
    id: 'energy-no-tail',
    what: "the tail's MACs (after the readout) are left out",
    file: 'src/energy/energy.ts',
    find: "l.where === 'input' || l.where === 'tail'",
    replace: "l.where === 'input'",
    tests: ['energy'],
  },
  {
    id: 'energy-sops-per-batch',
    what: 'SOPs per frame not divided by the number of samples',
    file: 'src/energy/energy.ts',
    find: 'a + prefixSum(xs, T), 0) / samples;',
    replace: 'a + prefixSum(xs, T), 0);',
    tests: ['energy'],
  },
  {
    id: 'energy-constants-swapped',
    what: 'e_SOP and e_MAC swapped',
    file: 'src/energy/energy.ts',
    find: 'const energy = sops * k.eSop + macs * k.eMac;',
    replace: 'const energy = sops * k.eMac + macs * k.eSop;',
    tests: ['energy'],
  },
  {
    id: 'energy-sops90-last',
    what: 'SOPs90 takes the largest T reaching 90 % instead of the smallest',
    file: 'src/energy/energy.ts',
    find: '.sort((a, b) => a.T - b.T);',
    replace: '.sort((a, b) => b.T - a.T);',
    tests: ['energy'],
  },
  // The NIR writer and what a target computes.
  {
    id: 'nir-dense-transposed',
    what: 'NIR Affine weights written untransposed ([in, out] read as [out, in])',
    file: 'src/nir/graph.ts',
    find: 'alpha * (transB ? w[o * c + i] : w[i * c + o])',
    replace: 'alpha * (transB ? w[i * c + o] : w[o * c + i])',
    tests: ['nir-semantics'],
    only: ['h5py'],
  },
  {
    id: 'nir-conv-no-bias',
    what: "NIR Conv2d written without the convolution's bias",
    file: 'src/nir/graph.ts',
    find: 'const bias = B ? floats(B) : new Float32Array(cout);',
    replace: 'const bias = new Float32Array(cout);',
    tests: ['nir-semantics'],
    only: ['h5py'],
  },
  {
    id: 'nir-threshold-half',
    what: 'NIR IF v_threshold written as the firing level ½ instead of 1',
    file: 'src/nir/graph.ts',
    find: 'vThreshold: perNeuron(th, 1)',
    replace: 'vThreshold: perNeuron(th?.map((v) => v / 2), 0.5)',
    tests: ['nir-semantics'],
  },
  {
    id: 'nir-hdf5-fields',
    what: 'the HDF5 writer stores v_reset under v_threshold and v_threshold under v_reset',
    file: 'src/nir/hdf5.ts',
    find: 'v_threshold: f(n.vThreshold), v_reset: f(n.vReset)',
    replace: 'v_threshold: f(n.vReset), v_reset: f(n.vThreshold)',
    tests: ['nir-semantics'],
    only: ['h5py'],
  },
  {
    id: 'spinnaker2-written-truncated',
    what: "SpiNNaker2's int8 weights written cast toward zero (the importer's rounding of float weights) instead of rounded",
    file: 'src/nir/deploy.ts',
    find: 'const rounding = opts.byImporter ? q.rounding : (q.written ?? q.rounding);',
    replace: 'const rounding = q.rounding;',
    tests: ['nir-target'],
    only: ['quantised profile'],
  },
  {
    id: 'target-fire-geq',
    what: 'a target neuron fires at v ≥ threshold (asTarget: the NIR graph as a step graph)',
    file: 'src/nir/onnx.ts',
    find: "const fired = b.op('Greater', [v1, th]);",
    replace: "const fired = b.op('GreaterOrEqual', [v1, th]);",
    tests: ['nir-semantics'],
    only: ["target's IF neuron"],
  },
  {
    id: 'target-reset-swapped',
    what: 'asTarget resets to zero where the target subtracts, and subtracts where it resets',
    file: 'src/nir/onnx.ts',
    find: "p.reset === 'subtract'",
    replace: "p.reset !== 'subtract'",
    tests: ['nir-semantics'],
    only: ["target's IF neuron"],
  },
  {
    id: 'nir-sim-fire-geq',
    what: 'the NIR file simulation fires at v ≥ threshold',
    file: 'src/nir/interpret.ts',
    find: ': v[i] > th ? 1 : 0;',
    replace: ': v[i] >= th ? 1 : 0;',
    tests: ['nir-semantics'],
    only: ["target's IF neuron"],
  },
  {
    id: 'nir-fire-geq-both',
    what: 'NIR read as firing at v ≥ threshold, alike in asTarget and in the simulation of the file',
    edits: [
      { file: 'src/nir/target.ts', find: "opType: 'Greater',", replace: "opType: 'GreaterOrEqual'," },
      {
        file: 'src/nir/onnx.ts',
        find: "const fired = b.op('Greater', [v1, th]);",
        replace: "const fired = b.op('GreaterOrEqual', [v1, th]);",
      },
      { file: 'src/nir/interpret.ts', find: ': v[i] > th ? 1 : 0;', replace: ': v[i] >= th ? 1 : 0;' },
    ],
    tests: ['nir-semantics'],
    only: ["target's IF neuron"],
  },
  {
    id: 'nir-reset-swapped-both',
    what: "the targets' resets swapped (subtract ↔ to zero) alike in asTarget and in the simulation of the file",
    edits: [
      {
        file: 'src/nir/graph.ts',
        find: 'return PROFILES[target].reset;',
        replace: "return PROFILES[target].reset === 'subtract' ? 'zero' : 'subtract';",
      },
      { file: 'src/nir/onnx.ts', find: "p.reset === 'subtract'", replace: "p.reset !== 'subtract'" },
      { file: 'src/nir/interpret.ts', find: "p.reset === 'subtract'", replace: "p.reset !== 'subtract'" },
    ],
    tests: ['nir-semantics'],
    only: ["target's IF neuron"],
  },
  {
    id: 'target-fallback-fire-geq',
    what: 'a target neuron fires at v ≥ threshold (asTarget without a NIR form)',
    file: 'src/nir/target.ts',
    find: "opType: 'Greater',",
    replace: "opType: 'GreaterOrEqual',",
    tests: ['nir-semantics'],
    only: ["target's IF neuron"],
  },
  {
    id: 'target-fallback-reset-swapped',
    what: 'asTarget without a NIR form subtracts where the target resets to zero',
    file: 'src/nir/target.ts',
    find: "if (reset === 'zero') {",
    replace: "if (reset !== 'zero') {",
    tests: ['nir-semantics'],
    only: ["target's IF neuron"],
  },
  {
    id: 'nir-scale-dropped',
    what: 'a Scale node for an importer that reads none written as a 1×1 convolution of ones (its factors lost)',
    file: 'src/nir/deploy.ts',
    find: 'for (let c = 0; c < C; c++) weight[c * C + c] = perChannel[c];',
    replace: 'for (let c = 0; c < C; c++) weight[c * C + c] = 1;',
    tests: ['nir-target'],
    only: ['a Scale node for an importer'],
  },
  {
    id: 'nir-max-threshold-zero-one',
    what: 'under a reset to 0 the max construction fires its matches at the threshold of one spike’s worth (the charge above it lost)',
    file: 'src/nir/graph.ts',
    find: 'export const MAX_THRESHOLD_ZERO = 0.6;',
    replace: 'export const MAX_THRESHOLD_ZERO = 1;',
    tests: ['nir-target'],
    only: ['under a reset to 0 the NIR max construction'],
  },
  {
    id: 'weight-bits-per-node',
    what: '--weight-bits on a profile without integers of its own: one scale per node instead of per output channel',
    file: 'src/nir/profiles.ts',
    find: "per: q ? (q.per ?? 'node') : p.scalarThreshold ? 'node' : 'channel',",
    replace: "per: q ? (q.per ?? 'node') : 'node',",
    tests: ['nir-target'],
    only: ['--weight-bits on a profile without integers'],
  },
  // The ceiling and groups of binary neurons (docs/algorithm.md §4.1, §11).
  {
    id: 'ceiling-truncates',
    what: 'the ceiling truncates instead of rounding: ⌊x·L/θ⌋ without the start s',
    file: 'src/calibrate/instrument.ts',
    find: "b.op('Add', [b.op('Mul', [x, scale]), b.scalar(site.start, 'start')])",
    replace: "b.op('Mul', [x, scale])",
    tests: ['fewer-steps'],
    only: ['^the ceiling equals'],
  },
  {
    id: 'group-shared-reset-theta',
    what: 'a shared-reset group loses θ per step it fires, not θ/K per spike',
    file: 'src/snn/neuron.ts',
    find: "b.add('Mul', [fired, stepName], {}, [ports.spikes]);\n  b.add('Sub', [u1, ports.spikes], {}, [ports.state.output]);",
    replace:
      "b.add('Mul', [fired, stepName], {}, [ports.spikes]);\n  b.add('Sub', [u1, b.op('Mul', [b.op('Min', [fired, b.scalar(1, 'one')]), b.op('Mul', [stepName, b.scalar(K, 'k')])])], {}, [ports.state.output]);",
    tests: ['fewer-steps'],
    only: ['^a group of K binary neurons fires'],
  },
  {
    id: 'population-same-start',
    what: "a population's members all start at θ/2 (no staggering)",
    file: 'src/snn/build.ts',
    find: 't * (1 - (i + start) / K) - offset',
    replace: 't * (1 - start) - offset',
    tests: ['fewer-steps'],
    only: ['^a group of K binary neurons fires'],
  },
  // Shards merged into one run.
  {
    id: 'merge-first-counts',
    what: "merged spike and SOP counts are the first shard's only",
    file: 'src/evaluate/tally.ts',
    find: 'rows.reduce((a, x) => a + x[i][t], 0)',
    replace: 'rows[0][i][t]',
    tests: ['shards'],
    only: ['mnist-cnn: 3 shards merged'],
  },
  {
    id: 'merge-samples',
    what: "the merged sample count is the first shard's",
    file: 'src/evaluate/tally.ts',
    find: 'samples: parts.reduce((a, p) => a + p.samples, 0),',
    replace: 'samples: parts[0].samples,',
    tests: ['shards'],
    only: ['mnist-cnn: 3 shards merged'],
  },
  {
    id: 'merge-order',
    what: 'detections of the shards concatenated in reverse batch order',
    file: 'src/evaluate/tally.ts',
    find: '(a.batches[0] ?? Infinity) - (b.batches[0] ?? Infinity)',
    replace: '(b.batches[0] ?? Infinity) - (a.batches[0] ?? Infinity)',
    tests: ['shards'],
    only: ['scorer states of parts'],
  },
  {
    id: 'merge-windows-swapped',
    what: 'the merged results swap the delayed and undelayed windows',
    file: 'src/api/merge.ts',
    find: 'metric: scores[2 * i].metric,',
    replace: 'metric: scores[2 * i + 1].metric,',
    tests: ['api'],
    only: ['convert → simulate in memory'],
  },
  {
    id: 'merge-unchecked',
    what: 'shards are merged without checking they are all the shards of one run',
    file: 'src/api/merge.ts',
    find: '  checkSameRun(files);\n',
    replace: '\n',
    tests: ['shards'],
    only: ['mnist-cnn: 3 shards merged'],
  },
  // The paper's experiments and the data they read.
  {
    id: 'ablation-no-delay',
    what: "the ablation's CLTB + delayed evaluation curve averages every step",
    file: 'src/experiments/experiments.ts',
    find: "...(method === 'cltb' ? Ts.map((T) => ({ T, delay: delayAt(T, dhat) })) : []),",
    replace: "...(method === 'cltb' ? Ts.map((T) => ({ T, delay: 0 })) : []),",
    tests: ['experiments'],
    only: ['^ablation'],
  },
  {
    id: 'delay-sweep-best-last',
    what: "the delay sweep's best is the last of equally good delays, not the first",
    file: 'src/experiments/experiments.ts',
    find: '(b.metric > a.metric ? b : a)',
    replace: '(b.metric >= a.metric ? b : a)',
    tests: ['experiments'],
    only: ['^delay sweep'],
  },
  {
    id: 'energy-table-rate-unweighted',
    what: "the energy table's firing rate averages the sites without weighting them by their neurons",
    file: 'src/experiments/experiments.ts',
    find: 'rates.reduce((a, r, i) => a + r.rate * snn.meta.spec.sites[i].neurons, 0) / neurons',
    replace: 'rates.reduce((a, r) => a + r.rate, 0) / rates.length',
    tests: ['experiments'],
    only: ['^energy table'],
  },
  {
    id: 'frames-by-name',
    what: 'video frames in name order (1, 10, 11, 12, 2, …) instead of time order',
    file: 'src/data/images.ts',
    find: 'return frameOrder(',
    replace: 'return sortedNames(',
    tests: ['data-formats'],
    only: ['^videofolder'],
  },
  // COCO masks and video files.
  {
    id: 'coco-rle-row-major',
    what: "RLE counts read along the rows instead of down the columns (COCO's order)",
    file: 'src/data/coco-masks.ts',
    find: 'mask[row * w + col] = value;',
    replace: 'mask[q] = value;',
    tests: ['coco-masks'],
    only: ['^RLE'],
  },
  {
    id: 'coco-polygon-truncated',
    what: 'polygon vertices truncated on the 5× grid instead of rounded (as pycocotools does)',
    file: 'src/data/coco-masks.ts',
    find: 'for (let j = 0; j < k; j++) x[j] = trunc(scale * xy[2 * j] + 0.5);',
    replace: 'for (let j = 0; j < k; j++) x[j] = trunc(scale * xy[2 * j]);',
    tests: ['coco-masks'],
    only: ['^a polygon covers'],
  },
  {
    id: 'coco-overlap-last-wins',
    what: "a pixel two objects cover takes the later one's class instead of 255 (ignored)",
    file: 'src/data/coco-masks.ts',
    find: 'out[q] = 255;',
    replace: 'out[q] = o.label;',
    tests: ['coco-masks'],
    only: ['^objects merge'],
  },
  {
    id: 'video-logits-summed',
    what: "a video is scored from its clips' summed readouts instead of their summed softmax",
    file: 'src/tasks/video.ts',
    find: 't.addClip(w, sample, label, softmax32(outputs, k * classes, classes));',
    replace: 't.addClip(w, sample, label, Array.from(outputs).slice(k * classes, (k + 1) * classes));',
    tests: ['video-files'],
    only: ['^mp4 files, 5 clips per video'],
  },
  {
    id: 'video-resample-rounded',
    what: 'resampled frame i is frame round(i · step) instead of floor (torchvision)',
    file: 'src/data/clip-sampler.ts',
    find: 'return Array.from({ length: total }, (_, i) => Math.floor(f32(f32(i) * s)));',
    replace: 'return Array.from({ length: total }, (_, i) => Math.round(f32(f32(i) * s)));',
    tests: ['video-files'],
    only: ['^frames resampled'],
  },
  {
    id: 'video-clips-one-short',
    what: 'a video of n frames has n − L clips of L frames instead of n − L + 1',
    file: 'src/data/clip-sampler.ts',
    find: 'return Math.max(0, frames - L + 1);',
    replace: 'return Math.max(0, frames - L);',
    tests: ['video-files'],
    only: ['byte for byte'],
  },
  // Detection heads decoded as torchvision does, and frozen per-sample normalisation.
  {
    id: 'retinanet-no-clip',
    what: "RetinaNet's box coder without torchvision's clip of the log-size deltas at log(1000/16)",
    edits: [
      {
        file: 'src/tasks/heads.ts',
        find: 'const dw = Math.min(code[2], BBOX_CLIP);',
        replace: 'const dw = code[2];',
      },
      {
        file: 'src/tasks/heads.ts',
        find: 'const dh = Math.min(code[3], BBOX_CLIP);',
        replace: 'const dh = code[3];',
      },
    ],
    tests: ['heads'],
    only: ["^RetinaNet's log-size clip"],
  },
  {
    id: 'fcos-score-product',
    what: "FCOS's score as class · centerness instead of its square root",
    file: 'src/tasks/heads.ts',
    find: 'const s = ctr ? f32(Math.sqrt(f32(sigmoid(v) * ctrSig))) : sigmoid(v);',
    replace: 'const s = ctr ? f32(sigmoid(v) * ctrSig) : sigmoid(v);',
    tests: ['heads'],
    only: ["^fcos: the decoder gives torchvision's detections"],
  },
  {
    id: 'groupnorm-interleaved',
    what: "a frozen GroupNorm gives channel c group c mod G instead of torchvision's contiguous groups",
    file: 'src/graph/norms.ts',
    find: 'const grp = Math.floor(c / per);',
    replace: 'const grp = c % G;',
    tests: ['norms'],
    only: ['^normalisations as PyTorch exports them'],
  },
  {
    id: 'norm-std-averaged',
    what: "the frozen statistics average the samples' standard deviations instead of their variances",
    file: 'src/calibrate/norms.ts',
    find: 'acc.variance[grp] += variance.data[e];',
    replace: 'acc.variance[grp] += Math.sqrt(variance.data[e]);',
    tests: ['norms'],
    only: ['^measured statistics are'],
  },
];

/** A mutant's changes: its one `file`/`find`/`replace`, or its `edits` (a bug made in several places at once). */
function editsOf(m) {
  return m.edits ?? [{ file: m.file, find: m.find, replace: m.replace }];
}

const check = process.argv.includes('--check');
const args = process.argv.slice(2).filter((a) => a !== '--check');
if (args.includes('--list')) {
  for (const m of MUTANTS)
    process.stdout.write(
      `${m.id.padEnd(28)} ${editsOf(m)
        .map((e) => e.file)
        .join(', ')
        .padEnd(28)} ${m.what}\n`,
    );
  process.exit(0);
}
const unknown = args.filter((a) => !MUTANTS.some((m) => m.id === a));
if (unknown.length) {
  process.stderr.write(`mutants: unknown mutant ${unknown.join(', ')} (node tools/mutants.mjs --list)\n`);
  process.exit(2);
}
const chosen = args.length ? MUTANTS.filter((m) => args.includes(m.id)) : MUTANTS;
if (!check && !fs.existsSync(path.join(root, 'dist', 'test'))) {
  process.stderr.write('mutants: no build in dist/ (npm run build first, or npm run mutants)\n');
  process.exit(2);
}

// Every mutant's text must be found exactly once before anything runs.
const sources = new Map();
for (const m of chosen)
  for (const e of editsOf(m)) {
    const text = sources.get(e.file) ?? fs.readFileSync(path.join(root, e.file), 'utf8');
    sources.set(e.file, text);
    const at = text.indexOf(e.find);
    if (at < 0 || text.indexOf(e.find, at + 1) >= 0) {
      process.stderr.write(
        `mutants: ${m.id}: the text to change is ${at < 0 ? 'not' : 'more than once'} in ${e.file}\n`,
      );
      process.exit(2);
    }
  }
// --check (part of npm run lint): only that, so a change that moves a mutant's line is caught at once.
if (check) {
  process.stdout.write(`mutants: the text of all ${chosen.length} found once each\n`);
  process.exit(0);
}

// The copy: the build, with the rest of the tree the tests read linked in (read-only use).
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'spikeport-mutants-'));
const cleanup = () => fs.rmSync(work, { recursive: true, force: true });
process.on('SIGINT', () => {
  cleanup();
  process.exit(130);
});
fs.cpSync(path.join(root, 'dist'), path.join(work, 'dist'), { recursive: true });
for (const entry of [
  'node_modules',
  'models',
  'examples',
  'src',
  'test',
  'tools',
  'docs',
  'web',
  'package.json',
  'README.md',
])
  if (fs.existsSync(path.join(root, entry))) fs.symlinkSync(path.join(root, entry), path.join(work, entry));

/** Where the build keeps the JavaScript of a source file (kernels.wat lives in kernels.wasm.ts). */
const builtOf = (file) => path.join(work, 'dist', file.replace(/\.wat$/, '.wasm.ts').replace(/\.ts$/, '.js'));

async function compile(file, text) {
  const tsText = file.endsWith('.wat') ? render(await assemble(text)) : text;
  return ts.transpileModule(tsText, {
    fileName: path.basename(file),
    compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext, esModuleInterop: true },
  }).outputText;
}

/** Run the tests a mutant names in the copy; the names of the tests that failed, or null when all passed. */
function runTests(m) {
  const files = m.tests.map((t) => path.join('dist', 'test', `${t}.test.js`));
  const patterns = (m.only ?? []).map((p) => `--test-name-pattern=${p}`);
  const r = spawnSync(process.execPath, ['--test', '--test-concurrency=1', ...patterns, ...files], {
    cwd: work,
    encoding: 'utf8',
    timeout: 15 * 60 * 1000,
    maxBuffer: 256 * 2 ** 20,
  });
  if (r.error) return [`(no result: ${r.error.message})`];
  const failed = [...r.stdout.matchAll(/^not ok \d+ - (.*)$/gm)].map((x) => x[1]);
  const ran = [...r.stdout.matchAll(/^# pass (\d+)$/gm)].map((x) => Number(x[1]))[0] ?? 0;
  if (r.status === 0) return ran > 0 ? null : ['(no test matched)'];
  return failed.length ? failed : [`(exit code ${r.status})`];
}

/** Baseline, then every mutant; the process's exit code. */
async function main() {
  const started = performance.now();
  // Baseline: the same selections pass on the unchanged copy.
  const selections = new Map();
  for (const m of chosen) selections.set(JSON.stringify([m.tests, m.only ?? []]), m);
  for (const m of selections.values()) {
    const failed = runTests(m);
    if (failed) {
      process.stderr.write(`mutants: the unchanged build fails ${m.tests.join(', ')}: ${failed.join('; ')}\n`);
      return 1;
    }
  }
  process.stdout.write(
    `baseline: ${selections.size} test selections pass (${((performance.now() - started) / 1000).toFixed(0)} s)\n\n`,
  );
  const rows = [];
  for (const m of chosen) {
    const t0 = performance.now();
    // Every edit of the mutant in place (several edits of one file apply together), then the tests, then the originals back.
    const originals = new Map();
    let failed;
    try {
      for (const file of new Set(editsOf(m).map((e) => e.file))) {
        const built = builtOf(file);
        originals.set(built, fs.readFileSync(built, 'utf8'));
        const text = editsOf(m)
          .filter((e) => e.file === file)
          .reduce((t, e) => t.replace(e.find, () => e.replace), sources.get(file));
        fs.writeFileSync(built, await compile(file, text));
      }
      failed = runTests(m);
    } finally {
      for (const [built, text] of originals) fs.writeFileSync(built, text);
    }
    const seconds = (performance.now() - t0) / 1000;
    const row = { ...m, killed: failed !== null, by: failed ?? [], seconds };
    rows.push(row);
    const by = row.killed
      ? `\n${' '.repeat(9)}by: ${row.by[0]}${row.by.length > 1 ? ` (+${row.by.length - 1} more)` : ''}`
      : '';
    process.stdout.write(
      `${row.killed ? 'killed  ' : 'SURVIVED'} ${m.id.padEnd(28)} ${seconds.toFixed(1).padStart(5)} s  ${m.what}${by}\n`,
    );
  }
  const survived = rows.filter((r) => !r.killed);
  process.stdout.write(
    `\n${rows.length} mutants, ${rows.length - survived.length} killed, ${survived.length} survived${survived.length ? `: ${survived.map((r) => r.id).join(', ')}` : ''} (${((performance.now() - started) / 1000).toFixed(0)} s)\n`,
  );
  return survived.length ? 1 : 0;
}

try {
  process.exitCode = await main();
} finally {
  cleanup();
}
