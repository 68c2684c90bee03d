// A thread pool for synchronous parallel wasm kernels. Every worker instantiates the same kernels module on the
// same shared WebAssembly.Memory; a job is "call export `fn`(tid, nth, ...args)" on every thread, the caller's
// thread being tid 0. Dispatch goes through a small SharedArrayBuffer (no postMessage on the hot path):
//
//   ctl[GEN]     job generation: the caller bumps it and notifies; workers spin briefly, then Atomics.wait on it
//   ctl[PENDING] workers still running the job: each decrements it; the last one notifies the caller
//   ctl[FN], ctl[ARGC], ctl[NTH], ctl[ERROR]   the job (FN = -1: exit) and a worker-failure flag
//   ctl[PARK]    bumped by park(): spinning workers go to sleep at once (the cores are wanted by other threads)
//   args (f64 at byte ARGS_BYTE)               the job's arguments (addresses and sizes fit exactly in f64)
//
// The caller blocks (Atomics.wait is allowed on Node's main thread and in browser workers, NOT on a browser's
// main thread: there, run the training loop in a Web Worker that owns this pool).

export const GEN = 0, PENDING = 1, FN = 2, ARGC = 3, NTH = 4, ERROR = 5, PARK = 6;
export const ARGS_BYTE = 64;
export const MAX_ARGS = 32;
export const CTL_BYTES = ARGS_BYTE + 8 * MAX_ARGS;
/**
 * How long the caller's join spins before sleeping (µs). Sleeping costs a ~75 µs wake-up, more than a whole small
 * kernel (tiny's 1024×64×64 GEMM: 55 µs per thread): with a 4,000-iteration spin (~15 µs) the caller slept
 * whenever the worker started a little late, and that GEMM took 197 µs on 2 threads instead of 110.
 */
export const JOIN_SPIN_US = 5000;
/**
 * How long an idle worker spins before sleeping (µs). Waking a sleeping worker costs ~75 µs here (measured:
 * an 8×8×8 GEMM on 2 threads took 92 µs after 200 µs of JS work, 18 µs back to back), longer than most kernels of
 * a small model, while a training step leaves < 1 ms of JS between kernels: spinning through it keeps the worker
 * hot for the whole step; it sleeps between steps. The cost is one core busy-waiting during the step.
 */
export const WORKER_SPIN_US = 1000;

/**
 * WebAssembly.Memory and WebAssembly.Module under local names, for our declaration files: apps compiled without
 * the DOM lib (Node apps with `lib: ["es2022"]`) have no WebAssembly namespace, and `tsc` without skipLibCheck
 * checks every declaration file it reads.
 */
export interface WasmMemory { readonly buffer: ArrayBuffer; grow(delta: number): number }
export type WasmModule = object;

/** What a worker gets in its first (and only) message. */
export interface WorkerInit {
  module: WasmModule;
  memory: WasmMemory;
  ctl: SharedArrayBuffer;
  tid: number;
  /** Export names by function index. */
  names: string[];
}

/** The platform's worker, reduced to what the pool needs (Node worker_threads.Worker or a browser Worker). */
export interface PoolWorker {
  post(msg: WorkerInit): void;
  /** Resolves on the worker's 'ready' message; rejects on an error before it. */
  ready(): Promise<void>;
  /** Lets the process exit while the worker sleeps (Node); no-op in browsers. */
  unref(): void;
  terminate(): Promise<unknown> | void;
}

export type Exports = Record<string, (...args: number[]) => unknown>;

/** The control buffer's layout, handed to the worker code as one object (see workerSource()). */
export interface PoolLayout {
  GEN: number; PENDING: number; FN: number; ARGC: number; NTH: number; ERROR: number; PARK: number;
  ARGS_BYTE: number; MAX_ARGS: number; WORKER_SPIN_US: number;
}
export const LAYOUT: PoolLayout = { GEN, PENDING, FN, ARGC, NTH, ERROR, PARK, ARGS_BYTE, MAX_ARGS, WORKER_SPIN_US };

// The worker's code is the source text of the three functions below (Function.prototype.toString), run in a Blob-URL
// Web Worker or a Node `eval` worker: no worker file to locate, so bundlers (Vite, webpack, esbuild) and plain pages
// need nothing special. Each function is therefore self-contained: it uses only its parameters and globals
// (Atomics, performance, WebAssembly, setTimeout) — never a module-level name, which a bundler may rename — and
// avoids syntax a down-levelling transpiler would replace with helper functions (no spread, no for…of).

