// `llamatrain train`: trains a small LLaMA (defaults: the built-in Brown corpus, a byte-level BPE trained on it)
// with progress, metrics.jsonl, a loss-curve SVG and sample generations in the run directory.

import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { RNG, tensor } from '../core/index.js';
import { ArrayDataset, DataLoader, type PackedBatch, type PackedRow, packedCollate } from '../data/index.js';
import { loadPretrained, savePretrained } from '../io/pretrained.js';
import { loadCheckpoint, saveCheckpoint } from '../io/checkpoint.js';
import { LlamaForCausalLM } from '../nn/index.js';
import { AdamW, LRScheduler, Muon, type Optimizer, type Schedule, decayGroups, muonParamGroups, warmupCosine, wsd } from '../optim/index.js';
import { type TextTokenizer, trainByteLevelBPE } from '../tokenizer/index.js';
import { saveTokenizer } from '../tokenizer/node.js';
import { type BatchSource, type EvalResult, Trainer, type TrainingState, evaluate } from '../train/index.js';
import { type CompressorBaseline, startCompressorBaseline } from './compressor.js';
import { type Schema, type Values, UsageError, flag, helpText, parseCommandLine } from './options.js';
import { type Log, RunReport, fmt, stamp, trainWithCheckpoints } from './run.js';
import { backendOptions, batchesOf, loadTextData, loadTokenizerFrom, packTexts, selectBackend, toBatch, tokenByteLengths, tokenizerJsonPath } from './shared.js';

// The default recipe (issue 18; the sweep is in bench/RESULTS.md): Muon (lr 0.03, momentum 0.95, Nesterov, 5
// Newton–Schulz steps) for the hidden matrices and AdamW (lr 5e-3, betas 0.9/0.95, weight decay 0.1) for the tied
// embeddings and norms; 225 steps of 32 × 128 tokens (Muon's orthogonalisation costs the same per step, so fewer,
// larger batches); warmup 15, then constant, then a linear cooldown to 0 over the last 40% (WSD). It takes the wall time of
// the earlier recipe (240 steps took 1.01–1.06× its wall time end to end, hence 225) and ends near 2.1 bits per byte
// instead of 2.36. The earlier recipe, for comparison:
//   --optimizer=adamw --lr=3e-3 --batch-size=16 --steps=560 --warmup=40 --schedule=cosine --min-lr-ratio=0.1 --eval-every=70 --eval-batches=4 --checkpoint-every=280
export const trainSchema = {
  data: { type: 'string', default: 'brown', help: "training text: 'brown' (the built-in Brown corpus) or a .txt, .jsonl or .parquet file" },
  textField: { type: 'string', default: 'text', help: 'JSONL field / Parquet column that holds the text' },
  validationFraction: { type: 'number', default: 0.05, help: 'share of a file\'s documents held out for validation (Brown has a fixed split)' },
  tokenizer: { type: 'string', default: '', help: 'a tokenizer.json (or its directory); empty: train a byte-level BPE on the training text' },
  vocabSize: { type: 'int', default: 2048, help: 'vocabulary of the BPE trained when --tokenizer is empty' },
  from: { type: 'string', default: '', help: 'fine-tune this Hugging Face checkpoint directory instead of a new model' },
  dim: { type: 'int', default: 192, help: 'hidden size C of a new model' },
  layers: { type: 'int', default: 4, help: 'decoder layers L' },
  heads: { type: 'int', default: 6, help: 'attention heads NH' },
  kvHeads: { type: 'int', default: 2, help: 'key/value heads NKV (GQA); must divide heads' },
  ffn: { type: 'int', default: 0, help: 'SwiGLU width; 0 = the LLaMA rule (8/3·dim rounded up to 32)' },
  tie: { type: 'boolean', default: true, help: 'tie the LM head to the embeddings (saves V·C parameters)' },
  seqLen: { type: 'int', default: 128, help: 'tokens per row T (documents are packed into rows)' },
  batchSize: { type: 'int', default: 32, help: 'rows per micro-batch B (Muon likes larger batches: its orthogonalisation costs the same per step)' },
  gradAccum: { type: 'int', default: 1, help: 'micro-batches per optimizer step (gradient accumulation)' },
  steps: { type: 'int', default: 225, help: 'optimizer steps' },
  optimizer: { type: ['adamw', 'muon'], default: 'muon', help: "'muon': Muon for the hidden matrices, AdamW (--lr) for embeddings, head and norms; 'adamw': AdamW for all" },
  lr: { type: 'number', default: 5e-3, help: 'peak learning rate of AdamW (small models like it high)' },
  muonLr: { type: 'number', default: 0.03, help: "peak learning rate of Muon's matrices (--optimizer muon)" },
  muonMomentum: { type: 'number', default: 0.95, help: "Muon's momentum β (Nesterov)" },
  nsSteps: { type: 'int', default: 5, help: "Muon's Newton–Schulz iterations" },
  muonWeightDecay: { type: 'number', default: 0, help: "Muon's decoupled weight decay on the hidden matrices" },
  schedule: { type: ['cosine', 'wsd'], default: 'wsd', help: "learning-rate shape after warmup: 'cosine' to --min-lr-ratio, or 'wsd' (constant, then a linear cooldown over the last --cooldown of the steps)" },
  cooldown: { type: 'number', default: 0.4, help: "share of the steps spent in the final linear decay of --schedule wsd" },
  warmup: { type: 'int', default: 15, help: 'linear warmup steps' },
  minLrRatio: { type: 'number', default: 0, help: 'decay floor, as a fraction of the peak learning rates' },
  weightDecay: { type: 'number', default: 0.1, help: 'AdamW decoupled weight decay on matrices (none on norms; with --optimizer muon: on the embeddings/head)' },
  beta1: { type: 'number', default: 0.9, help: 'AdamW β1' },
  beta2: { type: 'number', default: 0.95, help: 'AdamW β2' },
  clip: { type: 'number', default: 1.0, help: 'global gradient-norm clip (0 = off)' },
  labelSmoothing: { type: 'number', default: 0, help: 'label smoothing ε of the training loss (eval reports plain NLL)' },
  zLoss: { type: 'number', default: 0, help: 'z-loss coefficient λ (λ·logsumexp² per token)' },
  evalEvery: { type: 'int', default: 30, help: 'evaluate (and sample) every N steps' },
  evalBatches: { type: 'int', default: 2, help: 'validation batches of the periodic evaluations (the final one uses all)' },
  samplePrompt: { type: 'string', default: 'The', help: 'prompt of the sample generations' },
  sampleTokens: { type: 'int', default: 32, help: 'tokens generated per sample' },
  temperature: { type: 'number', default: 0.8, help: 'sampling temperature of the samples' },
  checkpointEvery: { type: 'int', default: 120, help: 'save a resumable checkpoint every N steps (0 = only at the end)' },
  out: { type: 'string', default: '', help: 'run directory (default runs/<date-time>)' },
  resume: { type: 'string', default: '', help: 'continue the run in this directory from its latest checkpoint' },
  seed: { type: 'int', default: 0, help: 'seed of init, shuffling and sampling' },
  progress: { type: 'boolean', default: true, help: 'show a progress bar (on a terminal; otherwise log lines)' },
  baseline: { type: 'boolean', default: true, help: 'report what gzip -9 and brotli -q 11 make of the validation text (measured once per data set in a background process at the lowest priority, cached)' },
  ...backendOptions,
} satisfies Schema;

