// What every training command shares: the run report (metrics.jsonl, loss.svg, samples.txt, progress) and training
// in spans between checkpoints. Node only.

import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import cliProgress from 'cli-progress';
import { LlamatrainError } from '../core/errors.js';
import type { StepMetrics, TrainableModel, Trainer } from '../train/index.js';
import type { PackedRow } from '../data/index.js';
import { RunStopped, signalExitCode } from './rundir.js';
import { lossCurveSvg } from './plot.js';

export type Log = (s: string) => void;

/**
 * Diagnostics (the backend line, warnings, progress, notes) go to stderr; results (what a command computed) to
 * stdout, so that `llamatrain … | tool` or `> file` gets only the results.
 */
export const note: Log = (s) => { breakProgressLine(); process.stderr.write(`${s}\n`); };

/** Whether a progress bar is drawn on the current stderr line (a message then starts on a new line). */
let progressLineOpen = false;
/** Ends the progress bar's line, if one is drawn, so that a message written now does not run on from it. */
export function breakProgressLine(): void {
  if (progressLineOpen) { process.stderr.write('\n'); progressLineOpen = false; }
}

/**
 * A generated sample as printed: each line of it indented under a heading that says how it was made, so that
 * newlines in the text read as newlines and the sample cannot be mistaken for the lines around it.
 */
export function showSample(heading: string, text: string, indent = '    '): string {
  return `${heading}\n${(text === '' ? '(empty)' : text).split('\n').map((l) => `${indent}${l}`).join('\n')}`;
}

/** Where a run writes and how it reports: its directory, its log, its length, whether to show progress. */
export interface RunInfo {
  dir: string;
  /** Results (stdout). */
  log: Log;
  /** Diagnostics: step lines, evaluations, warnings (stderr by default). */
  note?: Log;
  steps: number;
  /** A progress bar on a terminal; false (or no terminal): a step line every ~1/12 of the steps. */
  progress: boolean;
  /** How the samples are generated, as said in their headings (e.g. `temperature 0.8, top-k 40`). */
  sampling?: string;
}

export const fmt = (x: number, d = 3) => (Number.isFinite(x) ? x.toFixed(d) : String(x));

/**
 * A run directory's default name: the date and time to the millisecond and a short random suffix, e.g.
 * 2026-12-02-05-06-56-123-9f3a, so that two runs started at once never share a directory.
 */
export function stamp(): string {
  return `${new Date().toISOString().replace(/[:T.]/g, '-').replace(/Z$/, '')}-${randomBytes(2).toString('hex')}`;
}

/**
 * Trains to `steps` in spans of `every` steps (0: one span), calling `save` after each. With a `signal`, it stops
 * between steps once the signal is aborted (Ctrl-C, a collapsed run) and saves nothing more: the caller decides.
 */
export async function trainWithCheckpoints<M extends TrainableModel>(trainer: Trainer<M>, steps: number, every: number,
  save: () => Promise<string>, signal?: AbortSignal): Promise<void> {
  while (trainer.step < steps && !signal?.aborted) {
    const target = every > 0 ? Math.min(steps, (Math.floor(trainer.step / every) + 1) * every) : steps;
    await trainer.train(target, { signal });
    if (signal?.aborted) break;
    await save();
  }
}

/** Why a run was stopped early by the run itself: its gradients vanished or its loss blew up (see watchForCollapse). */
export class CollapsedRun extends LlamatrainError {
  constructor(message: string, readonly status: 'collapsed' | 'diverged' = 'collapsed') {
    super(message);
  }
}

/**
 * Consecutive steps with a gradient norm of exactly 0 after which a run is declared collapsed. A live model never
 * has every gradient exactly 0 on a step with targets (the head's gradient alone is softmax − one-hot); two in a row
 * rule out a fluke and still catch a collapse before it turns into NaN.
 */
export const COLLAPSE_STEPS = 2;

/**
 * A model that guesses every token with the same probability scores ln V; a new model starts there and training
 * only lowers it. A training loss above DIVERGED_FACTOR × ln V for DIVERGED_STEPS steps in a row means the weights
 * blew up (a learning rate far too high without weight decay to pull them back: losses of 1e13 that stay finite,
 * which no NaN check sees).
 */
