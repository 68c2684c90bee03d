import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, cpSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  LlamaForCausalLM, type LlamaConfigInput, RNG, type Tensor, argmaxLast, noGrad, parseSafetensors, sampleToken, tensor,
} from '../../src/index.js';
import { loadPretrained, savePretrained } from '../../src/node.js';
import { fixturePath } from '../helpers.js';

const tinyCfg: LlamaConfigInput = {
  vocabSize: 40, hiddenSize: 16, intermediateSize: 24, numHiddenLayers: 2, numAttentionHeads: 4, numKeyValueHeads: 2,
  rmsNormEps: 1e-5, initializerRange: 0.2,
};
const ints = (a: number[], shape: number[]) => tensor(Int32Array.from(a), shape, 'int32');
const tmp = () => mkdtempSync(join(tmpdir(), 'llamatrain-'));

test('module API: HF names, tied head appears once, train/eval, zeroGrad, numParameters', () => {
  const m = new LlamaForCausalLM(tinyCfg);
  const names = [...m.namedParameters()].map(([n]) => n);
  assert.equal(names[0], 'model.embed_tokens.weight');
  assert.ok(names.includes('model.layers.1.self_attn.k_proj.weight'));
  assert.ok(names.includes('model.layers.0.mlp.down_proj.weight'));
  assert.ok(names.includes('model.layers.0.post_attention_layernorm.weight'));
  assert.ok(names.includes('model.norm.weight') && names.includes('lm_head.weight'));
  assert.equal(names.length, 1 + 2 * 9 + 1 + 1);
  const tied = new LlamaForCausalLM({ ...tinyCfg, tieWordEmbeddings: true });
  assert.ok(![...tied.namedParameters()].some(([n]) => n === 'lm_head.weight'));
  assert.equal(tied.numParameters(), m.numParameters() - 40 * 16);
  m.eval();
  assert.ok([...m.modules()].every((x) => !x.training));
  m.train();
  const { loss } = m.forward(ints([1, 2, 3, 4], [1, 4]), { labels: ints([1, 2, 3, 4], [1, 4]) });
  loss!.backward();
  assert.ok(m.parameters().every((p) => p.grad !== null));
  m.zeroGrad();
  assert.ok(m.parameters().every((p) => p.grad === null));
  // The HF fixture's file names are exactly our parameter names.
  const file = parseSafetensors(readFileSync(fixturePath('hf-llama-tiny', 'model.safetensors'))).tensors;
  return loadPretrained(fixturePath('hf-llama-tiny')).then((hf) => {
    assert.deepEqual([...hf.namedParameters()].map(([n]) => n).sort(), [...file.keys()].sort());
  });
});

test('seeded init: same seed same weights, std = initializerRange, norms start at 1', () => {
  const a = new LlamaForCausalLM(tinyCfg, { seed: 5 }), b = new LlamaForCausalLM(tinyCfg, { seed: 5 });
  const c = new LlamaForCausalLM(tinyCfg, { seed: 6 });
  const w = (m: LlamaForCausalLM) => m.model.layers[0]!.selfAttn.qProj.weight.dataSync();
  assert.deepEqual(w(a), w(b));
  assert.notDeepEqual(w(a), w(c));
  const big = new LlamaForCausalLM({ ...tinyCfg, hiddenSize: 64, initializerRange: 0.02 }).model.embedTokens.weight.dataSync();
  const std = Math.sqrt(Array.from(big).reduce((s, x) => s + x * x, 0) / big.length);
  assert.ok(Math.abs(std - 0.02) < 0.001, `init std ${std}`);
  assert.ok(a.model.norm.weight.dataSync().every((x) => x === 1));
});

