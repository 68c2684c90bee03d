// LoRA in PEFT's format: parity with a float64 PyTorch reference (tools/pyref/make_lora_fixture.py, PEFT's
// formulas) on the llama-tied-gqa4 checkpoint; frozen base (no gradients, no optimizer state, no head-gradient
// GEMMs in the fused loss); save → load → merge round trips; PEFT's file format and clear errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync, cpSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AdamW, type Backend, LlamaForCausalLM, PeftModel, SGD, getPeftModel, linearCrossEntropy, parseSafetensors, refBackend,
  serializeSafetensors, tensor,
} from '../../src/index.js';
import { loadPretrained } from '../../src/node.js';
import { refKernels } from '../../src/backends/ref/kernels.js';
import { registerWasmBackend, shutdownWasmBackend } from '../../src/backends/wasm/index.js';
import { fixturePath, relErr, relL2 } from '../helpers.js';
import { InputError } from '../../src/core/errors.js';

const BASE = fixturePath('llama-tied-gqa4'), LORA = fixturePath('lora-tied-gqa4');
const ref = parseSafetensors(readFileSync(join(LORA, 'reference.safetensors'))).tensors;
const batch = parseSafetensors(readFileSync(join(BASE, 'reference.safetensors'))).tensors;
const tmp = () => mkdtempSync(join(tmpdir(), 'llamatrain-lora-'));

function inputs(be: Backend) {
  const t = (k: string) => { const r = batch.get(k)!; return tensor(r.data, r.shape, 'int32', be); };
  return { ids: t('input_ids'), attentionMask: t('attention_mask'), labels: t('labels') };
}

async function parity(be: Backend, dtype: 'float32' | 'float64', lossTol: number, gradTol: number): Promise<void> {
  const model = await loadPretrained(BASE, { backend: be, dtype });
  const peft = await PeftModel.fromPretrained(model, LORA, { isTrainable: true }); // the adapter folder in PEFT's format
  const { ids, attentionMask, labels } = inputs(be);
  for (const fusedLoss of [false, true]) {
    peft.zeroGrad();
    const { loss } = peft.forward(ids, { attentionMask, labels, fusedLoss });
    const l = await loss!.item(), want = ref.get('loss')!.data[0]!;
    assert.ok(Math.abs(l - want) <= lossTol, `${dtype} ${fusedLoss ? 'fused' : 'unfused'}: loss ${l} vs PyTorch ${want}`);
    loss!.backward();
    let n = 0;
    for (const [name, p] of peft.namedParameters()) {
      const err = relL2(await p.grad!.data(), ref.get(`grad.${name}`)!.data);
      assert.ok(err <= gradTol, `${dtype}: gradient of ${name}: rel ${err}`);
      n++;
    }
    assert.equal(n, 18, '3 layers × (q_proj, v_proj, down_proj) × (A, B)');
    for (const p of model.parameters()) assert.equal(p.grad, null, 'the base gets no gradient');
  }
}

test('LoRA parity with the float64 PyTorch reference: loss and every adapter gradient (fused and unfused)', async () => {
  await parity(refBackend, 'float64', 1e-12, 1e-10);
  await parity(refBackend, 'float32', 1e-5, 1e-4);
});

test('LoRA parity on the wasm backend (float32)', async () => {
  const wasm = await registerWasmBackend({ threads: 2 });
  try {
    await parity(wasm, 'float32', 1e-5, 1e-4);
  } finally {
    await shutdownWasmBackend();
  }
});

test('mergeAndUnload: W + scaling·B·A equals the reference, and the merged model gives the adapted logits', async () => {
  const model = await loadPretrained(BASE, { dtype: 'float64' });
  const peft = await PeftModel.fromPretrained(model, LORA);
  const { ids, attentionMask } = inputs(refBackend);
  const adapted = await peft.forward(ids, { attentionMask }).logits!.data();
  assert.ok(relErr(adapted, ref.get('logits')!.data) <= 1e-10, 'adapted logits = PyTorch logits');
  const merged = peft.mergeAndUnload();
  assert.equal(merged, model);
  for (const [k, w] of ref) {
    if (!k.startsWith('merged.')) continue;
    const name = k.slice('merged.'.length);
    const p = [...merged.namedParameters()].find(([n]) => n === name)![1];
    assert.ok(relErr(await p.data(), w.data) <= 1e-12, `merged ${name}`);
  }
  const after = await merged.forward(ids, { attentionMask }).logits!.data();
  assert.ok(relErr(after, adapted) <= 1e-12, 'merged logits = adapted logits');
  assert.ok(merged.parameters().every((p) => p.requiresGrad), 'the merged model is trainable again');
});

