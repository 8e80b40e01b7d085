/**
 * The command line's options in one place: how strings become values, which flags each command
 * takes (defaults read from the library), how parsed flags become library options, and which
 * flag sets which library field (for error messages). Ranges are checked by the library.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { SpikeportError } from '../errors.js';
import { METHODS, type FixedThresholds } from '../calibrate/methods.js';
import { CONVERT_DEFAULTS, type ConvertOptions } from '../api/convert.js';
import { MAX_PICTURES, SIMULATE_DEFAULTS, type DelayRule, type SimulateOptions } from '../api/simulate-options.js';
import { ENGINES, type Engine } from '../runtime/engines.js';
import { TASKS, type Task } from '../tasks/task.js';
import { HEADS, type HeadKind } from '../tasks/heads.js';
import { PRESETS, energyConstants, type EnergyConstants } from '../energy/energy.js';
import { dataFiles, trainSplitOf, type OpenOptions } from '../data/sources.js';
import { checkPreprocess } from '../api/convert.js';
import { PREPROCESS_PRESETS } from '../data/preprocess.js';
import { CATEGORY_PRESETS, parseCategories } from '../data/coco-masks.js';
import { MAX_TEXT_BYTES, readRegularFile, type NamedPath } from '../files.js';
import type { PoolMode } from '../snn/format.js';
import { GROUP_KINDS } from '../snn/neuron.js';
import { defaultThreads } from '../ort/session.js';

/** Library option field → the flag that sets it. */
export const FLAGS: Readonly<Record<string, string>> = {
  method: '--method',
  iterations: '--iterations',
  batchSize: '--batch',
  stepSize: '--step-size',
  percentile: '--percentile',
  seed: '--seed',
  thresholds: '--thresholds',
  maxpool: '--maxpool',
  readoutNode: '--readout',
  normalize: '--mean/--std',
  threads: '--threads',
  T: '--T',
  delay: '--delay',
  task: '--task',
  engine: '--engine',
  siteErrors: '--site-errors',
  siteErrorsT: '--site-errors-T',
  energy: '--energy',
  eSop: '--e-sop',
  eMac: '--e-mac',
  ann: '--ann',
  form: '--format',
  limit: '--limit',
  counts: '--counts',
  biasCalibration: '--bias-calibration',
  potentialCalibration: '--potential-calibration',
  scaleCalibration: '--scale-calibration',
  stepBiasCalibration: '--step-bias-calibration',
  delayFit: '--delay-fit',
  delayFitSamples: '--delay-fit-samples',
  group: '--group',
  groupKind: '--group-kind',
  preprocess: '--preprocess',
  clipLength: '--clip-len',
  frameRate: '--frame-rate',
  clipsPerVideo: '--clips-per-video',
  categories: '--categories',
  minArea: '--min-area',
  device: '--device',
  shard: '--shard',
  checkpoint: '--checkpoint',
  checkpointSeconds: '--checkpoint-every',
  workers: '--workers',
  pictures: '--pictures',
  layout: '--format',
  out: '--out',
  head: '--head',
  scoreThreshold: '--score-threshold',
  topCandidates: '--top-candidates',
  nmsThreshold: '--nms-threshold',
  detectionsPerImage: '--detections-per-image',
  normSamples: '--norm-samples',
  classNames: '--classes',
  spikes: '--spikes',
  followLinks: '--follow-links',
  asTarget: '--as-target',
  groups: '--groups',
  calibrations: '--calibrations',
  calibrateAt: '--calibrate-at',
};

/**
 * A library error in the CLI's words: every field it names becomes the flag that sets it. A
 * message that names its field without marking it gets the flag at the field's first mention.
 */
export function messageOf(e: SpikeportError): string {
  const text = e.render((f) => FLAGS[f]);
  const flag = e.field === undefined ? undefined : FLAGS[e.field];
  // A message that names its field without marking it: the first mention becomes the flag.
  if (!flag || text.includes(flag)) return text;
  return withFlag({ message: text, field: e.field }, 'first');
}

/** A library notice in the CLI's words: the field it names (last, where it says what to change) becomes its flag. */
export function noticeText(n: { readonly message: string; readonly field?: string }): string {
  return withFlag(n, 'last');
}

