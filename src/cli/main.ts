// The `llamatrain` command line. Node only.

import '../backends/ref/index.js'; // registers the default backend
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runTrain, trainHelp } from './train.js';
import { chatHelp, runChat, runSft, sftHelp } from './sft.js';
import { helps, runEval, runGenerate, runTokenizer } from './commands.js';
import { forCli } from './messages.js';
import { UsageError, wantsHelp } from './options.js';
import { RunStopped } from './rundir.js';
import { playgroundHelp, runPlayground } from './playground.js';

const USAGE = `llamatrain — train LLaMA-architecture language models in TypeScript

Usage:
  llamatrain train [<data file>] [--key=value ...]
                                            train (defaults: a small LLaMA on the built-in Brown corpus)
  llamatrain eval --model <dir> [<data file>]
                                            loss, perplexity and bits per byte (a run directory: on its own data)
  llamatrain generate --model <dir> "text"  continue a prompt
  llamatrain sft [<chat.jsonl>] [--from <hf dir>]
                                            fine-tune on conversations, loss on the assistant's replies (LoRA on --from)
  llamatrain chat --model <dir> [--adapter <dir>]
                                            chat through the model's template, replies streamed
  llamatrain tokenizer train|encode|decode  byte-level BPE tokenizers
  llamatrain --version                      the version of llamatrain
  llamatrain playground [--port N] [--open]  the browser playground: train in a tab, watch the loss, export to HF

Add --help to any command for its options.`;

/** The package's version, from its package.json (dist/src/cli/ → the package root). */
export function version(): string {
  const pkg = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'package.json');
  return (JSON.parse(readFileSync(pkg, 'utf8')) as { version: string }).version;
}

/** Whether the arguments ask for the version (`--version` or `-v` before any `--`). */
function wantsVersion(argv: string[]): boolean {
  const end = argv.indexOf('--');
  return (end >= 0 ? argv.slice(0, end) : argv).some((a) => a === '--version' || a === '-v');
}

export async function main(argv: string[], log: (s: string) => void = (s) => process.stdout.write(s + '\n')): Promise<number> {
  const [cmd, ...rest] = argv;
  const help = wantsHelp(rest);
  try {
    if (cmd === '--version' || cmd === '-v' || cmd === 'version' || (!help && cmd !== undefined && !cmd.startsWith('-') && wantsVersion(rest))) {
      log(`llamatrain ${version()}`);
      return 0;
    }
    switch (cmd) {
      case 'train': if (help) log(trainHelp); else await runTrain(rest, log); return 0;
      case 'eval': if (help) log(helps.eval); else await runEval(rest, log); return 0;
      case 'sft': if (help) log(sftHelp); else await runSft(rest, log); return 0;
      case 'chat': if (help) log(chatHelp); else await runChat(rest); return 0;
      case 'generate': if (help) log(helps.generate); else await runGenerate(rest, log); return 0;
      case 'tokenizer': await runTokenizer(rest, log); return 0;
      case 'playground': if (help) log(playgroundHelp); else await runPlayground(rest, log); return 0;
      case undefined: case '--help': case '-h': case 'help': log(USAGE); return 0;
      default: throw new UsageError(`unknown command '${cmd}'; the commands are train, eval, generate, sft, chat and tokenizer (see llamatrain --help)`);
    }
  } catch (e) {
    const message = forCli(e instanceof Error ? e.message : String(e));
    process.stderr.write(`llamatrain ${cmd ?? ''}: ${message}\n`);
    // stopped by a signal: 130 (SIGINT) / 143 (SIGTERM)
    return e instanceof UsageError ? 2 : e instanceof RunStopped ? e.exitCode : 1;
  }
}
