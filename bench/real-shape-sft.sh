#!/usr/bin/env bash
# issue acceptance at real sizes: LoRA fine-tuning of a Llama-3.2-1B-shaped and a Qwen3-1.7B-shaped BF16 checkpoint
# (random weights, two shards, the real tokenizers) by Hub id from an offline Hugging Face cache, with the README's
# command. Prints peak RSS (GNU time), wall time, load time and s/step from the run's own output.
#   bash bench/real-shape-sft.sh [HF_HOME dir, default /tmp/llamatrain-real-hf] [extra sft flags…]
set -euo pipefail
cd "$(dirname "$0")/.."
HF=${1:-/tmp/llamatrain-real-hf}; shift || true
[ -d dist ] || npm run build
if [ ! -d "$HF/hub/models--Qwen--Qwen3-1.7B" ] || [ ! -d "$HF/hub/models--meta-llama--Llama-3.2-1B-Instruct" ]; then
  node tools/make-real-shape.mjs --hf-home "$HF" --model all
fi
grep -m1 "model name" /proc/cpuinfo
for id in meta-llama/Llama-3.2-1B-Instruct Qwen/Qwen3-1.7B; do
  out=$(mktemp -d)/run
  snap=$(ls -d "$HF/hub/models--${id/\//--}/snapshots/"*/)
  bytes=$(du -cb "$snap"/*.safetensors | tail -1 | cut -f1)
  start=$(date +%s.%N)
  HF_HOME="$HF" HF_HUB_OFFLINE=1 /usr/bin/time -v node --max-semi-space-size=64 bin/llamatrain.js sft --from="$id" --steps=2 \
    --batch-size=1 --seq-len=256 --out="$out" "$@" > "$out.log" 2> "$out.err" || { echo "$id: FAILED"; tail -5 "$out.err"; continue; }
  end=$(date +%s.%N)
  rss=$(grep "Maximum resident" "$out.err" | awk '{print $6}')
  echo "$id: exit 0, safetensors $(numfmt --to=iec "$bytes"), peak RSS $(numfmt --to=iec $((rss * 1024))) = $(awk -v r="$rss" -v b="$bytes" 'BEGIN{printf "%.2f", r*1024/b}')x, wall $(awk -v a="$start" -v b="$end" 'BEGIN{printf "%.0f", b-a}') s"
  grep -E "^step |loaded|adapter \(PEFT\)" "$out.err" "$out.log" | sed 's/^[^:]*://' | head -5
  ls "$out/adapter"
done
