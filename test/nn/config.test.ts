import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fixturePath } from '../helpers.js';
import { configFromHF, configToHF, llamaConfig, ropeInvFreq, type LlamaConfig } from '../../src/nn/config.js';

const fixtureJson = (): Record<string, unknown> =>
  JSON.parse(readFileSync(fixturePath('hf-llama-tiny', 'config.json'), 'utf8')) as Record<string, unknown>;

// A transformers 4.x style config.json (top-level rope_theta, rope_scaling), as Llama 3.1 checkpoints ship it.
const v4Json = (): Record<string, unknown> => ({
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  vocab_size: 128256,
  hidden_size: 4096,
  intermediate_size: 14336,
  num_hidden_layers: 32,
  num_attention_heads: 32,
  num_key_value_heads: 8,
  hidden_act: 'silu',
  max_position_embeddings: 131072,
  rms_norm_eps: 1e-5,
  rope_theta: 500000.0,
  rope_scaling: { factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 8192, rope_type: 'llama3' },
  bos_token_id: 128000,
  eos_token_id: [128001, 128008, 128009],
  tie_word_embeddings: false,
  torch_dtype: 'bfloat16',
  transformers_version: '4.43.0.dev0',
});

const tiny = { vocabSize: 256, hiddenSize: 64, intermediateSize: 176, numHiddenLayers: 2, numAttentionHeads: 4 };

describe('configFromHF', () => {
  it('reads the transformers 5 fixture config.json', () => {
    const c = configFromHF(fixtureJson());
    const expected: LlamaConfig = {
      modelType: 'llama',
      vocabSize: 256,
      hiddenSize: 64,
      intermediateSize: 176,
      numHiddenLayers: 2,
      numAttentionHeads: 4,
      numKeyValueHeads: 2,
      headDim: 16,
      rmsNormEps: 1e-5,
      ropeTheta: 10000,
      ropeScaling: null,
      maxPositionEmbeddings: 256,
      tieWordEmbeddings: false,
      attentionBias: false,
      mlpBias: false,
      slidingWindow: null,
      initializerRange: 0.02,
      bosTokenId: 1,
      eosTokenId: 2,
      padTokenId: null,
      hiddenAct: 'silu',
    };
    assert.deepEqual(c, expected);
  });

  it('reads a transformers 4 config with top-level rope_theta and llama3 rope_scaling', () => {
    const c = configFromHF(v4Json());
    assert.equal(c.ropeTheta, 500000);
    assert.equal(c.numKeyValueHeads, 8);
    assert.equal(c.headDim, 128);
    assert.equal(c.rmsNormEps, 1e-5);
    assert.deepEqual(c.eosTokenId, [128001, 128008, 128009]);
    assert.deepEqual(c.ropeScaling, {
      ropeType: 'llama3',
      factor: 8,
      lowFreqFactor: 1,
      highFreqFactor: 4,
      originalMaxPositionEmbeddings: 8192,
    });
  });

  it('reads legacy "type" and linear scaling; "default" means no scaling', () => {
    assert.deepEqual(configFromHF({ ...v4Json(), rope_scaling: { type: 'linear', factor: 2.0 } }).ropeScaling, {
      ropeType: 'linear',
      factor: 2,
    });
    assert.equal(configFromHF({ ...v4Json(), rope_scaling: { rope_type: 'default' } }).ropeScaling, null);
    const v5 = fixtureJson();
    v5.rope_parameters = { rope_theta: 500000, rope_type: 'linear', factor: 4 };
    const c = configFromHF(v5);
    assert.equal(c.ropeTheta, 500000);
    assert.deepEqual(c.ropeScaling, { ropeType: 'linear', factor: 4 });
  });

  it('fills HF defaults for missing optional keys', () => {
    const c = configFromHF({
      vocab_size: 100,
      hidden_size: 48,
      intermediate_size: 96,
      num_hidden_layers: 1,
      num_attention_heads: 6,
      head_dim: null,
    });
    assert.equal(c.numKeyValueHeads, 6); // HF: missing num_key_value_heads → multi-head attention
    assert.equal(c.headDim, 8);
    assert.equal(c.rmsNormEps, 1e-6);
    assert.equal(c.ropeTheta, 10000);
    assert.equal(c.ropeScaling, null);
    assert.equal(c.maxPositionEmbeddings, 2048);
    assert.equal(c.tieWordEmbeddings, false);
    assert.equal(c.bosTokenId, 1);
    assert.equal(c.eosTokenId, 2);
    assert.equal(c.padTokenId, null);
  });

  it('rejects heads that do not divide, naming both numbers and the file', () => {
    const json = { ...fixtureJson(), num_attention_heads: 8, num_key_value_heads: 3, head_dim: 8 };
    assert.throws(
      () => configFromHF(json),
      /^InputError: config\.json: num_key_value_heads \(3\) must divide num_attention_heads \(8\).*use one of 1, 2, 4, 8/,
    );
    assert.throws(() => configFromHF(json, 'models/x/config.json'), /^InputError: models\/x\/config\.json: num_key_value_heads \(3\)/);
  });

  it('rejects unsupported rope types, naming the type and the supported ones', () => {
    const v5 = fixtureJson();
    v5.rope_parameters = { rope_theta: 10000, rope_type: 'ntk-by-parts', factor: 4 };
    assert.throws(() => configFromHF(v5), /rope_parameters\.rope_type "ntk-by-parts" is not supported; supported: 'default', 'linear', 'llama3', 'yarn'/);
    assert.throws(
      () => configFromHF({ ...v4Json(), rope_scaling: { type: 'dynamic', factor: 2 } }),
      /rope_scaling\.rope_type "dynamic" \(dynamic NTK\) is not supported/,
    );
  });

  it('rejects other models, activations, missing keys and inconsistent RoPE settings', () => {
    assert.throws(() => configFromHF({ ...fixtureJson(), model_type: 'gemma' }),
      /model_type "gemma" is not supported; supported LLaMA-architecture families: "llama", "mistral", "qwen2", "qwen3"/);
    assert.throws(() => configFromHF({ ...fixtureJson(), hidden_act: 'gelu' }), /hidden_act "gelu" is not supported; LLaMA uses "silu"/);
    const { hidden_size: _, ...noHidden } = fixtureJson();
    assert.throws(() => configFromHF(noHidden), /config\.json: missing required key "hidden_size"/);
    assert.throws(() => configFromHF([1]), /config\.json: expected a JSON object/);
    assert.throws(
      () => configFromHF({ ...fixtureJson(), rope_theta: 500000 }),
      /rope_theta \(500000\) and rope_parameters\.rope_theta \(10000\) disagree/,
    );
    assert.throws(
      () => configFromHF({ ...v4Json(), rope_scaling: { rope_type: 'llama3', factor: 8 } }),
      /rope_scaling\.low_freq_factor is required for rope_type "llama3"/,
    );
    assert.throws(() => configFromHF({ ...fixtureJson(), num_hidden_layers: 2.5 }), /num_hidden_layers must be a positive integer, found 2.5/);
    assert.throws(() => configFromHF({ ...fixtureJson(), head_dim: 15, hidden_size: 60 }), /head_dim \(15\) must be even/);
    assert.throws(() => configFromHF({ ...fixtureJson(), rms_norm_eps: 0 }), /rms_norm_eps must be a finite number > 0, found 0/);
  });
});

