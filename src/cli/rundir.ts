// The run directory of `train` and `sft`, made safe to write into: created level by level with messages that name
// --out, locked for the whole run (proper-lockfile, plus a check of the owner's process id so that the lock of a
// killed run is taken over at once on the same machine), never shared by two runs (a directory holding another run
// is refused unless it is a --resume), and removed again when a run fails before it trained a step. Also: reading a
// run's saved options with clear errors, comparing them with a resume's, and turning Ctrl-C / SIGTERM into a stop
// request. Node only.

import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import lockfile from 'proper-lockfile';
import { describeFsError } from '../data/node-fs-errors.js';
import { UsageError, flag } from './options.js';

/** Files and folders that say a directory holds a run (of train or sft). */
const RUN_ENTRIES = ['train_config.json', 'sft_config.json', 'metrics.jsonl', 'checkpoints', 'model', 'adapter', 'summary.json', 'samples.txt', 'loss.svg'];
const LOCK = '.lock';
/**
 * Who holds the lock, beside the lock directory: a file written inside it would change the directory's mtime, which
 * proper-lockfile takes for another process's refresh (it then reports the lock lost at its first refresh, 10 s in).
 */
const LOCK_OWNER = '.lock-owner.json';
/** A lock not refreshed for this long is stale even when its owner cannot be checked (another machine). */
const STALE_MS = 120_000;

/**
 * Creates `path` and its missing parents one level at a time; errors name the flag and the level that failed.
 * Returns the directories it created, outermost first.
 */
export function makeDirectory(path: string, what: string): string[] {
  const missing: string[] = [];
  let p = resolve(path);
  for (;;) {
    let st;
    try { st = statSync(p); } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new UsageError(`${what}: ${describeFsError(p, e, 'creating the run directory').message}`);
      missing.push(p);
      const up = dirname(p);
      if (up === p) break;
      p = up;
      continue;
    }
    if (!st.isDirectory()) {
      throw new UsageError(`${what}: ${p} is a file, not a directory; choose another location`);
    }
    break;
  }
  // (node's recursive mkdir spins forever under /proc; one level at a time it fails with a message)
  for (const dir of missing.reverse()) {
    try { mkdirSync(dir); } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EEXIST' && statSync(dir).isDirectory()) continue;
      const why = code === 'ENOENT' ? `${dir}: cannot be created here (while creating the run directory); choose a location on a writable disk`
        : describeFsError(dir, e, 'creating the run directory').message;
      throw new UsageError(`${what}: ${why}`);
    }
  }
  return missing;
}

interface LockOwner { pid: number; host: string; command: string; started: string }

function readOwner(dir: string): LockOwner | null {
  try { return JSON.parse(readFileSync(join(dir, LOCK_OWNER), 'utf8')) as LockOwner; } catch { return null; }
}

function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; }
}

