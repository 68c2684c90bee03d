import * as lt from 'llamatrain';
import { loadPretrained, readDocuments } from 'llamatrain/node';
import { readParquetText } from 'llamatrain/parquet';
import { loadTokenizer } from 'llamatrain/hf-tokenizer';
import { renderJinja } from 'llamatrain/chat';
import { trainSteps } from './train-steps.mjs';

const entries = { 'llamatrain/node': loadPretrained && readDocuments, 'llamatrain/parquet': readParquetText, 'llamatrain/hf-tokenizer': loadTokenizer,
  'llamatrain/chat': renderJinja };
// the main entry in Node: LoRA adapters save to disk and chat templates render without importing another entry
const { mkdtempSync } = await import('node:fs');
const { tmpdir } = await import('node:os');
const peft = lt.getPeftModel(new lt.LlamaForCausalLM({ vocabSize: 300, hiddenSize: 8, intermediateSize: 16, numHiddenLayers: 1, numAttentionHeads: 2 }), { r: 2 });
await peft.savePretrained(mkdtempSync(`${tmpdir()}/peft-`));
const chatTok = lt.trainByteLevelBPE(['hello there'], { vocabSize: 300, chat: true });
if (!chatTok.applyChatTemplate([{ role: 'user', content: 'hi' }]).startsWith('<|im_start|>user')) throw new Error('chat template');
for (const [k, v] of Object.entries(entries)) if (typeof v !== 'function') throw new Error(`${k} is missing its exports`);
const r = await trainSteps(lt, 2);
await lt.shutdownWasmBackend();
console.log(JSON.stringify({ ...r, entries: Object.keys(entries) }));
