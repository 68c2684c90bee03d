// What every training command shares: the run report (metrics.jsonl, loss.svg, samples.txt, progress) and training
// in spans between checkpoints. Node only.

import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import cliProgress from 'cli-progress';
import type { StepMetrics, TrainableModel, Trainer } from '../train/index.js';
import { lossCurveSvg } from './plot.js';

export type Log = (s: string) => void;

/** Where a run writes and how it reports: its directory, its log, its length, whether to show progress. */
export interface RunInfo { dir: string; log: Log; steps: number; progress: boolean }

export const fmt = (x: number, d = 3) => (Number.isFinite(x) ? x.toFixed(d) : String(x));

/** A run directory's default name: the date and time, e.g. 2026-12-02-05-06-56. */
export function stamp(): string {
  return new Date().toISOString().replace(/[:T]/g, '-').replace(/\..*/, '');
}

/** Trains to `steps` in spans of `every` steps (0: one span), saving a checkpoint after each. */
export async function trainWithCheckpoints<M extends TrainableModel>(trainer: Trainer<M>, steps: number, every: number, dir: string): Promise<void> {
  while (trainer.step < steps) {
    const target = every > 0 ? Math.min(steps, (Math.floor(trainer.step / every) + 1) * every) : steps;
    await trainer.train(target);
    await trainer.saveCheckpoint(join(dir, 'checkpoints'));
  }
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

  /** On resume: keeps the history up to the checkpoint; lines logged after it (by a run that died) are dropped. */
  keepHistoryUpTo(step: number): void {
    if (!existsSync(this.metricsPath)) return;
    const kept = readFileSync(this.metricsPath, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l))
      .filter((m) => m.type !== 'final' && m.step <= step);
    for (const m of kept) (m.type === 'eval' ? this.valCurve : this.trainCurve).push([m.step, m.type === 'eval' ? m.valLoss : m.loss]);
    writeFileSync(this.metricsPath, kept.map((m) => JSON.stringify(m) + '\n').join(''));
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

  /** A sample of the model as it is now (the run's sampler). */
  sample(): Promise<string> {
    return this.sampler();
  }

  /** Starts the progress display and records every step and evaluation of the trainer. */
  follow<M extends TrainableModel>(trainer: Trainer<M>): void {
    const { dir, log } = this.run, o = this.run;
    const tty = o.progress && process.stderr.isTTY === true;
    const bar = tty ? new cliProgress.SingleBar({
      format: 'step {value}/{total} |{bar}| loss {loss} | lr {lr} | {tps} tok/s | ETA {eta_formatted}',
      hideCursor: true, etaBuffer: 20,
    }, cliProgress.Presets.shades_classic) : null;
    this.bar = bar;
    bar?.start(o.steps, trainer.step, { loss: '-', lr: '-', tps: '-' });
    const logEvery = Math.max(1, Math.round(o.steps / 12));
    const say = (s: string) => { if (bar) bar.stop(); log(s); if (bar) bar.start(o.steps, trainer.step, {}); };
    trainer.on('step', (m: StepMetrics) => {
      this.metric({ type: 'train', step: m.step, loss: m.loss, lr: m.lr, gradNorm: m.gradNorm, tokens: m.tokens,
        tokensPerSec: Math.round(m.tokensPerSec), elapsedMs: m.elapsedMs, skipped: m.skipped });
      this.trainCurve.push([m.step, m.loss]);
      if (bar) bar.update(m.step, { loss: fmt(m.loss), lr: m.lr.toExponential(2), tps: Math.round(m.tokensPerSec) });
      else if (o.progress && (m.step % logEvery === 0 || m.step === o.steps)) {
        log(`step ${m.step}/${o.steps} | loss ${fmt(m.loss)} | lr ${m.lr.toExponential(2)} | grad norm ${fmt(m.gradNorm, 2)} | ${Math.round(m.tokensPerSec)} tok/s | ${fmt(m.elapsedMs / 1000, 0)} s`);
      }
    });
    // the sample is generated before training goes on (the Trainer awaits eval handlers)
    trainer.on('eval', async (r) => {
      this.metric({ type: 'eval', step: r.step, valLoss: r.loss, perplexity: r.perplexity, bitsPerByte: r.bitsPerByte, tokens: r.tokens });
      this.valCurve.push([r.step, r.loss]);
      this.writePlot();
      const txt = await this.sample();
      appendFileSync(join(dir, 'samples.txt'), `--- step ${r.step} (validation loss ${fmt(r.loss)}) ---\n${txt}\n\n`);
      say(`eval @ step ${r.step}: validation loss ${fmt(r.loss)} | perplexity ${fmt(r.perplexity, 1)}` +
        (r.bitsPerByte === null ? '' : ` | bits/byte ${fmt(r.bitsPerByte)}`) + `\n  sample: ${JSON.stringify(txt)}`);
    });
  }

  stopProgress(): void {
    this.bar?.stop();
  }
}

