// LoRA adapter folders on disk (PEFT's format): adapter_config.json + adapter_model.safetensors. Node only; the
// codec and the model side are browser-safe (src/peft).
import { join } from 'node:path';
import type { LlamaForCausalLM } from '../nn/index.js';
import { PeftModel, type AdapterLoadOptions } from '../peft/index.js';
import { readBytesFile, readJsonFile, writeFileAtomic } from './files.js';
import { makeDirs } from './make-dirs.js';

/** Writes `peft`'s adapters into `dir` (created if needed), atomically file by file. */
export async function saveAdapter(peft: PeftModel, dir: string): Promise<void> {
  const { config, weights } = await peft.adapterFiles();
  await makeDirs(dir, 'saving the adapter');
  await writeFileAtomic(join(dir, 'adapter_model.safetensors'), weights);
  await writeFileAtomic(join(dir, 'adapter_config.json'), config);
}

/**
 * Loads the adapter folder `dir` onto `base` (frozen in place); errors name the file. For inference (eval mode, no
 * gradients) unless `isTrainable`, as PEFT.
 */
export async function loadAdapter(base: LlamaForCausalLM, dir: string, opts: AdapterLoadOptions = {}): Promise<PeftModel> {
  const config = await readJsonFile(join(dir, 'adapter_config.json'));
  return PeftModel.fromAdapterFiles(base, config, await readBytesFile(join(dir, 'adapter_model.safetensors')), dir, opts);
}
