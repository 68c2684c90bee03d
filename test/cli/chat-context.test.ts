// `chat` with a prompt longer than the model's context: before, a 100 kB line ran a forward pass over all of it
// (93 s) past the positions the model has. Now a message that cannot fit is refused with a message (the chat goes
// on), and a conversation that outgrows the context leaves out its oldest turns, saying so.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { LlamaForCausalLM, savePretrained, saveTokenizer, trainByteLevelBPE } from '../../src/node.js';
import { runChat } from '../../src/cli/sft.js';

test('chat: a message longer than the context is refused at once; older turns are left out when the conversation outgrows it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'llamatrain-chatctx-'));
  const bpe = trainByteLevelBPE(['hello there, how are you today? fine thanks'], { vocabSize: 300, chat: true });
  const model = new LlamaForCausalLM({ vocabSize: bpe.vocabSize, hiddenSize: 16, intermediateSize: 32, numHiddenLayers: 1, numAttentionHeads: 2,
    numKeyValueHeads: 1, maxPositionEmbeddings: 96, eosTokenId: bpe.eosId }, { seed: 1 });
  await savePretrained(model, dir);
  saveTokenizer(bpe, dir);
  let out = '';
  const err: string[] = [];
  const orig = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((s: string | Uint8Array) => { err.push(String(s)); return true; }) as typeof process.stderr.write;
  const t0 = Date.now();
  try {
    await runChat([`--model=${dir}`, '--max-new-tokens=8', '--temperature=0', '--backend=ref'], (s) => { out += s; },
      Readable.from([`${'hello '.repeat(20_000)}\n`, 'hello there\n', 'how are you today?\n', 'fine thanks, and you?\n', 'hello there again\n']));
  } finally {
    process.stderr.write = orig;
  }
  assert.ok(Date.now() - t0 < 20_000, `took ${Date.now() - t0} ms`);
  const notes = err.join('');
  assert.match(notes, /llamatrain chat: this message is [\d,]+ tokens with the chat template; the model's context is 96 tokens and the reply needs 8 of them: shorten the message \(it was not sent\)/);
  assert.match(notes, /the conversation outgrew the model's context \(96 tokens\): the \d+ oldest turn\(s\) were left out/);
  assert.equal(out.split('\n').filter((l) => l.startsWith('assistant: ')).length, 4, 'the four short messages got replies');
});
