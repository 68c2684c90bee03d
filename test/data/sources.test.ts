// Sources: plain text, JSONL, Parquet (fixtures in test/fixtures/data; the Parquet files were written by
// hyparquet-writer, see make-parquet.mjs there), and their errors naming file and line/row.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fixturePath } from '../helpers.js';
import { parseJsonl, splitTextDocuments } from '../../src/data/index.js';
import { readParquetText } from '../../src/parquet.js';
import { readDocuments, readJsonlDocuments, readParquetDocuments, readTextDocuments } from '../../src/data/node.js';

const f = (name: string) => fixturePath('data', name);
const named = (file: string, re: RegExp) => (e: Error) => e.message.startsWith(file) && re.test(e.message);

test('plain text: auto (paragraphs grouped), whole file, paragraphs, lines', async () => {
  const p = f('paragraphs.txt');
  // auto: the three paragraphs fit one document of AUTO_DOCUMENT_CHARS, joined by one blank line
  assert.deepEqual(await readTextDocuments(p), ['First paragraph,\nstill first.\n\nSecond paragraph.\n\nThird.']);
  assert.deepEqual(await readTextDocuments(p, { split: 'file' }), ['First paragraph,\nstill first.\n\nSecond paragraph.\n\n\nThird.\n']);
  assert.deepEqual(await readTextDocuments(p, { split: 'paragraph' }), ['First paragraph,\nstill first.', 'Second paragraph.', 'Third.']);
  assert.deepEqual(await readTextDocuments(p, { split: 'line' }), ['First paragraph,', 'still first.', 'Second paragraph.', 'Third.']);
});

test('empty and blank text files: a clear error naming the file', async () => {
  await assert.rejects(readTextDocuments(f('empty.txt')), named(f('empty.txt'), /: file is empty \(0 bytes\)/));
  await assert.rejects(readTextDocuments(f('blank.txt')), named(f('blank.txt'), /: file contains only whitespace/));
  await assert.rejects(readTextDocuments(f('nope.txt')), named(f('nope.txt'), /: no such file/));
  assert.throws(() => splitTextDocuments('', 'upload.txt'), /^InputError: upload\.txt: file is empty/);
});

test('JSONL: a named field, blank lines skipped, escapes decoded', async () => {
  assert.deepEqual(await readJsonlDocuments(f('docs.jsonl')), ['Hello world.', 'Second doc\nwith a newline.', 'Third: ünïcödé']);
  assert.deepEqual(parseJsonl(readFileSync(f('docs.jsonl'), 'utf8'), 'text', 'docs.jsonl').length, 3);
});

test('JSONL errors name the file and the line: invalid JSON, missing field, wrong type, empty file', async () => {
  const bad = f('bad-line.jsonl');
  await assert.rejects(readJsonlDocuments(bad), named(`${bad}:3:`, /invalid JSON on line 3/));
  assert.throws(() => parseJsonl(readFileSync(bad, 'utf8'), 'text', 'bad-line.jsonl'), /^InputError: bad-line\.jsonl:3: invalid JSON on line 3/);
  const miss = f('missing-field.jsonl');
  await assert.rejects(readJsonlDocuments(miss), named(`${miss}:3:`, /line 3 has no field "text"; its fields are: body, id/));
  await assert.rejects(readJsonlDocuments(f('docs.jsonl'), { field: 'id' }), /docs\.jsonl:1: field "id" on line 1 is a number, expected a string/);
  assert.throws(() => parseJsonl('[1]\n', 'text', 'x.jsonl'), /x\.jsonl:1: line 1 is an array, expected a JSON object/);
  await assert.rejects(readJsonlDocuments(f('empty.txt')), named(f('empty.txt'), /: file is empty/));
  assert.throws(() => parseJsonl('\n\n', 'text', 'y.jsonl'), /y\.jsonl: no records/);
});

test('Parquet: a string column, read row group by row group', async () => {
  const docs = await readParquetDocuments(f('docs.parquet'));
  assert.deepEqual(docs, ['The first document.', 'A second one, with "quotes".', 'Third: ünïcödé ✓', 'Fourth.', 'Fifth and last.']);
  // the browser-safe reader on an in-memory ArrayBuffer gives the same
  const buf = readFileSync(f('docs.parquet'));
  const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
  assert.deepEqual(await readParquetText(ab, 'text', 'docs.parquet'), docs);
});

test('Parquet errors: missing column (lists the columns), null value (names the row), empty file', async () => {
  const p = f('no-text-column.parquet');
  await assert.rejects(readParquetDocuments(p), named(p, /: no column "text" in this Parquet file; its columns are: id, content, source/));
  assert.deepEqual(await readParquetDocuments(p, { column: 'content' }), ['a', 'b', 'c']);
  const n = f('null-text.parquet');
  await assert.rejects(readParquetDocuments(n), named(n, /: row 3: column "text" is null, expected a string/));
  await assert.rejects(readParquetDocuments(f('empty.txt')), named(f('empty.txt'), /: file is empty/));
  await assert.rejects(readParquetDocuments(f('docs.jsonl')), named(f('docs.jsonl'), /: not a readable Parquet file/));
});

test('readDocuments picks the reader from the extension', async () => {
  assert.equal((await readDocuments(f('docs.parquet'))).length, 5);
  assert.equal((await readDocuments(f('docs.jsonl'))).length, 3);
  assert.equal((await readDocuments(f('paragraphs.txt'), { split: 'paragraph' })).length, 3);
});
