/**
 * The converted file's format (docs/algorithm.md §8): the metadata keys, the schema of what
 * spikeport stores in them (with its version), the usage text, and encode / a validating decode.
 * Nothing else reads or writes `spikeport.*` metadata of a spiking network.
 */
import { z } from 'zod';
import type { Graph } from '../graph/ir.js';
import { decodeModel, encodeModel } from '../onnx/codec.js';
import { PREPROCESS_PRESETS, parsePreprocess } from '../data/preprocess.js';
import { isNormalize, normalizeProblem, type Normalize } from '../data/dataset.js';
import { NORMALIZE_KEY } from '../model/prepare.js';
import { SpikeportError, isPrintable } from '../errors.js';

/** The metadata keys of a converted file. */
export const KEYS = {
  /** JSON: SnnMetadata (below). */
  snn: 'spikeport.snn',
  /** "step" or "loop". */
  form: 'spikeport.form',
  /** Plain-text instructions for running the file without spikeport. */
  usage: 'spikeport.usage',
  /** The estimated delay d̂ as a decimal integer (also inside spikeport.snn). */
  delay: 'spikeport.delay',
  /** JSON {"mean": [...], "std": [...]}: the input normalisation (the same key as on the ANN). */
  normalize: NORMALIZE_KEY,
  /** Base64 ONNX model of the ops after the readout, to run on the averaged readout. */
  tail: 'spikeport.tail',
} as const;

/** The largest group of binary neurons per ANN neuron (docs/algorithm.md §11). */
export const MAX_GROUP = 64;

/** The version of the step graph's interface and of SnnSpec; a decoder refuses any other. */
export const SNN_FORMAT = 'spikeport-step/1';

/** How the saved file computes time: one step per call, or all T steps in one call (ONNX Loop). */
export type SnnForm = 'step' | 'loop';
export const SNN_FORMS: readonly SnnForm[] = ['step', 'loop'];

export type PoolMode = 'accumulated' | 'per-step';

/** A state tensor of the step graph: fed as `input`, returned as `output` for the next step. */
export interface StateSpec {
  readonly input: string;
  readonly output: string;
  /** One sample's shape; the state tensor is [N, ...shape]. */
  readonly shape: readonly number[];
}

export interface SiteSpec {
  /** The ANN node (ReLU or Clip) this neuron site replaces. */
  readonly node: string;
  /** Output with this step's spike count over the batch (a scalar). */
  readonly spikes: string;
  /** Neurons per sample. */
  readonly neurons: number;
  /** θ per channel, or one value (layer-wise). */
  readonly theta: readonly number[];
  /** The membrane at t = 0 as a fraction of θ (absent: ½; a QCFS activation's shift φ). */
  readonly start?: number;
  /** Bias calibration: the current added at every step, per channel (also in the graph). */
  readonly bias?: readonly number[];
  /** Potential calibration: the graph's firing level holds a per-neuron initial membrane. */
  readonly potential?: boolean;
  /**
   * Each ANN neuron is a group of `size` binary IF neurons (docs/algorithm.md §11): a
   * `population` (its state holds the members: `size` × the channels) or one `shared` membrane.
   * `neurons` counts every member. Absent: one IF neuron per ANN neuron.
   */
  readonly group?: { readonly size: number; readonly kind: 'population' | 'shared' };
  /** Threshold-scale calibration: the spikes' amplitude as a multiple of θ, per channel (also in the graph). */
  readonly scale?: readonly number[];
  /** Per-step bias calibration: the graph adds a per-channel current at steps 1 … this (counted by state.clock). */
  readonly stepBias?: number;
}

/**
 * A weighted layer and what it costs per frame (docs/algorithm.md §6). Where its input comes
 * from decides how it is counted: 'input' — from the analog input only (computed once per
 * frame, MACs); 'spiking' — spikes (synaptic operations, counted per step by the `sops`
 * output); 'dense' — time-varying but not through its data input (MACs at every step);
 * 'tail' — after the readout, on the averaged readout (MACs once).
 */
