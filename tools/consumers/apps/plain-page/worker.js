import { trainSteps } from './train-steps.mjs';

const infos = [];
const info = console.info.bind(console);
console.info = (...a) => { infos.push(a.join(' ')); info(...a); };
self.onmessage = async (e) => {
  try {
    const lt = await import(e.data.llamatrain);
    postMessage({ ok: true, coi: self.crossOriginIsolated, infos, ...(await trainSteps(lt, 2)) });
  } catch (err) {
    postMessage({ ok: false, error: String(err?.stack ?? err) });
  }
};
