// The training worker: owns the backend, the data, the tokenizer, the model and the Trainer. The page sends
// requests (protocol.ts) and draws what comes back. All model work — training steps, evaluations, samples, the
// prompt box, export — runs one piece at a time through `serial` (the library's step scopes are a stack per backend),
// and the training loop yields to the event loop after every step, so pause / stop / generate are handled within a
// step.
import * as llamatrain from 'llamatrain';
import {
  AdamW, type Backend, ByteLevelBPE, type Batch, DataLoader, ArrayDataset, LRScheduler, LlamaForCausalLM, type PackedRow, type RawTensor,
  type TextTokenizer, Trainer, configFromHF, configToHF, crossEntropy, decayGroups, noGrad, openScope, packedCollate, parseSafetensors,
  registerWasmBackend, serializeSafetensors, setBackend, shiftLabels, tensor, toTensors, trainByteLevelBPE, wasmAvailable, wasmThreads,
  warmupCosine, withScope,
} from 'llamatrain';
import { loadTokenizer } from 'llamatrain/hf-tokenizer';
import { strToU8, zipSync } from 'fflate';
import { PeekingSource, type TextData, batchesOf, loadBrown, packTexts, tokenByteLengths, userText } from './corpus.js';
import { type Settings, dimsOf } from './presets.js';
import { ANATOMY_EVERY_MS, type Anatomy, type BackendChoice, type Event, type Request, type StepPoint } from './protocol.js';
import { readableText } from './text.js';

/** An error thrown on purpose, with a message for the page (no stack in the console: nothing went wrong in the code). */
class Refusal extends Error {}

const post = (e: Event, transfer: Transferable[] = []): void => (self as unknown as Worker).postMessage(e, transfer);

/** Runs model work one piece at a time, in order. */
class Serial {
  private tail: Promise<unknown> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const r = this.tail.then(fn);
    this.tail = r.catch(() => undefined);
    return r;
  }
}
const serial = new Serial();

/** A resolved promise that does not wait for a timer (setTimeout(0) is clamped to 4 ms when nested). */
const channel = new MessageChannel();
const waiting: (() => void)[] = [];
channel.port1.onmessage = () => waiting.shift()?.();
const yieldNow = (): Promise<void> => new Promise((r) => { waiting.push(r); channel.port2.postMessage(null); });

// ---- state ---------------------------------------------------------------------------------------------------

let backend: Backend | null = null;
/** The text to train on; null = the built-in Brown corpus (fetched once, on the first start, into `brown`). */
let data: TextData | null = null;
let brown: TextData | null = null;
let customTokenizer: { name: string; tok: TextTokenizer } | null = null;
let imported: { folder: string; model: LlamaForCausalLM; tok: TextTokenizer } | null = null;
/** The model trained last (or being trained), with its tokenizer: what generate and export use. */
let current: { model: LlamaForCausalLM; tok: TextTokenizer } | null = null;
let running = false;
let paused = false;
let stopRequested = false;
let resumeWaiter: (() => void) | null = null;

// ---- backend ---------------------------------------------------------------------------------------------------

type RegisterWebGPU = (opts?: Record<string, unknown>) => Promise<Backend>;
/** The WebGPU backend, when this build of the library exports one (feature-detected, so the page needs no change). */
// (esbuild's "will always be undefined" notice for it is silenced in tools/build-playground.mjs until it exists)
const registerWebGPUBackend = (llamatrain as unknown as Record<string, unknown>)['registerWebGPUBackend'] as RegisterWebGPU | undefined;

interface GPUAdapterLike { info?: { isFallbackAdapter?: boolean; vendor?: string; architecture?: string; description?: string }; isFallbackAdapter?: boolean }

async function webgpuBackend(notes: string[]): Promise<Backend | null> {
  if (!registerWebGPUBackend) {
    notes.push('WebGPU: this build of llamatrain has no WebGPU backend yet, so training runs on the CPU (WebAssembly).');
    return null;
  }
  const gpu = (navigator as unknown as { gpu?: { requestAdapter(o?: object): Promise<GPUAdapterLike | null> } }).gpu;
  if (!gpu) {
    notes.push('WebGPU: this browser has no navigator.gpu in workers (it is off, or not supported here); training runs on WebAssembly.');
    return null;
  }
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) {
    notes.push('WebGPU: the browser found no GPU adapter (no GPU, or its driver is blocked); training runs on WebAssembly.');
    return null;
  }
  if (adapter.info?.isFallbackAdapter || adapter.isFallbackAdapter) {
    notes.push('WebGPU: the only adapter is a software fallback (slower than WebAssembly on the CPU); training runs on WebAssembly.');
    return null;
  }
  try {
    return await registerWebGPUBackend({ adapter });
  } catch (e) {
    notes.push(`WebGPU: the backend did not start (${(e as Error).message}); training runs on WebAssembly.`);
    return null;
  }
}

