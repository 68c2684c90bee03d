// The model families behind one decoder (src/nn/families.ts): config.json reading per model_type, the layout each
// family implies, refusals, YaRN frequencies against PyTorch's, the config.json we write back, and sizes.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fixturePath } from '../helpers.js';
import { attentionLayout, configFromHF, configToHF, llamaConfig, modelSize, ropeInvFreq } from '../../src/nn/config.js';
import { InputError, LlamaForCausalLM, refBackend, tensor } from '../../src/index.js';
import { loadPretrained, savePretrained } from '../../src/node.js';

const json = (name: string): Record<string, unknown> =>
  JSON.parse(readFileSync(fixturePath(name, 'config.json'), 'utf8')) as Record<string, unknown>;
const refJson = (name: string): Record<string, unknown> =>
  JSON.parse(readFileSync(fixturePath(name, 'reference.json'), 'utf8')) as Record<string, unknown>;

describe('model families', () => {
  it('reads each family from its config.json: where the biases go, q/k norms, the window', () => {
    const q2 = configFromHF(json('qwen2-tied-bias'));
    assert.equal(q2.modelType, 'qwen2');
    assert.deepEqual(attentionLayout(q2), { qkvBias: true, oBias: false, qkNorm: false });
    assert.equal(q2.slidingWindow, null, 'use_sliding_window false: no window, whatever sliding_window says');
    assert.equal(q2.tieWordEmbeddings, true);
    const q3 = configFromHF(json('qwen3-qknorm-yarn'));
    assert.deepEqual(attentionLayout(q3), { qkvBias: false, oBias: false, qkNorm: true });
    assert.equal(q3.headDim, 24);
    const m = configFromHF(json('mistral-window'));
    assert.deepEqual(attentionLayout(m), { qkvBias: false, oBias: false, qkNorm: false });
    assert.equal(m.slidingWindow, 5);
    assert.equal(configFromHF(json('hf-llama-tiny')).modelType, 'llama');
  });

  it("takes each family's config-class defaults for keys a file leaves out", () => {
    const base = { vocab_size: 300, hidden_size: 64, intermediate_size: 96, num_hidden_layers: 1, num_attention_heads: 4 };
    assert.equal(configFromHF({ ...base, model_type: 'qwen3' }).headDim, 128, 'Qwen3Config head_dim=128');
    assert.equal(configFromHF({ ...base, model_type: 'qwen2' }).headDim, 16);
    assert.equal(configFromHF({ ...base, model_type: 'mistral' }).slidingWindow, 4096, 'MistralConfig sliding_window=4096');
    assert.equal(configFromHF({ ...base, model_type: 'mistral', sliding_window: null }).slidingWindow, null);
    assert.equal(configFromHF({ ...base, model_type: 'qwen2' }).bosTokenId, null);
    assert.equal(configFromHF({ ...base, model_type: 'llama' }).bosTokenId, 1);
    // keys a family's class never reads are ignored as transformers ignores them
    assert.equal(configFromHF({ ...base, model_type: 'mistral', attention_bias: true, mlp_bias: true }).attentionBias, false);
    assert.equal(configFromHF({ ...base, model_type: 'qwen2', attention_bias: false }).attentionBias, true);
  });

  it('refuses what it cannot compute, naming it and what is supported', () => {
    const base = json('qwen2-tied-bias');
    assert.throws(() => configFromHF({ ...base, model_type: 'phi3' }),
      (e: unknown) => e instanceof InputError && /model_type "phi3" is not supported; supported LLaMA-architecture families: "llama", "mistral", "qwen2", "qwen3"/.test(e.message));
    assert.throws(() => configFromHF({ ...base, use_sliding_window: true }), /use_sliding_window.*not supported.*set use_sliding_window to false/);
    assert.throws(() => configFromHF({ ...base, layer_types: ['full_attention', 'sliding_attention'] }), /sliding-window attention on some layers/);
    assert.throws(() => configFromHF({ ...base, rope_scaling: { rope_type: 'dynamic', factor: 2 } }),
      /rope_scaling.rope_type "dynamic" \(dynamic NTK\) is not supported.*Supported: 'default', 'linear', 'llama3', 'yarn'/);
    assert.throws(() => configFromHF({ ...base, rope_scaling: { rope_type: 'longrope', factor: 2 } }), /"longrope" \(Phi-3\) is not supported/);
    const tiny = { vocabSize: 10, hiddenSize: 8, intermediateSize: 8, numHiddenLayers: 1, numAttentionHeads: 2 };
    assert.throws(() => llamaConfig({ ...tiny, modelType: 'mistral', attentionBias: true }), /mistral model has no attention biases/);
    assert.throws(() => llamaConfig({ ...tiny, modelType: 'qwen2', attentionBias: false }), /qwen2 model always has biases on q\/k\/v/);
    assert.throws(() => llamaConfig({ ...tiny, modelType: 'qwen3', mlpBias: true }), /qwen3 model has no MLP biases/);
    assert.throws(() => llamaConfig({ ...tiny, slidingWindow: 4 }), /llama model here has full causal attention.*model_type "mistral"/);
    assert.throws(() => llamaConfig({ ...tiny, modelType: 'mistral', slidingWindow: 0 }), /sliding_window must be a positive integer/);
    assert.throws(() => llamaConfig({ ...tiny, modelType: 'gpt2' as never }), /model_type "gpt2" is not supported/);
  });

  it('YaRN: float32 frequencies equal the PyTorch reference exactly, cos/sin scaled by 0.1 ln(factor) + 1', () => {
    const c = configFromHF(json('qwen3-qknorm-yarn'));
    assert.equal(c.ropeScaling?.ropeType, 'yarn');
    const { invFreq, attentionScaling } = ropeInvFreq(c, { float32: true });
    assert.deepEqual(Array.from(invFreq), refJson('qwen3-qknorm-yarn').rope_inv_freq_float32);
    assert.equal(attentionScaling, 0.1 * Math.log(4) + 1);
    // the ramp is fractional between its ends: neither every frequency divided by 4 nor none
    const plain = ropeInvFreq({ ...c, ropeScaling: null }, { float32: true }).invFreq;
    const ratios = Array.from(invFreq, (f, j) => plain[j]! / f);
    assert.ok(ratios.some((r) => r > 1.01 && r < 3.99), `ratios ${ratios}`);
    // attention_factor given, mscale ratio, factor derived from the context lengths (transformers 5)
    const yarn = (extra: Record<string, unknown>) => configFromHF({ ...json('qwen3-qknorm-yarn'),
      rope_scaling: { rope_type: 'yarn', factor: 4, original_max_position_embeddings: 256, ...extra } });
    assert.equal(ropeInvFreq(yarn({ attention_factor: 1.5 })).attentionScaling, 1.5);
    assert.equal(ropeInvFreq(yarn({ mscale: 2, mscale_all_dim: 1 })).attentionScaling, (0.2 * Math.log(4) + 1) / (0.1 * Math.log(4) + 1));
    const derived = configFromHF({ ...json('qwen3-qknorm-yarn'), rope_scaling: { rope_type: 'yarn', original_max_position_embeddings: 256 } });
    assert.equal(derived.ropeScaling?.ropeType === 'yarn' && derived.ropeScaling.factor, 1024 / 256);
  });

  for (const name of ['qwen2-tied-bias', 'qwen3-qknorm-yarn', 'mistral-window', 'llama-mha-bias-llama3']) {
    it(`${name}: config.json written back is the family's own and reads back equal`, () => {
      const c = configFromHF(json(name));
      const out = configToHF(c);
      const src = json(name);
      assert.deepEqual(out.architectures, src.architectures);
      assert.equal(out.model_type, src.model_type);
      assert.deepEqual(configFromHF(JSON.parse(JSON.stringify(out))), c);
      if (c.modelType === 'qwen2') assert.ok(!('attention_bias' in out), 'Qwen2Config has no attention_bias');
      if (c.modelType === 'mistral') assert.equal(out.sliding_window, 5);
    });

    it(`${name}: modelSize counts what the model allocates`, () => {
      const c = configFromHF(json(name));
      const model = new LlamaForCausalLM(c, { backend: refBackend });
      assert.equal(modelSize(c).parameters, model.numParameters());
    });
  }

  it('generate samples only ids below vocabLimit (a padded vocabulary), and refuses a limit outside [1, V]', async () => {
    const m = await loadPretrained(fixturePath('qwen2-tied-bias'), { backend: refBackend });
    const prompt = tensor(Int32Array.from([3, 9, 27]), [1, 3], 'int32', refBackend);
    const free = Array.from(await (await m.generate(prompt, { maxNewTokens: 12, temperature: 0 })).data()).slice(3);
    assert.ok(free.some((id) => id >= 60), `the unlimited continuation uses ids above 60: ${free}`);
    const limited = Array.from(await (await m.generate(prompt, { maxNewTokens: 12, temperature: 1.5, seed: 4, vocabLimit: 60 })).data()).slice(3);
    assert.ok(limited.every((id) => id < 60), `${limited}`);
    await assert.rejects(() => m.generate(prompt, { vocabLimit: 0 }), (e: unknown) => e instanceof InputError && /vocabLimit must be an integer in \[1, 180\]/.test(e.message));
    await assert.rejects(() => m.generate(prompt, { vocabLimit: 181 }), InputError);
  });

  it('savePretrained → loadPretrained keeps the family (a Qwen3 model stays a Qwen3ForCausalLM)', async () => {
    const m = await loadPretrained(fixturePath('qwen3-qknorm-yarn'), { backend: refBackend });
    const dir = mkdtempSync(join(tmpdir(), 'llamatrain-family-'));
    await savePretrained(m, dir);
    const written = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    assert.deepEqual(written.architectures, ['Qwen3ForCausalLM']);
    const back = await loadPretrained(dir, { backend: refBackend });
    assert.deepEqual(back.config, m.config);
    for (const [n, p] of m.namedParameters()) {
      assert.deepEqual(Array.from(await [...back.namedParameters()].find(([k]) => k === n)![1].data()), Array.from(await p.data()), n);
    }
    assert.ok([...m.namedParameters()].some(([n]) => n === 'model.layers.0.self_attn.q_norm.weight'));
  });
});
