// The playground page: settings, controls, live numbers, charts, the loss anatomy, samples, the prompt box, export
// and import. Training happens in worker.ts (a module Web Worker); this thread only draws, so it stays responsive.
import './style.css';
import { Curve } from './charts.js';
import { countedMean, renderRow } from './anatomy.js';
import { binaryReason, checkPastedText, checkTextFile, mb, planFolder, type FolderEntry } from './inputs.js';
import { PRESETS, type PresetName, type Settings, checkSettings, compactCount, dimsOf, ffnWidth, parameterCount } from './presets.js';
import { ANATOMY_EVERY_MS, type Anatomy, type BackendChoice, type Event, type Request, type StepPoint } from './protocol.js';

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`playground: #${id} is missing from the page`);
  return el as T;
};
const fmt = (x: number | null | undefined, d = 4): string => (x == null || !Number.isFinite(x) ? '–' : x.toFixed(d));

// ---- messages ------------------------------------------------------------------------------------------------

function message(text: string, kind: 'error' | 'ok' = 'error'): void {
  const box = $('message');
  $('message-text').textContent = text;
  box.classList.toggle('ok', kind === 'ok');
  box.hidden = false;
}
$('message-close').onclick = () => { $('message').hidden = true; };

// ---- the worker ----------------------------------------------------------------------------------------------

let worker: Worker;
function startWorker(): void {
  worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
  worker.onmessage = (e: MessageEvent<Event>) => onEvent(e.data);
  worker.onerror = (e) => {
    message(`The training worker failed: ${e.message || 'unknown error'} (it was restarted; start again).`);
    worker.terminate();
    setState('idle');
    startWorker();
    initBackend();
  };
}
const send = (r: Request, transfer: Transferable[] = []): void => worker.postMessage(r, transfer);

// ---- settings ------------------------------------------------------------------------------------------------

const FIELDS: { key: keyof Settings; label: string; step?: string }[] = [
  { key: 'vocabSize', label: 'vocabulary V' }, { key: 'dim', label: 'hidden size C' }, { key: 'layers', label: 'layers L' },
  { key: 'heads', label: 'heads NH' }, { key: 'kvHeads', label: 'KV heads NKV' }, { key: 'ffn', label: 'SwiGLU width (0 = 8/3·C)' },
  { key: 'seqLen', label: 'sequence length T' }, { key: 'batchSize', label: 'batch size B' }, { key: 'steps', label: 'steps' },
  { key: 'lr', label: 'learning rate', step: 'any' }, { key: 'warmup', label: 'warmup steps' }, { key: 'evalEvery', label: 'evaluate every' },
  { key: 'evalBatches', label: 'eval batches' }, { key: 'tie', label: 'tie head to embeddings' },
];
const MODEL_KEYS = new Set<keyof Settings>(['vocabSize', 'dim', 'layers', 'heads', 'kvHeads', 'ffn', 'tie']);
const inputs = new Map<keyof Settings, HTMLInputElement>();

const presetSel = $<HTMLSelectElement>('preset');
for (const [name, p] of Object.entries(PRESETS)) {
  const opt = document.createElement('option');
  opt.value = name;
  opt.textContent = `${p.label} (${compactCount(parameterCount(dimsOf(p.settings)))} parameters)`;
  presetSel.append(opt);
}
presetSel.append(Object.assign(document.createElement('option'), { value: 'custom', textContent: 'custom' }));
for (const f of FIELDS) {
  const label = document.createElement('label');
  label.textContent = f.label;
  const input = document.createElement('input');
  input.id = `set-${f.key}`;
  input.dataset.testid = `set-${f.key}`;
  if (f.key === 'tie') input.type = 'checkbox';
  else { input.type = 'number'; input.step = f.step ?? '1'; input.min = '0'; }
  input.oninput = () => { presetSel.value = 'custom'; refreshSettings(); };
  label.append(input);
  $('dims').append(label);
  inputs.set(f.key, input);
}
function applyPreset(name: PresetName): void {
  const s = PRESETS[name].settings;
  for (const [k, input] of inputs) {
    if (k === 'tie') input.checked = s.tie;
    else input.value = String(s[k]);
  }
  refreshSettings();
}
presetSel.onchange = () => { if (presetSel.value !== 'custom') applyPreset(presetSel.value as PresetName); };

