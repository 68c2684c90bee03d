// Node-only data entry point: everything in ./index.ts plus file sources, token shard files and the built-in
// Brown corpus. Browser code imports ./index.ts instead.
export * from './index.js';
export { readParquetText, iterateParquetText, parquetColumnNames, type ParquetInput } from './parquet.js';
export {
  readTextDocuments,
  readJsonlDocuments,
  readJsonDocuments,
  iterateJsonlDocuments,
  readParquetDocuments,
  iterateParquetDocuments,
  readDocuments,
  iterateDocuments,
  detectFormat,
  TokenShardWriter,
  writeTokenShardFile,
  encodeDocumentsToShard,
  readTokenShardHeader,
  readShardTokens,
  validateTokenShardFile,
  TokenShardDataset,
  fileBytes,
  type ReadDocumentsOptions,
} from './node-sources.js';
export { loadBrownCorpus, loadBrownDocuments, brownCorpusDir, type BrownCorpus } from './brown-node.js';
export { readChatJsonl } from './chat-node.js';
