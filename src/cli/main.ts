// The `llamatrain` command line. Node only.

import '../backends/ref/index.js'; // registers the default backend
import { runTrain, trainHelp } from './train.js';
import { chatHelp, runChat, runSft, sftHelp } from './sft.js';
import { helps, runEval, runGenerate, runTokenizer } from './commands.js';
import { UsageError, wantsHelp } from './options.js';
import { playgroundHelp, runPlayground } from './playground.js';

const USAGE = `llamatrain — train LLaMA-architecture language models in TypeScript

Usage:
  llamatrain train [--key=value ...]        train (defaults: a small LLaMA on the built-in Brown corpus)
  llamatrain eval --model <dir>             loss, perplexity and bits per byte on a dataset
  llamatrain generate --model <dir> "text"  continue a prompt
  llamatrain sft [--from <hf dir>] --data chat.jsonl
                                            fine-tune on conversations, loss on the assistant's replies (LoRA on --from)
  llamatrain chat --model <dir> [--adapter <dir>]
                                            chat through the model's template, replies streamed
  llamatrain tokenizer train|encode|decode  byte-level BPE tokenizers
  llamatrain playground [--port N] [--open]  the browser playground: train in a tab, watch the loss, export to HF

Add --help to any command for its options.`;

export async function main(argv: string[], log: (s: string) => void = (s) => process.stdout.write(s + '\n')): Promise<number> {
  const [cmd, ...rest] = argv;
  const help = wantsHelp(rest);
  try {
    switch (cmd) {
      case 'train': if (help) log(trainHelp); else await runTrain(rest, log); return 0;
      case 'eval': if (help) log(helps.eval); else await runEval(rest, log); return 0;
      case 'sft': if (help) log(sftHelp); else await runSft(rest, log); return 0;
      case 'chat': if (help) log(chatHelp); else await runChat(rest); return 0;
      case 'generate': if (help) log(helps.generate); else await runGenerate(rest, log); return 0;
      case 'tokenizer': await runTokenizer(rest, log); return 0;
      case 'playground': if (help) log(playgroundHelp); else await runPlayground(rest, log); return 0;
      case undefined: case '--help': case '-h': case 'help': log(USAGE); return 0;
      default: throw new UsageError(`unknown command '${cmd}'`);
    }
  } catch (e) {
    if (e instanceof UsageError) { process.stderr.write(`llamatrain ${cmd ?? ''}: ${e.message}\n`); return 2; }
    process.stderr.write(`llamatrain ${cmd ?? ''}: ${(e as Error).message}\n`);
    return 1;
  }
}
