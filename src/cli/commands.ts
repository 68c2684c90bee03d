// `llamatrain eval | generate | tokenizer`: the smaller commands.

import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { tensor } from '../core/index.js';
import { loadPretrained } from '../io/pretrained.js';
import { trainByteLevelBPE } from '../tokenizer/index.js';
import { saveTokenizer } from '../tokenizer/node.js';
import { evaluate } from '../train/index.js';
import { type Schema, UsageError, helpText, parseCommandLine, wantsHelp } from './options.js';
import { backendOptions, batchesOf, loadTextData, loadTokenizerFrom, packTexts, selectBackend, tokenByteLengths, txtSplitOption } from './shared.js';

type Log = (s: string) => void;

/** A run directory (its model/ subfolder) or a Hugging Face checkpoint directory with a tokenizer.json. */
function modelDir(path: string): string {
  if (!path) throw new UsageError('--model is required: a run directory (runs/…) or a checkpoint directory with config.json');
  const inner = join(path, 'model');
  if (existsSync(join(inner, 'config.json'))) return inner;
  if (existsSync(join(path, 'config.json'))) return path;
  throw new UsageError(`--model ${path}: no config.json there or in ${inner}`);
}

export const evalSchema = {
  model: { type: 'string', default: '', help: 'run directory or checkpoint directory (with tokenizer.json)' },
  data: { type: 'string', default: 'brown', help: "'brown' or a .txt/.jsonl/.json/.parquet file" },
  textField: { type: 'string', default: 'text', help: 'JSONL field / Parquet column' },
  txtSplit: txtSplitOption,
  split: { type: ['validation', 'train', 'all'], default: 'validation', help: 'which part of the data to score' },
  validationFraction: { type: 'number', default: 0.05, help: "a file's held-out share (as in train)" },
  seqLen: { type: 'int', default: 128, help: 'tokens per row' },
  batchSize: { type: 'int', default: 8, help: 'rows per batch' },
  ...backendOptions,
} satisfies Schema;

export async function runEval(argv: string[], log: Log): Promise<void> {
  const { values: o } = parseCommandLine(evalSchema, argv);
  const dir = modelDir(o.model);
  await selectBackend(o.backend, o.threads, log);
  const model = await loadPretrained(dir);
  const tok = loadTokenizerFrom(dir);
  const text = await loadTextData(o.data, o.textField, o.validationFraction, { txtSplit: o.txtSplit });
  const docs = o.split === 'all' ? [...text.train, ...text.validation] : text[o.split as 'train' | 'validation'];
  const r = await evaluate(model, batchesOf(packTexts(tok, docs, o.seqLen), o.batchSize, tokenByteLengths(tok)));
  log(`${o.split} of ${text.source} (${r.tokens} tokens): loss ${r.loss.toFixed(4)} | perplexity ${r.perplexity.toFixed(2)} | bits per byte ${r.bitsPerByte?.toFixed(4) ?? 'n/a'}`);
}

export const generateSchema = {
  model: { type: 'string', default: '', help: 'run directory or checkpoint directory (with tokenizer.json)' },
  prompt: { type: 'string', default: 'The', help: 'text to continue (or give it as the positional argument)' },
  maxNewTokens: { type: 'int', default: 60, help: 'tokens to generate' },
  temperature: { type: 'number', default: 0.8, help: '0 = greedy' },
  topK: { type: 'int', default: 40, help: 'keep the k most likely tokens (0 = off)' },
  topP: { type: 'number', default: 1, help: 'nucleus sampling threshold (1 = off)' },
  seed: { type: 'int', default: 0, help: 'sampling seed' },
  samples: { type: 'int', default: 1, help: 'how many continuations' },
  ...backendOptions,
} satisfies Schema;

