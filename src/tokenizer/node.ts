// Node-only tokenizer file helpers: load tokenizer.json (+ tokenizer_config.json beside it) from disk, save a
// trained tokenizer. Browser code uses `loadTokenizer(json, config)` from hf.ts with fetched JSON instead.
import { existsSync, readFileSync, statSync, writeFileSync, mkdirSync, renameSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { ByteLevelBPE } from './bpe.js';
import { HFTokenizer } from './hf.js';
import { FileAccessError, InputError } from '../core/errors.js';

import './jinja.js'; // chat templates: the Jinja renderer (Node apps load files and render templates)
export * from './index.js';
export { HFTokenizer, loadTokenizer, type TokenizersJs } from './hf.js';

/**
 * Loads `path`: a tokenizer.json file, or a directory containing one (a Hugging Face model folder). A
 * tokenizer_config.json in the same directory is used for special tokens, decode options and the chat template
 * (`chat_template`: a string or a list of named templates); a chat_template.jinja file beside it (where newer
 * transformers save the template) is used when tokenizer_config.json has none.
 */
export function loadTokenizerFile(path: string): HFTokenizer {
  let file = path;
  try {
    if (statSync(path).isDirectory()) file = join(path, 'tokenizer.json');
  } catch (e) {
    throw new FileAccessError(`${path}: no such file or directory; expected a tokenizer.json or a directory holding one`, { cause: e, code: 'ENOENT' });
  }
  if (!existsSync(file)) throw new FileAccessError(`${path}: directory has no tokenizer.json`, { code: 'ENOENT' });
  const text = readFileSync(file, 'utf8').replace(/^\uFEFF/, ''); // a UTF-8 byte-order mark
  if (text.trim().length === 0) throw new InputError(`${file}: file is empty; expected a Hugging Face tokenizer.json`, { source: file });
  const cfgPath = join(dirname(file), 'tokenizer_config.json');
  let config: Record<string, unknown> = {};
  if (existsSync(cfgPath)) {
    try {
      config = JSON.parse(readFileSync(cfgPath, 'utf8').replace(/^\uFEFF/, ''));
    } catch (e) {
      throw new InputError(`${cfgPath}: invalid JSON (${(e as Error).message})`, { cause: e, source: cfgPath });
    }
    if (config === null || typeof config !== 'object' || Array.isArray(config)) {
      throw new InputError(`${cfgPath}: expected a JSON object of tokenizer settings, found ${JSON.stringify(config)?.slice(0, 40)}`, { source: cfgPath });
    }
  }
  const jinjaPath = join(dirname(file), 'chat_template.jinja');
  let templateSource = cfgPath;
  if ((config.chat_template === undefined || config.chat_template === null) && existsSync(jinjaPath)) {
    config = { ...config, chat_template: readFileSync(jinjaPath, 'utf8') };
    templateSource = jinjaPath;
  }
  const tok = new HFTokenizer(text, config, file);
  tok.chatTemplateSource = templateSource;
  return tok;
}

/**
 * Saves a trained tokenizer as `dir/tokenizer.json` and `dir/tokenizer_config.json` (creating `dir`); returns
 * the tokenizer.json path. Files are written to a temporary name and renamed, so a crash leaves no half file.
 */
export function saveTokenizer(tokenizer: ByteLevelBPE, dir: string): string {
  mkdirSync(dir, { recursive: true });
  const write = (name: string, obj: unknown): string => {
    const p = join(dir, name);
    const tmp = join(dir, `.${basename(p)}.tmp-${process.pid}`);
    writeFileSync(tmp, JSON.stringify(obj, null, 2) + '\n');
    renameSync(tmp, p);
    return p;
  };
  const p = write('tokenizer.json', tokenizer.toJSON());
  write('tokenizer_config.json', tokenizer.tokenizerConfig());
  return p;
}
