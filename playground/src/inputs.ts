// Checks of what a user hands the page — a text file, pasted text, a Hugging Face folder — before anything is
// read in full or sent to the worker. Each problem becomes one message that says what was expected, what was found
// and what to do. Pure (no DOM types beyond a name and a size, no library import): the Node tests use it too.

/** Largest text file the page takes: training a tokenizer on it and packing it happen in this tab's memory. */
export const MAX_TEXT_BYTES = 50 * 1024 * 1024;
/** Largest Hugging Face folder the page imports (weights are held in the tab, then in the backend's memory). */
export const MAX_MODEL_BYTES = 1536 * 1024 * 1024;

export type TextKind = 'txt' | 'jsonl';

export const mb = (n: number): string => `${(n / (1024 * 1024)).toFixed(1)} MB`;

/** A picked or dropped data file, judged by its name and size alone: its kind, or the reason it is refused. */
export function checkTextFile(name: string, size: number): { kind: TextKind } | { error: string } {
  const lower = name.toLowerCase();
  const kind: TextKind | null = lower.endsWith('.jsonl') ? 'jsonl' : lower.endsWith('.txt') ? 'txt' : null;
  if (!kind) return { error: `${name}: the playground trains on .txt or .jsonl files (one JSON object with a text field per line); this file is neither. Rename it if it is plain text.` };
  if (size === 0) return { error: `${name} is empty (0 bytes): there is no text to train on. Pick a file with some text in it.` };
  if (size > MAX_TEXT_BYTES) {
    return { error: `${name} is ${mb(size)}; the playground takes text files up to ${mb(MAX_TEXT_BYTES)} (the tokenizer is trained and the data packed in this tab). ` +
      `Use a part of it here, or train on all of it with the CLI: npx llamatrain train --data=${name}` };
  }
  return { kind };
}

/**
 * The first bytes of a file: null when they look like text, else why not. Text is valid UTF-8 without NUL bytes
 * and with few control characters; a file cut mid-character at `bytes`' end is still text.
 */
export function binaryReason(name: string, bytes: Uint8Array): string | null {
  let nul = 0, control = 0;
  for (const b of bytes) {
    if (b === 0) nul++;
    else if (b < 32 && b !== 9 && b !== 10 && b !== 13 && b !== 12) control++;
  }
  const what = `${name} does not look like text`;
  const fix = 'The playground trains on UTF-8 text (.txt) or JSON lines (.jsonl).';
  if (nul > 0) return `${what}: its first ${bytes.length.toLocaleString('en')} bytes hold ${nul.toLocaleString('en')} NUL byte(s), as binary files do. ${fix}`;
  if (control > bytes.length / 100) return `${what}: ${control.toLocaleString('en')} control characters in its first ${bytes.length.toLocaleString('en')} bytes. ${fix}`;
  try {
    // stream: true tolerates a character cut at the end of the sample
    new TextDecoder('utf-8', { fatal: true }).decode(bytes, { stream: true });
  } catch {
    return `${what}: it is not valid UTF-8. ${fix} Save it as UTF-8 and pick it again.`;
  }
  return null;
}

/** Pasted text: null when it is usable, else why not. */
export function checkPastedText(text: string): string | null {
  if (text.trim().length === 0) return 'The text box is empty: paste some text to train on (a few paragraphs at least), or pick the built-in corpus.';
  if (text.length > MAX_TEXT_BYTES) return `The pasted text has ${text.length.toLocaleString('en')} characters; the playground takes up to ${mb(MAX_TEXT_BYTES)}. Paste less.`;
  return null;
}

/** The files of a picked Hugging Face folder (their paths relative to it, and sizes). */
export interface FolderEntry { path: string; size: number }

export interface FolderPlan {
  config: string;
  weights: string[];
  /** model.safetensors.index.json of a sharded checkpoint, if any. */
  index: string | null;
  tokenizer: string;
  tokenizerConfig: string | null;
}

const base = (p: string): string => p.slice(p.lastIndexOf('/') + 1);

/**
 * Which files of a picked folder make the model: config.json, model.safetensors (or the shards an index names) and
 * tokenizer.json at the top of the folder (or of its one subfolder, as a zip unpacked into a folder gives).
 */
export function planFolder(entries: readonly FolderEntry[]): { plan: FolderPlan } | { error: string } {
  if (entries.length === 0) return { error: 'The folder is empty: pick a Hugging Face model folder (config.json, model.safetensors, tokenizer.json).' };
  const byName = new Map<string, FolderEntry>();
  // the folder's own files are the shallowest ones with these names (a picked folder's paths start with its name)
  for (const e of [...entries].sort((a, b) => a.path.split('/').length - b.path.split('/').length)) {
    if (!byName.has(base(e.path))) byName.set(base(e.path), e);
  }
  const names = [...new Set(entries.map((e) => base(e.path)))].sort();
  const shown = names.slice(0, 8).join(', ') + (names.length > 8 ? `, … (${names.length} files)` : '');
  const missing: string[] = [];
  const config = byName.get('config.json');
  const single = byName.get('model.safetensors');
  const index = byName.get('model.safetensors.index.json');
  const tokenizer = byName.get('tokenizer.json');
  if (!config) missing.push('config.json (the model\'s dimensions)');
  if (!single && !index) {
    const bin = names.find((n) => n.endsWith('.bin') || n.endsWith('.pt') || n.endsWith('.pth'));
    missing.push(bin ? `model.safetensors (found ${bin}: PyTorch pickles are not read; convert them to safetensors)` : 'model.safetensors (the weights)');
  }
  if (!tokenizer) missing.push('tokenizer.json');
  if (missing.length) return { error: `This folder is not a Hugging Face model folder: it has no ${missing.join(', no ')}. Found: ${shown}.` };
  const total = entries.reduce((n, e) => n + e.size, 0);
  if (total > MAX_MODEL_BYTES) return { error: `The folder holds ${mb(total)}; the playground imports models up to ${mb(MAX_MODEL_BYTES)} (the weights live in this tab). Fine-tune larger models with the CLI.` };
  if (config!.size === 0) return { error: `${config!.path} is empty (0 bytes); expected the model's config.json.` };
  const weights = single ? [single.path] : entries.filter((e) => /^model-\d+-of-\d+\.safetensors$/.test(base(e.path))).map((e) => e.path);
  return { plan: { config: config!.path, weights, index: single ? null : index!.path, tokenizer: tokenizer!.path,
    tokenizerConfig: byName.get('tokenizer_config.json')?.path ?? null } };
}
