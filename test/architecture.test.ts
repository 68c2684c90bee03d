// Architecture rules (docs/ARCHITECTURE.md): no static import cycles; `core` imports nothing of ours outside core;
// backends import only core; nothing imports the CLI. Also: the package is importable by its name.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { execFileSync } from 'node:child_process';

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? walk(p) : p.endsWith('.ts') ? [p] : [];
  });
}

const files = walk('src');
const graph = new Map<string, string[]>();
for (const f of files) {
  const src = readFileSync(f, 'utf8');
  // static imports and re-exports only (dynamic import() is allowed to close a loop lazily)
  const deps = [...src.matchAll(/^(?:import|export)\s[^;]*?from\s+'(\.[^']+)'/gms)].map((m) =>
    normalize(join(dirname(f), m[1]!.replace(/\.js$/, '.ts'))));
  graph.set(normalize(f), deps);
}
const area = (f: string) => relative('src', f).split('/')[0]!;

test('src has no static import cycles', () => {
  assert.ok((graph.get(normalize('src/index.ts')) ?? []).length >= 4, 'the import scanner must see src/index.ts imports');
  assert.ok((graph.get(normalize('src/nn/llama.ts')) ?? []).includes(normalize('src/core/index.ts')));
  const state = new Map<string, number>();
  const stack: string[] = [];
  const visit = (f: string): void => {
    if (state.get(f) === 2) return;
    if (state.get(f) === 1) assert.fail(`import cycle: ${[...stack.slice(stack.indexOf(f)), f].join(' → ')}`);
    state.set(f, 1); stack.push(f);
    for (const d of graph.get(f) ?? []) visit(d);
    stack.pop(); state.set(f, 2);
  };
  for (const f of graph.keys()) visit(f);
});

test('import direction: core imports only core; backends only core and themselves; nobody imports cli', () => {
  assert.deepEqual(graph.get(normalize('src/core/rng.ts')), [], 'core/rng.ts stays dependency-free (data and tokenizer use it)');
  assert.deepEqual(graph.get(normalize('src/core/errors.ts')), [], 'core/errors.ts stays dependency-free (data and tokenizer use it)');
  for (const [f, deps] of graph) {
    for (const d of deps) {
      if (area(f) === 'core') assert.equal(area(d), 'core', `${f} imports ${d}`);
      if (area(f) === 'backends') assert.ok(['core', 'backends'].includes(area(d)), `${f} imports ${d}`);
      assert.notEqual(area(d) === 'cli' && area(f) !== 'cli', true, `${f} imports the CLI`);
    }
  }
});

test("the built package is importable by name ('llamatrain' → dist via package.json exports)", () => {
  const out = execFileSync(process.execPath, ['--input-type=module', '-e',
    "import { LlamaForCausalLM, tensor, crossEntropy } from 'llamatrain'; console.log(typeof LlamaForCausalLM, typeof tensor, typeof crossEntropy)"],
  { encoding: 'utf8' });
  assert.equal(out.trim(), 'function function function');
});
