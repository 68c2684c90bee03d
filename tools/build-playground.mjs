// Builds the playground (playground/: the page and its training worker) into playground/dist, a static folder any
// static host can serve (with the COOP/COEP headers for threads) and that `llamatrain playground` serves:
//   1. type-checks playground/src against the built library's declarations (run after tsc built dist/src);
//   2. bundles main.ts (page) and worker.ts (the Web Worker) with esbuild: ESM, minified, no source maps;
//   3. copies index.html and writes brown.json.gz, the built-in Brown corpus as plain text with its fixed split;
//   4. prints each file's size, raw and gzipped.
//   node tools/build-playground.mjs [--no-check]
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const root = fileURLToPath(new URL('..', import.meta.url));
const src = join(root, 'playground');
const out = join(src, 'dist');
const lib = join(root, 'dist', 'src');
const t0 = Date.now();

if (!existsSync(join(lib, 'index.js'))) {
  console.error('build-playground: dist/src/index.js is missing; build the library first (npm run build)');
  process.exit(1);
}
if (!process.argv.includes('--no-check')) {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', join(src, 'tsconfig.json')], { stdio: 'inherit' });
  if (r.status !== 0) { console.error('build-playground: type errors in playground/src'); process.exit(r.status ?? 1); }
}

// The corpus does not change: keep an earlier brown.json.gz across rebuilds.
const corpusFile = join(out, 'brown.json.gz');
const corpus = existsSync(corpusFile) ? readFileSync(corpusFile) : null;
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

await build({
  entryPoints: { main: join(src, 'src', 'main.ts'), worker: join(src, 'src', 'worker.ts') },
  outdir: out,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  minify: true,
  legalComments: 'none',
  chunkNames: 'chunk-[hash]',
  alias: { 'llamatrain/hf-tokenizer': join(lib, 'hf-tokenizer.js'), llamatrain: join(lib, 'index.js') },
  logLevel: 'warning',
  // worker.ts feature-detects `registerWebGPUBackend`, which the library does not export yet
  logOverride: { 'import-is-undefined': 'silent' },
});
copyFileSync(join(src, 'index.html'), join(out, 'index.html'));

if (corpus) writeFileSync(corpusFile, corpus);
else {
  try {
    const { loadBrownCorpus } = await import(join(lib, 'data', 'node.js'));
    const { train, validation } = loadBrownCorpus();
    writeFileSync(corpusFile, gzipSync(JSON.stringify({ train, validation }), { level: 9 }));
  } catch (e) {
    // The page then says the corpus is missing and still trains on a user's own text.
    console.warn(`build-playground: no built-in corpus (${e.message.split('\n')[0]})`);
  }
}

const kB = (n) => `${(n / 1024).toFixed(1)} kB`;
let code = 0, codeGz = 0;
const lines = readdirSync(out).sort().map((f) => {
  const bytes = readFileSync(join(out, f));
  const gz = f.endsWith('.gz') ? bytes.length : gzipSync(bytes).length;
  if (/\.(js|css|html)$/.test(f)) { code += bytes.length; codeGz += gz; }
  return `  ${f.padEnd(24)} ${kB(statSync(join(out, f)).size).padStart(10)}  (${kB(gz)} gzipped)`;
});
console.log(`build-playground: playground/dist in ${((Date.now() - t0) / 1000).toFixed(1)} s; page + worker ${kB(code)} (${kB(codeGz)} gzipped)`);
console.log(lines.join('\n'));
