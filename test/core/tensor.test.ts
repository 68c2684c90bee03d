import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  RNG, add, hostInts, keep, knownScalar, makeResult, mul, noGrad, reshape, slice, sum, tensor, zeros, ones, full, isGradEnabled,
} from '../../src/index.js';

test('tensor(): dtypes, shapes, async reads, clear errors', async () => {
  const t = tensor([1, 2, 3, 4], [2, 2]);
  assert.equal(t.dtype, 'float32');
  assert.deepEqual([...t.shape], [2, 2]);
  assert.ok((await t.data()) instanceof Float32Array);
  assert.equal(await tensor(5).item(), 5);
  assert.equal(tensor(Int32Array.from([7]), [1]).dtype, 'int32');
  assert.equal(tensor([1.5], [1], 'float64').dtype, 'float64');
  assert.deepEqual(Array.from(await full([2], 3, 'int32').data()), [3, 3]);
  assert.deepEqual(Array.from(zeros([2]).dataSync()), [0, 0]);
  assert.deepEqual(Array.from(ones([1]).dataSync()), [1]);
  assert.throws(() => tensor([1, 2, 3], [2, 2]), /shape \[2, 2\] holds 4 elements but the data has 3/);
  assert.throws(() => tensor([1.5], [1], 'int32'), /int32 data must be integers, found 1.5/);
  await assert.rejects(() => t.item(), /item\(\) needs a tensor with one element/);
  assert.throws(() => tensor(Int32Array.from([1]), [1]).requireGrad(), /only floating-point tensors can require grad/);
  // data() returns a copy: mutating it does not change the tensor
  const d = await t.data(); d[0] = 100;
  assert.equal(t.dataSync()[0], 1);
});

test('autograd: gradients accumulate across backward calls; zero by setting null', () => {
  const x = tensor([1, 2, 3], [3], 'float64').requireGrad();
  sum(mul(x, x)).backward();
  assert.deepEqual(Array.from(x.grad!.dataSync()), [2, 4, 6]);
  sum(mul(x, 3)).backward();
  assert.deepEqual(Array.from(x.grad!.dataSync()), [5, 7, 9]);
  // a tensor used twice gets both contributions
  const y = tensor([2], [1], 'float64').requireGrad();
  sum(add(mul(y, y), y)).backward(); // d(y² + y) = 2y + 1
  assert.deepEqual(Array.from(y.grad!.dataSync()), [5]);
});

test('autograd: a tensor used three times sums three contributions; leaf gradients never alias', () => {
  const x = tensor([1, 2], [2], 'float64').requireGrad();
  sum(add(add(mul(x, 3), mul(x, x)), x)).backward(); // d/dx (3x + x² + x) = 4 + 2x
  assert.deepEqual(Array.from(x.grad!.dataSync()), [6, 8]);
  // add's backward hands the same upstream gradient to both inputs: each leaf must get its own buffer
  const a = tensor([1, 1], [2], 'float64').requireGrad(), b = tensor([2, 2], [2], 'float64').requireGrad();
  sum(add(a, b)).backward();
  (a.grad!.storage as Float64Array)[0] = 100;
  assert.deepEqual(Array.from(b.grad!.dataSync()), [1, 1]);
});

test('autograd: noGrad records nothing, detach cuts the tape, a second backward is an error', async () => {
  const x = tensor([1, 2], [2], 'float64').requireGrad();
  const y = noGrad(() => mul(x, 2));
  assert.equal(y.requiresGrad, false);
  assert.equal(isGradEnabled(), true);
  assert.equal(mul(x.detach(), 2).requiresGrad, false);
  assert.throws(() => sum(y).backward(), /does not require grad/);
  const l = sum(mul(x, x));
  l.backward();
  assert.throws(() => l.backward(), /already freed by an earlier backward/);
  assert.throws(() => mul(x, 2).backward(), /needs a scalar/);
  // an async section keeps grad mode off across its awaits, and restores it when it settles (also on rejection)
  const seen: boolean[] = [];
  await noGrad(async () => { seen.push(isGradEnabled()); await new Promise((r) => setTimeout(r, 1)); seen.push(isGradEnabled(), mul(x, 2).requiresGrad); });
  assert.deepEqual(seen, [false, false, false]);
  assert.equal(isGradEnabled(), true);
  await assert.rejects(noGrad(async () => { await Promise.resolve(); throw new Error('boom'); }), /boom/);
  assert.equal(isGradEnabled(), true);
  assert.equal(mul(x, 2).requiresGrad, true);
});

test('RNG: seeded, reproducible, state save/restore, sane normal moments', () => {
  const a = new RNG(42), b = new RNG(42), c = new RNG(43);
  const sa = Array.from({ length: 5 }, () => a.nextU32());
  assert.deepEqual(sa, Array.from({ length: 5 }, () => b.nextU32()));
  assert.notDeepEqual(sa, Array.from({ length: 5 }, () => c.nextU32()));
  const st = a.getState();
  const next = [a.uniform(), a.normal()];
  a.setState(st);
  assert.deepEqual([a.uniform(), a.normal()], next);
  const r = new RNG(1);
  let m = 0, v = 0;
  const n = 20000;
  for (let i = 0; i < n; i++) { const x = r.normal(); m += x; v += x * x; }
  m /= n; v = v / n - m * m;
  assert.ok(Math.abs(m) < 0.03 && Math.abs(v - 1) < 0.05, `normal mean ${m}, var ${v}`);
  for (let i = 0; i < 1000; i++) { const u = r.uniform(); assert.ok(u >= 0 && u < 1); }
});

