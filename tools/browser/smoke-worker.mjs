// Runs in a module Web Worker (see smoke.html): the same checks as the Node tests, on the built package's modules.
// (module by module: the package's main entry also pulls the Node/Parquet/tokenizer dependencies, which a bundler
// resolves in a real app; these modules have no bare imports)
import { matmul, openScope, tensor } from '../../dist/src/core/index.js';
import { refBackend } from '../../dist/src/backends/ref/index.js';
import { LlamaForCausalLM } from '../../dist/src/nn/index.js';
import { AdamW } from '../../dist/src/optim/index.js';
import { registerWasmBackend, wasmAvailable, wasmThreads } from '../../dist/src/backends/wasm/index.js';

try {
  const available = wasmAvailable();
  const wasm = await registerWasmBackend({ threads: 2 });
  const M = 300, N = 200, K = 150;
  const a = Float32Array.from({ length: M * K }, (_, i) => Math.sin(i)), b = Float32Array.from({ length: K * N }, (_, i) => Math.cos(i));
  const ref = matmul(tensor(a, [M, K], 'float32', refBackend), tensor(b, [K, N], 'float32', refBackend)).dataSync();
  const got = matmul(tensor(a, [M, K], 'float32', wasm), tensor(b, [K, N], 'float32', wasm)).dataSync();
  let err = 0;
  for (let i = 0; i < ref.length; i++) err = Math.max(err, Math.abs(ref[i] - got[i]));
  // three AdamW steps of a small model on each backend, the wasm ones in step scopes
  const cfg = { vocabSize: 300, hiddenSize: 64, intermediateSize: 160, numHiddenLayers: 2, numAttentionHeads: 4, numKeyValueHeads: 2 };
  const losses = (be) => {
    const model = new LlamaForCausalLM(cfg, { backend: be, seed: 3 });
    const opt = new AdamW(model.parameters(), { lr: 1e-2 });
    const ids = tensor(Int32Array.from({ length: 4 * 40 }, (_, i) => (i * 37) % 300), [4, 40], 'int32', be);
    const out = [];
    for (let s = 0; s < 3; s++) {
      const scope = openScope(be);
      try {
        const { loss } = model.forward(ids, { labels: ids, fusedLoss: true });
        out.push(loss.dataSync()[0]);
        loss.backward();
        opt.step();
        opt.zeroGrad();
      } finally {
        scope.close();
      }
    }
    return out;
  };
  const lr = losses(refBackend), lw = losses(wasm);
  const lossErr = Math.max(...lr.map((x, i) => Math.abs(x - lw[i]) / Math.abs(x)));
  const ok = available && wasmThreads() === 2 && err < 1e-3 && lossErr < 1e-4;
  postMessage({ ok, userAgent: navigator.userAgent, crossOriginIsolated, threads: wasmThreads(), hardwareConcurrency: navigator.hardwareConcurrency,
    matmulMaxAbsErr: err, refLosses: lr, wasmLosses: lw, lossRelErr: lossErr });
} catch (e) {
  postMessage({ ok: false, error: String(e && e.stack || e) });
}
