// What the CLI tests share: running the command in-process and a tiny corpus.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { main } from '../../src/cli/main.js';

/** Runs the CLI in this process; returns its exit status, what it logged and what it wrote to stderr. */
export async function runCli(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const lines: string[] = [];
  const err: string[] = [];
  const orig = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((s: string | Uint8Array) => { err.push(String(s)); return true; }) as typeof process.stderr.write;
  try {
    const code = await main(argv, (s) => lines.push(s));
    return { code, out: lines.join('\n'), err: err.join('') };
  } finally {
    process.stderr.write = orig;
  }
}

/** A small JSONL corpus of simple English sentences (60 records) in `dir`; returns its path. */
export function tinyCorpus(dir: string): string {
  const words = ['the cat sat on the mat', 'a dog ran in the park', 'the sun is warm today', 'we read a good book', 'she likes green tea'];
  const p = join(dir, 'tiny.jsonl');
  writeFileSync(p, Array.from({ length: 60 }, (_, i) => JSON.stringify({ text: `${words[i % 5]} and ${words[(i * 3) % 5]}.` })).join('\n') + '\n');
  return p;
}
