// Byte counting for bits-per-byte, the tokenizer-independent way to compare language models:
//   bpb = (total NLL in nats over the scored tokens) / ln 2 / (UTF-8 bytes of the text those tokens encode).
// Special tokens (EOS/BOS) encode 0 bytes; a model that spends loss on them pays for it in bpb.
import { ByteLevelBPE } from './bpe.js';
import type { TextTokenizer } from './types.js';

/** UTF-8 byte length of `text`, without encoding it (a lone surrogate counts 3 bytes, as U+FFFD, like TextEncoder). */
export function countBytes(text: string): number {
  let n = 0;
  const len = text.length;
  for (let i = 0; i < len; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < len) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i++;
      } else n += 3;
    } else n += 3;
  }
  return n;
}

/** Total UTF-8 bytes of a split (any iterable of documents). */
export function totalBytes(docs: Iterable<string>): number {
  let n = 0;
  for (const d of docs) n += countBytes(d);
  return n;
}

/** Bits per byte from a summed negative log-likelihood (nats) and the byte count of the text it scored. */
export function bitsPerByte(totalNllNats: number, bytes: number): number {
  if (!(bytes > 0)) throw new Error(`bitsPerByte: bytes must be positive, got ${bytes}`);
  return totalNllNats / Math.LN2 / bytes;
}

/**
 * Bits per byte from a mean per-token loss (nats), using the split's tokens-per-byte ratio: for an evaluation that
 * scores (a sample of) a split whose `tokens` tokens encode `bytes` bytes, bpb ≈ meanLoss · tokens / bytes / ln 2.
 */
export function bitsPerByteFromMeanLoss(meanLossNats: number, tokens: number, bytes: number): number {
  return bitsPerByte(meanLossNats * tokens, bytes);
}

/**
 * UTF-8 bytes each token id stands for (0 for special tokens), for bits per byte. Byte-level BPE tokens are byte
 * strings, so this is exact for them; other tokenizers fall back to decoding each id alone.
 */
export function tokenByteLengths(tok: TextTokenizer): Int32Array {
  const out = new Int32Array(tok.vocabSize);
  const specials = new Set([tok.bosId, tok.eosId, tok.padId].filter((x): x is number => typeof x === 'number'));
  for (let id = 0; id < tok.vocabSize; id++) {
    if (specials.has(id)) continue;
    const t = tok instanceof ByteLevelBPE ? tok.idToToken(id) : null;
    out[id] = t !== null && t !== undefined ? [...t].length : countBytes(tok.decode([id]));
  }
  return out;
}
