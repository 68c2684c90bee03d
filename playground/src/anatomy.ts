// "The loss, opened up": one row of a training batch, position by position, coloured by each target's own loss;
// and the mean over the batch's counted targets, which is the step's loss.
import type { Anatomy } from './protocol.js';

/** Mean of the per-token losses over the targets that count (not -100): what the step's loss is. */
export function countedMean(losses: ArrayLike<number>, targets: ArrayLike<number>, from = 0, to = targets.length): { mean: number; count: number } {
  let sum = 0, count = 0;
  for (let i = from; i < to; i++) {
    if (targets[i] === -100) continue;
    sum += losses[i]!;
    count++;
  }
  return { mean: count ? sum / count : NaN, count };
}

/** Whitespace made visible: a token's text in a box. */
const show = (s: string): string => s.replace(/ /g, '·').replace(/\n/g, '↵').replace(/\t/g, '⇥') || '∅';

const REASON: Record<string, string> = {
  boundary: 'a new document starts at the next position: no token is predicted from another document',
  padding: 'the next position is padding',
  end: 'the last position of the row: its next token is not in the row',
};

/** Fills `el` with one box per position of the row. `scale`: the loss drawn fully red (ln V: a uniform guess). */
export function renderRow(el: HTMLElement, a: Anatomy, scale: number): void {
  const frag = document.createDocumentFragment();
  const o = a.row * a.T;
  for (let t = 0; t < a.T; t++) {
    const box = document.createElement('span');
    box.className = 'tok';
    const target = a.targets[t]!;
    const inp = document.createElement('span');
    inp.className = 'in';
    inp.textContent = show(a.inputText[t]!);
    const tg = document.createElement('span');
    tg.className = 'tg';
    const l = document.createElement('span');
    l.className = 'l';
    if (target === -100) {
      box.classList.add('ignored');
      tg.textContent = '→ −100';
      l.textContent = 'not counted';
      box.title = `position ${t}: input ${JSON.stringify(a.inputText[t])} (id ${a.inputIds[t]}); target −100: ${REASON[a.reason[t]!] ?? 'masked'}`;
    } else {
      const loss = a.losses[o + t]!;
      const x = Math.min(1, Math.max(0, loss / scale));
      box.style.background = `hsl(${Math.round(120 * (1 - x))} 70% ${Math.round(80 - 8 * x)}%)`;
      tg.textContent = `→ ${show(a.targetText[t]!)}`;
      l.textContent = loss.toFixed(2);
      box.title = `position ${t}: input ${JSON.stringify(a.inputText[t])} (id ${a.inputIds[t]}) → target ${JSON.stringify(a.targetText[t])} ` +
        `(id ${target}): loss −log p = ${loss.toFixed(4)} (p = ${Math.exp(-loss).toPrecision(3)})`;
    }
    box.append(inp, tg, l);
    frag.append(box);
  }
  el.replaceChildren(frag);
}
