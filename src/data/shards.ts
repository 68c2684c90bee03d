// Token shard files: a pre-tokenized corpus as a flat token stream, so training reads fixed windows at file
// offsets instead of holding text or tokens in memory. This file is the browser-safe part (format, in-memory
// codec, windows over a token array); reading and writing files lives in node-sources.ts.
//
// Format (version 1), all integers little-endian:
//   offset  size  field
//        0     8  magic, ASCII "LTTOKENS"
//        8     4  u32 version = 1
//       12     4  u32 bytes per token: 2 (uint16 ids, vocab ≤ 65536) or 4 (uint32 ids)
//       16     8  u64 token count N (stored as lo u32, hi u32; N < 2^53)
//       24     4  u32 vocabulary size of the tokenizer that wrote it (0 = not recorded)
//       28     4  u32 reserved, 0
//       32   N·w  the token ids, back to back; documents are separated by the writer's EOS id (if any)
// A reader checks the magic, the version, and that the file is exactly 32 + N·w bytes long.
import type { Dataset } from './dataset.js';
import { checkIndex } from './dataset.js';
import { segmentWindow, type PackedRow } from './packing.js';

export const SHARD_MAGIC = 'LTTOKENS';
export const SHARD_VERSION = 1;
export const SHARD_HEADER_BYTES = 32;

export type ShardDtype = 'uint16' | 'uint32';

export interface ShardHeader {
  version: number;
  dtype: ShardDtype;
  bytesPerToken: 2 | 4;
  tokenCount: number;
  /** Vocabulary size recorded by the writer (0 when not recorded). */
  vocabSize: number;
}

export function encodeShardHeader(h: { dtype: ShardDtype; tokenCount: number; vocabSize?: number }): Uint8Array {
  const buf = new Uint8Array(SHARD_HEADER_BYTES);
  const dv = new DataView(buf.buffer);
  for (let i = 0; i < 8; i++) buf[i] = SHARD_MAGIC.charCodeAt(i);
  dv.setUint32(8, SHARD_VERSION, true);
  dv.setUint32(12, h.dtype === 'uint16' ? 2 : 4, true);
  if (!Number.isSafeInteger(h.tokenCount) || h.tokenCount < 0) throw new Error(`token shard: token count must be a non-negative safe integer, got ${h.tokenCount}`);
  dv.setUint32(16, h.tokenCount % 0x100000000, true);
  dv.setUint32(20, Math.floor(h.tokenCount / 0x100000000), true);
  dv.setUint32(24, h.vocabSize ?? 0, true);
  dv.setUint32(28, 0, true);
  return buf;
}

/**
 * Parses and checks a header. `fileBytes` (the whole file's size, when known) is checked against the count.
 * `source` names the file in errors.
 */
export function parseShardHeader(header: Uint8Array, source: string, fileBytes?: number): ShardHeader {
  if (header.length < SHARD_HEADER_BYTES) {
    if (header.length === 0) throw new Error(`${source}: file is empty (0 bytes); expected a token shard of at least ${SHARD_HEADER_BYTES} header bytes`);
    throw new Error(`${source}: ${header.length} bytes is too short for a token shard header (${SHARD_HEADER_BYTES} bytes); the file is truncated or not a shard`);
  }
  const magic = String.fromCharCode(...header.subarray(0, 8));
  if (magic !== SHARD_MAGIC) throw new Error(`${source}: not a llamatrain token shard (magic ${JSON.stringify(magic)}, expected "${SHARD_MAGIC}")`);
  const dv = new DataView(header.buffer, header.byteOffset, SHARD_HEADER_BYTES);
  const version = dv.getUint32(8, true);
  if (version !== SHARD_VERSION) throw new Error(`${source}: token shard version ${version} is not supported (this reader knows version ${SHARD_VERSION}); rewrite the shard with this llamatrain`);
  const w = dv.getUint32(12, true);
  if (w !== 2 && w !== 4) throw new Error(`${source}: token shard says ${w} bytes per token; expected 2 (uint16) or 4 (uint32)`);
  const tokenCount = dv.getUint32(16, true) + dv.getUint32(20, true) * 0x100000000;
  if (!Number.isSafeInteger(tokenCount)) throw new Error(`${source}: token count in the header is too large (${tokenCount})`);
  const vocabSize = dv.getUint32(24, true);
  if (fileBytes !== undefined && fileBytes !== SHARD_HEADER_BYTES + tokenCount * w) {
    throw new Error(`${source}: header says ${tokenCount} tokens × ${w} bytes = ${SHARD_HEADER_BYTES + tokenCount * w} bytes with the header, but the file has ${fileBytes} bytes; it is truncated or corrupt`);
  }
  return { version, dtype: w === 2 ? 'uint16' : 'uint32', bytesPerToken: w, tokenCount, vocabSize };
}

