// `llamatrain/hf-tokenizer` (browser-safe): any Hugging Face tokenizer.json, through @huggingface/tokenizers. A
// separate entry so that the main one loads no tokenizer library; `llamatrain/node` re-exports it with
// `loadTokenizerFile` (from disk).
export { HFTokenizer, loadTokenizer, type TokenizersJs } from './tokenizer/hf.js';
