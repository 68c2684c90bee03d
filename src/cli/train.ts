// `llamatrain train`: trains a small LLaMA (defaults: the built-in Brown corpus, a byte-level BPE trained on it)
// with progress, metrics.jsonl, a loss-curve SVG and sample generations in the run directory.

import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { RNG, tensor } from '../core/index.js';
import { ArrayDataset, DataLoader, type PackedBatch, type PackedRow, packedCollate } from '../data/index.js';
import { loadPretrained, savePretrained } from '../io/pretrained.js';
import { loadCheckpoint, saveCheckpoint } from '../io/checkpoint.js';
import { LlamaForCausalLM } from '../nn/index.js';
import { AdamW, LRScheduler, Muon, type Optimizer, type Schedule, decayGroups, muonParamGroups, warmupCosine, wsd } from '../optim/index.js';
import { type CompressorBaseline, startCompressorBaseline } from './compressor.js';
import { type TextTokenizer, trainByteLevelBPE } from '../tokenizer/index.js';
import { saveTokenizer } from '../tokenizer/node.js';
import { type BatchSource, type EvalResult, Trainer, type TrainingState, evaluate } from '../train/index.js';
import { type CommandOptions, type Schema, type Values, UsageError, helpText, parseCommandLine, refuseShapeWithFrom } from './options.js';
import {
  CollapsedRun, divergedFinal, type Log, RunClock, RunReport, endStoppedRun, fmt, note, rowsHash, showSample, stamp, trainWithCheckpoints,
  watchForCollapse,
} from './run.js';
import { RunDirectory, checkHasCheckpoint, checkResumeChanges, checkResumeSteps, compareForResume, readRunConfig, writeRunConfig } from './rundir.js';
import {
  TOKENIZER_SIDE_FILES, backendOptions, batchesOf, checkDataFile, loadTextData, loadTokenizerFrom, modelDirOf, packTexts, runOptions, selectBackend, toBatch,
  tokenByteLengths, tokenizerJsonPath, txtSplitOption, warnVocabShortfall,
} from './shared.js';