export interface LayerSpec {
  readonly node: string;
  readonly opType: string;
  readonly where: 'input' | 'spiking' | 'dense' | 'tail';
  /** Multiply-accumulates per sample (one ANN pass). */
  readonly macs: number;
  /** Output with this step's synaptic operations over the batch (a scalar), for 'spiking'. */
  readonly sops?: string;
}

/** The step graph's interface: what to feed, what comes out, and the thresholds. */
export interface SnnSpec {
  readonly format: typeof SNN_FORMAT;
  readonly input: string;
  readonly inputShape: readonly number[];
  readonly readout: string;
  readonly readoutShape: readonly number[];
  /**
   * Several readouts (a network with several outputs): the readout output holds them side by
   * side, each flattened per sample, in this order; the tail cuts them apart. Absent: one readout.
   */
  readonly readouts?: readonly { readonly name: string; readonly shape: readonly number[] }[];
  readonly states: readonly StateSpec[];
  readonly sites: readonly SiteSpec[];
  readonly granularity: 'channel' | 'layer';
  readonly maxpool: PoolMode;
  /** Weighted layers in graph order (absent in files written before SOP counting). */
  readonly layers?: readonly LayerSpec[];
}

/** Everything a later simulation needs, stored in the file's `spikeport.snn` metadata. */
export interface SnnMetadata {
  readonly spec: SnnSpec;
  /**
   * The ANN it was converted from: its file name (no folder) and hash; `path`, the path it was
   * given as at conversion, and `relative`, where it lay seen from the folder the file was saved
   * in ('/' between folders), when known.
   */
  readonly source: {
    readonly file: string;
    readonly sha256: string;
    readonly path?: string;
    readonly relative?: string;
  };
  readonly normalize: Normalize | null;
  readonly calibration: {
    /** The threshold method's name. */
    readonly method: string;
    readonly iterations: number;
    readonly batchSize: number;
    readonly samples: number;
    /** The calibration data set's name. */
    readonly data: string;
  };
  /**
   * d̂ and the per-site latencies it was added from (∞ for a site that never fires); `fitted`:
   * the label-free fitted delay for T = 1, 2, … (index T − 1), when convert was asked for it.
   */
  readonly delay: {
    readonly estimated: number;
    readonly latencies: readonly number[];
    readonly fitted?: readonly number[];
  };
  /** The node (or nodes, one per output) the user chose as the readout, if any. */
  readonly readoutNode?: string | readonly string[];
  /** Corrections after conversion: the T of bias / potential calibration and the samples they used, and the delay fit's samples. */
  readonly corrections?: {
    readonly biasT?: number;
    readonly potentialT?: number;
    readonly scaleT?: number;
    readonly stepBiasT?: number;
    readonly samples?: number;
    readonly delayFitSamples?: number;
  };
  /**
   * Present in the unit-spike form (docs/algorithm.md §9): θ is folded into the weights, every
   * site's θ in the spec is 1 and its spikes are 0/1. `theta` is what was folded (per site, as
   * the spec's θ would be), `scaleNodes` the Mul nodes added where branches of different θ meet.
   * Absent (files written before it, or the θ-amplitude form): spikes carry θ.
   */
  readonly unit?: UnitSpikes;
  /** Image preprocessing preset (data/preprocess.ts) used at conversion, repeated by simulate; absent: none given. */
  readonly preprocess?: string;
  /** Video files: the frame rate clips were resampled to at conversion, simulate's default; absent: each video's own. */
  readonly frameRate?: number;
  /**
   * Per-sample normalisations frozen at conversion (graph/norms.ts): their names, the samples
   * their statistics were averaged over, the statistics (to prepare the source ANN the same way
   * again), and what freezing cost the ANN on other samples. Absent: none.
   */
  readonly normalization?: NormalizationRecord;
  /**
   * Conversion for a target (convert --target): corrections that only the target's neuron
   * needs, applied by `export nir` and `simulate --as-target`, never by spikeport's own neuron.
   */
  readonly target?: TargetCalibration;
}

