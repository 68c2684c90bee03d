// GPT-2 byte-level conventions, shared by our BPE trainer/encoder and written into tokenizer.json so that
// `@huggingface/tokenizers` (ByteLevel pre-tokenizer + decoder) reads our vocabulary the same way:
// - every byte 0…255 is one printable character: bytes that are printable Latin-1 map to themselves, the others
//   to U+0100 + n in order (space 0x20 → "Ġ", newline 0x0A → "Ċ");
// - text is pre-split with the GPT-2 regex before BPE, so merges never cross word/space/punctuation boundaries.

/** The GPT-2 pre-tokenization pattern, exactly as @huggingface/tokenizers' ByteLevel pre-tokenizer uses it. */
export const GPT2_PATTERN = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

function buildByteToUnicode(): string[] {
  const bs: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b); // '!' … '~'
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b); // '¡' … '¬'
  for (let b = 0xae; b <= 0xff; b++) bs.push(b); // '®' … 'ÿ'
  const table: string[] = new Array(256);
  for (const b of bs) table[b] = String.fromCharCode(b);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (table[b] === undefined) table[b] = String.fromCharCode(256 + n++);
  }
  return table;
}

/** byte → its one-character byte-level symbol. */
export const BYTE_TO_UNICODE: readonly string[] = buildByteToUnicode();

/** byte-level symbol (char code) → byte. */
export const UNICODE_TO_BYTE: ReadonlyMap<string, number> = new Map(BYTE_TO_UNICODE.map((c, b) => [c, b]));

/** Splits text into pre-tokens (raw strings, not yet byte-mapped). */
export function preTokenize(text: string): string[] {
  return text.match(GPT2_PATTERN) ?? [];
}

const encoder = new TextEncoder();

/** UTF-8 bytes of a string, as a byte-level symbol string ("Ġthe"). */
export function toByteLevel(s: string): string {
  let out = '';
  for (const b of encoder.encode(s)) out += BYTE_TO_UNICODE[b];
  return out;
}

/** Byte-level symbol string → bytes (throws on a character outside the 256 symbols). */
export function fromByteLevel(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) {
    const b = UNICODE_TO_BYTE.get(s[i]!);
    if (b === undefined) throw new Error(`byte-level token ${JSON.stringify(s)} contains ${JSON.stringify(s[i])}, which is not a byte symbol`);
    out[i] = b;
  }
  return out;
}
