#!/usr/bin/env -S node --max-semi-space-size=64
// The `llamatrain` executable: runs the compiled CLI (npm run build makes dist/). A larger young generation
// (--max-semi-space-size) keeps V8's scavenger from eating a core: training makes many short-lived arrays.
import { main } from '../dist/src/cli/main.js';

process.exitCode = await main(process.argv.slice(2));