test('bad inputs give clear errors', async () => {
  assert.throws(() => new LlamaForCausalLM({ ...tinyCfg, numAttentionHeads: 8, numKeyValueHeads: 3 }),
    /num_key_value_heads \(3\) must divide num_attention_heads \(8\)/);
  const m = new LlamaForCausalLM(tinyCfg);
  assert.throws(() => m.forward(ints([1, 40, 2], [1, 3])), /token id 40 at \[0, 1\] is outside the vocabulary \[0, 40\)/);
  assert.throws(() => m.forward(ints([1, -1, 2], [1, 3])), /token id -1 at \[0, 1\]/);
  assert.throws(() => m.forward(ints([1, 2, 3], [1, 3]), { labels: ints([1, 2], [1, 2]) }),
    /labels must be int32 \[1, 3\] like input_ids, got int32 \[1, 2\]/);
  assert.throws(() => m.forward(ints([1, 2, 3], [1, 3]), { attentionMask: ints([1, 2, 0], [1, 3]) }), /only 0 \(padding\) and 1/);
  assert.throws(() => m.forward(tensor([1, 2], [1, 2])), /input ids must be an int32 tensor \[B, T\], got float32/);
  assert.throws(() => m.forward(ints([], [1, 0])), /input ids are empty/);
  // a checkpoint directory with a truncated weights file
  const dir = tmp();
  cpSync(fixturePath('hf-llama-tiny'), dir, { recursive: true });
  const bytes = readFileSync(join(dir, 'model.safetensors'));
  writeFileSync(join(dir, 'model.safetensors'), bytes.subarray(0, bytes.length - 1000));
  await assert.rejects(() => loadPretrained(dir), /model\.safetensors/);
  // a config whose sizes do not match the weights
  cpSync(fixturePath('hf-llama-tiny'), dir, { recursive: true });
  const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  cfg.intermediate_size = 100;
  writeFileSync(join(dir, 'config.json'), JSON.stringify(cfg));
  await assert.rejects(() => loadPretrained(dir), /'model\.layers\.0\.mlp\.gate_proj\.weight' has shape \[176, 64\] but the model expects \[100, 64\]/);
  await assert.rejects(() => loadPretrained(join(dir, 'nope')), /config\.json/);
});

async function logitsOf(m: LlamaForCausalLM, ids: Tensor): Promise<Float32Array | Float64Array> {
  return (await noGrad(() => m.forward(ids).logits).data()) as Float32Array;
}

test('savePretrained → fromPretrained round trip (F32 exact, BF16 rounded), tied and untied', async () => {
  for (const tie of [false, true]) {
    const m = new LlamaForCausalLM({ ...tinyCfg, tieWordEmbeddings: tie, ropeTheta: 5e5 }, { seed: 3 });
    const dir = tmp();
    await savePretrained(m, dir);
    const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    assert.equal(cfg.model_type, 'llama');
    assert.deepEqual(cfg.architectures, ['LlamaForCausalLM']);
    assert.equal(cfg.rope_theta, 5e5); // transformers 4
    assert.equal((cfg.rope_parameters as { rope_theta: number }).rope_theta, 5e5); // transformers 5
    assert.equal(cfg.tie_word_embeddings, tie);
    const file = parseSafetensors(readFileSync(join(dir, 'model.safetensors'))).tensors;
    assert.equal(file.has('lm_head.weight'), !tie);
    const back = await loadPretrained(dir);
    const ids = ints([1, 5, 9, 2], [1, 4]);
    assert.deepEqual(await logitsOf(back, ids), await logitsOf(m, ids));
    await savePretrained(m, dir, { dtype: 'BF16' });
    const bf = await loadPretrained(dir);
    const w = bf.model.embedTokens.weight.dataSync(), w0 = m.model.embedTokens.weight.dataSync();
    for (let i = 0; i < w.length; i++) {
      assert.ok(Math.abs(w[i]! - w0[i]!) <= Math.abs(w0[i]!) * 2 ** -8, 'bf16 keeps 8 significant bits');
      assert.equal(new Uint32Array(new Float32Array([w[i]!]).buffer)[0]! & 0xffff, 0, 'bf16 values have 16 zero low bits');
    }
  }
});