test('getPeftModel: PEFT init (A uniform ±1/√in, B zero: the output is the base model\'s), only adapters train', async () => {
  const model = await loadPretrained(BASE);
  const { ids, attentionMask, labels } = inputs(refBackend);
  const before = await model.forward(ids, { attentionMask }).logits!.data();
  const baseWeights = await Promise.all(model.parameters().map((p) => p.data()));
  const peft = getPeftModel(model, { r: 4, loraAlpha: 16, targetModules: ['q_proj', 'k_proj', 'o_proj'], seed: 3 });
  const names = [...peft.namedParameters()].map(([n]) => n);
  assert.equal(names.length, 3 * 3 * 2);
  assert.equal(names[0], 'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight');
  for (const [name, p] of peft.namedParameters()) {
    const d = await p.data();
    if (name.endsWith('lora_B.weight')) assert.ok(d.every((x) => x === 0), `${name} starts at zero`);
    else {
      const bound = 1 / Math.sqrt(p.shape[1]!);
      assert.ok(d.every((x) => Math.abs(x) <= bound) && d.some((x) => x !== 0), `${name} in ±${bound}`);
    }
  }
  assert.deepEqual(await peft.forward(ids, { attentionMask }).logits!.data(), before, 'B = 0: the base model\'s logits exactly');
  const { trainable, total } = peft.numParameters();
  assert.equal(trainable, peft.parameters().reduce((n, p) => n + p.size, 0));
  assert.equal(total, trainable + model.numParameters());
  const opt = new AdamW(peft.parameters(), { lr: 1e-2 });
  for (let s = 0; s < 3; s++) {
    const { loss } = peft.forward(ids, { attentionMask, labels, fusedLoss: true });
    loss!.backward();
    opt.step();
    opt.zeroGrad();
  }
  const after = await Promise.all(model.parameters().map((p) => p.data()));
  after.forEach((w, i) => assert.deepEqual(w, baseWeights[i], 'the frozen base never changes'));
  assert.ok((await peft.forward(ids, { attentionMask }).logits!.data()).some((x, i) => x !== before[i]), 'the adapters learned');
  const sd = await opt.stateDict();
  assert.equal(Object.keys(sd.state).length, 18, 'optimizer state for the adapters only');
});

test('save → load → merge round trip: a trained adapter reloads onto a fresh base with the same logits; the files are PEFT\'s', async () => {
  const { ids, attentionMask, labels } = inputs(refBackend);
  const peft = getPeftModel(await loadPretrained(BASE), { r: 2, loraAlpha: 4, targetModules: ['v_proj', 'up_proj'], seed: 1 });
  const opt = new SGD(peft.parameters(), { lr: 0.5 });
  for (let s = 0; s < 2; s++) { peft.forward(ids, { attentionMask, labels }).loss!.backward(); opt.step(); opt.zeroGrad(); }
  const logits = await peft.forward(ids, { attentionMask }).logits!.data();
  const dir = tmp();
  await peft.savePretrained(dir);
  const cfg = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8'));
  assert.equal(cfg.peft_type, 'LORA');
  assert.equal(cfg.r, 2);
  assert.equal(cfg.lora_alpha, 4);
  assert.deepEqual(cfg.target_modules, ['up_proj', 'v_proj']);
  const keys = [...parseSafetensors(readFileSync(join(dir, 'adapter_model.safetensors'))).tensors.keys()];
  assert.ok(keys.includes('base_model.model.model.layers.1.mlp.up_proj.lora_B.weight'), keys.join(', '));
  const again = await PeftModel.fromPretrained(await loadPretrained(BASE), dir);
  assert.ok(relErr(await again.forward(ids, { attentionMask }).logits!.data(), logits) <= 1e-6, 'reloaded adapter, same logits');
  const merged = again.mergeAndUnload();
  assert.ok(relErr(await merged.forward(ids, { attentionMask }).logits!.data(), logits) <= 1e-5, 'merged, same logits');
});

