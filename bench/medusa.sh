#!/usr/bin/env bash
# bench/medusa.sh: the Medusa figures of docs/speculative.md on the default Vulkan device (lavapipe here).
#
#   bench/medusa.sh [-r REPS] [--tokens N] [--heads FILE] [--vkllm PATH]
#
#   1. trains 4 heads on stories260K's own greedy text (--tokens, default 131072; skipped when FILE exists), timed
#   2. `vkllm run -p "Once upon a time" -n 256 --temp 0`, plain and with --medusa, alternated REPS times (default 5):
#      the texts compared, generation tokens/s of each run, the medians and their ratio, tokens per pass
#   3. the same through `vkllm bench --medusa` (alternated inside one call), adaptive and --no-adaptive, chains of
#      3 and 2 heads, then trees (--medusa-tree) of 4, 7 and 24 nodes
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
reps=5 tokens=131072 heads=/tmp/vkllm-medusa-heads.gguf vk=$repo/build/vkllm
while (($#)); do
    case $1 in
        -r) reps=$2; shift 2 ;;
        --tokens) tokens=$2; shift 2 ;;
        --heads) heads=$2; shift 2 ;;
        --vkllm) vk=$2; shift 2 ;;
        *) echo "usage: $0 [-r REPS] [--tokens N] [--heads FILE] [--vkllm PATH]" >&2; exit 2 ;;
    esac
done
stories=${VKLLM_MODEL:-$repo/../shared/models/stories260K.gguf}
calib=$repo/../shared/data/stories-calib.txt
if [[ ! -e $heads ]]; then
    echo "== vkllm medusa-train --heads 4 --tokens $tokens --epochs 4"
    start=$(date +%s)
    "$vk" medusa-train -m "$stories" -o "$heads" --heads 4 --tokens "$tokens" --epochs 4 --calib "$calib" 2>&1 |
        tr '\r' '\n' | grep -E '^(epoch|wrote)'
    echo "   $(( $(date +%s) - start )) s"
fi
run() { "$vk" run -m "$stories" -p "Once upon a time" -n 256 --temp 0 "$@"; }
tps() { sed -n 's/^generation: .*(\([0-9.]*\) tokens\/s)/\1/p'; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
plain=() medusa=()
echo "== vkllm run -p \"Once upon a time\" -n 256 --temp 0 [--medusa $heads], alternated $reps times"
for ((r = 0; r < reps; r++)); do
    for order in 0 1; do
        if (( (r + order) % 2 == 0 )); then
            run >/tmp/medusa-plain.txt 2>/tmp/medusa-plain.err; plain+=("$(tps </tmp/medusa-plain.err)")
        else
            run --medusa "$heads" >/tmp/medusa-spec.txt 2>/tmp/medusa-spec.err; medusa+=("$(tps </tmp/medusa-spec.err)")
        fi
    done
    cmp -s /tmp/medusa-plain.txt /tmp/medusa-spec.txt && same=same || same=DIFFERENT
    echo "   run $r: plain ${plain[-1]}, medusa ${medusa[-1]} tokens/s, $same text; $(grep '^speculation' /tmp/medusa-spec.err)"
done
mp=$(printf '%s\n' "${plain[@]}" | median) ms=$(printf '%s\n' "${medusa[@]}" | median)
echo "   medians: plain $mp, medusa $ms tokens/s: $(awk -v a="$ms" -v b="$mp" 'BEGIN {printf "%.2fx", a / b}')"
for extra in "" --no-adaptive; do
    echo "== vkllm bench -p 0 -n 256 -r $reps --medusa $heads $extra"
    "$vk" bench -m "$stories" -p 0 -n 256 -r "$reps" --no-ttft --medusa "$heads" $extra 2>/dev/null | sed -n '/^speculation/,$p'
done
for k in 3 2; do
    echo "== vkllm bench -p 0 -n 256 -r $reps --medusa $heads --no-adaptive --draft-max $k"
    "$vk" bench -m "$stories" -p 0 -n 256 -r "$reps" --no-ttft --medusa "$heads" --no-adaptive --draft-max "$k" 2>/dev/null |
        sed -n '/^speculation/,$p'
done
for tree in 0,1,0.0,0.0.0 0,1,2,0.0,1.0,0.0.0,0.0.0.0 default; do
    echo "== vkllm bench -p 0 -n 256 -r $reps --medusa $heads --medusa-tree $tree"
    "$vk" bench -m "$stories" -p 0 -n 256 -r "$reps" --no-ttft --medusa "$heads" --medusa-tree "$tree" 2>/dev/null |
        sed -n '/^speculation/,$p'
done
