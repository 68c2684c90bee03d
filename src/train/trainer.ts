// The training loop. One optimizer step = K micro-batches: count the valid targets of all K first (on the host,
// from the batches) and pass that count as numItemsInBatch, so the accumulated gradient equals the full-batch
// gradient; then clip, step the optimizer, step the schedule (per optimizer step, never per epoch), zero the
// gradients.
//
// Nothing is read from the device until the step's work is queued: the losses are summed, the global gradient
// norm computed and the gradients clipped on the device, and the optimizer update is gated on the device by
// "loss and norm are finite". The step then reads the loss and the norm once, at its end, and only then decides
// on the host what a non-finite value means (stop with a message naming the parameter, or skip: the device
// already left the weights untouched; the host undoes the optimizer's step counts and does not step the schedule).

import { LlamatrainError, RNG, type Tensor, concat, mul, noGrad, openScope, reshape, sum } from '../core/index.js';
import { type LlamaForCausalLM, checkTrainingMemory } from '../nn/index.js';
import type { TrainableModel } from './model.js';

import { type LRScheduler, type Optimizer, type OptimizerStateDict, clipGradsByNorm, gradNormTensor } from '../optim/index.js';
import { type Batch, type BatchSource, countTargets, toTensors } from './batch.js';
import { type EvalResult, evaluate } from './evaluate.js';

/** Everything besides the model weights that a resume needs. */
export interface TrainingState {
  step: number;
  optimizer: OptimizerStateDict;
  scheduler: unknown;
  data: unknown;
  rng: number[];
  /** Free-form extras (tokens seen, config of the run, ...). */
  extra?: Record<string, unknown>;
}

export interface SaveCheckpointOptions {
  /** Keep this many most recent step-N directories (default 2; 0 = keep all). */
  keep?: number;
  /** Called after every file is written to the temporary directory, before it is renamed into place (tests). */
  beforeCommit?: () => Promise<void> | void;
}

/**
 * Writes a checkpoint and returns where. Injected so that this module stays browser-safe: on Node pass
 * `saveCheckpoint` from 'llamatrain/node'; a browser app can store the state wherever it likes.
 */
export type CheckpointWriter<M = LlamaForCausalLM> = (root: string, model: M, state: TrainingState, opts: SaveCheckpointOptions) => Promise<string>;

export interface TrainerOptions<M extends TrainableModel = LlamaForCausalLM> {
  model: M;
  optimizer: Optimizer;
  scheduler?: LRScheduler | null;
  train: BatchSource;
  /** Micro-batches per optimizer step (K). Default 1. */
  gradAccumSteps?: number;
  /** Stop after this many optimizer steps. */
  maxSteps: number;
  /** Global 2-norm clip; null = no clipping (the norm is still reported). Default 1.0. */
  clipGradNorm?: number | null;
  evalEvery?: number;
  /** A fresh iterable over the validation batches, each time it is called. */
  evalData?: () => Iterable<Batch>;
  /** Non-finite loss or gradient: 'stop' (default) throws an error naming the step; 'skip' drops the update. */
  onNonFinite?: 'stop' | 'skip';
  labelSmoothing?: number;
  zLoss?: number;
  /** Fused LM head + cross-entropy, never holding [B, T, V] logits (default true; same numbers as unfused). */
  fusedLoss?: boolean;
  /**
   * Recompute each decoder layer's activations in backward instead of keeping them: less memory for long rows, one
   * more forward pass per step, the same loss and gradients. Default: the model's own setting (off).
   */
  gradientCheckpointing?: boolean;
  /** Seed of the trainer's RNG (saved in checkpoints). */
  seed?: number;
  /** How saveCheckpoint() writes (Node: `saveCheckpoint` from 'llamatrain/node'). */
  checkpointWriter?: CheckpointWriter<M>;
}

export interface TrainLoopOptions {
  /** Stop between steps once aborted (e.g. on Ctrl-C); `trainer.step` then says how far it got. */
  signal?: AbortSignal;
}

/** A macrotask turn: lets timers, I/O and signal handlers run between steps (a step may await only microtasks). */
function yieldToEventLoop(): Promise<void> {
  const g = globalThis as { setImmediate?: (fn: () => void) => unknown };
  return new Promise((resolve) => (g.setImmediate ? g.setImmediate(resolve) : setTimeout(resolve, 0)));
}

export interface StepMetrics {
  step: number;
  /** Training loss of the step (mean over its valid targets; includes smoothing / z-loss when enabled). */
  loss: number;
  lr: number;
  /** Global gradient 2-norm before clipping. */
  gradNorm: number;
  /** Valid target tokens of the step. */
  targets: number;
  /** Input tokens (non-padding) of the step. */
  tokens: number;
  tokensPerSec: number;
  elapsedMs: number;
  skipped: boolean;
}

export interface TrainerEvents<M extends TrainableModel = LlamaForCausalLM> {
  step: (m: StepMetrics) => void;
  /** May return a promise (e.g. a sample to generate): train() waits for it before the next step. */
  eval: (r: EvalResult & { step: number }) => void | Promise<void>;
  /** After all micro-batches' backward, before clipping: gradients can be inspected (or, in tests, corrupted). */
  afterBackward: (info: { step: number; model: M }) => void;
}

