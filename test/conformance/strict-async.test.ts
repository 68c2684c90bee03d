// A GPU-like backend: opaque storages, no synchronous read, counted asynchronous reads (ref's kernels inside).
import { conformance } from './suite.js';
import { registerStrictBackend } from './strict-backend.js';

conformance({ name: 'strict-async (no synchronous read)', setup: async () => registerStrictBackend() });
