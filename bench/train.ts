// Training-step benchmark: npm run bench -- --config tiny|s15M|s42M|s110M|cli --threads N [--backend wasm|native|webgpu|auto|ref] [--blas-threads N] [--blas-par-min-flop F] [--attention-host-share S]
//   [--loss unfused|fused|none] [--steps N] [--warmup N] [--warmup-s S] [--profile] [--json] [--quiet-wait S] [--untied]
// Warm-up: at least --warmup steps (2) and --warmup-s seconds (2): V8 spends the first second optimising the JS
// (~60 TurboFan compilations, ~250 ms of a core on tiny), which slowed tiny's first 20 steps by ~25% (RESULTS
// 2026-11-28); the timed steps are the steady state a training run sees.
// --untied: a separate LM head (tieWordEmbeddings false), the model the JavaScript peers' benchmark (bench/peers.sh) measures by default.
// A step = forward + loss + backward + global-norm clipping (1.0) + AdamW + zeroGrad, one read at its end, as the PyTorch reference benchmark that bench/compare.sh runs
// (same configs, same flop count: 6·N_matmul + 12·L·T·C per token). Prints tokens/s, ms per phase, GFLOP/s and
// peak RSS; with --json the last line is one JSON object. --profile adds the time per kernel and each GEMM's
// GFLOP/s. Steps vary; the medians are reported, and the load other processes put on the machine per step.

import { readFileSync, writeFileSync } from 'node:fs';
import {
  AdamW, type Backend, type KernelName, LlamaForCausalLM, RNG, type Tensor, causalLMLoss, clipGradsByNorm, getBackend, gradNormTensor,
  kernel, mean, openScope, registerBackend, tensor,
} from '../src/index.js';
import { copyStats, registerWasmBackend, shutdownWasmBackend, wasmHeapStats } from '../src/backends/wasm/index.js';

interface BenchConfig { dim: number; layers: number; heads: number; kvHeads: number; ffn: number; vocab: number; seq: number; batch: number }
/** The benchmark configs (the same names and shapes as the PyTorch reference's); `cli` is `llamatrain train`'s default model (its BPE vocabulary: 1024). */
const CONFIGS: Record<string, BenchConfig> = {
  tiny: { dim: 64, layers: 2, heads: 4, kvHeads: 4, ffn: 192, vocab: 512, seq: 128, batch: 8 },
  s15M: { dim: 288, layers: 6, heads: 6, kvHeads: 6, ffn: 768, vocab: 32000, seq: 256, batch: 8 },
  s42M: { dim: 512, layers: 8, heads: 8, kvHeads: 8, ffn: 1376, vocab: 32000, seq: 512, batch: 4 },
  // llama2.c's stories110M shape (for GPUs)
  s110M: { dim: 768, layers: 12, heads: 12, kvHeads: 12, ffn: 2048, vocab: 32000, seq: 1024, batch: 4 },
  cli: { dim: 128, layers: 4, heads: 4, kvHeads: 2, ffn: 352, vocab: 1024, seq: 128, batch: 8 },
};

function parseArgs(argv: string[]) {
  const o = { config: 'tiny', threads: 0, backend: 'wasm', loss: 'unfused', steps: 0, warmup: 2, warmupS: 2, json: false, profile: false, quietWait: 10, seed: 0, untied: false, blasThreads: 0, blasParMinFlop: 0, attentionHostShare: -1 };
  for (let i = 0; i < argv.length; i++) {
    const [k, inline] = argv[i]!.replace(/^--/, '').split('=', 2) as [string, string | undefined];
    const key = k.replace(/-(\w)/g, (_, c: string) => c.toUpperCase()) as keyof typeof o;
    if (!(key in o)) throw new Error(`bench: unknown option --${k}; options: ${Object.keys(o).join(', ')}`);
    if (typeof o[key] === 'boolean') { (o[key] as boolean) = inline === undefined ? true : inline !== 'false'; continue; }
    const v = inline ?? argv[++i];
    if (v === undefined) throw new Error(`bench: --${k} needs a value`);
    (o as Record<string, unknown>)[key] = typeof o[key] === 'number' ? Number(v) : v;
  }
  if (!CONFIGS[o.config]) throw new Error(`bench: --config must be one of ${Object.keys(CONFIGS).join(', ')}, got ${o.config}`);
  if (!['unfused', 'fused', 'none'].includes(o.loss)) throw new Error(`bench: --loss must be unfused, fused or none, got ${o.loss}`);
  if (!['wasm', 'native', 'webgpu', 'auto', 'ref'].includes(o.backend)) throw new Error(`bench: --backend must be wasm, native, webgpu, auto or ref, got ${o.backend}`);
  return o;
}