export const DIVERGED_FACTOR = 3;
export const DIVERGED_STEPS = 3;

/**
 * Watches for a collapsed run: a gradient norm of exactly 0 for COLLAPSE_STEPS steps in a row (steps that had
 * targets) — typically a far too high learning rate has driven the model into a state where every token gets the
 * same probability (the loss sits at ln V) — or a diverged one: a loss above DIVERGED_FACTOR × ln V for
 * DIVERGED_STEPS steps. Nothing can be learnt any more then. It aborts `controller` with a CollapsedRun that names
 * the likely cause (`lrHint`, e.g. `--lr=1000000`).
 */
export function watchForCollapse<M extends TrainableModel>(trainer: Trainer<M>, vocabSize: number, controller: AbortController, lrHint: string): void {
  let zeros = 0, high = 0;
  const lnV = Math.log(vocabSize);
  trainer.on('step', (m: StepMetrics) => {
    if (m.skipped || m.targets === 0 || controller.signal.aborted) return;
    zeros = m.gradNorm === 0 ? zeros + 1 : 0;
    high = m.loss > DIVERGED_FACTOR * lnV ? high + 1 : 0;
    if (high >= DIVERGED_STEPS) {
      controller.abort(new CollapsedRun(`training diverged at step ${m.step}: the loss has been above ${DIVERGED_FACTOR} × ln V = ` +
        `${fmt(DIVERGED_FACTOR * lnV)} (ln V: what guessing among V=${vocabSize} tokens scores) for ${high} steps, now ${m.loss.toPrecision(4)}, ` +
        `so the weights have blown up. The likely cause is a learning rate far too high (${lrHint}); lower it and start a new run`, 'diverged'));
      return;
    }
    if (zeros < COLLAPSE_STEPS) return;
    const stuck = Math.abs(m.loss - lnV) < 1e-3 * lnV;
    controller.abort(new CollapsedRun(`training collapsed at step ${m.step}: the gradient norm has been exactly 0 for ${zeros} steps` +
      (stuck ? ` and the loss is stuck at ${fmt(m.loss)} = ln V (V=${vocabSize}): the model gives every token the same probability` : ` (loss ${fmt(m.loss)})`) +
      `, so nothing can be learnt any more. The likely cause is a learning rate far too high (${lrHint}); lower it and start a new run`));
  });
}

/**
 * The last word on divergence: the final evaluation. A short run can blow up in fewer than DIVERGED_STEPS steps (or
 * between the steps the watch sees); a validation loss above DIVERGED_FACTOR × ln V, or not finite, is a diverged run
 * whatever the training losses said. Returns the CollapsedRun to throw, or null when the loss is sane.
 */
export function divergedFinal(loss: number, vocabSize: number, lrHint: string): CollapsedRun | null {
  const lnV = Math.log(vocabSize);
  if (Number.isFinite(loss) && loss <= DIVERGED_FACTOR * lnV) return null;
  return new CollapsedRun(`training diverged: the final validation loss is ${Number.isFinite(loss) ? loss.toPrecision(4) : String(loss)}, ` +
    `above ${DIVERGED_FACTOR} × ln V = ${fmt(DIVERGED_FACTOR * lnV)} (ln V: what guessing among V=${vocabSize} tokens scores), so the weights ` +
    `have blown up and the model is not exported. The likely cause is a learning rate far too high (${lrHint}); lower it and start a new run`, 'diverged');
}

/** Seconds a run has trained over all its segments (a resume adds to what the checkpoint recorded). */
export class RunClock {
  private readonly t0 = Date.now();
  constructor(private readonly before = 0, readonly segment = 1) {}
  seconds(): number { return this.before + (Date.now() - this.t0) / 1000; }
}

/** What a run reports while it trains: metrics.jsonl, loss.svg, samples.txt and a progress bar or log lines. */
export class RunReport {
  readonly metricsPath: string;
  private readonly trainCurve: [number, number][] = [];
  private readonly valCurve: [number, number][] = [];
  private bar: InstanceType<typeof cliProgress.SingleBar> | null = null;

  constructor(private readonly run: RunInfo, private readonly sampler: () => Promise<string>, private readonly title: string) {
    this.metricsPath = join(run.dir, 'metrics.jsonl');
  }