export interface NormalizationRecord {
  readonly norms: readonly string[];
  readonly samples: number;
  readonly statistics: readonly {
    readonly node: string;
    readonly mean: readonly number[];
    readonly variance: readonly number[];
  }[];
  readonly cost: {
    readonly samples: number;
    /** Whether the cost was measured on other samples than the statistics (false: too few calibration samples). */
    readonly heldOut: boolean;
    readonly outputs: readonly { readonly name: string; readonly error: number }[];
    readonly agreement: { readonly measure: string; readonly value: number } | null;
  };
}

/** What records show of a frozen normalisation: which, from how many samples, at what cost (not the statistics). */
export function normalizationSummary(n: NormalizationRecord): Pick<NormalizationRecord, 'norms' | 'samples' | 'cost'> {
  return { norms: n.norms, samples: n.samples, cost: n.cost };
}

/** What convert --target found for a target's neuron (docs/nir.md). */
export interface TargetCalibration {
  /** The target profile's name. */
  readonly profile: string;
  /** The T the corrections were calibrated for, and the calibration samples they used. */
  readonly T: number;
  readonly samples: number;
  /** Per site (null: none), per channel: a current added at every step, in the unit-spike form's units. */
  readonly bias: readonly (readonly number[] | null)[];
  /** Per site (null: 1), per channel: the threshold. */
  readonly threshold: readonly (readonly number[] | null)[];
  /** The θ/2 start given at step 1 by a clock neuron (targets that subtract θ). */
  readonly start?: boolean;
  /** What the target cannot express and what was done instead. */
  readonly notes: readonly string[];
}

export interface UnitSpikes {
  readonly theta: readonly (readonly number[])[];
  readonly scaleNodes: readonly string[];
}

/** How spikes are carried: θ per spike (the default) or 1 per spike with θ folded into the weights. */
export type SpikeForm = 'amplitude' | 'unit';
export const SPIKE_FORMS: readonly SpikeForm[] = ['amplitude', 'unit'];

export function spikeForm(meta: SnnMetadata): SpikeForm {
  return meta.unit ? 'unit' : 'amplitude';
}

/** The Loop form's extra inputs: the number of steps and the delay (int64 scalars). */
export const LOOP_STEPS_INPUT = 'T';
export const LOOP_DELAY_INPUT = 'delay';

/** The Loop form's output with the readout of every step, [T, N, ...]. */
export function loopReadout(readout: string): string {
  return `${readout}.steps`;
}

/** The Loop form's output with a counter's (spikes.siteK, sops.layerK) value at every step, [T]. */
export function loopCounter(counter: string): string {
  return `${counter}.steps`;
}

/** The step graph's names: site k's membrane state, its spike counter, and the j-th spike-fed layer's SOP counter. */
export function siteState(k: number): string {
  return `state.site${k}`;
}

export function spikesOutput(k: number): string {
  return `spikes.site${k}`;
}

export function sopsOutput(j: number): string {
  return `sops.layer${j}`;
}

/** The scalar per-step counters a step graph outputs: spikes per site, then SOPs per layer. */
export function counterOutputs(spec: SnnSpec): string[] {
  return [...spec.sites.map((s) => s.spikes), ...(spec.layers ?? []).flatMap((l) => (l.sops ? [l.sops] : []))];
}

const USAGE_STEP =
  'One time step of a spiking network made by spikeport. Feed the analog input at every step and every ' +
  'state.* input (zeros at the first step); feed each state.X.next output back as state.X. Average the readout ' +
  'output over steps d+1..T (d: spikeport.delay). Spike counts per site are the spikes.* outputs, synaptic operations per layer the sops.* outputs (spikeport.snn lists both). If ' +
  'spikeport.tail is present it is a base64 ONNX model: run it on the averaged readout to get the model outputs.';

const USAGE_LOOP =
  'A spiking network made by spikeport, all time steps in one call (ONNX Loop). Inputs: the analog ' +
  'input, T and delay (int64 scalars; spikeport.delay holds the estimated delay, use min(it, T/2)). Outputs: the ' +
  "model's outputs computed from the readout averaged over steps delay+1..T, the readout of every step " +
  '(*.steps) and spike counts per step (spikes.*.steps).';

