// The library's own error classes. Every error llamatrain throws on purpose — a file, a config or an argument that
// is not what it should be, a model that cannot fit — is a `LlamatrainError`, with a message that says what was
// expected, what was found and what to do. Anything else escaping the library (a TypeError, a RangeError from deep
// inside) is a bug. Dependency-free: data and tokenizer (which run in Web Workers) import it too.

/** Base class of every error llamatrain throws on purpose. `instanceof LlamatrainError` tells them from bugs. */
export class LlamatrainError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/**
 * A file or value handed to llamatrain is invalid: a safetensors file, config.json, tokenizer.json, a data file,
 * a tensor shape. `source` names the file (or the function) when there is one; the message starts with it.
 */
export class InputError extends LlamatrainError {
  readonly source: string | undefined;
  constructor(message: string, options?: { cause?: unknown; source?: string }) {
    super(message, options);
    this.source = options?.source;
  }
}

/** A model (or a training run) needs more memory than the backend or the machine has; nothing was allocated. */
export class ModelTooLargeError extends LlamatrainError {
  constructor(message: string, readonly neededBytes: number, readonly limitBytes: number) {
    super(message);
  }
}

/** A file-system operation failed (no such file, permission denied, …); `code` is Node's errno code. */
export class FileAccessError extends LlamatrainError {
  readonly code: string | undefined;
  constructor(message: string, options?: { cause?: unknown; code?: string }) {
    super(message, options);
    this.code = options?.code;
  }
}

/** Whether `e` is one of llamatrain's deliberate errors (not a bug). */
export function isLlamatrainError(e: unknown): e is LlamatrainError {
  return e instanceof LlamatrainError;
}
