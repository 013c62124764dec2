#!/usr/bin/env bash
# The figures of docs/kv-cache.md: perplexity and KL divergence per KV cache type on stories260K (the shared
# eval text, every chunk) and on llama-134m (random weights: KL only, --chunks), cache bytes per token, and
# decode tokens/s at contexts 512 and 4096, all in one run on this machine.
#   bench/kv-cache.sh [BUILD_DIR] [OUT_DIR]     (needs ../shared: stories260K.gguf and data/stories-eval.txt)
# ONLY=ppl or ONLY=speed runs one half; REPS (2), CHUNKS_134M (2) size them.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
out=${2:-$(mktemp -d /tmp/vkllm-kv-cache-XXXXXX)}
shared=${VKLLM_SHARED_DIR:-$here/../shared}
vk=$build/vkllm
stories=$shared/models/stories260K.gguf
text=$shared/data/stories-eval.txt
m134=$out/llama-134m-f16.gguf
m134q=$out/llama-134m-q4_0.gguf
only=${ONLY:-}
chunks_134m=${CHUNKS_134M:-2}
reps=${REPS:-2}
mkdir -p "$out"
[[ -f $m134 ]] || "$vk" synth --preset llama-134m --type F16 -o "$m134" >/dev/null
[[ -f $m134q ]] || "$vk" synth --preset llama-134m --type Q4_0 -o "$m134q" >/dev/null

# K type, V type, rotation of quantized keys, their centering on the mean key (on, on are the defaults)
types=("f16 f16 on on" "q8_0 q8_0 on on" "q8_0 q8_0 on off" "q8_0 q8_0 off on" "q8_0 q8_0 off off"
       "q4_0 q4_0 on on" "q4_0 q4_0 on off" "q4_0 q4_0 off on" "q4_0 q4_0 off off" "q8_0 q4_0 on on" "q8_0 q4_0 on off"
       "f16 q8_0 on on" "f16 q4_0 on on" "q8_0 f16 on on" "q8_0 f16 on off" "q4_0 f16 on on" "q4_0 f16 on off")
if [[ $only != speed ]]; then
echo "# perplexity and KL divergence against the F16 cache (stories260K: all chunks; llama-134m: $chunks_134m chunks)"
for model in stories260K llama-134m; do
    if [[ $model == stories260K ]]; then m=$stories; extra=(); else m=$m134; extra=(--chunks "$chunks_134m"); fi
    base=$out/$model.f16.kld
    "$vk" perplexity -m "$m" -f "$text" "${extra[@]}" --kv f16 --kl-base "$base" >/dev/null 2>&1
    for kv in "${types[@]}"; do
        set -- $kv
        printf '%s k=%s v=%s rotate=%s center=%s ' "$model" "$1" "$2" "$3" "$4"
        "$vk" perplexity -m "$m" -f "$text" "${extra[@]}" --kv-k "$1" --kv-v "$2" --kv-rotate "$3" --kv-center "$4" \
            --kl "$base" --json 2>/dev/null
    done
    rm -f "$base"
done
printf 'stories260K k=f32 v=f32 rotate=off '; "$vk" perplexity -m "$stories" -f "$text" --kv f32 --json 2>/dev/null
fi
[[ $only == ppl ]] && exit 0

echo "# decode tokens/s at a filled context (llama-134m Q4_0 weights, 32 steps, $reps runs)"
for depth in 512 4096; do
    for kv in "f16 f16 on on" "q8_0 q8_0 on on" "q8_0 q8_0 on off" "q8_0 q8_0 off off" "q4_0 q4_0 on on" \
              "q8_0 q4_0 on on" "f16 q8_0 on on"; do
        set -- $kv
        printf 'd=%s k=%s v=%s rotate=%s center=%s ' "$depth" "$1" "$2" "$3" "$4"
        "$vk" bench -m "$m134q" -p 0 -n 32 -d "$depth" -r "$reps" --kv-k "$1" --kv-v "$2" --kv-rotate "$3" \
            --kv-center "$4" --no-ttft --json 2>/dev/null
    done
done