// ---- machine state ----------------------------------------------------------------------------------------

function procStatusKB(key: string): number {
  const m = new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) : -1;
}
function resetHWM(): boolean {
  try { writeFileSync('/proc/self/clear_refs', '5'); return true; } catch { return false; }
}
const TCK = 100; // USER_HZ on Linux
/** [system busy ticks, own cpu ticks] */
function cpuSnapshot(): [number, number] {
  const v = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const busy = v[0]! + v[1]! + v[2]! + v[5]! + v[6]!;
  const u = process.cpuUsage();
  return [busy, ((u.user + u.system) / 1e6) * TCK];
}
/** Cores busy with other processes between two snapshots. */
const otherLoad = (a: [number, number], b: [number, number], wallS: number) => Math.max(0, (b[0] - a[0] - (b[1] - a[1])) / TCK / wallS);
async function waitQuiet(maxS: number, thresh = 0.1): Promise<number> {
  const t0 = performance.now();
  while (performance.now() - t0 < maxS * 1000) {
    const a = cpuSnapshot();
    await new Promise((r) => setTimeout(r, 250));
    if (otherLoad(a, cpuSnapshot(), 0.25) < thresh) break;
  }
  return (performance.now() - t0) / 1000;
}
const median = (xs: number[]) => { const s = [...xs].sort((p, q) => p - q); const n = s.length; return n === 0 ? NaN : n % 2 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2; };

// ---- kernel profile ---------------------------------------------------------------------------------------

interface Prof { ms: number; calls: number; flop: number }
const profile = new Map<string, Prof>();
let profiling = false;

/** Re-registers the backend's kernels wrapped in timers (key: kernel name; matmul also by shape and layout). */
function instrument(be: Backend, names: KernelName[]): void {
  const table: Record<string, unknown> = {};
  for (const name of names) {
    const f = kernel(be, name) as (...a: unknown[]) => unknown;
    table[name] = (...args: unknown[]) => {
      if (!profiling) return f(...args);
      const t0 = performance.now();
      const r = f(...args);
      const dt = performance.now() - t0;
      const add = (key: string, flop: number) => {
        const p = profile.get(key) ?? { ms: 0, calls: 0, flop: 0 };
        p.ms += dt; p.calls++; p.flop += flop;
        profile.set(key, p);
      };
      if (name === 'matmul') {
        const [, aShape, , , transA, transB, outShape] = args as [unknown, number[], unknown, number[], boolean, boolean, number[]];
        const r2 = outShape.length, M = outShape[r2 - 2]!, N = outShape[r2 - 1]!;
        const K = transA ? aShape[aShape.length - 2]! : aShape[aShape.length - 1]!;
        const batch = outShape.slice(0, -2).reduce((p, d) => p * d, 1);
        const flop = 2 * batch * M * N * K;
        add('matmul', flop);
        add(`  matmul ${batch > 1 ? batch + '×' : ''}${M}×${N}×${K}${transA ? ' Aᵀ' : ''}${transB ? ' Bᵀ' : ''}`, flop);
      } else if (name === 'binary' || name === 'unary') {
        add(`${name} ${String(args[0])}`, 0);
      } else {
        add(name, 0);
      }
      return r;
    };
  }
  registerBackend(be, table);
}