const name = z.string().min(1);
// Text shown in messages: no control characters (a file could otherwise drive the terminal).
const printable = z.string().min(1).max(4096).refine(isPrintable, 'must not hold control characters');
const dims = z.array(z.number().int().positive());
const count = z.number().int().nonnegative();
// JSON has no ∞: a latency of a silent site is written as null.
const latency = z
  .number()
  .nonnegative()
  .nullable()
  .transform((v) => v ?? Infinity);

const specSchema: z.ZodType<SnnSpec> = z.object({
  format: z.literal(SNN_FORMAT),
  input: name,
  inputShape: dims,
  readout: name,
  readoutShape: dims,
  readouts: z
    .array(z.object({ name, shape: dims }))
    .min(2)
    .optional(),
  states: z.array(z.object({ input: name, output: name, shape: dims })),
  sites: z
    .array(
      z.object({
        node: name,
        spikes: name,
        neurons: z.number().int().positive(),
        theta: z.array(z.number().nonnegative()).min(1),
        start: z.number().min(0).max(1).optional(),
        bias: z.array(z.number()).min(1).optional(),
        potential: z.boolean().optional(),
        scale: z.array(z.number().nonnegative()).min(1).optional(),
        stepBias: z.number().int().positive().optional(),
        group: z
          .object({ size: z.number().int().min(2).max(MAX_GROUP), kind: z.enum(['population', 'shared']) })
          .optional(),
      }),
    )
    .min(1),
  granularity: z.enum(['channel', 'layer']),
  maxpool: z.enum(['accumulated', 'per-step']),
  layers: z
    .array(
      z.object({
        node: name,
        opType: name,
        where: z.enum(['input', 'spiking', 'dense', 'tail']),
        macs: z.number().nonnegative(),
        sops: name.optional(),
      }),
    )
    .optional(),
});

const metadataSchema: z.ZodType<SnnMetadata> = z.object({
  spec: specSchema,
  source: z.object({
    // A bare file name: it is looked up next to the SNN, never elsewhere.
    file: printable.refine((f) => !/[/\\]/.test(f) && f !== '.' && f !== '..', 'must be a file name without a folder'),
    sha256: z.string().regex(/^[0-9a-f]{64}$/, 'must be a hex SHA-256'),
    // Where the ANN was: shown in messages, followed only inside the SNN's folder (snn/network.ts).
    path: printable.optional(),
    relative: printable
      .refine((f) => !f.startsWith('/') && !/^[A-Za-z]:|^\\/.test(f), 'must be a relative path')
      .optional(),
  }),
  normalize: z
    .object({ mean: z.array(z.number()).min(1), std: z.array(z.number().positive()).min(1) })
    .refine(isNormalize, { error: (issue) => normalizeProblem(issue.input) ?? 'out of bounds' })
    .nullable(),
  calibration: z.object({
    method: name,
    iterations: count,
    batchSize: count,
    samples: count,
    data: z.string(),
  }),
  delay: z.object({ estimated: count, latencies: z.array(latency), fitted: z.array(count).min(1).optional() }),
  readoutNode: z.union([name, z.array(name).min(1)]).optional(),
  corrections: z
    .object({
      biasT: z.number().int().positive().optional(),
      potentialT: z.number().int().positive().optional(),
      scaleT: z.number().int().positive().optional(),
      stepBiasT: z.number().int().positive().optional(),
      samples: z.number().int().positive().optional(),
      delayFitSamples: z.number().int().positive().optional(),
    })
    .optional(),
  unit: z
    .object({
      theta: z.array(z.array(z.number().nonnegative()).min(1)),
      scaleNodes: z.array(name),
    })
    .optional(),
  preprocess: z
    .string()
    .refine((p) => parsePreprocess(p) !== null, `must be a preprocessing preset (${PREPROCESS_PRESETS})`)
    .optional(),
  frameRate: z.number().positive().max(1000).optional(),
  normalization: z
    .object({
      norms: z.array(name).min(1),
      samples: z.number().int().positive(),
      statistics: z
        .array(
          z.object({
            node: name,
            mean: z.array(z.number()).min(1),
            variance: z.array(z.number().nonnegative()).min(1),
          }),
        )
        .min(1),
      cost: z.object({
        samples: z.number().int().positive(),
        heldOut: z.boolean(),
        outputs: z.array(z.object({ name, error: z.number().nonnegative() })),
        agreement: z.object({ measure: z.string(), value: z.number().min(0).max(1) }).nullable(),
      }),
    })
    .optional(),
  target: z
    .object({
      profile: name,
      T: z.number().int().positive(),
      samples: z.number().int().positive(),
      bias: z.array(z.array(z.number().finite()).min(1).nullable()),
      threshold: z.array(z.array(z.number().finite().positive()).min(1).nullable()),
      start: z.boolean().optional(),
      notes: z.array(z.string()),
    })
    .optional(),
});