// The default recipe (issue 18; the sweep is in bench/RESULTS.md): an 8192-token byte-level BPE (4.0 bytes per token
// on Brown's validation split instead of 3.1 with 2048: each step sees more text, for a dearer LM head); Muon (lr 0.03, momentum 0.8,
// Nesterov, 5 Newton–Schulz steps) for the hidden matrices and AdamW (lr 1e-2, betas 0.9/0.95, no weight decay) for
// the tied embeddings and norms; 150 steps of 32 × 128 tokens (Muon's orthogonalisation costs the same per step, so
// fewer, larger batches; 170 and 160 steps took 0.99–1.03× the earlier recipe's wall time back to back, hence 150); warmup 5,
// then constant, then a linear cooldown to 0 over the last 40% (WSD). It fits the wall time of the earlier recipe and
// ends near 2.0 bits per byte instead of 2.36. The earlier recipe, for comparison:
//   --optimizer=adamw --lr=3e-3 --weight-decay=0.1 --vocab-size=2048 --batch-size=16 --steps=560 --warmup=40 --schedule=cosine --min-lr-ratio=0.1 --eval-every=70 --eval-batches=4 --checkpoint-every=280
export const trainSchema = {
  data: { type: 'string', default: 'brown', help: "training text: 'brown' (the built-in Brown corpus) or a .txt, .jsonl, .json or .parquet file" },
  textField: { type: 'string', default: 'text', help: 'JSONL field / Parquet column that holds the text' },
  txtSplit: txtSplitOption,
  validationFraction: { type: 'number', default: 0.05, min: 0, minExclusive: true, max: 1, maxExclusive: true, help: 'share of a file\'s documents held out for validation (Brown has a fixed split)' },
  tokenizer: { type: 'string', default: '', help: 'a tokenizer.json (or its directory); empty: train a byte-level BPE on the training text' },
  vocabSize: { type: 'int', default: 8192, min: 260, max: 2 ** 21, help: 'vocabulary of the BPE trained when --tokenizer is empty' },
  from: { type: 'string', default: '', help: 'fine-tune this Hugging Face checkpoint directory (or a run directory: its model/, or a Hub id org/name[@revision], downloaded into the Hugging Face cache) instead of a new model; its tokenizer.json is used unless --tokenizer is given' },
  dim: { type: 'int', default: 192, min: 2, help: 'hidden size C of a new model' },
  layers: { type: 'int', default: 4, min: 1, help: 'decoder layers L' },
  heads: { type: 'int', default: 6, min: 1, help: 'attention heads NH' },
  kvHeads: { type: 'int', default: 2, min: 1, help: 'key/value heads NKV (GQA); must divide heads' },
  ffn: { type: 'int', default: 0, min: 0, help: 'SwiGLU width; 0 = the LLaMA rule (8/3·dim rounded up to 32)' },
  tie: { type: 'boolean', default: true, help: 'tie the LM head to the embeddings (saves V·C parameters)' },
  seqLen: { type: 'int', default: 128, min: 2, help: 'tokens per row T (documents are packed into rows)' },
  batchSize: { type: 'int', default: 32, min: 1, help: 'rows per micro-batch B (Muon likes larger batches: its orthogonalisation costs the same per step)' },
  gradAccum: { type: 'int', default: 1, min: 1, help: 'micro-batches per optimizer step (gradient accumulation)' },
  gradientCheckpointing: { type: 'boolean', default: false, help: 'recompute each decoder layer\'s activations in backward instead of keeping them: less memory for long rows, about one more forward pass per step, the same numbers' },
  steps: { type: 'int', default: 150, min: 1, help: 'optimizer steps' },
  optimizer: { type: ['adamw', 'muon'], default: 'muon', help: "'muon': Muon for the hidden matrices, AdamW (--lr) for embeddings, head and norms; 'adamw': AdamW for all" },
  lr: { type: 'number', default: 1e-2, min: 0, minExclusive: true, help: 'peak learning rate of AdamW (small models like it high)' },
  muonLr: { type: 'number', default: 0.03, min: 0, minExclusive: true, help: "peak learning rate of Muon's matrices (--optimizer muon)" },
  muonMomentum: { type: 'number', default: 0.8, min: 0, max: 1, maxExclusive: true, help: "Muon's momentum β (Nesterov)" },
  nsSteps: { type: 'int', default: 5, min: 1, max: 100, help: "Muon's Newton–Schulz iterations" },
  muonWeightDecay: { type: 'number', default: 0, min: 0, help: "Muon's decoupled weight decay on the hidden matrices" },
  schedule: { type: ['cosine', 'wsd'], default: 'wsd', help: "learning-rate shape after warmup: 'cosine' to --min-lr-ratio, or 'wsd' (constant, then a linear cooldown over the last --cooldown of the steps)" },
  cooldown: { type: 'number', default: 0.4, min: 0, max: 1, help: 'share of the steps spent in the final linear decay of --schedule wsd' },
  warmup: { type: 'int', default: 5, min: 0, help: 'linear warmup steps' },
  minLrRatio: { type: 'number', default: 0, min: 0, max: 1, help: 'decay floor, as a fraction of the peak learning rates' },
  weightDecay: { type: 'number', default: 0, min: 0, help: 'AdamW decoupled weight decay on matrices (none on norms; with --optimizer muon: on the embeddings/head)' },
  beta1: { type: 'number', default: 0.9, min: 0, max: 1, maxExclusive: true, help: 'AdamW β1' },
  beta2: { type: 'number', default: 0.95, min: 0, max: 1, maxExclusive: true, help: 'AdamW β2' },
  clip: { type: 'number', default: 1.0, min: 0, help: 'global gradient-norm clip (0 = off)' },
  labelSmoothing: { type: 'number', default: 0, min: 0, max: 1, maxExclusive: true, help: 'label smoothing ε of the training loss (eval reports plain NLL)' },
  zLoss: { type: 'number', default: 0, min: 0, help: 'z-loss coefficient λ (λ·logsumexp² per token)' },
  evalEvery: { type: 'int', default: 30, min: 0, help: 'evaluate (and sample) every N steps (0 = only the final evaluation)' },
  evalBatches: { type: 'int', default: 2, min: 1, help: 'validation batches of the periodic evaluations (the final one uses all)' },
  samplePrompt: { type: 'string', default: 'The', help: 'prompt of the sample generations' },
  sampleTokens: { type: 'int', default: 32, min: 0, help: 'tokens generated per sample' },
  temperature: { type: 'number', default: 0.8, min: 0, help: 'sampling temperature of the samples' },
  checkpointEvery: { type: 'int', default: 120, min: 0, help: 'save a resumable checkpoint every N steps (0 = only at the end)' },
  out: { type: 'string', default: '', help: 'run directory, new or empty (default runs/<date-time-ms>-<random>)' },
  ...runOptions,
  baseline: { type: 'boolean', default: true, help: 'report what gzip -9 and brotli -q 11 make of the validation text (measured once per data set in a background process at the lowest priority, cached)' },
  ...backendOptions,
} satisfies Schema;

