#!/usr/bin/env bash
# bench/speculative.sh: the figures of docs/speculative.md, on the default Vulkan device (lavapipe here): greedy text
# with and without speculative decoding, alternated within each `vkllm bench` call (same text checked).
#
#   bench/speculative.sh [-r REPS] [-n TOKENS] [--models DIR] [--vkllm PATH]
#
#   1. stories260K, -p "Once upon a time", --lookup (adaptive, then --no-adaptive)
#   2. self-draft: llama-134m F16 target, the same preset and seed in Q4_0 (and Q8_0) as the draft (acceptance,
#      speed-up), without the adaptive stop and with it
#   3. a draft that is almost always wrong (llama-134m Q4_0 of another seed): the adaptive stop must keep the run
#      within 5% of plain decoding
# Models are synthesized into DIR (default /tmp/vkllm-spec-models) when missing.  Takes 5-15 minutes on 2 CPUs.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
reps=5 n=256 models=/tmp/vkllm-spec-models vk=$repo/build/vkllm
while (($#)); do
    case $1 in
        -r) reps=$2; shift 2 ;;
        -n) n=$2; shift 2 ;;
        --models) models=$2; shift 2 ;;
        --vkllm) vk=$2; shift 2 ;;
        *) echo "usage: $0 [-r REPS] [-n TOKENS] [--models DIR] [--vkllm PATH]" >&2; exit 2 ;;
    esac
done
stories=${VKLLM_MODEL:-$repo/../shared/models/stories260K.gguf}
mkdir -p "$models"
synth() { # PRESET TYPE SEED
    local f=$models/$1-$2-s$3.gguf
    [[ -e $f ]] || "$vk" synth --preset "$1" --type "$2" --seed "$3" -o "$f" >/dev/null
    echo "$f"
}
bench() { echo "== vkllm bench $*"; "$vk" bench -p 0 -r "$reps" --no-ttft "$@" 2>/dev/null | sed -n '/^speculation/,$p'; }

bench -m "$stories" -n "$n" --lookup
bench -m "$stories" -n "$n" --lookup --no-adaptive
target=$(synth llama-134m F16 7) draft=$(synth llama-134m Q4_0 7) draft8=$(synth llama-134m Q8_0 7)
other=$(synth llama-134m Q4_0 8)
small=$((n < 64 ? n : 64))
bench -m "$target" -n "$small" --draft "$draft" --no-adaptive
bench -m "$target" -n "$small" --draft "$draft8" --no-adaptive
bench -m "$target" -n "$n" --draft "$draft"
bench -m "$target" -n "$n" --draft "$other"
