// `llamatrain` as Node resolves it (the "node" export condition): the same API as the browser-safe index.ts, with
// the file system and the chat-template renderer installed, so PeftModel.savePretrained and applyChatTemplate work
// without importing 'llamatrain/node' first. Bundlers for browsers take index.ts.
import './io/install-files.js';

export * from './index.js';