export type TrainOptions = Values<typeof trainSchema>;

/** train's options: `train my.jsonl` is `train --data=my.jsonl`; checkOptions relates options to each other. */
export const trainCommand: CommandOptions<typeof trainSchema> = { name: 'train', schema: trainSchema, positional: 'data', check: checkOptions };

/**
 * Parameters of a new model of these options with a vocabulary of V tokens (tied or untied head, SwiGLU, RMSNorm):
 * what --help quotes for the defaults, so that the number follows the defaults.
 */
export function newModelParameters(o: Pick<TrainOptions, 'dim' | 'layers' | 'heads' | 'kvHeads' | 'ffn' | 'tie'>, V: number): number {
  const C = o.dim, HD = C / o.heads, F = o.ffn || 32 * Math.ceil((8 * C) / 3 / 32);
  const layer = 2 * C * C + 2 * C * o.kvHeads * HD + 3 * C * F + 2 * C; // q, o; k, v; gate, up, down; two norms
  return V * C * (o.tie ? 1 : 2) + o.layers * layer + C;
}

const defaults = Object.fromEntries(Object.entries(trainSchema).map(([k, s]) => [k, s.default])) as unknown as TrainOptions;
export const trainHelp = helpText('train', `Train a LLaMA model. With no options: a ${newModelParameters(defaults, defaults.vocabSize).toLocaleString('en')}-parameter ` +
  `model (C=${defaults.dim}, L=${defaults.layers}, V=${defaults.vocabSize}, the size of the BPE trained on the text) on the built-in Brown corpus, ` +
  `${defaults.steps} steps of ${defaults.batchSize} × ${defaults.seqLen} tokens. Samples (at each evaluation, and the final one: the last ` +
  "evaluation's when it was at the last step) continue --sample-prompt with --temperature and top-k 40.", trainSchema,
  'llamatrain train [<data file>] [--config file.json] [--key=value ...]');


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
  /** rowsHash(trainRows): recorded in checkpoints, compared on resume. */
  hash: string;
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

/** Options that can never change on --resume (the checkpoint's model and tokenizer are what they are). */
const FIXED_ON_RESUME = ['from', 'tokenizer', 'vocabSize', 'dim', 'layers', 'heads', 'kvHeads', 'ffn', 'tie', 'optimizer'] as const;
/** What a run saved before --optimizer/--schedule existed trained with (AdamW, cosine): a resume keeps it. */
const BEFORE_MUON = { optimizer: 'adamw', schedule: 'cosine' } as const;
/** Options that change the data or the batch geometry: a resume refuses them unless --force. */
const FORCEABLE_ON_RESUME = ['data', 'textField', 'validationFraction', 'seqLen', 'batchSize', 'gradAccum', 'seed'] as const;

export async function runTrain(argv: string[], log: Log = (s) => process.stdout.write(s + '\n')): Promise<{ final: EvalResult; dir: string }> {
  const { o, saved } = await resolveOptions(argv);
  return RunDirectory.run({ command: 'train', out: o.out, resume: o.resume, defaultName: stamp() }, note, // the Ctrl-C message: a diagnostic
    (rd, stop) => trainIn({ o, dir: rd.dir, resuming: rd.resuming, log }, saved, stop));
}