export class NonFiniteError extends LlamatrainError {
  constructor(message: string, readonly step: number, readonly parameter?: string) {
    super(message);
    this.name = 'NonFiniteError';
  }
}

export class Trainer<M extends TrainableModel = LlamaForCausalLM> {
  readonly model: M;
  readonly optimizer: Optimizer;
  readonly scheduler: LRScheduler | null;
  readonly rng: RNG;
  /** Optimizer steps completed. */
  step = 0;
  private readonly opts: TrainerOptions<M>;
  private readonly listeners: { [K in keyof TrainerEvents<M>]: TrainerEvents<M>[K][] } = { step: [], eval: [], afterBackward: [] };
  private readonly started = Date.now();
  private tokensSeen = 0;

  constructor(opts: TrainerOptions<M>) {
    this.opts = opts;
    this.model = opts.model;
    this.optimizer = opts.optimizer;
    this.scheduler = opts.scheduler ?? null;
    this.rng = new RNG(opts.seed ?? 0);
    const K = opts.gradAccumSteps ?? 1;
    if (!Number.isInteger(K) || K < 1) throw new RangeError(`Trainer: gradAccumSteps must be an integer ≥ 1, got ${K}`);
    if (!Number.isInteger(opts.maxSteps) || opts.maxSteps < 0) throw new RangeError(`Trainer: maxSteps must be an integer ≥ 0, got ${opts.maxSteps}`);
    // before any gradient or optimizer state exists: refuse a model whose training can never fit in memory
    checkTrainingMemory(opts.model.parameters().filter((p) => p.requiresGrad), opts.model.backend);
  }

  on<K extends keyof TrainerEvents<M>>(event: K, fn: TrainerEvents<M>[K]): this {
    this.listeners[event].push(fn);
    return this;
  }

  private emit<K extends keyof TrainerEvents<M>>(event: K, arg: Parameters<TrainerEvents<M>[K]>[0]): void {
    for (const fn of this.listeners[event] as unknown as ((a: typeof arg) => void)[]) fn(arg);
  }

  /**
   * Runs optimizer steps until maxSteps (or until `until`). Returns the metrics of the last step. With a `signal`,
   * it stops between steps once the signal is aborted (the step under way, and its evaluation, finish first), and
   * yields to the event loop between steps so that what aborts it (a Ctrl-C handler, a button) gets to run.
   */
  async train(until = this.opts.maxSteps, opts: TrainLoopOptions = {}): Promise<StepMetrics | null> {
    let last: StepMetrics | null = null;
    while (this.step < Math.min(until, this.opts.maxSteps)) {
      if (opts.signal) {
        await yieldToEventLoop();
        if (opts.signal.aborted) break;
      }
      const m = await this.trainStep();
      if (!m) break;
      last = m;
      const every = this.opts.evalEvery ?? 0;
      if (every > 0 && this.opts.evalData && (this.step % every === 0 || this.step === this.opts.maxSteps)) await this.runEval();
    }
    return last;
  }

  async runEval(): Promise<EvalResult & { step: number }> {
    if (!this.opts.evalData) throw new Error('Trainer: no evalData was given');
    const r = { ...(await evaluate(this.model, this.opts.evalData())), step: this.step };
    // handlers run to completion before training goes on: their device work never interleaves with a step's
    await Promise.all((this.listeners.eval as ((x: typeof r) => void | Promise<void>)[]).map((fn) => fn(r)));
    return r;
  }

