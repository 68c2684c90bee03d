// Text sources, browser-safe part: turning file *contents* into documents (strings). Reading files from disk is
// in node-sources.ts; in a browser, hand these functions the text or ArrayBuffer of a fetched/uploaded file.
// Every error names the source (file name) and, where there is one, the line. Parquet is in parquet.ts (its parser,
// hyparquet, is only loaded by apps that import `llamatrain/parquet` or `llamatrain/node`).

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
