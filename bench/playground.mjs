// Tokens/s of the playground page vs the Node CLI, same model, same backend (wasm) and threads, in alternating
// rounds (the machine is shared: compare within a round). The page runs in headless Chromium (playwright-core).
// Both train the tiny preset (C 64, L 2, NH 4, FFN 192, V 512, B 8 × T 128) on the Brown corpus with a BPE trained
// on it, evaluating only at the start and the end. Two numbers each, over steps (skip, steps]:
//   step tok/s  the median of the Trainer's per-step tokens/s (what both show while training)
//   wall tok/s  tokens / wall time across those steps (includes everything between steps: the page's loss anatomy,
//               messages to the page; the CLI's progress and metrics file)
//   npm run build && node bench/playground.mjs [--rounds 3] [--steps 200] [--skip 20] [--threads 2]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { startPlaygroundServer } from '../dist/src/cli/playground.js';

const arg = (name, dflt) => { const i = process.argv.indexOf(`--${name}`); return i > 0 ? Number(process.argv[i + 1]) : dflt; };
const rounds = arg('rounds', 3), steps = arg('steps', 200), skip = arg('skip', 20), threads = arg('threads', 2);
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };

function cli() {
  const out = mkdtempSync(join(tmpdir(), 'llamatrain-bench-pg-'));
  const r = spawnSync(process.execPath, ['--max-semi-space-size=64', 'bin/llamatrain.js', 'train', '--backend=wasm', `--threads=${threads}`,
    '--dim=64', '--layers=2', '--heads=4', '--kv-heads=4', '--ffn=192', '--vocab-size=512', '--seq-len=128', '--batch-size=8',
    `--steps=${steps}`, '--warmup=20', `--eval-every=${steps * 10}`, '--eval-batches=4', '--checkpoint-every=0', '--progress=false', `--out=${out}`], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`llamatrain train failed:\n${r.stderr}`);
  const m = readFileSync(join(out, 'metrics.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)).filter((x) => x.type === 'train');
  rmSync(out, { recursive: true, force: true });
  const timed = m.filter((x) => x.step > skip);
  const first = m.find((x) => x.step === skip);
  const tokens = timed.reduce((n, x) => n + x.tokens, 0);
  return { step: median(timed.map((x) => x.tokensPerSec)), wall: (tokens * 1000) / (timed.at(-1).elapsedMs - first.elapsedMs) };
}

async function page(browser, url) {
  const p = await browser.newPage();
  await p.goto(`${url}?threads=${threads}&backend=wasm&preset=tiny`);
  await p.waitForFunction(() => /^backend: /.test(document.querySelector('[data-testid=backend]').textContent));
  const backend = await p.getByTestId('backend').textContent();
  if (!backend.includes(`${threads} thread`)) throw new Error(`the page runs ${backend}`);
  await p.fill('[data-testid=set-steps]', String(steps));
  await p.fill('[data-testid=set-evalEvery]', String(steps * 10));
  await p.getByTestId('start').click();
  await p.waitForFunction((n) => globalThis.playground.steps.length >= n, steps, { timeout: 600_000, polling: 500 });
  const pts = await p.evaluate(() => globalThis.playground.steps);
  await p.close();
  const timed = pts.filter((x) => x.step > skip);
  const first = pts.find((x) => x.step === skip);
  const tokens = timed.reduce((n, x) => n + x.tokens, 0);
  return { step: median(timed.map((x) => x.tokensPerSec)), wall: (tokens * 1000) / (timed.at(-1).t - first.t) };
}

const pg = await startPlaygroundServer({ port: 0 });
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args: ['--no-sandbox'] });
const rows = [];
try {
  for (let r = 1; r <= rounds; r++) {
    const c = cli();
    const b = await page(browser, pg.url);
    rows.push({ round: r, cli: c, page: b });
    console.log(`round ${r}: CLI ${Math.round(c.step)} step tok/s, ${Math.round(c.wall)} wall tok/s | page ${Math.round(b.step)} step tok/s, ` +
      `${Math.round(b.wall)} wall tok/s | page/CLI ${(b.step / c.step).toFixed(2)} (step), ${(b.wall / c.wall).toFixed(2)} (wall)`);
  }
} finally {
  await browser.close();
  await pg.close();
}
const ratio = (k) => median(rows.map((x) => x.page[k] / x.cli[k]));
console.log(`median page/CLI ratio over ${rounds} rounds: ${ratio('step').toFixed(2)} (step tok/s), ${ratio('wall').toFixed(2)} (wall tok/s)`);