test('generate: KV-cache greedy equals recomputing the whole prefix; one position per new token', async () => {
  const m = new LlamaForCausalLM(tinyCfg, { seed: 9 });
  const prompt = ints([3, 14, 15, 9, 2], [1, 5]);
  // The slow way: full forward over the growing sequence, argmax of the last position.
  const seq = [3, 14, 15, 9, 2];
  for (let i = 0; i < 8; i++) {
    const lg = await logitsOf(m, ints(seq, [1, seq.length]));
    seq.push(argmaxLast(lg, 40));
  }
  const seen: number[] = [];
  const embed = m.model.embedTokens;
  const orig = embed.forward.bind(embed);
  embed.forward = (ids: Tensor) => { seen.push(ids.shape[1]!); return orig(ids); };
  const out = await m.generate(prompt, { maxNewTokens: 8, temperature: 0 });
  embed.forward = orig;
  assert.deepEqual(Array.from(await out.data()), seq);
  assert.deepEqual(seen, [5, 1, 1, 1, 1, 1, 1, 1], 'prefill once, then one position per token');
});

test('generate: seeded sampling is reproducible; topK 1 is greedy; EOS stops; batched left-padded prompts', async () => {
  const m = new LlamaForCausalLM(tinyCfg, { seed: 9 });
  const prompt = ints([3, 14, 15], [1, 3]);
  const s1 = await m.generate(prompt, { maxNewTokens: 10, temperature: 1, seed: 1 });
  const s2 = await m.generate(prompt, { maxNewTokens: 10, temperature: 1, seed: 1 });
  assert.deepEqual(await s1.data(), await s2.data());
  const greedy = Array.from(await (await m.generate(prompt, { maxNewTokens: 6, temperature: 0 })).data());
  assert.deepEqual(Array.from(await (await m.generate(prompt, { maxNewTokens: 6, temperature: 0.7, topK: 1, seed: 4 })).data()), greedy);
  const eosId = greedy[4]!;
  const stopped = Array.from(await (await m.generate(prompt, { maxNewTokens: 6, temperature: 0, eosTokenId: eosId })).data());
  assert.deepEqual(stopped, greedy.slice(0, greedy.indexOf(eosId) + 1));
  // Left padding: row 1 is row 0's prompt padded by two; its continuation must be the same tokens.
  const batch = ints([7, 8, 3, 14, 15, 0, 0, 3, 14, 15], [2, 5]);
  const mask = ints([1, 1, 1, 1, 1, 0, 0, 1, 1, 1], [2, 5]);
  const single = Array.from(await (await m.generate(ints([3, 14, 15], [1, 3]), { maxNewTokens: 4, temperature: 0 })).data()).slice(3);
  const both = Array.from(await (await m.generate(batch, { attentionMask: mask, maxNewTokens: 4, temperature: 0 })).data());
  assert.deepEqual(both.slice(9 + 5, 9 + 9), single, 'left-padded row continues like the unpadded prompt');
  await assert.rejects(() => m.generate(prompt, { topP: 0 }), /topP must be in \(0, 1\]/);
});

test('sampleToken: temperature 0 is argmax; top-p keeps the nucleus; sampling follows the probabilities', () => {
  const rng = new RNG(0);
  const logits = [Math.log(0.5), Math.log(0.3), Math.log(0.15), Math.log(0.05)];
  assert.equal(sampleToken(logits, 0, 0, 1, rng), 0);
  const counts = [0, 0, 0, 0];
  for (let i = 0; i < 20000; i++) counts[sampleToken(logits, 1, 0, 1, rng)]!++;
  [0.5, 0.3, 0.15, 0.05].forEach((p, i) => assert.ok(Math.abs(counts[i]! / 20000 - p) < 0.015, `token ${i}: ${counts[i]! / 20000}`));
  for (let i = 0; i < 2000; i++) assert.ok(sampleToken(logits, 1, 0, 0.75, rng) <= 1, 'top-p 0.75 keeps tokens 0 and 1');
  for (let i = 0; i < 2000; i++) assert.ok(sampleToken(logits, 1, 2, 1, rng) <= 1, 'top-k 2 keeps tokens 0 and 1');
});
