// Node-only data helpers: reading text/JSONL/Parquet files, and writing and reading token shard files by offset
// (a corpus larger than memory is sampled window by window, never loaded whole). Browser code must not import
// this file; it imports `node:` modules. The format and parsing rules live in the browser-safe files.
import { closeSync, createReadStream, fstatSync, openSync, readSync, writeSync, renameSync, unlinkSync, statSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { extname } from 'node:path';
import { asyncBufferFromFile } from 'hyparquet';
import type { Dataset } from './dataset.js';
import { checkIndex } from './dataset.js';
import { segmentWindow, type PackedRow } from './packing.js';
import {
  SHARD_HEADER_BYTES,
  checkTokenIds,
  checkWindowOptions,
  decodeTokens,
  dtypeForVocab,
  encodeShardHeader,
  encodeTokens,
  parseShardHeader,
  windowCount,
  type ShardDtype,
  type ShardHeader,
  type WindowOptions,
} from './shards.js';
import { decodeText, parseJsonDocuments, parseJsonlLine, splitTextDocuments, type TextSplit } from './sources.js';
import { InputError } from '../core/errors.js';
import { iterateParquetText } from './parquet.js';
import { describeFsError, notRegularFileError, specialFileKind } from './node-fs-errors.js';
import { countBytes } from '../tokenizer/bytes.js';

async function fileSize(path: string, action: string): Promise<number> {
  let s: Awaited<ReturnType<typeof stat>>;
  try {
    s = await stat(path);
  } catch (e) {
    throw describeFsError(path, e, action);
  }
  if (s.isDirectory()) throw describeFsError(path, Object.assign(new Error('is a directory'), { code: 'EISDIR' }), action);
  const kind = specialFileKind(s);
  if (kind !== null) throw notRegularFileError(path, kind, action);
  return s.size;
}

/**
 * Whole-file reads (text, .json) hold the file and its text in memory: past this size, a streamed format is the
 * way (JSONL is read line by line; Parquet by row group).
 */
export const MAX_WHOLE_FILE_BYTES = 512 * 1024 * 1024;

// ---- text, JSONL, Parquet --------------------------------------------------------------------------------------

async function readFileText(path: string, action: string): Promise<string> {
  const size = await fileSize(path, action);
  if (size > MAX_WHOLE_FILE_BYTES) {
    throw new InputError(`${path}: ${size.toLocaleString('en-US')} bytes; ${action} reads the whole file, at most ${MAX_WHOLE_FILE_BYTES.toLocaleString('en-US')} ` +
      'bytes: convert it to JSONL (one {"text": …} record per line; read as a stream) or split it', { source: path });
  }
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (e) {
    throw describeFsError(path, e, action);
  }
  return decodeText(bytes, path);
}

/**
 * A plain-text file → documents (see `splitTextDocuments`; default 'auto': paragraphs grouped into documents of
 * about 2000 characters). Binary content, another encoding, an empty file → InputError naming the file.
 */
export async function readTextDocuments(path: string, options: { split?: TextSplit } = {}): Promise<string[]> {
  return splitTextDocuments(await readFileText(path, 'reading text'), path, options.split ?? 'auto');
}

/** A .json data file → documents (an array of strings or of records with `field`; see `parseJsonDocuments`). */
export async function readJsonDocuments(path: string, options: { field?: string } = {}): Promise<string[]> {
  return parseJsonDocuments(await readFileText(path, 'reading JSON'), options.field ?? 'text', path);
}

/** Streams the `field` string of every line of a JSONL file (line by line; blank lines skipped). */
export async function* iterateJsonlDocuments(path: string, options: { field?: string } = {}): AsyncGenerator<string> {
  const field = options.field ?? 'text';
  const size = await fileSize(path, 'reading JSONL');
  if (size === 0) throw new InputError(`${path}: file is empty (0 bytes); expected JSON lines with a "${field}" field`, { source: path });
  const rl = createInterface({ input: createReadStream(path, { encoding: 'utf8' }), crlfDelay: Infinity });
  let lineNo = 0;
  let records = 0;
  try {
    for await (const line of rl) {
      lineNo++;
      const v = parseJsonlLine(line, lineNo, field, path);
      if (v !== null) {
        records++;
        yield v;
      }
    }
  } finally {
    rl.close();
  }
  if (records === 0) throw new InputError(`${path}: no records: the file has ${lineNo} line(s), all blank; expected JSON lines with a "${field}" field`, { source: path });
}

export async function readJsonlDocuments(path: string, options: { field?: string } = {}): Promise<string[]> {
  const out: string[] = [];
  for await (const s of iterateJsonlDocuments(path, options)) out.push(s);
  return out;
}

/** Streams the string column `column` (default "text") of a Parquet file, one row group at a time. */
export async function* iterateParquetDocuments(path: string, options: { column?: string } = {}): AsyncGenerator<string> {
  const column = options.column ?? 'text';
  const size = await fileSize(path, 'reading Parquet');
  if (size === 0) throw new InputError(`${path}: file is empty (0 bytes); expected a Parquet file with a "${column}" column`, { source: path });
  yield* iterateParquetText(await asyncBufferFromFile(path), column, path);
}

export async function readParquetDocuments(path: string, options: { column?: string } = {}): Promise<string[]> {
  const out: string[] = [];
  for await (const s of iterateParquetDocuments(path, options)) out.push(s);
  return out;
}

export interface ReadDocumentsOptions {
  /** Format; by default from the extension: .jsonl/.ndjson → jsonl, .json → json, .parquet → parquet, else text. */
  format?: 'text' | 'jsonl' | 'json' | 'parquet';
  /** JSONL/JSON field holding the text (default "text"). */
  field?: string;
  /** Parquet column holding the text (default "text"). */
  column?: string;
  /** How a text file is cut into documents (default 'auto'; see splitTextDocuments). */
  split?: TextSplit;
}

export function detectFormat(path: string): 'text' | 'jsonl' | 'json' | 'parquet' {
  const ext = extname(path).toLowerCase();
  if (ext === '.jsonl' || ext === '.ndjson') return 'jsonl';
  if (ext === '.json') return 'json';
  if (ext === '.parquet') return 'parquet';
  return 'text';
}

/** Streams documents from a text, JSONL, JSON or Parquet file. */
export async function* iterateDocuments(path: string, options: ReadDocumentsOptions = {}): AsyncGenerator<string> {
  const format = options.format ?? detectFormat(path);
  if (format === 'jsonl') yield* iterateJsonlDocuments(path, { field: options.field });
  else if (format === 'json') yield* await readJsonDocuments(path, { field: options.field });
  else if (format === 'parquet') yield* iterateParquetDocuments(path, { column: options.column });
  else if (format === 'text') yield* await readTextDocuments(path, { split: options.split });
  else throw new InputError(`${path}: unknown format ${JSON.stringify(format)}; use 'text', 'jsonl', 'json' or 'parquet'`, { source: path });
}

export async function readDocuments(path: string, options: ReadDocumentsOptions = {}): Promise<string[]> {
  const out: string[] = [];
  for await (const s of iterateDocuments(path, options)) out.push(s);
  return out;
}

// ---- token shards ----------------------------------------------------------------------------------------------

/**
 * Writes a token shard incrementally (append chunks; the header's count is filled in at `close()`), to a
 * temporary name renamed into place at the end, so an interrupted write never leaves a shard that looks complete.
 */
export class TokenShardWriter {
  private fd: number;
  private count = 0;
  private readonly tmp: string;
  readonly dtype: ShardDtype;
  private closed = false;

  constructor(readonly path: string, readonly options: { vocabSize?: number; dtype?: ShardDtype } = {}) {
    this.dtype = options.dtype ?? (options.vocabSize !== undefined ? dtypeForVocab(options.vocabSize) : 'uint32');
    if (options.vocabSize !== undefined && this.dtype === 'uint16' && options.vocabSize > 65536) {
      throw new Error(`${path}: vocabSize ${options.vocabSize} does not fit uint16 ids; use dtype 'uint32'`);
    }
    this.tmp = `${path}.tmp-${process.pid}`;
    try {
      this.fd = openSync(this.tmp, 'w');
    } catch (e) {
      throw describeFsError(this.tmp, e, 'writing a token shard');
    }
    writeSync(this.fd, encodeShardHeader({ dtype: this.dtype, tokenCount: 0, vocabSize: options.vocabSize }), 0, SHARD_HEADER_BYTES, 0);
  }

  /** Appends token ids (checked against vocabSize when given). */
  append(tokens: ArrayLike<number>): void {
    if (this.closed) throw new Error(`${this.path}: append after close`);
    if (this.options.vocabSize !== undefined) checkTokenIds(tokens, this.options.vocabSize, this.path, this.count);
    const body = encodeTokens(tokens, this.dtype, this.path);
    writeSync(this.fd, body, 0, body.length, SHARD_HEADER_BYTES + this.count * (this.dtype === 'uint16' ? 2 : 4));
    this.count += tokens.length;
  }

  get tokenCount(): number {
    return this.count;
  }

  close(): ShardHeader {
    if (this.closed) throw new Error(`${this.path}: already closed`);
    this.closed = true;
    writeSync(this.fd, encodeShardHeader({ dtype: this.dtype, tokenCount: this.count, vocabSize: this.options.vocabSize }), 0, SHARD_HEADER_BYTES, 0);
    closeSync(this.fd);
    renameSync(this.tmp, this.path);
    return { version: 1, dtype: this.dtype, bytesPerToken: this.dtype === 'uint16' ? 2 : 4, tokenCount: this.count, vocabSize: this.options.vocabSize ?? 0 };
  }

  /** Gives up: closes and deletes the temporary file. */
  abort(): void {
    if (this.closed) return;
    this.closed = true;
    closeSync(this.fd);
    try {
      unlinkSync(this.tmp);
    } catch {
      /* already gone */
    }
  }
}

/**
 * Tokenizes documents (any iterable or async iterable, e.g. `iterateDocuments(path)`) straight into a shard file,
 * one document at a time, each followed by `eosId` when given — so a corpus larger than memory becomes a shard
 * without ever being held whole. Returns the counts, including the UTF-8 bytes of the text (for bits per byte).
 */
export async function encodeDocumentsToShard(
  path: string,
  docs: Iterable<string> | AsyncIterable<string>,
  encode: (text: string) => ArrayLike<number>,
  options: { vocabSize?: number; dtype?: ShardDtype; eosId?: number } = {},
): Promise<{ documents: number; tokens: number; bytes: number }> {
  const w = new TokenShardWriter(path, options);
  let documents = 0, bytes = 0;
  try {
    for await (const doc of docs) {
      const ids = encode(doc);
      w.append(ids);
      if (options.eosId !== undefined) w.append([options.eosId]);
      documents++;
      bytes += countBytes(doc);
    }
  } catch (e) {
    w.abort();
    throw e;
  }
  if (documents === 0) {
    w.abort();
    throw new Error(`${path}: no documents to write; the source is empty`);
  }
  const h = w.close();
  return { documents, tokens: h.tokenCount, bytes };
}

/** Writes `tokens` as one shard file. */
export function writeTokenShardFile(path: string, tokens: ArrayLike<number>, options: { vocabSize?: number; dtype?: ShardDtype } = {}): ShardHeader {
  const w = new TokenShardWriter(path, options);
  try {
    w.append(tokens);
  } catch (e) {
    w.abort();
    throw e;
  }
  return w.close();
}

/** Reads and checks the header of a shard file (magic, version, size). */
export function readTokenShardHeader(path: string): ShardHeader {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw describeFsError(path, e, 'reading a token shard');
  }
  try {
    const size = fstatSync(fd).size;
    const head = new Uint8Array(Math.min(SHARD_HEADER_BYTES, size));
    readSync(fd, head, 0, head.length, 0);
    return parseShardHeader(head, path, size);
  } finally {
    closeSync(fd);
  }
}

