// Learning-rate schedules as plain functions of the optimizer step (not the epoch): step → multiplier of each
// group's base lr. They compose (sequence, product), and LRScheduler applies one to an optimizer, LambdaLR-style:
// optimizer step k (0-based) runs with lr = baseLr · f(k).

import type { Optimizer } from './optimizer.js';

export type Schedule = (step: number) => number;

function check(cond: boolean, msg: string): void {
  if (!cond) throw new RangeError(msg);
}

/** Always 1. */
export const constantSchedule = (): Schedule => () => 1;

/** PyTorch StepLR: gamma^floor(step / stepSize). */
export function stepSchedule(o: { stepSize: number; gamma?: number }): Schedule {
  check(Number.isInteger(o.stepSize) && o.stepSize > 0, `stepSchedule: stepSize must be a positive integer, got ${o.stepSize}`);
  const gamma = o.gamma ?? 0.1;
  return (step) => gamma ** Math.floor(step / o.stepSize);
}

/** Linear ramp from 0 (at step 0) to 1 at warmupSteps, then 1. */
export function linearWarmup(warmupSteps: number): Schedule {
  return (step) => (step < warmupSteps ? step / Math.max(1, warmupSteps) : 1);
}

export interface WarmupDecayOptions {
  warmupSteps: number;
  /** The step at which the decay reaches its floor. */
  totalSteps: number;
  /** Floor as a fraction of the base lr. Default 0. */
  minLrRatio?: number;
}

function warmupThen(o: WarmupDecayOptions, name: string, decay: (step: number) => number): Schedule {
  const floor = o.minLrRatio ?? 0;
  check(o.warmupSteps >= 0 && o.totalSteps >= o.warmupSteps, `${name}: need 0 ≤ warmupSteps ≤ totalSteps, got ${o.warmupSteps} and ${o.totalSteps}`);
  check(floor >= 0 && floor <= 1, `${name}: minLrRatio must be in [0, 1], got ${floor}`);
  // Evaluated in HF's order of operations, so the lrs equal transformers' to the last bit.
  return (step) => (step < o.warmupSteps ? step / Math.max(1, o.warmupSteps)
    : floor === 0 ? decay(step) : decay(step) * (1 - floor) + floor);
}

/** Fraction of the decay phase done at `step`, clamped to 1 (after totalSteps the lr stays at the floor). */
const progressOf = (o: WarmupDecayOptions, step: number) =>
  Math.min(1, (step - o.warmupSteps) / Math.max(1, o.totalSteps - o.warmupSteps));

/**
 * Linear warmup from 0, then half-cosine decay to minLrRatio (HF get_cosine_with_min_lr_schedule_with_warmup;
 * unlike HF, the lr stays at the floor after totalSteps instead of rising again).
 */
export const warmupCosine = (o: WarmupDecayOptions): Schedule =>
  warmupThen(o, 'warmupCosine', (step) => Math.max(0, 0.5 * (1 + Math.cos(Math.PI * progressOf(o, step)))));

/** Linear warmup, then linear decay to minLrRatio at totalSteps (HF get_linear_schedule_with_warmup when the floor is 0). */
export const warmupLinear = (o: WarmupDecayOptions): Schedule =>
  warmupThen(o, 'warmupLinear', (step) => Math.max(0, (o.totalSteps - step) / Math.max(1, o.totalSteps - o.warmupSteps)));

export interface WSDOptions {
  warmupSteps: number;
  stableSteps: number;
  decaySteps: number;
  minLrRatio?: number;
  decayType?: 'cosine' | 'linear';
}

/**
 * Warmup-stable-decay (HF get_wsd_schedule): linear ramp from minLrRatio to 1, hold at 1, decay (cosine or linear)
 * to minLrRatio, then hold the floor.
 */
export function wsd(o: WSDOptions): Schedule {
  const r = o.minLrRatio ?? 0;
  const type = o.decayType ?? 'cosine';
  check(o.warmupSteps >= 0 && o.stableSteps >= 0 && o.decaySteps >= 0, 'wsd: step counts must be ≥ 0');
  check(r >= 0 && r <= 1, `wsd: minLrRatio must be in [0, 1], got ${r}`);
  check(type === 'cosine' || type === 'linear', `wsd: decayType must be 'cosine' or 'linear', got '${type}'`);
  const { warmupSteps: W, stableSteps: S, decaySteps: D } = o;
  return (step) => {
    if (step < W) return Math.max(0, (step / Math.max(1, W)) * (1 - r) + r);
    if (step < W + S) return 1;
    if (step < W + S + D) {
      const p = (step - W - S) / Math.max(1, D);
      const value = type === 'cosine' ? 0.5 * (1 + Math.cos(Math.PI * p)) : 1 - p;
      return Math.max(0, value * (1 - r) + r);
    }
    return r;
  };
}

/** Runs `schedules[i]` from milestone i (steps restart at 0 inside each piece), like torch SequentialLR. */
export function sequence(schedules: Schedule[], milestones: number[]): Schedule {
  check(milestones.length === schedules.length - 1, `sequence: ${schedules.length} schedules need ${schedules.length - 1} milestones, got ${milestones.length}`);
  return (step) => {
    let i = 0;
    while (i < milestones.length && step >= milestones[i]!) i++;
    return schedules[i]!(step - (i === 0 ? 0 : milestones[i - 1]!));
  };
}

/** Pointwise product of schedules (e.g. a warmup times a step decay). */
export const product = (...schedules: Schedule[]): Schedule => (step) => schedules.reduce((f, s) => f * s(step), 1);

export interface SchedulerState { step: number; baseLrs: number[] }

/** Sets every group's lr = baseLr · schedule(step); call step() after each optimizer.step(). */
export class LRScheduler {
  private stepCount = 0;
  private baseLrs: number[];

  constructor(readonly optimizer: Optimizer, readonly schedule: Schedule) {
    this.baseLrs = optimizer.paramGroups.map((g) => g.lr);
    this.apply();
  }

  /** The optimizer step the current lr is for. */
  get lastStep(): number {
    return this.stepCount;
  }

  step(): void {
    this.stepCount++;
    this.apply();
  }

  currentLrs(): number[] {
    return this.optimizer.paramGroups.map((g) => g.lr);
  }

  private apply(): void {
    const f = this.schedule(this.stepCount);
    if (!Number.isFinite(f) || f < 0) throw new RangeError(`LRScheduler: the schedule gave ${f} at step ${this.stepCount}; it must be a finite number ≥ 0`);
    this.optimizer.paramGroups.forEach((g, i) => { g.lr = this.baseLrs[i]! * f; });
  }

  stateDict(): SchedulerState {
    return { step: this.stepCount, baseLrs: [...this.baseLrs] };
  }

  loadStateDict(s: SchedulerState): void {
    if (s.baseLrs.length !== this.baseLrs.length) throw new Error(`scheduler state has ${s.baseLrs.length} groups, the optimizer has ${this.baseLrs.length}`);
    this.stepCount = s.step;
    this.baseLrs = [...s.baseLrs];
    this.apply();
  }
}
