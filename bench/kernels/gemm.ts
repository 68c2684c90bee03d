// GEMM kernel benchmark (kept as a regression check: small loop changes moved results by 20–40% in the survey):
// the wasm `gemm` export alone, operands already in wasm memory (no copies), in the three training layouts at
// the s15M and CLI shapes, 1 and N threads; every result checked against a float64 product on a sample of entries.
//   npm run build && node dist/bench/kernels/gemm.js [--threads N] [--reps R]

import { WasmRuntime, defaultThreads } from '../../src/backends/wasm/runtime.js';

const argv = process.argv.slice(2);
const opt = (k: string, d: number) => { const i = argv.indexOf(`--${k}`); return i >= 0 ? Number(argv[i + 1]) : d; };
const maxThreads = opt('threads', await defaultThreads());
const reps = opt('reps', 5);

// [M, N, K, transA, transB, what]
const SHAPES: [number, number, number, boolean, boolean, string][] = [
  [2048, 768, 288, false, true, 's15M x·W_upᵀ'],
  [2048, 288, 768, false, false, 's15M dy·W_down'],
  [768, 288, 2048, true, false, 's15M dW = dyᵀ·x'],
  [2048, 4096, 288, false, true, 's15M head block x·Wᵀ'],
  [512, 32000, 288, false, true, 's15M fused-loss chunk z = h·Wᵀ'],
  [32000, 288, 512, true, false, 's15M fused-loss dW += dzᵀ·h'],
  [512, 288, 32000, false, false, 's15M fused-loss dh = dz·W'],
  [1024, 352, 128, false, true, 'cli x·W_upᵀ'],
  [1024, 64, 64, false, true, 'tiny x·W_qᵀ'],
];

const rt = await WasmRuntime.create(1);
for (const threads of [...new Set([1, maxThreads])]) {
  await rt.setThreads(threads);
  console.log(`--- ${threads} thread(s)`);
  for (const [M, N, K, tA, tB, what] of SHAPES) {
    const pa = rt.temp(M * K * 4), pb = rt.temp(K * N * 4), pc = rt.temp(M * N * 4);
    const f = rt.blocks.f32;
    for (let i = 0; i < M * K; i++) f[(pa >> 2) + i] = Math.sin(i * 0.37);
    for (let i = 0; i < K * N; i++) f[(pb >> 2) + i] = Math.cos(i * 0.11);
    const args = { transA: tA ? 1 : 0, transB: tB ? 1 : 0, M, N, K, a: pa, lda: tA ? M : K, b: pb, ldb: tB ? K : N, c: pc, ldc: N,
      scratch: rt.gemmScratch, acc: 0, bHalf: 0 };
    rt.run('gemm', threads, args); // warm-up (packing buffers, caches)
    const t0 = performance.now();
    for (let r = 0; r < reps; r++) rt.run('gemm', threads, args);
    const ms = (performance.now() - t0) / reps;
    // check 64 entries against float64
    const A = (i: number, k: number) => f[(pa >> 2) + (tA ? k * M + i : i * K + k)]!;
    const B = (k: number, j: number) => f[(pb >> 2) + (tB ? j * K + k : k * N + j)]!;
    let err = 0, scale = 0;
    for (let s = 0; s < 64; s++) {
      const i = (s * 7919) % M, j = (s * 104729) % N;
      let ref = 0;
      for (let k = 0; k < K; k++) ref += A(i, k) * B(k, j);
      err = Math.max(err, Math.abs(f[(pc >> 2) + i * N + j]! - ref));
      scale = Math.max(scale, Math.abs(ref));
    }
    const gflops = (2 * M * N * K) / (ms / 1000) / 1e9;
    console.log(`${what.padEnd(32)} ${`${M}×${N}×${K}${tA ? ' Aᵀ' : ''}${tB ? ' Bᵀ' : ''}`.padEnd(22)} ${ms.toFixed(2).padStart(8)} ms ` +
      `${gflops.toFixed(1).padStart(6)} GFLOP/s (${(gflops / threads).toFixed(1)}/thread)  max rel err ${(err / scale).toExponential(1)}`);
    if (!(err / scale < 1e-4)) { console.error('gemm: wrong result'); process.exitCode = 1; }
    rt.endCall(); // frees the three blocks
  }
}
await rt.close();