/** The field's first (errors start with it) or last (notices end with it) mention as a word of its own — not part of a dotted name such as spikeport.normalize — replaced by its flag. */
function withFlag(m: { readonly message: string; readonly field?: string }, which: 'first' | 'last'): string {
  const flag = m.field === undefined ? undefined : FLAGS[m.field];
  if (!flag) return m.message;
  const found = [...m.message.matchAll(new RegExp(`(^|[^\\w.-])${m.field}(?![\\w])`, 'g'))];
  const hit = which === 'first' ? found[0] : found[found.length - 1];
  if (!hit || hit.index === undefined) return m.message;
  const at = hit.index + hit[1].length;
  return m.message.slice(0, at) + flag + m.message.slice(at + (m.field as string).length);
}

/**
 * A number in decimal notation (digits, a point, an exponent): not hex, binary or octal, no
 * spaces, nothing Number() would read differently. Ranges are the library's business.
 */
export function num(v: string): number {
  const n = Number(v);
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(v) || !Number.isFinite(n))
    throw new InvalidArgumentError(`"${v}" is not a number in decimal notation`);
  return n;
}

/** Comma-separated numbers, e.g. 0.5,0.25 (spaces around the commas are fine). */
export function numbers(v: string): number[] {
  return v.split(',').map((s) => num(s.trim()));
}

/**
 * An integer in plain decimal digits (a minus sign at most): 1e1, 0x2, 2.0, +2 and " 2" are
 * refused rather than read as 10, 2, 2, 2 and 2. Ranges are the library's business.
 */
export function integer(v: string): number {
  const n = Number(v);
  if (!/^-?\d+$/.test(v) || !Number.isSafeInteger(n))
    throw new InvalidArgumentError(`"${v}" is not an integer in decimal digits`);
  return n;
}

/** Comma-separated integers, e.g. 8,16,32 (spaces around the commas are fine: "8, 16"). */
export function integers(v: string): number[] {
  return v.split(',').map((s) => integer(s.trim()));
}

/** An integer ≥ min, for options only the CLI has. */
export function int(min: number) {
  return (v: string): number => {
    const n = integer(v);
    if (n < min) throw new InvalidArgumentError(`must be an integer ≥ ${min}`);
    return n;
  };
}

/** An energy in pJ (the CLI's unit; the library takes joules). */
function picojoules(v: string): number {
  const n = num(v);
  if (!(n > 0)) throw new InvalidArgumentError('must be an energy in pJ > 0');
  return n;
}

function delayValue(v: string): DelayRule {
  return v === 'auto' || v === 'off' || v === 'fit' || v === 'half' ? v : integer(v);
}

export interface CalibFlags {
  method: string;
  iterations: number;
  batch: number;
  stepSize: number;
  percentile: number;
  seed: number;
  shuffle: boolean;
  thresholds?: string;
  maxpool: PoolMode;
  readout?: string;
  mean?: number[];
  std?: number[];
  calibLimit?: number;
  threads: number;
  device: string;
  quiet?: boolean;
  preprocess?: string;
  clipLen?: number;
  classes?: string;
  frameRate?: number;
  clipsPerVideo?: number;
  categories?: number[];
  minArea?: number;
  followLinks?: boolean;
  biasCalibration?: number;
  potentialCalibration?: number;
  scaleCalibration?: number;
  stepBiasCalibration?: number;
  delayFit?: number;
  delayFitSamples: number;
  normSamples: number;
  group: number;
  groupKind: string;
}

/** The class names of a --classes file: one per line, in the model's class order. */
function readClassNames(file: string | undefined): string[] | undefined {
  if (file === undefined) return undefined;
  let bytes: Buffer;
  try {
    bytes = readRegularFile(file, MAX_TEXT_BYTES, 'a text file');
  } catch (e) {
    throw new SpikeportError('io', `--classes: ${(e as Error).message}`);
  }
  const names = bytes
    .toString('utf8')
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter(Boolean);
  if (names.length === 0)
    throw new SpikeportError('invalid-file', `--classes ${file}: no class names (one per line, in the model's order)`);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup !== undefined) throw new SpikeportError('invalid-file', `--classes ${file}: "${dup}" is listed twice`);
  return names;
}

