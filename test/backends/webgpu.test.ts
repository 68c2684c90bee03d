// The webgpu backend's own checks. Both GEMMs against ref — 'tiled' (workgroup-memory tiles: what GPUs run; on a
// software adapter the conformance suite runs 'direct', much faster there) and 'direct' (scalar, and vec4 when
// everything is a multiple of 4): every transpose layout, edges that are no tile multiple, K = 0, batches with
// broadcasting, and the fused loss (row offsets and accumulation).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RNG, linearCrossEntropy, matmul, probeWebGPU, refBackend, registerWebGPUBackend, sum, tensor, type Backend } from '../../src/index.js';
import { relErr } from '../helpers.js';

const probe = await probeWebGPU();
const skip = 'reason' in probe ? `webgpu: skipped (no adapter: ${probe.reason})` : false;
if (skip) console.log(skip);

for (const variant of ['tiled', 'direct'] as const) test(`webgpu ${variant} GEMM equals ref: layouts, edges, batches, fused loss`, { skip }, async () => {
  const be = await registerWebGPUBackend({ name: `webgpu-${variant}`, gemm: variant });
  const rng = new RNG(3);
  const randf = (shape: number[]) => Float32Array.from({ length: shape.reduce((p, d) => p * d, 1) }, () => rng.normal());
  const both = async (name: string, shapes: number[][], f: (b: Backend, xs: Float32Array[]) => ReturnType<typeof matmul>, tol = 2e-5) => {
    const xs = shapes.map(randf);
    const got = await f(be, xs).data(), want = await f(refBackend, xs).data();
    const e = relErr(got, want);
    assert.ok(e <= tol, `${name}: rel err ${e.toExponential(2)}`);
  };
  // (multiples of 4 take the direct GEMM's vec4 path)
  for (const [M, N, K] of [[1, 1, 1], [5, 1, 3], [3, 5, 0], [4, 13, 9], [8, 12, 16], [36, 68, 20], [65, 67, 17], [37, 70, 33], [132, 72, 36]] as const) {
    for (const [tA, tB] of [[false, false], [true, false], [false, true], [true, true]] as const) {
      await both(`matmul ${M}x${N}x${K} tA=${tA} tB=${tB}`, [tA ? [K, M] : [M, K], tB ? [N, K] : [K, N]],
        (b, [x, y]) => matmul(tensor(x!, tA ? [K, M] : [M, K], 'float32', b), tensor(y!, tB ? [N, K] : [K, N], 'float32', b), { transA: tA, transB: tB }));
    }
  }
  await both('matmul broadcast both', [[2, 1, 6, 11], [1, 3, 11, 70]],
    (b, [x, y]) => matmul(tensor(x!, [2, 1, 6, 11], 'float32', b), tensor(y!, [1, 3, 11, 70], 'float32', b)));
  await both('matmul broadcast both, multiples of 4', [[2, 1, 8, 12], [1, 3, 12, 16]],
    (b, [x, y]) => matmul(tensor(x!, [2, 1, 8, 12], 'float32', b), tensor(y!, [1, 3, 12, 16], 'float32', b), { transA: false, transB: false }));
  // the fused loss: chunks (row offsets into hidden), dH and the accumulated dW
  const tg = Int32Array.from({ length: 90 }, (_, i) => (i % 7 === 0 ? -100 : (i * 13) % 301));
  const hid = randf([90, 40]), w = randf([301, 40]).map((x) => x * 0.3);
  const run = async (b: Backend) => {
    const h = tensor(hid, [90, 40], 'float32', b).requireGrad(), W = tensor(w, [301, 40], 'float32', b).requireGrad();
    const l = linearCrossEntropy(h, W, tensor(tg, [90], 'int32', b), { chunkSize: 32, labelSmoothing: 0.1 });
    sum(l).backward();
    return [await l.item(), ...(await h.grad!.data()), ...(await W.grad!.data())];
  };
  const e = relErr(await run(be), await run(refBackend));
  assert.ok(e <= 2e-5, `linearCrossEntropy: rel err ${e.toExponential(2)}`);
});

test('webgpu without an adapter: registerWebGPUBackend says what to install; probeWebGPU says why', async (t) => {
  // a Vulkan loader pointed at no driver: Dawn finds no adapter on Linux (elsewhere Metal/D3D12 may still answer)
  const { execFileSync } = await import('node:child_process');
  const code = "import('./dist/src/index.js').then(async (m) => { const p = await m.probeWebGPU(); if ('info' in p) { console.log('ADAPTER'); return; } " +
    "console.log('PROBE ' + p.reason); try { await m.registerWebGPUBackend(); console.log('REGISTERED'); } catch (e) { console.log(e.name + ': ' + e.message); } })";
  const out = execFileSync(process.execPath, ['-e', code], { encoding: 'utf8', env: { ...process.env, VK_ICD_FILENAMES: '/nonexistent/icd.json', VK_DRIVER_FILES: '' }, stdio: ['ignore', 'pipe', 'ignore'] });
  if (out.includes('ADAPTER')) { t.skip('this machine has an adapter without Vulkan'); return; }
  assert.match(out, /^PROBE no WebGPU adapter/m);
  assert.match(out, /WebGPUUnavailableError: webgpu backend: no WebGPU adapter found .*apt-get install -y chromium libvulkan1.*VK_ICD_FILENAMES/);
});

test('webgpu: float64 is refused with a clear error', { skip }, async () => {
  const be = await registerWebGPUBackend({ name: 'webgpu-f64-check' });
  assert.equal(be.supports('float64'), false);
  assert.throws(() => tensor(new Float64Array(3), [3], 'float64', be), /backend 'webgpu-f64-check' does not support float64/);
});

type DawnGpu = { requestAdapter(): Promise<{ requestDevice(): Promise<object> } | null> };
let appGpu: DawnGpu | null = null;
test('webgpu on a device the app passes (shared device): computes as on its own', { skip }, async () => {
  const { create } = (await import('webgpu' as string)) as { create: (f: string[]) => DawnGpu };
  appGpu = create([]); // an app's own Dawn instance: it must outlive its device (a collected instance crashes Dawn)
  const device = await (await appGpu.requestAdapter())!.requestDevice();
  const be = await registerWebGPUBackend({ device, name: 'webgpu-shared-device' });
  const x = Float32Array.from({ length: 64 }, (_, i) => Math.sin(i)), w = Float32Array.from({ length: 48 }, (_, i) => Math.cos(i));
  const run = async (b: Backend) => matmul(tensor(x, [8, 8], 'float32', b), tensor(w, [6, 8], 'float32', b), { transB: true }).data();
  assert.ok(relErr(await run(be), await run(refBackend)) <= 2e-6);
});
