#!/usr/bin/env bash
# peer_loads_files: llama.cpp loads and runs every kind of GGUF file vkllm writes, and on F32 weights it
# generates the same greedy ids as vkllm, from the same log-probabilities.
#   peer_loads.sh VKLLM SAMPLE_LOGITS WORK_DIR [--write-only]
# --write-only (the sanitizer build): writes every file and runs vkllm's side (sample-logits on the F32 files),
# under the sanitizers, and not llama.cpp, whose runs the sanitizers do not see and the normal build's test makes.
# VKLLM is the CLI (`vkllm synth`, `vkllm quantize`), SAMPLE_LOGITS is samples/logits.c (which rebuilds the
# prompt of the peer's bench.mjs). llama.cpp is the peer of ../shared/peer: node-llama-cpp installed by its
# setup.sh in $PEER_HOME (default ~/.cache/llama-peer), run on the CPU backend. Without the peer the test
# skips (exit 77), unless VKLLM_REQUIRE_PEER=1 (CI), where it fails.
set -euo pipefail
vkllm=$1 sample_logits=$2 work=$3 write_only=0
[[ ${4:-} == --write-only ]] && write_only=1
peer=${PEER_HOME:-$HOME/.cache/llama-peer}

skip() {
  echo "peer_loads_files: $1."
  echo "  Set the peer up with ../shared/peer/setup.sh (node >= 20 and npm; PEER_HOME=DIR to install elsewhere)."
  [[ ${VKLLM_REQUIRE_PEER:-0} == 1 ]] && { echo "  VKLLM_REQUIRE_PEER=1: failing instead of skipping."; exit 1; }
  exit 77
}

# node runs without the sanitizer build's environment: CI preloads lavapipe for the ASan tests.
peer_node() { (cd "$peer" && env -u LD_PRELOAD -u ASAN_OPTIONS -u UBSAN_OPTIONS node "$@"); }

if ((!write_only)); then
  [[ -f $peer/bench.mjs && -d $peer/node_modules/node-llama-cpp ]] || skip "no llama.cpp peer in $peer"
  command -v node >/dev/null || skip "node is not installed"
  node_major=$(peer_node -p 'process.versions.node.split(".")[0]')
  ((node_major >= 20)) || skip "node $(peer_node --version) is too old for node-llama-cpp (it needs 20 or later)"
fi