/**
 * The job generation a worker starts from. Read it BEFORE the worker says 'ready': the caller may dispatch its first
 * job as soon as it has every 'ready', and a worker that read the generation only after that would take the job for
 * one already seen and sleep through it while the caller waits for it forever (seen under load: ~1 start in 7).
 */
export function initialGeneration(init: WorkerInit, L: PoolLayout): number {
  return Atomics.load(new Int32Array(init.ctl, 0, L.ARGS_BYTE / 4), L.GEN);
}

/** The worker side's loop: waits for jobs and runs them until FN = -1. */
export function workerLoop(init: WorkerInit, exports: Exports, gen0: number, L: PoolLayout): void {
  const ctl = new Int32Array(init.ctl, 0, L.ARGS_BYTE / 4);
  const args = new Float64Array(init.ctl, L.ARGS_BYTE, L.MAX_ARGS);
  const fns: ((...a: number[]) => unknown)[] = [];
  for (let i = 0; i < init.names.length; i++) fns.push(exports[init.names[i]!]!);
  const call: number[] = [];
  let seen = gen0;
  for (;;) {
    let gen = Atomics.load(ctl, L.GEN);
    if (gen === seen) {
      const until = performance.now() + L.WORKER_SPIN_US / 1000, park = Atomics.load(ctl, L.PARK);
      for (let i = 1; gen === seen; i++) {
        gen = Atomics.load(ctl, L.GEN);
        if ((i & 255) === 0 && (performance.now() > until || Atomics.load(ctl, L.PARK) !== park)) break;
      }
    }
    while (gen === seen) {
      Atomics.wait(ctl, L.GEN, seen);
      gen = Atomics.load(ctl, L.GEN);
    }
    seen = gen;
    const fn = Atomics.load(ctl, L.FN);
    if (fn < 0) return;
    const nth = ctl[L.NTH]!, argc = ctl[L.ARGC]!;
    if (init.tid < nth) {
      call.length = 0;
      call.push(init.tid, nth);
      for (let i = 0; i < argc; i++) call.push(args[i]!);
      try {
        fns[fn]!.apply(null, call);
      } catch {
        Atomics.store(ctl, L.ERROR, 1);
      }
    }
    if (Atomics.sub(ctl, L.PENDING, 1) === 1) Atomics.notify(ctl, L.PENDING);
  }
}

/**
 * A worker's entry: takes the one init message, instantiates the kernels module on the shared memory, says 'ready',
 * then runs workerLoop until told to exit. `once`/`post` are the platform's message port.
 */
export function workerMain(once: (f: (msg: WorkerInit) => void) => void, post: (msg: unknown) => void, L: PoolLayout,
                           gen: typeof initialGeneration, loop: typeof workerLoop): void {
  once(function (init) {
    let exports: Exports;
    try {
      // hostGemm is only ever called on the caller's thread (tid 0): a worker's instance gets one that throws
      var hostGemm = function () { throw new Error('hostGemm called on a worker'); };
      exports = new WebAssembly.Instance(init.module as WebAssembly.Module, { env: { memory: init.memory as WebAssembly.Memory, hostGemm: hostGemm } }).exports as unknown as Exports;
    } catch (e) {
      post({ error: String(e) });
      return;
    }
    const gen0 = gen(init, L); // before 'ready': the caller may dispatch a job right after it
    post('ready');
    // Leave the message handler first so that 'ready' is flushed before this thread blocks in its loop.
    setTimeout(function () { loop(init, exports, gen0, L); }, 0);
  });
}

/** The worker's whole source for a platform: a browser Web Worker (classic) or a Node `eval` worker thread. */
export function workerSource(platform: 'browser' | 'node'): string {
  const port = platform === 'node'
    ? 'var port = require("node:worker_threads").parentPort;\n' +
      'var once = function (f) { port.once("message", f); }, post = function (m) { port.postMessage(m); };\n'
    : 'var once = function (f) { self.addEventListener("message", function (e) { f(e.data); }, { once: true }); };\n' +
      'var post = function (m) { self.postMessage(m); };\n';
  return `"use strict";\n${port}(${String(workerMain)})(once, post, ${JSON.stringify(LAYOUT)}, ${String(initialGeneration)}, ${String(workerLoop)});\n`;
}

