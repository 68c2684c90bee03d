#!/usr/bin/env bash
# Runs the PyTorch reference (../shared/bench/bench_train.py, PyTorch at its best on this machine: OpenBLAS
# with its AVX-512 kernels, huge-page malloc) and our bench on the same config in the same run, alternating,
# and prints each throughput and the ratio. Needs: apt-get install -y python3-torch libopenblas0-openmp
#
#   bench/compare.sh --config tiny|s15M [--threads N] [--backend wasm|native|ref] [--loss unfused|fused|none]
#                    [--steps N] [--rounds R] [--torch-loss standard|chunked_fn|...] [--quiet-wait S] [--ours-env-coretype]
# --quiet-wait S goes to both benches: each waits up to S s for a quiet machine (≥ one 0.25 s window) before
# every step. Default: each script's own (PyTorch 20, ours 10). --quiet-wait 0 runs both back to back, as a
# training loop does; on this VM it is the steadier measure: memory left untouched for 0.25 s costs ~14 µs per
# 4 KiB page to touch again, which slows the first part of every small step on both sides (RESULTS 2026-11-28).
# --torch-loss picks PyTorch's loss (default: the one matching ours: unfused -> standard, fused -> chunked_fn).
# Warm-up: ours ≥ 2 s (its --warmup-s: V8's JIT settles), PyTorch its 3 steps (no JIT: 3 and 60 warm-up steps gave
# the same tiny speed, RESULTS 2026-11-28).
# Our bench runs without the huge-page tunable: for Node it made fresh-array allocation slower (measured).
# --backend native: our bench loads the same OpenBLAS build (the openmp one) with the same OPENBLAS_CORETYPE as
# PyTorch (SkylakeX), so both sides run the same GEMM kernels; --ours-env-coretype leaves ours the environment's
# (a machine that sets OPENBLAS_CORETYPE to an older core halves OpenBLAS's speed: the library only reports it).
set -euo pipefail
cd "$(dirname "$0")/.."

CONFIG=tiny THREADS=2 BACKEND=wasm LOSS=unfused STEPS=0 ROUNDS=1 PT_LOSS= QWAIT= ENV_CORE=0 CORETYPE=SkylakeX
while [ $# -gt 0 ]; do
  case "$1" in
    --config) CONFIG=$2; shift 2 ;; --threads) THREADS=$2; shift 2 ;; --backend) BACKEND=$2; shift 2 ;;
    --loss) LOSS=$2; shift 2 ;; --steps) STEPS=$2; shift 2 ;; --rounds) ROUNDS=$2; shift 2 ;;
    --torch-loss) PT_LOSS=$2; shift 2 ;; --quiet-wait) QWAIT=$2; shift 2 ;; --ours-env-coretype) ENV_CORE=1; shift ;;
    *) echo "compare.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

REF_DIR=${LLAMATRAIN_SHARED:-../shared}/bench
if [ ! -f "$REF_DIR/bench_train.py" ]; then echo "compare.sh: $REF_DIR/bench_train.py not found (set LLAMATRAIN_SHARED)" >&2; exit 2; fi
if ! /usr/bin/python3 -c 'import torch' 2>/dev/null || [ ! -d /usr/lib/x86_64-linux-gnu/openblas-openmp ]; then
  echo "compare.sh: needs PyTorch and OpenBLAS: apt-get install -y python3-torch libopenblas0-openmp" >&2; exit 2
fi
# PyTorch's loss that matches ours: unfused = F.cross_entropy on full logits; fused = chunked linear+CE
[ -n "$PT_LOSS" ] || case "$LOSS" in unfused|none) PT_LOSS=standard ;; fused) PT_LOSS=chunked_fn ;; *) echo "bad --loss $LOSS" >&2; exit 2 ;; esac
QW_FLAG=${QWAIT:+--quiet-wait $QWAIT}
PT_STEPS=$([ "$STEPS" -gt 0 ] && echo "$STEPS" || { [ "$CONFIG" = tiny ] && echo 20 || echo 6; })

npm run build --silent
OUT=$(mktemp -d)
for r in $(seq 1 "$ROUNDS"); do
  (cd "$REF_DIR" && LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp OPENBLAS_CORETYPE=$CORETYPE \
    GLIBC_TUNABLES=glibc.malloc.hugetlb=1 /usr/bin/python3 bench_train.py --config "$CONFIG" --threads "$THREADS" \
    --loss "$PT_LOSS" --steps "$PT_STEPS" $QW_FLAG) | tail -1 > "$OUT/torch.$r.json"
  if [ "$BACKEND" = native ] && [ "$ENV_CORE" = 0 ]; then OURS_ENV=(env LLAMATRAIN_BLAS=/usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so.0 OPENBLAS_CORETYPE=$CORETYPE); else OURS_ENV=(env); fi
  "${OURS_ENV[@]}" node dist/bench/train.js --config "$CONFIG" --threads "$THREADS" \
    --backend "$BACKEND" --loss "$LOSS" --steps "$STEPS" $QW_FLAG --json | tee "$OUT/ours.$r.txt" | head -n -1
  tail -1 "$OUT/ours.$r.txt" > "$OUT/ours.$r.json"
done

node --input-type=module - "$OUT" "$ROUNDS" "${QWAIT:-default}" <<'EOF'
import { readFileSync } from 'node:fs';
const [dir, rounds, quietWait] = process.argv.slice(2);
for (let r = 1; r <= Number(rounds); r++) {
  const t = JSON.parse(readFileSync(`${dir}/torch.${r}.json`, 'utf8'));
  const o = JSON.parse(readFileSync(`${dir}/ours.${r}.json`, 'utf8'));
  const ratio = o.tokensPerSec / t.tok_s_median;
  console.log(`round ${r}: ${o.config}, ${o.threads} thread(s), loss ${o.loss} (PyTorch ${t.loss_impl}): llamatrain ${o.backend} ${o.tokensPerSec} tok/s ` +
    `(peak RSS ${o.peakRssMB} MB) vs PyTorch ${t.tok_s_median.toFixed(1)} tok/s (peak RSS ${t.peak_rss_steady_mb.toFixed(0)} MB, ` +
    `${t.torch}) → ratio ${ratio.toFixed(3)}`);
  console.log(JSON.stringify({ config: o.config, threads: o.threads, loss: o.loss, backend: o.backend, oursTokPerSec: o.tokensPerSec,
    torchTokPerSec: +t.tok_s_median.toFixed(1), ratio: +ratio.toFixed(3), quietWait, oursPeakRssMB: o.peakRssMB, torchPeakRssMB: +t.peak_rss_steady_mb.toFixed(1) }));
}
EOF
rm -rf "$OUT"
