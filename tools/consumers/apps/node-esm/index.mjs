import * as lt from 'llamatrain';
import { loadPretrained, readDocuments } from 'llamatrain/node';
import { readParquetText } from 'llamatrain/parquet';
import { loadTokenizer } from 'llamatrain/hf-tokenizer';
import { trainSteps } from './train-steps.mjs';

const entries = { 'llamatrain/node': loadPretrained && readDocuments, 'llamatrain/parquet': readParquetText, 'llamatrain/hf-tokenizer': loadTokenizer };
for (const [k, v] of Object.entries(entries)) if (typeof v !== 'function') throw new Error(`${k} is missing its exports`);
const r = await trainSteps(lt, 2);
await lt.shutdownWasmBackend();
console.log(JSON.stringify({ ...r, entries: Object.keys(entries) }));