function readSettings(): Settings {
  const s = {} as Record<string, number | boolean>;
  for (const [k, input] of inputs) s[k] = k === 'tie' ? input.checked : input.value.trim() === '' ? NaN : Number(input.value);
  return s as unknown as Settings;
}

let imported: { parameters: number; vocabSize: number; config: Record<string, unknown> } | null = null;
let customTokenizer: { name: string; vocabSize: number } | null = null;

function refreshSettings(): string[] {
  const s = readSettings();
  const problems = checkSettings(s);
  for (const k of MODEL_KEYS) inputs.get(k)!.disabled = imported !== null;
  if (imported) {
    $('params').textContent = `${imported.parameters.toLocaleString('en')} (the imported model)`;
  } else if (problems.length === 0) {
    const V = customTokenizer?.vocabSize ?? s.vocabSize;
    $('params').textContent = `${parameterCount(dimsOf(s, V)).toLocaleString('en')} (${compactCount(parameterCount(dimsOf(s, V)))}; SwiGLU width ${ffnWidth(s)})`;
  } else {
    $('params').textContent = '–';
  }
  inputs.get('vocabSize')!.disabled = imported !== null || customTokenizer !== null;
  $('settings-problems').textContent = problems.join('; ');
  return problems;
}

// ---- backend -------------------------------------------------------------------------------------------------

const params = new URLSearchParams(location.search);
const threadsInput = $<HTMLInputElement>('threads');
threadsInput.value = params.get('threads') ?? String(Math.max(1, navigator.hardwareConcurrency || 1));
const backendSel = $<HTMLSelectElement>('backend-choice');
backendSel.value = params.get('backend') ?? 'auto';
function initBackend(): void {
  $('backend').textContent = 'starting the backend…';
  send({ type: 'init', backend: backendSel.value as BackendChoice, threads: Math.max(1, Math.floor(Number(threadsInput.value) || 1)) });
}
backendSel.onchange = initBackend;
threadsInput.onchange = initBackend;

// ---- data ----------------------------------------------------------------------------------------------------

const dataRadio = (v: string) => document.querySelector<HTMLInputElement>(`input[name=data][value=${v}]`)!;
for (const r of document.querySelectorAll<HTMLInputElement>('input[name=data]')) {
  r.onchange = () => { if (r.value === 'brown' && r.checked) send({ type: 'data', source: { kind: 'brown' } }); };
}
let lastGoodData = 'brown';

async function useFile(file: File): Promise<void> {
  const checked = checkTextFile(file.name, file.size);
  if ('error' in checked) throw new Error(checked.error);
  const head = new Uint8Array(await file.slice(0, 65536).arrayBuffer());
  const why = binaryReason(file.name, head);
  if (why) throw new Error(why);
  const text = await file.text();
  send({ type: 'data', source: { kind: 'file', name: file.name, format: checked.kind, text, field: $<HTMLInputElement>('jsonl-field').value.trim() || 'text' } });
  dataRadio('file').checked = true;
}
const fileInput = $<HTMLInputElement>('file-input');
fileInput.onchange = () => {
  const f = fileInput.files?.[0];
  fileInput.value = '';
  if (f) useFile(f).catch((e) => { message((e as Error).message); dataRadio(lastGoodData).checked = true; });
};
const drop = $('drop');
drop.ondragover = (e) => { e.preventDefault(); drop.classList.add('over'); };
drop.ondragleave = () => drop.classList.remove('over');
drop.ondrop = (e) => {
  e.preventDefault();
  drop.classList.remove('over');
  const files = e.dataTransfer?.files;
  if (!files || files.length === 0) { message('Nothing was dropped: drop one .txt or .jsonl file.'); return; }
  if (files.length > 1) { message(`${files.length} files were dropped; drop one .txt or .jsonl file.`); return; }
  useFile(files[0]!).catch((e2) => message((e2 as Error).message));
};
$('use-paste').onclick = () => {
  const text = $<HTMLTextAreaElement>('paste').value;
  const why = checkPastedText(text);
  if (why) { message(why); return; }
  send({ type: 'data', source: { kind: 'paste', text } });
  dataRadio('paste').checked = true;
};

