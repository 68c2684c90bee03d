// Token ids as readable text. A byte-level BPE's tokens are bytes, and an untrained model (or one token on its own)
// can give bytes that are no complete UTF-8 character: decoded as usual they become U+FFFD (�), which says nothing.
// Here each such byte is shown as its value, ⟨E2⟩, and every complete character as itself. Pure (no DOM).

/** The length of the UTF-8 sequence that starts with byte `b` (0: not a valid first byte). */
function sequenceLength(b: number): number {
  return b < 0x80 ? 1 : b >= 0xc2 && b <= 0xdf ? 2 : b >= 0xe0 && b <= 0xef ? 3 : b >= 0xf0 && b <= 0xf4 ? 4 : 0;
}

/** Whether bytes[i..i+n) is a well-formed UTF-8 sequence (no overlong form, no surrogate, nothing past U+10FFFF). */
function wellFormed(bytes: Uint8Array, i: number, n: number): boolean {
  if (i + n > bytes.length) return false;
  for (let k = 1; k < n; k++) if ((bytes[i + k]! & 0xc0) !== 0x80) return false;
  const b0 = bytes[i]!, b1 = bytes[i + 1]!;
  if (n === 3 && ((b0 === 0xe0 && b1 < 0xa0) || (b0 === 0xed && b1 > 0x9f))) return false;
  if (n === 4 && ((b0 === 0xf0 && b1 < 0x90) || (b0 === 0xf4 && b1 > 0x8f))) return false;
  return true;
}

const hex = (b: number): string => `⟨${b.toString(16).toUpperCase().padStart(2, '0')}⟩`;
const decoder = new TextDecoder();

/** UTF-8 bytes as text, each byte that is not part of a complete character shown as ⟨XX⟩ instead of �. */
export function readableUtf8(bytes: Uint8Array): string {
  let out = '', start = 0, i = 0;
  while (i < bytes.length) {
    const n = sequenceLength(bytes[i]!);
    if (n > 0 && wellFormed(bytes, i, n)) { i += n; continue; }
    out += decoder.decode(bytes.subarray(start, i)) + hex(bytes[i]!);
    i++;
    start = i;
  }
  return out + decoder.decode(bytes.subarray(start));
}

/** A tokenizer that can give a token's bytes (byte-level BPE, Hugging Face tokenizers). */
export interface ByteTokenizer { decode(ids: number[]): string; tokenBytes?(id: number): Uint8Array | undefined }

/** Ids as readable text: the bytes of the whole sequence (so characters split over tokens come out whole), then readableUtf8. */
export function readableText(tok: ByteTokenizer, ids: readonly number[]): string {
  if (!tok.tokenBytes) return tok.decode([...ids]);
  const parts = ids.map((id) => tok.tokenBytes!(id));
  if (parts.some((p) => p === undefined)) return tok.decode([...ids]);
  const all = new Uint8Array(parts.reduce((n, p) => n + p!.length, 0));
  let o = 0;
  for (const p of parts) { all.set(p!, o); o += p!.length; }
  return readableUtf8(all);
}