// ---- the step ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const c = CONFIGS[o.config]!;
  let be: Backend | null = null;
  let blasLine = '';
  let blasInfo: object | null = null;
  if (o.backend === 'native' || o.backend === 'auto') {
    const native = await import('../src/backends/native/index.js');
    try {
      be = await native.registerNativeBackend({ ...(o.threads > 0 ? { threads: o.threads } : {}), ...(o.blasThreads > 0 ? { blasThreads: o.blasThreads } : {}),
        ...(o.blasParMinFlop > 0 ? { blasParallelMinFlop: o.blasParMinFlop } : {}), ...(o.attentionHostShare >= 0 ? { attentionHostShare: o.attentionHostShare } : {}) });
      o.backend = 'native';
      const info = native.nativeInfo()!;
      blasInfo = info;
      blasLine = `  BLAS: ${native.describeNative(info)}${info.notes.map((n) => `\n  note: ${n}`).join('')}`;
    } catch (e) {
      if (o.backend === 'native' || !(e instanceof native.NativeUnavailableError)) throw e;
      console.error(`bench: auto: ${(e as Error).message}; using wasm`);
      o.backend = 'wasm';
    }
  }
  if (o.backend === 'webgpu') {
    const gpu = await import('../src/backends/webgpu/index.js');
    be = await gpu.registerWebGPUBackend();
    blasLine = `  WebGPU: ${gpu.describeWebGPU(gpu.webgpuInfo()!)}`;
  }
  if (o.backend === 'wasm') be = await registerWasmBackend(o.threads > 0 ? { threads: o.threads } : {});
  else if (o.backend === 'ref') be = getBackend('ref');
  be = be!;
  const onWasm = o.backend === 'wasm' || o.backend === 'native';
  const threads = onWasm ? (await import('../src/backends/wasm/index.js')).wasmThreads() : 1;
  if (o.profile) instrument(be, Object.keys((await import('../src/backends/ref/kernels.js')).refKernels) as KernelName[]);

  const rssImportMB = procStatusKB('VmRSS') / 1024;
  const model = new LlamaForCausalLM({
    vocabSize: c.vocab, hiddenSize: c.dim, intermediateSize: c.ffn, numHiddenLayers: c.layers, numAttentionHeads: c.heads,
    numKeyValueHeads: c.kvHeads, tieWordEmbeddings: !o.untied, maxPositionEmbeddings: c.seq,
  }, { backend: be, seed: o.seed });
  const params = [...model.parameters()];
  const opt = new AdamW(params, { lr: 3e-4, betas: [0.9, 0.95], weightDecay: 0.1 });
  const { batch: B, seq: T } = c;
  const rng = new RNG(o.seed + 1);
  const batches = Array.from({ length: 4 }, () => tensor(Int32Array.from({ length: B * T }, () => Math.floor(rng.uniform() * c.vocab)), [B, T], 'int32', be));
  // flops per token as the PyTorch reference counts them: 6·(matmul params: non-embedding + head) + 12·L·T·C
  const nParams = params.reduce((p, t) => p + t.size, 0);
  const matmulParams = o.untied ? nParams - c.vocab * c.dim : nParams; // tied: (all − embedding) + head = all
  const flopsPerToken = 6 * matmulParams + 12 * c.layers * T * c.dim;
  let fusedAvailable = true;

  let it = 0;
  const step = async (): Promise<{ loss: number; ph: number[] }> => {
    const ids = batches[it++ % batches.length]!;
    const t0 = performance.now();
    const scope = openScope(be); // as the Trainer: the step's tensors are freed at its end
    try {
      let loss: Tensor, t1: number;
      if (o.loss === 'none') {
        const positions = tensor(Int32Array.from({ length: B * T }, (_, i) => i % T), [B, T], 'int32', be);
        const h = model.model.forward(ids, { positions, keyMask: null, documentIds: null, cache: null });
        t1 = performance.now();
        loss = mean(h);
      } else if (o.loss === 'fused' && fusedAvailable) {
        try {
          loss = model.forward(ids, { labels: ids, fusedLoss: true } as Parameters<typeof model.forward>[1])!.loss!;
        } catch (e) {
          fusedAvailable = false;
          console.error(`bench: the fused loss failed (${e instanceof Error ? e.message : String(e)}); measuring the unfused loss`);
          return step();
        }
        t1 = performance.now();
      } else {
        const { logits } = model.forward(ids);
        t1 = performance.now();
        loss = causalLMLoss(logits!, ids);
      }
      const t2 = performance.now();
      loss.backward();
      const t3 = performance.now();
      // as the Trainer: norm and clipping on the device, the update gated by a finite norm, one read at the end
      const norm = gradNormTensor(params)!;
      clipGradsByNorm(params, norm, 1.0);
      opt.step({ gate: norm });
      opt.zeroGrad();
      const lossVal = (await loss.data())[0]!;
      const t4 = performance.now();
      return { loss: lossVal, ph: [t1 - t0, t2 - t1, t3 - t2, t4 - t3] };
    } finally {
      scope.close();
    }
  };

  const tw = performance.now();
  let firstLoss = NaN;
  let warmupSteps = 0;
  while (warmupSteps < o.warmup || performance.now() - tw < o.warmupS * 1000) {
    const r = await step();
    if (warmupSteps++ === 0) firstLoss = r.loss;
  }
  const warmupS = (performance.now() - tw) / 1000;
  const hwmWarmupMB = procStatusKB('VmHWM') / 1024;
  const hwmReset = resetHWM();
  const steps = o.steps > 0 ? o.steps : o.config === 'tiny' || o.config === 'cli' ? 20 : 6;
  const times: number[] = [], phases: number[][] = [], others: number[] = [], losses: number[] = [];
  let waited = 0;
  copyStats.ms = 0; copyStats.inMs = 0; copyStats.bytes = 0; copyStats.gemmMs = 0; copyStats.gemmFlop = 0;
  profiling = o.profile;
  for (let i = 0; i < steps; i++) {
    if (o.quietWait > 0) waited += await waitQuiet(o.quietWait);
    const a = cpuSnapshot();
    const t0 = performance.now();
    const r = await step();
    const dt = performance.now() - t0;
    others.push(otherLoad(a, cpuSnapshot(), dt / 1000));
    times.push(dt); phases.push(r.ph); losses.push(r.loss);
  }
  profiling = false;
  const stepMs = median(times);
  const phaseNames = ['forward', 'loss', 'backward', 'optimizer'];
  const phasesMs = Object.fromEntries(phaseNames.map((n, k) => [n, +median(phases.map((p) => p[k]!)).toFixed(2)]));
  const clean = times.filter((_, i) => others[i]! < 0.1);
  const res = {
    config: o.config, tied: !o.untied, backend: o.backend, threads, loss: o.loss === 'fused' && !fusedAvailable ? 'unfused' : o.loss,
    steps, warmup: warmupSteps, tokensPerStep: B * T,
    tokensPerSec: +((B * T) / (stepMs / 1000)).toFixed(1),
    tokensPerSecBest: +((B * T) / (Math.min(...times) / 1000)).toFixed(1),
    tokensPerSecClean: clean.length ? +((B * T) / (median(clean) / 1000)).toFixed(1) : null,
    stepMs: +stepMs.toFixed(2), stepMsAll: times.map((t) => +t.toFixed(1)), phasesMs,
    gflops: +((flopsPerToken * B * T) / (stepMs / 1000) / 1e9).toFixed(2), flopsPerToken,
    peakRssMB: +(procStatusKB('VmHWM') / 1024).toFixed(1), peakRssProcessMB: +Math.max(hwmWarmupMB, procStatusKB('VmHWM') / 1024).toFixed(1),
    hwmReset, rssImportMB: +rssImportMB.toFixed(1), warmupS: +warmupS.toFixed(2),
    copyMsPerStep: +(copyStats.ms / steps).toFixed(2), copyInMsPerStep: +(copyStats.inMs / steps).toFixed(2), copyMBPerStep: +(copyStats.bytes / steps / 2 ** 20).toFixed(1),
    gemmComputeMsPerStep: +(copyStats.gemmMs / steps).toFixed(2),
    gemmComputeGflops: copyStats.gemmMs > 0 ? +(copyStats.gemmFlop / (copyStats.gemmMs / 1000) / 1e9).toFixed(2) : null,
    otherLoadPerStep: others.map((x) => +x.toFixed(2)), quietWaitedS: +waited.toFixed(1),
    firstLoss, lossValue: losses[losses.length - 1], params: nParams, node: process.version, blas: blasInfo,
    wasmHeapPeakMB: onWasm ? +(wasmHeapStats()!.highWater / 2 ** 20).toFixed(1) : null,
    gpuPeakMB: o.backend === 'webgpu' ? +((await import('../src/backends/webgpu/index.js')).webgpuMemory().peakBytes / 2 ** 20).toFixed(1) : null,
  };
  const lines: string[] = [];
  lines.push(`${o.config} (${c.dim}d ${c.layers}L ${c.heads}h/${c.kvHeads}kv ffn ${c.ffn} V ${c.vocab}${o.untied ? ', untied head' : ''}, B ${B} × T ${T}) on ${o.backend}, ${threads} thread(s), loss ${res.loss}`);
  lines.push(`  ${res.tokensPerSec} tokens/s (median of ${steps}; best ${res.tokensPerSecBest}), step ${res.stepMs} ms, ${res.gflops} GFLOP/s, peak RSS ${res.peakRssMB} MB`);
  lines.push(`  phases (ms): ${phaseNames.map((n) => `${n} ${phasesMs[n]}`).join(', ')}${o.backend === 'webgpu' ? ' (webgpu: the phases only record; the device runs until the read at the end of the optimizer phase)' : ''}`);
  if (res.gpuPeakMB !== null) lines.push(`  GPU buffers: peak ${res.gpuPeakMB} MB`);
  if (blasLine) lines.push(blasLine);
  if (onWasm) {
    lines.push(`  wasm operand copies: ${res.copyMsPerStep} ms/step (in ${res.copyInMsPerStep}; ${res.copyMBPerStep} MB; copying out into fresh arrays pays the page faults)`);
    lines.push(`  wasm heap: high water ${res.wasmHeapPeakMB} MB (the memory its blocks have touched; RSS before the model: ${res.rssImportMB} MB)`);
    lines.push(`  GEMM compute alone (no copies): ${res.gemmComputeMsPerStep} ms/step, ${res.gemmComputeGflops} GFLOP/s on ${threads} thread(s) ` +
      (o.backend === 'wasm' ? '(micro-kernel peak ≈ 42 GFLOP/s per thread)' : '(BLAS)'));
  }
  lines.push(`  other load (cores) per step: ${res.otherLoadPerStep.join(' ')}`);
  if (o.profile) {
    const total = [...profile.entries()].filter(([k]) => !k.startsWith(' ')).reduce((p, [, v]) => p + v.ms, 0);
    lines.push(`  kernel profile (ms per step; ${(total / steps).toFixed(1)} ms in kernels of ${stepMs.toFixed(1)}):`);
    const rows = [...profile.entries()].sort((p, q) => {
      // top-level kernels by time, each GEMM shape under matmul
      const top = (k: string) => (k.startsWith(' ') ? profile.get('matmul')!.ms : profile.get(k)!.ms);
      return top(q[0]) - top(p[0]) || (p[0].startsWith(' ') ? 1 : 0) - (q[0].startsWith(' ') ? 1 : 0) || q[1].ms - p[1].ms;
    });
    for (const [k, v] of rows) {
      const gf = v.flop > 0 ? `  ${(v.flop / (v.ms / 1000) / 1e9).toFixed(1)} GFLOP/s` : '';
      lines.push(`    ${k.padEnd(34)} ${(v.ms / steps).toFixed(2).padStart(9)} ms  ${String(v.calls / steps).padStart(5)} calls${gf}`);
    }
    (res as Record<string, unknown>).profile = Object.fromEntries(rows.map(([k, v]) => [k.trim(), { msPerStep: +(v.ms / steps).toFixed(3), callsPerStep: v.calls / steps, gflops: v.flop ? +(v.flop / (v.ms / 1000) / 1e9).toFixed(2) : undefined }]));
  }
  if (o.loss === 'fused' && !fusedAvailable) lines.push('  note: fusedLoss is not available in this build; measured the unfused loss');
  console.log(lines.join('\n'));
  if (o.json) console.log(JSON.stringify(res));
  if (onWasm) await shutdownWasmBackend();
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
