#!/usr/bin/env bash
# Builds vkllm with warnings as errors and runs every test on the chosen Vulkan device (lavapipe on machines
# without a GPU) with the Khronos validation layer on.  Usage: scripts/test.sh [BUILD_DIR] [extra cmake args]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
shift || true
cmake -S . -B "$build" -G Ninja -DVKLLM_WERROR=ON "$@" >/dev/null
ninja -C "$build"
ctest --test-dir "$build" --output-on-failure -j"$(nproc)"