/**
 * How image and video sources open for a model of this per-sample input shape (`frameRate`:
 * the model's own, used when --frame-rate is not given). Calibration data (`labels` false) is
 * read without the class names: calibration reads no labels.
 */
export function imageOptions(
  f: CalibFlags & { task?: Task },
  sampleShape: readonly number[] | undefined,
  preprocess = f.preprocess,
  labels = true,
  frameRate?: number,
): OpenOptions {
  const rate = f.frameRate ?? frameRate;
  return {
    sampleShape,
    preprocess: preprocess === undefined ? null : checkPreprocess(preprocess),
    clipLength: f.clipLen,
    classNames: labels ? readClassNames(f.classes) : undefined,
    followLinks: f.followLinks === true,
    ...(rate !== undefined ? { frameRate: rate } : {}),
    ...(f.clipsPerVideo !== undefined ? { clipsPerVideo: f.clipsPerVideo } : {}),
    ...(f.categories !== undefined ? { categories: f.categories } : {}),
    ...(f.minArea !== undefined ? { minArea: f.minArea } : {}),
    ...(f.task === 'segmentation' ? { masks: true } : {}),
  };
}

/** COCO categories: a preset name or ids (ranges allowed), e.g. voc or 0,5,2 or 0-90. */
function categoriesValue(v: string): number[] {
  const ids = parseCategories(v);
  if (!ids)
    throw new InvalidArgumentError(
      `"${v}" is neither a preset (${Object.keys(CATEGORY_PRESETS).join(', ')}) nor COCO category ids like 0,5,2 or 0-90`,
    );
  return ids;
}

/** A frame rate in frames per second (decimal notation). */
function frameRateValue(v: string): number {
  const n = num(v);
  if (!(n > 0)) throw new InvalidArgumentError('must be a number of frames per second > 0');
  return n;
}

const D = CONVERT_DEFAULTS;

/** Every data source, for the --data help of each command (`split`: train or test). */
export function dataSpecs(split: 'train' | 'test'): string {
  return `mnist:${split}, fashion-mnist:${split}[@DIR], npz:FILE, mnist-seg|mnist-det|mnist-video:${split} (generated; docs/data.md), imagefolder:DIR, videofolder:DIR, videofiles:DIR, voc:DIR[:split], coco:IMAGES_DIR@ANNOTATIONS.json`;
}