async function trainIn(run: RunContext, saved: Record<string, unknown> | null, stop: AbortController): Promise<{ final: EvalResult; dir: string }> {
  const { o, log } = run;
  const backend = await selectBackend(o.backend, o.threads, note, o.verbose);
  // On resume: the checkpoint first (the newest intact one), so that a --steps below the steps done is refused
  // before any work, and nothing (train_config.json included) is written before every check has passed.
  if (run.resuming) checkHasCheckpoint(run.dir, 'train');
  const resumed = run.resuming ? await loadCheckpoint(join(run.dir, 'checkpoints'), {}, { onWarning: (m) => note(`llamatrain: ${m}`) }) : null;
  if (resumed) checkResumeSteps(run.dir, 'train', o.steps, resumed.state.step);
  const data = await prepareData(run);
  let forced: Record<string, [unknown, unknown]> = {};
  if (resumed && saved) forced = checkResumedData(run, saved, resumed.state, data);
  const { model, state } = resumed ? checkModel(resumed.model, resumed.state, data.tok) : await buildModel(run, data.tok);
  writeRunConfig(run.dir, 'train_config.json', o);
  const trainer = makeTrainer(o, model, data, state);
  log(`llamatrain: ${model.numParameters().toLocaleString('en')} parameters (C=${model.config.hiddenSize}, L=${model.config.numHiddenLayers}, ` +
    `NH=${model.config.numAttentionHeads}, NKV=${model.config.numKeyValueHeads}, V=${model.config.vocabSize}); ` +
    `data: ${data.source}, ${data.trainRows.length} train rows × ${o.seqLen} tokens, ${data.valRows.length} validation rows; ` +
    `backend: ${backend}; run directory: ${run.dir}` +
    (state ? `; resuming at step ${state.step}` : ''));

  // the samples' RNG is part of the checkpoint: a resumed run samples what the uninterrupted one would have
  const sampleRng = new RNG(o.seed + 1);
  if (Array.isArray(state?.extra?.sampleRng)) sampleRng.setState(state.extra.sampleRng as number[]);
  const clock = new RunClock(Number(state?.extra?.seconds ?? 0), Number(state?.extra?.segments ?? 0) + 1);
  const report = new RunReport({ dir: run.dir, log, steps: o.steps, progress: o.progress, sampling: `temperature ${o.temperature}, top-k 40` },
    () => sampleText(o, model, data.tok, sampleRng), data.source);
  if (state) {
    report.keepHistoryUpTo(state.step);
    report.metric({ type: 'resume', step: state.step, segment: clock.segment, ...(Object.keys(forced).length > 0 ? { forced } : {}) });
  }
  let savedStep = state?.step ?? 0;
  const save = async () => {
    const st = await trainer.state();
    const dir = await saveCheckpoint(join(run.dir, 'checkpoints'), model, { ...st, extra: { ...st.extra, sampleRng: sampleRng.getState(),
      dataHash: data.hash, seconds: clock.seconds(), segments: clock.segment } }, {});
    savedStep = trainer.step;
    return dir;
  };
  report.follow(trainer);
  watchForCollapse(trainer, model.config.vocabSize, stop, o.optimizer === 'muon' ? `--lr=${o.lr}, --muon-lr=${o.muonLr}` : `--lr=${o.lr}`);
  await trainWithCheckpoints(trainer, o.steps, o.checkpointEvery, save, stop.signal);
  report.stopProgress();
  if (stop.signal.aborted && (trainer.step < o.steps || stop.signal.reason instanceof CollapsedRun)) {
    await endStoppedRun({ reason: stop.signal.reason, command: 'train', dir: run.dir, step: trainer.step, steps: o.steps, savedStep, save, report,
      writeSummary: (status) => writeFileSync(join(run.dir, 'summary.json'), JSON.stringify({ status, steps: trainer.step, ofSteps: o.steps,
        seconds: Math.round(clock.seconds()), segments: clock.segment, parameters: model.numParameters() }, null, 2) + '\n') });
  }
  if (trainer.step > savedStep) await save(); // (a Ctrl-C after the last step: the run still finishes)
  const final = await finishRun(run, model, trainer.step, data, report, clock);
  return { final, dir: run.dir };
}

