// Finite-difference gradient checks in float64 on the ref backend.
import assert from 'node:assert/strict';
import { RNG, type Tensor, mul, sum, tensor } from '../src/index.js';
import { relErr } from './helpers.js';

/** A float64 tensor of N(0, scale²) values that requires grad. */
export function randn(shape: number[], rng: RNG, scale = 1): Tensor {
  const n = shape.reduce((p, d) => p * d, 1);
  const a = new Float64Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal() * scale;
  return tensor(a, shape, 'float64').requireGrad();
}


/**
 * Checks d/dx of sum(f(xs) · W) (W fixed random weights, so every output element matters) against central
 * differences for every input that requires grad. Tolerance: relative to the largest gradient entry.
 */
export function gradcheck(name: string, f: (...xs: Tensor[]) => Tensor, inputs: Tensor[], opts: { eps?: number; tol?: number; seed?: number } = {}): void {
  const eps = opts.eps ?? 1e-6, tol = opts.tol ?? 1e-7;
  const rng = new RNG(opts.seed ?? 99);
  const out0 = f(...inputs);
  const w = new Float64Array(out0.size);
  for (let i = 0; i < w.length; i++) w[i] = rng.normal();
  const W = tensor(w, [...out0.shape], 'float64');
  const objective = () => sum(mul(f(...inputs), W));
  for (const x of inputs) x.grad = null;
  objective().backward();
  inputs.forEach((x, xi) => {
    if (!x.requiresGrad) return;
    assert.ok(x.grad, `${name}: input ${xi} got no gradient`);
    const analytic = x.grad.dataSync();
    const data = x.storage as Float64Array; // ref backend: the storage is the array itself
    const numeric = new Float64Array(data.length);
    for (let i = 0; i < data.length; i++) {
      const old = data[i]!;
      data[i] = old + eps; const fp = (objective().dataSync())[0]!;
      data[i] = old - eps; const fm = (objective().dataSync())[0]!;
      data[i] = old;
      numeric[i] = (fp - fm) / (2 * eps);
    }
    const err = relErr(analytic, numeric);
    assert.ok(err < tol, `${name}: input ${xi} gradient differs from finite differences: rel err ${err.toExponential(2)} > ${tol}`);
  });
}
