// `llamatrain sft`: supervised fine-tuning on conversations with the loss on the assistant's replies only — LoRA
// adapters (PEFT's format) on a frozen Hugging Face model, a full fine-tune of one, or a new small model trained
// from scratch on the conversations. Same run directory as `train`: metrics.jsonl, loss.svg, samples.txt,
// resumable checkpoints/, and the result (adapter/ in PEFT's format and model/, the merged HF checkpoint).
// `llamatrain chat`: talk to a model (and adapter) through its chat template, tokens streamed as they come.

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { RNG, tensor } from '../core/index.js';
import {
  ArrayDataset, type ChatExample, DataLoader, type EncodedChat, type PackedBatch, type PackedRow, encodeChat, packConversations,
  packedCollate,
} from '../data/index.js';
import { readChatJsonl } from '../data/node.js';
import { loadAdapter, saveAdapter } from '../io/adapters.js';
import { loadAdapterCheckpoint, loadCheckpoint, saveAdapterCheckpoint, saveCheckpoint } from '../io/checkpoint.js';
import { loadPretrained, savePretrained } from '../io/pretrained.js';
import { storedHalfDtype } from '../io/half-weights.js';
import { LlamaForCausalLM } from '../nn/index.js';
import { AdamW, LRScheduler, decayGroups, warmupCosine } from '../optim/index.js';
import { PeftModel, getPeftModel } from '../peft/index.js';
import { type ChatMessage, defaultEndOfTurn, trainByteLevelBPE } from '../tokenizer/index.js';
import { type HFTokenizer, loadTokenizerFile, saveTokenizer } from '../tokenizer/node.js';
import { type EvalResult, type TrainableModel, Trainer, type TrainingState, evaluate } from '../train/index.js';
import { type CommandOptions, type Schema, type Values, UsageError, helpText, parseAndCheck, parseCommandLine, refuseShapeWithFrom } from './options.js';
import {
  CollapsedRun, divergedFinal, type Log, RunClock, RunReport, endStoppedRun, fmt, note, rowsHash, showSample, stamp, trainWithCheckpoints,
  watchForCollapse,
} from './run.js';
import { RunDirectory, checkHasCheckpoint, checkResumeChanges, checkResumeSteps, compareForResume, readRunConfig, writeRunConfig } from './rundir.js';
import { backendOptions, batchesOf, checkDataFile, modelDirOf, runOptions, selectBackend, toBatch, tokenByteLengths, warnVocabShortfall } from './shared.js';

/** The small conversation file the package ships (arithmetic Q&A), used when --data is empty. */
export const EXAMPLE_CHAT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'data', 'chat.jsonl');

/** The ceiling of --vocab-size=0: the BPE merges until no pair repeats or it has this many tokens, without a warning. */
const AUTO_VOCAB = 1024;

/** What sft's --data takes, for errors: its default, the shape of a line. */
const SFT_DATA_ADVICE = 'sft reads conversations: a JSONL file with one {"messages": [{"role": "user", "content": "…"}, ' +
  '{"role": "assistant", "content": "…"}]} (or {"prompt": "…", "completion": "…"}) per line; leave --data out for the example data/chat.jsonl';

