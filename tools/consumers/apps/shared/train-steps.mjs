// 3 training steps of a tiny LLaMA on the wasm backend, the same in every sample app (Node and browsers): `lt` is
// the llamatrain module. Returns the thread count the backend got and the 3 losses.
export async function trainSteps(lt, threads) {
  const wasm = await lt.registerWasmBackend({ threads });
  const model = new lt.LlamaForCausalLM({ vocabSize: 256, hiddenSize: 64, intermediateSize: 192, numHiddenLayers: 2,
    numAttentionHeads: 4, numKeyValueHeads: 2, tieWordEmbeddings: true }, { backend: wasm, seed: 0 });
  const optimizer = new lt.AdamW(model.parameters(), { lr: 3e-3 });
  const B = 4, T = 64;
  const ids = lt.tensor(Int32Array.from({ length: B * T }, (_, i) => (i * 7 + (i >> 3) * 13) % 256), [B, T], 'int32', wasm);
  const losses = [];
  for (let step = 0; step < 3; step++) {
    const scope = lt.openScope(wasm);
    try {
      const { loss } = model.forward(ids, { labels: ids, fusedLoss: true });
      loss.backward();
      optimizer.step();
      optimizer.zeroGrad();
      losses.push(await loss.item());
    } finally {
      scope.close();
    }
  }
  return { threads: lt.wasmThreads(), losses };
}
