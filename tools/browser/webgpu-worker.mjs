// Runs in a module Web Worker (see webgpu.html): three AdamW training steps of a small model (fused loss, step
// scopes, one read per step) on the webgpu backend through the browser's navigator.gpu, against the ref backend.
import { openScope, tensor } from '../../dist/src/core/index.js';
import { refBackend } from '../../dist/src/backends/ref/index.js';
import { LlamaForCausalLM } from '../../dist/src/nn/index.js';
import { AdamW } from '../../dist/src/optim/index.js';
import { registerWebGPUBackend, webgpuInfo } from '../../dist/src/backends/webgpu/index.js';

try {
  const gpu = await registerWebGPUBackend();
  const cfg = { vocabSize: 300, hiddenSize: 64, intermediateSize: 160, numHiddenLayers: 2, numAttentionHeads: 4, numKeyValueHeads: 2 };
  const run = async (be) => {
    const model = new LlamaForCausalLM(cfg, { backend: be, seed: 3 });
    const opt = new AdamW(model.parameters(), { lr: 1e-2 });
    const ids = tensor(Int32Array.from({ length: 4 * 40 }, (_, i) => (i * 37) % 300), [4, 40], 'int32', be);
    const losses = [];
    for (let s = 0; s < 3; s++) {
      const scope = openScope(be);
      try {
        const { loss } = model.forward(ids, { labels: ids, fusedLoss: true });
        loss.backward();
        opt.step();
        opt.zeroGrad();
        losses.push((await loss.data())[0]);
      } finally {
        scope.close();
      }
    }
    const w = await model.model.norm.weight.data();
    return { losses, normWeight: Array.from(w.slice(0, 4)) };
  };
  const r = await run(refBackend), g = await run(gpu);
  const lossRelErr = Math.max(...r.losses.map((x, i) => Math.abs(x - g.losses[i]) / Math.abs(x)));
  const weightErr = Math.max(...r.normWeight.map((x, i) => Math.abs(x - g.normWeight[i])));
  postMessage({ ok: lossRelErr < 1e-4 && weightErr < 1e-4, userAgent: navigator.userAgent, adapter: webgpuInfo(),
    refLosses: r.losses, webgpuLosses: g.losses, lossRelErr, weightMaxAbsErr: weightErr });
} catch (e) {
  postMessage({ ok: false, error: String(e && e.stack || e) });
}