export const sftSchema = {
  data: { type: 'string', default: '', help: "conversations: a JSONL file with a 'messages' list (or 'prompt' and 'completion') per line; empty: the package's example (data/chat.jsonl)" },
  from: { type: 'string', default: '', help: 'fine-tune this Hugging Face model directory, run directory (its model/) or Hub id org/name[@revision] (downloaded into the Hugging Face cache); it needs config.json, safetensors weights, tokenizer.json with a chat template; empty: a new small model and a ChatML BPE trained on the conversations' },
  lora: { type: 'boolean', default: true, help: 'with --from: train LoRA adapters on the frozen model (--no-lora: every weight); a new model always trains every weight' },
  loraR: { type: 'int', default: 16, min: 1, help: 'LoRA rank r' },
  loraAlpha: { type: 'number', default: 32, min: 0, minExclusive: true, help: 'LoRA α (scaling α/r)' },
  loraDropout: { type: 'number', default: 0, min: 0, max: 1, maxExclusive: true, help: 'dropout on the adapters\' input while training' },
  targetModules: { type: 'string', default: 'q_proj,k_proj,v_proj,o_proj', help: "comma-separated Linear names to adapt, or 'all-linear'" },
  validationFraction: { type: 'number', default: 0.1, min: 0, minExclusive: true, max: 1, maxExclusive: true, help: 'share of the conversations held out for validation (the last ones)' },
  vocabSize: { type: 'int', default: 0, min: 0, max: 2 ** 21, help: `vocabulary of the BPE trained for a new model (at least 259); 0: as many tokens as the conversations give, up to ${AUTO_VOCAB}` },
  dim: { type: 'int', default: 128, min: 2, help: 'hidden size C of a new model' },
  layers: { type: 'int', default: 4, min: 1, help: 'decoder layers L of a new model' },
  heads: { type: 'int', default: 4, min: 1, help: 'attention heads NH of a new model' },
  kvHeads: { type: 'int', default: 2, min: 1, help: 'key/value heads NKV of a new model' },
  seqLen: { type: 'int', default: 256, min: 2, help: 'tokens per row T (whole conversations are packed into rows; longer ones are cut)' },
  batchSize: { type: 'int', default: 8, min: 1, help: 'rows per micro-batch B' },
  gradAccum: { type: 'int', default: 1, min: 1, help: 'micro-batches per optimizer step' },
  gradientCheckpointing: { type: 'boolean', default: false, help: 'recompute each decoder layer\'s activations in backward instead of keeping them: less memory for long rows, about one more forward pass per step, the same numbers' },
  steps: { type: 'int', default: 150, min: 1, help: 'optimizer steps' },
  lr: { type: 'number', default: 0, min: 0, help: 'peak learning rate; 0 = 3e-3 for a new model, 1e-3 for LoRA, 1e-4 for a full fine-tune' },
  warmup: { type: 'int', default: -1, min: -1, help: 'linear warmup steps (-1: 10, or a tenth of --steps when that is fewer, so a short run needs no flag)' },
  minLrRatio: { type: 'number', default: 0.1, min: 0, max: 1, help: 'cosine decay floor, as a fraction of lr' },
  weightDecay: { type: 'number', default: 0.01, min: 0, help: 'AdamW decoupled weight decay (matrices and adapters)' },
  clip: { type: 'number', default: 1.0, min: 0, help: 'global gradient-norm clip (0 = off)' },
  evalEvery: { type: 'int', default: 25, min: 0, help: 'evaluate (and sample a reply) every N steps (0 = only the final evaluation)' },
  evalBatches: { type: 'int', default: 4, min: 1, help: 'validation batches of the periodic evaluations (the final one uses all)' },
  sampleTokens: { type: 'int', default: 48, min: 0, help: 'tokens generated per sample reply' },
  temperature: { type: 'number', default: 0, min: 0, help: 'sampling temperature of the sample replies (0 = greedy)' },
  checkpointEvery: { type: 'int', default: 50, min: 0, help: 'save a resumable checkpoint every N steps (0 = only at the end)' },
  out: { type: 'string', default: '', help: 'run directory, new or empty (default runs/sft-<date-time-ms>-<random>)' },
  ...runOptions,
  ...backendOptions,
} satisfies Schema;

export type SftOptions = Values<typeof sftSchema>;
/** sft's options: `sft chat.jsonl` is `sft --data=chat.jsonl`; checkSftOptions relates options to each other. */
export const sftCommand: CommandOptions<typeof sftSchema> = { name: 'sft', schema: sftSchema, positional: 'data', check: checkSftOptions };
export const sftHelp = helpText('sft', 'Fine-tune on conversations with the loss on the assistant\'s replies only (LoRA on --from, or a new small model).', sftSchema,
  'llamatrain sft [<conversations.jsonl>] [--config file.json] [--key=value ...]');

/** Ids of the tokens that end a turn (generation stops at them). */
function endOfTurnIds(tok: HFTokenizer): number[] {
  return defaultEndOfTurn(tok).map((t) => tok.tokenToId(t)).filter((x): x is number => x !== undefined);
}

/** A conversation's prompt: its messages up to (not including) the first assistant reply. */
function promptOf(ex: ChatExample): ChatMessage[] {
  const i = ex.messages.findIndex((m) => m.role === 'assistant');
  return ex.messages.slice(0, i < 0 ? ex.messages.length : i);
}

/** The tokens of one encoded conversation with what the loss counts shown in ⟦ ⟧ (labels ≠ -100 after the first). */
export function showCounted(tok: HFTokenizer, enc: EncodedChat): string {
  let out = '', inside = false;
  for (let i = 0; i < enc.inputIds.length; i++) {
    const counted = i > 0 && enc.labels[i] !== -100;
    if (counted !== inside) { out += counted ? '⟦' : '⟧'; inside = counted; }
    out += tok.decode([enc.inputIds[i]!]);
  }
  return inside ? out + '⟧' : out;
}

