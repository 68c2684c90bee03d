// The `wasm` backend: WebAssembly SIMD128 kernels on a pool of threads sharing one WebAssembly.Memory.
// Storage is a Float32Array / Int32Array, as `ref`'s, but resident ones are views of the shared memory (so
// kernels need no copies): every kernel not ported yet is ref's, reading and writing the same views (the explicit
// fallback list is `fallbackKernels()`), and float64 always runs on ref. Memory is freed by step scopes
// (core/scope.ts; the Trainer opens one per step) or, outside them, when a tensor becomes unreachable.
//
//   import { registerWasmBackend } from 'llamatrain';
//   const backend = await registerWasmBackend({ threads: 2 });   // registers 'wasm'
//   const model = new LlamaForCausalLM(cfg, { backend });        // or setBackend('wasm')

import { type Backend, type KernelName, type KernelTable, registerBackend } from '../../core/backend.js';
import { isHalf } from '../../core/dtype.js';
import { halfToFloat32 } from '../../core/half.js';
import { refKernels } from '../ref/kernels.js';
import { copyStats, setParallelThreshold, wasmKernels } from './kernels.js';
import { WasmRuntime, copyOut, defaultThreads, wasmAvailable } from './runtime.js';

export { wasmAvailable, copyStats, setParallelThreshold };

export interface WasmBackendOptions {
  /** Threads including the calling one. Default: the available cores. */
  threads?: number;
  /** Registry name. Default 'wasm'. */
  name?: string;
}

let runtime: WasmRuntime | null = null;
let starting: Promise<WasmRuntime> | null = null;
const registered = new Map<string, Backend>();

/** The one shared runtime, started (or re-threaded) for `threads` threads: the native backend builds on it. */
export async function getRuntime(threads: number): Promise<WasmRuntime> {
  if (!runtime) {
    starting ??= WasmRuntime.create(threads);
    try {
      runtime = await starting;
    } finally {
      starting = null;
    }
  }
  await runtime.setThreads(threads);
  return runtime;
}

/** A backend object over the runtime's memory (upload, download, scopes); its kernels are registered apart. */
export function makeBackend(name: string, rt: WasmRuntime): Backend {
  const heap = rt.blocks;
  const read = (s: object) => (heap.isResident(s) ? copyOut(s as Float32Array) : (s as Float32Array).slice());
  return {
    name,
    // f32 / i32 data moves into the wasm memory (parameters, batches); float64 stays a JS array (ref kernels)
    upload: (data) => {
      if (data instanceof Uint16Array) { const h = heap.viewHalf(data.length); h.set(data); return h; } // half bits, 2 bytes each
      if (!(data instanceof Float32Array || data instanceof Int32Array)) return data;
      const v = heap.view(data.length, data instanceof Int32Array);
      v.set(data);
      return v;
    },
    // a half tensor reads back as its float32 values
    download: async (s, dtype) => (isHalf(dtype) ? halfToFloat32(s as Uint16Array, dtype) : read(s)),
    downloadSync: (s, dtype) => (isHalf(dtype) ? halfToFloat32(s as Uint16Array, dtype) : read(s)),
    supports: () => true, // float64 / int32 kernels run on ref
    memory: heap,
    // float32 and int32 tensors live in the wasm memory (float64 ones are JS arrays: only the host limits them)
    memoryLimit: (dtype) => (dtype === 'float64' ? undefined : { bytes: heap.available, what: `what the ${name} backend's wasm32 memory (4 GiB in all) has free` }),
  };
}

/** The wasm-implemented kernels (float32; other dtypes forward to ref inside each kernel). */
export function wasmKernelNames(): KernelName[] {
  return Object.keys(wasmKernels(null as unknown as WasmRuntime)) as KernelName[];
}

/** Kernels this backend takes from ref unchanged (same storage, zero conversion). */
export function fallbackKernels(): KernelName[] {
  const own = new Set(wasmKernelNames());
  return (Object.keys(refKernels) as KernelName[]).filter((k) => !own.has(k));
}

/**
 * Starts the runtime (compiles the kernels, spawns threads − 1 workers) and registers the backend under `name`
 * ('wasm'). Calling it again changes the thread count of the one shared runtime. Throws when
 * `wasmAvailable()` is false.
 */
export async function registerWasmBackend(opts: WasmBackendOptions = {}): Promise<Backend> {
  const threads = opts.threads ?? (await defaultThreads());
  if (!Number.isInteger(threads) || threads < 1) throw new RangeError(`registerWasmBackend: threads must be an integer ≥ 1, got ${threads}`);
  const rt = await getRuntime(threads);
  const name = opts.name ?? 'wasm';
  let backend = registered.get(name);
  if (!backend) {
    backend = makeBackend(name, rt);
    const table: KernelTable = { ...refKernels, ...wasmKernels(rt) };
    registerBackend(backend, table);
    registered.set(name, backend);
  }
  return backend;
}

/** Changes the number of threads (including the caller) of the running backend. */
export async function setWasmThreads(threads: number): Promise<void> {
  if (!runtime) throw new Error('setWasmThreads: the wasm backend is not started; call registerWasmBackend() first');
  await runtime.setThreads(threads);
}

/** The wasm heap's footprint in bytes: the highest address a block reached (its touched memory) and the bytes in blocks now. */
export function wasmHeapStats(): { highWater: number; inUse: number } | null {
  return runtime ? { highWater: runtime.blocks.highWater, inUse: runtime.blocks.inUse } : null;
}

/** Threads of the running backend (0 when not started). */
export function wasmThreads(): number {
  return runtime?.threads ?? 0;
}

/**
 * Stops the worker threads. The backend stays registered and keeps working on the calling thread alone
 * (workers are unref'd, so a process exits without this; tests call it to leave nothing behind).
 */
export async function shutdownWasmBackend(): Promise<void> {
  await runtime?.close();
}
