// docs/ARCHITECTURE.md: `data` and `tokenizer` import no tensor code (they run in a Web Worker), and their browser-safe files
// import no `node:` module, directly or through another file. Node-only files are named node*.ts / *-node.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';

const NODE_ONLY = /(^|\/)(node[^/]*|[^/]*-node)\.ts$/;
const files = ['src/data', 'src/tokenizer'].flatMap((d) => readdirSync(d).filter((f) => f.endsWith('.ts')).map((f) => join(d, f)));

function imports(file: string): string[] {
  const src = readFileSync(file, 'utf8');
  return [...src.matchAll(/^(?:import|export)\s[^;]*?from\s+'([^']+)'/gms)].map((m) => m[1]!);
}

// data and tokenizer import no tensor code (they run in Web Workers). core/rng.ts and core/errors.ts are the
// exceptions: a dependency-free random generator (one RNG in the project) and the library's error classes.
test('data and tokenizer import nothing of ours outside data/tokenizer but the dependency-free RNG and errors', () => {
  assert.ok(files.length >= 10, 'the scan must see the source files');
  for (const f of files) {
    for (const spec of imports(f).filter((s) => s.startsWith('.'))) {
      const target = normalize(join(dirname(f), spec));
      assert.ok(/^src\/(data|tokenizer)\//.test(target) || target === normalize('src/core/rng.js') || target === normalize('src/core/errors.js'), `${f} imports ${spec}`);
    }
  }
});

test('browser-safe files import no node: module, directly or through a local import', () => {
  const reachesNode = (f: string, seen = new Set<string>()): string | null => {
    if (seen.has(f)) return null;
    seen.add(f);
    for (const spec of imports(f)) {
      if (spec.startsWith('node:') || ['fs', 'path', 'os', 'readline', 'module'].includes(spec)) return `${f} imports ${spec}`;
      if (spec.startsWith('.')) {
        const hit = reachesNode(normalize(join(dirname(f), spec.replace(/\.js$/, '.ts'))), seen);
        if (hit) return hit;
      }
    }
    return null;
  };
  const browser = files.filter((f) => !NODE_ONLY.test(f));
  assert.ok(browser.includes(normalize('src/data/index.ts')) && browser.includes(normalize('src/tokenizer/index.ts')));
  for (const f of browser) assert.equal(reachesNode(f), null);
  // and the Node-only files are where the node: imports are
  assert.ok(imports('src/data/node-sources.ts').includes('node:fs'));
});