/** Calibration and conversion options (convert, simulate, demo, experiments). */
export function calibrationOptions(cmd: Command): Command {
  return cmd
    .addOption(
      new Option(
        '--method <name>',
        "threshold calibration method: cltb (channel-wise LTB), ltb (layer-wise), maxnorm, cmaxnorm, robustnorm (percentile), qcfs (keep a QCFS model's trained λ), fixed (--thresholds)",
      )
        .choices([...METHODS])
        .default(D.method),
    )
    .option(
      '--iterations <n>',
      'calibration batches (one LTB step each); few give low thresholds (best at small T), many give thresholds near the max (best at large T)',
      integer,
      D.iterations,
    )
    .option('--batch <n>', 'samples per batch, for calibration and simulation', integer, D.batchSize)
    .option('--step-size <c>', 'LTB step size c in θ ← θ + 2c·mean((x−θ)⁺)', num, D.stepSize)
    .option('--percentile <p>', 'RobustNorm percentile of positive activations', num, D.percentile)
    .option('--seed <n>', 'seed for the calibration sample order', integer, D.seed)
    .option('--no-shuffle', 'take calibration samples in data set order')
    .option('--thresholds <file>', 'JSON {"<site node>": θ or [θ per channel]} for --method fixed')
    .addOption(
      new Option(
        '--maxpool <mode>',
        "max pooling in the SNN: on accumulated current (exact) or per step (the paper's code; biased)",
      )
        .choices(['accumulated', 'per-step'])
        .default(D.maxpool),
    )
    .option(
      '--readout <nodes>',
      "end the spiking part at this node, or these (comma-separated, one per output): their outputs are the readouts, averaged over steps; everything after them runs as ANN on those averages (default: every output's last weighted layers)",
    )
    .option(
      '--mean <values>',
      "input normalisation mean, one or one per channel (with --std); replaces the model's spikeport.normalize metadata (an ANN's, or a converted file's at simulate). Without either, none is applied (and a note says so)",
      numbers,
    )
    .option('--std <values>', 'input normalisation std, one or one per channel (with --mean)', numbers)
    .option('--calib-limit <n>', 'use only the first N calibration samples', int(1))
    .option(
      '--bias-calibration <T>',
      "after the thresholds, correct each site's bias for this T (one T-step simulation per site on a calibration batch)",
      integer,
    )
    .option('--potential-calibration <T>', "likewise correct each neuron's initial membrane for this T", integer)
    .option(
      '--scale-calibration <T>',
      "per channel a bias and the spikes' amplitude (threshold scale) for this T, as parallel conversion calibrates them",
      integer,
    )
    .option(
      '--step-bias-calibration <T>',
      'per channel a bias for each of the steps 1..T (FTBC-style), fitted so each step averages to the clipped ANN',
      integer,
    )
    .option(
      '--delay-fit <T>',
      'fit the delay for every T up to this, label-free, on calibration samples (then simulate --delay fit)',
      integer,
    )
    .option('--delay-fit-samples <n>', 'calibration samples the delay fit simulates', integer, D.delayFitSamples)
    .option(
      '--norm-samples <n>',
      'per-sample normalisations inside the spiking part (GroupNorm, InstanceNorm, LayerNorm) are frozen to their mean statistics over this many calibration samples; what that costs the ANN is measured on as many others',
      integer,
      D.normSamples,
    )
    .option(
      '--group <K>',
      'binary IF neurons per ANN neuron: a group at T steps resolves what one neuron resolves at K·T (K× the neurons)',
      integer,
      D.group,
    )
    .addOption(
      new Option(
        '--group-kind <kind>',
        'shared: K neurons on one membrane, firing at θ/K, 2θ/K, …; population: K IF neurons with staggered starts',
      )
        .choices([...GROUP_KINDS])
        .default(D.groupKind),
    )
    .option(
      '--classes <file>',
      "imagefolder, videofolder, videofiles, coco: the model's class names, one per line in its order; class folders and categories are matched by name (default: folders sorted by name, as torchvision; the annotation file's category order). A class count other than the model's is refused without it",
    )
    .option(
      '--clip-len <n>',
      "videofolder, videofiles: frames per clip (must be the model's; default: the model's)",
      int(1),
    )
    .option(
      '--frame-rate <fps>',
      "videofiles: resample the videos to this many frames per second, as torchvision's VideoClips (the paper's Kinetics protocol: 15); default: the rate stored with the model, else each video's own",
      frameRateValue,
    )
    .option(
      '--clips-per-video <K>',
      "videofiles: clips per video, evenly spaced as torchvision's UniformClipSampler (default 5); each video is also scored from its clips' averaged softmax",
      int(1),
    )
    .option(
      '--categories <ids>',
      'coco: the COCO category ids whose position is the class (0 = background), or the preset voc (the 20 VOC classes, as torchvision selects them); other categories are left out',
      categoriesValue,
    )
    .option(
      '--min-area <pixels>',
      "coco, calibration data: only images whose objects (of the kept categories) cover more than this many pixels by their area fields, as torchvision's segmentation reference picks its training images (1000)",
      num,
    )
    .option(
      '--preprocess <preset>',
      `image data: ${PREPROCESS_PRESETS} (imagenet: short side to 256, centre crop 224, as torchvision; stored in the converted file, simulate repeats it); default: images must have the model's input size`,
    )
    .option(
      '--follow-links',
      "image and video data: follow symbolic links that lead outside the data set's folder (default: such a link is an error)",
    )
    .option('--threads <n>', 'ONNX Runtime threads', integer, defaultThreads())
    .option(
      '--device <device>',
      'where ONNX Runtime runs: cpu, or cuda / cuda:N (its CUDA provider; needs onnxruntime-node installed with ONNXRUNTIME_NODE_INSTALL=cuda12, CUDA 12 and cuDNN 9)',
      'cpu',
    )
    .option('-q, --quiet', 'no progress output');
}

