// A bundled app (Vite, esbuild): training runs in a module Web Worker, created in the form bundlers understand.
const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
worker.onmessage = (e) => { window.__result = e.data; };
worker.onerror = (e) => { window.__result = { ok: false, error: `worker error: ${e.message}` }; };