  /**
   * On resume: keeps the history up to the checkpoint; lines logged after it (by a run that died) are dropped, and
   * so is a line that is not valid JSON (a kill mid-write leaves a truncated last line), with a warning.
   */
  keepHistoryUpTo(step: number): void {
    if (!existsSync(this.metricsPath)) return;
    const kept: Record<string, unknown>[] = [];
    const bad: number[] = [];
    readFileSync(this.metricsPath, 'utf8').split('\n').forEach((l, i) => {
      if (l.trim() === '') return;
      let m: unknown;
      try { m = JSON.parse(l); } catch { bad.push(i + 1); return; }
      if (typeof m !== 'object' || m === null || typeof (m as { step?: unknown }).step !== 'number') { bad.push(i + 1); return; }
      kept.push(m as Record<string, unknown>);
    });
    if (bad.length > 0) {
      (this.run.note ?? note)(`llamatrain: warning: ${this.metricsPath}: dropped ${bad.length === 1 ? 'line' : 'lines'} ${bad.join(', ')}, ` +
        'not valid JSON (what a run killed while writing leaves)');
    }
    const history = kept.filter((m) => m.type !== 'final' && (m.step as number) <= step);
    for (const m of history) {
      if (m.type === 'eval') this.valCurve.push([m.step as number, m.valLoss as number]);
      else if (m.type === 'train') this.trainCurve.push([m.step as number, m.loss as number]);
    }
    writeFileSync(this.metricsPath, history.map((m) => JSON.stringify(m) + '\n').join(''));
  }

  metric(m: Record<string, unknown>): void {
    appendFileSync(this.metricsPath, JSON.stringify(m) + '\n');
  }

  /** Writes loss.svg; `references` are horizontal lines (e.g. what a compressor achieves, in the same units). */
  writePlot(references: { name: string; value: number }[] = []): void {
    const x1 = Math.max(this.run.steps, ...this.trainCurve.map((p) => p[0]));
    const colors = ['#16a34a', '#9333ea', '#ca8a04'];
    writeFileSync(join(this.run.dir, 'loss.svg'), lossCurveSvg([
      { name: 'train loss', color: '#2563eb', points: this.trainCurve },
      { name: 'validation loss', color: '#dc2626', points: this.valCurve, dots: true },
      ...references.map((r, i) => ({ name: r.name, color: colors[i % colors.length]!, points: [[0, r.value], [x1, r.value]] as [number, number][], dashed: true })),
    ], `llamatrain — ${this.title}`));
  }

  /** The sample of the evaluation at this step, if this run made one (then it is of the weights of that step). */
  private readonly evalSamples = new Map<number, string>();

  /** A sample of the model as it is now (the run's sampler). */
  sample(): Promise<string> {
    return this.sampler();
  }

  /** The sample this run's evaluation at `step` made, or null. */
  sampleAt(step: number): string | null {
    return this.evalSamples.get(step) ?? null;
  }

