// Browser-safe entries, as a bundled app uses them (no Node types in scope under tsconfig.bundler.json).
import { AdamW, LlamaForCausalLM, registerWasmBackend, tensor, wasmThreads, type Backend, type Tensor } from 'llamatrain';
import { readParquetText, type ParquetInput } from 'llamatrain/parquet';
import { HFTokenizer, loadTokenizer } from 'llamatrain/hf-tokenizer';

export async function run(parquet: ParquetInput, tokenizerJson: string): Promise<number> {
  const backend: Backend = await registerWasmBackend({ threads: 2 });
  const model = new LlamaForCausalLM({ vocabSize: 64, hiddenSize: 32, intermediateSize: 96, numHiddenLayers: 2,
    numAttentionHeads: 4, numKeyValueHeads: 2 }, { backend, seed: 0 });
  const opt = new AdamW(model.parameters(), { lr: 1e-3 });
  const ids: Tensor = tensor(Int32Array.from([1, 2, 3, 4]), [1, 4], 'int32', backend);
  const { loss } = model.forward(ids, { labels: ids });
  loss!.backward();
  opt.step();
  const texts: string[] = await readParquetText(parquet, 'text', 'data.parquet');
  const tok: HFTokenizer = loadTokenizer(tokenizerJson);
  return (await loss!.item()) + texts.length + tok.encode('hi').length + wasmThreads();
}
