#!/usr/bin/env -S node --max-semi-space-size=64
// The `llamatrain` executable: runs the compiled CLI (npm run build makes dist/). A larger young generation
// (--max-semi-space-size) keeps V8's scavenger from eating a core: training makes many short-lived arrays.
import { main } from '../dist/src/cli/main.js';

// A reader that goes away (`llamatrain train … | head -1`) closes our stdout: writes then fail with EPIPE, which
// must not kill a run half way (leaving its directory locked and no checkpoint). What is left to print is dropped;
// the run goes on and ends as it would have.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e) => { if (e.code !== 'EPIPE') throw e; });
}

process.exitCode = await main(process.argv.slice(2));
