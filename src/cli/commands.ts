// `llamatrain eval | generate | tokenizer`: the smaller commands.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tensor } from '../core/index.js';
import { loadPretrained } from '../io/pretrained.js';
import { trainByteLevelBPE } from '../tokenizer/index.js';
import { saveTokenizer } from '../tokenizer/node.js';
import { evaluate } from '../train/index.js';
import { note } from './run.js';
import { type CommandOptions, type Schema, type ValueLayer, UsageError, helpText, parseAndCheck, wantsHelp } from './options.js';
import { makeDirectory } from './rundir.js';
import {
  backendOptions, batchesOf, checkDataFile, loadTextData, loadTokenizerFrom, modelDirOf, packTexts, selectBackend, tokenByteLengths,
  txtSplitOption, warnVocabShortfall,
} from './shared.js';

type Log = (s: string) => void;

export const evalSchema = {
  model: { type: 'string', default: '', help: 'run directory, checkpoint directory (with tokenizer.json) or Hub id org/name[@revision] (downloaded into the Hugging Face cache)' },
  data: { type: 'string', default: 'brown', help: "'brown' or a .txt/.jsonl/.json/.parquet file; given a run directory, the data it trained on (its train_config.json) unless set" },
  textField: { type: 'string', default: 'text', help: 'JSONL field / Parquet column (a run directory: the run\'s)' },
  txtSplit: txtSplitOption,
  split: { type: ['validation', 'train', 'all'], default: 'validation', help: 'which part of the data to score' },
  validationFraction: { type: 'number', default: 0.05, min: 0, minExclusive: true, max: 1, maxExclusive: true, help: "a file's held-out share, as in train (a run directory: the run's)" },
  seqLen: { type: 'int', default: 128, min: 2, help: 'tokens per row (a run directory: the run\'s)' },
  batchSize: { type: 'int', default: 8, min: 1, help: 'rows per batch' },
  ...backendOptions,
} satisfies Schema;

/** eval's options: `eval data.jsonl --model=…` is `eval --data=data.jsonl --model=…`. */
export const evalCommand: CommandOptions<typeof evalSchema> = { name: 'eval', schema: evalSchema, positional: 'data' };

/** eval options that describe what data is scored and how it is cut, which a training run records. */
const RUN_DATA_EXCLUDED = new Set(['model', 'split', 'batchSize', 'backend', 'threads', 'verbose']);

/**
 * A train run directory's data options (data, text field, validation share, row length) as the layer beneath the
 * command line, so that `eval --model=<run>` scores the run's own held-out split unless told otherwise. Null when
 * the path is not a train run (a checkpoint directory, an sft run: its data are conversations).
 */
export function runDataLayer(path: string): ValueLayer | null {
  const cfg = join(path, 'train_config.json');
  if (!path || !existsSync(cfg)) return null;
  let saved: unknown;
  try { saved = JSON.parse(readFileSync(cfg, 'utf8')); } catch (e) {
    throw new UsageError(`${cfg}: not valid JSON (${(e as Error).message}); eval reads the run's data options from it — fix it, or give --model=${join(path, 'model')} and --data`);
  }
  if (typeof saved !== 'object' || saved === null || Array.isArray(saved)) throw new UsageError(`${cfg}: expected a JSON object of the run's options`);
  const values = Object.fromEntries(Object.entries(saved).filter(([k]) => Object.hasOwn(evalSchema, k) && !RUN_DATA_EXCLUDED.has(k)));
  return { values, from: cfg };
}

