// Text sources, browser-safe part: turning file *contents* into documents (strings). Reading files from disk is
// in node-sources.ts; in a browser, hand these functions the text or ArrayBuffer of a fetched/uploaded file.
// Every error names the source (file name) and, where there is one, the line. Parquet is in parquet.ts (its parser,
// hyparquet, is only loaded by apps that import `llamatrain/parquet` or `llamatrain/node`).

import { InputError } from '../core/errors.js';

/**
 * How a plain-text file is cut into documents (see `splitTextDocuments`): 'auto' (the default), 'paragraph',
 * 'line', 'file' (the whole file is one document) or `chunk:N` (pieces of at most N characters).
 */
export type TextSplit = 'auto' | 'file' | 'paragraph' | 'line' | `chunk:${number}`;

/** The size 'auto' groups paragraphs (or lines) up to, in characters: about 500 tokens of English. */
export const AUTO_DOCUMENT_CHARS = 2000;

const SPLITS = "'auto', 'paragraph', 'line', 'file' or 'chunk:N' (N characters per document, e.g. chunk:2000)";

/** Reads a split's name ('auto', 'paragraph', 'line', 'file', 'chunk:N'); throws an InputError naming `where`. */
export function parseTextSplit(value: unknown, where = 'split'): TextSplit {
  if (value === 'auto' || value === 'file' || value === 'paragraph' || value === 'line') return value;
  if (value === 'paragraphs') return 'paragraph';
  if (value === 'lines') return 'line';
  const m = typeof value === 'string' ? /^chunk:(\d+)$/.exec(value) : null;
  if (m) {
    const n = Number(m[1]);
    if (Number.isSafeInteger(n) && n >= 1) return `chunk:${n}`;
  }
  throw new InputError(`${where}: ${JSON.stringify(value) ?? String(value)} is not a text split; use ${SPLITS}`, { source: where });
}

/** Where to cut `text` so a piece ends at or before `end`: never between the two halves of a surrogate pair. */
function safeCut(text: string, end: number): number {
  if (end < text.length && end > 0) {
    const c = text.charCodeAt(end);
    if (c >= 0xdc00 && c <= 0xdfff) return end - 1; // end would split a pair: cut before its high half
  }
  return end;
}

/**
 * Cuts text into pieces of at most `n` characters (UTF-16 units), each ending after the last whitespace of its
 * second half when there is one (so words stay whole), else at n. Concatenated, the pieces are the text again.
 */
export function chunkText(text: string, n: number): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < text.length) {
    if (text.length - i <= n) { out.push(text.slice(i)); break; }
    let end = safeCut(text, i + n);
    if (end <= i) end = i + 2; // n = 1 on a surrogate pair: keep the pair whole
    for (let j = end - 1; j > i + n / 2; j--) {
      const c = text.charCodeAt(j);
      if (c === 0x20 || c === 0x0a || c === 0x09 || c === 0x0d) { end = j + 1; break; }
    }
    out.push(text.slice(i, end));
    i = end;
  }
  return out;
}

/** Joins consecutive units (separated by `sep`) into documents of at most `max` characters; a longer unit is chunked. */
function group(units: string[], sep: string, max: number): string[] {
  const out: string[] = [];
  let cur = '';
  for (const u of units) {
    if (u.length > max) {
      if (cur) out.push(cur);
      cur = '';
      out.push(...chunkText(u, max).map((p) => p.trim()).filter((p) => p.length > 0));
    } else if (cur && cur.length + sep.length + u.length > max) {
      out.push(cur);
      cur = u;
    } else {
      cur = cur ? cur + sep + u : u;
    }
  }
  if (cur) out.push(cur);
  return out;
}

/**
 * Plain text → documents. Documents are what packing keeps apart (each ends with EOS, attention never crosses
 * one) and what the validation split holds out, so a book must become many of them:
 * - 'auto' (default): paragraphs (blocks separated by blank lines), or the lines when the text has no blank line,
 *   joined in order into documents of up to AUTO_DOCUMENT_CHARS characters (a longer paragraph is cut at word
 *   boundaries). Paragraphs stay whole, and a document spans several of them so the model sees context.
 * - 'paragraph': each paragraph; 'line': each non-empty line; 'file': the whole text as one document;
 * - 'chunk:N': pieces of at most N characters, cut after a whitespace where one is near (see `chunkText`).
 * Throws an InputError if the text is empty or only whitespace.
 */