  /** Starts the progress display and records every step and evaluation of the trainer. */
  follow<M extends TrainableModel>(trainer: Trainer<M>): void {
    const { dir } = this.run, o = this.run, say0 = this.run.note ?? note;
    const tty = o.progress && process.stderr.isTTY === true;
    const bar = tty ? new cliProgress.SingleBar({
      format: 'step {value}/{total} |{bar}| loss {loss} | lr {lr} | {tps} tok/s | ETA {eta_formatted}',
      hideCursor: true, etaBuffer: 20,
    }, cliProgress.Presets.shades_classic) : null;
    this.bar = bar;
    // the bar's last values: a restart after a log line shows them again (an empty payload would print `{loss}`)
    const shown = { loss: '-', lr: '-', tps: '-' as string | number };
    const start = () => { bar?.start(o.steps, trainer.step, shown); progressLineOpen = bar !== null; };
    start();
    const logEvery = Math.max(1, Math.round(o.steps / 12));
    const say = (s: string) => { if (bar) { bar.stop(); progressLineOpen = false; } say0(s); start(); };
    trainer.on('step', (m: StepMetrics) => {
      this.metric({ type: 'train', step: m.step, loss: m.loss, lr: m.lr, gradNorm: m.gradNorm, tokens: m.tokens,
        tokensPerSec: Math.round(m.tokensPerSec), elapsedMs: m.elapsedMs, skipped: m.skipped });
      this.trainCurve.push([m.step, m.loss]);
      if (bar) bar.update(m.step, Object.assign(shown, { loss: fmt(m.loss), lr: m.lr.toExponential(2), tps: Math.round(m.tokensPerSec) }));
      else if (m.step % logEvery === 0 || m.step === o.steps) { // no bar (--no-progress, or not a terminal): step lines
        say0(`step ${m.step}/${o.steps} | loss ${fmt(m.loss)} | lr ${m.lr.toExponential(2)} | grad norm ${fmt(m.gradNorm, 2)} | ${Math.round(m.tokensPerSec)} tok/s | ${fmt(m.elapsedMs / 1000, 0)} s`);
      }
    });
    // the sample is generated before training goes on (the Trainer awaits eval handlers)
    trainer.on('eval', async (r) => {
      this.metric({ type: 'eval', step: r.step, valLoss: r.loss, perplexity: r.perplexity, bitsPerByte: r.bitsPerByte, tokens: r.tokens });
      this.valCurve.push([r.step, r.loss]);
      this.writePlot();
      const txt = await this.sample();
      this.evalSamples.set(r.step, txt);
      appendFileSync(join(dir, 'samples.txt'), `--- step ${r.step} (validation loss ${fmt(r.loss)}) ---\n${txt}\n\n`);
      say(`eval @ step ${r.step}: validation loss ${fmt(r.loss)} | perplexity ${fmt(r.perplexity, 1)}` +
        (r.bitsPerByte === null ? '' : ` | bits/byte ${fmt(r.bitsPerByte)}`) + '\n' +
        showSample(`  sample${this.run.sampling ? ` (${this.run.sampling})` : ''}:`, txt, '      '));
    });
  }

  stopProgress(): void {
    this.bar?.stop();
    progressLineOpen = false;
  }
}


/**
 * A fingerprint of the training rows (their token ids and labels, in order): checkpoints record it, so a resume
 * notices data that changed under the same options (an edited file, another tokenizer).
 */
export function rowsHash(rows: readonly PackedRow[]): string {
  const h = createHash('sha256');
  for (const r of rows) {
    h.update(new Uint8Array(r.inputIds.buffer, r.inputIds.byteOffset, r.inputIds.byteLength));
    h.update(new Uint8Array(r.labels.buffer, r.labels.byteOffset, r.labels.byteLength));
  }
  return h.digest('hex');
}

export interface StoppedRun {
  /** The abort reason: a signal's name or a CollapsedRun (collapsed or diverged). */
  reason: unknown;
  command: 'train' | 'sft';
  dir: string;
  step: number;
  steps: number;
  /** The step of the newest checkpoint on disk (the resumed one, or the last periodic save). */
  savedStep: number;
  save: () => Promise<string>;
  report: RunReport;
  writeSummary: (status: 'interrupted' | 'collapsed' | 'diverged') => void;
}

/**
 * Ends a run whose training loop was stopped early; always throws. A signal: a checkpoint of the step reached
 * (unless one is on disk), the loss curve and summary.json, then a RunStopped (exit 130 / 143) that says how to
 * resume. A collapsed run: the loss curve and summary.json (no checkpoint: the model is dead), then the error.
 */
export async function endStoppedRun(s: StoppedRun): Promise<never> {
  if (s.reason instanceof CollapsedRun) {
    s.report.writePlot();
    s.writeSummary(s.reason.status);
    throw s.reason;
  }
  const sig = String(s.reason);
  const code = signalExitCode(sig);
  if (s.step === 0) throw new RunStopped(`stopped by ${sig} before the first step; nothing was saved`, code);
  let saved = '';
  if (s.step > s.savedStep) saved = `a checkpoint at step ${s.step} (${await s.save()}), `;
  s.report.writePlot();
  s.writeSummary('interrupted');
  throw new RunStopped(`stopped by ${sig} at step ${s.step} of ${s.steps}; saved ${saved}${join(s.dir, 'loss.svg')} and ${join(s.dir, 'summary.json')}. ` +
    `Resume with: npx llamatrain ${s.command} --resume=${s.dir}`, code);
}
