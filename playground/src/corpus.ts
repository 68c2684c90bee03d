// The worker's data side: the built-in Brown corpus (a gzipped JSON asset next to the bundle), user text split into
// documents, and packed rows turned into the Trainer's batches (the library's toBatch / batchesOf, as the CLI uses).
import { gunzipSync } from 'fflate';
import {
  type Batch, DataLoader, type PackedBatch, type PackedRow, type TextTokenizer, batchesOf, packDocuments, parseJsonl,
  splitTextDocuments, toBatch, tokenByteLengths,
} from 'llamatrain';
import type { DataSource } from './protocol.js';

export { batchesOf, toBatch, tokenByteLengths };

export interface TextData { source: string; train: string[]; validation: string[] }

/** The Brown corpus with its fixed split (475 / 25 documents), as tools/build-playground.mjs wrote it. */
export async function loadBrown(onProgress: (done: number, total: number) => void): Promise<TextData> {
  const url = new URL('./brown.json.gz', import.meta.url);
  const res = await fetch(url);
  if (!res.ok) throw new Error(`the built-in corpus (${url.pathname}) could not be loaded: HTTP ${res.status}. Rebuild the page with npm run build:playground, or use your own text.`);
  const total = Number(res.headers.get('Content-Length') ?? 0);
  const chunks: Uint8Array[] = [];
  let done = 0;
  const reader = res.body!.getReader();
  for (;;) {
    const { done: end, value } = await reader.read();
    if (end) break;
    chunks.push(value);
    done += value.length;
    onProgress(done, Math.max(total, done));
  }
  let bytes = new Uint8Array(done);
  let at = 0;
  for (const c of chunks) { bytes.set(c, at); at += c.length; }
  // a host that sends the file with Content-Encoding: gzip has already unpacked it
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) bytes = gunzipSync(bytes);
  const parsed = JSON.parse(new TextDecoder().decode(bytes)) as { train: string[]; validation: string[] };
  return { source: 'the Brown corpus (500 texts of 1961 American English, 475 train / 25 validation)', train: parsed.train, validation: parsed.validation };
}

/**
 * User text → documents: JSON lines (one document per record) or plain text cut at blank lines (paragraphs); the
 * last 5% of the documents (at least one) are held out. One document alone is cut at 90% of its length.
 */
export function userText(src: Exclude<DataSource, { kind: 'brown' }>): TextData {
  const name = src.kind === 'file' ? src.name : 'the pasted text';
  const docs = src.kind === 'file' && src.format === 'jsonl' ? parseJsonl(src.text, src.field, name).filter((d) => d.trim().length > 0)
    : splitTextDocuments(src.text, name, 'paragraph');
  if (docs.length === 0) throw new Error(`${name}: no text to train on (every record is empty)`);
  if (docs.length >= 2) {
    const nVal = Math.max(1, Math.round(docs.length * 0.05));
    return { source: name, train: docs.slice(0, docs.length - nVal), validation: docs.slice(docs.length - nVal) };
  }
  const text = docs[0]!;
  let cut = Math.floor(text.length * 0.9);
  const space = text.indexOf(' ', cut);
  if (space > 0 && space < text.length - 1) cut = space;
  if (text.length < 200) throw new Error(`${name}: ${text.length} characters is too little text to train on and hold some out for validation; give a few paragraphs at least`);
  return { source: name, train: [text.slice(0, cut)], validation: [text.slice(cut)] };
}


/** Tokenizes documents (yielding to the worker's event loop now and then, with progress) and packs them into rows. */
export async function packTexts(tok: TextTokenizer, docs: string[], seqLen: number, onProgress: (done: number, total: number) => void): Promise<PackedRow[]> {
  const ids: number[][] = [];
  let last = performance.now();
  for (let i = 0; i < docs.length; i++) {
    ids.push(tok.encode(docs[i]!));
    if (performance.now() - last > 100) {
      onProgress(i + 1, docs.length);
      await new Promise((r) => setTimeout(r, 0));
      last = performance.now();
    }
  }
  onProgress(docs.length, docs.length);
  return packDocuments(ids, { seqLen, eosId: tok.eosId ?? undefined });
}



/**
 * The training batches, one ahead: the loss anatomy looks at the batch the next step will train on (`peek`)
 * before the step runs, so it sees the same weights and the same tokens as the step's loss.
 */
export class PeekingSource {
  private ahead: Batch | null = null;
  constructor(private readonly loader: DataLoader<PackedRow, PackedBatch>, private readonly bytesOf: Int32Array) {}
  peek(): Batch {
    this.ahead ??= toBatch(this.loader.nextBatch(), this.bytesOf);
    return this.ahead;
  }
  next(): Batch {
    const b = this.peek();
    this.ahead = null;
    return b;
  }
  state(): unknown {
    return this.loader.state();
  }
  loadState(s: unknown): void {
    this.ahead = null;
    this.loader.loadState(s as ReturnType<DataLoader<PackedRow, PackedBatch>['state']>);
  }
}
