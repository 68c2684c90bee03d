// Writes data/chat.jsonl: 2000 short synthetic conversations (arithmetic questions and answers) for the SFT
// example in the README. Deterministic: a fixed seed, so rerunning rewrites the same file byte for byte.
//   node tools/make-chat-data.mjs
import { writeFileSync, mkdirSync } from 'node:fs';

let state = 20240613;
function rand() {
  // mulberry32
  state = (state + 0x6d2b79f5) | 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const int = (lo, hi) => lo + Math.floor(rand() * (hi - lo + 1));
const pick = (xs) => xs[Math.floor(rand() * xs.length)];

const OPS = [
  { sym: '+', word: 'plus', f: (a, b) => a + b },
  { sym: '-', word: 'minus', f: (a, b) => a - b },
  { sym: '*', word: 'times', f: (a, b) => a * b },
];
const ASK = [
  (a, op, b) => `What is ${a} ${op.sym} ${b}?`,
  (a, op, b) => `What is ${a} ${op.word} ${b}?`,
  (a, op, b) => `Compute ${a} ${op.sym} ${b}.`,
  (a, op, b) => `${a} ${op.sym} ${b} = ?`,
];
const ANSWER = [
  (a, op, b, r) => `${a} ${op.sym} ${b} = ${r}.`,
  (a, op, b, r) => `The answer is ${r}.`,
  (a, op, b, r) => `${r}`,
];
const FOLLOW = [
  (op, c) => [`And ${op.word} ${c}?`],
  (op, c) => [`Now ${op.sym} ${c}.`],
];
const SYSTEM = ['You are a calculator. Answer briefly.', 'You answer arithmetic questions.'];

function question() {
  const op = pick(OPS);
  const a = int(0, op.sym === '*' ? 12 : 99);
  const b = int(0, op.sym === '*' ? 12 : 99);
  return { op, a, b, r: op.f(a, b) };
}

const lines = [];
for (let i = 0; i < 2000; i++) {
  const kind = i % 10; // 0-5 single turn, 6-7 with a system message, 8 two turns, 9 prompt/completion
  const q = question();
  const user = pick(ASK)(q.a, q.op, q.b);
  const answer = pick(ANSWER)(q.a, q.op, q.b, q.r);
  if (kind === 9) {
    lines.push({ prompt: user, completion: answer });
    continue;
  }
  const messages = [];
  if (kind === 6 || kind === 7) messages.push({ role: 'system', content: pick(SYSTEM) });
  messages.push({ role: 'user', content: user }, { role: 'assistant', content: answer });
  if (kind === 8) {
    const op = pick(OPS);
    const c = int(1, 9);
    messages.push({ role: 'user', content: pick(FOLLOW)(op, c)[0] }, { role: 'assistant', content: `${q.r} ${op.sym} ${c} = ${op.f(q.r, c)}.` });
  }
  lines.push({ messages });
}
mkdirSync('data', { recursive: true });
writeFileSync('data/chat.jsonl', lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
console.log(`wrote data/chat.jsonl: ${lines.length} conversations`);