export async function runEval(argv: string[], log: Log): Promise<void> {
  const given = parseAndCheck(evalCommand, argv).values;
  const dir = await modelDirOf(given.model, '--model');
  const run = runDataLayer(given.model);
  const o = run ? parseAndCheck(evalCommand, argv, run).values : given;
  const runData = run !== null && o.data === run.values.data;
  if (runData && o.data !== 'brown' && !existsSync(o.data)) {
    throw new UsageError(`${run.from}: the run trained on '${o.data}', which is not found from here; give the data to score with --data=<file>`);
  }
  checkDataFile(o.data);
  log(`eval: scoring the ${o.split} split of ${o.data === 'brown' ? 'the Brown corpus' : o.data}` +
    (runData ? ` (the data ${given.model} trained on, from its train_config.json; --data=<file> scores other data)` : ''));
  await selectBackend(o.backend, o.threads, note, o.verbose);
  const model = await loadPretrained(dir, { weights: 'as-stored' }); // evaluation: a BF16/F16 checkpoint stays half (frozen)
  const tok = loadTokenizerFrom(dir, '--model');
  const text = await loadTextData(o.data, o.textField, o.validationFraction, { txtSplit: o.txtSplit });
  const docs = o.split === 'all' ? [...text.train, ...text.validation] : text[o.split as 'train' | 'validation'];
  const r = await evaluate(model, batchesOf(packTexts(tok, docs, o.seqLen), o.batchSize, tokenByteLengths(tok)));
  log(`${o.split} of ${text.source} (${r.tokens} tokens): loss ${r.loss.toFixed(4)} | perplexity ${r.perplexity.toFixed(2)} | bits per byte ${r.bitsPerByte?.toFixed(4) ?? 'n/a'}`);
}

export const generateSchema = {
  model: { type: 'string', default: '', help: 'run directory, checkpoint directory (with tokenizer.json) or Hub id org/name[@revision] (downloaded into the Hugging Face cache)' },
  prompt: { type: 'string', default: 'The', help: 'text to continue (or give it as the positional argument)' },
  maxNewTokens: { type: 'int', default: 60, min: 1, help: 'tokens to generate' },
  temperature: { type: 'number', default: 0.8, min: 0, help: '0 = greedy' },
  topK: { type: 'int', default: 40, min: 0, help: 'keep the k most likely tokens (0 = off)' },
  topP: { type: 'number', default: 1, min: 0, minExclusive: true, max: 1, help: 'nucleus sampling threshold (1 = off)' },
  seed: { type: 'int', default: 0, min: 0, max: 2 ** 32 - 1, help: 'sampling seed' },
  samples: { type: 'int', default: 1, min: 1, help: 'how many continuations' },
  ...backendOptions,
} satisfies Schema;

/** generate's options; its positional arguments are the prompt. */
export const generateCommand: CommandOptions<typeof generateSchema> = { name: 'generate', schema: generateSchema, freePositionals: true };

export async function runGenerate(argv: string[], log: Log): Promise<void> {
  const { values: o, positional } = parseAndCheck(generateCommand, argv);
  const dir = await modelDirOf(o.model, '--model');
  await selectBackend(o.backend, o.threads, note, o.verbose); // stdout carries only the text
  const model = await loadPretrained(dir, { weights: 'as-stored' }); // generation: likewise
  const tok = loadTokenizerFrom(dir, '--model');
  const prompt = positional.length > 0 ? positional.join(' ') : o.prompt;
  const ids = tok.encode(prompt);
  if (ids.length === 0) throw new UsageError('the prompt encodes to no tokens; give some text');
  for (let i = 0; i < o.samples; i++) {
    const out = await model.generate(tensor(Int32Array.from(ids), [1, ids.length], 'int32', model.backend), {
      maxNewTokens: o.maxNewTokens, temperature: o.temperature, topK: o.topK, topP: o.topP, seed: o.seed + i, eosTokenId: tok.eosId,
      vocabLimit: Math.min(tok.vocabSize, model.config.vocabSize),
    });
    log(tok.decode(Array.from(await out.data()), { skipSpecialTokens: true })); // the text, without a literal <|endoftext|>
  }
}

export const tokenizerTrainSchema = {
  data: { type: 'string', default: 'brown', help: "'brown' or a .txt/.jsonl/.json/.parquet file" },
  textField: { type: 'string', default: 'text', help: 'JSONL field / Parquet column' },
  txtSplit: txtSplitOption,
  vocabSize: { type: 'int', default: 2048, min: 257, max: 2 ** 21, help: 'vocabulary size: 256 bytes + <|endoftext|> + merges (fewer when the text runs out of pairs to merge)' },
  out: { type: 'string', default: 'tokenizer', help: 'directory to write tokenizer.json and tokenizer_config.json to' },
} satisfies Schema;

export const tokenizerEncodeSchema = {
  tokenizer: { type: 'string', default: '', help: 'tokenizer.json or a directory holding one' },
} satisfies Schema;

