// The playground in a real browser: headless Chromium (Debian's /usr/bin/chromium, or CHROMIUM=path) driven by
// playwright-core. It serves the built page (playground/dist) as `llamatrain playground` does, refuses bad input
// with messages, trains the tiny preset on the built-in Brown corpus for ≥ 30 steps, and checks the curves, the
// falling validation loss, the samples, that the loss anatomy's mean is the charted loss, pause/resume, the prompt
// box, that the exported zip loads in Node (loadPretrained), imports back into the page and fine-tunes from there,
// and how the page runs without cross-origin isolation. Screenshots go to dist/test-output/playground/. Skips,
// saying why, without a Chromium or without the built page.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { unzipSync } from 'fflate';
import { chromium, type Page } from 'playwright-core';
import { startPlaygroundServer, defaultPlaygroundDir } from '../../src/cli/playground.js';
import { LlamaForCausalLM, loadPretrained, loadTokenizerFile, tensor } from '../../src/node.js';

const chromiumPath = process.env.CHROMIUM ?? '/usr/bin/chromium';
const built = existsSync(join(defaultPlaygroundDir(), 'index.html'));
const skip = !existsSync(chromiumPath) ? `no Chromium at ${chromiumPath} (apt-get install chromium, or set CHROMIUM=path)`
  : !built ? 'the playground is not built (npm run build)' : false;
if (skip) console.log(`# playground browser test skipped: ${skip}`);

const outDir = join('dist', 'test-output', 'playground');

interface PageState {
  steps: { step: number; loss: number }[];
  evals: { step: number; loss: number; sample: string }[];
  anatomy: { step: number; mean: number; stepLoss: number | null; count: number } | null;
  state: string;
  chartPoints: { loss: number; val: number };
}
const pageState = (page: Page) => page.evaluate(() => {
  const p = (globalThis as unknown as { playground: PageState }).playground;
  return JSON.parse(JSON.stringify({ steps: p.steps, evals: p.evals, anatomy: p.anatomy, state: p.state, chartPoints: p.chartPoints })) as PageState;
});

/** Waits for the page's message box to say something matching `re`, then closes it. */
async function expectMessage(page: Page, re: RegExp): Promise<void> {
  const box = page.getByTestId('message');
  await box.waitFor({ state: 'visible', timeout: 10_000 });
  await page.waitForFunction((src) => new RegExp(src).test(document.querySelector('[data-testid=message]')!.textContent ?? ''), re.source, { timeout: 10_000 });
  await page.click('#message-close');
}

