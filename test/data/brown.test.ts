// The built-in Brown corpus: tags stripped, sentences rebuilt, fixed split. Expected text is the corpus's famous
// first sentence and hand-written detokenization cases, not output of the code under test.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { brownFileToText } from '../../src/data/index.js';
import { brownCorpusDir, loadBrownCorpus, loadBrownDocuments } from '../../src/data/node.js';

test('detokenization: quotes, punctuation spacing, headlines on their own line, tags with slashes in words', () => {
  const raw = [
    '',
    '\tMerger/nn-hl proposed/vbn-hl ',
    '',
    "\tHe/pps said/vbd ,/, ``/`` Go/vb home/nr ''/'' ./.",
    '\tIt/pps cost/vbd $3/nns (/( or/cc 1-1/2/cd dollars/nns )/) and/or/cc less/ap ;/. ;/.',
    '\tAsk/vb Mr./np Allen/np Jr./np ./.',
    '\tWhat/wdt ?/.',
    '\tGroat/np ,/, each/dt ',
    '\t,/, Dick/np (/( Pa./np ./.',
    '\t)/) Benched/vbn ./.',
  ].join('\n');
  assert.equal(brownFileToText(raw), [
    'Merger proposed',
    'He said, "Go home". It cost $3 (or 1-1/2 dollars) and/or less; Ask Mr. Allen Jr. What? Groat, each, Dick (Pa.) Benched.',
  ].join('\n'));
});

test('the corpus: 500 documents, fixed 475/25 split by file, the first sentence, no tags left', () => {
  const { files, docs } = loadBrownDocuments();
  assert.equal(files.length, 500);
  const { train, validation } = loadBrownCorpus();
  assert.equal(train.length, 475);
  assert.equal(validation.length, 25);
  // every 20th file (0-based index 19, 39, …, 499) is validation: ca20, ca40, cb16 (44 ca files), …, cr09
  const vfiles = files.filter((_, k) => k % 20 === 19);
  assert.deepEqual([vfiles[0], vfiles[1], vfiles[2], vfiles[24]], ['ca20', 'ca40', 'cb16', 'cr09']);
  // deterministic: the split is exactly those files, parsed afresh
  assert.deepEqual(validation, vfiles.map((name) => brownFileToText(readFileSync(join(brownCorpusDir(), name!), 'utf8'))));
  assert.equal(train[0], docs[0]);
  assert.ok(train[0]!.startsWith(
    'The Fulton County Grand Jury said Friday an investigation of Atlanta\'s recent primary election produced "no evidence" that any irregularities took place. The jury further said',
  ));
  const all = docs.join('\n');
  // no part-of-speech tags: the commonest tags of the corpus never follow a slash
  assert.doesNotMatch(all, /\/(at|nn|nns|np|vbd|vbz|vbn|vb|in|jj|cc|cs|rb|dt|pps|ppss|md|to|be|cd)(-tl|-hl|-nc|\$)?(\s|$)/);
  assert.doesNotMatch(all, /(^|\s)[.,;:?!]\/[.,:]/m, 'punctuation tokens keep no tag');
  assert.doesNotMatch(all, /(^|\s)(``|'')(\s|$)/m, 'quote tokens became "');
  assert.doesNotMatch(all, / [,;?!)]| [.:](\s|$)/, 'no space before punctuation');
  assert.ok(all.length > 5_000_000, 'about 6 MB of text');
});
