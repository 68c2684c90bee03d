// Installs what needs a file system or a Node-only module into the browser-safe modules that use it through a
// hook: PeftModel.savePretrained / fromPretrained (adapter files), LlamaForCausalLM.fromPretrained (model folders)
// and applyChatTemplate (the Jinja renderer).
// Imported by the Node entries (`llamatrain` as Node resolves it, and `llamatrain/node`).
import { useAdapterFiles } from '../peft/index.js';
import { usePretrainedLoader } from '../nn/index.js';
import { loadPretrained } from './pretrained.js';
import '../tokenizer/jinja.js';
import { readBytesFile, writeFileAtomic } from './files.js';
import { makeDirs } from './make-dirs.js';

useAdapterFiles({
  writeFile: (path, data) => writeFileAtomic(path, data),
  readFile: readBytesFile,
  mkdir: (path) => makeDirs(path, 'saving the adapter'),
});

usePretrainedLoader(loadPretrained);
