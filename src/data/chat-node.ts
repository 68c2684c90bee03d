// Node-only: reading a conversation JSONL file (see chat.ts for the record forms).
import { readFileSync } from 'node:fs';
import { describeFsError } from './node-fs-errors.js';
import { parseChatJsonl, type ChatExample } from './chat.js';
import { decodeText } from './sources.js';

/** Reads a JSONL file of conversations (`messages`, or `prompt`/`completion`). Errors name the file and line. */
export function readChatJsonl(path: string): ChatExample[] {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw describeFsError(path, e, 'reading conversations');
  }
  if (bytes.length === 0) return parseChatJsonl('', path); // its message for an empty file
  return parseChatJsonl(decodeText(bytes, path), path);
}