export class ThreadPool {
  private readonly ctl: Int32Array;
  private readonly args: Float64Array;
  private readonly fnIndex: Map<string, number>;
  private closed = false;

  private constructor(private readonly workers: PoolWorker[], ctlBuf: SharedArrayBuffer, names: string[],
                      private readonly exports: Exports) {
    this.ctl = new Int32Array(ctlBuf, 0, ARGS_BYTE / 4);
    this.args = new Float64Array(ctlBuf, ARGS_BYTE, MAX_ARGS);
    this.fnIndex = new Map(names.map((n, i) => [n, i]));
  }

  /**
   * Starts threads − 1 workers (the caller is the last thread). `spawn` creates one platform worker running
   * workerSource(); `exports` are the caller's own instance's exports.
   */
  static async create(threads: number, module: WasmModule, memory: WasmMemory, exports: Exports,
                      names: string[], spawn: () => PoolWorker): Promise<ThreadPool> {
    // One thread needs no shared control buffer (and a page that is not cross-origin isolated has no
    // SharedArrayBuffer constructor): Atomics work on a plain ArrayBuffer's Int32Array too.
    const ctl = (threads > 1 ? new SharedArrayBuffer(CTL_BYTES) : new ArrayBuffer(CTL_BYTES)) as SharedArrayBuffer;
    const workers: PoolWorker[] = [];
    try {
      for (let tid = 1; tid < threads; tid++) {
        const w = spawn();
        workers.push(w);
        w.post({ module, memory, ctl, tid, names });
      }
      await Promise.all(workers.map((w) => w.ready()));
    } catch (e) {
      await Promise.all(workers.map((w) => w.terminate()));
      throw e;
    }
    for (const w of workers) w.unref();
    return new ThreadPool(workers, ctl, names, exports);
  }

  /**
   * Sends idle workers to sleep now instead of after their spin: before the caller hands the cores to other
   * threads (a multi-threaded BLAS call), so that the two do not fight for them.
   */
  park(): void {
    Atomics.add(this.ctl, PARK, 1);
  }

  /** Threads including the caller (1 once terminated). */
  get size(): number {
    return this.closed ? 1 : this.workers.length + 1;
  }

  /**
   * Runs export `fn`(tid, nth, ...args) on nth threads (1 = the caller only, no dispatch) and returns when all
   * are done.
   */
  run(fn: string, nth: number, args: readonly number[]): void {
    const ex = this.exports[fn];
    if (!ex) throw new Error(`wasm backend: no kernel export '${fn}'`);
    const n = Math.max(1, Math.min(nth, this.size));
    if (n === 1) {
      ex(0, 1, ...args);
      return;
    }
    if (args.length > MAX_ARGS) throw new Error(`wasm backend: ${args.length} arguments exceed the pool's ${MAX_ARGS}`);
    const ctl = this.ctl;
    for (let i = 0; i < args.length; i++) this.args[i] = args[i]!;
    ctl[FN] = this.fnIndex.get(fn)!;
    ctl[ARGC] = args.length;
    ctl[NTH] = n;
    Atomics.store(ctl, PENDING, this.workers.length); // every worker answers, even those past nth
    Atomics.add(ctl, GEN, 1);
    Atomics.notify(ctl, GEN);
    let err: unknown = null;
    try {
      ex(0, n, ...args);
    } catch (e) {
      err = e;
    }
    // join: spin briefly, then sleep until the last worker notifies
    let pending = Atomics.load(ctl, PENDING);
    if (pending !== 0) {
      const until = performance.now() + JOIN_SPIN_US / 1000;
      for (let i = 1; pending !== 0; i++) {
        pending = Atomics.load(ctl, PENDING);
        if ((i & 255) === 0 && performance.now() > until) break;
      }
    }
    while (pending !== 0) {
      Atomics.wait(ctl, PENDING, pending);
      pending = Atomics.load(ctl, PENDING);
    }
    if (err) throw err;
    if (Atomics.exchange(ctl, ERROR, 0) !== 0) throw new Error(`wasm backend: kernel '${fn}' failed in a worker thread`);
  }

  /** Stops the workers (they leave their loop and are terminated). The pool then runs jobs on the caller only. */
  async terminate(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    Atomics.store(this.ctl, FN, -1);
    Atomics.store(this.ctl, PENDING, this.workers.length);
    Atomics.add(this.ctl, GEN, 1);
    Atomics.notify(this.ctl, GEN);
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
