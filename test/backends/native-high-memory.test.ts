// The native backend with tensors above 2 GiB in the wasm memory: attention's host GEMMs get their operands as
// wasm i32 byte offsets, which read as negative numbers there; they must still address the right memory (a wrong
// address is a crash). The 2 GiB filler block is never touched, so it costs address space, not RAM.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RNG, attention, mul, openScope, refBackend, sum, tensor } from '../../src/index.js';
import { findBlas, registerNativeBackend } from '../../src/backends/native/index.js';
import { getRuntime, shutdownWasmBackend } from '../../src/backends/wasm/index.js';
import { relErr } from '../helpers.js';

const skip = (await findBlas()).blas ? false : 'no BLAS library';

test('native: attention on tensors above 2 GiB of wasm memory equals ref (forward and backward)', { skip }, async () => {
  const be = await registerNativeBackend({ threads: 2 });
  try {
    const heap = (await getRuntime(2)).blocks;
    const filler = heap.alloc(2 ** 31); // everything allocated after it lies above 2 GiB
    try {
      const rng = new RNG(4);
      const [B, T, NH, NKV, HD] = [1, 160, 4, 2, 32];
      const data = (n: number) => Float32Array.from({ length: n }, () => rng.normal());
      const q = data(B * T * NH * HD), k = data(B * T * NKV * HD), v = data(B * T * NKV * HD), w = data(B * T * NH * HD);
      const run = async (on: typeof be) => {
        const scope = openScope(on);
        try {
          const [tq, tk, tv] = [[q, NH], [k, NKV], [v, NKV]].map(([d, h]) => tensor(d as Float32Array, [B, T, h as number, HD], 'float32', on).requireGrad());
          if (on === be) assert.ok(heap.isResident(tq!.storage) && (tq!.storage as Float32Array).byteOffset >= 2 ** 31, 'q lies above 2 GiB');
          const o = attention(tq!, tk!, tv!, { causal: true });
          sum(mul(o, tensor(w, [B, T, NH, HD], 'float32', on))).backward();
          return [await o.data(), await tq!.grad!.data(), await tk!.grad!.data(), await tv!.grad!.data()];
        } finally {
          scope.close();
        }
      };
      const got = await run(be), want = await run(refBackend);
      got.forEach((g, i) => assert.ok(relErr(g, want[i]!) < 1e-5, `output/gradient ${i}: rel err ${relErr(g, want[i]!)}`));
    } finally {
      heap.free(filler);
    }
  } finally {
    await shutdownWasmBackend();
  }
});