export async function runGenerate(argv: string[], log: Log): Promise<void> {
  const { values: o, positional } = parseCommandLine(generateSchema, argv, { allowPositionals: true });
  const dir = modelDir(o.model);
  await selectBackend(o.backend, o.threads, (s) => process.stderr.write(`${s}\n`)); // stdout carries only the text
  const model = await loadPretrained(dir);
  const tok = loadTokenizerFrom(dir);
  const prompt = positional.length > 0 ? positional.join(' ') : o.prompt;
  const ids = tok.encode(prompt);
  if (ids.length === 0) throw new UsageError('the prompt encodes to no tokens; give some text');
  for (let i = 0; i < o.samples; i++) {
    const out = await model.generate(tensor(Int32Array.from(ids), [1, ids.length], 'int32', model.backend), {
      maxNewTokens: o.maxNewTokens, temperature: o.temperature, topK: o.topK, topP: o.topP, seed: o.seed + i, eosTokenId: tok.eosId,
    });
    log(tok.decode(Array.from(await out.data())));
  }
}

export const tokenizerTrainSchema = {
  data: { type: 'string', default: 'brown', help: "'brown' or a .txt/.jsonl/.json/.parquet file" },
  textField: { type: 'string', default: 'text', help: 'JSONL field / Parquet column' },
  txtSplit: txtSplitOption,
  vocabSize: { type: 'int', default: 2048, help: 'vocabulary size (≥ 257)' },
  out: { type: 'string', default: 'tokenizer', help: 'directory to write tokenizer.json and tokenizer_config.json to' },
} satisfies Schema;

export const tokenizerEncodeSchema = {
  tokenizer: { type: 'string', default: '', help: 'tokenizer.json or a directory holding one' },
} satisfies Schema;

export async function runTokenizer(argv: string[], log: Log): Promise<void> {
  const [sub, ...rest] = argv;
  if (sub === 'train') {
    if (wantsHelp(rest)) { log(helpText('tokenizer train', 'Train a byte-level BPE tokenizer.', tokenizerTrainSchema)); return; }
    const { values: o } = parseCommandLine(tokenizerTrainSchema, rest);
    const text = await loadTextData(o.data, o.textField, 0, { txtSplit: o.txtSplit }); // a tokenizer needs no validation split
    const t0 = Date.now();
    const bpe = trainByteLevelBPE(text.train, { vocabSize: o.vocabSize });
    mkdirSync(o.out, { recursive: true });
    const path = saveTokenizer(bpe, o.out);
    log(`trained a ${bpe.vocabSize}-token byte-level BPE on ${text.source} in ${((Date.now() - t0) / 1000).toFixed(1)} s → ${path}`);
  } else if (sub === 'encode' || sub === 'decode') {
    if (wantsHelp(rest)) {
      log(helpText(`tokenizer ${sub}`, sub === 'encode' ? 'Print the token ids of a text.' : 'Print the text of token ids.', tokenizerEncodeSchema,
        `llamatrain tokenizer ${sub} --tokenizer <path> ${sub === 'encode' ? '"text"' : '12 34 56'}`));
      return;
    }
    const { values: o, positional } = parseCommandLine(tokenizerEncodeSchema, rest, { allowPositionals: true });
    if (!o.tokenizer) throw new UsageError('--tokenizer is required (a tokenizer.json or a directory with one, e.g. a run directory)');
    const tok = loadTokenizerFrom(o.tokenizer);
    if (sub === 'encode') log(JSON.stringify(tok.encode(positional.join(' '))));
    else {
      const ids = positional.flatMap((p) => p.split(/[\s,[\]]+/)).filter(Boolean).map(Number);
      if (ids.some((x) => !Number.isInteger(x) || x < 0 || x >= tok.vocabSize)) throw new UsageError(`token ids must be integers in [0, ${tok.vocabSize})`);
      log(tok.decode(ids));
    }
  } else {
    throw new UsageError(`tokenizer: unknown subcommand '${sub ?? ''}'; use 'tokenizer train', 'tokenizer encode' or 'tokenizer decode'`);
  }
}

export const helps = {
  eval: helpText('eval', 'Loss, perplexity and bits per byte of a model on a dataset.', evalSchema),
  generate: helpText('generate', 'Continue a prompt.', generateSchema, 'llamatrain generate --model <dir> [--prompt "text" | "text"] [options]'),
};
