// The Node entry (under tsconfig.nodenext.json, with @types/node).
import { loadPretrained, savePretrained, readDocuments, loadTokenizerFile } from 'llamatrain/node';
import { run } from './browser.js';

const model = await loadPretrained('model');
await savePretrained(model, 'out');
const docs: string[] = await readDocuments('data.txt');
const tok = loadTokenizerFile('tokenizer.json');
console.log(docs.length, tok.vocabSize, run);