/** Flags that only matter when an ANN is converted (simulate refuses them for a converted file). */
export const CONVERSION_ONLY: ReadonlySet<string> = new Set([
  '--method',
  '--iterations',
  '--step-size',
  '--percentile',
  '--seed',
  '--no-shuffle',
  '--thresholds',
  '--maxpool',
  '--readout',
  '--calib-limit',
  '--calib',
  '--save',
  '--bias-calibration',
  '--potential-calibration',
  '--scale-calibration',
  '--step-bias-calibration',
  '--delay-fit',
  '--delay-fit-samples',
  '--norm-samples',
  '--group',
  '--group-kind',
]);

/** The flag of a commander option key (e.g. calibLimit → --calib-limit, shuffle → --no-shuffle). */
export function flagOf(cmd: Command, key: string): string {
  return cmd.options.find((o) => o.attributeName() === key)?.long ?? `--${key}`;
}

/** How the simulation is driven (simulate, demo, experiments). */
export function engineOption(): Option {
  return new Option(
    '--engine <engine>',
    'simulation: auto (time steps and fused on the first batches, keep the faster: the results are the same either way), steps (the whole step graph in ONNX Runtime, several steps per call), fused (layers in ONNX Runtime, each neuron update one WebAssembly SIMD pass), loop (one ONNX Loop call per batch; rounds differently, about one spike in 10⁷)',
  )
    .choices([...ENGINES])
    .default(SIMULATE_DEFAULTS.engine);
}

function readThresholds(file: string | undefined): FixedThresholds | undefined {
  if (!file) return undefined;
  let bytes: Buffer;
  try {
    bytes = readRegularFile(file, MAX_TEXT_BYTES, 'a text file');
  } catch (e) {
    throw new SpikeportError('io', `--thresholds: ${(e as Error).message}`);
  }
  try {
    const v = JSON.parse(bytes.toString('utf8')) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
    return v as FixedThresholds;
  } catch (e) {
    throw new SpikeportError(
      'invalid-file',
      `--thresholds ${file}: not a JSON object of site thresholds (${(e as Error).message})`,
    );
  }
}

/** --readout NODE or NODE,NODE,…: one node name, or a list (spaces around the commas are fine). */
function readoutNodes(v: string | undefined): string | string[] | undefined {
  if (v === undefined) return undefined;
  const list = v.split(',').map((x) => x.trim());
  return list.length === 1 ? list[0] : list;
}

/** The library's conversion options from the flags. */
export function convertOptionsFrom(f: CalibFlags, onProgress: ConvertOptions['onProgress']): ConvertOptions {
  return {
    method: f.method as ConvertOptions['method'],
    iterations: f.iterations,
    batchSize: f.batch,
    stepSize: f.stepSize,
    percentile: f.percentile,
    seed: f.seed,
    shuffle: f.shuffle,
    thresholds: readThresholds(f.thresholds),
    maxpool: f.maxpool,
    readoutNode: readoutNodes(f.readout),
    normalize: normalizeFrom(f),
    threads: f.threads,
    device: f.device,
    onProgress,
    biasCalibration: f.biasCalibration,
    potentialCalibration: f.potentialCalibration,
    scaleCalibration: f.scaleCalibration,
    stepBiasCalibration: f.stepBiasCalibration,
    delayFit: f.delayFit,
    delayFitSamples: f.delayFitSamples,
    group: f.group,
    groupKind: f.groupKind as ConvertOptions['groupKind'],
    preprocess: f.preprocess,
    frameRate: f.frameRate,
    clipsPerVideo: f.clipsPerVideo,
    normSamples: f.normSamples,
  };
}

export interface EnergyFlags {
  energy: string;
  eSop?: number;
  eMac?: number;
}

