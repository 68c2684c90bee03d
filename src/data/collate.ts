// Padding collate: ragged token lists → one [B, T] batch of plain Int32Arrays.
//
// Labels follow the Hugging Face convention: `labels` are the input ids themselves (NOT shifted) with
// `ignoreIndex` (-100) wherever there is no real token; the model's causal-LM loss shifts them, so position t is
// scored against labels[t + 1]. The mask that decides which predictions count is therefore built on the
// *targets*: the last real token of a row predicts a pad → label -100 → not trained, while a real EOS at the end
// of a row is a label like any other token, so the model learns to stop.
//
// Padding is identified by position, never by comparing ids with `padId`, so a pad id that is also a real token
// id (e.g. padding with EOS) changes nothing but the filler value of `inputIds`.

/** One example: its token ids, or ids plus its own labels (e.g. SFT rows with -100 on the prompt). */
export type CollateItem = ArrayLike<number> | { inputIds: ArrayLike<number>; labels?: ArrayLike<number> };

export interface PadCollateOptions {
  /** Filler written into `inputIds` at padded positions (never looked at again). */
  padId: number;
  /** Truncate rows longer than this (keeping their first `maxLength` tokens). */
  maxLength?: number;
  /** Pad every batch to `maxLength` instead of to its longest row (fixed shapes). Needs `maxLength`. */
  padToMaxLength?: boolean;
  /** Label of positions that must not be scored (default -100, the loss's `ignoreIndex`). */
  ignoreIndex?: number;
  /** Where padding goes (default 'right'). With 'left', position ids still count real tokens from 0. */
  padSide?: 'right' | 'left';
}

export interface PaddedBatch {
  inputIds: Int32Array; // [B, T]
  attentionMask: Int32Array; // [B, T] 1 = real token, 0 = padding
  labels: Int32Array; // [B, T] input ids (or the item's labels), ignoreIndex on padding; unshifted
  positionIds: Int32Array; // [B, T] 0, 1, 2, … over the real tokens of each row; 0 on padding
  shape: [number, number]; // [B, T]
}

/** Builds a collate function for `DataLoader` (see the file comment for the label convention). */
export function padCollate(options: PadCollateOptions): (items: CollateItem[]) => PaddedBatch {
  const { padId, maxLength, padToMaxLength = false, ignoreIndex = -100, padSide = 'right' } = options;
  if (!Number.isInteger(padId)) throw new Error(`padCollate: padId must be an integer token id, got ${padId}`);
  if (maxLength !== undefined && (!Number.isInteger(maxLength) || maxLength < 1)) throw new Error(`padCollate: maxLength must be a positive integer, got ${maxLength}`);
  if (padToMaxLength && maxLength === undefined) throw new Error('padCollate: padToMaxLength needs maxLength');
  if (padSide !== 'right' && padSide !== 'left') throw new Error(`padCollate: padSide must be 'right' or 'left', got ${String(padSide)}`);
  if (!Number.isInteger(ignoreIndex)) throw new Error(`padCollate: ignoreIndex must be an integer, got ${ignoreIndex}`);

  return (items: CollateItem[]): PaddedBatch => {
    const B = items.length;
    if (B === 0) throw new Error('padCollate: a batch needs at least one row, got 0');
    const rows = items.map((item, b) => {
      const ids = isArrayLike(item) ? item : item.inputIds;
      const labels = isArrayLike(item) ? ids : item.labels ?? ids;
      if (labels.length !== ids.length) throw new Error(`padCollate: row ${b} has ${ids.length} input ids but ${labels.length} labels; they must have the same length`);
      const n = maxLength === undefined ? ids.length : Math.min(ids.length, maxLength);
      for (let t = 0; t < n; t++) {
        const v = ids[t]!;
        if (!Number.isInteger(v) || v < 0) throw new Error(`padCollate: row ${b} position ${t} holds ${v}; token ids must be non-negative integers`);
      }
      return { ids, labels, n };
    });
    const T = padToMaxLength ? maxLength! : Math.max(...rows.map((r) => r.n));
    if (T === 0) throw new Error(`padCollate: every row of the batch is empty (${B} rows of length 0); nothing to train on`);
    const inputIds = new Int32Array(B * T).fill(padId);
    const attentionMask = new Int32Array(B * T);
    const labels = new Int32Array(B * T).fill(ignoreIndex);
    const positionIds = new Int32Array(B * T);
    rows.forEach(({ ids, labels: lab, n }, b) => {
      const off = b * T + (padSide === 'left' ? T - n : 0);
      for (let t = 0; t < n; t++) {
        inputIds[off + t] = ids[t]!;
        labels[off + t] = lab[t]!;
        attentionMask[off + t] = 1;
        positionIds[off + t] = t;
      }
    });
    return { inputIds, attentionMask, labels, positionIds, shape: [B, T] };
  };
}

function isArrayLike(x: CollateItem): x is ArrayLike<number> {
  return typeof (x as ArrayLike<number>).length === 'number';
}