/** Reads tokens [start, start + count) of a shard file at their byte offset (no whole-file read). */
export function readShardTokens(fd: number, header: ShardHeader, start: number, count: number, path: string): Uint16Array | Uint32Array {
  if (start < 0 || count < 0 || start + count > header.tokenCount) throw new RangeError(`${path}: tokens ${start}…${start + count} are outside the shard's ${header.tokenCount} tokens`);
  const w = header.bytesPerToken;
  const bytes = new Uint8Array(count * w);
  let done = 0;
  while (done < bytes.length) {
    const n = readSync(fd, bytes, done, bytes.length - done, SHARD_HEADER_BYTES + start * w + done);
    if (n === 0) throw new Error(`${path}: unexpected end of file at token ${start + done / w}; the shard is truncated`);
    done += n;
  }
  return decodeTokens(bytes, header.dtype);
}

/**
 * Scans a whole shard in chunks and throws at the first id ≥ vocabSize (naming the file and token offset).
 * Memory use is one chunk, whatever the shard's size.
 */
export function validateTokenShardFile(path: string, vocabSize: number, chunkTokens = 1 << 20): ShardHeader {
  const header = readTokenShardHeader(path);
  const fd = openSync(path, 'r');
  try {
    for (let start = 0; start < header.tokenCount; start += chunkTokens) {
      const n = Math.min(chunkTokens, header.tokenCount - start);
      checkTokenIds(readShardTokens(fd, header, start, n, path), vocabSize, path, start);
    }
  } finally {
    closeSync(fd);
  }
  return header;
}

