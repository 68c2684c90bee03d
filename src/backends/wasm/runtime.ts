// The wasm runtime: one compiled kernels module, one shared WebAssembly.Memory, the caller's instance, a
// thread pool, and the block allocator in which tensors, operands and temporaries live.
//
// Memory layout (bytes):  [0, heapBase) module statics | blocks (BlockHeap): tensors, GEMM scratch, temporaries.
// The memory only grows (a grown page is touched once and reused: fresh pages cost ~13 µs each on these VMs).

import { kernelsWasmBase64 } from './kernels.wasm.js';
import type { BackendMemory, Storage } from '../../core/backend.js';
import { type ArgsOf, EXPORTS, type ExportName, PARALLEL_EXPORTS, type ParallelExport, type QueryExport, type RowOf,
  type TableExport, arity } from './exports.js';
import { type Exports, type PoolWorker, ThreadPool, type WasmMemory, workerSource } from './pool.js';

const PAGE = 65536;
const MAX_PAGES = 65536; // must match --maximumMemory in tools/build-wasm.mjs

const isNode = typeof process !== 'undefined' && !!process.versions?.node;

let compiled: WebAssembly.Module | null = null;
let bytesCache: Uint8Array<ArrayBuffer> | null = null;

function wasmBytes(): Uint8Array<ArrayBuffer> {
  if (!bytesCache) bytesCache = Uint8Array.from(atob(kernelsWasmBase64), (c) => c.charCodeAt(0));
  return bytesCache;
}

/**
 * A Node built-in module, without a static or literal `import()` a bundler would try to resolve for the browser
 * (process.getBuiltinModule: Node ≥ 20.16; an opaque dynamic import before that). Only ever called in Node.
 */
async function nodeBuiltin<T>(name: string): Promise<T> {
  const get = (process as { getBuiltinModule?: (id: string) => unknown }).getBuiltinModule;
  if (get) return get(name) as T;
  const spec = name;
  return (await import(/* @vite-ignore */ /* webpackIgnore: true */ spec)) as T;
}

/** Whether this platform can make a shared WebAssembly.Memory (browsers allow it without cross-origin isolation). */
function sharedMemoryWorks(): boolean {
  try {
    return new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true }).buffer.byteLength === PAGE;
  } catch {
    return false;
  }
}

/**
 * Whether this platform runs the backend: WebAssembly with SIMD128 and a shared WebAssembly.Memory (and Atomics).
 * Threads need more (see threadSupport()); without it the backend runs on one thread.
 */
