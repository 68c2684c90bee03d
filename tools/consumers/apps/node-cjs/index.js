// A CommonJS app (`npm init -y`'s default): require() of every entry point.
const lt = require('llamatrain');
const { loadPretrained } = require('llamatrain/node');
const { readParquetText } = require('llamatrain/parquet');
const { loadTokenizer } = require('llamatrain/hf-tokenizer');
const { trainSteps } = require('./train-steps.cjs');

for (const f of [loadPretrained, readParquetText, loadTokenizer, lt.LlamaForCausalLM]) if (typeof f !== 'function') throw new Error('an entry point is missing its exports');
trainSteps(lt, 2).then(async (r) => {
  await lt.shutdownWasmBackend();
  console.log(JSON.stringify(r));
});