test('playground in Chromium: bad input, training on the Brown corpus, loss anatomy, export to a loadable HF folder', { skip, timeout: 240_000 }, async () => {
  mkdirSync(outDir, { recursive: true });
  const tmp = mkdtempSync(join(tmpdir(), 'llamatrain-pg-browser-'));
  const pg = await startPlaygroundServer({ port: 0 });
  const browser = await chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox'], headless: true });
  const errors: string[] = [];
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1700 }, acceptDownloads: true });
    page.on('pageerror', (e) => errors.push(e.message));
    const consoleErrors: string[] = [];
    page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
    await page.goto(`${pg.url}?threads=2`);
    await page.waitForFunction(() => /^backend: /.test(document.querySelector('[data-testid=backend]')!.textContent ?? ''));
    const backend = await page.getByTestId('backend').textContent();
    assert.match(backend!, /backend: wasm \(WebAssembly SIMD, 2 threads, cross-origin isolated\)/);

    // ---- bad input: each gives a message, and the page goes on working
    await page.setInputFiles('[data-testid=file-input]', { name: 'empty.txt', mimeType: 'text/plain', buffer: Buffer.alloc(0) });
    await expectMessage(page, /empty\.txt is empty \(0 bytes\)/);
    const binary = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) % 256));
    await page.setInputFiles('[data-testid=file-input]', { name: 'photo.txt', mimeType: 'text/plain', buffer: binary });
    await expectMessage(page, /photo\.txt does not look like text/);
    const big = join(tmp, 'big.txt');
    writeFileSync(big, '');
    truncateSync(big, 200 * 1024 * 1024); // sparse: 200 MB without writing them
    await page.setInputFiles('[data-testid=file-input]', big);
    await expectMessage(page, /big\.txt is 200\.0 MB; the playground takes text files up to 50\.0 MB/);
    await page.setInputFiles('[data-testid=file-input]', { name: 'bad.jsonl', mimeType: 'text/plain', buffer: Buffer.from('{"text": "fine"}\nnot json\n') });
    await expectMessage(page, /bad\.jsonl:2: invalid JSON on line 2/);
    const noConfig = join(tmp, 'not-a-model');
    mkdirSync(noConfig);
    writeFileSync(join(noConfig, 'model.safetensors'), Buffer.alloc(16));
    writeFileSync(join(noConfig, 'tokenizer.json'), '{}');
    await page.setInputFiles('[data-testid=import-input]', noConfig);
    await expectMessage(page, /not a Hugging Face model folder: it has no config\.json/);
    assert.ok(await page.locator('input[name=data][value=brown]').isChecked(), 'the data choice falls back to the built-in corpus');

    // ---- Generate before there is a model: a message, and no stack in the console (nothing went wrong in the code)
    await page.click('#generate');
    await expectMessage(page, /there is no model yet: start training \(or import a model\) first/);
    assert.deepEqual(consoleErrors, [], 'no console.error for a refusal the page explains');

    // ---- train the tiny preset on the Brown corpus
    assert.equal(await page.getByTestId('preset').inputValue(), 'tiny');
    await page.getByTestId('start').click();
    await page.waitForFunction(() => {
      const p = (globalThis as unknown as { playground: PageState }).playground;
      return p.steps.length >= 30 && p.evals.some((e) => e.step >= 30) && p.anatomy !== null;
    }, null, { timeout: 150_000, polling: 250 });
    const s = await pageState(page);
    await page.screenshot({ path: join(outDir, 'mid-training.png'), fullPage: true });
    assert.ok(s.chartPoints.loss >= 30 && s.chartPoints.val >= 4, `chart points: ${JSON.stringify(s.chartPoints)}`);
    assert.ok(s.steps.every((p, i) => p.step === i + 1 && Number.isFinite(p.loss)), 'one finite training loss per step, in order');
    const v0 = s.evals.find((e) => e.step === 0)!, v30 = s.evals.find((e) => e.step === 30)!;
    assert.ok(Math.abs(v0.loss - Math.log(512)) < 0.3, `the untrained model's validation loss ${v0.loss} is near ln V = ${Math.log(512).toFixed(3)}`);
    assert.ok(v30.loss < v0.loss - 0.3, `validation loss fell: ${v0.loss} at step 0 → ${v30.loss} at step 30`);
    const sample = await page.getByTestId('sample').textContent();
    assert.match(sample!, /step 30\s*The/, 'a sample of the evaluation at step 30, continuing the prompt "The"');
    // bytes that make no complete character (an untrained model's step-0 sample) show as ⟨XX⟩, never as �
    assert.ok(s.evals.every((e) => !e.sample.includes('\uFFFD')), `no U+FFFD in the samples: ${JSON.stringify(s.evals.map((e) => e.sample))}`);
    assert.ok(!(await page.getByTestId('anatomy').textContent())!.includes('\uFFFD'), 'nor in the anatomy\'s tokens');
    // the anatomy says how often it is redrawn, and its colour scale has numbers
    assert.match(await page.locator('#anatomy-summary').textContent() ?? '', /Redrawn every 2\.5 s of training/);
    assert.match(await page.getByTestId('anatomy-legend').textContent() ?? '', /0 .*6\.24 = ln 512 and above/s);
    // the anatomy: the mean of the per-token losses (reduction 'none') over the batch's counted targets is the step's loss
    const a = s.anatomy!;
    const stepLoss = s.steps.find((p) => p.step === a.step)!.loss;
    assert.equal(a.stepLoss, stepLoss);
    assert.ok(a.count > 900 && a.count < 8 * 128, `counted targets of a packed 8 × 128 batch: ${a.count}`);
    assert.ok(Math.abs(a.mean - stepLoss) < 1e-4, `anatomy mean ${a.mean} vs the step's loss ${stepLoss}`);
    const shown = Number(await page.getByTestId('anatomy-mean').textContent());
    assert.ok(Math.abs(shown - Number(await page.getByTestId('anatomy-step-loss').textContent())) <= 1.01e-4);
    assert.ok(await page.locator('[data-testid=anatomy] .tok.ignored').count() >= 1, 'the row shows at least one -100 target (its last position)');
    assert.equal(await page.getByTestId('step').textContent().then((t) => Number(t!.split('/')[0])) >= 30, true);
    assert.ok(Number(await page.getByTestId('val-loss').textContent()) > 0);

    // ---- pause and resume
    await page.getByTestId('pause').click();
    await page.waitForFunction(() => (globalThis as unknown as { playground: PageState }).playground.state === 'paused');
    const pausedAt = (await pageState(page)).steps.length;
    await page.waitForTimeout(1500);
    assert.equal((await pageState(page)).steps.length, pausedAt, 'no step while paused');
    await page.getByTestId('pause').click(); // now labelled Resume
    await page.waitForFunction((n) => (globalThis as unknown as { playground: PageState }).playground.steps.length > n + 2, pausedAt);

    // ---- the prompt box generates from the current weights
    await page.fill('#prompt', 'The jury said');
    await page.click('#generate');
    await page.waitForFunction(() => /^The jury said./s.test(document.querySelector('[data-testid=generated]')!.textContent ?? ''));

    // ---- export: a zip with a Hugging Face folder that Node loads
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByTestId('export').click()]);
    const zipPath = join(tmp, download.suggestedFilename());
    await download.saveAs(zipPath);
    const files = unzipSync(readFileSync(zipPath));
    assert.deepEqual(Object.keys(files).filter((f) => !f.endsWith('/')).sort(),
      ['llamatrain-model/config.json', 'llamatrain-model/model.safetensors', 'llamatrain-model/tokenizer.json', 'llamatrain-model/tokenizer_config.json']);
    for (const [name, bytes] of Object.entries(files)) {
      if (name.endsWith('/')) continue;
      mkdirSync(dirname(join(tmp, 'export', name)), { recursive: true });
      writeFileSync(join(tmp, 'export', name), bytes);
    }
    const dir = join(tmp, 'export', 'llamatrain-model');
    const model = await loadPretrained(dir);
    const tok = loadTokenizerFile(dir);
    assert.equal(model.config.hiddenSize, 64);
    assert.equal(model.config.numHiddenLayers, 2);
    assert.equal(model.config.vocabSize, tok.vocabSize);
    assert.match(await page.getByTestId('run-info').textContent() ?? '', new RegExp(`^${model.numParameters().toLocaleString('en')} parameters`));
    // trained weights, not the initial ones
    const init = new LlamaForCausalLM(model.config, { seed: 0 });
    const w = await model.model.embedTokens.weight.data(), w0 = await init.model.embedTokens.weight.data();
    let moved = 0;
    for (let i = 0; i < w.length; i++) moved = Math.max(moved, Math.abs(w[i]! - w0[i]!));
    assert.ok(moved > 1e-3, `the exported embeddings moved from their initial values (max |Δ| ${moved})`);
    // and the model scores text better than the initial one does
    const ids = tok.encode('The jury said that the city had been well run.');
    const x = tensor(Int32Array.from(ids), [1, ids.length], 'int32');
    const lossOf = async (m: LlamaForCausalLM) => (await m.forward(x, { labels: x }).loss!.data())[0]!;
    assert.ok(await lossOf(model) < (await lossOf(init)) - 0.3, 'the exported model predicts English better than an untrained one');

    // ---- stop; import the exported folder back (fine-tuning starts from it)
    await page.getByTestId('stop').click();
    await page.waitForFunction(() => (globalThis as unknown as { playground: PageState }).playground.state === 'stopped');
    await page.setInputFiles('[data-testid=import-input]', dir);
    await page.waitForFunction(() => /^Imported/.test(document.querySelector('[data-testid=import-info]')!.textContent ?? ''));
    assert.match(await page.getByTestId('import-info').textContent() ?? '', new RegExp(`${model.numParameters().toLocaleString('en')} parameters`));
    // fine-tuning the import starts where the exported model was, not from scratch
    await page.getByTestId('start').click();
    await page.waitForFunction(() => {
      const p = (globalThis as unknown as { playground: PageState }).playground;
      return p.evals.some((e) => e.step === 0) && p.steps.length >= 3;
    }, null, { timeout: 120_000, polling: 250 });
    const tuned = await pageState(page);
    const start = tuned.evals.find((e) => e.step === 0)!.loss;
    assert.ok(start < v0.loss - 0.3, `fine-tuning starts from the imported weights: validation loss ${start} at its step 0 (a new model: ${v0.loss})`);
    assert.match(await page.getByTestId('run-info').textContent() ?? '', /tokenizer: the imported model's tokenizer\.json \(512 tokens\)/);
    await page.getByTestId('stop').click();
    await page.waitForFunction(() => (globalThis as unknown as { playground: PageState }).playground.state === 'stopped');
    await page.screenshot({ path: join(outDir, 'after-import.png'), fullPage: true });
    assert.deepEqual(errors, [], 'no uncaught errors on the page');

    // ---- served without the isolation headers: one thread, and the page says why
    const plain = await startPlaygroundServer({ port: 0, isolation: false });
    try {
      const p2 = await browser.newPage();
      await p2.goto(`${plain.url}?threads=2`);
      await p2.waitForFunction(() => /^backend: /.test(document.querySelector('[data-testid=backend]')!.textContent ?? ''));
      assert.match(await p2.getByTestId('backend').textContent() ?? '', /backend: wasm \(WebAssembly SIMD, 1 thread, not cross-origin isolated\)/);
      assert.match(await p2.getByTestId('notes').textContent() ?? '', /not cross-origin isolated.*Cross-Origin-Opener-Policy: same-origin/);
      assert.match(await p2.getByTestId('notes').textContent() ?? '', /WebGPU: /);
      await p2.close();
    } finally {
      await plain.close();
    }
    console.log(`# playground screenshots: ${outDir}/mid-training.png, after-import.png; validation loss ${v0.loss.toFixed(3)} → ${v30.loss.toFixed(3)}`);
  } finally {
    await browser.close();
    await pg.close();
    rmSync(tmp, { recursive: true, force: true });
  }
});
