import { findBlas, registerNativeBackend } from '../../src/backends/native/index.js';
import { shutdownWasmBackend } from '../../src/backends/wasm/index.js';
import { conformance } from './suite.js';

conformance({ name: 'native (wasm + system BLAS), 2 threads', setup: () => registerNativeBackend({ threads: 2 }), teardown: shutdownWasmBackend, halfBlocks: true, skipAll: (await findBlas()).blas ? false : 'skipped: no BLAS library' });