async function init(choice: BackendChoice, threads: number): Promise<void> {
  const notes: string[] = [];
  const isolated = (self as unknown as { crossOriginIsolated?: boolean }).crossOriginIsolated === true;
  let b: Backend | null = null;
  if (choice === 'auto' || choice === 'webgpu') b = await webgpuBackend(notes);
  if (!b && choice !== 'ref') {
    if (wasmAvailable()) {
      if (!isolated) {
        notes.push('This page is not cross-origin isolated (it was served without the headers Cross-Origin-Opener-Policy: same-origin and ' +
          'Cross-Origin-Embedder-Policy: require-corp), so browsers turn SharedArrayBuffer off and WebAssembly runs on 1 thread. ' +
          '`npx llamatrain playground` serves it with them; on another static host, add the two headers.');
      }
      b = await registerWasmBackend({ threads: isolated ? Math.max(1, threads) : 1 });
    } else {
      notes.push('WebAssembly SIMD or shared memory is not available in this browser; training runs on the plain-TypeScript ref backend (slow).');
    }
  }
  b ??= llamatrain.refBackend;
  setBackend(b.name);
  backend = b;
  post({ type: 'ready', backend: b.name, threads: b.name === 'wasm' ? wasmThreads() : 1, isolated, notes });
}

// ---- data, tokenizer, import -------------------------------------------------------------------------------

function parseTokenizer(name: string, json: string): TextTokenizer {
  if (json.trim().length === 0) throw new Refusal(`${name} is empty (0 bytes); expected a Hugging Face tokenizer.json`);
  let obj: unknown;
  try {
    obj = JSON.parse(json);
  } catch (e) {
    throw new Refusal(`${name}: not valid JSON (${(e as Error).message}); expected a Hugging Face tokenizer.json`);
  }
  try {
    return ByteLevelBPE.fromJSON(obj); // ours (exact byte lengths for bits per byte)
  } catch {
    try {
      return loadTokenizer(obj, undefined, name);
    } catch (e) {
      throw new Refusal(`${name}: not a tokenizer.json this page can load (${(e as Error).message})`);
    }
  }
}

const decodeUtf8 = (b: Uint8Array): string => new TextDecoder().decode(b);

function importFolder(files: Extract<Request, { type: 'import' }>['files']): void {
  let json: unknown;
  try {
    json = JSON.parse(decodeUtf8(files.config));
  } catch (e) {
    throw new Refusal(`${files.folder}/config.json: not valid JSON (${(e as Error).message})`);
  }
  const config = configFromHF(json, `${files.folder}/config.json`);
  const tensors = new Map<string, RawTensor>();
  for (const w of files.weights) for (const [n, t] of parseSafetensors(w.bytes, `${files.folder}/${w.name}`).tensors) tensors.set(n, t);
  if (files.index) {
    const idx = JSON.parse(decodeUtf8(files.index)) as { weight_map?: Record<string, string> };
    const want = new Set(Object.values(idx.weight_map ?? {}));
    const have = new Set(files.weights.map((w) => w.name.slice(w.name.lastIndexOf('/') + 1)));
    const lacking = [...want].filter((f) => !have.has(f));
    if (lacking.length) throw new Refusal(`${files.folder}: model.safetensors.index.json names ${lacking.join(', ')}, which the folder lacks`);
  }
  const tok = parseTokenizer(`${files.folder}/tokenizer.json`, decodeUtf8(files.tokenizer));
  if (config.vocabSize < tok.vocabSize) {
    throw new Refusal(`${files.folder}: config.json's vocab_size (${config.vocabSize}) is smaller than tokenizer.json's ${tok.vocabSize} tokens; they do not belong together`);
  }
  const model = new LlamaForCausalLM(config, { backend: backend! });
  model.loadStateDict(tensors, { source: files.folder, ignorable: config.tieWordEmbeddings ? ['lm_head.weight'] : [] });
  imported = { folder: files.folder, model, tok };
  current = { model, tok };
  post({ type: 'imported', folder: files.folder, parameters: model.numParameters(), config: configToHF(config), vocabSize: tok.vocabSize });
}