/** The run's options: the command line, or on --resume the run's saved options with the command line on top. */
async function resolveOptions(argv: string[]): Promise<{ o: TrainOptions; saved: Record<string, unknown> | null }> {
  const parse = { positionalKey: trainCommand.positional };
  let { values: o } = parseCommandLine(trainSchema, argv, parse);
  const resumeDir = o.resume;
  let saved: Record<string, unknown> | null = null;
  if (resumeDir) {
    if (o.out && resolve(o.out) !== resolve(resumeDir)) {
      throw new UsageError(`--out ${o.out} cannot be combined with --resume: a resumed run goes on in its own directory (${resumeDir}); ` +
        'drop --out (to branch a run off, copy its directory and resume the copy)');
    }
    // The run's saved options, overridden by what this command line states (e.g. a larger --steps).
    saved = readRunConfig(resumeDir, 'train_config.json', 'train');
    if (!('optimizer' in saved)) saved = { ...BEFORE_MUON, ...saved };
    o = { ...parseCommandLine(trainSchema, argv, { ...parse, base: { values: saved, from: join(resumeDir, 'train_config.json') } }).values, resume: resumeDir, out: resumeDir };
    checkResumeChanges(resumeDir, 'train_config.json', compareForResume(saved, o, FIXED_ON_RESUME, FORCEABLE_ON_RESUME), o.force);
  } else if (o.force) {
    throw new UsageError('--force goes with --resume (it lets a resumed run change its data or batch geometry)');
  }
  checkOptions(o);
  await checkInputs(o);
  return { o, saved };
}

/** On resume with --force: which options changed. Without it, refuses rows that changed under the same options. */
function checkResumedData({ o, dir, log }: RunContext, saved: Record<string, unknown>, state: TrainingState, data: RunData): Record<string, [unknown, unknown]> {
  const changes = compareForResume(saved, o, FIXED_ON_RESUME, FORCEABLE_ON_RESUME);
  const recorded = state.extra?.dataHash;
  const dataChanged = typeof recorded === 'string' && recorded !== data.hash;
  if (dataChanged && !o.force) {
    throw new UsageError(`--resume ${dir}: the training data changed since the checkpoint: the rows made from --data ${o.data} differ from those the run ` +
      'trained on (was the file edited?); restore it, pass --force to go on with the new data (the data loader starts a new pass), or start a new run with --out');
  }
  const forced = { ...changes.changed, ...(dataChanged ? { rows: [recorded, data.hash] as [unknown, unknown] } : {}) };
  const loaderMoved = dataChanged || Object.keys(changes.changed).some((k) => k !== 'gradAccum');
  if (Object.keys(forced).length > 0) {
    note(`llamatrain: --force: resuming with ${[...changes.forceable, ...(dataChanged ? ['other training rows'] : [])].join(', ')}` +
      (loaderMoved ? '; the data loader starts a new pass over the data' : ''));
  }
  if (loaderMoved) state.data = data.loader.state(); // the saved position is one in the old data
  return forced;
}

/** Loads and tokenizes the text (training a BPE tokenizer on it unless one is given or resumed) into packed rows. */
async function prepareData({ o, dir, resuming, log }: RunContext): Promise<RunData> {
  const text = await loadTextData(o.data, o.textField, o.validationFraction, { txtSplit: o.txtSplit });
  let tok: TextTokenizer;
  if (resuming || o.tokenizer) {
    tok = loadTokenizerFrom(resuming ? dir : o.tokenizer);
  } else {
    const bpe = trainByteLevelBPE(text.train, { vocabSize: o.vocabSize });
    warnVocabShortfall(bpe.vocabSize, o.vocabSize, note);
    saveTokenizer(bpe, dir);
    tok = bpe;
  }
  if (!resuming && o.tokenizer) {
    // the tokenizer.json and the files that configure it (special tokens, clean-up, chat template) travel together
    const json = tokenizerJsonPath(o.tokenizer);
    writeFileSync(join(dir, 'tokenizer.json'), readFileSync(json));
    for (const f of TOKENIZER_SIDE_FILES) if (existsSync(join(dirname(json), f))) writeFileSync(join(dir, f), readFileSync(join(dirname(json), f)));
  }
  const bytesOf = tokenByteLengths(tok);
  const trainRows = packTexts(tok, text.train, o.seqLen);
  const valRows = packTexts(tok, text.validation, o.seqLen);
  if (trainRows.length < o.batchSize) {
    throw new UsageError(`the training split has ${trainRows.length} rows of ${o.seqLen} tokens: fewer than one batch of ${o.batchSize}; lower --batch-size or --seq-len, or give more data`);
  }
  const loader = new DataLoader({ dataset: new ArrayDataset(trainRows), batchSize: o.batchSize, shuffle: true, seed: o.seed, dropLast: true, collate: packedCollate });
  const baseline = o.baseline ? startCompressorBaseline(text.train, text.validation) : null;
  return { source: text.source, tok, bytesOf, trainRows, valRows, loader, hash: rowsHash(trainRows), baseline };
}

