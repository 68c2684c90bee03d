// Per-step cost of `llamatrain train` recipes, A/B interleaved in one process (the machine is shared and noisy:
// only ratios measured in the same period mean something).
//   node dist/bench/recipe-ab.js [--rounds 4] [--steps 10] [--backend auto] [--threads 0] -- <train flags of A> -- <train flags of B> [-- …]
// Each recipe gets the CLI's model, optimizer and schedule (the same code as `llamatrain train`) and batches of its
// --batch-size × --seq-len (× --grad-accum) random tokens packed as documents of 20–300 tokens (the attention and
// loss cost of packed rows). Round 0 is a warm-up; then every round runs --steps steps of each recipe in turn and
// prints ms per optimizer step, wall and CPU (this process's user + system time: with --threads 1 it is the work
// itself, much less sensitive than wall time to other processes on a loaded machine). Last: per round, each
// recipe's ms/step ÷ recipe A's (min–max over rounds), wall and CPU.

import { RNG } from '../src/core/index.js';
import type { Batch, BatchSource } from '../src/train/index.js';
import { Trainer } from '../src/train/index.js';
import { LRScheduler } from '../src/optim/index.js';
import { parseCommandLine } from '../src/cli/options.js';
import { learningRateShape, makeOptimizer, newModel, trainSchema } from '../src/cli/train.js';
import { selectBackend } from '../src/cli/shared.js';

const argv = process.argv.slice(2);
const groups: string[][] = [[]];
for (const a of argv) { if (a === '--') groups.push([]); else groups[groups.length - 1]!.push(a); }
const own = groups[0]!, recipes = groups.slice(1);
if (recipes.length < 1) throw new Error('recipe-ab: give at least one recipe after --');
const opt = (k: string, d: string) => { const i = own.findIndex((a) => a === `--${k}` || a.startsWith(`--${k}=`)); return i < 0 ? d : own[i]!.includes('=') ? own[i]!.split('=')[1]! : own[i + 1]!; };
const rounds = Number(opt('rounds', '4')), steps = Number(opt('steps', '10'));

function randomSource(B: number, T: number, V: number, seed: number): BatchSource {
  const rng = new RNG(seed);
  return {
    next: (): Batch => {
      const ids = new Int32Array(B * T), labels = new Int32Array(B * T), pos = new Int32Array(B * T), docs = new Int32Array(B * T);
      for (let r = 0; r < B; r++) {
        let doc = 0, start = 0, len = 20 + Math.floor(rng.uniform() * 280);
        for (let t = 0; t < T; t++) {
          if (t - start >= len) { doc++; start = t; len = 20 + Math.floor(rng.uniform() * 280); }
          const i = r * T + t;
          ids[i] = labels[i] = Math.floor(rng.uniform() * V);
          pos[i] = t - start; docs[i] = doc;
          if (t === start && t > 0) labels[i] = -100;
        }
      }
      return { shape: [B, T], inputIds: ids, labels, positionIds: pos, documentIds: docs, targetBytes: B * T * 3 };
    },
    state: () => null,
    loadState: () => {},
  };
}

await selectBackend(opt('backend', 'auto'), Number(opt('threads', '0')), (s) => console.log(s));
const runs = recipes.map((flags, i) => {
  const o = parseCommandLine(trainSchema, flags).values;
  const model = newModel(o, o.vocabSize, undefined, 1);
  const optimizer = makeOptimizer(o, model);
  const scheduler = new LRScheduler(optimizer, learningRateShape(o));
  const trainer = new Trainer({ model, optimizer, scheduler, train: randomSource(o.batchSize, o.seqLen, o.vocabSize, 7 + i),
    gradAccumSteps: o.gradAccum, maxSteps: 1e9, clipGradNorm: o.clip > 0 ? o.clip : null, seed: o.seed });
  console.log(`recipe ${'ABCDEFGH'[i]}: ${flags.join(' ') || '(defaults)'} — ${model.numParameters().toLocaleString('en')} parameters`);
  return { name: 'ABCDEFGH'[i]!, trainer, ms: [] as number[], cpu: [] as number[] };
});
for (let round = 0; round <= rounds; round++) {
  for (const r of runs) {
    const t0 = performance.now(), c0 = process.cpuUsage();
    await r.trainer.train(r.trainer.step + steps);
    const ms = (performance.now() - t0) / steps;
    const c = process.cpuUsage(c0), cpu = (c.user + c.system) / 1000 / steps;
    if (round > 0) { r.ms.push(ms); r.cpu.push(cpu); }
    console.log(`round ${round}${round === 0 ? ' (warm-up)' : ''}: ${r.name} ${ms.toFixed(1)} ms/step wall, ${cpu.toFixed(1)} ms/step CPU`);
  }
}
for (const key of ['ms', 'cpu'] as const) {
  for (const r of runs.slice(1)) {
    const ratios = r[key].map((m, i) => m / runs[0]![key][i]!);
    console.log(`${r.name}/A ${key === 'ms' ? 'wall' : 'CPU'} ms per step: ${ratios.map((x) => x.toFixed(3)).join(' ')} (min ${Math.min(...ratios).toFixed(3)}, max ${Math.max(...ratios).toFixed(3)})`);
  }
}
for (const r of runs) console.log(`${r.name}: wall ms/step ${r.ms.map((x) => x.toFixed(0)).join(' ')}; CPU ms/step ${r.cpu.map((x) => x.toFixed(0)).join(' ')}`);
process.exit(0);