/** Takes the run directory's lock (`dir/.lock`); throws a UsageError naming the process that holds it. */
export async function lockRunDirectory(dir: string, command: string, opts: { onCompromised?: (e: Error) => void; updateMs?: number } = {}): Promise<() => Promise<void>> {
  const lockDir = join(dir, LOCK);
  const options: lockfile.LockOptions = {
    lockfilePath: lockDir, realpath: false,
    // proper-lockfile refreshes the lock's mtime every 10 s; its own staleness rule is switched off (a limit of
    // ~24 days) because a run may block the event loop for minutes (training a tokenizer) and would lose its lock.
    // Staleness is decided below instead: a dead owner on this machine at once, any other after STALE_MS.
    stale: 2 ** 31 - 1, update: opts.updateMs ?? 10_000,
    onCompromised: opts.onCompromised ?? ((e) => process.stderr.write(`llamatrain: warning: the lock on ${dir} was lost (${e.message}); another process may write into it\n`)),
  };
  for (let attempt = 0; ; attempt++) {
    try {
      const release = await lockfile.lock(dir, options);
      const owner: LockOwner = { pid: process.pid, host: hostname(), command, started: new Date().toISOString() };
      writeFileSync(join(dir, LOCK_OWNER), JSON.stringify(owner) + '\n');
      return async () => {
        rmSync(join(dir, LOCK_OWNER), { force: true });
        await release().catch(() => {});
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ELOCKED') throw new UsageError(`--out: ${describeFsError(lockDir, e, 'locking the run directory').message}`);
      const owner = readOwner(dir);
      const deadHere = owner !== null && owner.host === hostname() && owner.pid !== process.pid && !alive(owner.pid);
      let age = 0;
      try { age = Date.now() - statSync(lockDir).mtimeMs; } catch { /* gone meanwhile: try again */ }
      if (attempt === 0 && (deadHere || age > STALE_MS)) {
        rmSync(lockDir, { recursive: true, force: true }); // its process is gone (killed), or it stopped refreshing the lock
        rmSync(join(dir, LOCK_OWNER), { force: true });
        continue;
      }
      throw new UsageError(`${dir} is in use by another run` +
        (owner ? ` (llamatrain ${owner.command}, pid ${owner.pid}${owner.host !== hostname() ? ` on ${owner.host}` : ''}, since ${owner.started})` : '') +
        `: two runs cannot write into one directory. Wait for it to end or stop it, or choose another --out (if no such process runs any more, remove ${lockDir})`);
    }
  }
}

export interface OpenRunOptions {
  command: 'train' | 'sft';
  /** --out ('' = a new directory under runs/). */
  out: string;
  /** --resume ('' = a new run). */
  resume: string;
  /** The default directory's name when --out is empty. */
  defaultName: string;
}

/** A locked run directory. `close()` releases the lock; `discard()` also removes what a run that trained nothing wrote. */
export class RunDirectory {
  private constructor(readonly dir: string, readonly resuming: boolean, private readonly created: string[], private readonly release: () => Promise<void>) {}

  static async open({ command, out, resume, defaultName }: OpenRunOptions): Promise<RunDirectory> {
    if (resume) {
      if (!existsSync(resume) || !statSync(resume).isDirectory()) throw new UsageError(`--resume ${resume}: no such run directory`);
      return new RunDirectory(resume, true, [], await lockRunDirectory(resume, command));
    }
    const dir = out || join('runs', defaultName);
    const what = out ? `--out ${out}` : `the run directory ${dir}`;
    const created = makeDirectory(dir, what);
    const release = await lockRunDirectory(dir, command);
    const entries = readdirSync(dir).filter((n) => n !== LOCK && n !== LOCK_OWNER);
    const runFiles = entries.filter((n) => RUN_ENTRIES.includes(n));
    if (entries.length > 0) {
      await release();
      throw new UsageError(runFiles.length > 0
        ? `--out ${dir} already holds a run (${runFiles.slice(0, 4).join(', ')}); continue it with --resume=${dir}, or give a new directory to --out (without --out: runs/<date-time>)`
        : `--out ${dir} is not empty (${entries.slice(0, 4).join(', ')}${entries.length > 4 ? ', …' : ''}); a run needs a new or empty directory: give another --out`);
    }
    return new RunDirectory(dir, false, created, release);
  }

  /** Releases the lock. */
  async close(): Promise<void> {
    await this.release();
  }

  /**
   * After a failure: a new run that logged no training step leaves nothing behind (the directory goes if this run
   * made it, else it is emptied again); a resumed run, or one that trained, is kept as it is. Releases the lock.
   */
  async discard(): Promise<void> {
    const keep = this.resuming || existsSync(join(this.dir, 'metrics.jsonl')) || existsSync(join(this.dir, 'checkpoints'));
    await this.release();
    if (keep) return;
    for (const n of readdirSync(this.dir)) rmSync(join(this.dir, n), { recursive: true, force: true });
    // the directories this run made (runs/ too, if it made it), innermost first, as long as they are empty
    for (const d of [...this.created].reverse()) { try { rmdirSync(d); } catch { break; } }
  }

  /**
   * A whole run in its directory: opens (and locks) it, turns Ctrl-C / SIGTERM into `stop.abort`, runs `body`, then
   * closes it — or, when `body` throws, discards what a new run that trained nothing left behind.
   */
  static async run<T>(open: OpenRunOptions, log: (s: string) => void, body: (rd: RunDirectory, stop: AbortController) => Promise<T>): Promise<T> {
    const rd = await RunDirectory.open(open);
    const stop = new AbortController();
    const signals = stopOnSignals(stop, log);
    try {
      const result = await body(rd, stop);
      await rd.close();
      return result;
    } catch (e) {
      await rd.discard();
      throw e;
    } finally {
      signals.dispose();
    }
  }
}

/** A run's saved options (train_config.json / sft_config.json), without the per-invocation ones. */
export function readRunConfig(runDir: string, file: string, command: string): Record<string, unknown> {
  const path = join(runDir, file);
  if (!existsSync(path)) throw new UsageError(`--resume ${runDir}: no ${file} there (is it a llamatrain ${command} run directory?)`);
  let values: unknown;
  try { values = JSON.parse(readFileSync(path, 'utf8')); } catch (e) {
    throw new UsageError(`--resume ${runDir}: ${path} is not valid JSON (${(e as Error).message}); it holds the run's options: ` +
      'restore it (e.g. from a copy), or start a new run');
  }
  if (typeof values !== 'object' || values === null || Array.isArray(values)) throw new UsageError(`--resume ${runDir}: ${path} is not a JSON object of options; restore it, or start a new run`);
  const { resume: _r, out: _o, force: _f, ...saved } = values as Record<string, unknown>;
  return saved;
}

/** Writes the run's options (the truth of the segment that is starting). */
export function writeRunConfig(runDir: string, file: string, o: Record<string, unknown>): void {
  const { force: _f, ...rest } = o;
  writeFileSync(join(runDir, file), JSON.stringify(rest, null, 2) + '\n');
}

/** The options of a resume that differ from the run's, as `--seq-len 64 (was 32)`. */
export interface ResumeChanges { fixed: string[]; forceable: string[]; changed: Record<string, [unknown, unknown]> }

/**
 * Compares a resume's options with the run's saved ones. `fixed` options can never change (the checkpoint's model,
 * tokenizer and base model are what they are); `forceable` ones (data, batch geometry) change only with --force.
 */
export function compareForResume(saved: Record<string, unknown>, now: Record<string, unknown>, fixed: readonly string[], forceable: readonly string[]): ResumeChanges {
  const out: ResumeChanges = { fixed: [], forceable: [], changed: {} };
  const show = (v: unknown) => (typeof v === 'string' ? (v === '' ? "''" : v) : JSON.stringify(v));
  for (const [keys, list] of [[fixed, out.fixed], [forceable, out.forceable]] as const) {
    for (const k of keys) {
      if (!(k in saved) || saved[k] === now[k]) continue;
      list.push(`${flag(k)} ${show(now[k])} (was ${show(saved[k])})`);
      out.changed[k] = [saved[k], now[k]];
    }
  }
  return out;
}

/** Refuses a resume whose options changed (see compareForResume); with --force only fixed options are refused. */
export function checkResumeChanges(runDir: string, file: string, c: ResumeChanges, force: boolean): void {
  if (c.fixed.length > 0) {
    throw new UsageError(`--resume ${runDir}: ${c.fixed.join(', ')}: cannot change when a run is resumed (the checkpoint's model and tokenizer ` +
      `are those of ${file}); drop ${c.fixed.length > 1 ? 'these options' : 'this option'}, or start a new run with --out`);
  }
  if (c.forceable.length > 0 && !force) {
    throw new UsageError(`--resume ${runDir}: these options differ from the run's (${file}): ${c.forceable.join(', ')}. Resuming with other data ` +
      'or another batch geometry does not continue the same run: drop them to continue it, pass --force to go on with them anyway ' +
      '(the data loader then starts a new pass over the data), or start a new run with --out');
  }
}

/** --steps on resume: below the steps done is an error; equal to them finishes a run that stopped before its export. */
export function checkResumeSteps(dir: string, command: string, steps: number, done: number): void {
  if (steps < done) {
    throw new UsageError(`--steps=${steps} is below the ${done} steps this run has done (${dir}); to train further give a larger --steps ` +
      `(e.g. --steps=${done * 2}), or start a new run with --out`);
  }
  if (steps === done && existsSync(join(dir, 'summary.json'))) {
    let status = '';
    try { status = String((JSON.parse(readFileSync(join(dir, 'summary.json'), 'utf8')) as { status?: unknown }).status ?? 'finished'); } catch { /* a damaged summary: finish again */ }
    if (status === 'finished') {
      throw new UsageError(`${dir}: this ${command} run is complete (${done} steps); to train further give a larger --steps (e.g. --steps=${done * 2})`);
    }
  }
}

/** A resumed run must have saved a checkpoint: says so (instead of "not a checkpoint") when it never did. */
export function checkHasCheckpoint(dir: string, command: string): void {
  const root = join(dir, 'checkpoints');
  if (!existsSync(root) || readdirSync(root).every((n) => n.startsWith('.'))) {
    throw new UsageError(`--resume ${dir}: the run has no checkpoint to resume from (it stopped before its first save; --checkpoint-every sets how often it saves); ` +
      `start it again with llamatrain ${command} --out=<a new directory>`);
  }
}

/** The exit status of a run stopped by a signal: 128 + its number (SIGINT 130, SIGTERM 143). */
export const signalExitCode = (sig: string): number => (sig === 'SIGTERM' ? 143 : sig === 'SIGHUP' ? 129 : 130);

/** An error that ends the command with a given exit status (main prints its message). */
export class RunStopped extends Error {
  constructor(message: string, readonly exitCode: number) { super(message); this.name = 'RunStopped'; }
}

/**
 * Ctrl-C / SIGTERM while a run trains: the first one aborts `controller` with the signal's name (training stops
 * after the step under way, then the run saves and exits); a second one exits at once. `dispose()` restores the
 * default behaviour.
 */
export function stopOnSignals(controller: AbortController, say: (s: string) => void): { dispose(): void } {
  const handler = (sig: NodeJS.Signals) => {
    if (controller.signal.aborted) {
      process.stderr.write(`\nllamatrain: ${sig} again: exiting at once (nothing more is saved)\n`);
      process.exit(signalExitCode(sig));
    }
    say(`llamatrain: ${sig}: stopping after the current step to save a checkpoint (press Ctrl-C again to quit at once)`);
    controller.abort(sig);
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return { dispose: () => { process.off('SIGINT', handler); process.off('SIGTERM', handler); } };
}