export function splitTextDocuments(text: string, source: string, split: TextSplit = 'auto'): string[] {
  if (text.length === 0) throw new InputError(`${source}: file is empty (0 bytes); expected text to train on`, { source });
  if (text.trim().length === 0) throw new InputError(`${source}: file contains only whitespace (${text.length} characters); expected text to train on`, { source });
  const paragraphs = (): string[] => text.split(/\r?\n[ \t]*\r?\n/).map((p) => p.trim()).filter((p) => p.length > 0);
  const lines = (): string[] => text.split(/\r?\n/).filter((l) => l.trim().length > 0);
  switch (split) {
    case 'file':
      return [text];
    case 'paragraph':
      return paragraphs();
    case 'line':
      return lines();
    case 'auto': {
      const ps = paragraphs();
      return ps.length >= 2 ? group(ps, '\n\n', AUTO_DOCUMENT_CHARS) : group(lines().map((l) => l.trim()), '\n', AUTO_DOCUMENT_CHARS);
    }
    default: {
      const n = Number(/^chunk:(\d+)$/.exec(String(split))?.[1]);
      if (!Number.isSafeInteger(n) || n < 1) parseTextSplit(split, source); // throws the message listing the splits
      return chunkText(text, n).filter((p) => p.trim().length > 0);
    }
  }
}

/** Bytes that decode to U+FFFD legitimately (EF BF BD): not counted as invalid UTF-8. */
function countReplacementBytes(bytes: Uint8Array): number {
  let n = 0;
  for (let i = 0; i + 2 < bytes.length; i++) if (bytes[i] === 0xef && bytes[i + 1] === 0xbf && bytes[i + 2] === 0xbd) n++;
  return n;
}

/** Invalid UTF-8 sequences tolerated (decoded as U+FFFD, as a browser does) before a file is called "not text". */
export const MAX_INVALID_UTF8_RATIO = 0.001;

/**
 * The bytes of a text file (or a JSON/JSONL one) → a string, refusing what is not text: NUL bytes (binary files:
 * a model, an archive, UTF-16 text) or more than 1 in 1000 bytes that are not valid UTF-8 (another encoding, or
 * binary). A leading UTF-8 byte-order mark is dropped. Errors are InputErrors naming `source` and the offset.
 */
export function decodeText(bytes: Uint8Array, source: string): string {
  const nul = bytes.indexOf(0);
  if (nul >= 0) {
    throw new InputError(`${source}: not a text file: it contains NUL bytes (the first at byte ${nul}), as binary files (or UTF-16 text) do; ` +
      'expected UTF-8 text — give a .txt, .jsonl, .json or .parquet file, or convert the text to UTF-8', { source });
  }
  const text = new TextDecoder('utf-8').decode(bytes); // drops a BOM; invalid sequences become U+FFFD
  let bad = -countReplacementBytes(bytes);
  let first = -1;
  for (let i = text.indexOf('\ufffd'); i >= 0; i = text.indexOf('\ufffd', i + 1)) {
    bad++;
    if (first < 0) first = i;
  }
  if (bad > 0 && bad > MAX_INVALID_UTF8_RATIO * bytes.length) {
    throw new InputError(`${source}: not UTF-8 text: ${bad} invalid UTF-8 sequence(s) in ${bytes.length} bytes (the first near character ${first}); ` +
      'it is binary or in another encoding — convert it to UTF-8 (e.g. iconv -f latin1 -t utf-8 in > out)', { source });
  }
  return text;
}

const kind = (v: unknown): string =>
  v === null ? 'null' : v === undefined ? 'nothing' : Array.isArray(v) ? 'an array' : typeof v === 'object' ? 'an object' : `a ${typeof v}`;

/** One JSON record → its text: a string, or an object's `field` string. `where` names the record in errors. */
function recordText(v: unknown, field: string, where: string, source: string): string {
  if (typeof v === 'string') return v;
  if (v === null || typeof v !== 'object' || Array.isArray(v)) {
    throw new InputError(`${where}: is ${kind(v)}, expected a string or an object with a "${field}" field`, { source });
  }
  if (!(field in v)) {
    const keys = Object.keys(v);
    throw new InputError(`${where}: has no field "${field}"; its fields are: ${keys.length ? keys.join(', ') : '(none)'}. Pick the text field with the field option`, { source });
  }
  const t = (v as Record<string, unknown>)[field];
  if (typeof t !== 'string') throw new InputError(`${where}: field "${field}" is ${kind(t)}, expected a string`, { source });
  return t;
}