/** Options that can never change on --resume (the checkpoint's model, adapters and tokenizer are what they are). */
const FIXED_ON_RESUME = ['from', 'lora', 'loraR', 'loraAlpha', 'targetModules', 'vocabSize', 'dim', 'layers', 'heads', 'kvHeads'] as const;
/** Options that change the data or the batch geometry: a resume refuses them unless --force. */
const FORCEABLE_ON_RESUME = ['data', 'validationFraction', 'seqLen', 'batchSize', 'gradAccum', 'seed'] as const;

async function resolveOptions(argv: string[]): Promise<{ o: SftOptions; saved: Record<string, unknown> | null }> {
  const parse = { positionalKey: sftCommand.positional };
  let { values: o } = parseCommandLine(sftSchema, argv, parse);
  let saved: Record<string, unknown> | null = null;
  if (o.resume) {
    if (o.out && resolve(o.out) !== resolve(o.resume)) {
      throw new UsageError(`--out ${o.out} cannot be combined with --resume: a resumed run goes on in its own directory (${o.resume}); ` +
        'drop --out (to branch a run off, copy its directory and resume the copy)');
    }
    saved = readRunConfig(o.resume, 'sft_config.json', 'sft');
    o = { ...parseCommandLine(sftSchema, argv, { ...parse, base: { values: saved, from: join(o.resume, 'sft_config.json') } }).values, resume: o.resume, out: o.resume };
    checkResumeChanges(o.resume, 'sft_config.json', compareForResume(saved, o, FIXED_ON_RESUME, FORCEABLE_ON_RESUME), o.force);
  } else if (o.force) {
    throw new UsageError('--force goes with --resume (it lets a resumed run change its data or batch geometry)');
  }
  checkSftOptions(o);
  // the files the options name, before any work (a run directory given as --from stands for its model/)
  if (o.data === 'brown') throw new UsageError(`--data brown: the Brown corpus is plain text, for train; ${SFT_DATA_ADVICE}`);
  checkDataFile(o.data, '--data', SFT_DATA_ADVICE);
  if (o.from) {
    o.from = await modelDirOf(o.from, '--from');
    if (!o.resume) refuseShapeWithFrom(sftSchema, o, ['dim', 'layers', 'heads', 'kvHeads'], o.from);
    if (!o.resume) { // the conversations are rendered with --from's own chat template: it must have one
      if (!existsSync(join(o.from, 'tokenizer.json'))) throw new UsageError(`--from ${o.from}: no tokenizer.json there; sft needs the model's tokenizer with a chat template`);
      if (!loadTokenizerFile(o.from).chatTemplate) {
        throw new UsageError(`--from ${o.from}: the tokenizer has no chat template (tokenizer_config.json 'chat_template' or chat_template.jinja); ` +
          'use an instruct model, or add a template');
      }
    }
  }
  return { o, saved };
}

/** Checks that relate options to each other (each option's type and range are the schema's, checked while parsing). */
function checkSftOptions(o: SftOptions): void {
  if (o.vocabSize !== 0 && o.vocabSize < 259) {
    throw new UsageError(`--vocab-size: must be 0 (as many as the conversations give, up to ${AUTO_VOCAB}) or at least 259 (the 256 bytes and ChatML's 3 special tokens), got ${o.vocabSize}`);
  }
  if (o.targetModules.split(',').every((t) => t.trim() === '')) {
    throw new UsageError(`--target-modules: give at least one Linear name (e.g. q_proj,v_proj) or 'all-linear', got ${JSON.stringify(o.targetModules)}`);
  }
  if (o.warmup >= o.steps && o.steps > 1) throw new UsageError(`--warmup (${o.warmup}) must be smaller than --steps (${o.steps})`);
  if (!o.from && o.heads % o.kvHeads !== 0) throw new UsageError(`--kv-heads (${o.kvHeads}) must divide --heads (${o.heads})`);
  if (!o.from && (o.dim % o.heads !== 0 || (o.dim / o.heads) % 2 !== 0)) throw new UsageError(`--dim (${o.dim}) / --heads (${o.heads}) must be an even integer`);
}

