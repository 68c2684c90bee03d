// Packing: documents concatenated into rows of exactly `seqLen` tokens, with nothing wasted on padding except in
// the final row, and without letting one document leak into another.
//
// For every row the packer returns, besides `inputIds`:
//   labels       the input ids, except -100 (ignoreIndex) at the FIRST position of every segment and on padding.
//                The loss shifts labels (position t is scored against labels[t + 1]), so labels[s] = -100 at a
//                segment start s means "position s-1 — the last token of the previous document, typically its
//                EOS — is not asked to predict the first token of the next document". No token is ever predicted
//                from another document. (At s = 0 the label is never read; it is -100 for uniformity.)
//   positionIds  0, 1, 2, … restarting at every segment start (RoPE positions as if each document were alone).
//   documentIds  a per-row segment number 0, 1, 2, … (one per document piece in the row), -1 on padding.
//                The attention must honour it: query i may attend key j iff j ≤ i and documentIds[i] ===
//                documentIds[j] (block-diagonal causal; see `documentAttentionMask`). Padding positions only see
//                padding, so no softmax row is ever empty, and no real token ever sees padding.
//
// Long documents (`splitDocuments`, default true): documents are streamed into rows back to back; when a document
// does not fit in what is left of a row, its first part fills the row and the rest continues at position 0 of the
// next row as a new segment (positions restart at 0, label -100 at its start, which is the row start anyway). A
// document longer than seqLen thus spans several rows; each piece only sees itself — context is cut at each row
// boundary, exactly as in fixed-window training on a token stream. With `splitDocuments: false`, a document that
// does not fit in the rest of the current row starts a new row (the current one is padded); only a document longer
// than seqLen is still cut, into seqLen-token pieces that each start a row (its last piece may share a row with the
// documents after it).
//
// A document may carry its own labels (`{ inputIds, labels }`, e.g. a conversation with -100 outside the
// assistant's replies): they are used instead of the ids, still with -100 at every segment start.
//
// Empty documents are skipped. The final partial row is padded with `padId` (labels -100, positionIds 0,
// documentIds -1), or dropped with `dropRemainder`.

export interface PackOptions {
  /** Row length T. */
  seqLen: number;
  /** End-of-document token, appended to each document unless it already ends with it (see `appendEos`). */
  eosId?: number;
  /** Append `eosId` to documents (default true when `eosId` is given). An EOS label is a real target. */
  appendEos?: boolean;
  /** Beginning-of-document token prepended to each document (optional; LLaMA-style tokenizers use one). */
  bosId?: number;
  /** Filler of the final row's padding (default: eosId, else 0). Never compared with real ids. */
  padId?: number;
  /** Label of unscored positions (default -100). */
  ignoreIndex?: number;
  /** Stream documents across row boundaries (default true); see the file comment. */
  splitDocuments?: boolean;
  /** Drop the final partial row instead of padding it (default false). */
  dropRemainder?: boolean;
}

export interface PackedRow {
  inputIds: Int32Array; // [T]
  labels: Int32Array; // [T] -100 at each segment start and on padding; unshifted (the loss shifts)
  positionIds: Int32Array; // [T] restart at 0 at each segment start
  documentIds: Int32Array; // [T] segment number within the row, -1 on padding
}

export interface PackedBatch {
  inputIds: Int32Array; // [B, T]
  labels: Int32Array; // [B, T]
  positionIds: Int32Array; // [B, T]
  documentIds: Int32Array; // [B, T]
  attentionMask: Int32Array; // [B, T] 1 on real tokens, 0 on padding (documentIds >= 0)
  shape: [number, number]; // [B, T]
}

/** A document: its token ids, or ids plus its own labels (same length; -100 where nothing is to be predicted). */
export type PackDocument = ArrayLike<number> | { inputIds: ArrayLike<number>; labels: ArrayLike<number> };

