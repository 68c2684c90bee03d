// Node-only: reading a conversation JSONL file (see chat.ts for the record forms).
import { readFileSync, statSync } from 'node:fs';
import { describeFsError, notRegularFileError, specialFileKind } from './node-fs-errors.js';
import { FileAccessError, InputError } from '../core/errors.js';
import { parseChatJsonl, type ChatExample } from './chat.js';
import { decodeText } from './sources.js';

const MAX_CHAT_BYTES = 512 * 1024 * 1024;

/** Reads a JSONL file of conversations (`messages`, or `prompt`/`completion`). Errors name the file and line. */
export function readChatJsonl(path: string): ChatExample[] {
  let bytes: Uint8Array;
  try {
    const s = statSync(path);
    const kind = specialFileKind(s);
    if (kind !== null) throw notRegularFileError(path, kind, 'reading conversations');
    // conversations are read whole (a fine-tuning set is small); past this, it is the wrong file
    if (s.size > MAX_CHAT_BYTES) {
      throw new InputError(`${path}: ${s.size.toLocaleString('en-US')} bytes of conversations; at most ${MAX_CHAT_BYTES.toLocaleString('en-US')} are read ` +
        '(is it the right file? split it into smaller files)', { source: path });
    }
    bytes = readFileSync(path);
  } catch (e) {
    if (e instanceof InputError || e instanceof FileAccessError) throw e;
    throw describeFsError(path, e, 'reading conversations');
  }
  if (bytes.length === 0) return parseChatJsonl('', path); // its message for an empty file
  return parseChatJsonl(decodeText(bytes, path), path);
}