// ---- training ----------------------------------------------------------------------------------------------

/** The per-token loss of `batch` (the library's crossEntropy with reduction 'none' on the model's logits), row `row` described. */
async function anatomyOf(model: LlamaForCausalLM, tok: TextTokenizer, batch: Batch, step: number, row: number): Promise<Anatomy> {
  const [B, T] = batch.shape;
  const targets = shiftLabels(batch.labels, B, T); // [B, T] next-token targets, -100 where not counted
  const scope = openScope(model.backend);
  let losses: Float32Array;
  try {
    const t = toTensors(batch, model.backend);
    const per = noGrad(() => {
      const { logits } = model.forward(t.inputIds, { attentionMask: t.attentionMask, positionIds: t.positionIds, documentIds: t.documentIds });
      return crossEntropy(logits, tensor(targets, [B, T], 'int32', model.backend), { reduction: 'none' }); // [B, T]
    });
    losses = Float32Array.from(await per.data());
  } finally {
    scope.close();
  }
  const o = row * T;
  const inputIds = Array.from(batch.inputIds.subarray(o, o + T));
  const rowTargets = Array.from(targets.subarray(o, o + T));
  const reason = rowTargets.map((y, t) => {
    if (y !== -100) return '';
    if (t === T - 1) return 'end';
    if ((batch.documentIds?.[o + t + 1] ?? 0) < 0) return 'padding';
    return 'boundary';
  });
  const text = (id: number) => (id < 0 ? '' : readableText(tok, [id])); // a byte of a split character: ⟨E2⟩, not �
  return { step, B, T, row, inputIds, inputText: inputIds.map(text), targets: rowTargets, targetText: rowTargets.map(text), reason, losses, batchTargets: targets };
}

async function sampleFrom(model: LlamaForCausalLM, tok: TextTokenizer, prompt: string, o: { temperature: number; topK: number; maxNewTokens: number; seed: number }): Promise<string> {
  const ids = tok.encode(prompt);
  if (ids.length === 0) throw new Refusal('the prompt encodes to no tokens; type some text');
  const limit = model.config.maxPositionEmbeddings;
  const prompted = ids.slice(-Math.max(1, limit - o.maxNewTokens));
  return withScope(model.backend, async () => {
    const out = await model.generate(tensor(Int32Array.from(prompted), [1, prompted.length], 'int32', model.backend),
      { maxNewTokens: o.maxNewTokens, temperature: o.temperature, topK: o.topK, seed: o.seed, eosTokenId: tok.eosId });
    return readableText(tok, Array.from(await out.data())); // whole sequence; bytes of no complete character as ⟨XX⟩
  });
}

function postData(d: TextData): void {
  post({ type: 'data', source: d.source, documents: d.train.length + d.validation.length, chars: [...d.train, ...d.validation].reduce((n, x) => n + x.length, 0),
    trainDocs: d.train.length, validationDocs: d.validation.length });
}


function setState(state: Extract<Event, { type: 'state' }>['state']): void {
  post({ type: 'state', state });
}