export async function runSft(argv: string[], log: Log = (s) => process.stdout.write(s + '\n')): Promise<{ final: EvalResult; dir: string }> {
  const { o, saved } = await resolveOptions(argv);
  return RunDirectory.run({ command: 'sft', out: o.out, resume: o.resume, defaultName: `sft-${stamp()}` }, note, // the Ctrl-C message: a diagnostic
    (rd, stop) => sftIn(o, rd.dir, rd.resuming, saved, stop, log));
}

async function sftIn(o: SftOptions, dir: string, resuming: boolean, saved: Record<string, unknown> | null, stop: AbortController, log: Log): Promise<{ final: EvalResult; dir: string }> {
  if (resuming) checkHasCheckpoint(dir, 'sft');
  const backend = await selectBackend(o.backend, o.threads, note, o.verbose);
  const useLora = o.from !== '' && o.lora;

  // ---- data and tokenizer
  const dataPath = o.data || EXAMPLE_CHAT;
  const conversations = readChatJsonl(dataPath);
  if (conversations.length < 2) throw new UsageError(`${dataPath}: ${conversations.length} conversation(s); need at least 2 (training and validation)`);
  const nVal = Math.max(1, Math.round(conversations.length * o.validationFraction));
  const trainSet = conversations.slice(0, conversations.length - nVal), valSet = conversations.slice(conversations.length - nVal);
  if (!resuming) {
    if (o.from) {
      for (const f of ['tokenizer.json', 'tokenizer_config.json', 'chat_template.jinja']) {
        if (existsSync(join(o.from, f))) writeFileSync(join(dir, f), readFileSync(join(o.from, f)));
      }
    } else {
      const texts = trainSet.flatMap((c) => c.messages.map((m) => (typeof m.content === 'string' ? m.content : '')));
      const bpe = trainByteLevelBPE(texts, { vocabSize: o.vocabSize || AUTO_VOCAB, chat: true });
      if (o.vocabSize > 0) warnVocabShortfall(bpe.vocabSize, o.vocabSize, note); // 0 asked for no more than the text gives
      saveTokenizer(bpe, dir);
    }
  }
  const tok = loadTokenizerFile(dir);
  if (!tok.chatTemplate) {
    throw new UsageError(`${o.from || dir}: the tokenizer has no chat template (tokenizer_config.json 'chat_template' or chat_template.jinja); ` +
      'use an instruct model\'s tokenizer, or add a template');
  }
  const encode = (set: ChatExample[]) => set.map((ex) => encodeChat(tok, ex));
  const padId = tok.padId ?? tok.eosId ?? 0;
  const train = packConversations(encode(trainSet), { seqLen: o.seqLen, padId });
  const val = packConversations(encode(valSet), { seqLen: o.seqLen, padId });
  const r = train.report;
  log(`data: ${dataPath}: ${r.conversations} training conversations → ${train.rows.length} rows × ${o.seqLen} tokens ` +
    `(${r.kept} kept, ${r.truncated} cut to --seq-len, ${r.droppedNoTarget} dropped with no assistant token left; ${r.targets} of ` +
    `${r.tokens} tokens counted by the loss); ${val.report.kept} validation conversations`);
  // the loss counts only the assistant's replies: a conversation without one has nothing to learn, whatever --seq-len
  const noReply = trainSet.filter((ex) => !ex.messages.some((m) => m.role === 'assistant')).length;
  if (noReply === trainSet.length) {
    throw new UsageError(`${dataPath}: no training conversation has an assistant message (role "assistant"); sft learns the assistant's replies, ` +
      'so each conversation needs at least one, e.g. {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}');
  }
  if (noReply > 0) note(`  note: ${noReply} conversations have no assistant message and teach nothing; they are dropped`);
  if (r.droppedNoTarget > noReply) {
    note(`  note: ${r.droppedNoTarget - noReply} conversations had no assistant reply within ${o.seqLen} tokens; raise --seq-len to keep them`);
  }
  if (train.rows.length < o.batchSize) throw new UsageError(`${train.rows.length} training rows: fewer than one batch of ${o.batchSize}; lower --batch-size`);
  log(`what the loss sees (⟦counted⟧, the rest is context), first training conversation:\n${showCounted(tok, encodeChat(tok, trainSet[0]!))}`);

  // ---- model
  let model: LlamaForCausalLM, peft: PeftModel | null = null, state: TrainingState | null = null;
  const onWarning = (m: string) => note(`llamatrain: ${m}`);
  if (resuming && useLora) {
    const ck = await loadAdapterCheckpoint(join(dir, 'checkpoints'), await loadPretrained(o.from, { weights: 'as-stored' }), { onWarning });
    model = ck.peft.model; peft = ck.peft; state = ck.state;
  } else if (resuming) {
    const ck = await loadCheckpoint(join(dir, 'checkpoints'), {}, { onWarning });
    model = ck.model; state = ck.state;
  } else if (o.from) {
    // LoRA leaves the base frozen: a BF16/F16 checkpoint keeps its 2-byte storage (outside the wasm memory on the
    // wasm/native backends); a full fine-tune trains every weight in float32
    model = await loadPretrained(o.from, { weights: useLora ? 'as-stored' : 'float32' });
    if (useLora) {
      const targets = o.targetModules === 'all-linear' ? 'all-linear' : o.targetModules.split(',').map((s) => s.trim()).filter(Boolean);
      peft = getPeftModel(model, { r: o.loraR, loraAlpha: o.loraAlpha, loraDropout: o.loraDropout, targetModules: targets, seed: o.seed });
    }
  } else {
    model = new LlamaForCausalLM({
      vocabSize: tok.vocabSize, hiddenSize: o.dim, intermediateSize: 32 * Math.ceil((8 * o.dim) / 3 / 32), numHiddenLayers: o.layers,
      numAttentionHeads: o.heads, numKeyValueHeads: o.kvHeads, tieWordEmbeddings: true, maxPositionEmbeddings: o.seqLen,
      bosTokenId: tok.bosId, eosTokenId: tok.eosId, padTokenId: null, rmsNormEps: 1e-5,
    }, { seed: o.seed });
  }
  if (model.config.vocabSize < tok.vocabSize) {
    throw new UsageError(`the model's vocab_size (${model.config.vocabSize}) is smaller than its tokenizer's (${tok.vocabSize}); the tokenizer and the model of --from must belong together`);
  }
  const lr = o.lr || (!o.from ? 3e-3 : useLora ? 1e-3 : 1e-4);
  const trainable: TrainableModel = peft ?? model;
  const optimizer = new AdamW(peft ? [{ params: peft.parameters(), weightDecay: o.weightDecay }] : decayGroups(model.namedParameters(), o.weightDecay),
    { lr, betas: [0.9, 0.95], eps: 1e-8 });
  const warmupSteps = o.warmup >= 0 ? o.warmup : Math.min(10, Math.floor(o.steps / 10));
  const scheduler = new LRScheduler(optimizer, warmupCosine({ warmupSteps, totalSteps: o.steps, minLrRatio: o.minLrRatio }));
  const bytesOf = tokenByteLengths(tok);
  const dataHash = rowsHash(train.rows);
  const loader = new DataLoader<PackedRow, PackedBatch>({ dataset: new ArrayDataset(train.rows), batchSize: o.batchSize, shuffle: true,
    seed: o.seed, dropLast: true, collate: packedCollate });
  const common = {
    optimizer, scheduler, gradAccumSteps: o.gradAccum, maxSteps: o.steps, clipGradNorm: o.clip > 0 ? o.clip : null, seed: o.seed,
    gradientCheckpointing: o.gradientCheckpointing,
    evalEvery: o.evalEvery, evalData: () => batchesOf(val.rows, o.batchSize, bytesOf, o.evalBatches),
    train: { next: () => toBatch(loader.nextBatch(), bytesOf), state: () => loader.state(), loadState: (s: unknown) => loader.loadState(s as ReturnType<typeof loader.state>) },
  };
  const trainer: Trainer<TrainableModel> = peft
    ? new Trainer<PeftModel>({ ...common, model: peft, checkpointWriter: saveAdapterCheckpoint }) as unknown as Trainer<TrainableModel>
    : new Trainer<LlamaForCausalLM>({ ...common, model, checkpointWriter: saveCheckpoint }) as unknown as Trainer<TrainableModel>;
  let forced: Record<string, [unknown, unknown]> = {};
  if (state && saved) {
    checkResumeSteps(dir, 'sft', o.steps, state.step);
    const changes = compareForResume(saved, o, FIXED_ON_RESUME, FORCEABLE_ON_RESUME);
    const recorded = state.extra?.dataHash;
    const dataChanged = typeof recorded === 'string' && recorded !== dataHash;
    if (dataChanged && !o.force) {
      throw new UsageError(`--resume ${dir}: the training data changed since the checkpoint: the rows made from --data ${dataPath} differ from those ` +
        'the run trained on (was the file edited?); restore it, pass --force to go on with the new data (the data loader starts a new pass), or start a new run with --out');
    }
    forced = { ...changes.changed, ...(dataChanged ? { rows: [recorded, dataHash] as [unknown, unknown] } : {}) };
    const loaderMoved = dataChanged || Object.keys(changes.changed).some((k) => k !== 'gradAccum');
    if (Object.keys(forced).length > 0) {
      note(`llamatrain: --force: resuming with ${[...changes.forceable, ...(dataChanged ? ['other training rows'] : [])].join(', ')}` +
        (loaderMoved ? '; the data loader starts a new pass over the data' : ''));
    }
    if (loaderMoved) state.data = loader.state(); // the saved position is one in the old data
  }
  writeRunConfig(dir, 'sft_config.json', o);
  if (state) trainer.loadState(state);
  // the dropout masks' RNG goes on where the checkpoint left it (a resumed run draws the masks an unbroken one would)
  if (peft && Array.isArray(state?.extra?.dropoutRng)) peft.setDropoutRngState(state.extra.dropoutRng as number[]);
  const counts = peft ? peft.numParameters() : { trainable: model.numParameters(), total: model.numParameters() };
  log(`llamatrain sft: ${o.from ? `${o.from}` : 'a new model'} (C=${model.config.hiddenSize}, L=${model.config.numHiddenLayers}, V=${model.config.vocabSize}), ` +
    `${peft ? `LoRA r=${o.loraR} α=${o.loraAlpha} on ${peft.config.target_modules.join(', ')}` : 'every weight'}: ` +
    `${counts.trainable.toLocaleString('en')} trainable of ${counts.total.toLocaleString('en')} parameters; lr ${lr}; backend ${backend}; ` +
    `run directory ${dir}${state ? `; resuming at step ${state.step}` : ''}`);

  // ---- training
  const endIds = endOfTurnIds(tok);
  const rng = new RNG(o.seed + 1); // the samples' RNG is part of the checkpoint
  if (Array.isArray(state?.extra?.sampleRng)) rng.setState(state.extra.sampleRng as number[]);
  const clock = new RunClock(Number(state?.extra?.seconds ?? 0), Number(state?.extra?.segments ?? 0) + 1);
  const probe = valSet[0]!;
  const sample = async () => {
    const ids = tok.applyChatTemplate(promptOf(probe), { addGenerationPrompt: true, tokenize: true }).inputIds;
    const out = await model.generate(tensor(Int32Array.from(ids), [1, ids.length], 'int32', model.backend),
      { maxNewTokens: o.sampleTokens, temperature: o.temperature, topK: 40, seed: rng.nextU32(), eosTokenId: endIds,
        vocabLimit: Math.min(tok.vocabSize, model.config.vocabSize) });
    const reply = Array.from(await out.data()).slice(ids.length);
    return `${promptOf(probe).map((m) => `${m.role}: ${typeof m.content === 'string' ? m.content : ''}`).join(' | ')} → assistant: ${tok.decode(reply, { skipSpecialTokens: true })}`;
  };
  const sampling = o.temperature === 0 ? 'greedy' : `temperature ${o.temperature}, top-k 40`;
  const report = new RunReport({ dir, log, steps: o.steps, progress: o.progress, sampling }, sample, `sft — ${dataPath.split('/').pop()}`);
  if (state) {
    report.keepHistoryUpTo(state.step);
    report.metric({ type: 'resume', step: state.step, segment: clock.segment, ...(Object.keys(forced).length > 0 ? { forced } : {}) });
  }
  let savedStep = state?.step ?? 0;
  const save = async () => {
    const st = await trainer.state();
    const full = { ...st, extra: { ...st.extra, sampleRng: rng.getState(), ...(peft ? { dropoutRng: peft.dropoutRngState() } : {}), dataHash, seconds: clock.seconds(), segments: clock.segment } };
    const ck = peft ? await saveAdapterCheckpoint(join(dir, 'checkpoints'), peft, full, {}) : await saveCheckpoint(join(dir, 'checkpoints'), model, full, {});
    savedStep = trainer.step;
    return ck;
  };
  report.follow(trainer);
  watchForCollapse(trainer, model.config.vocabSize, stop, `--lr=${lr}${o.lr === 0 ? ' (the default of this mode)' : ''}`);
  await trainWithCheckpoints(trainer, o.steps, o.checkpointEvery, save, stop.signal);
  report.stopProgress();
  if (stop.signal.aborted && (trainer.step < o.steps || stop.signal.reason instanceof CollapsedRun)) {
    await endStoppedRun({ reason: stop.signal.reason, command: 'sft', dir, step: trainer.step, steps: o.steps, savedStep, save, report,
      writeSummary: (status) => writeFileSync(join(dir, 'summary.json'), JSON.stringify({ status, steps: trainer.step, ofSteps: o.steps,
        seconds: Math.round(clock.seconds()), segments: clock.segment, trainableParameters: counts.trainable }, null, 2) + '\n') });
  }
  if (trainer.step > savedStep) await save();

  // ---- results: validation loss on the assistant tokens, the adapter (PEFT) and the merged model (HF)
  const final = await evaluate(trainable, batchesOf(val.rows, o.batchSize, bytesOf));
  report.metric({ type: 'final', step: trainer.step, valLoss: final.loss, perplexity: final.perplexity, tokens: final.tokens });
  const diverged = divergedFinal(final.loss, model.config.vocabSize, `--lr=${lr}`);
  if (diverged) {
    report.writePlot();
    writeFileSync(join(dir, 'summary.json'), JSON.stringify({ status: 'diverged', steps: trainer.step, valLoss: final.loss,
      seconds: Math.round(clock.seconds()), segments: clock.segment }, null, 2) + '\n');
    throw diverged;
  }
  report.writePlot();
  const finalSample = await report.sample();
  if (peft) await saveAdapter(peft, join(dir, 'adapter'));
  // the merged model in the base checkpoint's dtype (BF16 stays BF16), written one weight at a time: an adapted
  // weight is W + scaling·B·A computed when the writer reaches it, so a large base is never widened whole
  const baseHalf = o.from ? await storedHalfDtype(o.from) : null;
  await savePretrained(peft ? peft.model : model, join(dir, 'model'), {
    dtype: baseHalf === 'bfloat16' ? 'BF16' : baseHalf === 'float16' ? 'F16' : 'F32',
    values: peft ? (name) => peft.mergedWeight(name) : undefined,
  });
  for (const f of ['tokenizer.json', 'tokenizer_config.json', 'chat_template.jinja']) {
    if (existsSync(join(dir, f))) writeFileSync(join(dir, 'model', f), readFileSync(join(dir, f)));
  }
  const summary = { status: 'finished', steps: trainer.step, valLoss: final.loss, perplexity: final.perplexity, validationTargets: final.tokens,
    lora: peft ? { r: o.loraR, alpha: o.loraAlpha, targetModules: peft.config.target_modules } : null,
    trainableParameters: counts.trainable, seconds: Math.round(clock.seconds()), segments: clock.segment };
  writeFileSync(join(dir, 'summary.json'), JSON.stringify(summary, null, 2) + '\n');
  log(showSample(`final sample (${sampling}):`, finalSample));
  log(`final validation (${final.tokens} assistant tokens): loss ${fmt(final.loss)} | perplexity ${fmt(final.perplexity, 2)}`);
  log(`done in ${summary.seconds} s — ${peft ? `adapter (PEFT): ${join(dir, 'adapter')} | ` : ''}model: ${join(dir, 'model')} | ` +
    `metrics: ${join(dir, 'metrics.jsonl')} | loss curve: ${join(dir, 'loss.svg')} | chat: llamatrain chat --model=${join(dir, 'model')}`);
  return { final, dir };
}