interface OpenShard {
  path: string;
  header: ShardHeader;
  fd: number | null;
  windows: number;
  firstWindow: number; // global index of this shard's first window
}

/**
 * Fixed-length windows over one or more shard files, read on demand at file offsets: example i is a PackedRow of
 * seqLen tokens (labels = the ids, unshifted; document boundaries after each `eosId`; see `segmentWindow`).
 * Windows do not cross files; each file's tail shorter than seqLen is unused. Every window read is checked against
 * `vocabSize` (default: the vocab size recorded in the shard, if any); a bad id names the file and token offset.
 * Call `close()` to release the file descriptors.
 */
export class TokenShardDataset implements Dataset<PackedRow> {
  readonly name: string;
  readonly seqLen: number;
  readonly stride: number;
  private readonly shards: OpenShard[];
  private readonly total: number;

  constructor(files: string | string[], readonly options: WindowOptions) {
    const list = typeof files === 'string' ? [files] : files;
    if (list.length === 0) throw new Error('TokenShardDataset: no shard files given');
    ({ seqLen: this.seqLen, stride: this.stride } = checkWindowOptions(options));
    let first = 0;
    this.shards = list.map((path) => {
      const header = readTokenShardHeader(path);
      const windows = windowCount(header.tokenCount, this.seqLen, this.stride);
      const s = { path, header, fd: null, windows, firstWindow: first };
      first += windows;
      return s;
    });
    this.total = first;
    this.name = list.length === 1 ? list[0]! : `${list.length} shard files (${list[0]}, …)`;
    if (this.total === 0) {
      const tokens = this.shards.reduce((a, s) => a + s.header.tokenCount, 0);
      throw new Error(`dataset is empty: expected at least one window of ${this.seqLen} tokens, found 0 in ${this.name} (${tokens} tokens in all, no file has ${this.seqLen}); lower seqLen or add data`);
    }
  }

