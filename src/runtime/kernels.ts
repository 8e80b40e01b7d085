/**
 * The fused engine's state updates, over buffers taken from one arena: WebAssembly SIMD
 * (kernels.wat, four neurons per instruction) where the platform has it, else the same loops
 * in plain JS. Both compute in IEEE single precision with the graph's operation order, so they
 * give the same bits (test/fused.test.ts).
 */
import { KERNELS_WASM } from './kernels.wasm.js';
import { SpikeportError, field } from '../errors.js';

export interface NeuronCounts {
  readonly fired: number;
  /** Σ fan-out over the neurons that fired (0 without a fan-out). */
  readonly sops: number;
}

/** Float32 / Int32 views handed out by an arena; valid until the next `reserve`. */
export interface Arena {
  /** Make room for `floats` 4-byte values in all; forgets every earlier view. */
  reserve(floats: number): void;
  /** Whether `reserve(floats)` can succeed at all (WebAssembly memory ends at 4 GiB). */
  fits(floats: number): boolean;
  f32(len: number): Float32Array;
  i32(len: number): Int32Array;
}

export interface Kernels extends Arena {
  readonly kind: 'wasm' | 'js';
  /**
   * u1 = u + cur; fire where u1 ≥ level: out = θ, u = u1 − θ; else out = 0, u = u1. u, cur and
   * out hold n samples; the fan-out one sample's neurons; level and θ one sample's neurons, or
   * one value per channel (fewer values than neurons: channels of equal size, channel-major).
   */
  neuron(
    u: Float32Array,
    cur: Float32Array,
    out: Float32Array,
    level: Float32Array,
    theta: Float32Array,
    fan: Int32Array | null,
    n: number,
  ): NeuronCounts;
  /** Σ fan over the non-zero values of x (n samples of fan.length values). */
  events(x: Float32Array, fan: Int32Array, n: number): number;
  /** out = state + x; state = out. */
  accumulate(state: Float32Array, x: Float32Array, out: Float32Array): void;
  /** out = x − state; state = x. */
  difference(state: Float32Array, x: Float32Array, out: Float32Array): void;
}

interface WasmExports {
  readonly memory: WebAssembly.Memory;
  readonly sops: WebAssembly.Global;
  neuron(
    u: number,
    cur: number,
    out: number,
    level: number,
    theta: number,
    fan: number,
    len: number,
    n: number,
  ): number;
  neuronChannels(
    u: number,
    cur: number,
    out: number,
    level: number,
    theta: number,
    fan: number,
    len: number,
    c: number,
    n: number,
  ): number;
  events(x: number, fan: number, len: number, n: number): bigint;
  accumulate(state: number, x: number, out: number, len: number): void;
  difference(state: number, x: number, out: number, len: number): void;
}

let compiled: WebAssembly.Module | null | undefined;

/** The WebAssembly kernels, or null where WebAssembly SIMD is not available. */
function wasmModule(): WebAssembly.Module | null {
  if (compiled === undefined) {
    try {
      const bytes = Uint8Array.from(atob(KERNELS_WASM), (c) => c.charCodeAt(0));
      compiled = WebAssembly.validate(bytes) ? new WebAssembly.Module(bytes) : null;
    } catch {
      compiled = null;
    }
  }
  return compiled;
}

/** Kernels over one arena: WebAssembly SIMD unless `js` is asked for or unavailable. */
export function createKernels(kind: 'wasm' | 'js' = 'wasm'): Kernels {
  const mod = kind === 'wasm' ? wasmModule() : null;
  return mod ? wasmKernels(new WebAssembly.Instance(mod, {}).exports as unknown as WasmExports) : jsKernels();
}

const PAGE = 65536;
/** WebAssembly's 32-bit memories end at 65 536 pages. */
const MAX_WASM_BYTES = 65536 * PAGE;

/** Bytes of arena for `floats` values: room for the values and each view's 16-byte alignment. */
function wasmBytes(floats: number): number {
  return 4 * floats + 16 * 4096;
}

function wasmKernels(x: WasmExports): Kernels {
  let next = 0;
  const take = (bytes: number): number => {
    const at = next;
    next += Math.ceil(bytes / 16) * 16;
    if (next > x.memory.buffer.byteLength) throw new Error('fused engine: arena overflow (reserve first)');
    return at;
  };
  const ptr = (a: Float32Array | Int32Array): number => a.byteOffset;
  return {
    kind: 'wasm',
    fits: (floats) => wasmBytes(floats) <= MAX_WASM_BYTES,
    reserve(floats) {
      const need = wasmBytes(floats);
      const have = x.memory.buffer.byteLength;
      if (need > have) {
        try {
          x.memory.grow(Math.ceil((need - have) / PAGE));
        } catch {
          throw new SpikeportError(
            'runtime',
            `the fused engine needs ${(need / 2 ** 30).toFixed(1)} GiB of WebAssembly memory for one batch (at most 4 GiB); use a smaller ${field('batchSize')} or ${field('engine')} steps`,
            'batchSize',
          );
        }
      }
      next = 0;
    },
    f32: (len) => new Float32Array(x.memory.buffer, take(4 * len), len),
    i32: (len) => new Int32Array(x.memory.buffer, take(4 * len), len),
    neuron(u, cur, out, level, theta, fan, n) {
      const per = u.length / n;
      const fired =
        level.length === per
          ? x.neuron(ptr(u), ptr(cur), ptr(out), ptr(level), ptr(theta), fan ? ptr(fan) : 0, per, n)
          : x.neuronChannels(
              ptr(u),
              ptr(cur),
              ptr(out),
              ptr(level),
              ptr(theta),
              fan ? ptr(fan) : 0,
              per / level.length,
              level.length,
              n,
            );
      return { fired, sops: fan ? Number(x.sops.value as bigint) : 0 };
    },
    events: (v, fan, n) => Number(x.events(ptr(v), ptr(fan), fan.length, n)),
    accumulate: (state, v, out) => x.accumulate(ptr(state), ptr(v), ptr(out), state.length),
    difference: (state, v, out) => x.difference(ptr(state), ptr(v), ptr(out), state.length),
  };
}

function jsKernels(): Kernels {
  return {
    kind: 'js',
    reserve() {},
    fits: () => true,
    f32: (len) => new Float32Array(len),
    i32: (len) => new Int32Array(len),
    neuron(u, cur, out, level, theta, fan, n) {
      let fired = 0;
      let sops = 0;
      const per = u.length / n;
      const spread = per / level.length; // neurons per value of level and θ
      for (let i = 0, e = 0; i < n; i++) {
        for (let p = 0; p < per; p++, e++) {
          const u1 = Math.fround(u[e] + cur[e]);
          const c = spread === 1 ? p : Math.floor(p / spread);
          if (u1 >= level[c]) {
            out[e] = theta[c];
            u[e] = u1 - theta[c];
            fired++;
            if (fan) sops += fan[p];
          } else {
            out[e] = 0;
            u[e] = u1;
          }
        }
      }
      return { fired, sops };
    },
    events(v, fan, n) {
      let s = 0;
      const per = fan.length;
      for (let i = 0, e = 0; i < n; i++) for (let p = 0; p < per; p++, e++) if (v[e] !== 0) s += fan[p];
      return s;
    },
    accumulate(state, v, out) {
      for (let e = 0; e < state.length; e++) {
        out[e] = state[e] + v[e];
        state[e] = out[e];
      }
    },
    difference(state, v, out) {
      for (let e = 0; e < state.length; e++) {
        out[e] = v[e] - state[e];
        state[e] = v[e];
      }
    },
  };
}