// ---- chat --------------------------------------------------------------------------------------------------

export const chatSchema = {
  model: { type: 'string', default: '', help: 'a Hugging Face model directory with a tokenizer and chat template, an sft run directory (its model/), or a Hub id org/name[@revision] (downloaded into the Hugging Face cache)' },
  adapter: { type: 'string', default: '', help: 'a LoRA adapter directory (PEFT format) to apply to --model' },
  system: { type: 'string', default: '', help: 'a system message to start the conversation with' },
  maxNewTokens: { type: 'int', default: 128, min: 1, help: 'tokens per reply at most' },
  temperature: { type: 'number', default: 0.7, min: 0, help: 'sampling temperature (0 = greedy)' },
  topK: { type: 'int', default: 40, min: 0, help: 'sample among the k most likely tokens (0 = all)' },
  seed: { type: 'int', default: 0, min: 0, max: 2 ** 32 - 1, help: 'sampling seed' },
  ...backendOptions,
} satisfies Schema;
export const chatCommand: CommandOptions<typeof chatSchema> = { name: 'chat', schema: chatSchema };
export const chatHelp = helpText('chat', 'Chat with a model through its chat template (one line per message; an empty line or Ctrl-D ends).', chatSchema);

/** Interactive chat: each input line is a user message; the reply streams token by token. */
export async function runChat(argv: string[], write: (s: string) => void = (s) => process.stdout.write(s),
                              input: NodeJS.ReadableStream = process.stdin): Promise<void> {
  const { values: o } = parseAndCheck(chatCommand, argv);
  if (!o.model) throw new UsageError('chat needs --model=<dir> (a model directory with tokenizer files, or an sft run directory)');
  o.model = await modelDirOf(o.model, '--model');
  if (o.adapter && !existsSync(join(o.adapter, 'adapter_config.json'))) {
    throw new UsageError(`--adapter ${o.adapter}: no adapter_config.json there (give a LoRA adapter directory in PEFT's format, e.g. an sft run's adapter/)`);
  }
  await selectBackend(o.backend, o.threads, note, o.verbose); // stdout carries only the conversation
  const tok = loadTokenizerFile(o.model);
  if (!tok.chatTemplate) throw new UsageError(`${o.model}: the tokenizer has no chat template; chat needs one (tokenizer_config.json 'chat_template')`);
  const base = await loadPretrained(o.model, { weights: 'as-stored' }); // chat: a BF16/F16 checkpoint stays half
  const model = o.adapter ? (await loadAdapter(base, o.adapter)).model : base;
  const endIds = endOfTurnIds(tok);
  const messages: ChatMessage[] = o.system ? [{ role: 'system', content: o.system }] : [];
  const rng = new RNG(o.seed);
  const tty = (input as { isTTY?: boolean }).isTTY === true;
  const rl = createInterface({ input, terminal: false });
  if (tty) write('> ');
  try {
    for await (const line of rl) {
      if (line.trim() === '') break;
      await answer(line);
      if (tty) write('> ');
    }
  } finally {
    // Leaving the loop does not close the interface, and an open terminal stdin keeps the process alive: an empty
    // line would end the chat but not the command. Closing it pauses the input, which lets the process exit.
    rl.close();
    (input as { pause?: () => void }).pause?.();
  }

  async function answer(line: string): Promise<void> {
    messages.push({ role: 'user', content: line });
    // the prompt and the reply must fit the model's context: older turns go first (the system message stays);
    // a message that does not fit on its own is refused, and the chat goes on
    const ctx = model.config.maxPositionEmbeddings;
    const room = Math.min(o.maxNewTokens, Math.max(1, Math.floor(ctx / 4))); // what a reply needs at least
    let ids = tok.applyChatTemplate(messages, { addGenerationPrompt: true, tokenize: true }).inputIds;
    let dropped = 0;
    const first = o.system ? 1 : 0;
    while (ids.length + room > ctx && messages.length - first > 1) {
      messages.splice(first, messages[first + 1]?.role === 'assistant' ? 2 : 1);
      dropped++;
      ids = tok.applyChatTemplate(messages, { addGenerationPrompt: true, tokenize: true }).inputIds;
    }
    if (ids.length + room > ctx) {
      messages.pop();
      note(`llamatrain chat: this message is ${ids.length.toLocaleString('en-US')} tokens with the chat template; the model's context is ` +
        `${ctx.toLocaleString('en-US')} tokens and the reply needs ${room} of them: shorten the message (it was not sent)`);
      return;
    }
    if (dropped > 0) note(`llamatrain chat: the conversation outgrew the model's context (${ctx} tokens): the ${dropped} oldest turn(s) were left out`);
    const reply: number[] = [];
    let shown = '';
    write('assistant: ');
    await model.generate(tensor(Int32Array.from(ids), [1, ids.length], 'int32', model.backend), {
      maxNewTokens: Math.min(o.maxNewTokens, ctx - ids.length), temperature: o.temperature, topK: o.topK, seed: rng.nextU32(), eosTokenId: endIds,
      vocabLimit: Math.min(tok.vocabSize, model.config.vocabSize),
      onToken: (next) => {
        if (endIds.includes(next[0]!)) return;
        reply.push(next[0]!);
        const text = tok.decode(reply, { skipSpecialTokens: true });
        if (!text.endsWith('\uFFFD')) { write(text.slice(shown.length)); shown = text; } // wait for the rest of a multi-byte character
      },
    });
    const text = tok.decode(reply, { skipSpecialTokens: true });
    write(`${text.slice(shown.length)}\n`);
    messages.push({ role: 'assistant', content: text });
  }
}