/** The model to train: a pretrained one (--from) or a new one. */
async function buildModel({ o }: RunContext, tok: TextTokenizer): Promise<{ model: LlamaForCausalLM; state: TrainingState | null }> {
  if (o.from) return checkModel(await loadPretrained(o.from), null, tok);
  const model = newModel(o, tok.vocabSize, tok.bosId, tok.eosId);
  return checkModel(model, null, tok);
}

/** A new model of the options' shape. */
export function newModel(o: TrainOptions, vocabSize: number, bosTokenId?: number, eosTokenId?: number): LlamaForCausalLM {
  return new LlamaForCausalLM({
    vocabSize, hiddenSize: o.dim, intermediateSize: o.ffn || 32 * Math.ceil((8 * o.dim) / 3 / 32),
    numHiddenLayers: o.layers, numAttentionHeads: o.heads, numKeyValueHeads: o.kvHeads, tieWordEmbeddings: o.tie,
    maxPositionEmbeddings: o.seqLen, bosTokenId, eosTokenId, padTokenId: null, rmsNormEps: 1e-5,
  }, { seed: o.seed });
}

function checkModel(model: LlamaForCausalLM, state: TrainingState | null, tok: TextTokenizer): { model: LlamaForCausalLM; state: TrainingState | null } {
  if (model.config.vocabSize < tok.vocabSize) {
    throw new UsageError(`the model's vocab_size (${model.config.vocabSize}) is smaller than the tokenizer's (${tok.vocabSize}); ` +
      'use the tokenizer the checkpoint was trained with (--tokenizer)');
  }
  return { model, state };
}

