import * as lt from 'llamatrain';
import { trainSteps } from './train-steps.mjs';

const infos = [];
const info = console.info.bind(console);
console.info = (...a) => { infos.push(a.join(' ')); info(...a); };
trainSteps(lt, 2).then(
  (r) => postMessage({ ok: true, coi: self.crossOriginIsolated, infos, ...r }),
  (e) => postMessage({ ok: false, error: String(e?.stack ?? e) }),
);