describe('configToHF', () => {
  it('round-trips through configFromHF', () => {
    const configs = [
      configFromHF(fixtureJson()),
      configFromHF(v4Json()),
      llamaConfig({ ...tiny, ropeScaling: { ropeType: 'linear', factor: 2 }, tieWordEmbeddings: true, padTokenId: 0, eosTokenId: null }),
    ];
    for (const c of configs) {
      const json = JSON.parse(JSON.stringify(configToHF(c))); // through text, as it goes to disk
      assert.deepEqual(configFromHF(json), c);
    }
  });

  it('writes both the transformers 4 and 5 RoPE layouts', () => {
    const j = configToHF(configFromHF(v4Json()));
    assert.deepEqual(j.architectures, ['LlamaForCausalLM']);
    assert.equal(j.model_type, 'llama');
    assert.equal(j.rope_theta, 500000);
    const scaling = { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 };
    assert.deepEqual(j.rope_scaling, scaling);
    assert.deepEqual(j.rope_parameters, { rope_theta: 500000, ...scaling });
    assert.equal(j.torch_dtype, 'float32');
    assert.equal(j.dtype, 'float32');
    assert.equal(j.use_cache, true);
    assert.equal(j.hidden_act, 'silu');
    const plain = configToHF(configFromHF(fixtureJson()));
    assert.equal(plain.rope_scaling, null);
    assert.deepEqual(plain.rope_parameters, { rope_theta: 10000, rope_type: 'default' });
    assert.equal(plain.tie_word_embeddings, false);
  });
});

