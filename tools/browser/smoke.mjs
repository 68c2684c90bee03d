// Browser checks (not part of `npm test`: they need a Chromium, e.g. Debian's `apt-get install -y chromium`).
// Serves the repository with the cross-origin isolation headers that SharedArrayBuffer needs, opens each page in
// headless Chromium, and waits for the page's Web Worker to POST its result:
//   wasm    tools/browser/smoke.html: the wasm backend started 2 threads in the browser, its matmul and a training
//           step (inside a step scope, resident tensors) matched the ref backend;
//   webgpu  tools/browser/webgpu.html: three training steps on the webgpu backend (navigator.gpu in a Worker;
//           headless Chromium gives a SwiftShader adapter with --enable-unsafe-webgpu) matched the ref backend.
//   npm run build && node tools/browser/smoke.mjs [--chromium /usr/bin/chromium] [--only wasm|webgpu]
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { extname, join, normalize } from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';

const root = new URL('../..', import.meta.url).pathname;
const argv = process.argv.slice(2);
const chromium = argv.includes('--chromium') ? argv[argv.indexOf('--chromium') + 1] : '/usr/bin/chromium';
const only = argv.includes('--only') ? argv[argv.indexOf('--only') + 1] : null;
const checks = [
  { name: 'wasm', page: 'smoke.html', flags: ['--disable-gpu'] },
  { name: 'webgpu', page: 'webgpu.html', flags: ['--enable-unsafe-webgpu'] },
].filter((c) => !only || c.name === only);
const types = { '.js': 'text/javascript', '.mjs': 'text/javascript', '.html': 'text/html', '.map': 'application/json' };

let done = () => {};
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
let allOk = true;
for (const check of checks) {
  const result = new Promise((resolve) => { done = resolve; });
  const url = `http://127.0.0.1:${server.address().port}/tools/browser/${check.page}`;
  const profile = mkdtempSync(join(tmpdir(), 'llamatrain-chromium-'));
  const browser = spawn(chromium, ['--headless', '--no-sandbox', ...check.flags, '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync', `--user-data-dir=${profile}`, url],
    { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  browser.stderr.on('data', (d) => { stderr += d; });
  const timeout = setTimeout(() => done({ ok: false, error: `no result within 300 s; chromium said:\n${stderr.slice(-2000)}` }), 300_000);
  const r = await result;
  clearTimeout(timeout);
  console.log(`${check.name}: ${JSON.stringify(r, null, 2)}`);
  allOk &&= r.ok;
  const exited = new Promise((res) => browser.once('exit', res));
  browser.kill();
  await exited;
  rmSync(profile, { recursive: true, force: true, maxRetries: 5 });
}
server.close();
process.exit(allOk ? 0 : 1);
