// The native backend's library handling: discovery, the LLAMATRAIN_BLAS override, the fallback to wasm with one
// line, and the self-check refusing a BLAS that computes wrong results. (The conformance suite runs the backend
// itself when a BLAS is present: test/conformance/native.test.ts.)
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type Blas, type Sgemm, NativeUnavailableError, blasCandidates, findBlas, nativeInfo, registerNativeBackend,
} from '../../src/backends/native/index.js';
import { shutdownWasmBackend } from '../../src/backends/wasm/index.js';
import { setParallelThreshold } from '../../src/backends/wasm/kernels.js';
import { main } from '../../src/cli/main.js';
import { RNG, type Tensor, attention, getBackend, matmul, openScope, tensor } from '../../src/index.js';

after(() => shutdownWasmBackend());

/** Runs fn with LLAMATRAIN_BLAS set to value (undefined: unset), restoring it after. */
async function withBlasEnv<T>(value: string | undefined, fn: () => Promise<T>): Promise<T> {
  const old = process.env['LLAMATRAIN_BLAS'];
  if (value === undefined) delete process.env['LLAMATRAIN_BLAS'];
  else process.env['LLAMATRAIN_BLAS'] = value;
  try {
    return await fn();
  } finally {
    if (old === undefined) delete process.env['LLAMATRAIN_BLAS'];
    else process.env['LLAMATRAIN_BLAS'] = old;
  }
}

/**
 * A BLAS in plain JS on the wasm memory: address() hands it the memory view and answers 0, so the addresses the
 * backend passes are byte offsets into that view. `wrong` perturbs its result.
 */
function jsBlas(wrong: 'none' | 'noop' | 'scale' = 'none'): Blas {
  let mem: Float32Array | null = null;
  const sgemm: Sgemm = (tA, tB, M, N, K, alpha, a, lda, b, ldb, beta, c, ldc) => {
    if (wrong === 'noop') return;
    const f = mem!, A = a >> 2, B = b >> 2, C = c >> 2;
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += f[A + (tA ? k * lda + i : i * lda + k)]! * f[B + (tB ? j * ldb + k : k * ldb + j)]!;
        const v = alpha * s * (wrong === 'scale' ? 1.001 : 1);
        f[C + i * ldc + j] = beta === 0 ? v : v + beta * f[C + i * ldc + j]!;
      }
    }
  };
  return { kind: 'JS', path: '(test)', info: '', notes: [], sgemm, address: (v) => { mem = v; return 0; } };
}

test('discovery: the candidates per platform, fast libraries only', () => {
  const linux = blasCandidates('linux', 'x64');
  assert.equal(linux[0], 'libopenblas.so.0');
  assert.ok(linux.includes('/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0'));
  assert.ok(linux.includes('/usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so.0'));
  assert.ok(linux.some((p) => p.startsWith('libblis')) && linux.some((p) => p.startsWith('libmkl_rt')));
  assert.ok(!linux.some((p) => /libblas\.so|libcblas/.test(p)), 'the slow reference BLAS is never picked');
  assert.equal(blasCandidates('darwin', 'arm64')[0], '/System/Library/Frameworks/Accelerate.framework/Accelerate');
  assert.ok(blasCandidates('linux', 'arm64').includes('/usr/lib/aarch64-linux-gnu/openblas-pthread/libopenblas.so.0'));
});

test('discovery: finds a BLAS here, or says in one line why not', async () => {
  const r = await withBlasEnv(undefined, () => findBlas());
  if (r.blas) {
    assert.ok(['OpenBLAS', 'BLIS', 'MKL', 'Accelerate', 'BLAS'].includes(r.blas.kind));
    // the same library again through the override
    const again = await withBlasEnv(r.blas.path, () => findBlas());
    assert.equal(again.blas?.path, r.blas.path);
    assert.equal(again.blas?.kind, r.blas.kind);
  } else {
    assert.match(r.reason, /^(no BLAS library found|the optional package 'koffi')/);
    assert.ok(!r.reason.includes('\n'));
  }
});

