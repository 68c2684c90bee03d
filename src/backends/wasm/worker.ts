// Worker entry of the wasm backend's thread pool: Node worker_threads or a browser module Web Worker.
// It receives the kernels module, the shared memory and the control buffer once, instantiates, says 'ready',
// then runs jobs synchronously until told to exit (see pool.ts).

import { type Exports, type WorkerInit, initialGeneration, workerLoop } from './pool.js';

interface Port { once(f: (msg: WorkerInit) => void): void; post(msg: unknown): void }

const isNode = typeof process !== 'undefined' && !!process.versions?.node;

async function port(): Promise<Port> {
  if (isNode) {
    const { parentPort } = await import('node:worker_threads');
    if (!parentPort) throw new Error('wasm worker: not started as a worker thread');
    return { once: (f) => parentPort.once('message', f), post: (m) => parentPort.postMessage(m) };
  }
  const self = globalThis as unknown as { addEventListener(t: string, f: (e: { data: WorkerInit }) => void, o?: object): void; postMessage(m: unknown): void };
  return { once: (f) => self.addEventListener('message', (e) => f(e.data), { once: true }), post: (m) => self.postMessage(m) };
}

const p = await port();
p.once((init) => {
  let exports: Exports;
  try {
    const instance = new WebAssembly.Instance(init.module, { env: { memory: init.memory } });
    exports = instance.exports as unknown as Exports;
  } catch (e) {
    p.post({ error: String(e) });
    return;
  }
  const gen0 = initialGeneration(init); // before 'ready': the caller may dispatch a job right after it
  p.post('ready');
  // Leave the message handler first so that 'ready' is flushed before this thread blocks in its loop.
  setTimeout(() => workerLoop(init, exports, gen0), 0);
});