export type TrainOptions = Values<typeof trainSchema>;

export const trainHelp = helpText('train', 'Train a LLaMA model. With no options: a 2M-parameter model on the built-in Brown corpus (~3 min on 2 cores).', trainSchema);


/** What every stage of a run needs: its options, its directory, whether it continues an earlier run, the log. */
interface RunContext { o: TrainOptions; dir: string; resuming: boolean; log: Log }

/** The tokenized data of a run: the shuffled training loader, the validation rows, bytes per token (bits per byte). */
interface RunData {
  source: string;
  tok: TextTokenizer;
  bytesOf: Int32Array;
  trainRows: PackedRow[];
  valRows: PackedRow[];
  loader: DataLoader<PackedRow, PackedBatch>;
  /** The compressors' bits per byte on the same split (null: --no-baseline). */
  baseline: { result: () => CompressorBaseline | null } | null;
}

/** The loader as the Trainer's batch source (its epoch/position is what checkpoints store). */
function loaderSource<T>(loader: DataLoader<T, PackedBatch>, bytesOf: Int32Array): BatchSource {
  return {
    next: () => toBatch(loader.nextBatch(), bytesOf),
    state: () => loader.state(),
    loadState: (s) => loader.loadState(s as ReturnType<typeof loader.state>),
  };
}