class RowBuilder {
  inputIds: Int32Array;
  labels: Int32Array;
  positionIds: Int32Array;
  documentIds: Int32Array;
  fill = 0;
  segments = 0;
  constructor(readonly T: number, private readonly ignoreIndex: number) {
    this.inputIds = new Int32Array(T);
    this.labels = new Int32Array(T);
    this.positionIds = new Int32Array(T);
    this.documentIds = new Int32Array(T);
  }
  get space(): number {
    return this.T - this.fill;
  }
  /** Writes doc[from, from + n) as one new segment (labels from `labels` when given, else the ids). */
  writeSegment(doc: ArrayLike<number>, from: number, n: number, labels?: ArrayLike<number>): void {
    const seg = this.segments++;
    for (let k = 0; k < n; k++) {
      const p = this.fill + k;
      const v = doc[from + k]!;
      this.inputIds[p] = v;
      this.labels[p] = k === 0 ? this.ignoreIndex : labels ? labels[from + k]! : v;
      this.positionIds[p] = k;
      this.documentIds[p] = seg;
    }
    this.fill += n;
  }
  finish(padId: number): PackedRow {
    for (let p = this.fill; p < this.T; p++) {
      this.inputIds[p] = padId;
      this.labels[p] = this.ignoreIndex;
      this.positionIds[p] = 0;
      this.documentIds[p] = -1;
    }
    const row = { inputIds: this.inputIds, labels: this.labels, positionIds: this.positionIds, documentIds: this.documentIds };
    this.inputIds = new Int32Array(this.T);
    this.labels = new Int32Array(this.T);
    this.positionIds = new Int32Array(this.T);
    this.documentIds = new Int32Array(this.T);
    this.fill = 0;
    this.segments = 0;
    return row;
  }
}

/** Packs documents into rows lazily (documents may be any iterable, e.g. a generator over a large corpus). */
export function* iteratePackedRows(docs: Iterable<PackDocument>, options: PackOptions): Generator<PackedRow> {
  const { seqLen: T, eosId, bosId, ignoreIndex = -100, splitDocuments = true, dropRemainder = false } = options;
  const appendEos = options.appendEos ?? eosId !== undefined;
  const padId = options.padId ?? eosId ?? 0;
  if (!Number.isInteger(T) || T < 1) throw new Error(`packDocuments: seqLen must be a positive integer, got ${T}`);
  if (appendEos && eosId === undefined) throw new Error('packDocuments: appendEos needs eosId');
  for (const [k, v] of [['eosId', eosId], ['bosId', bosId], ['padId', padId]] as const) {
    if (v !== undefined && (!Number.isInteger(v) || v < 0)) throw new Error(`packDocuments: ${k} must be a non-negative integer, got ${v}`);
  }
  const row = new RowBuilder(T, ignoreIndex);
  let d = 0;
  for (const item of docs) {
    const labeled = !isIdList(item);
    const raw = labeled ? item.inputIds : item;
    const rawLabels = labeled ? item.labels : undefined;
    if (rawLabels && rawLabels.length !== raw.length) throw new Error(`packDocuments: document ${d} has ${raw.length} ids but ${rawLabels.length} labels; they must have the same length`);
    for (let i = 0; i < raw.length; i++) {
      const v = raw[i]!;
      if (!Number.isInteger(v) || v < 0) throw new Error(`packDocuments: document ${d} position ${i} holds ${v}; token ids must be non-negative integers`);
    }
    d++;
    if (raw.length === 0) continue; // an empty document contributes nothing (not even BOS/EOS)
    const doc = withSpecials(raw, bosId, appendEos ? eosId : undefined);
    const docLabels = rawLabels ? labelsWithSpecials(raw, rawLabels, bosId, appendEos ? eosId : undefined, ignoreIndex) : undefined;
    let off = 0;
    if (!splitDocuments) {
      // Start a new row unless the whole document (or, if it is longer than a row, its first piece) fits here.
      if (row.fill > 0 && doc.length > row.space) yield row.finish(padId);
    }
    while (off < doc.length) {
      const n = Math.min(row.space, doc.length - off);
      row.writeSegment(doc, off, n, docLabels);
      off += n;
      if (row.space === 0) yield row.finish(padId);
    }
  }
  if (row.fill > 0 && !dropRemainder) yield row.finish(padId);
}

/** Packs documents into fixed-length rows (see the file comment for labels, positions, document ids, splitting). */
export function packDocuments(docs: Iterable<PackDocument>, options: PackOptions): PackedRow[] {
  return [...iteratePackedRows(docs, options)];
}

function isIdList(d: PackDocument): d is ArrayLike<number> {
  return typeof (d as ArrayLike<number>).length === 'number';
}

