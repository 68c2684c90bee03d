#!/usr/bin/env bash
# Runs jax-js (../shared/bench/peers/jaxjs_train.mjs: @jax-js/jax, wasm backend, jit, worker_threads shim) and our
# bench on the same model and threads in the same run, alternating, and prints each throughput and the ratio.
# Same model on both sides: the peers' script measures an UNTIED head by default, so ours runs with --untied
# (pass --tied to tie both). shared/ is read-only: the peers folder is copied to a temp dir and npm-installed there
# (set PEERS_DIR to an already-installed copy to skip the install; it is then left in place).
#
#   bench/peers.sh --config tiny|s15M [--threads N] [--jax-threads N] [--steps N] [--jax-steps N] [--jax-warmup N]
#                  [--rounds R] [--loss fused|unfused] [--tied] [--quiet-wait S]
# Both sides run their steps back to back: jax-js's script has no pause between steps, so ours runs with
# --quiet-wait 0 too (its default waits ≥ 0.25 s for a quiet machine before every step, and on this VM memory
# untouched for 0.25 s costs ~14 µs per 4 KiB page to touch again: +15 ms on a 28 ms tiny step; RESULTS
# 2026-11-28). --quiet-wait S gives ours the per-step wait back (jax-js still runs back to back).
# --threads N: ours; jax-js gets JAXJS_THREADS=N workers for N > 1 and, for N = 1, JAXJS_THREADS=0 (its
# main-thread path: one core, no dispatch; faster than 1 worker on tiny here). --jax-threads overrides.
# --steps: our timed steps (default: the bench's); --jax-steps: jax-js's timed steps (default 20 for tiny, 4 for
# s15M). Warm-up, both sides about 2 s (JIT compilers settle; measured +10% for jax-js, +25% for ours on tiny):
# ours by its --warmup-s 2, jax-js by --jax-warmup N steps (default 15 for tiny at ~0.11 s a step, 2 for s15M).
# Needs network for npm install (npm registry) unless PEERS_DIR is set.
set -euo pipefail
cd "$(dirname "$0")/.."

CONFIG=tiny THREADS=2 JTHREADS= STEPS=0 JSTEPS=0 JWARMUP= ROUNDS=1 LOSS=fused TIED=0 QWAIT=0
while [ $# -gt 0 ]; do
  case "$1" in
    --config) CONFIG=$2; shift 2 ;; --threads) THREADS=$2; shift 2 ;; --jax-threads) JTHREADS=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;; --jax-steps) JSTEPS=$2; shift 2 ;; --jax-warmup) JWARMUP=$2; shift 2 ;; --rounds) ROUNDS=$2; shift 2 ;;
    --loss) LOSS=$2; shift 2 ;; --tied) TIED=1; shift ;; --quiet-wait) QWAIT=$2; shift 2 ;;
    *) echo "peers.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
JTHREADS=${JTHREADS:-$([ "$THREADS" -gt 1 ] && echo "$THREADS" || echo 0)}
[ -n "$JWARMUP" ] || JWARMUP=$([ "$CONFIG" = tiny ] && echo 15 || echo 2)
[ "$JSTEPS" -gt 0 ] || JSTEPS=$([ "$CONFIG" = tiny ] && echo 20 || echo 4)
UNTIED_FLAG=$([ "$TIED" = 1 ] && echo "" || echo "--untied")

SRC=${LLAMATRAIN_SHARED:-../shared}/bench/peers
OUT=$(mktemp -d)
cleanup() { rm -rf "$OUT"; }
trap cleanup EXIT
if [ -n "${PEERS_DIR:-}" ]; then
  PEERS=$PEERS_DIR
else
  if [ ! -f "$SRC/jaxjs_train.mjs" ]; then echo "peers.sh: $SRC/jaxjs_train.mjs not found (set LLAMATRAIN_SHARED)" >&2; exit 2; fi
  PEERS=$OUT/peers
  cp -r "$SRC" "$PEERS"
  rm -rf "$PEERS/node_modules" "$PEERS/logs" "$PEERS/results.jsonl"
  # only jax-js is needed here (package.json also lists TensorFlow.js): keep its pinned version alone
  (cd "$PEERS" && node -e 'const f="package.json",p=require("./"+f);p.dependencies={"@jax-js/jax":p.dependencies["@jax-js/jax"]};require("fs").writeFileSync(f,JSON.stringify(p,null,2))' \
    && npm install --no-audit --no-fund --loglevel=error >&2)
