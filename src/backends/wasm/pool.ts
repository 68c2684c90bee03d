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

/** What a worker gets in its first (and only) message. */
export interface WorkerInit {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
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

/**
 * The job generation a worker starts from. Read it BEFORE the worker says 'ready': the caller may dispatch its first
 * job as soon as it has every 'ready', and a worker that read the generation only after that would take the job for
 * one already seen and sleep through it while the caller waits for it forever (seen under load: ~1 start in 7).
 */
export function initialGeneration(init: WorkerInit): number {
  return Atomics.load(new Int32Array(init.ctl, 0, ARGS_BYTE / 4), GEN);
}

/** The worker side's loop: waits for jobs and runs them until FN = -1. Shared by Node and browser workers. */
export function workerLoop(init: WorkerInit, exports: Exports, gen0: number): void {
  const ctl = new Int32Array(init.ctl, 0, ARGS_BYTE / 4);
  const args = new Float64Array(init.ctl, ARGS_BYTE, MAX_ARGS);
  const fns = init.names.map((n) => exports[n]!);
  const call: number[] = [];
  let seen = gen0;
  for (;;) {
    let gen = Atomics.load(ctl, GEN);
    if (gen === seen) {
      const until = performance.now() + WORKER_SPIN_US / 1000, park = Atomics.load(ctl, PARK);
      for (let i = 1; gen === seen; i++) {
        gen = Atomics.load(ctl, GEN);
        if ((i & 255) === 0 && (performance.now() > until || Atomics.load(ctl, PARK) !== park)) break;
      }
    }
    while (gen === seen) {
      Atomics.wait(ctl, GEN, seen);
      gen = Atomics.load(ctl, GEN);
    }
    seen = gen;
    const fn = Atomics.load(ctl, FN);
    if (fn < 0) return;
    const nth = ctl[NTH]!, argc = ctl[ARGC]!;
    if (init.tid < nth) {
      call.length = 0;
      call.push(init.tid, nth);
      for (let i = 0; i < argc; i++) call.push(args[i]!);
      try {
        fns[fn]!(...call);
      } catch {
        Atomics.store(ctl, ERROR, 1);
      }
    }
    if (Atomics.sub(ctl, PENDING, 1) === 1) Atomics.notify(ctl, PENDING);
  }
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
   * worker.js; `exports` are the caller's own instance's exports.
   */
  static async create(threads: number, module: WebAssembly.Module, memory: WebAssembly.Memory, exports: Exports,
                      names: string[], spawn: () => PoolWorker): Promise<ThreadPool> {
    const ctl = new SharedArrayBuffer(CTL_BYTES);
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
