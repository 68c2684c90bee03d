// Browser smoke check of the wasm backend (not part of `npm test`: it needs a Chromium, e.g. Debian's
// `apt-get install -y chromium`). Serves the repository with the cross-origin isolation headers that
// SharedArrayBuffer needs, opens tools/browser/smoke.html in headless Chromium, and waits for the page's Web Worker
// to POST its result: the wasm backend started 2 threads in the browser, its matmul and a training step (inside a
// step scope, resident tensors) matched the ref backend.
//   npm run build && node tools/browser/smoke.mjs [--chromium /usr/bin/chromium]
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { extname, join, normalize } from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';

const root = new URL('../..', import.meta.url).pathname;
const argv = process.argv.slice(2);
const chromium = argv.includes('--chromium') ? argv[argv.indexOf('--chromium') + 1] : '/usr/bin/chromium';
const types = { '.js': 'text/javascript', '.mjs': 'text/javascript', '.html': 'text/html', '.map': 'application/json' };

let done;
const result = new Promise((resolve) => { done = resolve; });
const server = createServer(async (req, res) => {
  if (req.method === 'POST' && req.url === '/result') {
    let body = '';
    for await (const c of req) body += c;
    res.end('ok');
    done(JSON.parse(body));
    return;
  }
  const path = normalize(join(root, decodeURIComponent(new URL(req.url, 'http://x').pathname)));
  if (!path.startsWith(root)) { res.writeHead(403).end(); return; }
  try {
    const data = await readFile(path);
    res.writeHead(200, {
      'Content-Type': types[extname(path)] ?? 'application/octet-stream',
      'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp',
    });
    res.end(data);
  } catch {
    res.writeHead(404).end();
  }
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const url = `http://127.0.0.1:${server.address().port}/tools/browser/smoke.html`;
const profile = mkdtempSync(join(tmpdir(), 'llamatrain-chromium-'));
const browser = spawn(chromium, ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync', `--user-data-dir=${profile}`, url],
  { stdio: ['ignore', 'ignore', 'pipe'] });
let stderr = '';
browser.stderr.on('data', (d) => { stderr += d; });
const timeout = setTimeout(() => done({ ok: false, error: `no result within 120 s; chromium said:\n${stderr.slice(-2000)}` }), 120_000);
const r = await result;
clearTimeout(timeout);
console.log(JSON.stringify(r, null, 2));
const exited = new Promise((res) => browser.once('exit', res));
browser.kill();
await exited;
server.close();
rmSync(profile, { recursive: true, force: true, maxRetries: 5 });
process.exit(r.ok ? 0 : 1);
