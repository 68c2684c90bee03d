// Every kernel call through the thread pool (threshold 0): tiny shapes split across 2 threads.
import { registerWasmBackend, setParallelThreshold, shutdownWasmBackend } from '../../src/backends/wasm/index.js';
import { conformance } from './suite.js';

conformance({
  name: 'wasm, 2 threads, every call through the pool',
  setup: async () => { const be = await registerWasmBackend({ threads: 2 }); setParallelThreshold(0); return be; },
  teardown: async () => { setParallelThreshold(null); await shutdownWasmBackend(); },
  skip: ['trajectory'], // the same kernels as 'wasm, 2 threads' on larger shapes; the op cases cover the split
});
