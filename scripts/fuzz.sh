#!/usr/bin/env bash
# Runs a libFuzzer target for a while: scripts/fuzz.sh TARGET SECONDS [libFuzzer flags...]
#   TARGET: gguf, tokenizer, chat, options, llama2c, openai (where cJSON is installed, as for vkllm serve), or all
#   (each in turn, SECONDS each).
# Builds what it needs in build-fuzz/ (clang, -DVKLLM_FUZZ=ON: the CPU parts only, no Vulkan), copies the
# committed seeds (fuzz/corpus/TARGET) into a scratch corpus (build-fuzz/corpus/TARGET, kept between runs so
# coverage grows), and fuzzes with AddressSanitizer and UndefinedBehaviorSanitizer.  Exits non-zero on a
# crash, leak, hang or failed property, printing the reproducer's path; replay one with
#   build-fuzz/fuzz/fuzz-TARGET REPRODUCER
# and, once fixed, copy it into fuzz/regressions/TARGET/ (the fuzz_replay_TARGET tests run it in every build).
# Environment: FUZZ_BUILD (build folder, default build-fuzz), FUZZ_JOBS (ninja -j), VKLLM_PEER_MODELS (the
# llama.cpp vocab files of the tokenizer target; default $PEER_HOME/llama.cpp/models).
set -euo pipefail
cd "$(dirname "$0")/.."
targets_all=(gguf tokenizer chat options llama2c)
pkg-config --exists libcjson 2>/dev/null && targets_all+=(openai)
if (($# < 2)); then
  echo "usage: scripts/fuzz.sh {gguf|tokenizer|chat|options|llama2c|openai|all} SECONDS [libFuzzer flags...]" >&2
  exit 2
fi
target=$1 seconds=$2
shift 2
if [[ $target == all ]]; then
  targets=("${targets_all[@]}")
elif [[ " ${targets_all[*]} " == *" $target "* ]]; then
  targets=("$target")
else
  echo "scripts/fuzz.sh: unknown target '$target' (${targets_all[*]}, all)" >&2
  exit 2
fi

build=${FUZZ_BUILD:-build-fuzz}
export VKLLM_PEER_MODELS=${VKLLM_PEER_MODELS:-${PEER_HOME:-$HOME/.cache/llama-peer}/llama.cpp/models}
cmake -S . -B "$build" -G Ninja -DVKLLM_FUZZ=ON -DVKLLM_WERROR=ON -DCMAKE_C_COMPILER=clang \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C "$build" ${FUZZ_JOBS:+-j"$FUZZ_JOBS"} "${targets[@]/#/fuzz-}"

failed=()
for t in "${targets[@]}"; do
  corpus=$build/corpus/$t artifacts=$build/artifacts/$t log=$build/logs/$t.log
  mkdir -p "$corpus" "$artifacts" "$(dirname "$log")"
  cp -n fuzz/corpus/"$t"/* "$corpus"/
  flags=(-max_total_time="$seconds" -timeout=25 -print_final_stats=1 -close_fd_mask=3
         -artifact_prefix="$artifacts"/)
  if [[ -f fuzz/$t.dict ]]; then flags+=(-dict=fuzz/"$t".dict); fi
  echo "fuzz $t: ${seconds}s, corpus $corpus ($(ls "$corpus" | wc -l) inputs), log $log"
  status=0
  "$build"/fuzz/fuzz-"$t" "${flags[@]}" "$@" "$corpus" >"$log" 2>&1 || status=$?
  # The last status line (#N DONE cov: ft: corp: exec/s) and the final stats.
  grep -E '^#[0-9]+[[:space:]]+(DONE|pulse|NEW|REDUCE)' "$log" | tail -n 1 || true
  grep -E '^stat::' "$log" || true
  if ((status == 72)); then
    # libFuzzer's exit status when interrupted (Ctrl-C, SIGTERM): no finding, but the run was cut short.
    echo "fuzz $t: interrupted" >&2
    failed+=("$t (interrupted)")
  elif ((status != 0)); then
    echo "fuzz $t: FAILED (exit $status); the end of $log:" >&2
    tail -n 60 "$log" >&2
    repro=$(grep -oE 'Test unit written to .*' "$log" | sed 's/^Test unit written to //' | tail -n 1)
    echo "fuzz $t: reproducer: ${repro:-(none written; see $log)}" >&2
    failed+=("$t")
  fi
done
if ((${#failed[@]})); then
  echo "fuzz: failed: ${failed[*]}" >&2
  exit 1
fi
