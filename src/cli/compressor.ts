// What a general-purpose compressor makes of the validation text when it has seen the training text: the
// reference line for a model's bits per byte (a model that does not beat it has learnt less than brotli's
// context modelling). Measured as bits of compress(train + validation) beyond compress(train), per validation
// byte: gzip -9 (32 KB window; fast) and brotli at quality 11 with a 16 MB window (slow: about a minute of one
// core for the Brown corpus — the xz -9e gives 2.288 there, brotli 2.286). Brotli is compressed once, as a
// stream flushed after the training text: the output up to the flush is compress(train).
//
// The work runs in a child process at the lowest CPU priority (nice 19) started with the run, so that training
// keeps the cores; results are cached by a hash of the two texts in node_modules/.cache/llamatrain/ (npm's
// convention for tool caches; os.tmpdir()/llamatrain-cache when there is no node_modules here), so every later run
// on the same data prints them at once. The cache holds one small JSON file per data set.
//
// One measurement per cache key at a time: the child holds `<cache file>.lock` (proper-lockfile) while it measures;
// a run that finds the lock held starts no child (it reads whatever the holder has cached by its end), and a child
// that loses the race for the lock exits at once. So parallel runs (a sweep, the test suite) leave at most one child
// behind: the one that will write the cache.

import { fork } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { setPriority, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import zlib from 'node:zlib';
import lockfile from 'proper-lockfile';

/** A lock whose holder has not refreshed it for this long is taken over (its child died without releasing it). */
const LOCK_STALE_MS = 30_000;

export interface CompressorBaseline {
  /** gzip -9: bits per validation byte. */
  gzip: number;
  /** brotli quality 11, 16 MB window; null until measured. */
  brotli: number | null;
}

/** The cache directory: ./node_modules/.cache/llamatrain when ./node_modules exists, else the OS's temp dir. */
export function compressorCacheDir(): string {
  return existsSync('node_modules') ? join('node_modules', '.cache', 'llamatrain') : join(tmpdir(), 'llamatrain-cache');
}

/** The texts as the compressors see them: documents joined by newlines. */
function bytesOf(docs: string[]): Buffer {
  return Buffer.from(docs.join('\n'), 'utf8');
}

function cacheFile(dir: string, train: Buffer, validation: Buffer): string {
  const h = createHash('sha256').update(String(train.length)).update(train).update(validation).digest('hex').slice(0, 24);
  return join(dir, `compressor-${h}.json`);
}

/** gzip -9 bits per validation byte given the training text. */
export function gzipBitsPerByte(train: Buffer, validation: Buffer): number {
  const size = (b: Buffer) => zlib.gzipSync(b, { level: 9 }).length;
  return ((size(Buffer.concat([train, Buffer.from('\n'), validation])) - size(train)) * 8) / validation.length;
}

/** brotli (quality 11, 16 MB window) bits per validation byte given the training text: one stream, flushed after train. */
export function brotliBitsPerByte(train: Buffer, validation: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const enc = zlib.createBrotliCompress({ params: {
      [zlib.constants.BROTLI_PARAM_QUALITY]: 11, [zlib.constants.BROTLI_PARAM_LGWIN]: 24,
      [zlib.constants.BROTLI_PARAM_SIZE_HINT]: train.length + validation.length + 1,
    } });
    let total = 0;
    enc.on('data', (c: Buffer) => { total += c.length; });
    enc.on('error', reject);
    enc.write(train);
    enc.flush(zlib.constants.BROTLI_OPERATION_FLUSH, () => {
      const afterTrain = total;
      enc.end(Buffer.concat([Buffer.from('\n'), validation]));
      enc.on('end', () => resolve(((total - afterTrain) * 8) / validation.length));
    });
  });
}

/** The cached baseline, if a run on the same texts measured it. */
function readCache(file: string): CompressorBaseline | null {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as CompressorBaseline;
  } catch {
    return null;
  }
}

function writeCache(file: string, b: CompressorBaseline): void {
  mkdirSync(join(file, '..'), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(b) + '\n');
  renameSync(tmp, file);
}

/**
 * Starts measuring (or reads the cache). `result()` gives what is known when the run ends: the cached values, or
 * whatever the background child has finished by then (gzip takes a second; brotli may still be running — it then
 * finishes in the background and the next run shows it). `priority`: the child's nice value (19: the lowest).
 */
export function startCompressorBaseline(trainDocs: string[], validationDocs: string[], dir = compressorCacheDir(), priority = 19): { result: () => CompressorBaseline | null } {
  const train = bytesOf(trainDocs), validation = bytesOf(validationDocs);
  const file = cacheFile(dir, train, validation);
  const cached = readCache(file);
  if (cached?.brotli != null) return { result: () => cached };
  let latest: CompressorBaseline | null = cached;
  let busy = false;
  try { busy = lockfile.checkSync(file, { realpath: false, stale: LOCK_STALE_MS }); } catch { /* unreadable: let a child try */ }
  if (busy) return { result: () => latest ?? readCache(file) }; // another process measures these texts now
  try {
    const child = fork(fileURLToPath(import.meta.url), ['--compressor-child', file], { stdio: ['ignore', 'ignore', 'ignore', 'ipc'] });
    try { if (child.pid !== undefined && priority !== 0) setPriority(child.pid, priority); } catch { /* not permitted: it runs at normal priority */ }
    child.on('message', (m) => { latest = m as CompressorBaseline; });
    child.on('error', () => {});
    child.send({ train: train.toString('latin1'), validation: validation.toString('latin1') });
    child.unref();
    (child.channel as { unref?: () => void } | undefined)?.unref?.();
  } catch {
    // no child process here: no baseline this time
  }
  return { result: () => latest ?? readCache(file) };
}

// The child: measures, caches and reports gzip first, then brotli.
if (process.argv[2] === '--compressor-child' && process.send) {
  const file = process.argv[3]!;
  process.once('message', async (m: { train: string; validation: string }) => {
    let release: () => Promise<void>;
    try {
      mkdirSync(join(file, '..'), { recursive: true });
      release = await lockfile.lock(file, { realpath: false, stale: LOCK_STALE_MS });
    } catch {
      process.disconnect?.(); // another child measures the same texts (or the cache cannot be written): nothing to do
      return;
    }
    const train = Buffer.from(m.train, 'latin1'), validation = Buffer.from(m.validation, 'latin1');
    const gzip = gzipBitsPerByte(train, validation);
    const partial = { gzip, brotli: null };
    writeCache(file, partial);
    if (process.connected) process.send?.(partial);
    void brotliBitsPerByte(train, validation).then((brotli) => {
      const full = { gzip, brotli };
      writeCache(file, full);
      if (process.connected) process.send?.(full);
      return release();
    }).catch(() => {}).finally(() => { if (process.connected) process.disconnect?.(); });
  });
}
