// Attention kernel benchmark: one causal attention call forward and backward at s15M's shape per layer
// (B 8, T 256, 6 heads of 48), on the native backend with the calling thread's share of the (batch, head) items
// through the BLAS (--share S: 0 = all wasm, 1 = all BLAS on the calling thread), or on the wasm backend. Prints the
// median over the timed calls (the first 5 are warm-up). Tensors are made once; each call runs in a step scope.
//   npm run build && node dist/bench/kernels/attention.js [--backend native|wasm] [--threads N] [--share S] [--calls N]

import { RNG, attention, openScope, tensor } from '../../src/index.js';
import { registerNativeBackend } from '../../src/backends/native/index.js';
import { registerWasmBackend, shutdownWasmBackend } from '../../src/backends/wasm/index.js';

const argv = process.argv.slice(2);
const opt = (k: string, d: string) => { const i = argv.indexOf(`--${k}`); return i >= 0 ? argv[i + 1]! : d; };
const backendName = opt('backend', 'native'), threads = Number(opt('threads', '2')), share = Number(opt('share', '0.7'));
const calls = Number(opt('calls', '40'));

const be = backendName === 'native'
  ? await registerNativeBackend({ threads, attentionHostShare: share })
  : await registerWasmBackend({ threads });
const [B, T, NH, HD] = [8, 256, 6, 48];
const rng = new RNG(0);
const data = () => Float32Array.from({ length: B * T * NH * HD }, () => rng.normal());
const leaf = () => { const t = tensor(data(), [B, T, NH, HD], 'float32', be); t.requiresGrad = true; return t; };
const q = leaf(), k = leaf(), v = leaf(), G = data().map((x) => x * 0.01);

const fwd: number[] = [], bwd: number[] = [];
for (let i = 0; i < calls + 5; i++) {
  const scope = openScope(be);
  try {
    const g = tensor(G, [B, T, NH, HD], 'float32', be);
    const t0 = performance.now();
    const o = attention(q, k, v, { causal: true });
    const t1 = performance.now();
    o.backward(g);
    const t2 = performance.now();
    if (i >= 5) { fwd.push(t1 - t0); bwd.push(t2 - t1); }
  } finally {
    scope.close();
  }
}
const median = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1]!;
console.log(`attention B ${B} T ${T} NH ${NH} HD ${HD}, ${backendName}${backendName === 'native' ? ` (host share ${share})` : ''}, ` +
  `${threads} thread(s): forward ${median(fwd).toFixed(2)} ms, backward ${median(bwd).toFixed(2)} ms (medians of ${calls})`);
await shutdownWasmBackend();