test('rsLoRA scales by α/√r; a frozen head computes no weight gradient in the fused loss', async () => {
  const dir = tmp();
  cpSync(LORA, dir, { recursive: true });
  const cfg = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8'));
  writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({ ...cfg, use_rslora: true }));
  const model = await loadPretrained(BASE, { dtype: 'float64' });
  const w0 = await model.model.layers[0]!.selfAttn.qProj.weight.data();
  const merged = (await PeftModel.fromPretrained(model, dir)).mergeAndUnload();
  const w1 = await merged.model.layers[0]!.selfAttn.qProj.weight.data();
  const plain = ref.get('merged.model.layers.0.self_attn.q_proj.weight')!.data; // W + (α/r)·BA
  const r = cfg.r as number, alpha = cfg.lora_alpha as number;
  const ratio = (alpha / Math.sqrt(r)) / (alpha / r);
  for (let i = 0; i < w0.length; i += 97) {
    assert.ok(Math.abs((w1[i]! - w0[i]!) - ratio * (plain[i]! - w0[i]!)) <= 1e-12, `rsLoRA delta at ${i}`);
  }
  // the kernel: weightGrad false → no dWeight (the [V, C] GEMMs are skipped), the same dHidden
  const N = 5, C = 4, V = 7;
  const h = Float64Array.from({ length: N * C }, (_, i) => Math.sin(i)), w = Float64Array.from({ length: V * C }, (_, i) => Math.cos(i));
  const t = Int32Array.from([1, 2, -100, 6, 0]);
  const args = { N, C, V, ignoreIndex: -100, labelSmoothing: 0, zLoss: 0, softcap: 0, chunkSize: 2 };
  const both = refKernels.linearCrossEntropy(h, w, t, { ...args, weightGrad: true }, { scale: 1 }, 'float64');
  const hOnly = refKernels.linearCrossEntropy(h, w, t, { ...args, weightGrad: false }, { scale: 1 }, 'float64');
  assert.equal(hOnly.dWeight, null);
  assert.deepEqual(hOnly.dHidden, both.dHidden);
  // the op: a frozen head gets no .grad, the hidden states get theirs
  const H = tensor(h, [N, C], 'float64').requireGrad(), W = tensor(w, [V, C], 'float64');
  linearCrossEntropy(H, W, tensor(t, [N], 'int32')).backward();
  assert.equal(W.grad, null);
  assert.ok(H.grad);
});

test('clear errors: unknown target modules, an adapter for another model, missing or unused tensors, a non-LoRA config', async () => {
  const model = () => loadPretrained(BASE);
  assert.throws(() => getPeftModel(new LlamaForCausalLM({ vocabSize: 16, hiddenSize: 8, intermediateSize: 16, numHiddenLayers: 1,
    numAttentionHeads: 2 }), { targetModules: ['query'] }), /targetModules \["query"\] match no Linear of the model; its Linear modules are down_proj, gate_proj, k_proj, o_proj, q_proj, up_proj, v_proj/);
  assert.throws(() => getPeftModel(new LlamaForCausalLM({ vocabSize: 16, hiddenSize: 8, intermediateSize: 16, numHiddenLayers: 1,
    numAttentionHeads: 2 }), { r: 0 }), /r must be an integer ≥ 1/);
  const cfg = JSON.parse(readFileSync(join(LORA, 'adapter_config.json'), 'utf8'));
  const weights = new Uint8Array(readFileSync(join(LORA, 'adapter_model.safetensors')));
  assert.throws(() => PeftModel.fromAdapterFiles(new LlamaForCausalLM({ vocabSize: 16, hiddenSize: 8, intermediateSize: 16,
    numHiddenLayers: 3, numAttentionHeads: 2 }), cfg, weights, 'x'), /model\.layers\.0\.self_attn\.q_proj has lora_A \[4, 96\] and lora_B \[128, 4\], the model and r=4 need \[4, 8\] and \[8, 4\] \(is the adapter for this base model\?\)/);
  assert.throws(() => PeftModel.fromAdapterFiles(new LlamaForCausalLM({ vocabSize: 16, hiddenSize: 8, intermediateSize: 16,
    numHiddenLayers: 1, numAttentionHeads: 2 }), { ...cfg, peft_type: 'IA3' }, weights, 'x'), /expected a PEFT LoRA config \(peft_type "LORA"\), found "IA3"/);
  const m = await model();
  const tensors = [...parseSafetensors(weights).tensors];
  const without = serializeSafetensors(tensors.filter(([k]) => !k.endsWith('layers.0.self_attn.q_proj.lora_B.weight')));
  assert.throws(() => PeftModel.fromAdapterFiles(m, cfg, without, 'x'),
    /base_model\.model\.model\.layers\.0\.self_attn\.q_proj\.lora_B\.weight is missing/);
  const extra = serializeSafetensors([...tensors, ['base_model.model.model.layers.0.mlp.nope.lora_A.weight', tensors[0]![1]]]);
  assert.throws(() => PeftModel.fromAdapterFiles(m, cfg, extra, 'x'), /1 tensors match no Linear of the model \(first: base_model\.model\.model\.layers\.0\.mlp\.nope\.lora_A\.weight\)/);
});

