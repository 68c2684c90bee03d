// The wasm runtime: one compiled kernels module, one shared WebAssembly.Memory, the caller's instance, a
// thread pool, and a bump arena in which a kernel call places its operands.
//
// Memory layout (bytes):  [0, heapBase) module statics | per-thread GEMM scratch | arena (reset per call)
// The memory only grows (a grown page is touched once and reused: fresh pages cost ~13 µs each on these VMs).

import { kernelsWasmBase64 } from './kernels.wasm.js';
import { type Exports, type PoolWorker, ThreadPool } from './pool.js';

const PAGE = 65536;
const MAX_PAGES = 65536; // must match --maximumMemory in tools/build-wasm.mjs
/** Export names the pool can dispatch (parallel kernels: first two parameters are tid, nth). */
export const PARALLEL_EXPORTS = [
  'gemm', 'attention', 'attentionBackward', 'crossEntropy', 'crossEntropyBackward', 'crossEntropyChunk', 'rmsNorm', 'rmsNormBackward',
  'binary', 'silu', 'siluBackward', 'rope', 'adamStep', 'sumAll', 'square',
] as const;

const isNode = typeof process !== 'undefined' && !!process.versions?.node;

let compiled: WebAssembly.Module | null = null;
let bytesCache: Uint8Array<ArrayBuffer> | null = null;

function wasmBytes(): Uint8Array<ArrayBuffer> {
  if (!bytesCache) bytesCache = Uint8Array.from(atob(kernelsWasmBase64), (c) => c.charCodeAt(0));
  return bytesCache;
}

/** Whether this platform runs the backend: WebAssembly with SIMD128 and threads, SharedArrayBuffer and Atomics. */
export function wasmAvailable(): boolean {
  if (typeof WebAssembly !== 'object' || typeof SharedArrayBuffer !== 'function' || typeof Atomics !== 'object') return false;
  // browsers expose SharedArrayBuffer only to cross-origin isolated pages
  const g = globalThis as { crossOriginIsolated?: boolean };
  if (!isNode && g.crossOriginIsolated === false) return false;
  try {
    return WebAssembly.validate(wasmBytes()); // the module uses simd + shared memory: validation checks both
  } catch {
    return false;
  }
}

/**
 * Whether this thread may block in Atomics.wait: Node's main thread and workers, and browser workers — not a
 * browser page's main thread, where the pool runs every kernel on the caller alone (train in a Web Worker to get
 * threads).
 */
export function canBlock(): boolean {
  if (isNode) return true;
  return typeof (globalThis as { WorkerGlobalScope?: unknown }).WorkerGlobalScope !== 'undefined';
}