test('autograd: a gradient two inputs share is never added to in place; a reshape view of an owned gradient may be', () => {
  // h = x + y hands h's gradient (an engine-made sum: h is used twice) to both x and y, which also meet in x·y:
  // adding x·y's contribution for x into the shared buffer would also change y's pending gradient. Every order of
  // the terms is tried (the tape's topological order follows it); sum(reshape(h)) makes a view of a gradient.
  const P = [1, -2, 0.5], Q = [0.25, 3, -1];
  const terms = ['hh', 'h', 'xy', 'x5'] as const;
  const perms = (n: number): number[][] => (n === 0 ? [[]] : perms(n - 1).flatMap((p) => Array.from({ length: n }, (_, i) => [...p.slice(0, i), n - 1, ...p.slice(i)])));
  for (const swap of [false, true]) {
    for (const order of perms(terms.length)) {
      const p = tensor(P, [3], 'float64').requireGrad(), q = tensor(Q, [3], 'float64').requireGrad();
      const x = mul(p, 2), y = mul(q, 3);
      const h = swap ? add(y, x) : add(x, y);
      const parts = { hh: () => sum(mul(h, h)), h: () => sum(reshape(h, [3, 1])), xy: () => sum(mul(x, y)), x5: () => sum(mul(x, 5)) };
      let out = parts[terms[order[0]!]!]();
      for (const k of order.slice(1)) out = add(out, parts[terms[k]!]());
      out.backward();
      const xv = P.map((v) => 2 * v), yv = Q.map((v) => 3 * v), hv = xv.map((v, i) => v + yv[i]!);
      const what = `order ${order.map((k) => terms[k]).join(' + ')}${swap ? ', h = y + x' : ''}`;
      assert.deepEqual(Array.from(p.grad!.dataSync()), hv.map((v, i) => 2 * (2 * v + 1 + yv[i]! + 5)), `dp, ${what}`);
      assert.deepEqual(Array.from(q.grad!.dataSync()), hv.map((v, i) => 3 * (2 * v + 1 + xv[i]!)), `dq, ${what}`);
    }
  }
});

test('autograd: a node that hands its (engine-owned) gradient to two inputs, one of them listed twice', () => {
  // f(x, y, x) = x + y + 2x with a backward returning [g, g, 2g]: adding 2g into x's pending gradient in place
  // would also change y's (the same buffer)
  const x = tensor([1, 2], [2], 'float64').requireGrad(), y = tensor([3, 4], [2], 'float64').requireGrad();
  const u = mul(x, 1), v = mul(y, 1); // non-leaves: their gradients wait in the engine
  const f = makeResult(add(add(u, v), mul(u, 2)).storage, [2], 'float64', x.backend, {
    name: 'custom', inputs: [u, v, u], backward: (g) => [g, g, mul(g, 2)],
  });
  const h = add(f, f); // f's gradient is an engine-made sum: owned
  sum(mul(h, 1)).backward();
  assert.deepEqual(Array.from(x.grad!.dataSync()), [6, 6]);
  assert.deepEqual(Array.from(y.grad!.dataSync()), [2, 2]);
});

test('host copies: int32 tensors keep their host values through reshape and slice; kept or trainable tensors do not', () => {
  const ids = tensor(Int32Array.from([1, 2, 3, 4, 5, 6]), [2, 3], 'int32');
  assert.deepEqual(Array.from(ids.hostData!), [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(Array.from(reshape(ids, [3, 2]).hostData!), [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(Array.from(slice(ids, 1, 1, 3).hostData!), [2, 3, 5, 6], 'columns 1..2 of both rows');
  assert.deepEqual(Array.from(slice(ids, 0, 1, 2).hostData!), [4, 5, 6]);
  assert.deepEqual(Array.from(hostInts(slice(ids, 1, 1, 3))!), Array.from(slice(ids, 1, 1, 3).dataSync()), 'the copy equals the device');
  const data = Int32Array.from([9, 9]);
  const t = tensor(data, [2], 'int32');
  data[0] = 0;
  assert.equal(t.hostData![0], 9, 'a private copy: changing the source array later changes nothing');
  assert.equal(tensor(new Float32Array(4), [4]).hostData, null, 'float data keeps no copy (weights would double)');
  assert.equal(knownScalar(full([], 1)), 1, 'a backward seed is known on the host');
  assert.equal(knownScalar(tensor([2, 3], [2])), null);
  const p = tensor([0.5], [1]).requireGrad();
  assert.equal(p.hostData, null, 'a trainable tensor changes in place: no host copy');
  assert.equal(keep(tensor([0.5], [1])).hostData, null);
});
