// Shared test helpers. Tests run from the repository root (npm test), so fixture paths are cwd-relative.
import { join } from 'node:path';
import { existsSync, readdirSync } from 'node:fs';

export function fixturePath(...parts: string[]): string {
  return join(process.cwd(), 'test', 'fixtures', ...parts);
}

/**
 * The model-parity fixtures: every folder of test/fixtures with config.json, model.safetensors and
 * reference.safetensors (made by tools/pyref/make_fixture.py, or by transformers for hf-llama-tiny), sorted. A new
 * fixture is tested on every backend by being there.
 */
export function parityFixtures(): string[] {
  const root = fixturePath();
  return readdirSync(root).filter((d) => ['config.json', 'model.safetensors', 'reference.safetensors']
    .every((f) => existsSync(join(root, d, f)))).sort();
}

/**
 * max |a − b| / max |b|: the error relative to the largest reference entry (every comparison in the tests uses
 * it, so tolerances mean the same everywhere). A zero reference gives the absolute error.
 */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new RangeError(`relErr: lengths differ (${a.length} vs ${b.length})`);
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) { num = Math.max(num, Math.abs(a[i]! - b[i]!)); den = Math.max(den, Math.abs(b[i]!)); }
  return den === 0 ? num : num / den;
}

/** ‖a − b‖₂ / ‖b‖₂: for whole gradients against a reference (HF parity). */
export function relL2(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new RangeError(`relL2: lengths differ (${a.length} vs ${b.length})`);
  let n = 0, d = 0;
  for (let i = 0; i < a.length; i++) { n += (a[i]! - b[i]!) ** 2; d += b[i]! ** 2; }
  return d === 0 ? Math.sqrt(n) : Math.sqrt(n / d);
}
