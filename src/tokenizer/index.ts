// Tokenizers (browser-safe): our byte-level BPE trainer/encoder, byte counting for bits-per-byte. Any HF
// tokenizer.json (via @huggingface/tokenizers, a dependency only apps that use it load) is in ./hf.ts
// (`llamatrain/hf-tokenizer`); file helpers (load from / save to disk) are in ./node.ts.
export type { TextTokenizer, EncodeOptions, DecodeOptions } from './types.js';
export { ByteLevelBPE, trainByteLevelBPE, ENDOFTEXT, type TrainBPEOptions } from './bpe.js';
export { BYTE_TO_UNICODE, GPT2_PATTERN, preTokenize, toByteLevel, fromByteLevel } from './byte-level.js';
export {
  applyChatTemplate,
  renderTracked,
  assistantSpans,
  resolveChatTemplate,
  parseChatTemplateField,
  defaultEndOfTurn,
  CHATML_TEMPLATE,
  CHATML_SPECIAL_TOKENS,
  END_OF_TURN_TOKENS,
  type ChatMessage,
  type ChatContentPart,
  type ChatTemplateOptions,
  type ChatEncoding,
  type ChatTokenizerLike,
} from './chat.js';
export { countBytes, tokenByteLengths, totalBytes, bitsPerByte, bitsPerByteFromMeanLoss } from './bytes.js';