// tokenizer.json
const tokInput = $<HTMLInputElement>('tokenizer-input');
tokInput.onchange = async () => {
  const f = tokInput.files?.[0];
  tokInput.value = '';
  if (!f) return;
  if (f.size > 50 * 1024 * 1024) { message(`${f.name} is ${mb(f.size)}; a tokenizer.json of at most 50 MB is expected.`); return; }
  send({ type: 'tokenizer', name: f.name, json: await f.text() });
};
$('tok-clear').onclick = () => {
  customTokenizer = null;
  send({ type: 'clearTokenizer' });
  $('tok-info').textContent = 'A byte-level BPE is trained on the training text when you start (vocabulary below).';
  $('tok-clear').hidden = true;
  refreshSettings();
};

// Hugging Face folder
const importInput = $<HTMLInputElement>('import-input');
importInput.onchange = async () => {
  const files = [...(importInput.files ?? [])];
  importInput.value = '';
  try {
    const entries: FolderEntry[] = files.map((f) => ({ path: f.webkitRelativePath || f.name, size: f.size }));
    const planned = planFolder(entries);
    if ('error' in planned) throw new Error(planned.error);
    const { plan } = planned;
    const byPath = new Map(files.map((f) => [f.webkitRelativePath || f.name, f]));
    const read = async (p: string) => new Uint8Array(await byPath.get(p)!.arrayBuffer());
    const folder = plan.config.includes('/') ? plan.config.slice(0, plan.config.lastIndexOf('/')) : 'the folder';
    $('import-info').textContent = `reading ${folder}…`;
    const weights = await Promise.all(plan.weights.map(async (p) => ({ name: p, bytes: await read(p) })));
    const msg = {
      config: await read(plan.config), weights, index: plan.index ? await read(plan.index) : null, tokenizer: await read(plan.tokenizer),
      tokenizerConfig: plan.tokenizerConfig ? await read(plan.tokenizerConfig) : null, folder,
    };
    send({ type: 'import', files: msg }, [msg.config.buffer, ...weights.map((w) => w.bytes.buffer), msg.tokenizer.buffer]);
  } catch (e) {
    $('import-info').textContent = '';
    message((e as Error).message);
  }
};
$('import-clear').onclick = () => {
  imported = null;
  send({ type: 'clearImport' });
  $('import-info').textContent = '';
  $('import-clear').hidden = true;
  refreshSettings();
};

// ---- training controls ---------------------------------------------------------------------------------------

type State = Extract<Event, { type: 'state' }>['state'];
let state: State = 'idle';
let totalSteps = 0;
let startedAt = 0, stepsAtStart = 0;
const steps: StepPoint[] = [];
const evals: { step: number; loss: number; bpb: number | null; sample: string }[] = [];
let lastAnatomy: { step: number; mean: number; stepLoss: number | null; count: number } | null = null;
const lossCurve = new Curve($('loss-chart'), 'loss (cross-entropy, nats per token)', 'loss (nats)', ['train loss', 'validation loss']);
const bpbCurve = new Curve($('bpb-chart'), 'bits per byte of text', 'bits per byte', ['train bits/byte', 'validation bits/byte']);

function setState(s: State): void {
  state = s;
  const busy = s === 'preparing' || s === 'training' || s === 'paused' || s === 'stopping';
  $<HTMLButtonElement>('start').disabled = busy;
  $<HTMLButtonElement>('pause').disabled = !(s === 'training' || s === 'paused');
  $('pause').textContent = s === 'paused' ? 'Resume' : 'Pause';
  $<HTMLButtonElement>('stop').disabled = !busy || s === 'stopping';
  $('state').textContent = s;
  for (const el of document.querySelectorAll<HTMLInputElement | HTMLSelectElement | HTMLButtonElement>('#data-panel input, #data-panel button, #data-panel textarea, #preset, #import-input, #backend-choice, #threads')) el.disabled = busy;
  if (!busy) refreshSettings();
  else for (const input of inputs.values()) input.disabled = true;
  if (s !== 'preparing') $('progress').hidden = true;
}

$('start').onclick = () => {
  const problems = refreshSettings();
  if (problems.length) { message(`Fix the model settings first: ${problems.join('; ')}.`); return; }
  $('message').hidden = true;
  const s = readSettings();
  totalSteps = s.steps;
  steps.length = 0; evals.length = 0; lastAnatomy = null;
  lossCurve.reset(); bpbCurve.reset();
  $('samples').replaceChildren();
  $('anatomy').replaceChildren();
  for (const id of ['step', 'train-loss', 'val-loss', 'val-bpb', 'tps', 'eta', 'lr', 'anatomy-mean', 'anatomy-step-loss', 'anatomy-row-mean']) $(id).textContent = '–';
  $('anatomy-summary').textContent = 'Starts with the first step.';
  setState('preparing');
  send({ type: 'start', settings: s, samplePrompt: $<HTMLInputElement>('sample-prompt').value });
};
$('pause').onclick = () => send({ type: state === 'paused' ? 'resume' : 'pause' });
$('stop').onclick = () => send({ type: 'stop' });
$('export').onclick = () => { $('export').textContent = 'Exporting…'; send({ type: 'export' }); };

