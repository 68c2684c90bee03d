import * as lt from 'llamatrain';
import { trainSteps } from './train-steps.mjs';

// On the page's main thread (Atomics.wait is not allowed there): one thread, said once.
const infos = [];
const info = console.info.bind(console);
console.info = (...a) => { infos.push(a.join(' ')); info(...a); };
let main;
try {
  main = { ...(await trainSteps(lt, 2)), infos };
} catch (e) {
  main = { threads: -1, error: String(e?.stack ?? e), infos };
}

const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
worker.onmessage = (e) => { window.__result = { ...e.data, main }; };
worker.onerror = (e) => { window.__result = { ok: false, error: `worker error: ${e.message}` }; };
worker.postMessage({ llamatrain: import.meta.resolve('llamatrain') });
