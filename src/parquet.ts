// `llamatrain/parquet` (browser-safe): the text column of a Parquet file's contents, read with hyparquet. A separate
// entry so that the main one loads no Parquet parser; `llamatrain/node` re-exports it with file readers.
export { readParquetText, iterateParquetText, parquetColumnNames, type ParquetInput } from './data/parquet.js';
