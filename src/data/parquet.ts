// Parquet text columns (browser-safe): the string column of a Parquet file's contents (an ArrayBuffer or a hyparquet
// AsyncBuffer), read with hyparquet. Kept out of the main entry: apps import it from `llamatrain/parquet` (or
// `llamatrain/node`), so a page that never reads Parquet never loads the parser. Errors name the source and the row.
import { parquetMetadataAsync, parquetReadObjects, parquetSchema, type AsyncBuffer, type FileMetaData } from 'hyparquet';
import { InputError } from '../core/errors.js';

/** A Parquet file in memory (ArrayBuffer) or any hyparquet AsyncBuffer (byte-range reader). */
export type ParquetInput = ArrayBuffer | AsyncBuffer;

/** Top-level column names of a Parquet file. */
export function parquetColumnNames(metadata: FileMetaData): string[] {
  return parquetSchema(metadata).children.map((c) => c.element.name);
}

/**
 * Streams the string column `column` of a Parquet file, one row group at a time (so only one row group's values
 * are in memory). Errors name the source and the row (0-based, over the whole file).
 */
export async function* iterateParquetText(file: ParquetInput, column: string, source: string): AsyncGenerator<string> {
  if (file.byteLength === 0) throw new InputError(`${source}: file is empty (0 bytes); expected a Parquet file with a "${column}" column`, { source });
  let metadata: FileMetaData;
  try {
    metadata = await parquetMetadataAsync(file);
  } catch (e) {
    throw new InputError(`${source}: not a readable Parquet file (${(e as Error).message})`, { cause: e, source });
  }
  let columns: string[];
  try {
    columns = parquetColumnNames(metadata);
  } catch (e) {
    throw new InputError(`${source}: not a readable Parquet file (its schema: ${(e as Error).message})`, { cause: e, source });
  }
  if (!columns.includes(column)) {
    throw new InputError(`${source}: no column "${column}" in this Parquet file; its columns are: ${columns.join(', ') || '(none)'}. Pick the text column with the column option`, { source });
  }
  const total = Number(metadata.num_rows);
  const groupRows = (metadata.row_groups ?? []).map((rg) => Number(rg.num_rows));
  if (!Number.isSafeInteger(total) || total < 0 || groupRows.some((n) => !Number.isSafeInteger(n) || n < 0) ||
      groupRows.reduce((a, b) => a + b, 0) !== total) {
    throw new InputError(`${source}: not a readable Parquet file: its metadata says ${metadata.num_rows} rows but its row groups hold ` +
      `${groupRows.join(' + ') || 'none'}; the file is damaged — re-export it`, { source });
  }
  if (total === 0) throw new InputError(`${source}: the Parquet file has 0 rows; expected at least one "${column}" value`, { source });
  let rowStart = 0;
  for (const rg of metadata.row_groups) {
    const rowEnd = rowStart + Number(rg.num_rows);
    let rows: Record<string, unknown>[];
    try {
      rows = (await parquetReadObjects({ file, metadata, columns: [column], rowStart, rowEnd })) as Record<string, unknown>[];
    } catch (e) {
      throw new InputError(`${source}: could not read rows ${rowStart}…${rowEnd - 1} of column "${column}" (${(e as Error).message})`, { cause: e, source });
    }
    for (let i = 0; i < rows.length; i++) {
      const v = rows[i]![column];
      if (typeof v !== 'string') {
        throw new InputError(`${source}: row ${rowStart + i}: column "${column}" is ${v === null || v === undefined ? 'null' : `a ${typeof v}`}, expected a string`, { source });
      }
      yield v;
    }
    rowStart = rowEnd;
  }
}

/** All strings of column `column` of a Parquet file. */
export async function readParquetText(file: ParquetInput, column: string, source: string): Promise<string[]> {
  const out: string[] = [];
  for await (const s of iterateParquetText(file, column, source)) out.push(s);
  return out;
}