test('an OpenMP BLAS is loaded with OMP_WAIT_POLICY=PASSIVE unless the user set it; the variable is not left set', async (t) => {
  // libgomp prints the settings it read at load time with OMP_DISPLAY_ENV=verbose (to stderr); its OMP_WAIT_POLICY
  // line says PASSIVE for the default too, the spin count tells them apart (passive: 0, default: 300000)
  const blasModule = new URL('../../src/backends/native/blas.js', import.meta.url).href;
  const probe = (policy: string | undefined) => {
    const env: NodeJS.ProcessEnv = { ...process.env, OMP_DISPLAY_ENV: 'verbose' };
    delete env['OMP_WAIT_POLICY'];
    if (policy) env['OMP_WAIT_POLICY'] = policy;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e',
      `const { findBlas } = await import(${JSON.stringify(blasModule)}); const r = await findBlas(); ` +
      `console.log(JSON.stringify({ found: !!r.blas, after: process.env.OMP_WAIT_POLICY ?? null }));`], { env, encoding: 'utf8' });
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { found: boolean; after: string | null };
    return { ...out, spin: /GOMP_SPINCOUNT = '(\d+)'/.exec(r.stderr)?.[1] ?? null };
  };
  const passive = probe(undefined);
  if (!passive.found || passive.spin === null) { t.skip('no OpenMP build of a BLAS here'); return; }
  assert.equal(passive.spin, '0', 'passive: OpenMP threads sleep at once');
  assert.equal(passive.after, null, 'OMP_WAIT_POLICY is removed again after the load');
  const active = probe('ACTIVE');
  assert.notEqual(active.spin, '0', "the user's choice wins");
  assert.equal(active.after, 'ACTIVE');
});

test('the override: LLAMATRAIN_BLAS=/nonexistent and a library without cblas_sgemm are refused with one line', async () => {
  const none = await withBlasEnv('/nonexistent', () => findBlas());
  assert.equal(none.blas, undefined);
  if (!/koffi/.test(none.reason!)) {
    assert.equal(none.reason, 'LLAMATRAIN_BLAS=/nonexistent: no such file');
    const opt = await findBlas({ library: '/nonexistent/libopenblas.so' });
    assert.equal(opt.reason, 'library option=/nonexistent/libopenblas.so: no such file');
    // a file that is not a library at all
    const dir = mkdtempSync(join(tmpdir(), 'llamatrain-blas-'));
    writeFileSync(join(dir, 'libfake.so'), 'not a library');
    const fake = await withBlasEnv(join(dir, 'libfake.so'), () => findBlas());
    assert.match(fake.reason!, /^LLAMATRAIN_BLAS=.*libfake\.so: cannot load/);
  }
  await withBlasEnv('/nonexistent', () => assert.rejects(registerNativeBackend({ threads: 1 }),
    (e: unknown) => e instanceof NativeUnavailableError && /^native backend: (LLAMATRAIN_BLAS=\/nonexistent: no such file|the optional package 'koffi')/.test(e.message)));
});

test('the self-check refuses a BLAS that leaves C alone or gets it slightly wrong; a correct one runs matmul', async () => {
  await assert.rejects(registerNativeBackend({ threads: 1, blas: jsBlas('noop'), name: 'native-noop' }),
    (e: unknown) => e instanceof NativeUnavailableError && /JS at \(test\) failed the self-check against the wasm GEMM: C = A·B \(33×47×65\) gives NaN/.test(e.message));
  await assert.rejects(registerNativeBackend({ threads: 1, blas: jsBlas('scale'), name: 'native-scale' }),
    (e: unknown) => e instanceof NativeUnavailableError && /failed the self-check/.test(e.message));
  const be = await registerNativeBackend({ threads: 2, blas: jsBlas(), name: 'native-js' });
  assert.equal(nativeInfo()?.kind, 'JS');
  const a = Float32Array.from({ length: 12 }, (_, i) => i - 5), b = Float32Array.from({ length: 20 }, (_, i) => (i % 7) / 3);
  const got = await matmul(tensor(a, [3, 4], 'float32', be), tensor(b, [5, 4], 'float32', be), { transB: true }).data();
  const want = await matmul(tensor(a, [3, 4], 'float32', getBackend('ref')), tensor(b, [5, 4], 'float32', getBackend('ref')), { transB: true }).data();
  for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got[i]! - want[i]!) < 1e-5, `[${i}] ${got[i]} vs ${want[i]}`);
});