export async function runTrain(argv: string[], log: Log = (s) => process.stdout.write(s + '\n')): Promise<{ final: EvalResult; dir: string }> {
  const o = resolveOptions(argv);
  const backend = await selectBackend(o.backend, o.threads, log);
  const run: RunContext = { o, dir: o.out || join('runs', stamp()), resuming: o.resume !== '', log };
  mkdirSync(run.dir, { recursive: true });
  writeFileSync(join(run.dir, 'train_config.json'), JSON.stringify(o, null, 2) + '\n');
  const t0 = Date.now();

  const data = await prepareData(run);
  const { model, state } = await buildModel(run, data.tok);
  const trainer = makeTrainer(o, model, data, state);
  log(`llamatrain: ${model.numParameters().toLocaleString('en')} parameters (C=${model.config.hiddenSize}, L=${model.config.numHiddenLayers}, ` +
    `NH=${model.config.numAttentionHeads}, NKV=${model.config.numKeyValueHeads}, V=${model.config.vocabSize}); ` +
    `data: ${data.source}, ${data.trainRows.length} train rows × ${o.seqLen} tokens, ${data.valRows.length} validation rows; ` +
    `backend: ${backend}; run directory: ${run.dir}` +
    (state ? `; resuming at step ${state.step}` : ''));

  const sampleRng = new RNG(o.seed + 1);
  const report = new RunReport({ dir: run.dir, log, steps: o.steps, progress: o.progress }, () => sampleText(o, model, data.tok, sampleRng), data.source);
  if (run.resuming) report.keepHistoryUpTo(state?.step ?? 0);
  report.follow(trainer);
  await trainWithCheckpoints(trainer, o.steps, o.checkpointEvery, run.dir);
  report.stopProgress();
  const final = await finishRun(run, model, trainer.step, data, report, t0);
  return { final, dir: run.dir };
}

/** The run's options: the command line, or on --resume the run's saved options with the command line on top. */
function resolveOptions(argv: string[]): TrainOptions {
  let { values: o } = parseCommandLine(trainSchema, argv);
  const resumeDir = o.resume;
  if (resumeDir) {
    // The run's saved options, overridden by what this command line states (e.g. a larger --steps).
    const saved = join(resumeDir, 'train_config.json');
    if (!existsSync(saved)) throw new UsageError(`--resume ${resumeDir}: no train_config.json there (is it a llamatrain run directory?)`);
    const { resume: _r, out: _o, ...savedValues } = JSON.parse(readFileSync(saved, 'utf8')) as Record<string, unknown>;
    o = { ...parseCommandLine(trainSchema, argv, { base: { values: savedValues, from: saved } }).values, resume: resumeDir, out: resumeDir };
  }
  checkOptions(o);
  return o;
}

/** Loads and tokenizes the text (training a BPE tokenizer on it unless one is given or resumed) into packed rows. */
async function prepareData({ o, dir, resuming }: RunContext): Promise<RunData> {
  const text = await loadTextData(o.data, o.textField, o.validationFraction);
  let tok: TextTokenizer;
  if (resuming || o.tokenizer) {
    tok = loadTokenizerFrom(resuming ? dir : o.tokenizer);
  } else {
    const bpe = trainByteLevelBPE(text.train, { vocabSize: o.vocabSize });
    saveTokenizer(bpe, dir);
    tok = bpe;
  }
  if (!resuming && o.tokenizer) writeFileSync(join(dir, 'tokenizer.json'), readFileSync(tokenizerJsonPath(o.tokenizer)));
  const bytesOf = tokenByteLengths(tok);
  const trainRows = packTexts(tok, text.train, o.seqLen);
  const valRows = packTexts(tok, text.validation, o.seqLen);
  const loader = new DataLoader({ dataset: new ArrayDataset(trainRows), batchSize: o.batchSize, shuffle: true, seed: o.seed, dropLast: true, collate: packedCollate });
  if (loader.length === 0) throw new UsageError(`the training split has ${trainRows.length} rows of ${o.seqLen} tokens: fewer than one batch of ${o.batchSize}; lower --batch-size or --seq-len`);
  const baseline = o.baseline ? startCompressorBaseline(text.train, text.validation) : null;
  return { source: text.source, tok, bytesOf, trainRows, valRows, loader, baseline };
}

/** The model to train: the resumed checkpoint (with its training state), a pretrained one (--from) or a new one. */
async function buildModel({ o, dir, resuming }: RunContext, tok: TextTokenizer): Promise<{ model: LlamaForCausalLM; state: TrainingState | null }> {
  let model: LlamaForCausalLM;
  let state: TrainingState | null = null;
  if (resuming) {
    const ck = await loadCheckpoint(join(dir, 'checkpoints'));
    model = ck.model; state = ck.state;
  } else if (o.from) {
    model = await loadPretrained(o.from);
  } else {
    model = newModel(o, tok.vocabSize, tok.bosId, tok.eosId);
  }
  if (model.config.vocabSize < tok.vocabSize) {
    throw new UsageError(`the model's vocab_size (${model.config.vocabSize}) is smaller than the tokenizer's (${tok.vocabSize}); ` +
      'use the tokenizer the checkpoint was trained with (--tokenizer)');
  }
  return { model, state };
}

