// The WebGPU backend: every WGSL kernel against ref, HF parity, the PyTorch trajectory, the Trainer and LoRA.
// Without a GPU this runs on a software adapter (Dawn from the `webgpu` package on SwiftShader's Vulkan driver:
// tools/run-tests.mjs points VK_ICD_FILENAMES at Debian chromium's copy for the test process). Without any
// adapter the suite is skipped, saying why.
import { describeWebGPU, probeWebGPU, registerWebGPUBackend } from '../../src/index.js';
import { conformance } from './suite.js';

const probe = await probeWebGPU();
const skipAll = 'reason' in probe ? `webgpu: skipped (no adapter: ${probe.reason})` : false;
if (skipAll) console.log(skipAll);

conformance({
  name: `webgpu${'info' in probe ? ` on ${describeWebGPU(probe.info)}` : ''}`,
  setup: () => registerWebGPUBackend(),
  skipAll,
});
