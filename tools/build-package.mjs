// The build `npm pack` / `npm publish` run (the `prepack` script): dist/src from scratch (no stale files of a
// removed source), without source maps, so the tarball holds exactly the compiled library and its declarations.
// Development builds (`npm run build`, `npm test`) compile tests and benches too and keep their maps. Both build the
// browser playground (tools/build-playground.mjs → playground/dist, which the tarball ships).
import { rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';

const run = (args) => {
  const r = spawnSync(process.execPath, args, { stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
};
rmSync('dist/src', { recursive: true, force: true });
run(['tools/build-wasm.mjs']);
run([createRequire(import.meta.url).resolve('typescript/bin/tsc'), '-p', 'tsconfig.build.json']);
// the browser playground (playground/dist), served by `llamatrain playground`
run(['tools/build-playground.mjs']);
