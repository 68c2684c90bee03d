// `llamatrain/chat`: chat templates rendered with @huggingface/jinja (installs the renderer applyChatTemplate uses).
// Node apps get it through `llamatrain/node`; browser apps import this entry once.
export { renderJinja } from './tokenizer/jinja.js';
export * from './tokenizer/chat.js';
