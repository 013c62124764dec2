#!/usr/bin/env bash
# bench/compare.sh: vkllm against llama.cpp on the same GGUF files and the same device.
#
#   bench/compare.sh [-p 128] [-n 32] [-r 3] [-t THREADS] (--synth | MODEL.gguf ...)
#
# For each model and each of R rounds it runs, one after the other, `vkllm bench --json` (vkllm, Vulkan),
# llama.cpp's llama-bench on its Vulkan backend and llama-bench on its CPU backend, each with one repetition
# after its own warm-up, then prints a markdown table of the medians over the rounds: prompt processing of
# P tokens (ppP) and generation of N tokens (tgN), in tokens/s, and vkllm's ratio to each llama.cpp backend
# (> 1: vkllm is faster).  Alternating the engines round by round spreads the noise of a shared machine
# over all of them instead of over whichever engine ran last.
#
# --synth makes the 134M-parameter llama (`vkllm synth --preset llama-134m`) in Q4_0, Q8_0 and F16 in
# ${XDG_CACHE_HOME:-~/.cache}/vkllm/compare-models and benchmarks those.
#
# Needs the llama.cpp peer (../shared/peer/README.md: `setup.sh --tools`).  On a machine without a GPU both
# Vulkan engines run on lavapipe (llama-bench.sh sets GGML_VK_VISIBLE_DEVICES=0, without which ggml would
# skip the CPU-type device).  Environment: VKLLM (the vkllm binary; default build/vkllm), PEER_DIR (the
# folder of llama-bench.sh; default ../shared/peer beside the checkout), PEER_HOME (as llama-bench.sh).
# Not part of CI: it takes minutes per model on lavapipe.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
vkllm=${VKLLM:-$repo/build/vkllm}
peer_dir=${PEER_DIR:-$(cd "$repo/../shared/peer" 2>/dev/null && pwd || echo "$repo/../shared/peer")}
peer_home=${PEER_HOME:-$HOME/.cache/llama-peer}
n_prompt=128 n_gen=32 rounds=3 threads=$(nproc) synth=0
models=()

usage() {
    echo "usage: bench/compare.sh [-p 128] [-n 32] [-r 3] [-t THREADS] (--synth | MODEL.gguf ...)" >&2
    exit 2
}

while (($#)); do
    case $1 in
        -p) n_prompt=${2:?}; shift 2 ;;
        -n) n_gen=${2:?}; shift 2 ;;
        -r) rounds=${2:?}; shift 2 ;;
        -t) threads=${2:?}; shift 2 ;;
        --synth) synth=1; shift ;;
        -h|--help) usage ;;
        -*) echo "compare.sh: unknown option $1" >&2; usage ;;
        *) models+=("$1"); shift ;;
    esac