test('the Trainer trains a PeftModel: adapters only (clipping and AdamW over them), evaluate works, the base stays', async () => {
  const { ListSource, randomBatches } = await import('../train/util.js');
  const { Trainer, evaluate } = await import('../../src/index.js');
  const model = new LlamaForCausalLM({ vocabSize: 48, hiddenSize: 16, intermediateSize: 32, numHiddenLayers: 2, numAttentionHeads: 4,
    numKeyValueHeads: 2, tieWordEmbeddings: true, initializerRange: 0.1 }, { seed: 2 });
  const base = await Promise.all(model.parameters().map((p) => p.data()));
  const peft = getPeftModel(model, { r: 4, loraAlpha: 8, targetModules: 'all-linear', seed: 5 });
  const batches = randomBatches(3, 2, 9, 48, 4);
  const trainer = new Trainer({ model: peft, optimizer: new AdamW(peft.parameters(), { lr: 5e-2 }), train: new ListSource(batches),
    gradAccumSteps: 2, maxSteps: 13, clipGradNorm: 1.0 });
  const losses: number[] = [];
  trainer.on('step', (m) => losses.push(m.loss));
  await trainer.train();
  // steps 1 and 13 see the same micro-batches (3 batches, 2 per step)
  assert.ok(losses[12]! < losses[0]! - 0.2, `the loss falls: ${losses.map((l) => l.toFixed(3))}`);
  const after = await Promise.all(model.parameters().map((p) => p.data()));
  after.forEach((w, i) => assert.deepEqual(w, base[i]));
  const ev = await evaluate(peft, batches);
  assert.ok(Number.isFinite(ev.loss) && ev.tokens > 0);
});

test('hostile adapter folders: NaN weights, unsupported PEFT keys, configs that disagree with the tensors, bad values — each an InputError', async () => {
  const cfg = JSON.parse(readFileSync(join(LORA, 'adapter_config.json'), 'utf8'));
  const weights = new Uint8Array(readFileSync(join(LORA, 'adapter_model.safetensors')));
  const tensors = [...parseSafetensors(weights).tensors];
  const m = await loadPretrained(BASE);
  const refused = (config: unknown, w: Uint8Array, re: RegExp) =>
    assert.throws(() => PeftModel.fromAdapterFiles(m, config, w, 'dir'), (e: unknown) => e instanceof InputError && re.test((e as Error).message));
  // NaN in lora_B of one module (before: accepted; chat printed an empty reply)
  const nan = tensors.map(([k, t]) => [k, k.endsWith('layers.1.mlp.down_proj.lora_B.weight') ? { ...t, data: Float32Array.from(t.data, (v, i) => (i === 3 ? NaN : v)) } : t] as [string, typeof t]);
  refused(cfg, serializeSafetensors(nan), /dir\/adapter_model\.safetensors: tensor "base_model\.model\.model\.layers\.1\.mlp\.down_proj\.lora_B\.weight" holds 1 NaN or infinite value\(s\) .*first at element 3/);
  // keys that change what the adapter computes: refused by name (empty values are PEFT's defaults and fine)
  refused({ ...cfg, alpha_pattern: { q_proj: 16 } }, weights, /dir\/adapter_config\.json: alpha_pattern \(per-module alphas\) is not supported/);
  refused({ ...cfg, rank_pattern: { 'layers.0.self_attn.q_proj': 2 } }, weights, /adapter_config\.json: rank_pattern \(per-module ranks\) is not supported/);
  refused({ ...cfg, modules_to_save: ['lm_head'] }, weights, /modules_to_save .* is not supported/);
  // target_modules that disagree with the tensors: a module the file adapts but the config does not name, and one it names that the file lacks
  refused({ ...cfg, target_modules: ['q_proj', 'v_proj'] }, weights, /holds adapters for 3 module\(s\) that target_modules \["q_proj","v_proj"\] does not name \(first: model\.layers\.0\.mlp\.down_proj\)/);
  refused({ ...cfg, target_modules: ['q_proj', 'v_proj', 'down_proj', 'k_proj'] }, weights, /names 3 module\(s\) that adapter_model\.safetensors has no lora_A\/lora_B for \(first: model\.layers\.0\.self_attn\.k_proj\)/);
  const noLayer2 = serializeSafetensors(tensors.filter(([k]) => !k.includes('layers.2.self_attn.q_proj')));
  refused(cfg, noLayer2, /first: model\.layers\.2\.self_attn\.q_proj/);
  // PEFT's other target forms: a regular expression over the whole path, layers_to_transform
  assert.ok(PeftModel.fromAdapterFiles(m, { ...cfg, target_modules: '.*\\.(q_proj|v_proj|down_proj)' }, weights, 'dir'));
  refused({ ...cfg, target_modules: '.*\\.(q_proj|v_proj)' }, weights, /does not name/);
  refused({ ...cfg, layers_to_transform: [0, 1] }, weights, /does not name .*first: model\.layers\.2\./);
  // values of the wrong type or range
  refused({ ...cfg, lora_dropout: -1 }, weights, /lora_dropout must be a number in \[0, 1\), found -1/);
  refused({ ...cfg, r: '4' }, weights, /r must be an integer ≥ 1 \(a JSON number\), found "4"/);
  refused({ ...cfg, lora_alpha: '8' }, weights, /lora_alpha must be a number > 0, found "8"/);
  refused({ ...cfg, use_rslora: 'yes' }, weights, /use_rslora must be true or false/);
  refused({ ...cfg, target_modules: [] }, weights, /target_modules must be a non-empty list/);
  refused(null, weights, /expected a PEFT LoRA config/);
});

