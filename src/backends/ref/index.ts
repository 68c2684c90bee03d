import { registerBackend } from '../../core/backend.js';
import { refBackend, refKernels } from './kernels.js';

registerBackend(refBackend, refKernels);

export { refBackend, refKernels };