/** The smallest dtype for ids of a vocabulary of `vocabSize` tokens. */
export function dtypeForVocab(vocabSize: number): ShardDtype {
  return vocabSize <= 65536 ? 'uint16' : 'uint32';
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Encodes token ids into little-endian shard body bytes (no header). Throws on ids the dtype cannot hold. */
export function encodeTokens(tokens: ArrayLike<number>, dtype: ShardDtype, source = 'token shard'): Uint8Array {
  const n = tokens.length;
  const max = dtype === 'uint16' ? 0xffff : 0xffffffff;
  const out = new Uint8Array(n * (dtype === 'uint16' ? 2 : 4));
  const dv = new DataView(out.buffer);
  for (let i = 0; i < n; i++) {
    const v = tokens[i]!;
    if (!Number.isInteger(v) || v < 0 || v > max) throw new Error(`${source}: token ${v} at offset ${i} does not fit in ${dtype}`);
    if (dtype === 'uint16') dv.setUint16(2 * i, v, true);
    else dv.setUint32(4 * i, v, true);
  }
  return out;
}

/** Decodes shard body bytes into ids (a copy, aligned; byte-swapped on big-endian hosts). */
export function decodeTokens(bytes: Uint8Array, dtype: ShardDtype): Uint16Array | Uint32Array {
  const w = dtype === 'uint16' ? 2 : 4;
  const n = Math.floor(bytes.length / w);
  const out = dtype === 'uint16' ? new Uint16Array(n) : new Uint32Array(n);
  if (LITTLE_ENDIAN) {
    new Uint8Array(out.buffer).set(bytes.subarray(0, n * w));
  } else {
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let i = 0; i < n; i++) out[i] = w === 2 ? dv.getUint16(2 * i, true) : dv.getUint32(4 * i, true);
  }
  return out;
}

/** A whole shard file in memory: header + body. */
export function encodeTokenShard(tokens: ArrayLike<number>, options: { dtype?: ShardDtype; vocabSize?: number } = {}): Uint8Array {
  const dtype = options.dtype ?? (options.vocabSize !== undefined ? dtypeForVocab(options.vocabSize) : maxOf(tokens) <= 0xffff ? 'uint16' : 'uint32');
  if (options.vocabSize !== undefined) checkTokenIds(tokens, options.vocabSize, 'encodeTokenShard', 0);
  const header = encodeShardHeader({ dtype, tokenCount: tokens.length, vocabSize: options.vocabSize });
  const body = encodeTokens(tokens, dtype);
  const out = new Uint8Array(header.length + body.length);
  out.set(header, 0);
  out.set(body, header.length);
  return out;
}

/** Parses a whole shard held in memory. */
export function decodeTokenShard(bytes: Uint8Array, source = 'token shard'): { header: ShardHeader; tokens: Uint16Array | Uint32Array } {
  const header = parseShardHeader(bytes.subarray(0, SHARD_HEADER_BYTES), source, bytes.length);
  return { header, tokens: decodeTokens(bytes.subarray(SHARD_HEADER_BYTES), header.dtype) };
}

/**
 * Throws if any id is ≥ vocabSize, naming the source and the token offset (`baseOffset` + index), which is
 * where the bad id sits in the file's token stream.
 */
export function checkTokenIds(tokens: ArrayLike<number>, vocabSize: number, source: string, baseOffset: number): void {
  for (let i = 0; i < tokens.length; i++) {
    const v = tokens[i]!;
    if (v >= vocabSize) {
      throw new Error(`${source}: token id ${v} at token offset ${baseOffset + i} is ≥ vocabSize ${vocabSize}; the shard was written by a different tokenizer, or the model's vocabulary is too small`);
    }
  }
}

function maxOf(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) if (a[i]! > m) m = a[i]!;
  return m;
}

export interface WindowOptions {
  /** Window length T (tokens per example). */
  seqLen: number;
  /** Distance between window starts (default seqLen: non-overlapping windows). */
  stride?: number;
  /** Documents in the stream end with this id: segments restart after it (packing semantics). */
  eosId?: number;
  /** Ids ≥ vocabSize raise an error naming the source and token offset. */
  vocabSize?: number;
  /** Label of unscored positions (default -100). */
  ignoreIndex?: number;
}

/**
 * Fixed windows over one token stream: example i is tokens [i·stride, i·stride + seqLen), returned as a
 * PackedRow (see `segmentWindow`): labels are the window's own ids (the loss shifts them, so the last position of
 * a window has no target and the first has no predictor), with document boundaries at each EOS when `eosId` is
 * given. A tail shorter than seqLen is not used.
 */
export function windowCount(tokenCount: number, seqLen: number, stride: number): number {
  return tokenCount < seqLen ? 0 : Math.floor((tokenCount - seqLen) / stride) + 1;
}

export function checkWindowOptions(o: WindowOptions): { seqLen: number; stride: number } {
  const stride = o.stride ?? o.seqLen;
  if (!Number.isInteger(o.seqLen) || o.seqLen < 1) throw new Error(`token windows: seqLen must be a positive integer, got ${o.seqLen}`);
  if (!Number.isInteger(stride) || stride < 1) throw new Error(`token windows: stride must be a positive integer, got ${stride}`);
  return { seqLen: o.seqLen, stride };
}

/** Windows over a token array in memory (browser-friendly counterpart of the file-backed TokenShardDataset). */
export class TokenWindowDataset implements Dataset<PackedRow> {
  readonly name: string;
  private readonly seqLen: number;
  private readonly stride: number;
  constructor(private readonly tokens: ArrayLike<number>, private readonly options: WindowOptions & { name?: string }) {
    ({ seqLen: this.seqLen, stride: this.stride } = checkWindowOptions(options));
    this.name = options.name ?? 'an in-memory token stream';
  }
  get length(): number {
    return windowCount(this.tokens.length, this.seqLen, this.stride);
  }
  get(index: number): PackedRow {
    checkIndex(index, this.length, this.name);
    const start = index * this.stride;
    const win = Array.prototype.slice.call(this.tokens, start, start + this.seqLen) as number[];
    if (this.options.vocabSize !== undefined) checkTokenIds(win, this.options.vocabSize, this.name, start);
    return segmentWindow(win, this.options.eosId, this.options.ignoreIndex);
  }
}