async function train(settings: Settings, samplePrompt: string): Promise<void> {
  running = true; paused = false; stopRequested = false;
  setState('preparing');
  let finished = false;
  try {
    const progress = (phase: string) => (done: number, total: number) => post({ type: 'progress', phase, done, total });
    if (!data && !brown) {
      brown = await loadBrown(progress('loading the Brown corpus'));
      postData(brown);
    }
    const text = data ?? brown!;
    let tok: TextTokenizer;
    let tokName: string;
    if (imported) { tok = imported.tok; tokName = `the imported model's tokenizer.json (${tok.vocabSize.toLocaleString('en')} tokens)`; }
    else if (customTokenizer) { tok = customTokenizer.tok; tokName = `${customTokenizer.name} (${tok.vocabSize.toLocaleString('en')} tokens)`; }
    else {
      post({ type: 'progress', phase: 'training the BPE tokenizer', done: 0, total: settings.vocabSize });
      await yieldNow();
      tok = trainByteLevelBPE(text.train, { vocabSize: settings.vocabSize, onProgress: (d, t) => post({ type: 'progress', phase: 'training the BPE tokenizer', done: 256 + d, total: 256 + t }) });
      tokName = `a byte-level BPE trained here (${tok.vocabSize.toLocaleString('en')} tokens)`;
    }
    if (stopRequested) return;
    const bytesOf = tokenByteLengths(tok);
    const trainRows: PackedRow[] = await packTexts(tok, text.train, settings.seqLen, progress('tokenizing the training text'));
    const valRows: PackedRow[] = await packTexts(tok, text.validation, settings.seqLen, progress('tokenizing the validation text'));
    if (stopRequested) return;
    if (trainRows.length < settings.batchSize) {
      throw new Refusal(`the training text makes ${trainRows.length} row(s) of ${settings.seqLen} tokens, fewer than one batch of ${settings.batchSize}: ` +
        'give more text, or lower the batch size or the sequence length');
    }
    const model = imported ? imported.model : new LlamaForCausalLM({
      ...dimsOf(settings, tok.vocabSize), maxPositionEmbeddings: settings.seqLen, bosTokenId: tok.bosId ?? null, eosTokenId: tok.eosId ?? null,
      padTokenId: null, rmsNormEps: 1e-5,
    }, { seed: 0, backend: backend! });
    current = { model, tok };
    const loader = new DataLoader({ dataset: new ArrayDataset(trainRows), batchSize: settings.batchSize, shuffle: true, seed: 0, dropLast: true, collate: packedCollate });
    const source = new PeekingSource(loader, bytesOf);
    const optimizer = new AdamW(decayGroups(model.namedParameters(), 0.1), { lr: settings.lr, betas: [0.9, 0.95], eps: 1e-8 });
    const scheduler = new LRScheduler(optimizer, warmupCosine({ warmupSteps: settings.warmup, totalSteps: settings.steps, minLrRatio: 0.1 }));
    const trainer = new Trainer({
      model, optimizer, scheduler, train: source, maxSteps: settings.steps, clipGradNorm: 1,
      evalData: () => batchesOf(valRows, settings.batchSize, bytesOf, settings.evalBatches),
    });
    const c = model.config;
    post({ type: 'started', parameters: model.numParameters(), vocabSize: tok.vocabSize, trainRows: trainRows.length, validationRows: valRows.length,
      stepsPerEpoch: loader.length, tokenizer: tokName,
      dims: `C=${c.hiddenSize}, L=${c.numHiddenLayers}, NH=${c.numAttentionHeads}, NKV=${c.numKeyValueHeads}, FFN=${c.intermediateSize}, V=${c.vocabSize}, T=${settings.seqLen}, B=${settings.batchSize}` });
    setState('training');

    let sampleSeed = 1;
    const evaluateNow = () => serial.run(async () => {
      const r = await trainer.runEval();
      const sample = await sampleFrom(model, tok, samplePrompt || 'The', { temperature: 0.8, topK: 40, maxNewTokens: 40, seed: sampleSeed++ });
      post({ type: 'eval', step: r.step, loss: r.loss, bpb: r.bitsPerByte, perplexity: r.perplexity, sample });
    });
    await evaluateNow(); // step 0: where the loss starts

    let pending: StepPoint[] = [];
    let lastFlush = performance.now(), lastAnatomy = -Infinity;
    const flush = () => { if (pending.length) post({ type: 'steps', points: pending }); pending = []; lastFlush = performance.now(); };
    while (trainer.step < settings.steps && !stopRequested) {
      if (paused) {
        flush();
        setState('paused');
        await new Promise<void>((r) => { resumeWaiter = r; });
        if (stopRequested) break;
        setState('training');
      }
      await serial.run(async () => {
        const batch = source.peek();
        const t0 = performance.now();
        const anatomy = t0 - lastAnatomy >= ANATOMY_EVERY_MS ? await anatomyOf(model, tok, batch, trainer.step + 1, 0) : null;
        const t1 = performance.now();
        const m = await trainer.trainStep();
        if (!m) return;
        const bytes = batch.targetBytes ?? 0;
        pending.push({ step: m.step, loss: m.loss, lr: m.lr, gradNorm: m.gradNorm, tokensPerSec: m.tokensPerSec, ms: performance.now() - t1, t: performance.now(), tokens: m.tokens,
          bpb: bytes > 0 ? (m.loss * m.targets) / Math.LN2 / bytes : null });
        if (anatomy) {
          lastAnatomy = t0;
          flush(); // the step's point first: the anatomy is compared with it
          post({ type: 'anatomy', anatomy }, [anatomy.losses.buffer, anatomy.batchTargets.buffer]);
        }
      });
      if (trainer.step % settings.evalEvery === 0 || trainer.step === settings.steps) { flush(); await evaluateNow(); }
      if (performance.now() - lastFlush >= 200) flush();
      await yieldNow(); // let pause / stop / generate / export in
    }
    flush();
    finished = !stopRequested;
  } finally {
    running = false;
    resumeWaiter = null;
    setState(finished ? 'done' : stopRequested ? 'stopped' : 'idle');
  }
}

