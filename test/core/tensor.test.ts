import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RNG, add, mul, noGrad, sum, tensor, zeros, ones, full, isGradEnabled } from '../../src/index.js';

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

test('autograd: noGrad records nothing, detach cuts the tape, a second backward is an error', () => {
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
  assert.throws(() => noGrad(() => Promise.resolve(1)), /must be synchronous/);
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