describe('llamaConfig', () => {
  it('fills defaults from the sizes', () => {
    const c = llamaConfig(tiny);
    assert.equal(c.numKeyValueHeads, 4);
    assert.equal(c.headDim, 16);
    assert.equal(c.rmsNormEps, 1e-6);
    assert.equal(c.hiddenAct, 'silu');
  });

  it('validates with messages in the config.json vocabulary', () => {
    assert.throws(
      () => llamaConfig({ ...tiny, numAttentionHeads: 8, numKeyValueHeads: 3, headDim: 8 }),
      /^InputError: config: num_key_value_heads \(3\) must divide num_attention_heads \(8\)/,
    );
    assert.throws(() => llamaConfig({ ...tiny, hiddenSize: 66 }), /hidden_size \(66\) is not divisible by num_attention_heads \(4\).*set head_dim/);
    assert.throws(() => llamaConfig({ ...tiny, vocabSize: 0 }), /vocab_size must be a positive integer, found 0/);
    assert.throws(() => llamaConfig({ ...tiny, ropeTheta: -1 }), /rope_theta must be a finite number > 0/);
    assert.throws(
      () =>
        llamaConfig({
          ...tiny,
          ropeScaling: { ropeType: 'llama3', factor: 8, lowFreqFactor: 4, highFreqFactor: 1, originalMaxPositionEmbeddings: 8192 },
        }),
      /high_freq_factor \(1\) must be greater than low_freq_factor \(4\)/,
    );
    assert.throws(() => llamaConfig({ ...tiny, numKVHeads: 2 } as never), /config: unknown field "numKVHeads"/);
    assert.throws(() => llamaConfig({ ...tiny, vocabSize: undefined } as never), /vocab_size is required/);
  });

  it('does not alias caller objects', () => {
    const scaling = { ropeType: 'linear' as const, factor: 2 };
    const eos = [1, 2];
    const c = llamaConfig({ ...tiny, ropeScaling: scaling, eosTokenId: eos });
    scaling.factor = 3;
    eos.push(3);
    assert.deepEqual(c.ropeScaling, { ropeType: 'linear', factor: 2 });
    assert.deepEqual(c.eosTokenId, [1, 2]);
  });
});

describe('ropeInvFreq', () => {
  const close = (actual: Float64Array, expected: number[], rel = 1e-14) => {
    assert.equal(actual.length, expected.length);
    expected.forEach((e, i) => assert.ok(Math.abs(actual[i]! - e) <= rel * Math.abs(e), `[${i}] ${actual[i]} vs ${e}`));
  };

  it('default: 1 / theta^(2j/d), checked against powers of the base', () => {
    // With theta = 10000 and d = 16, theta^(2j/16) = 10^(j/2): exact decimal values at even j.
    const { invFreq, attentionScaling } = ropeInvFreq(llamaConfig(tiny));
    assert.equal(attentionScaling, 1);
    close(invFreq, [0, 1, 2, 3, 4, 5, 6, 7].map((j) => 10 ** (-j / 2)));
  });

  it('linear scaling divides every frequency by the factor', () => {
    // Produced by /usr/bin/python3 (torch 1.13) running HF's _compute_default_rope_parameters in float64, / 4.
    const expected = [0.25, 0.07905694150420949, 0.025, 0.007905694150420948, 0.0025, 0.0007905694150420947, 0.00025, 7.905694150420948e-5];
    close(ropeInvFreq(llamaConfig({ ...tiny, ropeScaling: { ropeType: 'linear', factor: 4 } })).invFreq, expected);
  });

  it('llama3 matches HF _compute_llama3_parameters (all three frequency bands)', () => {
    // head_dim 32, theta 500000, factor 8, low 1, high 4, original context 8192. Produced by /usr/bin/python3
    // (torch 1.13) running HF transformers' _compute_llama3_parameters verbatim on a float64 inv_freq.
    // Indices 0-7 are kept (wavelength < 2048), 8 is blended, 9-15 are divided by 8 (wavelength > 8192).
    const expected = [
      1.0, 0.44036660267178046, 0.19392274474868576, 0.08539710028576561, 0.03760603093086393, 0.016560440080994446,
      0.0072926647372171085, 0.0032114459947525913, 0.0005248461609929547, 7.78465527393245e-5, 3.428102195952591e-5,
      1.509621717643313e-5, 6.647869871181236e-6, 2.9274998701761677e-6, 1.2891731721515574e-6, 5.677088100759837e-7,
    ];
    const cfg = llamaConfig({
      ...tiny,
      hiddenSize: 128,
      numAttentionHeads: 4,
      ropeTheta: 500000,
      ropeScaling: { ropeType: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 },
    });
    assert.equal(cfg.headDim, 32);
    close(ropeInvFreq(cfg).invFreq, expected);
  });
});