test('attention: the calling thread runs its share of the items through the BLAS, the worker the rest through wasm; both agree with ref', async () => {
  // B 2, T 150 (blocks of 64 on the BLAS side, 32 on the wasm side, both with a ragged last block), 4 query heads on
  // 2 KV heads, a key mask with left padding; forward and backward against the ref backend
  const [B, T, NH, NKV, HD] = [2, 150, 4, 2, 12];
  let calls = 0;
  const blas = jsBlas();
  const counted: Blas = { ...blas, sgemm: (...a) => { calls++; blas.sgemm(...a); } };
  const be = await registerNativeBackend({ threads: 2, blas: counted, name: 'native-attention', attentionHostShare: 0.5 });
  const ref = getBackend('ref');
  const rng = new RNG(7);
  const data = (n: number) => Float32Array.from({ length: n }, () => rng.normal());
  const qd = data(B * T * NH * HD), kd = data(B * T * NKV * HD), vd = data(B * T * NKV * HD), gd = data(B * T * NH * HD);
  const mask = Int32Array.from({ length: B * T }, (_, i) => (i >= T && i - T < 5 ? 0 : 1));
  const run = async (backend: typeof be) => {
    const scope = openScope(backend);
    try {
      const leaf = (d: Float32Array, h: number) => { const t = tensor(d, [B, T, h, HD], 'float32', backend); t.requiresGrad = true; return t; };
      const q = leaf(qd, NH), k = leaf(kd, NKV), v = leaf(vd, NKV);
      const keyMask = tensor(mask, [B, T], 'int32', backend);
      const c0 = calls;
      const o = attention(q, k, v, { keyMask });
      const forwardCalls = calls - c0;
      o.backward(tensor(gd, o.shape, 'float32', backend));
      const backwardCalls = calls - c0 - forwardCalls;
      const read = (t: Tensor) => t.data();
      return { out: await read(o), dq: await read(q.grad!), dk: await read(k.grad!), dv: await read(v.grad!), forwardCalls, backwardCalls };
    } finally {
      scope.close();
    }
  };
  setParallelThreshold(0); // two threads even on this small problem
  try {
    const got = await run(be), want = await run(ref);
    // half of the 8 (batch, head) items on the BLAS side, 3 blocks of 64 rows each, 2 GEMMs a block; backward: half of
    // the 4 (batch, KV head) groups, each 2 query heads × 3 blocks × 5 GEMMs. All wasm would be 0, all BLAS twice this.
    assert.equal(got.forwardCalls, 4 * 3 * 2);
    assert.equal(got.backwardCalls, 2 * 2 * 3 * 5);
    for (const key of ['out', 'dq', 'dk', 'dv'] as const) {
      const g = got[key], w = want[key];
      let worst = 0;
      for (let i = 0; i < w.length; i++) worst = Math.max(worst, Math.abs(g[i]! - w[i]!) / (1 + Math.abs(w[i]!)));
      assert.ok(worst < 1e-4, `${key}: worst relative error ${worst}`);
    }
  } finally {
    setParallelThreshold(null);
  }
});

test('CLI: --backend auto without a BLAS trains on wasm and says why in one line; --backend native fails clearly', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'llamatrain-cli-'));
  const data = join(dir, 'd.jsonl');
  writeFileSync(data, Array.from({ length: 40 }, (_, i) => JSON.stringify({ text: `the cat ${i % 5} sat on the mat and the dog ran.` })).join('\n'));
  const small = ['--vocab-size=280', '--dim=16', '--layers=1', '--heads=2', '--kv-heads=1', '--seq-len=16', '--batch-size=2',
    '--warmup=1', '--eval-every=0', '--sample-tokens=0', '--progress=false', '--steps=1', '--threads=1'];
  const lines: string[] = [];
  const orig = process.stderr.write.bind(process.stderr); // the backend line is a diagnostic: on stderr
  process.stderr.write = ((s: string) => { lines.push(...String(s).split('\n').filter(Boolean)); return true; }) as typeof process.stderr.write;
  let code: number;
  try {
    code = await withBlasEnv('/nonexistent', () => main(['train', `--data=${data}`, `--out=${join(dir, 'o')}`, '--backend=auto', '--verbose', ...small], (s) => lines.push(s)));
  } finally {
    process.stderr.write = orig;
  }
  assert.equal(code, 0, lines.join('\n'));
  const why = lines.filter((l) => /BLAS|auto:|native backend/.test(l));
  assert.equal(why.length, 1, lines.join('\n'));
  assert.match(why[0]!, /^llamatrain: backend wasm \(auto: native backend: (LLAMATRAIN_BLAS=\/nonexistent: no such file|the optional package 'koffi')/);
  const errs: string[] = [];
  process.stderr.write = ((s: string) => { errs.push(String(s)); return true; }) as typeof process.stderr.write; // an error provoked on purpose
  let bad: number;
  try {
    bad = await withBlasEnv('/nonexistent', () => main(['train', `--data=${data}`, `--out=${join(dir, 'p')}`, '--backend=native', ...small], (s) => errs.push(s)));
  } finally {
    process.stderr.write = orig;
  }
  assert.equal(bad, 2);
  assert.match(errs.join(''), /--backend native: LLAMATRAIN_BLAS=\/nonexistent: no such file/);
});