/** The Trainer (AdamW or Muon, the learning-rate schedule, periodic evaluation), restored to `state` when resuming. */
function makeTrainer(o: TrainOptions, model: LlamaForCausalLM, data: RunData, state: TrainingState | null): Trainer {
  const optimizer = makeOptimizer(o, model);
  const scheduler = new LRScheduler(optimizer, learningRateShape(o));
  const trainer = new Trainer({
    model, optimizer, scheduler, train: loaderSource(data.loader, data.bytesOf), gradAccumSteps: o.gradAccum, maxSteps: o.steps,
    clipGradNorm: o.clip > 0 ? o.clip : null, labelSmoothing: o.labelSmoothing, zLoss: o.zLoss, seed: o.seed,
    gradientCheckpointing: o.gradientCheckpointing,
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
    { maxNewTokens: o.sampleTokens, temperature: o.temperature, topK: 40, seed: rng.nextU32(), eosTokenId: tok.eosId,
      vocabLimit: Math.min(tok.vocabSize, model.config.vocabSize) });
  return tok.decode(Array.from(await out.data()), { skipSpecialTokens: true }); // the text, without a literal <|endoftext|>
}

/** The end of a run: the whole validation split, the exported model (with its tokenizer), the last sample, summary.json. */
async function finishRun({ o, dir, log }: RunContext, model: LlamaForCausalLM, step: number, data: RunData, report: RunReport, clock: RunClock): Promise<EvalResult> {
  const final = await evaluate(model, batchesOf(data.valRows, o.batchSize, data.bytesOf));
  report.metric({ type: 'final', step, valLoss: final.loss, perplexity: final.perplexity, bitsPerByte: final.bitsPerByte, tokens: final.tokens });
  const diverged = divergedFinal(final.loss, model.config.vocabSize, o.optimizer === 'muon' ? `--lr=${o.lr}, --muon-lr=${o.muonLr}` : `--lr=${o.lr}`);
  if (diverged) {
    report.writePlot();
    writeFileSync(join(dir, 'summary.json'), JSON.stringify({ status: 'diverged', steps: step, valLoss: final.loss, seconds: Math.round(clock.seconds()),
      segments: clock.segment }, null, 2) + '\n');
    throw diverged;
  }
  await savePretrained(model, join(dir, 'model'));
  writeFileSync(join(dir, 'model', 'tokenizer.json'), readFileSync(join(dir, 'tokenizer.json')));
  for (const f of TOKENIZER_SIDE_FILES) if (existsSync(join(dir, f))) writeFileSync(join(dir, 'model', f), readFileSync(join(dir, f)));
  // the compressors' bits per byte as losses in nats per token of this tokenizer on the validation split
  const b = data.baseline?.result() ?? null, natsPerBit = final.bitsPerByte ? final.loss / final.bitsPerByte : NaN;
  report.writePlot(b && Number.isFinite(natsPerBit)
    ? [...(b.brotli !== null ? [{ name: `brotli -q 11 (${fmt(b.brotli)} bits/byte)`, value: b.brotli * natsPerBit }] : []),
      { name: `gzip -9 (${fmt(b.gzip)} bits/byte)`, value: b.gzip * natsPerBit }]
    : []);
  // the last evaluation's sample when it was of these weights (one sample of a model, not two that differ by luck)
  const finalSample = report.sampleAt(step) ?? await report.sample();
  appendFileSync(join(dir, 'samples.txt'), `--- final (step ${step}) ---\n${finalSample}\n\n`);
  // the whole run: every segment's seconds (a resume adds to the checkpoint's), not just this one's
  const summary = { status: 'finished', steps: step, valLoss: final.loss, perplexity: final.perplexity, bitsPerByte: final.bitsPerByte,
    validationTokens: final.tokens, seconds: Math.round(clock.seconds()), segments: clock.segment, parameters: model.numParameters(),
    compressorBitsPerByte: data.baseline?.result() ?? null };
  writeFileSync(join(dir, 'summary.json'), JSON.stringify(summary, null, 2) + '\n');
  log(showSample(`final sample (step ${step}; temperature ${o.temperature}, top-k 40):`, finalSample));
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

/** Checks that relate options to each other (each option's type and range are the schema's, checked while parsing). */
function checkOptions(o: TrainOptions): void {
  if (o.heads % o.kvHeads !== 0) throw new UsageError(`--kv-heads (${o.kvHeads}) must divide --heads (${o.heads})`);
  if (o.dim % o.heads !== 0) throw new UsageError(`--dim (${o.dim}) must be a multiple of --heads (${o.heads})`);
  if ((o.dim / o.heads) % 2 !== 0) throw new UsageError(`--dim / --heads (${o.dim / o.heads}) must be even for RoPE`);
  if (o.warmup >= o.steps && o.steps > 1) {
    throw new UsageError(`--warmup (${o.warmup}) must be smaller than --steps (${o.steps}); for a run this short, lower it (e.g. --warmup=${Math.floor(o.steps / 10)})`);
  }
}

/**
 * The files the options name, checked before any work: the data file, --tokenizer, --from (a run directory
 * stands for its model/). A checkpoint's tokenizer comes with it: --from without --tokenizer uses the tokenizer.json
 * of --from, since a BPE trained anew would give its ids other meanings.
 */
async function checkInputs(o: TrainOptions): Promise<void> {
  checkDataFile(o.data);
  if (o.tokenizer) tokenizerJsonPath(o.tokenizer);
  if (o.from && !o.resume) { // a resumed run's model is its checkpoint
    o.from = await modelDirOf(o.from, '--from');
    refuseShapeWithFrom(trainSchema, o, ['dim', 'layers', 'heads', 'kvHeads', 'ffn', 'tie'], o.from);
    if (!o.tokenizer) {
      if (!existsSync(join(o.from, 'tokenizer.json'))) {
        throw new UsageError(`--from ${o.from}: no tokenizer.json there; give the tokenizer the checkpoint was trained with (--tokenizer=<file or directory>)`);
      }
      o.tokenizer = o.from;
    }
  }
}