// ---- export ------------------------------------------------------------------------------------------------

async function exportZip(): Promise<void> {
  if (!current) throw new Refusal('there is no model to export yet: start training (or import a model) first');
  const { model, tok } = current;
  const entries: [string, RawTensor][] = [];
  for (const [name, p] of model.namedParameters()) entries.push([name, { dtype: 'float32', shape: [...p.shape], data: Float32Array.from(await p.data() as Float32Array) }]);
  const weights = serializeSafetensors(entries, { metadata: { format: 'pt' } });
  const tokJson = tok instanceof ByteLevelBPE ? tok.toJSON() : (tok as unknown as { json: unknown }).json;
  const tokConfig = tok instanceof ByteLevelBPE ? tok.tokenizerConfig() : (tok as unknown as { config: unknown }).config;
  const json = (x: unknown) => strToU8(JSON.stringify(x, null, 2) + '\n');
  const folder = 'llamatrain-model';
  const zip = zipSync({
    [folder]: {
      'config.json': json(configToHF(model.config)),
      'model.safetensors': [weights, { level: 0 }], // float32 weights hardly compress; storing them is instant
      'tokenizer.json': json(tokJson),
      'tokenizer_config.json': json(tokConfig ?? {}),
    },
  });
  post({ type: 'exported', zip, name: `${folder}.zip` }, [zip.buffer]);
}

// ---- requests ----------------------------------------------------------------------------------------------

const errorOf = (e: unknown): string => (e instanceof Error ? e.message : String(e));

async function handle(req: Request): Promise<void> {
  switch (req.type) {
    case 'init':
      if (running) throw new Refusal('stop training before changing the backend');
      await init(req.backend, req.threads);
      return;
    case 'data': {
      if (running) throw new Refusal('stop training before changing the data');
      if (req.source.kind === 'brown') {
        data = null;
        if (brown) postData(brown);
        else post({ type: 'data', source: 'the Brown corpus (loaded when training starts)', documents: 500, chars: 0, trainDocs: 475, validationDocs: 25 });
        return;
      }
      data = userText(req.source);
      postData(data);
      return;
    }
    case 'tokenizer': {
      const tok = parseTokenizer(req.name, req.json);
      customTokenizer = { name: req.name, tok };
      post({ type: 'tokenizer', name: req.name, vocabSize: tok.vocabSize });
      return;
    }
    case 'clearTokenizer': customTokenizer = null; return;
    case 'start':
      if (running) throw new Refusal('training is already running');
      if (!backend) await init('auto', navigator.hardwareConcurrency || 1);
      await train(req.settings, req.samplePrompt);
      return;
    case 'pause': paused = true; return;
    case 'resume': paused = false; resumeWaiter?.(); resumeWaiter = null; return;
    case 'stop': stopRequested = true; paused = false; resumeWaiter?.(); resumeWaiter = null; if (running) setState('stopping'); return;
    case 'generate': {
      if (!current) throw new Refusal('there is no model yet: start training (or import a model) first');
      const { model, tok } = current;
      const text = await serial.run(() => sampleFrom(model, tok, req.prompt, { temperature: req.temperature, topK: req.topK, maxNewTokens: req.maxNewTokens, seed: req.id }));
      post({ type: 'generated', id: req.id, text });
      return;
    }
    case 'export': await serial.run(exportZip); return;
    case 'import':
      if (running) throw new Refusal('stop training before importing a model');
      await serial.run(async () => importFolder(req.files));
      return;
    case 'clearImport': if (running) throw new Refusal('stop training first'); imported = null; return;
  }
}

self.onmessage = (e: MessageEvent<Request>) => {
  const req = e.data;
  handle(req).catch((err) => {
    // a stack only for what the page did not expect: not for a refusal of its own, nor a library error about the input
    if (!(err instanceof Refusal) && !(err instanceof llamatrain.LlamatrainError)) console.error(err);
    post({ type: 'error', message: errorOf(err), during: req.type });
  });
};