  get length(): number {
    return this.total;
  }

  /** Token count over all files. */
  get tokenCount(): number {
    return this.shards.reduce((a, s) => a + s.header.tokenCount, 0);
  }

  get(index: number): PackedRow {
    checkIndex(index, this.total, this.name);
    let lo = 0;
    let hi = this.shards.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.shards[mid]!.firstWindow <= index) lo = mid;
      else hi = mid - 1;
    }
    const s = this.shards[lo]!;
    if (s.fd === null) {
      try {
        s.fd = openSync(s.path, 'r');
      } catch (e) {
        throw describeFsError(s.path, e, 'reading a token shard');
      }
    }
    const start = (index - s.firstWindow) * this.stride;
    const tokens = readShardTokens(s.fd, s.header, start, this.seqLen, s.path);
    const vocab = this.options.vocabSize ?? (s.header.vocabSize || undefined);
    if (vocab !== undefined) checkTokenIds(tokens, vocab, s.path, start);
    return segmentWindow(tokens, this.options.eosId, this.options.ignoreIndex);
  }

  close(): void {
    for (const s of this.shards) {
      if (s.fd !== null) closeSync(s.fd);
      s.fd = null;
    }
  }
}

/** Size of a file in bytes (e.g. to report the UTF-8 bytes of a raw text split). */
export function fileBytes(path: string): number {
  try {
    return statSync(path).size;
  } catch (e) {
    throw describeFsError(path, e, 'reading its size');
  }
}