let generateId = 0;
$('generate').onclick = () => {
  const prompt = $<HTMLTextAreaElement>('prompt').value;
  if (prompt.trim() === '') { message('Type a prompt to continue.'); return; }
  $('generated').textContent = 'generating…';
  send({ type: 'generate', id: ++generateId, prompt, temperature: Number($<HTMLInputElement>('temperature').value) || 0,
    topK: Math.max(0, Math.floor(Number($<HTMLInputElement>('topk').value) || 0)),
    maxNewTokens: Math.min(512, Math.max(1, Math.floor(Number($<HTMLInputElement>('max-tokens').value) || 60))) });
};

// ---- events from the worker ----------------------------------------------------------------------------------

const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[Math.floor(s.length / 2)]! : NaN; };
const duration = (s: number): string => (s < 90 ? `${Math.round(s)} s` : s < 5400 ? `${Math.round(s / 60)} min` : `${(s / 3600).toFixed(1)} h`);
let vocabForScale = 512;

function showAnatomy(a: Anatomy): void {
  const batch = countedMean(a.losses, a.batchTargets);
  const rowMean = countedMean(a.losses, a.batchTargets, a.row * a.T, (a.row + 1) * a.T);
  const point = steps.find((p) => p.step === a.step);
  lastAnatomy = { step: a.step, mean: batch.mean, stepLoss: point?.loss ?? null, count: batch.count };
  $('anatomy-mean').textContent = fmt(batch.mean);
  $('anatomy-step-loss').textContent = fmt(point?.loss);
  $('anatomy-row-mean').textContent = `${fmt(rowMean.mean)} over ${rowMean.count} targets`;
  const ignored = a.targets.filter((y) => y === -100).length;
  $('anatomy-summary').textContent = `Step ${a.step}: row ${a.row + 1} of ${a.B} (T = ${a.T}); ${a.T - ignored} of its targets count, ${ignored} are −100. ` +
    `The batch has ${batch.count.toLocaleString('en')} counted targets of ${(a.B * a.T).toLocaleString('en')} positions. ` +
    `Redrawn every ${ANATOMY_EVERY_MS / 1000} s of training (it costs a forward pass of the batch), so a fast run moves on many steps in between.`;
  const scale = Math.log(vocabForScale);
  $('anatomy-scale').textContent = `${scale.toFixed(2)} = ln ${vocabForScale.toLocaleString('en')}`;
  renderRow($('anatomy'), a, scale);
}

function addSample(step: number, text: string): void {
  const div = document.createElement('div');
  div.className = 's';
  const b = document.createElement('b');
  b.textContent = step === 0 ? 'step 0 (untrained)' : `step ${step}`;
  div.append(b, text);
  $('samples').prepend(div);
}

