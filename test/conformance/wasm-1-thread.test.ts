import { registerWasmBackend, shutdownWasmBackend } from '../../src/backends/wasm/index.js';
import { conformance } from './suite.js';

conformance({ name: 'wasm, 1 thread', setup: () => registerWasmBackend({ threads: 1 }), teardown: shutdownWasmBackend });