/** A spiking network's graph as stored in a file, with what its metadata says. */
export interface DecodedSnn {
  readonly form: SnnForm;
  /** The graph (step or loop form) without change; its metadata is what was read. */
  readonly graph: Graph;
  readonly meta: SnnMetadata;
  /** Ops after the readout, run on the averaged readout; null when none. */
  readonly tail: Graph | null;
}

export function isSnnGraph(g: Graph): boolean {
  return KEYS.snn in g.metadata;
}

/** The file's graph: `graph` (the step graph, or its Loop form) with every key of the format set. */
export function encodeSnn(graph: Graph, form: SnnForm, meta: SnnMetadata, tail: Graph | null): Graph {
  const keys = new Set<string>(Object.values(KEYS));
  const others = Object.fromEntries(Object.entries(graph.metadata).filter(([k]) => !keys.has(k)));
  return {
    ...graph,
    metadata: {
      ...others,
      [KEYS.form]: form,
      [KEYS.usage]: form === 'loop' ? USAGE_LOOP : USAGE_STEP,
      [KEYS.snn]: JSON.stringify(meta),
      [KEYS.delay]: String(meta.delay.estimated),
      ...(meta.normalize ? { [KEYS.normalize]: JSON.stringify(meta.normalize) } : {}),
      // Also in the Loop form (which runs it inside the graph too): simulate applies it to every window's average.
      ...(tail ? { [KEYS.tail]: Buffer.from(encodeModel(tail)).toString('base64') } : {}),
    },
  };
}

function invalid(where: string, what: string): SpikeportError {
  return new SpikeportError('invalid-file', `${where}: ${what}`);
}

/**
 * Read and check a converted file's metadata: a missing or mistyped field, or a spec that does
 * not match the graph's inputs and outputs, is a one-line error naming it.
 */