test('misuse: getPeftModel on a PeftModel or with no targets, saving after mergeAndUnload, fromPretrained is for inference unless isTrainable', async () => {
  const tiny = () => new LlamaForCausalLM({ vocabSize: 16, hiddenSize: 8, intermediateSize: 16, numHiddenLayers: 1, numAttentionHeads: 2 });
  const isInput = (re: RegExp) => (e: unknown) => e instanceof InputError && re.test((e as Error).message);
  const peft = getPeftModel(tiny(), { r: 2 });
  // before: TypeError: model.namedModules is not a function
  assert.throws(() => getPeftModel(peft as unknown as LlamaForCausalLM), isInput(/already has LoRA adapters \(it is a PeftModel\); pass the base model \(peft\.model\)/));
  // before: accepted with 0 adapters
  assert.throws(() => getPeftModel(tiny(), { targetModules: [] }), isInput(/targetModules must be a non-empty list/));
  assert.throws(() => getPeftModel(tiny(), { loraDropout: -1 }), isInput(/loraDropout must be a number in \[0, 1\), got -1/));
  assert.throws(() => getPeftModel(tiny(), { r: '4' as unknown as number }), isInput(/r must be an integer ≥ 1, got "4"/));
  // before: savePretrained after mergeAndUnload wrote an adapter with 0 tensors
  const dir = tmp();
  peft.mergeAndUnload();
  await assert.rejects(peft.savePretrained(join(dir, 'a')), isInput(/merged into the base model by mergeAndUnload\(\)/));
  assert.ok(!existsSync(join(dir, 'a')), 'nothing written');
  // fromPretrained: eval mode and no gradients (before: dropout active, adapters trainable); isTrainable keeps training possible
  const cfg = JSON.parse(readFileSync(join(LORA, 'adapter_config.json'), 'utf8'));
  const withDropout = tmp();
  cpSync(LORA, withDropout, { recursive: true });
  writeFileSync(join(withDropout, 'adapter_config.json'), JSON.stringify({ ...cfg, lora_dropout: 0.5 }));
  const base = await loadPretrained(BASE);
  base.train();
  const inference = await PeftModel.fromPretrained(base, withDropout);
  assert.equal(inference.training, false);
  assert.ok(inference.parameters().every((p) => !p.requiresGrad));
  const { ids, attentionMask } = inputs(refBackend);
  const a = await inference.forward(ids, { attentionMask }).logits!.data(), b = await inference.forward(ids, { attentionMask }).logits!.data();
  assert.deepEqual(a, b, 'no dropout: the same logits twice');
  const trainable = await PeftModel.fromPretrained(await loadPretrained(BASE), withDropout, { isTrainable: true });
  assert.ok(trainable.parameters().every((p) => p.requiresGrad));
});
