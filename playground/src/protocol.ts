// The messages between the page (main.ts) and the training worker (worker.ts). Every request the page sends is
// answered by events; an `error` event says what went wrong and the worker stays usable.
import type { Settings } from './presets.js';

/** Where the training text comes from. */
export type DataSource =
  | { kind: 'brown' }
  | { kind: 'file'; name: string; format: 'txt' | 'jsonl'; text: string; field: string }
  | { kind: 'paste'; text: string };

export type BackendChoice = 'auto' | 'webgpu' | 'wasm' | 'ref';

export type Request =
  | { type: 'init'; backend: BackendChoice; threads: number }
  /** Loads and checks the data (answered by `data`); training uses the last data loaded. */
  | { type: 'data'; source: DataSource }
  /** A tokenizer.json to use instead of training a BPE (answered by `tokenizer`). */
  | { type: 'tokenizer'; name: string; json: string }
  | { type: 'clearTokenizer' }
  | { type: 'start'; settings: Settings; samplePrompt: string }
  | { type: 'pause' }
  | { type: 'resume' }
  | { type: 'stop' }
  | { type: 'generate'; id: number; prompt: string; temperature: number; topK: number; maxNewTokens: number }
  | { type: 'export' }
  /** A Hugging Face folder's files (the paths the page chose with planFolder). */
  | { type: 'import'; files: { config: Uint8Array; weights: { name: string; bytes: Uint8Array }[]; index: Uint8Array | null; tokenizer: Uint8Array; tokenizerConfig: Uint8Array | null; folder: string } }
  | { type: 'clearImport' };

/** One optimizer step, as charted. */
export interface StepPoint {
  step: number;
  loss: number;
  /** Training bits per byte of the step's targets (null when the tokenizer's byte lengths are unknown). */
  bpb: number | null;
  lr: number;
  tokensPerSec: number;
  gradNorm: number;
  /** Wall-clock ms of the step (the Trainer's step alone). */
  ms: number;
  /** performance.now() in the worker when the step ended (wall-clock throughput across steps). */
  t: number;
  /** Input tokens of the step. */
  tokens: number;
}

/** The loss of one batch, token by token: the library's per-token loss (reduction 'none') on the step's batch. */
/**
 * How often the worker recomputes the loss anatomy: it costs a forward pass of the batch (a third of a step), so once
 * per 2.5 s of training keeps it near 5% of the training time on the tiny preset. The page says so.
 */
export const ANATOMY_EVERY_MS = 2500;

export interface Anatomy {
  step: number;
  B: number;
  T: number;
  /** Which row of the batch `rows*` describe. */
  row: number;
  /** [T] input ids of the row, and their text. */
  inputIds: number[];
  inputText: string[];
  /** [T] shifted targets of the row (labels[t + 1]; -100 where not counted), and their text. */
  targets: number[];
  targetText: string[];
  /** [T] why a target is -100: 'boundary' (a document starts at t + 1), 'padding', 'end' (no next token in the row), '' when counted. */
  reason: string[];
  /** [B·T] per-token losses of the whole batch (0 where the target is -100). */
  losses: Float32Array;
  /** [B·T] shifted targets of the whole batch (-100 where not counted). */
  batchTargets: Int32Array;
}

export type Event =
  | { type: 'ready'; backend: string; threads: number; isolated: boolean; notes: string[] }
  | { type: 'data'; source: string; documents: number; chars: number; trainDocs: number; validationDocs: number }
  | { type: 'tokenizer'; name: string; vocabSize: number }
  | { type: 'imported'; folder: string; parameters: number; config: Record<string, unknown>; vocabSize: number }
  | { type: 'progress'; phase: string; done: number; total: number }
  | { type: 'started'; parameters: number; vocabSize: number; trainRows: number; validationRows: number; stepsPerEpoch: number; tokenizer: string; dims: string }
  | { type: 'steps'; points: StepPoint[] }
  | { type: 'anatomy'; anatomy: Anatomy }
  | { type: 'eval'; step: number; loss: number; bpb: number | null; perplexity: number; sample: string }
  | { type: 'state'; state: 'idle' | 'preparing' | 'training' | 'paused' | 'stopping' | 'stopped' | 'done' }
  | { type: 'generated'; id: number; text: string }
  | { type: 'exported'; zip: Uint8Array; name: string }
  | { type: 'error'; message: string; during: string };
