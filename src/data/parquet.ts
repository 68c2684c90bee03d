// Parquet text columns (browser-safe): the string column of a Parquet file's contents (an ArrayBuffer or a hyparquet
// AsyncBuffer), read with hyparquet. Kept out of the main entry: apps import it from `llamatrain/parquet` (or
// `llamatrain/node`), so a page that never reads Parquet never loads the parser. Errors name the source and the row.
import { parquetMetadataAsync, parquetReadObjects, parquetSchema, type AsyncBuffer, type FileMetaData } from 'hyparquet';
import { parquetHeader } from 'hyparquet/src/column.js';
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
    const chunk = rg.columns.findIndex((c) => c.meta_data?.path_in_schema?.length === 1 && c.meta_data.path_in_schema[0] === column);
    if (chunk >= 0) await checkColumnChunk(file, metadata, metadata.row_groups.indexOf(rg), chunk, source);
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

const MAX_PAGE_BYTES = 2 ** 30;
const isCount = (v: unknown): boolean => (typeof v === 'number' || typeof v === 'bigint') && Number.isSafeInteger(Number(v)) && Number(v) >= 0;

/**
 * Walks the page headers of one column chunk before hyparquet decodes it, refusing what the format does not allow:
 * a header that does not parse, a required field missing (a missing byte length makes the decoder read offset NaN,
 * i.e. byte 0, forever), negative or oversized sizes, a page that runs past its chunk. A damaged file is then an
 * InputError instead of a hang.
 */
async function checkColumnChunk(file: ParquetInput, metadata: FileMetaData, group: number, columnIndex: number, source: string): Promise<void> {
  const bad = (msg: string): never => {
    throw new InputError(`${source}: not a readable Parquet file: row group ${group}, column chunk ${columnIndex}: ${msg}; the file is damaged — re-export it`, { source });
  };
  const meta = metadata.row_groups[group]?.columns[columnIndex]?.meta_data;
  if (!meta) bad('no column metadata');
  const m = meta!;
  const dict = m.dictionary_page_offset === undefined ? undefined : Number(m.dictionary_page_offset);
  const start = dict !== undefined && dict > 0 ? dict : Number(m.data_page_offset);
  const size = Number(m.total_compressed_size);
  if (!isCount(start) || !isCount(size) || start + size > file.byteLength) bad(`bytes [${start}, ${start + size}) are not inside the file's ${file.byteLength}`);
  const bytes = new Uint8Array(await file.slice(start, start + size));
  const reader = { view: new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), offset: 0 };
  for (let page = 0; reader.offset < bytes.length - 1; page++) {
    const at = reader.offset;
    let h: ReturnType<typeof parquetHeader>;
    try {
      h = parquetHeader(reader);
    } catch (e) {
      return bad(`page header at byte ${start + at} does not parse (${(e as Error).message})`);
    }
    const where = `page ${page} (at byte ${start + at})`;
    if (!isCount(h.compressed_page_size) || !isCount(h.uncompressed_page_size) || h.uncompressed_page_size > MAX_PAGE_BYTES) {
      bad(`${where} has sizes ${h.compressed_page_size} / ${h.uncompressed_page_size}`);
    }
    if (reader.offset + h.compressed_page_size > bytes.length) bad(`${where} runs past the end of its column chunk`);
    const req = (o: Record<string, unknown> | undefined, fields: string[], what: string): void => {
      if (!o) return void bad(`${where} is a ${h.type} without its ${what}`);
      for (const f of fields) if (!isCount(o[f])) bad(`${where}: ${what}.${f} is ${String(o[f])}`);
    };
    if (h.type === 'DATA_PAGE') {
      req(h.data_page_header as unknown as Record<string, unknown>, ['num_values'], 'data_page_header');
      if (!h.data_page_header!.encoding) bad(`${where}: unknown encoding`);
    } else if (h.type === 'DATA_PAGE_V2') {
      const d = h.data_page_header_v2 as unknown as Record<string, unknown>;
      req(d, ['num_values', 'num_nulls', 'num_rows', 'definition_levels_byte_length', 'repetition_levels_byte_length'], 'data_page_header_v2');
      const v2 = h.data_page_header_v2!;
      if (!v2.encoding) bad(`${where}: unknown encoding`);
      if (v2.num_nulls > v2.num_values || v2.definition_levels_byte_length + v2.repetition_levels_byte_length > h.compressed_page_size) {
        bad(`${where}: inconsistent counts (values ${v2.num_values}, nulls ${v2.num_nulls}, level bytes ${v2.definition_levels_byte_length} + ${v2.repetition_levels_byte_length} of ${h.compressed_page_size})`);
      }
    } else if (h.type === 'DICTIONARY_PAGE') {
      req(h.dictionary_page_header as unknown as Record<string, unknown>, ['num_values'], 'dictionary_page_header');
    } else if (h.type !== 'INDEX_PAGE') {
      bad(`${where} has an unknown page type ${String(h.type)}`);
    }
    reader.offset += h.compressed_page_size;
  }
}

/** All strings of column `column` of a Parquet file. */
export async function readParquetText(file: ParquetInput, column: string, source: string): Promise<string[]> {
  const out: string[] = [];
  for await (const s of iterateParquetText(file, column, source)) out.push(s);
  return out;
}
