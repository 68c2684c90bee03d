// Library errors as a command-line user reads them: the library names its own settings (`onNonFinite`, `dropLast`,
// `warmupSteps`), which a CLI user cannot set; the CLI names the flag that changes the same thing. One table, applied
// to every error that reaches the command line (main.ts). Each rule's library phrase is checked to still exist in
// src/ by test/cli/options.test.ts, so a reworded library message cannot silently slip past its translation.

export interface MessageRule {
  /** The library's wording (a regular expression over the message). */
  library: RegExp;
  /** What the CLI says instead; `$1`… refer to the groups of `library`. */
  cli: string;
  /** A literal piece of the library's source text the rule depends on (checked by the tests). */
  source: string;
}

export const MESSAGE_RULES: readonly MessageRule[] = [
  { // Trainer: a NaN/Inf loss or gradient (src/train/trainer.ts)
    library: /\(lower the learning rate, check the data, or set onNonFinite: 'skip'\)/,
    cli: '(lower --lr or raise --warmup, or check --data)',
    source: "or set onNonFinite: 'skip'",
  },
  { // DataLoader with dropLast and fewer examples than a batch (src/data/dataloader.ts)
    library: /lower batchSize or turn dropLast off/,
    cli: 'lower --batch-size (or --seq-len, which makes more rows), or give more data',
    source: 'lower batchSize or turn dropLast off',
  },
  { // a JSONL line without the text field (src/data/sources.ts)
    library: /Pick the text field with the field option/,
    cli: 'Pick the text field with --text-field',
    source: 'Pick the text field with the field option',
  },
  { // LR schedules (src/optim/schedule.ts)
    library: /warmup(?:Cosine|Linear): need 0 ≤ warmupSteps ≤ totalSteps, got (\S+) and (\S+)/,
    cli: '--warmup ($1) must be at most --steps ($2)',
    source: 'need 0 ≤ warmupSteps ≤ totalSteps',
  },
  {
    library: /warmup(?:Cosine|Linear): minLrRatio must be in \[0, 1\], got (\S+)/,
    cli: '--min-lr-ratio must be in [0, 1], got $1',
    source: 'minLrRatio must be in [0, 1]',
  },
  { // LoRA targets that the model does not have (src/peft/lora.ts)
    library: /getPeftModel: targetModules (.*) match no Linear of the model; its Linear modules are (.*) \(or pass 'all-linear'\)/,
    cli: '--target-modules: $1 match no Linear of the model; its Linear modules are $2 (or --target-modules=all-linear)',
    source: "match no Linear of the model; its Linear modules are ",
  },
  { // BPE training (src/tokenizer/bpe.ts)
    library: /trainByteLevelBPE: vocabSize must be/,
    cli: '--vocab-size must be',
    source: 'trainByteLevelBPE: vocabSize must be',
  },
];

/** A library error message in the CLI's terms (flags instead of library settings). */
export function forCli(message: string): string {
  let out = message;
  for (const r of MESSAGE_RULES) out = out.replace(r.library, r.cli);
  return out;
}