export function wasmAvailable(): boolean {
  if (typeof WebAssembly !== 'object' || typeof Atomics !== 'object') return false;
  try {
    // the module uses simd + shared memory: validation checks both
    return WebAssembly.validate(wasmBytes()) && sharedMemoryWorks();
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

/**
 * Whether more than one thread is possible here, and if not, why: threads share the memory through postMessage,
 * which browsers allow only on cross-origin isolated pages (COOP + COEP headers: `crossOriginIsolated`,
 * `SharedArrayBuffer` defined), and the calling thread must be allowed to block (not a page's main thread).
 */
export function threadSupport(): { ok: true } | { ok: false; reason: string } {
  if (typeof SharedArrayBuffer !== 'function' || (!isNode && (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated !== true)) {
    return { ok: false, reason: 'the page is not cross-origin isolated (serve it with the headers Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp)' };
  }
  if (!canBlock()) return { ok: false, reason: "a page's main thread cannot block in Atomics.wait (train in a Web Worker)" };
  return { ok: true };
}

let toldSingleThread = false;

/** The thread count this platform allows for a request: 1 without threadSupport(), said once with console.info. */
export function allowedThreads(requested: number): number {
  if (requested <= 1) return requested;
  const t = threadSupport();
  if (t.ok) return requested;
  if (!toldSingleThread) {
    toldSingleThread = true;
    console.info(`llamatrain: the wasm backend runs on 1 thread instead of ${requested}: ${t.reason}.`);
  }
  return 1;
}

/** Default thread count: the available cores (os.availableParallelism in Node, hardwareConcurrency in browsers). */
export async function defaultThreads(): Promise<number> {
  if (isNode) {
    const os = await nodeBuiltin<typeof import('node:os')>('node:os');
    return Math.max(1, os.availableParallelism?.() ?? os.cpus().length);
  }
  return Math.max(1, (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator?.hardwareConcurrency ?? 1);
}

let blobUrl: string | null = null;

/**
 * Makes the pool's workers. Their code is workerSource() (pool.ts): a Node `eval` worker thread, or a browser
 * Web Worker from a Blob URL (no worker file to find, so it works the same under any bundler or in a plain page).
 */
async function spawner(): Promise<() => PoolWorker> {
  if (isNode) {
    const { Worker } = await nodeBuiltin<typeof import('node:worker_threads')>('node:worker_threads');
    const src = workerSource('node');
    // No inherited execArgv: the worker needs no flags, and a worker refuses some of the parent's (--input-type of
    // `node -e` scripts, per-process V8 flags such as --single-threaded-gc)
    return () => {
      const w = new Worker(src, { eval: true, execArgv: [] });
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
    blobUrl ??= URL.createObjectURL(new Blob([workerSource('browser')], { type: 'text/javascript' }));
    const w = new Worker(blobUrl);
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

/** C = op(A)·op(B) (acc 1: C +=) on byte offsets into the wasm memory, row-major (the kernels' hostGemm import). */
export type HostGemm = (transA: number, transB: number, M: number, N: number, K: number, a: number, lda: number, b: number,
  ldb: number, c: number, ldc: number, acc: number) => void;

export class WasmRuntime {
  readonly memory: WasmMemory;
  readonly exports: Exports;
  pool: ThreadPool;
  private readonly heap: BlockHeap;
  private scratch = 0;

  /** host.gemm: what the caller's instance's hostGemm import calls (setHostGemm). */
  private constructor(private readonly module: WebAssembly.Module, memory: WebAssembly.Memory, exports: Exports, pool: ThreadPool,
                      private readonly host: { gemm: HostGemm | null }) {
    this.memory = memory;
    this.exports = exports;
    this.pool = pool;
    this.heap = new BlockHeap(memory, align(this.query('heapBase', {}), 64));
    this.layout();
  }

  /**
   * Sets (or clears) the GEMM kernels run on the caller's thread when they are asked to (attention's hostShare ≥ 0):
   * byte offsets into the memory, as the wasm gemm export takes them. The native backend sets its BLAS here.
   */
  setHostGemm(gemm: HostGemm | null): void {
    this.host.gemm = gemm;
  }

  /** Whether a host GEMM is set. */
  get hasHostGemm(): boolean {
    return this.host.gemm !== null;
  }

  /** Throws unless the module has every export of the table, each with the declared number of parameters. */
  static checkExports(exports: Exports): void {
    for (const name of Object.keys(EXPORTS) as ExportName[]) {
      const f = exports[name];
      if (typeof f !== 'function' || f.length !== arity(name)) {
        throw new Error(`wasm backend: the kernels module's export '${name}' ${typeof f !== 'function' ? 'is missing' :
          `takes ${f.length} parameters, the table says ${arity(name)}`} (stale build? run npm run build:wasm)`);
      }
    }
  }

  static async create(threads: number): Promise<WasmRuntime> {
    if (!wasmAvailable()) throw new Error('wasm backend: this platform lacks WebAssembly SIMD128 or a shared WebAssembly.Memory (use the ref backend)');
    compiled ??= await WebAssembly.compile(wasmBytes());
    const memory = new WebAssembly.Memory({ initial: 1, maximum: MAX_PAGES, shared: true });
    // hostGemm: the kernels' one import besides the memory, a GEMM the host may run for thread 0 (setHostGemm)
    const host = { gemm: null as HostGemm | null };
    const hostGemm: HostGemm = (...a) => {
      if (!host.gemm) throw new Error('internal: a wasm kernel asked for the host GEMM, but none is set');
      host.gemm(...a);
    };
    const instance = await WebAssembly.instantiate(compiled, { env: { memory, hostGemm } });
    const exports = instance.exports as unknown as Exports;
    WasmRuntime.checkExports(exports);
    const pool = await ThreadPool.create(allowedThreads(threads), compiled, memory, exports, [...PARALLEL_EXPORTS], await spawner());
    return new WasmRuntime(compiled, memory, exports, pool, host);
  }

  get threads(): number {
    return this.pool.size;
  }

  /** Replaces the pool with one of `threads` threads (same memory and module). */
  async setThreads(threads: number): Promise<void> {
    threads = allowedThreads(threads);
    if (threads === this.pool.size) return;
    await this.pool.terminate();
    this.pool = await ThreadPool.create(threads, this.module, this.memory, this.exports, [...PARALLEL_EXPORTS], await spawner());
    this.layout();
  }

  async close(): Promise<void> {
    await this.pool.terminate();
  }

  private layout(): void {
    if (this.scratch) this.heap.free(this.scratch);
    this.scratch = this.heap.alloc(this.query('gemmScratchBytes', {}) * this.pool.size);
  }

  /** Address of the GEMM scratch (threads × gemmScratchBytes). */
  get gemmScratch(): number {
    return this.scratch;
  }

  /** The resident-memory hooks of the backend (scopes, persist, release): see core/scope.ts. */
  get blocks(): BlockHeap {
    return this.heap;
  }

  // ---- one kernel call: operands, temporaries and outputs ----

  private temps: number[] = [];
  private pendingOut: { addr: number; n: number; int: boolean }[] = [];

  /** Bytes copied in and out by kernels so far, and the time it took (the bench's copy profile). */
  copiedBytes = 0;
  copyMs = 0;
  copyInMs = 0;

  /** The address of a storage's data: resident storages in place, others copied into a temporary block. */
  input(s: Float32Array | Int32Array | Uint16Array): number {
    if (this.heap.isResident(s)) return s.byteOffset;
    const t0 = performance.now();
    this.copiedBytes += s.byteLength;
    const p = this.temp(s.byteLength);
    if (s instanceof Uint16Array) new Uint16Array(this.memory.buffer, p, s.length).set(s); // half bits
    else (s instanceof Float32Array ? this.heap.f32 : this.heap.i32).set(s, p >>> 2);
    const ms = performance.now() - t0;
    this.copyMs += ms;
    this.copyInMs += ms;
    return p;
  }

  /** A temporary block, freed when the kernel call ends. */
  temp(bytes: number): number {
    const p = this.heap.alloc(bytes);
    this.temps.push(p);
    return p;
  }

  /**
   * Space for an output of n elements. Inside a step scope it becomes the result itself (resident, no copy);
   * outside every scope the result is copied out to a JS array the GC manages, and the block is reused.
   */
  output(n: number, int = false): number {
    const p = this.heap.alloc(Math.max(1, n) * 4);
    this.pendingOut.push({ addr: p, n, int });
    return p;
  }

  /** The storage of an output made by output() (call once per output, before endCall). */
  result(addr: number): Float32Array {
    const i = this.pendingOut.findIndex((o) => o.addr === addr);
    if (i < 0) throw new Error(`internal: wasm kernel output ${addr} taken twice`);
    const { n, int } = this.pendingOut[i]!;
    this.pendingOut.splice(i, 1);
    if (this.heap.scoped) return this.heap.adopt(addr, int, n) as Float32Array;
    this.temps.push(addr);
    const t0 = performance.now();
    this.copiedBytes += n * 4;
    const out = copyOut((int ? this.heap.i32 : this.heap.f32).subarray(addr >>> 2, (addr >>> 2) + n));
    this.copyMs += performance.now() - t0;
    return out as Float32Array;
  }

  /** Ends a kernel call: frees its temporaries (and outputs never taken, after an error). */
  endCall(): void {
    for (const p of this.temps) this.heap.free(p);
    for (const o of this.pendingOut) this.heap.free(o.addr);
    this.temps.length = 0;
    this.pendingOut.length = 0;
  }

  private readonly argv: number[] = [];

  /** Sends the pool's idle workers to sleep at once (see ThreadPool.park). */
  parkWorkers(): void {
    this.pool.park();
  }

  /** Runs parallel export `fn` on nth threads (1: the caller alone) with its named arguments. */
  run<K extends ParallelExport>(fn: K, nth: number, args: ArgsOf<K>): void {
    this.pool.run(fn, nth, this.positional(fn, args));
  }

  /** Calls a query export on the caller. */
  query<K extends QueryExport>(fn: K, args: ArgsOf<K>): number {
    return this.exports[fn]!(...this.positional(fn, args)) as number;
  }

  /** The argument list of `fn` in its declared order (one reused array: a call never nests in another). */
  private positional<K extends ExportName>(fn: K, args: ArgsOf<K>): number[] {
    const names = EXPORTS[fn].args as readonly string[], named = args as Readonly<Record<string, number>>;
    const a = this.argv;
    a.length = names.length;
    for (let i = 0; i < names.length; i++) a[i] = named[names[i]!]!;
    return a;
  }

  /** Writes the table of multi-tensor export `fn` (one row of i32 fields per tensor) into a temporary block. */
  table<K extends TableExport>(fn: K, rows: readonly RowOf<K>[]): number {
    const fields = EXPORTS[fn].row as readonly string[];
    const p = this.temp(Math.max(1, rows.length * fields.length) * 4);
    const i32 = this.heap.i32; // after the allocation (a grown memory needs a new view)
    let o = p >>> 2;
    for (const row of rows) {
      const named = row as Readonly<Record<string, number>>;
      for (const f of fields) i32[o++] = named[f]!;
    }
    return p;
  }

  /** A temporary i32 set to 0: the arrival counter of a kernel whose last thread finishes a reduction. */
  counter(): number {
    const p = this.temp(4);
    Atomics.store(this.heap.i32, p >>> 2, 0);
    return p;
  }
}

/**
 * The allocator of the shared memory: blocks in size classes (64-byte steps up to 4 KiB, then 8 per power of
 * two, ≤ 12.5% slack), best fit among free blocks that merge with their free neighbours, below a bump pointer.
 * A training step asks for the same sizes every time, so after the first step every block is reused, already
 * touched memory (fresh pages cost ~13 µs each on these VMs).
 *
 * Resident storages are Float32Array / Int32Array views of exactly one block. Inside scopes a new block belongs
 * to the innermost scope; outside every scope (and once persisted) a FinalizationRegistry frees it when its view
 * is unreachable.
 */
export class BlockHeap implements BackendMemory {
  private top: number;
  private peak: number;
  /** Allocated blocks: start → size. */
  private readonly used = new Map<number, number>();
  /** Free blocks: start → size and end → start (a freed block merges with free neighbours). */
  private readonly freeAt = new Map<number, number>();
  private readonly freeEnd = new Map<number, number>();
  /** Free block starts by size, and the sizes present, ascending (best fit by binary search). */
  private readonly bySize = new Map<number, Set<number>>();
  private readonly freeSizes: number[] = [];
  /** Open scopes, innermost last: the resident views each one allocated. */
  private readonly scopes: Set<Storage>[] = [];
  private readonly buffers = new WeakSet<ArrayBufferLike>();
  private readonly finalizer = new FinalizationRegistry<number>((addr) => this.free(addr));
  private f32View: Float32Array;
  private i32View: Int32Array;

  constructor(private readonly memory: WasmMemory, private readonly base: number) {
    this.top = base;
    this.peak = base;
    this.f32View = new Float32Array(memory.buffer);
    this.i32View = new Int32Array(memory.buffer);
    this.buffers.add(memory.buffer);
    this.ensure(base);
  }

  get scoped(): boolean {
    return this.scopes.length > 0;
  }

  /** The highest address any block has reached: the wasm memory this heap has touched. */
  get highWater(): number {
    return this.peak;
  }

  /** Bytes the heap could still hand out: wasm32's 4 GiB less what is allocated (and the module's statics). */
  get available(): number {
    return MAX_PAGES * PAGE - this.base - this.inUse;
  }

  /** The sizes of the allocated blocks (bench/memory.ts reports them at a step's peak). */
  blockSizes(): IterableIterator<number> {
    return this.used.values();
  }

  /** Bytes in allocated blocks. */
  get inUse(): number {
    let n = 0;
    for (const s of this.used.values()) n += s;
    return n;
  }

  /**
   * A block of at least `bytes` (64-byte aligned): the smallest free block that fits (split, the rest stays free),
   * else new space at the top. With neighbours merging on free, memory a step freed is reused by whatever size
   * the next phase asks for (the fused loss's logits chunk becomes backward's gradients), so the heap's footprint
   * follows the live bytes instead of growing by every size class ever used.
   */
  alloc(bytes: number): number {
    const size = sizeClass(bytes);
    let lo = 0, hi = this.freeSizes.length;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (this.freeSizes[mid]! < size) lo = mid + 1; else hi = mid; }
    let p: number;
    if (lo < this.freeSizes.length) {
      const have = this.freeSizes[lo]!;
      p = this.bySize.get(have)!.values().next().value!;
      this.removeFree(p, have);
      if (have > size) this.addFree(p + size, have - size);
    } else {
      p = this.top;
      this.ensure(p + size);
      this.top = p + size;
      if (this.top > this.peak) this.peak = this.top;
    }
    this.used.set(p, size);
    return p;
  }

  free(addr: number): void {
    const size = this.used.get(addr);
    if (size === undefined) throw new Error(`internal: wasm heap: block ${addr} freed twice or never allocated`);
    this.used.delete(addr);
    let start = addr, end = addr + size;
    const next = this.freeAt.get(end);
    if (next !== undefined) { this.removeFree(end, next); end += next; }
    const prev = this.freeEnd.get(start);
    if (prev !== undefined) { this.removeFree(prev, start - prev); start = prev; }
    if (end === this.top) this.top = start; // back to the bump region
    else this.addFree(start, end - start);
  }

  private addFree(start: number, size: number): void {
    this.freeAt.set(start, size);
    this.freeEnd.set(start + size, start);
    let set = this.bySize.get(size);
    if (!set) {
      set = new Set();
      this.bySize.set(size, set);
      let lo = 0, hi = this.freeSizes.length;
      while (lo < hi) { const mid = (lo + hi) >> 1; if (this.freeSizes[mid]! < size) lo = mid + 1; else hi = mid; }
      this.freeSizes.splice(lo, 0, size);
    }
    set.add(start);
  }

  private removeFree(start: number, size: number): void {
    this.freeAt.delete(start);
    this.freeEnd.delete(start + size);
    const set = this.bySize.get(size)!;
    set.delete(start);
    if (set.size === 0) {
      this.bySize.delete(size);
      this.freeSizes.splice(this.freeSizes.indexOf(size), 1);
    }
  }

  /** A resident view of n elements in a new block (owned by the innermost scope, or by the GC outside scopes). */
  view(n: number, int: boolean): Float32Array | Int32Array {
    return this.adopt(this.alloc(Math.max(1, n) * 4), int, n);
  }

  /** A resident Uint16Array of n half bit patterns (a frozen bfloat16/float16 weight) in a new block. */
  viewHalf(n: number): Uint16Array {
    const addr = this.alloc(Math.max(1, n) * 2);
    const buf = this.memory.buffer;
    this.buffers.add(buf);
    const v = new Uint16Array(buf, addr, n);
    this.own(v);
    return v;
  }

  /** Wraps an allocated block as a resident storage of n elements. */
  adopt(addr: number, int: boolean, n: number): Float32Array | Int32Array {
    const buf = this.memory.buffer;
    this.buffers.add(buf);
    const v = int ? new Int32Array(buf, addr, n) : new Float32Array(buf, addr, n);
    this.own(v);
    return v;
  }

  /** Whether s is a view of this memory (its data can be passed to kernels by address). */
  isResident(s: object): boolean {
    return ArrayBuffer.isView(s) && this.buffers.has(s.buffer);
  }

  private own(v: Storage): void {
    const top = this.scopes[this.scopes.length - 1];
    if (top) top.add(v);
    else this.finalizer.register(v, (v as Float32Array).byteOffset, v);
  }

  openScope(): number {
    this.scopes.push(new Set());
    return this.scopes.length;
  }

  closeScope(depth: number, keep: ReadonlySet<Storage>): Storage[] {
    const freed: Storage[] = [];
    while (this.scopes.length >= depth) {
      const views = this.scopes.pop()!;
      for (const v of views) {
        if (keep.has(v)) { this.own(v); continue; }
        this.free((v as Float32Array).byteOffset);
        freed.push(v);
      }
    }
    return freed;
  }

  persist(s: Storage): void {
    for (let i = this.scopes.length - 1; i >= 0; i--) {
      if (this.scopes[i]!.delete(s)) { this.finalizer.register(s, (s as Float32Array).byteOffset, s); return; }
    }
  }

  release(s: Storage): boolean {
    if (!this.isResident(s)) return false;
    let found = false;
    for (let i = this.scopes.length - 1; i >= 0 && !found; i--) found = this.scopes[i]!.delete(s);
    if (!found && !this.finalizer.unregister(s)) return false; // not a block's view (or already freed)
    this.free((s as Float32Array).byteOffset);
    return true;
  }

  private ensure(end: number): void {
    const have = this.memory.buffer.byteLength;
    if (end <= have) return;
    const pages = Math.ceil((end - have) / PAGE);
    if (have / PAGE + pages > MAX_PAGES) {
      throw new RangeError(`wasm backend: out of memory: tensors need ${(end / 2 ** 20).toFixed(0)} MiB, more than wasm32's 4 GiB ` +
        '(use a smaller batch or sequence length, gradient accumulation, or the fused loss)');
    }
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
    this.buffers.add(buf);
    this.f32View = new Float32Array(buf);
    this.i32View = new Int32Array(buf);
  }
}

/** Block size for a request: 64-byte steps up to 4 KiB, then 8 classes per power of two. */
function sizeClass(bytes: number): number {
  const b = Math.max(64, align(bytes, 64));
  if (b <= 4096) return b;
  const step = 2 ** (Math.floor(Math.log2(b)) - 3);
  return Math.ceil(b / step) * step;
}

/** A JS-heap copy of a view. new + set, not slice(): V8's slice of a shared buffer copies ~3× slower (1 MiB: 0.49 vs 0.16 ms). */
export function copyOut<A extends Float32Array | Int32Array>(v: A): A {
  const out = (v instanceof Int32Array ? new Int32Array(v.length) : new Float32Array(v.length)) as A;
  out.set(v);
  return out;
}

function align(x: number, a: number): number {
  return Math.ceil(x / a) * a;
}