export function energyOptions(cmd: Command): Command {
  return cmd
    .addOption(
      new Option(
        '--energy <preset>',
        'energy constants: paper (77 fJ/SOP, 12.5 pJ/MAC) or 45nm (0.9 pJ/AC, 4.6 pJ/MAC)',
      )
        .choices(Object.keys(PRESETS))
        .default(SIMULATE_DEFAULTS.energy),
    )
    .option('--e-sop <pJ>', 'energy per synaptic operation in pJ (overrides the preset)', picojoules)
    .option('--e-mac <pJ>', 'energy per multiply-accumulate in pJ (overrides the preset)', picojoules);
}

export function energyFrom(f: EnergyFlags): EnergyConstants {
  return energyConstants(f.energy, {
    eSop: f.eSop === undefined ? undefined : f.eSop * 1e-12,
    eMac: f.eMac === undefined ? undefined : f.eMac * 1e-12,
  });
}

export interface OutputFlags {
  json?: string;
  report?: string;
  markdown?: string;
}

export function outputOptions(cmd: Command): Command {
  return cmd
    .option('--json <file>', 'write the results as JSON (spikeport report renders it)')
    .option('--report <file>', 'write a self-contained HTML report with charts')
    .option('--markdown <file>', 'write a Markdown summary');
}

export function taskOption(): Option {
  return new Option(
    '--task <task>',
    'what the model does and how it is scored (default: from the data: masks → segmentation, boxes → detection, clips → video, else classification)',
  ).choices([...TASKS]);
}

export function stepsOption(defaults: readonly number[] = SIMULATE_DEFAULTS.T): Option {
  return new Option('--T <list>', 'numbers of time steps to report, comma-separated (one simulation of the largest)')
    .argParser(integers)
    .default([...defaults]);
}

export interface SimFlags extends CalibFlags, OutputFlags, EnergyFlags {
  engine: Engine;
  data: string;
  T: number[];
  delay: DelayRule;
  ann?: string;
  calib?: string;
  limit?: number;
  save?: string;
  siteErrors: number;
  siteErrorsT?: number;
  task?: Task;
  pictures: number;
  head?: HeadKind;
  scoreThreshold?: number;
  topCandidates?: number;
  nmsThreshold?: number;
  detectionsPerImage?: number;
}

/** How detections are made (simulate, demo): the head and torchvision's thresholds. */
export function detectionOptions(cmd: Command): Command {
  return cmd
    .addOption(
      new Option(
        '--head <head>',
        'detection head: retinanet, fcos (decoded as torchvision does), centernet (the bundled model); default: recognised from the outputs',
      ).choices([...HEADS]),
    )
    .option(
      '--score-threshold <s>',
      'detection: keep scores above this (default per head: retinanet 0.05, fcos 0.2, centernet 0.05)',
      num,
    )
    .option(
      '--top-candidates <n>',
      'detection: candidates kept per pyramid level, by score (retinanet, fcos; default 1000)',
      integer,
    )
    .option(
      '--nms-threshold <iou>',
      'detection: IoU above which NMS drops a lower-scoring box of the same class (default: retinanet 0.5, fcos 0.6, centernet 0.5)',
      num,
    )
    .option(
      '--detections-per-image <n>',
      'detection: detections kept per image (default: retinanet 300, fcos 100, centernet 100)',
      integer,
    );
}

/**
 * The CLI's default for --site-errors. The analysis runs its samples through the step graph one
 * step per call with every site's output read back: measured on fashion-vgg at T = 256, 100
 * samples took 59 s against 57 s for simulating 200 test samples, 32 took 22 s. Its per-site
 * errors on 32 samples were those on 100 within 0.02.
 */
export const SITE_ERRORS_SAMPLES = 32;
const SITE_ERRORS_COST = 2;

