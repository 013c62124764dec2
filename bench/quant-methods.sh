#!/usr/bin/env bash
# The figures of docs/quantization.md: KL divergence from the F32 model and perplexity of each weight-quantization
# method per file type, on stories260K (and llama-134m: random weights, so KL only), calibrated on
# the shared stories-calib.txt and evaluated on stories-eval.txt (never the same text), with llama.cpp's own
# imatrix quantization of the same file beside them (llama-imatrix + llama-quantize, when the peer is there).
#   bench/quant-methods.sh [BUILD_DIR] [OUT_DIR]
# MODELS ("stories260K"; "stories260K llama-134m" for both),
# TYPES ("Q4_0 Q4_K_M Q3_K_M Q2_K"), METHODS ("rtn imatrix gptq awq awq+gptq llama-imatrix"; also gptq-seq-layer,
# gptq-seq-input: --sequential layer|input with --sequential-target $SEQ_TARGET (float; or quantized), gptq-rounds:
# --gptq-rounds 1, gptq-descent: --gptq-descent 1, gptq-seq-best: --sequential input --gptq-rounds 1 --gptq-descent 1),
# OUTPUT_TYPE (an --output-tensor-type for every vkllm method, e.g. Q8_0 as llama-quantize's Q4_0 keeps it), CTX (512: the
# calibration and evaluation chunk), CHUNKS_134M (2; CALIB_CHUNKS_134M, default the same, for the calibration
# alone) size the run.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
out=${2:-$(mktemp -d /tmp/vkllm-quant-methods-XXXXXX)}
shared=${VKLLM_SHARED_DIR:-$here/../shared}
peer=${PEER_HOME:-$HOME/.cache/llama-peer}/cpu
vk=$build/vkllm
calib=$shared/data/stories-calib.txt
eval_text=$shared/data/stories-eval.txt
types=${TYPES:-Q4_0 Q4_K_M Q3_K_M Q2_K}
methods=${METHODS:-rtn imatrix gptq awq awq+gptq llama-imatrix}
ctx=${CTX:-512}
mkdir -p "$out"

llama() { env -u LD_PRELOAD LD_LIBRARY_PATH="$peer" "$peer/$1" "${@:2}"; }

for model in ${MODELS:-stories260K}; do
    if [[ $model == stories260K ]]; then
        m=$shared/models/stories260K.gguf; calib_extra=(); eval_extra=()
    else
        m=$out/llama-134m-f32.gguf; calib_extra=(--calib-chunks "${CALIB_CHUNKS_134M:-${CHUNKS_134M:-2}}")
        eval_extra=(--chunks "${CHUNKS_134M:-2}")
        [[ -f $m ]] || "$vk" synth --preset llama-134m --type F32 -o "$m" >/dev/null
    fi
    base=$out/$model.f32.kld
    printf '%s F32 - ' "$model"
    "$vk" perplexity -m "$m" -f "$eval_text" -c "$ctx" "${eval_extra[@]}" --kv f32 --kl-base "$base" --json 2>/dev/null
    imx=$out/$model.vkllm.imatrix.gguf limx=$out/$model.llama.imatrix.gguf
    chunks_flag=(); [[ $model != stories260K ]] && chunks_flag=(--chunks "${CALIB_CHUNKS_134M:-${CHUNKS_134M:-2}}")
    if [[ " $methods " == *" imatrix "* ]]; then
        start=$(date +%s%N)
        "$vk" imatrix -m "$m" -f "$calib" -o "$imx" -c "$ctx" "${chunks_flag[@]}" >/dev/null 2>&1
        echo "# vkllm imatrix: $(( ($(date +%s%N) - start) / 1000000 )) ms"
    fi
    have_peer=0
    if [[ " $methods " == *" llama-imatrix "* && -x $peer/llama-imatrix ]]; then
        llama llama-imatrix -m "$m" -f "$calib" -o "$limx" -c "$ctx" "${chunks_flag[@]}" >/dev/null 2>&1 && have_peer=1
    fi
    for type in $types; do
        for method in $methods; do
            q=$out/$model.$type.$method.gguf
            start=$(date +%s%N)
            out_type=(); [[ -n ${OUTPUT_TYPE:-} ]] && out_type=(--output-tensor-type "$OUTPUT_TYPE")
            case $method in
                rtn) "$vk" quantize "${out_type[@]}" "$m" "$q" "$type" >/dev/null ;;
                imatrix) "$vk" quantize "${out_type[@]}" --imatrix "$imx" "$m" "$q" "$type" >/dev/null ;;
                gptq|awq|awq+gptq)
                    "$vk" quantize "${out_type[@]}" --method "$method" --calib "$calib" --calib-ctx "$ctx" \
                        "${calib_extra[@]}" "$m" "$q" "$type" >/dev/null 2>&1 ;;
                gptq-seq-layer|gptq-seq-input|gptq-rounds|gptq-descent|gptq-seq-best)
                    extra=(--gptq-rounds 1)
                    [[ $method == gptq-seq-layer || $method == gptq-seq-input ]] &&
                        extra=(--sequential "${method#gptq-seq-}" --sequential-target "${SEQ_TARGET:-float}")
                    [[ $method == gptq-descent ]] && extra=(--gptq-descent 1)
                    [[ $method == gptq-seq-best ]] && extra=(--sequential input --gptq-rounds 1 --gptq-descent 1)
                    "$vk" quantize "${out_type[@]}" --method gptq "${extra[@]}" --calib "$calib" --calib-ctx "$ctx" \
                        "${calib_extra[@]}" "$m" "$q" "$type" >/dev/null 2>&1 ;;
                llama-imatrix)
                    ((have_peer)) || continue
                    # vkllm's Q4_0 is pure (every weight Q4_0, as `vkllm quantize` names it): llama's --pure.
                    pure=(); [[ $type == Q4_0 ]] && pure=(--pure)
                    llama llama-quantize "${pure[@]}" --imatrix "$limx" "$m" "$q" "$type" 1 >/dev/null 2>&1 ;;
            esac
            printf '%s %s %s %dms ' "$model" "$type" "$method" $(( ($(date +%s%N) - start) / 1000000 ))
            "$vk" perplexity -m "$q" -f "$eval_text" -c "$ctx" "${eval_extra[@]}" --kv f32 --kl "$base" --json 2>/dev/null
            rm -f "$q"
        done
    done
    rm -f "$base"
done
