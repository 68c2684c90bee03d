// Runs every compiled test file (dist/test/**/*.test.js) with Node's built-in test runner.
// Node 20's `--test` takes no globs, so the file list is built here. Extra args filter by substring.
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? walk(p) : p.endsWith('.test.js') ? [p] : [];
  });
}
const filters = process.argv.slice(2);
const files = walk('dist/test').filter((f) => filters.length === 0 || filters.some((s) => f.includes(s))).sort();
if (files.length === 0) {
  console.error('run-tests: no test files found under dist/test (did `npm run build` run?)');
  process.exit(1);
}
// The webgpu backend's tests need a WebGPU adapter. On a machine without a GPU, Debian's chromium package ships
// SwiftShader's Vulkan driver: point the Vulkan loader of the test process (only) at it, unless the environment
// already chooses a driver. Without it the webgpu suite skips itself and says why.
const env = { ...process.env };
const swiftshader = '/usr/lib/chromium/vk_swiftshader_icd.json';
if (!env.VK_ICD_FILENAMES && !env.VK_DRIVER_FILES && existsSync(swiftshader)) env.VK_ICD_FILENAMES = swiftshader;
// Dawn prints `error: XDG_RUNTIME_DIR is invalid or not set` when the variable is missing or not a private directory
// of this user (a container, CI, a root shell): give the test process one of its own, removed afterwards.
let runtimeDir = null;
const ownPrivateDir = (d) => { try { const s = statSync(d); return s.isDirectory() && (s.mode & 0o077) === 0 && s.uid === process.getuid?.(); } catch { return false; } };
if (!env.XDG_RUNTIME_DIR || !ownPrivateDir(env.XDG_RUNTIME_DIR)) {
  runtimeDir = mkdtempSync(join(tmpdir(), 'llamatrain-xdg-'));
  chmodSync(runtimeDir, 0o700);
  env.XDG_RUNTIME_DIR = runtimeDir;
}
const r = spawnSync(process.execPath, ['--test', '--test-reporter=spec', ...files], { stdio: 'inherit', env });
if (runtimeDir) rmSync(runtimeDir, { recursive: true, force: true });
process.exit(r.status ?? 1);
