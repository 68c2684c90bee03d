// The oracle: ops by float64 finite differences; parity, trajectory and Trainer sections as every backend.
import { refBackend } from '../../src/index.js';
import { conformance } from './suite.js';

conformance({ name: 'ref', setup: async () => refBackend, oracle: true });