/** Labels of a labeled document after `withSpecials`: an added BOS gets ignoreIndex, an added EOS its own id. */
function labelsWithSpecials(raw: ArrayLike<number>, labels: ArrayLike<number>, bosId: number | undefined, eosId: number | undefined, ignoreIndex: number): ArrayLike<number> {
  const addBos = bosId !== undefined && !(raw.length > 0 && raw[0] === bosId);
  const addEos = eosId !== undefined && !(raw.length > 0 && raw[raw.length - 1] === eosId);
  if (!addBos && !addEos) return labels;
  const out = new Int32Array(raw.length + (addBos ? 1 : 0) + (addEos ? 1 : 0));
  let p = 0;
  if (addBos) out[p++] = ignoreIndex;
  for (let i = 0; i < labels.length; i++) out[p++] = labels[i]!;
  if (addEos) out[p++] = eosId!;
  return out;
}

function withSpecials(doc: ArrayLike<number>, bosId: number | undefined, eosId: number | undefined): ArrayLike<number> {
  const addBos = bosId !== undefined && !(doc.length > 0 && doc[0] === bosId);
  const addEos = eosId !== undefined && !(doc.length > 0 && doc[doc.length - 1] === eosId);
  if (!addBos && !addEos) return doc;
  const out = new Int32Array(doc.length + (addBos ? 1 : 0) + (addEos ? 1 : 0));
  let p = 0;
  if (addBos) out[p++] = bosId!;
  for (let i = 0; i < doc.length; i++) out[p++] = doc[i]!;
  if (addEos) out[p++] = eosId!;
  return out;
}

/**
 * Segments one window of a token stream in which every document ends with `eosId` (what token shards hold):
 * a new segment starts at position 0 and after every EOS. Same label/position/documentId rules as packing.
 * Without `eosId`, the whole window is one segment (labels = ids, except -100 at position 0, which is never read).
 */
export function segmentWindow(tokens: ArrayLike<number>, eosId?: number, ignoreIndex = -100): PackedRow {
  const T = tokens.length;
  const inputIds = new Int32Array(T);
  const labels = new Int32Array(T);
  const positionIds = new Int32Array(T);
  const documentIds = new Int32Array(T);
  let seg = 0;
  let pos = 0;
  for (let t = 0; t < T; t++) {
    if (t > 0 && eosId !== undefined && tokens[t - 1] === eosId) {
      seg++;
      pos = 0;
    }
    const v = tokens[t]!;
    inputIds[t] = v;
    labels[t] = pos === 0 ? ignoreIndex : v;
    positionIds[t] = pos++;
    documentIds[t] = seg;
  }
  return { inputIds, labels, positionIds, documentIds };
}

/** Collate for packed rows (all of one length): stacks them into a [B, T] batch. */
export function packedCollate(rows: PackedRow[]): PackedBatch {
  const B = rows.length;
  if (B === 0) throw new Error('packedCollate: a batch needs at least one row, got 0');
  const T = rows[0]!.inputIds.length;
  const out = {
    inputIds: new Int32Array(B * T),
    labels: new Int32Array(B * T),
    positionIds: new Int32Array(B * T),
    documentIds: new Int32Array(B * T),
    attentionMask: new Int32Array(B * T),
  };
  rows.forEach((r, b) => {
    for (const k of ['inputIds', 'labels', 'positionIds', 'documentIds'] as const) {
      if (r[k].length !== T) throw new Error(`packedCollate: row ${b} has ${k} of length ${r[k].length}, row 0 has ${T}; packed rows must share one length`);
      out[k].set(r[k], b * T);
    }
    for (let t = 0; t < T; t++) out.attentionMask[b * T + t] = r.documentIds[t]! >= 0 ? 1 : 0;
  });
  return { ...out, shape: [B, T] };
}

/**
 * The block-diagonal causal mask of a [B, T] documentIds batch: out[(b·T + i)·T + j] = 1 iff j ≤ i and
 * documentIds[b, i] === documentIds[b, j]. [B, T, T], 1 = may attend. For a reference/test path; a fused
 * attention kernel should evaluate the same predicate on the fly instead of materialising it.
 */
export function documentAttentionMask(documentIds: Int32Array, B: number, T: number): Uint8Array {
  if (documentIds.length !== B * T) throw new Error(`documentAttentionMask: documentIds has ${documentIds.length} entries, expected B·T = ${B}·${T}`);
  const mask = new Uint8Array(B * T * T);
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < T; i++) {
      const di = documentIds[b * T + i]!;
      for (let j = 0; j <= i; j++) if (documentIds[b * T + j] === di) mask[(b * T + i) * T + j] = 1;
    }
  }
  return mask;
}