function onEvent(e: Event): void {
  switch (e.type) {
    case 'ready': {
      const where = e.backend === 'wasm' ? `WebAssembly SIMD, ${e.threads} thread${e.threads === 1 ? '' : 's'}` : e.backend === 'ref' ? 'plain TypeScript (ref)' : e.backend;
      $('backend').textContent = `backend: ${e.backend} (${where}${e.isolated ? ', cross-origin isolated' : ', not cross-origin isolated'})`;
      $('notes').replaceChildren(...e.notes.map((n) => Object.assign(document.createElement('li'), { textContent: n })));
      return;
    }
    case 'data':
      $('data-info').textContent = `Data: ${e.source}: ${e.documents.toLocaleString('en')} documents` +
        (e.chars ? `, ${e.chars.toLocaleString('en')} characters` : '') + ` (${e.trainDocs} for training, ${e.validationDocs} held out for validation).`;
      lastGoodData = document.querySelector<HTMLInputElement>('input[name=data]:checked')?.value ?? 'brown';
      return;
    case 'tokenizer':
      customTokenizer = { name: e.name, vocabSize: e.vocabSize };
      $('tok-info').textContent = `Tokenizer: ${e.name} (${e.vocabSize.toLocaleString('en')} tokens); V of a new model follows it.`;
      $('tok-clear').hidden = false;
      refreshSettings();
      return;
    case 'imported':
      imported = { parameters: e.parameters, vocabSize: e.vocabSize, config: e.config };
      $('import-info').textContent = `Imported ${e.folder}: ${e.parameters.toLocaleString('en')} parameters (hidden ${e.config.hidden_size}, ` +
        `${e.config.num_hidden_layers} layers, vocabulary ${e.config.vocab_size}). Start fine-tunes it on the chosen data with its tokenizer.`;
      $('import-clear').hidden = false;
      $<HTMLButtonElement>('export').disabled = false;
      message(`Imported ${e.folder}.`, 'ok');
      refreshSettings();
      return;
    case 'progress': {
      $('progress').hidden = false;
      const pct = e.total > 0 ? Math.min(100, (100 * e.done) / e.total) : 0;
      $('progress-bar').style.width = `${pct.toFixed(1)}%`;
      $('progress-text').textContent = `${e.phase}… ${pct.toFixed(0)}%`;
      return;
    }
    case 'started':
      vocabForScale = e.vocabSize;
      $('run-info').textContent = `${e.parameters.toLocaleString('en')} parameters (${e.dims}); tokenizer: ${e.tokenizer}; ` +
        `${e.trainRows.toLocaleString('en')} training rows (${e.stepsPerEpoch} steps per epoch), ${e.validationRows} validation rows.`;
      startedAt = performance.now(); stepsAtStart = 0;
      $<HTMLButtonElement>('export').disabled = false;
      return;
    case 'steps': {
      for (const p of e.points) {
        steps.push(p);
        lossCurve.addTrain(p.step, p.loss);
        bpbCurve.addTrain(p.step, p.bpb);
      }
      const p = e.points[e.points.length - 1]!;
      $('step').textContent = `${p.step} / ${totalSteps}`;
      $('train-loss').textContent = fmt(p.loss);
      $('lr').textContent = p.lr.toExponential(2);
      $('tps').textContent = Math.round(median(steps.slice(-20).map((x) => x.tokensPerSec))).toLocaleString('en');
      const done = p.step - stepsAtStart;
      const perStep = (performance.now() - startedAt) / 1000 / Math.max(1, done);
      $('eta').textContent = duration(perStep * (totalSteps - p.step));
      return;
    }
    case 'anatomy': showAnatomy(e.anatomy); return;
    case 'eval':
      evals.push({ step: e.step, loss: e.loss, bpb: e.bpb, sample: e.sample });
      lossCurve.addVal(e.step, e.loss);
      bpbCurve.addVal(e.step, e.bpb);
      $('val-loss').textContent = fmt(e.loss);
      $('val-bpb').textContent = fmt(e.bpb, 3);
      addSample(e.step, e.sample);
      if (e.step === 0) { startedAt = performance.now(); stepsAtStart = 0; }
      return;
    case 'state': setState(e.state); return;
    case 'generated': if (e.id === generateId) $('generated').textContent = e.text; return;
    case 'exported': {
      $('export').textContent = 'Export (Hugging Face zip)';
      const url = URL.createObjectURL(new Blob([e.zip as Uint8Array<ArrayBuffer>], { type: 'application/zip' }));
      const a = Object.assign(document.createElement('a'), { href: url, download: e.name });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
      return;
    }
    case 'error':
      message(e.message);
      if (e.during === 'export') $('export').textContent = 'Export (Hugging Face zip)';
      if (e.during === 'generate') $('generated').textContent = '';
      if (e.during === 'import') $('import-info').textContent = '';
      if (e.during === 'data') dataRadio(lastGoodData).checked = true;
      if (e.during === 'init') $('backend').textContent = 'backend: failed to start';
      return;
  }
}

// What the browser test reads (the curves' data and the last anatomy); plain data, no methods.
(globalThis as unknown as { playground: unknown }).playground = {
  get steps() { return steps; },
  get evals() { return evals; },
  get anatomy() { return lastAnatomy; },
  get state() { return state; },
  get chartPoints() { return { loss: lossCurve.steps.length, val: lossCurve.valPoints().length }; },
};

startWorker();
applyPreset((params.get('preset') as PresetName | null) && (params.get('preset')! in PRESETS) ? params.get('preset') as PresetName : 'tiny');
initBackend();
setState('idle');
