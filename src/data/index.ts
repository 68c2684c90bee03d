// Data (browser-safe: no tensors, no `node:` modules — usable in a Web Worker). Batches are plain Int32Arrays
// with shapes; `train` turns them into tensors. File reading, token shard files and the built-in Brown corpus
// loader are Node-only and live in ./node.ts; Parquet (its parser is a dependency) is in ./parquet.ts.
export { type Dataset, ArrayDataset, TensorDataset, MappedDataset } from './dataset.js';
export { DataLoader, type DataLoaderOptions, type DataLoaderState } from './dataloader.js';
export { epochPermutation } from './rng.js';
export { padCollate, type PadCollateOptions, type PaddedBatch, type CollateItem } from './collate.js';
export {
  packDocuments,
  iteratePackedRows,
  packedCollate,
  segmentWindow,
  documentAttentionMask,
  type PackOptions,
  type PackDocument,
  type PackedRow,
  type PackedBatch,
} from './packing.js';
export {
  SHARD_MAGIC,
  SHARD_VERSION,
  SHARD_HEADER_BYTES,
  encodeTokenShard,
  decodeTokenShard,
  parseShardHeader,
  dtypeForVocab,
  checkTokenIds,
  TokenWindowDataset,
  type ShardDtype,
  type ShardHeader,
  type WindowOptions,
} from './shards.js';
export { splitTextDocuments, parseTextSplit, chunkText, decodeText, parseJsonDocuments, parseJsonl, parseJsonlLine, AUTO_DOCUMENT_CHARS, MAX_INVALID_UTF8_RATIO, type TextSplit } from './sources.js';
export {
  parseChatJsonl,
  parseChatJsonlLine,
  encodeChat,
  truncateConversation,
  packConversations,
  prepareConversations,
  type ChatExample,
  type EncodedChat,
  type ChatEncoder,
  type ConversationReport,
  type PackConversationsOptions,
} from './chat.js';
export { brownFileToText, splitBrown, isBrownValidation, BROWN_VALIDATION_EVERY } from './brown.js';