export const tokenizerTrainCommand: CommandOptions<typeof tokenizerTrainSchema> = { name: 'tokenizer train', schema: tokenizerTrainSchema, positional: 'data' };
export const tokenizerEncodeCommand: CommandOptions<typeof tokenizerEncodeSchema> = { name: 'tokenizer encode', schema: tokenizerEncodeSchema, freePositionals: true };
export const tokenizerDecodeCommand: CommandOptions<typeof tokenizerEncodeSchema> = { name: 'tokenizer decode', schema: tokenizerEncodeSchema, freePositionals: true };

export const TOKENIZER_USAGE = `llamatrain tokenizer — byte-level BPE tokenizers

Usage:
  llamatrain tokenizer train [<data file>] [--vocab-size=2048] [--out=tokenizer]
                                            train a byte-level BPE on 'brown' or a .txt/.jsonl/.parquet file
  llamatrain tokenizer encode --tokenizer <path> "text"
                                            print the token ids of a text
  llamatrain tokenizer decode --tokenizer <path> 12 34 56
                                            print the text of token ids

Add --help to a subcommand for its options.`;

export async function runTokenizer(argv: string[], log: Log): Promise<void> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
    if (sub === undefined) throw new UsageError(`which subcommand? 'tokenizer train', 'tokenizer encode' or 'tokenizer decode'; see llamatrain tokenizer --help`);
    log(TOKENIZER_USAGE);
    return;
  }
  if (sub === 'train') {
    if (wantsHelp(rest)) {
      log(helpText('tokenizer train', 'Train a byte-level BPE tokenizer.', tokenizerTrainSchema, 'llamatrain tokenizer train [<data file>] [--config file.json] [--key=value ...]'));
      return;
    }
    const { values: o } = parseAndCheck(tokenizerTrainCommand, rest);
    checkDataFile(o.data);
    makeDirectory(o.out, '--out'); // before the work: /proc/nope or a file in the way fails now, with a message
    const text = await loadTextData(o.data, o.textField, 0, { txtSplit: o.txtSplit }); // a tokenizer needs no validation split
    const t0 = Date.now();
    const bpe = trainByteLevelBPE(text.train, { vocabSize: o.vocabSize });
    warnVocabShortfall(bpe.vocabSize, o.vocabSize, note);
    const path = saveTokenizer(bpe, o.out);
    log(`trained a ${bpe.vocabSize}-token byte-level BPE on ${text.source} in ${((Date.now() - t0) / 1000).toFixed(1)} s → ${path}`);
  } else if (sub === 'encode' || sub === 'decode') {
    if (wantsHelp(rest)) {
      log(helpText(`tokenizer ${sub}`, sub === 'encode' ? 'Print the token ids of a text.' : 'Print the text of token ids.', tokenizerEncodeSchema,
        `llamatrain tokenizer ${sub} --tokenizer <path> ${sub === 'encode' ? '"text"' : '12 34 56'}`));
      return;
    }
    const { values: o, positional } = parseAndCheck(sub === 'encode' ? tokenizerEncodeCommand : tokenizerDecodeCommand, rest);
    if (!o.tokenizer) throw new UsageError('--tokenizer is required (a tokenizer.json or a directory with one, e.g. a run directory)');
    const tok = loadTokenizerFrom(o.tokenizer);
    if (sub === 'encode') log(JSON.stringify(tok.encode(positional.join(' '))));
    else {
      const ids = positional.flatMap((p) => p.split(/[\s,[\]]+/)).filter(Boolean).map(Number);
      if (ids.some((x) => !Number.isInteger(x) || x < 0 || x >= tok.vocabSize)) throw new UsageError(`token ids must be integers in [0, ${tok.vocabSize})`);
      log(tok.decode(ids));
    }
  } else {
    throw new UsageError(`tokenizer: unknown subcommand '${sub}'; use 'tokenizer train', 'tokenizer encode' or 'tokenizer decode' (see llamatrain tokenizer --help)`);
  }
}

export const helps = {
  eval: helpText('eval', 'Loss, perplexity and bits per byte of a model on a dataset (given a run directory: the data it trained on).', evalSchema,
    'llamatrain eval --model <dir> [<data file>] [--config file.json] [--key=value ...]'),
  generate: helpText('generate', 'Continue a prompt.', generateSchema, 'llamatrain generate --model <dir> [--prompt "text" | "text"] [options]'),
};
