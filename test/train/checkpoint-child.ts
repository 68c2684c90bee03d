// Child process for the kill -9 test: saves a checkpoint at step 1, then hangs in the middle of saving step 2
// (after the files are written, before the rename) until it is killed.
import { LlamaForCausalLM } from '../../src/index.js';
import { ListSource, cfg, makeTrainer, randomBatches } from './util.js';

if (process.argv[2]) {
  const root = process.argv[2];
  const trainer = makeTrainer(new LlamaForCausalLM(cfg, { seed: 7 }), new ListSource(randomBatches(2, 2, 8, 48, 2)));
  await trainer.train(1);
  await trainer.saveCheckpoint(root);
  await trainer.train(2);
  await trainer.saveCheckpoint(root, {
    beforeCommit: () => new Promise<void>(() => { process.stdout.write('WRITING step 2\n'); setInterval(() => {}, 1000); }),
  });
}