  /** One optimizer step over K micro-batches; null when the data ran out before the step began. */
  async trainStep(): Promise<StepMetrics | null> {
    const K = this.opts.gradAccumSteps ?? 1;
    const micro: Batch[] = [];
    for (let k = 0; k < K; k++) {
      const b = this.opts.train.next();
      if (!b) break;
      micro.push(b);
    }
    if (micro.length === 0) return null;
    const stepNo = this.step + 1; // 1-based in messages and metrics
    const t0 = Date.now();
    const targetsPerMicro = micro.map((b) => countTargets(b));
    const numItemsInBatch = targetsPerMicro.reduce((n, c) => n + c, 0);
    const tokens = micro.reduce((n, b) => n + (b.attentionMask ? b.attentionMask.reduce((a, x) => a + x, 0) : b.inputIds.length), 0);
    let loss = 0, norm = 0;
    let skipped = numItemsInBatch === 0; // nothing to learn from (e.g. every label is -100)
    const lr = this.optimizer.paramGroups[0]!.lr;
    // Activations and their gradients live for this step: the scope frees them at the end (parameters, gradients
    // and optimizer state are kept). On the wasm backend this is what lets tensors live in its memory.
    const scope = openScope(this.model.backend);
    try {
      const losses: Tensor[] = []; // one device scalar per micro-batch that has targets
      const lossOf: number[] = []; // its micro-batch index
      if (!skipped) {
        for (let k = 0; k < micro.length; k++) {
          if (targetsPerMicro[k] === 0) continue;
          const t = toTensors(micro[k]!, this.model.backend);
          const out = this.model.forward(t.inputIds, {
            attentionMask: t.attentionMask, labels: t.labels, positionIds: t.positionIds, documentIds: t.documentIds,
            numItemsInBatch, labelSmoothing: this.opts.labelSmoothing, zLoss: this.opts.zLoss, fusedLoss: this.opts.fusedLoss ?? true,
            gradientCheckpointing: this.opts.gradientCheckpointing,
          });
          out.loss!.backward();
          losses.push(out.loss!.detach());
          lossOf.push(k);
        }
      }
      this.emit('afterBackward', { step: stepNo, model: this.model });
      if (!skipped) {
        const params = this.model.parameters();
        const maxNorm = this.opts.clipGradNorm === undefined ? 1.0 : this.opts.clipGradNorm;
        const normT = gradNormTensor(params);
        // [loss_1, …, loss_K, norm]: the one read of the step
        const values = noGrad(() => concat([...losses.map((l) => reshape(l, [1])), ...(normT ? [reshape(normT, [1])] : [])], 0));
        if (normT && maxNorm !== null) clipGradsByNorm(params, normT, maxNorm); // unchanged when the norm is not finite
        // Σ 0·value is 0, or NaN when any loss or the norm is NaN/Inf: then the device skips the update
        this.optimizer.step({ gate: noGrad(() => sum(mul(values, 0))) });
        const read = await values.data();
        loss = losses.reduce((s, _l, i) => s + read[i]!, 0);
        norm = normT ? read[losses.length]! : 0;
        const badLoss = losses.findIndex((_l, i) => !Number.isFinite(read[i]!));
        if (badLoss >= 0 || !Number.isFinite(norm)) {
          this.optimizer.cancelStep();
          skipped = true;
          if (badLoss >= 0) {
            this.nonFinite(`step ${stepNo}: the loss of micro-batch ${lossOf[badLoss]! + 1}/${micro.length} is ${read[badLoss]}`, stepNo);
          } else {
            const bad = await this.firstNonFiniteGrad();
            this.nonFinite(`step ${stepNo}: the gradient norm is ${norm}` +
              (bad ? `; the first parameter with a non-finite gradient is ${bad}` : ''), stepNo, bad ?? undefined);
          }
        } else {
          this.scheduler?.step();
        }
      }
      this.optimizer.zeroGrad();
      this.model.zeroGrad(); // parameters outside the optimizer, if any
    } finally {
      scope.close();
    }
    this.step = stepNo;
    this.tokensSeen += tokens;
    const elapsedMs = Date.now() - t0;
    const m: StepMetrics = {
      step: stepNo, loss, lr, gradNorm: norm, targets: numItemsInBatch, tokens,
      tokensPerSec: elapsedMs > 0 ? (tokens * 1000) / elapsedMs : 0, elapsedMs: Date.now() - this.started, skipped,
    };
    this.emit('step', m);
    return m;
  }

  /** Throws in 'stop' mode; in 'skip' mode the step is dropped (the device already left the weights as they were). */
  private nonFinite(msg: string, step: number, parameter?: string): void {
    if ((this.opts.onNonFinite ?? 'stop') === 'stop') {
      this.optimizer.zeroGrad();
      throw new NonFiniteError(`${msg}. Training stopped (lower the learning rate, check the data, or set onNonFinite: 'skip').`, step, parameter);
    }
  }

  private async firstNonFiniteGrad(): Promise<string | null> {
    for (const [name, p] of this.model.namedParameters()) {
      if (!p.grad) continue;
      const g = await p.grad.data();
      for (let i = 0; i < g.length; i++) if (!Number.isFinite(g[i]!)) return name;
    }
    return null;
  }

  /** Everything a bit-identical resume needs besides the weights (async: it reads the optimizer state). */
  async state(): Promise<TrainingState> {
    return {
      step: this.step,
      optimizer: await this.optimizer.stateDict(),
      scheduler: this.scheduler ? this.scheduler.stateDict() : null,
      data: this.opts.train.state(),
      rng: this.rng.getState(),
      extra: { tokensSeen: this.tokensSeen },
    };
  }

  loadState(s: TrainingState): void {
    this.step = s.step;
    this.optimizer.loadStateDict(s.optimizer);
    if (this.scheduler && s.scheduler) this.scheduler.loadStateDict(s.scheduler as Parameters<LRScheduler['loadStateDict']>[0]);
    this.opts.train.loadState(s.data);
    this.rng.setState(s.rng);
    this.tokensSeen = Number(s.extra?.tokensSeen ?? 0);
  }

  /** Saves a checkpoint under `root` with the injected checkpointWriter. */
  async saveCheckpoint(root: string, opts: SaveCheckpointOptions = {}): Promise<string> {
    const write = this.opts.checkpointWriter;
    if (!write) {
      throw new Error("Trainer.saveCheckpoint: no checkpointWriter was given; on Node pass { checkpointWriter: saveCheckpoint } " +
        "with saveCheckpoint from 'llamatrain/node'");
    }
    return write(root, this.model, await this.state(), opts);
  }
}
