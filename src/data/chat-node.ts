// Node-only: reading a conversation JSONL file (see chat.ts for the record forms).
import { readFileSync } from 'node:fs';
import { describeFsError } from './node-fs-errors.js';
import { parseChatJsonl, type ChatExample } from './chat.js';

/** Reads a JSONL file of conversations (`messages`, or `prompt`/`completion`). Errors name the file and line. */
export function readChatJsonl(path: string): ChatExample[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw describeFsError(path, e, 'reading conversations');
  }
  return parseChatJsonl(text, path);
}