/** A new model of the options' shape. */
export function newModel(o: TrainOptions, vocabSize: number, bosTokenId?: number, eosTokenId?: number): LlamaForCausalLM {
  return new LlamaForCausalLM({
    vocabSize, hiddenSize: o.dim, intermediateSize: o.ffn || 32 * Math.ceil((8 * o.dim) / 3 / 32),
    numHiddenLayers: o.layers, numAttentionHeads: o.heads, numKeyValueHeads: o.kvHeads, tieWordEmbeddings: o.tie,
    maxPositionEmbeddings: o.seqLen, bosTokenId, eosTokenId, padTokenId: null, rmsNormEps: 1e-5,
  }, { seed: o.seed });
}

/** The Trainer (AdamW or Muon, warmup + cosine schedule, periodic evaluation), restored to `state` when resuming. */
function makeTrainer(o: TrainOptions, model: LlamaForCausalLM, data: RunData, state: TrainingState | null): Trainer {
  const optimizer = makeOptimizer(o, model);
  const scheduler = new LRScheduler(optimizer, learningRateShape(o));
  const trainer = new Trainer({
    model, optimizer, scheduler, train: loaderSource(data.loader, data.bytesOf), gradAccumSteps: o.gradAccum, maxSteps: o.steps,
    clipGradNorm: o.clip > 0 ? o.clip : null, labelSmoothing: o.labelSmoothing, zLoss: o.zLoss, seed: o.seed,
    evalEvery: o.evalEvery, evalData: () => batchesOf(data.valRows, o.batchSize, data.bytesOf, o.evalBatches), checkpointWriter: saveCheckpoint,
  });
  if (state) trainer.loadState(state);
  return trainer;
}

/** --optimizer: Muon for the hidden matrices with AdamW for the rest, or AdamW for all (matrices decayed, vectors not). */
export function makeOptimizer(o: TrainOptions, model: LlamaForCausalLM): Optimizer {
  return o.optimizer === 'muon'
    ? new Muon(muonParamGroups(model.namedParameters(), { muonLr: o.muonLr, muonWeightDecay: o.muonWeightDecay, adamLr: o.lr,
      adamWeightDecay: o.weightDecay, betas: [o.beta1, o.beta2], eps: 1e-8 }), { momentum: o.muonMomentum, nsSteps: o.nsSteps })
    : new AdamW(decayGroups(model.namedParameters(), o.weightDecay), { lr: o.lr, betas: [o.beta1, o.beta2], eps: 1e-8 });
}

/** The learning-rate multiplier of every step: warmup, then cosine decay or WSD's constant phase and linear cooldown. */
export function learningRateShape(o: TrainOptions): Schedule {
  if (o.schedule === 'cosine') return warmupCosine({ warmupSteps: o.warmup, totalSteps: o.steps, minLrRatio: o.minLrRatio });
  const decaySteps = Math.round(o.steps * o.cooldown);
  return wsd({ warmupSteps: o.warmup, stableSteps: Math.max(0, o.steps - o.warmup - decaySteps), decaySteps, minLrRatio: o.minLrRatio, decayType: 'linear' });
}

/** A continuation of --sample-prompt ('' when the prompt encodes to no tokens). */
async function sampleText(o: TrainOptions, model: LlamaForCausalLM, tok: TextTokenizer, rng: RNG): Promise<string> {
  const prompt = tok.encode(o.samplePrompt);
  if (prompt.length === 0) return '';
  const out = await model.generate(tensor(Int32Array.from(prompt), [1, prompt.length], 'int32', model.backend),
    { maxNewTokens: o.sampleTokens, temperature: o.temperature, topK: 40, seed: rng.nextU32(), eosTokenId: tok.eosId });
  return tok.decode(Array.from(await out.data()));
}