done
((synth || ${#models[@]})) || usage
[[ $n_prompt =~ ^[0-9]+$ && $n_gen =~ ^[0-9]+$ && $rounds =~ ^[1-9][0-9]*$ ]] || usage

# ---- prerequisites -----------------------------------------------------------------------------------
[[ -x $vkllm ]] || { echo "compare.sh: no vkllm binary at $vkllm (build it, or set VKLLM)" >&2; exit 2; }
if [[ ! -x $peer_dir/llama-bench.sh || ! -x $peer_home/cpu/llama-bench || ! -x $peer_home/vulkan/llama-bench ]]; then
    cat >&2 <<EOF
compare.sh: the llama.cpp peer is not set up.
  expected $peer_dir/llama-bench.sh and $peer_home/{cpu,vulkan}/llama-bench.
  set it up once per machine (about 6 minutes):  $peer_dir/setup.sh --tools
  (see $peer_dir/README.md; PEER_DIR and PEER_HOME point elsewhere if it lives elsewhere)
EOF
    exit 2
fi

if ((synth)); then
    dir=${XDG_CACHE_HOME:-$HOME/.cache}/vkllm/compare-models
    mkdir -p "$dir"
    for type in Q4_0 Q8_0 F16; do
        out=$dir/llama-134m-$type.gguf
        # synth is deterministic: remake only when the binary that writes it is newer than the file.
        if [[ ! -s $out || $vkllm -nt $out ]]; then
            "$vkllm" synth --preset llama-134m --type "$type" -o "$out" >&2
        fi
        models+=("$out")
    done
fi
for m in "${models[@]}"; do [[ -r $m ]] || { echo "compare.sh: cannot read $m" >&2; exit 2; }; done

# ---- JSON: jq when installed, awk otherwise --------------------------------------------------------
# Each prints "pp TPS" and "tg TPS" lines (and "device NAME" / "type NAME") from one engine's output.
vkllm_fields() {
    if command -v jq >/dev/null; then
        jq -r '"pp \(.pp_tps)", "tg \(.tg_tps)", "device \(.device)"' "$1"
    else
        awk '{
            if (match($0, /"pp_tps": [0-9.]+/)) print "pp", substr($0, RSTART + 10, RLENGTH - 10)
            if (match($0, /"tg_tps": [0-9.]+/)) print "tg", substr($0, RSTART + 10, RLENGTH - 10)
            if (match($0, /"device": "[^"]*"/)) print "device", substr($0, RSTART + 11, RLENGTH - 12)
        }' "$1"
    fi
}

# llama-bench -o json: an array of tests, a prompt test has n_gen 0.  model_type is "llama ?B Q4_0" or
# "llama ?B (guessed) all F32": the type is what follows.
llama_fields() {
    if command -v jq >/dev/null; then
        jq -r '.[] | (if .n_gen == 0 then "pp" else "tg" end) + " \(.avg_ts)",
                     "device \(if .gpu_info != "" then .gpu_info else .cpu_info end)",
                     "type \(.model_type | sub("^[^ ]+ [^ ]+ (\\(guessed\\) )?"; ""))"' "$1"
    else
        # llama-bench pretty-prints one "key": value per line, n_gen before avg_ts within each test.
        awk -F': ' '
            function str(v) { sub(/^"/, "", v); sub(/",?$/, "", v); return v }
            /"gpu_info":/   { gpu = str($2) }
            /"cpu_info":/   { cpu = str($2) }
            /"model_type":/ { t = str($2); sub(/^[^ ]+ [^ ]+ /, "", t); sub(/^\(guessed\) /, "", t); print "type", t }
            /"n_gen":/      { gen = $2 + 0 }
            /"avg_ts":/     { print (gen == 0 ? "pp" : "tg"), $2 + 0; print "device", (gpu != "" ? gpu : cpu) }
        ' "$1"
    fi
}

# ---- the rounds -------------------------------------------------------------------------------------
work=$(mktemp -d /tmp/vkllm-compare-XXXXXX)
trap 'rm -rf "$work"' EXIT
results=$work/results   # lines: model-index engine test tokens/s
: >"$results"

# run_engine INDEX ENGINE MODEL: one benchmark run; its rates go to $results, its device to $work/device.ENGINE.
run_engine() {
    local i=$1 engine=$2 model=$3 out=$work/out.json err=$work/err
    local status=0
    case $engine in
        vkllm) "$vkllm" bench -m "$model" -p "$n_prompt" -n "$n_gen" -r 1 --json >"$out" 2>"$err" || status=$? ;;
        vulkan) "$peer_dir/llama-bench.sh" vulkan -m "$model" -p "$n_prompt" -n "$n_gen" -r 1 -o json \
                    >"$out" 2>"$err" || status=$? ;;
        cpu) "$peer_dir/llama-bench.sh" cpu -m "$model" -p "$n_prompt" -n "$n_gen" -r 1 -t "$threads" -o json \
                 >"$out" 2>"$err" || status=$? ;;
    esac
    if ((status != 0)) || [[ ! -s $out ]]; then
        echo "compare.sh: $engine failed on $model (exit $status):" >&2
        tail -n 5 "$err" >&2
        return 0
    fi
    local fields
    if [[ $engine == vkllm ]]; then fields=$(vkllm_fields "$out"); else fields=$(llama_fields "$out"); fi
    local rates=""
    while read -r key value; do
        case $key in
            pp|tg) echo "$i $engine $key $value" >>"$results"; rates+=" $key $value" ;;
            device) echo "$value" >"$work/device.$engine" ;;
            type) echo "$value" >"$work/type.$i" ;;
        esac
    done <<<"$fields"
    echo "compare.sh:   $engine:$rates tokens/s" >&2
}

# llama.cpp's CPU threads wait for each other by spinning: with as many threads as cores, any other job on
# the machine stalls every barrier (measured here: Q4_0 pp128 777 tokens/s with -t 1, 104 with -t 2 while a
# third process ran).  Say so when the machine is busy.
read -r load _ </proc/loadavg
if awk -v l="$load" -v t="$threads" 'BEGIN { exit !(l > 0.5 && t >= '"$(nproc)"') }'; then
    echo "compare.sh: load average $load with -t $threads on $(nproc) cores: llama.cpp CPU figures will suffer" \
         "from other jobs; consider -t $(($(nproc) - 1 > 0 ? $(nproc) - 1 : 1))" >&2
fi

engines=(vkllm vulkan cpu)
for ((r = 1; r <= rounds; r++)); do
    for i in "${!models[@]}"; do
        for e in "${engines[@]}"; do
            echo "compare.sh: round $r/$rounds, $(basename "${models[$i]}"), $e" >&2
            run_engine "$i" "$e" "${models[$i]}"
        done
    done
done

# ---- the table --------------------------------------------------------------------------------------
median() { # median of the tokens/s of model $1, engine $2, test $3; "-" when no run succeeded
    awk -v i="$1" -v e="$2" -v t="$3" '$1 == i && $2 == e && $3 == t { print $4 }' "$results" | sort -g |
        awk '{ v[NR] = $1 } END {
            if (NR == 0) print "-"
            else printf "%.2f\n", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2f\n", a / b }'; }
device_of() { cat "$work/device.$1" 2>/dev/null || echo "?"; }

echo
echo "vkllm: $(device_of vkllm); llama.cpp Vulkan: $(device_of vulkan); llama.cpp CPU: $(device_of cpu), -t $threads"
echo "median tokens/s of $rounds rounds (each: vkllm, llama.cpp Vulkan, llama.cpp CPU, one run after a warm-up)"
echo
echo "| model | type | test | vkllm | llama.cpp Vulkan | vkllm / Vulkan | llama.cpp CPU | vkllm / CPU |"
echo "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"
for i in "${!models[@]}"; do
    type=$(cat "$work/type.$i" 2>/dev/null || echo "?")
    for t in pp tg; do
        n=$n_prompt; [[ $t == tg ]] && n=$n_gen
        ((n > 0)) || continue
        v=$(median "$i" vkllm "$t") lv=$(median "$i" vulkan "$t") lc=$(median "$i" cpu "$t")
        echo "| $(basename "${models[$i]}" .gguf) | $type | $t$n | $v | $lv | $(ratio "$v" "$lv") | $lc | $(ratio "$v" "$lc") |"
    done
done