/** Default thread count: the available cores (os.availableParallelism in Node, hardwareConcurrency in browsers). */
export async function defaultThreads(): Promise<number> {
  if (isNode) {
    const os = await import('node:os');
    return Math.max(1, os.availableParallelism?.() ?? os.cpus().length);
  }
  return Math.max(1, (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator?.hardwareConcurrency ?? 1);
}

async function spawner(): Promise<() => PoolWorker> {
  const url = new URL('./worker.js', import.meta.url);
  if (isNode) {
    const { Worker } = await import('node:worker_threads');
    // No inherited execArgv: the worker needs no flags, and a worker refuses some of the parent's (--input-type of
    // `node -e` scripts, per-process V8 flags such as --single-threaded-gc)
    return () => {
      const w = new Worker(url, { execArgv: [] });
      return {
        post: (m) => w.postMessage(m),
        ready: () => new Promise<void>((resolve, reject) => {
          w.once('message', (m: unknown) => (m === 'ready' ? resolve() : reject(new Error(`wasm worker: ${JSON.stringify(m)}`))));
          w.once('error', reject);
        }),
        unref: () => w.unref(),
        terminate: () => w.terminate(),
      };
    };
  }
  return () => {
    const w = new Worker(url, { type: 'module' });
    return {
      post: (m) => w.postMessage(m),
      ready: () => new Promise<void>((resolve, reject) => {
        w.addEventListener('message', (e) => (e.data === 'ready' ? resolve() : reject(new Error(`wasm worker: ${JSON.stringify(e.data)}`))), { once: true });
        w.addEventListener('error', (e) => reject(new Error(`wasm worker: ${e.message}`)), { once: true });
      }),
      unref: () => {},
      terminate: () => w.terminate(),
    };
  };
}

export class WasmRuntime {
  readonly memory: WebAssembly.Memory;
  readonly exports: Exports;
  pool: ThreadPool;
  /** Start of the arena (after statics and the threads' scratch). */
  private arenaBase = 0;
  private top = 0;
  private scratch = 0;
  private f32View: Float32Array;
  private i32View: Int32Array;

  private constructor(private readonly module: WebAssembly.Module, memory: WebAssembly.Memory, exports: Exports, pool: ThreadPool) {
    this.memory = memory;
    this.exports = exports;
    this.pool = pool;
    this.f32View = new Float32Array(memory.buffer);
    this.i32View = new Int32Array(memory.buffer);
    this.layout();
  }

  static async create(threads: number): Promise<WasmRuntime> {
    if (!wasmAvailable()) throw new Error('wasm backend: this platform lacks WebAssembly SIMD, threads or SharedArrayBuffer (browsers: serve the page cross-origin isolated)');
    compiled ??= await WebAssembly.compile(wasmBytes());
    const memory = new WebAssembly.Memory({ initial: 1, maximum: MAX_PAGES, shared: true });
    const instance = await WebAssembly.instantiate(compiled, { env: { memory } });
    const exports = instance.exports as unknown as Exports;
    const pool = await ThreadPool.create(canBlock() ? threads : 1, compiled, memory, exports, [...PARALLEL_EXPORTS], await spawner());
    return new WasmRuntime(compiled, memory, exports, pool);
  }

  get threads(): number {
    return this.pool.size;
  }

  /** Replaces the pool with one of `threads` threads (same memory and module). */
  async setThreads(threads: number): Promise<void> {
    if (!canBlock()) threads = 1;
    if (threads === this.pool.size) return;
    await this.pool.terminate();
    this.pool = await ThreadPool.create(threads, this.module, this.memory, this.exports, [...PARALLEL_EXPORTS], await spawner());
    this.layout();
  }

  async close(): Promise<void> {
    await this.pool.terminate();
  }

  private layout(): void {
    const heapBase = this.exports.heapBase!() as number;
    const scratchBytes = this.exports.gemmScratchBytes!() as number;
    this.scratch = align(heapBase, 64);
    this.arenaBase = align(this.scratch + scratchBytes * this.pool.size, 64);
    this.ensure(this.arenaBase);
    this.top = this.arenaBase;
  }

  /** Address of the GEMM scratch (threads × gemmScratchBytes). */
  get gemmScratch(): number {
    return this.scratch;
  }

  /** Frees every arena allocation (call at the start of each kernel). */
  reset(): void {
    this.top = this.arenaBase;
  }

  /** `bytes` from the arena, 64-byte aligned (cache lines; v128 loads). */
  alloc(bytes: number): number {
    const p = this.top;
    this.top = align(p + bytes, 64);
    this.ensure(this.top);
    return p;
  }

  private ensure(end: number): void {
    const have = this.memory.buffer.byteLength;
    if (end <= have) return;
    const pages = Math.ceil((end - have) / PAGE);
    if (have / PAGE + pages > MAX_PAGES) throw new RangeError(`wasm backend: a kernel needs ${(end / 2 ** 20).toFixed(0)} MiB, more than wasm32's 4 GiB`);
    // grow by at least 1/8 to keep the number of grows (and view refreshes) small
    this.memory.grow(Math.min(MAX_PAGES - have / PAGE, Math.max(pages, Math.ceil(have / PAGE / 8))));
  }

  /** Float32 view of the whole memory (refreshed after growth). */
  get f32(): Float32Array {
    if (this.f32View.buffer.byteLength !== this.memory.buffer.byteLength) this.refresh();
    return this.f32View;
  }

  get i32(): Int32Array {
    if (this.i32View.buffer.byteLength !== this.memory.buffer.byteLength) this.refresh();
    return this.i32View;
  }

  private refresh(): void {
    const buf = this.memory.buffer;
    this.f32View = new Float32Array(buf);
    this.i32View = new Int32Array(buf);
  }

  /** Bytes copied by put/takeF32 so far (the bench's copy profile). */
  copiedBytes = 0;

  /** Copies a host array into the arena; returns its address. */
  put(a: Float32Array | Int32Array): number {
    this.copiedBytes += a.length * 4;
    const p = this.alloc(a.length * 4);
    (a instanceof Float32Array ? this.f32 : this.i32).set(a, p >> 2);
    return p;
  }

  /** A fresh host copy of n floats at address p. */
  takeF32(p: number, n: number): Float32Array {
    // new + set, not slice(): V8's slice of a shared buffer copies ~3× slower (measured: 1 MiB 0.49 vs 0.16 ms)
    this.copiedBytes += n * 4;
    const out = new Float32Array(n);
    out.set(this.f32.subarray(p >> 2, (p >> 2) + n));
    return out;
  }

  run(fn: (typeof PARALLEL_EXPORTS)[number], nth: number, args: readonly number[]): void {
    this.pool.run(fn, nth, args);
  }
}

function align(x: number, a: number): number {
  return Math.ceil(x / a) * a;
}