/** Options of simulate (and demo): what to simulate and report. */
export function simulateOptions(cmd: Command): Command {
  return detectionOptions(cmd)
    .requiredOption('--data <spec>', `test data: ${dataSpecs('test')}`)
    .addOption(stepsOption())
    .option(
      '--delay <d>',
      "readout window start: auto = min(d̂, ⌊T/2⌋), fit = the label-free fit made by convert --delay-fit, half = ⌊T/2⌋ (the paper's segmentation setting), off = 0, or a number of steps",
      delayValue,
      SIMULATE_DEFAULTS.delay,
    )
    .option('--limit <n>', 'use only the first N test samples', int(1))
    .option(
      '--ann <file>',
      'the source ANN, for the ANN and clipped-ANN reference (found automatically next to the SNN)',
    )
    .option('--calib <spec>', 'calibration data when MODEL is an ANN (default: the train split of --data)')
    .option('--save <file>', 'when MODEL is an ANN: also save the converted SNN here')
    .addOption(taskOption())
    .addOption(engineOption())
    .option(
      '--site-errors <n>',
      `samples for the per-site error analysis (clip error, SNN vs ANN per site, at --site-errors-T; needs the ANN): one batch simulated step by step, which costs about ${SITE_ERRORS_COST} times as much per sample as the run itself; 0 = off (the library's default)`,
      integer,
      SITE_ERRORS_SAMPLES,
    )
    .option('--site-errors-T <T>', 'T for the per-site error analysis (default: the largest --T)', integer)
    .option(
      '--pictures <n>',
      `test images in the HTML report and the JSON (0 = none; at most ${MAX_PICTURES}): segmentation and detection show N images with the SNN's masks/boxes at the smallest, a middle and the largest --T next to the ground truth and the ANN; classification and video up to 8·N misclassified images at the smallest --T`,
      integer,
      4,
    );
}

/** The library's simulation options from the flags; ANN references and site errors where the ANN is at hand. */
export function simulateOptionsFrom(
  f: SimFlags,
  onProgress: SimulateOptions['onProgress'],
  hasSource = true,
  stepForm = true,
): SimulateOptions {
  return {
    T: f.T,
    delay: f.delay,
    batchSize: f.batch,
    task: f.task,
    engine: f.engine,
    threads: f.threads,
    device: f.device,
    onProgress,
    references: hasSource,
    siteErrors: hasSource && stepForm ? f.siteErrors : 0,
    siteErrorsT: f.siteErrorsT,
    energy: energyFrom(f),
    preprocess: f.preprocess,
    frameRate: f.frameRate,
    clipsPerVideo: f.clipsPerVideo,
    categories: f.categories,
    pictures: f.report || f.json ? f.pictures : 0,
    detection: {
      head: f.head,
      scoreThreshold: f.scoreThreshold,
      topCandidates: f.topCandidates,
      nmsThreshold: f.nmsThreshold,
      detectionsPerImage: f.detectionsPerImage,
    },
    normalize: normalizeFrom(f),
  };
}

/** --mean and --std, which go together. */
export function normalizeFrom(f: { mean?: number[]; std?: number[] }): SimulateOptions['normalize'] {
  if ((f.mean === undefined) !== (f.std === undefined))
    throw new SpikeportError('invalid-option', '--mean and --std go together');
  return f.mean && f.std ? { mean: f.mean, std: f.std } : undefined;
}

/** The files a command reads that the user named: MODEL, --ann, --thresholds, and the files in --data / --calib. */
export function inputPaths(
  model: string | readonly string[],
  f: { data?: string; calib?: string; ann?: string; thresholds?: string; classes?: string },
): NamedPath[] {
  return [
    ...(typeof model === 'string' ? [model] : model).map((p) => ({ path: p, role: 'MODEL' })),
    ...(f.ann ? [{ path: f.ann, role: '--ann' }] : []),
    ...(f.thresholds ? [{ path: f.thresholds, role: '--thresholds' }] : []),
    ...(f.classes ? [{ path: f.classes, role: '--classes' }] : []),
    ...(f.data ? dataFiles(f.data).map((p) => ({ path: p, role: '--data' })) : []),
    ...(f.calib ? dataFiles(f.calib).map((p) => ({ path: p, role: '--calib' })) : []),
  ];
}

/** Calibration data for an ANN simulated on `spec`: what the user names, or its train split. */
export function calibrationSpec(spec: string, given?: string): string {
  if (given) return given;
  const train = trainSplitOf(spec);
  if (!train)
    throw new SpikeportError(
      'invalid-option',
      `--calib DATA is needed to calibrate on something other than the test data ${spec}`,
    );
  return train;
}