/** The end of a run: the whole validation split, the exported model (with its tokenizer), the last sample, summary.json. */
async function finishRun({ o, dir, log }: RunContext, model: LlamaForCausalLM, step: number, data: RunData, report: RunReport, t0: number): Promise<EvalResult> {
  const final = await evaluate(model, batchesOf(data.valRows, o.batchSize, data.bytesOf));
  report.metric({ type: 'final', step, valLoss: final.loss, perplexity: final.perplexity, bitsPerByte: final.bitsPerByte, tokens: final.tokens });
  await savePretrained(model, join(dir, 'model'));
  writeFileSync(join(dir, 'model', 'tokenizer.json'), readFileSync(join(dir, 'tokenizer.json')));
  if (existsSync(join(dir, 'tokenizer_config.json'))) writeFileSync(join(dir, 'model', 'tokenizer_config.json'), readFileSync(join(dir, 'tokenizer_config.json')));
  // the compressors' bits per byte as losses in nats per token of this tokenizer on the validation split
  const b = data.baseline?.result() ?? null, natsPerBit = final.bitsPerByte ? final.loss / final.bitsPerByte : NaN;
  report.writePlot(b && Number.isFinite(natsPerBit)
    ? [...(b.brotli !== null ? [{ name: `brotli -q 11 (${fmt(b.brotli)} bits/byte)`, value: b.brotli * natsPerBit }] : []),
      { name: `gzip -9 (${fmt(b.gzip)} bits/byte)`, value: b.gzip * natsPerBit }]
    : []);
  const finalSample = await report.sample();
  appendFileSync(join(dir, 'samples.txt'), `--- final (step ${step}) ---\n${finalSample}\n\n`);
  const summary = { steps: step, valLoss: final.loss, perplexity: final.perplexity, bitsPerByte: final.bitsPerByte,
    validationTokens: final.tokens, seconds: Math.round((Date.now() - t0) / 1000), parameters: model.numParameters(),
    compressorBitsPerByte: data.baseline?.result() ?? null };
  writeFileSync(join(dir, 'summary.json'), JSON.stringify(summary, null, 2) + '\n');
  log(`final sample: ${JSON.stringify(finalSample)}`);
  log(`final validation (${final.tokens} tokens): loss ${fmt(final.loss)} | perplexity ${fmt(final.perplexity, 1)} | bits per byte ${fmt(final.bitsPerByte ?? NaN)}`);
  if (data.baseline) log(describeBaseline(data.baseline.result()));
  log(`done in ${summary.seconds} s — model: ${join(dir, 'model')} | metrics: ${report.metricsPath} | loss curve: ${join(dir, 'loss.svg')} | samples: ${join(dir, 'samples.txt')}`);
  return final;
}

/** The compressors' line of the final report. */
function describeBaseline(b: CompressorBaseline | null): string {
  const head = 'compressors on the same split (bits per validation byte, the training text as context): ';
  if (!b) return head + 'not measured yet (a background process measures them once; the next run shows them)';
  return head + (b.brotli !== null ? `brotli -q 11 ${fmt(b.brotli)} | ` : 'brotli -q 11 still measuring (the next run shows it) | ') +
    `gzip -9 ${fmt(b.gzip)}`;
}

function checkOptions(o: TrainOptions): void {
  const pos = ['vocabSize', 'dim', 'layers', 'heads', 'kvHeads', 'seqLen', 'batchSize', 'gradAccum', 'steps'] as const;
  for (const k of pos) if (!(o[k] > 0)) throw new UsageError(`${flag(k)} must be > 0, got ${o[k]}`);
  if (o.heads % o.kvHeads !== 0) throw new UsageError(`--kv-heads (${o.kvHeads}) must divide --heads (${o.heads})`);
  if (o.dim % o.heads !== 0) throw new UsageError(`--dim (${o.dim}) must be a multiple of --heads (${o.heads})`);
  if ((o.dim / o.heads) % 2 !== 0) throw new UsageError(`--dim / --heads (${o.dim / o.heads}) must be even for RoPE`);
  if (!(o.lr > 0)) throw new UsageError(`--lr must be > 0, got ${o.lr}`);
  if (!(o.muonLr > 0)) throw new UsageError(`--muon-lr must be > 0, got ${o.muonLr}`);
  if (!(o.muonMomentum >= 0 && o.muonMomentum < 1)) throw new UsageError(`--muon-momentum must be in [0, 1), got ${o.muonMomentum}`);
  if (!(o.nsSteps >= 1)) throw new UsageError(`--ns-steps must be ≥ 1, got ${o.nsSteps}`);
  if (!(o.cooldown >= 0 && o.cooldown <= 1)) throw new UsageError(`--cooldown must be in [0, 1], got ${o.cooldown}`);
  if (o.warmup >= o.steps && o.steps > 1) {
    throw new UsageError(`--warmup (${o.warmup}) must be smaller than --steps (${o.steps}); for a run this short, lower it (e.g. --warmup=${Math.floor(o.steps / 10)})`);
  }
  if (o.vocabSize < 260) throw new UsageError(`--vocab-size must be at least 260 (256 bytes + merges + specials), got ${o.vocabSize}`);
}
