// Text sources, browser-safe part: turning file *contents* into documents (strings). Reading files from disk is
// in node-sources.ts; in a browser, hand these functions the text or ArrayBuffer of a fetched/uploaded file.
// Every error names the source (file name) and, where there is one, the line or row.
import { parquetMetadataAsync, parquetReadObjects, parquetSchema, type AsyncBuffer, type FileMetaData } from 'hyparquet';

/** How a plain-text file is cut into documents. */
export type TextSplit = 'file' | 'paragraph' | 'line';

/**
 * Plain text → documents: the whole file as one document ('file', the default), blocks separated by blank lines
 * ('paragraph'), or non-empty lines ('line'). Throws if the text has nothing but whitespace.
 */
export function splitTextDocuments(text: string, source: string, split: TextSplit = 'file'): string[] {
  if (text.length === 0) throw new Error(`${source}: file is empty (0 bytes); expected text to train on`);
  if (text.trim().length === 0) throw new Error(`${source}: file contains only whitespace (${text.length} characters); expected text to train on`);
  switch (split) {
    case 'file':
      return [text];
    case 'paragraph':
      return text.split(/\r?\n[ \t]*\r?\n/).map((p) => p.trim()).filter((p) => p.length > 0);
    case 'line':
      return text.split(/\r?\n/).filter((l) => l.trim().length > 0);
    default:
      throw new Error(`${source}: unknown split ${JSON.stringify(split)}; use 'file', 'paragraph' or 'line'`);
  }
}

/**
 * One JSONL line → the string in `field`, or null for a blank line. `lineNo` is 1-based. Errors name
 * `source:line`.
 */
export function parseJsonlLine(line: string, lineNo: number, field: string, source: string): string | null {
  if (line.trim().length === 0) return null;
  let obj: unknown;
  try {
    obj = JSON.parse(line);
  } catch (e) {
    const snippet = line.length > 60 ? `${line.slice(0, 60)}…` : line;
    throw new Error(`${source}:${lineNo}: invalid JSON on line ${lineNo} (${(e as Error).message}); each line must be one JSON object, got: ${snippet}`, { cause: e });
  }
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
    throw new Error(`${source}:${lineNo}: line ${lineNo} is ${obj === null ? 'null' : Array.isArray(obj) ? 'an array' : `a ${typeof obj}`}, expected a JSON object with a "${field}" field`);
  }
  if (!(field in obj)) {
    const keys = Object.keys(obj);
    throw new Error(`${source}:${lineNo}: line ${lineNo} has no field "${field}"; its fields are: ${keys.length ? keys.join(', ') : '(none)'}. Pick the text field with the field option`);
  }
  const v = (obj as Record<string, unknown>)[field];
  if (typeof v !== 'string') {
    throw new Error(`${source}:${lineNo}: field "${field}" on line ${lineNo} is ${v === null ? 'null' : Array.isArray(v) ? 'an array' : `a ${typeof v}`}, expected a string`);
  }
  return v;
}

/** Whole JSONL text → the `field` string of every line (blank lines skipped). */
export function parseJsonl(text: string, field: string, source: string): string[] {
  if (text.length === 0) throw new Error(`${source}: file is empty (0 bytes); expected JSON lines with a "${field}" field`);
  const out: string[] = [];
  const lines = text.split('\n');
  lines.forEach((raw, i) => {
    const v = parseJsonlLine(raw.endsWith('\r') ? raw.slice(0, -1) : raw, i + 1, field, source);
    if (v !== null) out.push(v);
  });
  if (out.length === 0) throw new Error(`${source}: no records: the file has ${lines.length} line(s), all blank; expected JSON lines with a "${field}" field`);
  return out;
}

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
  if (file.byteLength === 0) throw new Error(`${source}: file is empty (0 bytes); expected a Parquet file with a "${column}" column`);
  let metadata: FileMetaData;
  try {
    metadata = await parquetMetadataAsync(file);
  } catch (e) {
    throw new Error(`${source}: not a readable Parquet file (${(e as Error).message})`, { cause: e });
  }
  const columns = parquetColumnNames(metadata);
  if (!columns.includes(column)) {
    throw new Error(`${source}: no column "${column}" in this Parquet file; its columns are: ${columns.join(', ') || '(none)'}. Pick the text column with the column option`);
  }
  const total = Number(metadata.num_rows);
  if (total === 0) throw new Error(`${source}: the Parquet file has 0 rows; expected at least one "${column}" value`);
  let rowStart = 0;
  for (const rg of metadata.row_groups) {
    const rowEnd = rowStart + Number(rg.num_rows);
    let rows: Record<string, unknown>[];
    try {
      rows = (await parquetReadObjects({ file, metadata, columns: [column], rowStart, rowEnd })) as Record<string, unknown>[];
    } catch (e) {
      throw new Error(`${source}: could not read rows ${rowStart}…${rowEnd - 1} of column "${column}" (${(e as Error).message})`, { cause: e });
    }
    for (let i = 0; i < rows.length; i++) {
      const v = rows[i]![column];
      if (typeof v !== 'string') {
        throw new Error(`${source}: row ${rowStart + i}: column "${column}" is ${v === null || v === undefined ? 'null' : `a ${typeof v}`}, expected a string`);
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
