// What the Trainer consumes: plain Int32Arrays with a shape (the data module produces them without tensor code).

import { type Backend, type Tensor, tensor } from '../core/index.js';
import { countValid, shiftLabels } from '../loss/index.js';

export interface Batch {
  /** [B, T] */
  shape: readonly [number, number];
  inputIds: Int32Array;
  /** Labels (shifted inside the loss); -100 where no loss is wanted. */
  labels: Int32Array;
  attentionMask?: Int32Array;
  positionIds?: Int32Array;
  documentIds?: Int32Array;
  /** UTF-8 bytes of the text the targets encode (for bits per byte), when the source knows it. */
  targetBytes?: number;
}

/** A stream of batches whose position can be saved and restored (DataLoader and friends). */
export interface BatchSource {
  next(): Batch | null;
  state(): unknown;
  loadState(state: unknown): void;
}

/** Valid (non-ignored) shifted targets in a batch: what numItemsInBatch counts. */
export function countTargets(b: Batch, ignoreIndex = -100): number {
  return countValid(shiftLabels(b.labels, b.shape[0], b.shape[1], ignoreIndex), ignoreIndex);
}

export interface BatchTensors {
  inputIds: Tensor; labels: Tensor; attentionMask: Tensor | null; positionIds: Tensor | null; documentIds: Tensor | null;
}

export function toTensors(b: Batch, backend?: Backend): BatchTensors {
  const shape = [b.shape[0], b.shape[1]];
  const t = (a: Int32Array | undefined) => (a ? tensor(a, shape, 'int32', backend) : null);
  return {
    inputIds: t(b.inputIds)!, labels: t(b.labels)!, attentionMask: t(b.attentionMask),
    positionIds: t(b.positionIds), documentIds: t(b.documentIds),
  };
}
