import { registerWasmBackend, shutdownWasmBackend } from '../../src/backends/wasm/index.js';
import { conformance } from './suite.js';

conformance({ name: 'wasm, 2 threads', setup: () => registerWasmBackend({ threads: 2 }), teardown: shutdownWasmBackend });