/**
 * A .json data file → documents: an array of strings, or of objects whose `field` is a string (one record: one
 * object). Files that are JSON Lines despite the name (as `datasets`' to_json writes them) are read as JSONL.
 * Anything else is refused with an InputError saying what the file holds.
 */
export function parseJsonDocuments(text: string, field: string, source: string): string[] {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  if (text.trim().length === 0) throw new InputError(`${source}: file is empty; expected a JSON array of records with a "${field}" field`, { source });
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    const firstLine = text.trimStart().split('\n', 1)[0]!.trim();
    let jsonl = false;
    try { jsonl = firstLine.startsWith('{') && typeof JSON.parse(firstLine) === 'object'; } catch { /* not JSONL either */ }
    if (jsonl) return parseJsonl(text, field, source);
    throw new InputError(`${source}: not valid JSON (${(e as Error).message}); expected a JSON array of strings or of objects with a "${field}" field, ` +
      'or JSON Lines (one object per line)', { cause: e, source });
  }
  if (Array.isArray(v)) {
    if (v.length === 0) throw new InputError(`${source}: the JSON array is empty; expected records with a "${field}" field`, { source });
    return v.map((r, i) => recordText(r, field, `${source}: record ${i}`, source));
  }
  if (v !== null && typeof v === 'object' && field in v) return [recordText(v, field, `${source}: the object`, source)];
  const keys = v !== null && typeof v === 'object' ? Object.keys(v) : [];
  throw new InputError(`${source}: holds ${kind(v)}${keys.length ? ` with the keys ${keys.slice(0, 8).join(', ')}${keys.length > 8 ? ', …' : ''}` : ''}; ` +
    `expected an array of strings or of objects with a "${field}" field (records under one key: extract that array, e.g. with jq '.key')`, { source });
}

/**
 * One JSONL line → the string in `field`, or null for a blank line. `lineNo` is 1-based. Errors name
 * `source:line`.
 */
export function parseJsonlLine(line: string, lineNo: number, field: string, source: string): string | null {
  if (lineNo === 1 && line.charCodeAt(0) === 0xfeff) line = line.slice(1); // a UTF-8 byte-order mark
  if (line.trim().length === 0) return null;
  const nul = line.indexOf('\0');
  if (nul >= 0) {
    throw new InputError(`${source}:${lineNo}: line ${lineNo} contains a NUL byte (character ${nul}); is this a binary file? Expected UTF-8 JSON lines`, { source });
  }
  let obj: unknown;
  try {
    obj = JSON.parse(line);
  } catch (e) {
    const snippet = line.length > 60 ? `${line.slice(0, 60)}…` : line;
    throw new InputError(`${source}:${lineNo}: invalid JSON on line ${lineNo} (${(e as Error).message}); each line must be one JSON object, got: ${snippet}`, { cause: e, source });
  }
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
    throw new InputError(`${source}:${lineNo}: line ${lineNo} is ${obj === null ? 'null' : Array.isArray(obj) ? 'an array' : `a ${typeof obj}`}, expected a JSON object with a "${field}" field`, { source });
  }
  if (!(field in obj)) {
    const keys = Object.keys(obj);
    throw new InputError(`${source}:${lineNo}: line ${lineNo} has no field "${field}"; its fields are: ${keys.length ? keys.join(', ') : '(none)'}. Pick the text field with the field option`, { source });
  }
  const v = (obj as Record<string, unknown>)[field];
  if (typeof v !== 'string') {
    throw new InputError(`${source}:${lineNo}: field "${field}" on line ${lineNo} is ${v === null ? 'null' : Array.isArray(v) ? 'an array' : `a ${typeof v}`}, expected a string`, { source });
  }
  return v;
}

/** Whole JSONL text → the `field` string of every line (blank lines skipped). */
export function parseJsonl(text: string, field: string, source: string): string[] {
  if (text.length === 0) throw new InputError(`${source}: file is empty (0 bytes); expected JSON lines with a "${field}" field`, { source });
  const out: string[] = [];
  const lines = text.split('\n');
  lines.forEach((raw, i) => {
    const v = parseJsonlLine(raw.endsWith('\r') ? raw.slice(0, -1) : raw, i + 1, field, source);
    if (v !== null) out.push(v);
  });
  if (out.length === 0) throw new InputError(`${source}: no records: the file has ${lines.length} line(s), all blank; expected JSON lines with a "${field}" field`, { source });
  return out;
}