export function decodeSnn(g: Graph, where: string): DecodedSnn {
  const text = g.metadata[KEYS.snn];
  if (text === undefined)
    throw invalid(where, `not a spiking network made by spikeport convert (no ${KEYS.snn} metadata)`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw invalid(where, `metadata ${KEYS.snn} is not JSON (${(e as Error).message})`);
  }
  const format = (json as { spec?: { format?: unknown } } | null)?.spec?.format;
  if (format !== SNN_FORMAT)
    throw invalid(where, `unknown SNN format ${JSON.stringify(format)} (this spikeport reads ${SNN_FORMAT})`);
  const parsed = metadataSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw invalid(where, `metadata ${KEYS.snn}: field ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  const meta = parsed.data;
  const form = g.metadata[KEYS.form] ?? 'step';
  if (form !== 'step' && form !== 'loop')
    throw invalid(where, `metadata ${KEYS.form} is "${form}", expected step or loop`);
  checkInterface(g, meta, form, where);
  const tailText = g.metadata[KEYS.tail];
  const tail = tailText ? decodeModel(Buffer.from(tailText, 'base64'), `${where} (metadata ${KEYS.tail})`) : null;
  return { form, graph: g, meta, tail };
}

/** The spec names the graph's inputs and outputs, and its parts must agree: check both. */
function checkInterface(g: Graph, meta: SnnMetadata, form: SnnForm, where: string): void {
  const { spec } = meta;
  const field = (path: string, what: string): SpikeportError =>
    invalid(where, `metadata ${KEYS.snn}: field ${path}: ${what}`);
  const inputs = new Map(g.inputs.map((i) => [i.name, i]));
  const outputs = new Map(g.outputs.map((o) => [o.name, o]));
  const wantIn =
    form === 'loop'
      ? [spec.input, LOOP_STEPS_INPUT, LOOP_DELAY_INPUT]
      : [spec.input, ...spec.states.map((s) => s.input)];
  const wantOut =
    form === 'loop'
      ? [loopReadout(spec.readout), ...counterOutputs(spec).map(loopCounter)]
      : [spec.readout, ...spec.states.map((s) => s.output), ...counterOutputs(spec)];
  const missingIn = wantIn.find((i) => !inputs.has(i));
  if (missingIn) throw invalid(where, `the graph has no input "${missingIn}" that ${KEYS.snn} names`);
  const missingOut = wantOut.find((o) => !outputs.has(o));
  if (missingOut) throw invalid(where, `the graph has no output "${missingOut}" that ${KEYS.snn} names`);
  const dup = wantOut.find((o, i) => wantOut.indexOf(o) !== i);
  if (dup) throw invalid(where, `metadata ${KEYS.snn} names the output "${dup}" twice`);

  // Declared shapes (batch axis first) must be the spec's.
  const sameShape = (declared: readonly (number | string)[] | null | undefined, shape: readonly number[]): boolean =>
    !declared ||
    (declared.length === shape.length + 1 &&
      shape.every((d, i) => declared[i + 1] === d || typeof declared[i + 1] !== 'number'));
  if (!sameShape(inputs.get(spec.input)?.shape, spec.inputShape))
    throw field('spec.inputShape', `${spec.inputShape.join('x')} is not the graph input's shape`);
  if (form === 'step') {
    if (!sameShape(outputs.get(spec.readout)?.shape, spec.readoutShape))
      throw field('spec.readoutShape', `${spec.readoutShape.join('x')} is not the readout output's shape`);
    const packed = (spec.readouts ?? []).reduce((a, r) => a + r.shape.reduce((x, y) => x * y, 1), 0);
    if (spec.readouts && (spec.readoutShape.length !== 1 || spec.readoutShape[0] !== packed))
      throw field('spec.readouts', `hold ${packed} values per sample, the readout ${spec.readoutShape.join('x')}`);
    spec.states.forEach((st, i) => {
      if (!sameShape(inputs.get(st.input)?.shape, st.shape))
        throw field(`spec.states.${i}.shape`, `${st.shape.join('x')} is not the shape of input "${st.input}"`);
    });
  }

  // Each site: its spike counter, its membrane state, and θ per channel of that state.
  const states = new Map(spec.states.map((st) => [st.input, st]));
  spec.sites.forEach((s, k) => {
    if (s.spikes !== spikesOutput(k)) throw field(`spec.sites.${k}.spikes`, `expected "${spikesOutput(k)}"`);
    const st = states.get(siteState(k));
    if (!st) throw field('spec.states', `no state "${siteState(k)}" for site ${k}`);
    // A population's state holds its K members per neuron (K × the channels); a shared group's one membrane.
    const K = s.group?.size ?? 1;
    const members = s.group?.kind === 'population' ? K : 1;
    if (st.shape[0] % members !== 0)
      throw field(
        `spec.states`,
        `state "${siteState(k)}" has ${st.shape[0]} channels, not a multiple of the group's ${K}`,
      );
    const C = st.shape[0] / members;
    const n = (st.shape.reduce((a, b) => a * b, 1) / members) * K;
    if (s.neurons !== n)
      throw field(
        `spec.sites.${k}.neurons`,
        `${s.neurons}, but its state holds ${n}${K > 1 ? ` (groups of ${K})` : ''}`,
      );
    const want = spec.granularity === 'channel' ? C : 1;
    if (s.theta.length !== want)
      throw field(
        `spec.sites.${k}.theta`,
        `${s.theta.length} values, expected ${want} (${spec.granularity}-wise, ${C} channels)`,
      );
    if (s.bias && s.bias.length !== C)
      throw field(`spec.sites.${k}.bias`, `${s.bias.length} values, expected ${C} (one per channel)`);
    if (s.scale && s.scale.length !== C)
      throw field(`spec.sites.${k}.scale`, `${s.scale.length} values, expected ${C} (one per channel)`);
  });
  let counted = 0;
  (spec.layers ?? []).forEach((l, j) => {
    if ((l.where === 'spiking') !== (l.sops !== undefined))
      throw field(`spec.layers.${j}`, 'a layer has a SOP counter exactly when it is fed by spikes');
    if (l.sops !== undefined && l.sops !== sopsOutput(counted++))
      throw field(`spec.layers.${j}.sops`, `expected "${sopsOutput(counted - 1)}"`);
  });
  if (meta.unit) {
    const { theta, scaleNodes } = meta.unit;
    if (theta.length !== spec.sites.length)
      throw field('unit.theta', `${theta.length} values for ${spec.sites.length} sites`);
    theta.forEach((t, k) => {
      if (t.length !== spec.sites[k].theta.length)
        throw field(
          `unit.theta.${k}`,
          `${t.length} values, expected ${spec.sites[k].theta.length} like spec.sites.${k}.theta`,
        );
      if (spec.sites[k].theta.some((v) => v !== 1))
        throw field(`spec.sites.${k}.theta`, 'must be 1 in the unit-spike form');
    });
    // A loop-form file keeps its step graph inside the Loop, which is read back undecoded: only the step form is checked.
    const nodeNames = new Set(g.nodes.map((n) => n.name));
    const missing = form === 'step' ? scaleNodes.find((n) => !nodeNames.has(n)) : undefined;
    if (missing) throw field('unit.scaleNodes', `the graph has no node "${missing}"`);
  }
  if (meta.target) {
    const t = meta.target;
    if (!meta.unit) throw field('target', 'corrections for a target need the unit-spike form');
    for (const key of ['bias', 'threshold'] as const) {
      if (t[key].length !== spec.sites.length)
        throw field(`target.${key}`, `${t[key].length} values for ${spec.sites.length} sites`);
      t[key].forEach((v, k) => {
        const channels = states.get(siteState(k))?.shape[0] ?? 0;
        if (v && v.length !== channels)
          throw field(`target.${key}.${k}`, `${v.length} values, expected ${channels} (one per channel)`);
      });
    }
  }
  if (meta.delay.latencies.length !== spec.sites.length)
    throw field('delay.latencies', `${meta.delay.latencies.length} values for ${spec.sites.length} sites`);
  const late = meta.delay.fitted?.findIndex((d, i) => d > i);
  if (late !== undefined && late >= 0)
    throw field(
      `delay.fitted.${late}`,
      `a delay of ${meta.delay.fitted?.[late]} steps at T = ${late + 1} (it must be < T)`,
    );

  // The plain keys other runtimes read must say what spikeport.snn says.
  const delayKey = g.metadata[KEYS.delay];
  if (delayKey !== undefined && delayKey !== String(meta.delay.estimated))
    throw invalid(where, `metadata ${KEYS.delay} is "${delayKey}" but ${KEYS.snn} says ${meta.delay.estimated}`);
  const normKey = g.metadata[KEYS.normalize];
  if (
    (normKey === undefined) !== (meta.normalize === null) ||
    (normKey !== undefined && !sameJson(normKey, meta.normalize))
  ) {
    throw invalid(where, `metadata ${KEYS.normalize} does not match the normalisation in ${KEYS.snn}`);
  }
}

function sameJson(text: string, value: unknown): boolean {
  try {
    return JSON.stringify(JSON.parse(text)) === JSON.stringify(value);
  } catch {
    return false;
  }
}