# Every type `vkllm synth --help` lists: "types: F32 F16 ... Q6_K (pure); Q2_K ... Q5_K_M (llama.cpp mixtures)".
types=$("$vkllm" synth --help | sed -n 's/^ *types: //p')
pure=${types%%(pure)*}
mixtures=${types#*;}
mixtures=${mixtures%%(*}
[[ " $pure " == *" F32 "* && " $mixtures " == *" Q4_K_M "* ]] || { echo "cannot read the types from: $types"; exit 1; }

rm -rf "$work"
mkdir -p "$work"
work=$(cd "$work" && pwd) # node runs in $peer
files=()
for preset in tiny tiny-qwen2; do
  for type in $pure; do
    "$vkllm" synth --preset "$preset" --type "$type" --seed 7 -o "$work/$preset-$type.gguf" >/dev/null
    files+=("$work/$preset-$type.gguf")
  done
  for mixture in $mixtures; do
    "$vkllm" quantize "$work/$preset-F32.gguf" "$work/$preset-$mixture.gguf" "$mixture" >/dev/null
    files+=("$work/$preset-$mixture.gguf")
  done
done

# Importance-weighted quantization (tests/data/quant/tiny-seed7.imatrix.gguf is llama-imatrix's for the tiny
# preset with seed 7, the files above).
imatrix=$(dirname "$0")/../data/quant/tiny-seed7.imatrix.gguf
for mixture in Q4_0 Q2_K Q4_K_M; do
  "$vkllm" quantize --imatrix "$imatrix" "$work/tiny-F32.gguf" "$work/tiny-$mixture-imatrix.gguf" "$mixture" >/dev/null
  files+=("$work/tiny-$mixture-imatrix.gguf")
done
# GPTQ and AWQ write the same block formats (calibrated on one chunk of a short text: what is checked is the file).
calib=$(dirname "$0")/../data/short-text.txt
for method in gptq awq+gptq; do
  "$vkllm" quantize --method "$method" --calib "$calib" --calib-ctx 16 "$work/tiny-F32.gguf" \
    "$work/tiny-Q4_K_M-$method.gguf" Q4_K_M >/dev/null 2>&1
  files+=("$work/tiny-Q4_K_M-$method.gguf")
done

n_prompt=16 n_gen=8
if ((write_only)); then
  for f in "${files[@]}"; do
    [[ $f == *-F32.gguf ]] || continue
    "$sample_logits" "$f" -n $n_prompt -m $n_gen --kv f32 -o "${f%.gguf}.vkllm.json" ||
      { echo "FAIL ${f##*/}: sample-logits"; exit 1; }
  done
  echo "peer_loads_files: wrote all ${#files[@]} files and ran vkllm on the F32 ones (--write-only: no llama.cpp)"
  exit 0
fi

# bench/compare_logits.py's comparison as a check, without python: llama.cpp's dump and vkllm's must have the
# same prompt, the same greedy ids, and log-probabilities of the first generated position within 1e-4 (with
# F32 weights, F32 KV cache and no flash attention they differ by about 2e-6).
compare_dumps() {  # $1 llama.cpp's bench.mjs --dump, $2 vkllm's sample-logits -o
  peer_node -e '
    const fs = require("fs");
    const [peer, ours] = process.argv.slice(1).map((f) => JSON.parse(fs.readFileSync(f, "utf8")));
    const diff = Math.max(...peer.logprobs.map((x, i) => Math.abs(x - ours.logprobs[i])));
    const problem =
        peer.prompt.join() !== ours.prompt.join() ? `prompts differ: llama.cpp ${peer.prompt}, vkllm ${ours.prompt}`
      : peer.generated.join() !== ours.generated.join() ? `greedy ids differ: llama.cpp ${peer.generated}, vkllm ${ours.generated}`
      : peer.logprobs.length !== ours.logprobs.length ? `vocabularies differ: ${peer.logprobs.length} and ${ours.logprobs.length} log-probabilities`
      : !(diff < 1e-4) ? `log-probabilities differ by up to ${diff} (expected under 1e-4)` : "";
    console.log(problem || `same ids, log-probabilities within ${diff.toExponential(1)}`);
    process.exitCode = problem ? 1 : 0;' "$1" "$2" 2>&1
}

# The prompt is bench.mjs's default (BOS, then pseudo-random ids), as sample-logits rebuilds it.  One thread:
# on models this small node-llama-cpp's second thread costs more than it gives (1.4 s a file instead of 0.9 s).
failed=()
fail() { echo "FAIL $1: $2"; failed+=("$1"); }
for f in "${files[@]}"; do
  name=${f##*/}
  dump=${f%.gguf}.llama.json
  if ! out=$(peer_node bench.mjs --model "$f" --gpu cpu --n $n_prompt --m $n_gen --reps 1 --warmup 0 \
                       --threads 1 --fa off --kv f32 --dump "$dump" --verbose 2>&1) || [[ ! -s $dump ]]; then
    fail "$name" "llama.cpp could not load or run it:"
    { echo "$out" | grep -E '^\[error\]|Error' || echo "$out" | tail -n 5; } | sed 's/^/    /'
    continue
  fi
  note=$(echo "$out" | sed -n 's/^generated ids: \([0-9,]*\).*/llama.cpp generated \1/p')
  if [[ $name == *-F32.gguf ]]; then
    ours=${f%.gguf}.vkllm.json
    if ! "$sample_logits" "$f" -n $n_prompt -m $n_gen --kv f32 -o "$ours"; then
      fail "$name" "vkllm (sample-logits) could not run it"
      continue
    fi
    if ! note=$(compare_dumps "$dump" "$ours"); then
      fail "$name" "vkllm and llama.cpp disagree: $note"
      continue
    fi
  fi
  echo "ok   $name: $note"
done

if ((${#failed[@]})); then
  echo "peer_loads_files: ${#failed[@]} of ${#files[@]} files failed: ${failed[*]} (in $work)"
  exit 1
fi
echo "peer_loads_files: llama.cpp loaded and ran all ${#files[@]} files"