fi

npm run build --silent
busy() { awk '/^cpu /{print $2+$3+$4+$7+$8}' /proc/stat; }
for r in $(seq 1 "$ROUNDS"); do
  # other processes' load during the jax-js run (cores), as ../shared/bench/peers/run_one.sh: /proc/stat minus its CPU time
  b0=$(busy); t0=$(date +%s.%N)
  (cd "$PEERS" && CFG=$CONFIG JAXJS_THREADS=$JTHREADS STEPS=$((JWARMUP + JSTEPS)) WARMUP=$JWARMUP TIED=$TIED \
    /usr/bin/time -f '%U %S' -o "$OUT/jax.$r.time" node jaxjs_train.mjs) \
    2> "$OUT/jax.$r.err" | grep '^RESULT ' | tail -1 | cut -c8- > "$OUT/jax.$r.json" || true
  b1=$(busy); t1=$(date +%s.%N)
  echo "$b0 $b1 $t0 $t1 $(getconf CLK_TCK) $(cat "$OUT/jax.$r.time")" | awk '{printf "%.2f", (($2-$1)/$5-($6+$7))/($4-$3)}' > "$OUT/jax.$r.other"
  if [ ! -s "$OUT/jax.$r.json" ]; then echo "peers.sh: jax-js failed:" >&2; tail -5 "$OUT/jax.$r.err" >&2; exit 1; fi
  node --max-semi-space-size=64 dist/bench/train.js --config "$CONFIG" --threads "$THREADS" --loss "$LOSS" \
    --steps "$STEPS" --quiet-wait "$QWAIT" $UNTIED_FLAG --json | tee "$OUT/ours.$r.txt" | head -n -1
  tail -1 "$OUT/ours.$r.txt" > "$OUT/ours.$r.json"
done

node --input-type=module - "$OUT" "$ROUNDS" <<'EOF'
import { readFileSync } from 'node:fs';
const [dir, rounds] = process.argv.slice(2);
for (let r = 1; r <= Number(rounds); r++) {
  const j = JSON.parse(readFileSync(`${dir}/jax.${r}.json`, 'utf8'));
  const o = JSON.parse(readFileSync(`${dir}/ours.${r}.json`, 'utf8'));
  const ratio = o.tokensPerSec / j.tokPerSec;
  const jOther = Number(readFileSync(`${dir}/jax.${r}.other`, 'utf8'));
  const oOther = o.otherLoadPerStep.reduce((a, b) => a + b, 0) / o.otherLoadPerStep.length;
  console.log(`round ${r}: ${o.config} (${o.tied ? 'tied' : 'untied'} head), loss ${o.loss}: llamatrain wasm ${o.threads} thread(s) ` +
    `${o.tokensPerSec} tok/s (${o.stepMs} ms/step, median of ${o.steps}) vs jax-js ${j.variant} ${j.tokPerSec} tok/s ` +
    `(${j.medianStepMs} ms/step, median of ${j.timedSteps}) → ratio ${ratio.toFixed(2)}; other load (cores): ours ${oOther.toFixed(2)}/step, jax-js ${jOther.toFixed(2)} over its run`);
  console.log(JSON.stringify({ config: o.config, tied: o.tied, threads: o.threads, jaxVariant: j.variant, loss: o.loss,
    oursTokPerSec: o.tokensPerSec, jaxTokPerSec: j.tokPerSec, ratio: +ratio.toFixed(3), oursStepMs: o.stepMs, jaxStepMs: j.medianStepMs,
    oursSteps: o.steps, jaxTimedSteps: j.timedSteps, oursParams: o.params, jaxParams: j.params, oursPeakRssMB: o.peakRssMB, jaxPeakRssMB: j.peakRssMB,
    oursOtherLoad: +oOther.toFixed(2), jaxOtherLoad: jOther, jaxStepTimesMs: j.stepTimesMs }));
}
EOF
