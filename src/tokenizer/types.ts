// What the rest of llamatrain needs from a tokenizer. Both the Hugging Face tokenizer.json loader (hf.ts) and our
// own byte-level BPE (bpe.ts) implement it. Plain numbers in and out: no tensors (runs in a Web Worker).

export interface EncodeOptions {
  /** Let the tokenizer's post-processor add its special tokens (e.g. LLaMA's BOS). Default false. */
  addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  /** Drop special tokens (EOS, BOS, pad, …) from the text. Default false. */
  skipSpecialTokens?: boolean;
  /**
   * Apply the tokenizer's clean-up of spaces before punctuation (" ." → "."). Default: tokenizer_config.json's
   * `clean_up_tokenization_spaces` (false when absent). Pass false to get the exact text back.
   */
  cleanUpTokenizationSpaces?: boolean;
}

export interface TextTokenizer {
  /** Number of ids the model's embedding needs: max id + 1 over the vocabulary and added tokens. */
  readonly vocabSize: number;
  readonly bosId: number | undefined;
  readonly eosId: number | undefined;
  readonly padId: number | undefined;
  encode(text: string, options?: EncodeOptions): number[];
  decode(ids: ArrayLike<number>, options?: DecodeOptions): string;
  tokenToId(token: string): number | undefined;
  idToToken(id: number): string | undefined;
}
